//! One sink's telemetry handle: every metric of the sink resolved once, at start, so the
//! delivery path bumps plain atomics instead of looking labels up per record; and the
//! typed events the egress path emits, each of which logs one line and counts itself.

use std::sync::Arc;

use std::time::SystemTime;

use prometheus::{Histogram, IntCounter, IntGauge};

use super::failures::{Failure, FailureRing};
use super::reports::Reports;
use super::Metrics;

/// Result classes of an HTTP attempt that have a pre-resolved counter.
const ATTEMPT_RESULTS: [&str; 10] = [
    "2xx",
    "3xx",
    "4xx",
    "408",
    "425",
    "429",
    "5xx",
    "timeout",
    "connect",
    "transport",
];

/// The metrics of one sink, labels resolved.
pub struct SinkTelemetry {
    pub name: Arc<str>,
    metrics: Arc<Metrics>,
    delivered: IntCounter,
    dead_lettered: IntCounter,
    filtered: IntCounter,
    attempts: [IntCounter; ATTEMPT_RESULTS.len()],
    retries: IntCounter,
    dlq_permanent: IntCounter,
    dlq_exhausted: IntCounter,
    latency: Histogram,
    batch_records: Histogram,
    pub in_flight: IntGauge,
    pub buffered: IntGauge,
    pub paused: IntGauge,
    pub breaker: IntGauge,
    pub finished_above: IntGauge,
    pub metadata_bytes: IntGauge,
    /// jq worker processes replaced, by [`Replaced`] (and failed starts, last).
    jq_worker_restarts: [IntCounter; Replaced::ALL.len() + 1],
    skipped_on_resume: IntCounter,
    refetched: IntCounter,
    dlq_truncated: IntCounter,
    failures: Arc<FailureRing>,
    /// Failed dead-letter writes and requests that got no answer, written to the log one
    /// per kind per window, each report with its own limiter (a destination's varied
    /// errors cannot crowd out the other's kinds): with the dead-letter topic missing
    /// every record waiting on it fails on each retry, and with a destination's
    /// certificate refused every attempt fails alike.
    reports: [Reports; 2],
}

impl SinkTelemetry {
    pub fn new(name: Arc<str>, metrics: Arc<Metrics>) -> Self {
        let n: &str = &name;
        let m = &metrics;
        Self {
            delivered: m.deliveries.with_label_values(&[n, "delivered"]),
            dead_lettered: m.deliveries.with_label_values(&[n, "dead_lettered"]),
            filtered: m.deliveries.with_label_values(&[n, "filtered"]),
            attempts: ATTEMPT_RESULTS.map(|r| m.attempts.with_label_values(&[n, r])),
            retries: m.retries.with_label_values(&[n]),
            dlq_permanent: m.dlq_writes.with_label_values(&[n, "permanent"]),
            dlq_exhausted: m.dlq_writes.with_label_values(&[n, "exhausted"]),
            latency: m.delivery_latency.with_label_values(&[n]),
            batch_records: m.batch_records.with_label_values(&[n]),
            in_flight: m.in_flight.with_label_values(&[n]),
            buffered: m.buffered.with_label_values(&[n]),
            paused: m.paused_partitions.with_label_values(&[n]),
            breaker: m.breaker_state.with_label_values(&[n]),
            finished_above: m.finished_above_watermark.with_label_values(&[n]),
            metadata_bytes: m.commit_metadata_bytes.with_label_values(&[n]),
            jq_worker_restarts: std::array::from_fn(|i| {
                let reason = Replaced::ALL.get(i).map_or(SPAWN_FAILED, |r| r.as_str());
                m.jq_worker_restarts.with_label_values(&[n, reason])
            }),
            skipped_on_resume: m.skipped_on_resume.with_label_values(&[n]),
            refetched: m.refetched_records.with_label_values(&[n]),
            dlq_truncated: m.dlq_truncated.with_label_values(&[n]),
            failures: metrics.recent_failures.ring(&name),
            reports: Default::default(),
            metrics: metrics.clone(),
            name,
        }
    }

    /// Whether a `report` of `kind` is written now (see `reports`): `Some` with how many
    /// like it were held back since the last one written.
    fn admit_report(&self, report: Report, kind: &str) -> Option<u64> {
        self.reports[report as usize].admit(kind)
    }

    fn failed(
        &self,
        id: &str,
        error: &'static str,
        status: Option<u16>,
        attempts: u32,
        outcome: String,
        response: &[u8],
    ) {
        self.failures.push(Failure {
            at: SystemTime::now(),
            id: id.to_owned(),
            error,
            status,
            attempts,
            outcome,
            response: Failure::excerpt(response),
        });
    }

    fn attempt_counter(&self, result: &str) -> Option<&IntCounter> {
        ATTEMPT_RESULTS
            .iter()
            .position(|r| *r == result)
            .map(|i| &self.attempts[i])
    }
}

/// Why a sink's jq worker process was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    /// Its record ran past the deadline: killed, the record refused with `timeout`.
    Timeout,
    /// It died on its record: the record refused with `crashed`.
    Crashed,
    /// Its record's evaluation was given up on (revoke, shutdown): killed.
    GivenUp,
    /// It had ended between records: not the record's fault, tried on a new worker.
    Exited,
    /// It was ended under its record from outside (SIGKILL by the OOM killer or an
    /// operator): not the record's fault, tried once more on a new worker.
    Killed,
}

/// The `reason` label of a worker that could not be started.
const SPAWN_FAILED: &str = "spawn-failed";

impl Replaced {
    const ALL: [Replaced; 5] = [
        Replaced::Timeout,
        Replaced::Crashed,
        Replaced::GivenUp,
        Replaced::Exited,
        Replaced::Killed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Replaced::Timeout => "timeout",
            Replaced::Crashed => "crashed",
            Replaced::GivenUp => "given-up",
            Replaced::Exited => "exited",
            Replaced::Killed => "killed",
        }
    }
}

/// A jq worker process was replaced. Never names or quotes the record.
pub struct JqWorkerReplaced {
    pub why: Replaced,
    /// How the process ended (`signal 6`, `exit code 101`).
    pub status: String,
}

impl JqWorkerReplaced {
    pub fn emit(&self, t: &SinkTelemetry) {
        if let Some(i) = Replaced::ALL.iter().position(|r| *r == self.why) {
            t.jq_worker_restarts[i].inc();
        }
        match self.why {
            Replaced::Crashed => tracing::warn!(connector = %t.name, status = %self.status,
                "a jq worker died on a record; the record is refused (crashed) and the worker replaced"),
            Replaced::Exited => tracing::warn!(connector = %t.name, status = %self.status,
                "a jq worker had ended between records; replaced, the record is evaluated again"),
            Replaced::Killed => tracing::warn!(connector = %t.name, status = %self.status,
                "a jq worker was ended from outside under a record; replaced, the record is evaluated once more"),
            Replaced::Timeout | Replaced::GivenUp => tracing::debug!(connector = %t.name,
                reason = self.why.as_str(), "a jq worker was killed and is replaced"),
        }
    }
}

/// A jq worker process could not be started: not the record's fault, it waits.
pub struct JqWorkerSpawnFailed {
    pub error: String,
    pub retry_in: std::time::Duration,
}

impl JqWorkerSpawnFailed {
    pub fn emit(&self, t: &SinkTelemetry) {
        t.jq_worker_restarts[Replaced::ALL.len()].inc();
        tracing::warn!(connector = %t.name, error = %self.error, retry_in = ?self.retry_in,
            "cannot start a jq worker; the record waits and it is tried again");
    }
}

/// One HTTP attempt ended.
pub struct AttemptEnded {
    pub result: &'static str,
    pub seconds: f64,
}

impl AttemptEnded {
    pub fn emit(&self, t: &SinkTelemetry) {
        t.latency.observe(self.seconds);
        match t.attempt_counter(self.result) {
            Some(c) => c.inc(),
            None => t
                .metrics
                .attempts
                .with_label_values(&[&t.name, self.result])
                .inc(),
        }
    }
}

/// A record reached its end: delivered, dead-lettered with the broker's ack, or let
/// through by the sink's filter without a request.
pub enum RecordFinished {
    Delivered,
    DeadLettered,
    Filtered,
}

impl RecordFinished {
    /// `records` records reached this end at once (a batch's).
    pub fn emit_records(&self, t: &SinkTelemetry, records: u64) {
        match self {
            RecordFinished::Delivered => t.delivered.inc_by(records),
            RecordFinished::DeadLettered => t.dead_lettered.inc_by(records),
            RecordFinished::Filtered => t.filtered.inc_by(records),
        }
    }
}

/// A batch request is about to be made for the first time.
pub struct BatchSent {
    pub records: usize,
}

impl BatchSent {
    pub fn emit(&self, t: &SinkTelemetry) {
        t.batch_records.observe(self.records as f64);
    }
}

/// A failed attempt will be tried again after `wait`.
pub struct RetryScheduled<'a> {
    pub id: &'a str,
    pub error: &'static str,
    /// The attempt's HTTP status and the start of its answer, when the destination
    /// answered (for the console's recent failures; never logged).
    pub answer: Option<(u16, &'a [u8])>,
    pub attempts: u32,
    pub wait: std::time::Duration,
    /// Out of attempts, or refused for good, and no DLQ: the record is held in its lane
    /// and attempted at the slowest pace, never dropped.
    pub held: bool,
}

impl RetryScheduled<'_> {
    pub fn emit(&self, t: &SinkTelemetry) {
        t.retries.inc();
        let (status, response) = self.answer.map_or((None, &[][..]), |(s, r)| (Some(s), r));
        let outcome = if self.held { HELD } else { "retrying" };
        t.failed(
            self.id,
            self.error,
            status,
            self.attempts,
            outcome.into(),
            response,
        );
        if self.held {
            held(t, self.id, self.error, self.attempts);
        } else {
            tracing::debug!(connector = %t.name, id = self.id, error = self.error, attempts = self.attempts,
                wait = ?self.wait, "retrying delivery");
        }
    }
}

/// The outcome of a failure that holds its record for lack of a DLQ.
const HELD: &str = "retrying, no dlq";

fn held(t: &SinkTelemetry, id: &str, error: &str, attempts: u32) {
    tracing::error!(connector = %t.name, id, error, attempts,
        "record cannot be delivered and no dlq is configured; retrying at the maximum backoff");
}

/// A record that cannot be shaped into a request, and there is no DLQ: it is checked
/// again at the slowest pace, blocking only its lane. (A record the destination refuses
/// is held by [`RetryScheduled`], with the destination's answer.)
pub struct UnshapeableWithoutDlq<'a> {
    pub id: &'a str,
    pub error: &'static str,
}

impl UnshapeableWithoutDlq<'_> {
    pub fn emit(&self, t: &SinkTelemetry) {
        t.failed(self.id, self.error, None, 0, HELD.into(), &[]);
        held(t, self.id, self.error, 0);
    }
}

/// A record was written to the DLQ and the broker acknowledged it.
pub struct DeadLettered<'a> {
    pub id: &'a str,
    pub reason: &'static str,
    pub status: Option<u16>,
    /// The start of the last answer (for the console's recent failures; never logged).
    pub response: &'a [u8],
    pub attempts: u32,
    pub dlq: &'a str,
    /// The dead letter had to be cut to fit the DLQ topic (`cut` says how).
    pub cut: Option<&'a dyn std::fmt::Debug>,
}

impl DeadLettered<'_> {
    pub fn emit(&self, t: &SinkTelemetry) {
        match self.reason {
            "permanent" => t.dlq_permanent.inc(),
            "exhausted" => t.dlq_exhausted.inc(),
            other => t
                .metrics
                .dlq_writes
                .with_label_values(&[&t.name, other])
                .inc(),
        }
        let outcome = format!("dead-lettered: {}", self.reason);
        t.failed(
            self.id,
            "",
            self.status,
            self.attempts,
            outcome,
            self.response,
        );
        // A status as a number (or none), not as Rust prints an Option.
        tracing::warn!(connector = %t.name, id = self.id, reason = self.reason, status = self.status.map(u64::from),
            attempts = self.attempts, dlq = self.dlq, "record dead-lettered");
        if let Some(cut) = self.cut {
            t.dlq_truncated.inc();
            tracing::error!(connector = %t.name, id = self.id, dlq = self.dlq, cut = ?cut,
                "dead letter too large for the dlq topic; written cut and marked hookbridge-dlq-truncated (the full record stays at its origin)");
        }
    }
}

/// The DLQ write failed; the record stays unfinished and the write is retried.
pub struct DeadLetterFailed<'a> {
    pub id: &'a str,
    pub dlq: &'a str,
    pub error: &'a dyn std::fmt::Display,
    /// `too_large`, `unknown_topic`, `not_authorized`, `timeout` or `other`.
    pub class: &'static str,
    /// Refused for its size, and written again cut at once.
    pub cut_next: bool,
}

impl DeadLetterFailed<'_> {
    pub fn emit(&self, t: &SinkTelemetry) {
        let class = self.class;
        t.metrics
            .dlq_write_failures
            .with_label_values(&[&t.name, class])
            .inc();
        if self.cut_next {
            tracing::warn!(connector = %t.name, id = self.id, dlq = self.dlq, error = %self.error,
                "dead-letter write failed: refused for its size; writing it cut");
            return;
        }
        // One kind per class and error: another error of the class is written at once.
        let kind = format!("{class} {}", self.error);
        let Some(held_back) = t.admit_report(Report::DeadLetterFailed, &kind) else {
            return;
        };
        tracing::error!(connector = %t.name, id = self.id, dlq = self.dlq, error = %self.error, class, held_back,
            "dead-letter write failed; the record stays unfinished and will be retried");
    }
}

/// The sink's reports limited per kind, each with its own limiter.
#[derive(Clone, Copy)]
enum Report {
    DeadLetterFailed = 0,
    RequestFailed = 1,
}

/// A request got no answer: it could not connect (refused, unreachable, a TLS handshake
/// that failed, such as a certificate not trusted), timed out or broke. The attempt's
/// result says only `connect`, `timeout` or `transport`; the log line says why, once per
/// kind per window. `error` carries no URL (a URL may hold a credential).
pub struct RequestFailed<'a> {
    pub result: &'static str,
    pub error: &'a str,
}

impl RequestFailed<'_> {
    pub fn emit(&self, t: &SinkTelemetry) {
        let kind = format!("{} {}", self.result, self.error);
        if let Some(held_back) = t.admit_report(Report::RequestFailed, &kind) {
            tracing::warn!(connector = %t.name, result = self.result, error = self.error, held_back,
                "request got no answer; it is retried by the sink's policy");
        }
    }
}

/// A request to a sink's OAuth2 token endpoint failed; it is retried after `wait` while
/// the deliveries that need the token wait. Only the class is logged: never the secret,
/// a token or the endpoint's answer.
pub struct TokenFetchFailed {
    pub class: &'static str,
    pub wait: std::time::Duration,
}

impl TokenFetchFailed {
    pub fn emit(&self, t: &SinkTelemetry) {
        t.metrics
            .token_failures
            .with_label_values(&[&t.name, self.class])
            .inc();
        tracing::warn!(connector = %t.name, class = self.class, wait = ?self.wait,
            "oauth2 token request failed; deliveries wait and the request is retried");
    }
}

/// After an assignment, records the commit metadata marks finished were not delivered again.
pub struct SkippedOnResume {
    pub records: u64,
}

impl SkippedOnResume {
    pub fn emit(&self, t: &SinkTelemetry) {
        t.skipped_on_resume.inc_by(self.records);
    }
}

/// Records polled while their partition was paused were dropped, to be fetched again
/// when it resumes.
pub struct Refetched {
    pub records: u64,
}

impl Refetched {
    pub fn emit(&self, t: &SinkTelemetry) {
        t.refetched.inc_by(self.records);
    }
}

/// Records a sink's dispatcher holds unfinished changed by this many: taken in
/// (positive), or let go (finished, or forgotten with their partition).
pub struct Buffered(pub i64);

impl Buffered {
    pub fn emit(&self, t: &SinkTelemetry) {
        t.buffered.add(self.0);
    }
}

/// Paused partitions of a sink changed by this many: paused (`1`), or resumed or
/// forgotten while paused (`-1`).
pub struct Paused(pub i64);

impl Paused {
    pub fn emit(&self, t: &SinkTelemetry) {
        t.paused.add(self.0);
    }
}

/// A periodic commit was handed to the consumer.
pub struct Committed {
    /// Finished records above the committed offsets, over all partitions.
    pub finished_above: i64,
    /// Largest metadata map written.
    pub metadata_bytes: usize,
    /// Partitions whose map had to be cut to the budget.
    pub truncated: usize,
}

impl Committed {
    pub fn emit(&self, t: &SinkTelemetry) {
        t.finished_above.set(self.finished_above);
        t.metadata_bytes.set(self.metadata_bytes as i64);
        if self.truncated > 0 {
            tracing::debug!(connector = %t.name, partitions = self.truncated,
                "finished-offset map cut to the metadata budget; records above the cut are redelivered after a crash");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::captured::Captured;

    /// With the dead-letter topic missing, every waiting record fails its write on each
    /// retry: one line per class per window is written, every failure counted.
    #[test]
    fn failed_dead_letter_writes_are_written_once_per_class_and_all_counted() {
        let metrics = Arc::new(Metrics::new());
        let t = SinkTelemetry::new("orders".into(), metrics.clone());
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(captured.clone())
            .finish();
        let fail = |id: &str, class| {
            let failed = DeadLetterFailed {
                id,
                dlq: "orders.dlq",
                error: &"Broker: Unknown topic or partition",
                class,
                cut_next: false,
            };
            failed.emit(&t);
        };
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..5 {
                fail(&format!("orders-0-{i}"), "unknown_topic");
            }
            fail("orders-0-9", "timeout");
        });
        let lines: Vec<serde_json::Value> = (captured.text().lines())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let classes: Vec<&str> = lines.iter().map(|l| l["class"].as_str().unwrap()).collect();
        assert_eq!(classes, ["unknown_topic", "timeout"], "{lines:?}");
        assert_eq!(lines[0]["id"], "orders-0-0");
        let page = metrics.render();
        for (class, n) in [("unknown_topic", 5), ("timeout", 1)] {
            let series = format!(
                "hookbridge_dlq_write_failures_total{{connector=\"orders\",error=\"{class}\"}} {n}"
            );
            assert!(page.contains(&series), "{series}");
        }
    }
}
