//! The control plane of a sink's consumer as typed events: what the group, the commits
//! and the partition flow did (assignment, revoke, loss, commit and its failures, seek,
//! pause and resume, lag). Each site in `egress/consumer` emits one [`ControlEvent`];
//! [`ControlEvent::emit`] is the one place that decides its log line (level, message,
//! fields) and the metric it moves, as the data path's events in [`super::sink`] do.

use std::fmt::Display;
use std::sync::Arc;

use prometheus::{IntCounter, IntGaugeVec};

use super::Metrics;

/// The control-plane metrics of one sink, labels resolved where they are fixed.
pub struct ControlTelemetry {
    pub name: Arc<str>,
    commit_failures: IntCounter,
    lossy_header_names: IntCounter,
    consumer_errors: IntCounter,
    /// By connector, topic and partition: series come and go with the assignment.
    lag: IntGaugeVec,
}

impl ControlTelemetry {
    pub fn new(name: Arc<str>, metrics: &Metrics) -> Self {
        let n: &str = &name;
        Self {
            commit_failures: metrics.commit_failures.with_label_values(&[n]),
            lossy_header_names: metrics.lossy_header_names.with_label_values(&[n]),
            consumer_errors: metrics.consumer_errors.with_label_values(&[n]),
            lag: metrics.consumer_lag.clone(),
            name,
        }
    }

    fn lag_labels<'a>(&'a self, topic: &'a str, partition: &'a str) -> [&'a str; 3] {
        [&self.name, topic, partition]
    }
}

/// Something the consumer's control plane did or could not do.
pub enum ControlEvent<'a> {
    /// The group gave this member partitions.
    Assigned { partitions: usize },
    /// The committed offsets of new partitions could not be read: records finished
    /// above them are delivered again.
    CommittedUnreadable { error: &'a dyn Display },
    /// A partition's commit metadata is not a finished-offset map of its offset (another
    /// client wrote it, or an older format): the partition replays from the offset.
    NotAFinishedMap { topic: &'a str, partition: i32 },
    /// Partitions are being revoked: drained, then committed.
    Revoked { partitions: usize },
    /// The assignment was lost (session timed out, poll interval exceeded): its
    /// partitions go without a drain or a commit.
    Lost { partitions: usize },
    /// A revoke found the dispatcher stopped: nothing to commit.
    DispatcherStopped,
    /// librdkafka took the whole assignment away.
    RebalanceFailed { error: &'a dyn Display },
    /// The shutdown drain got no answer in time: nothing is committed.
    ShutdownDrainUnanswered,
    /// A synchronous commit of drained partitions (revoke, shutdown) succeeded.
    DrainCommitted { partitions: usize },
    /// A synchronous commit of drained partitions failed.
    DrainCommitFailed { error: &'a dyn Display },
    /// An asynchronous commit could not even be queued.
    CommitNotQueued { error: &'a dyn Display },
    /// librdkafka's commit callback reported a failed commit.
    CommitFailed {
        error: &'a dyn Display,
        partitions: usize,
    },
    /// librdkafka logged a failed commit (`COMMITFAIL`): how a refused asynchronous
    /// commit shows, since no callback hears of it. Counted always, written when
    /// `held_back` is `Some` (the refusals like it held back since the last written):
    /// commits queued every interval while a group waits out a killed member's session
    /// are all refused in the same instant once it ends.
    CommitRefused {
        message: &'a str,
        held_back: Option<u64>,
    },
    /// A flow change sent for an earlier assignment of the partition was ignored.
    StaleFlowChange { topic: &'a str, partition: i32 },
    /// The dispatcher paused a partition.
    Paused { topic: &'a str, partition: i32 },
    /// librdkafka refused to pause a partition.
    PauseFailed { error: &'a dyn Display },
    /// librdkafka refused to resume a partition.
    ResumeFailed { error: &'a dyn Display },
    /// A resume waits until the seek still owed for the partition is done.
    ResumeWaitsForSeek { topic: &'a str, partition: i32 },
    /// A partition was sought back to `offset` and resumed.
    Rewound {
        topic: &'a str,
        partition: i32,
        offset: i64,
    },
    /// A seek back failed: the partition stays paused and the seek is retried.
    SeekFailed {
        topic: &'a str,
        partition: i32,
        error: &'a dyn Display,
    },
    /// The sink's poll thread or dispatcher died on an internal error (`what`, a panic's
    /// message): the process shuts down.
    SinkFailed { what: &'a str },
    /// A poll returned an error: counted always, written when `held_back` is `Some`
    /// (with how many like it were not written since the last; see `kafka::client_log`).
    ConsumerError {
        error: &'a dyn Display,
        /// `topic/partition@offset` when the error is about one ("" when not).
        at: &'a str,
        held_back: Option<u64>,
    },
    /// Polled records had header names that are not UTF-8 (read lossily).
    LossyHeaderNames { count: u64 },
    /// librdkafka's statistics measured a held partition's committed-offset lag.
    LagMeasured {
        topic: &'a str,
        partition: i32,
        lag: i64,
    },
    /// A partition left this member: its lag series goes with it.
    PartitionLeft { topic: &'a str, partition: i32 },
}

/// The target of every control-plane line: the consumer module's, where these lines were
/// written before they became events, so `RUST_LOG` filters on it keep working.
const TARGET: &str = "hookbridge::egress::consumer";

/// What librdkafka says when the finished-offset map is over the broker's limit.
const METADATA_TOO_LARGE: &str = "Offset metadata string too large";

impl ControlEvent<'_> {
    pub fn emit(&self, t: &ControlTelemetry) {
        let connector = &*t.name;
        match *self {
            ControlEvent::Assigned { partitions } => {
                tracing::info!(target: TARGET, connector = %connector, partitions, "partitions assigned");
            }
            ControlEvent::CommittedUnreadable { error } => {
                tracing::warn!(target: TARGET, connector = %connector, error = %error,
                    "could not read committed metadata; records finished above the committed offsets will be delivered again");
            }
            ControlEvent::NotAFinishedMap { topic, partition } => {
                tracing::info!(target: TARGET, connector = %connector, topic = %topic, partition,
                    "commit metadata is not a finished-offset map of this offset; replaying from the committed offset");
            }
            ControlEvent::Revoked { partitions } => {
                tracing::info!(target: TARGET, connector = %connector, partitions, "partitions revoked; draining");
            }
            ControlEvent::Lost { partitions } => {
                tracing::warn!(
                    target: TARGET,
                    connector = %connector,
                    partitions,
                    "assignment lost; dropping its partitions without a drain or commit"
                );
            }
            ControlEvent::DispatcherStopped => {
                tracing::debug!(target: TARGET, connector = %connector, "dispatcher already stopped; nothing to commit");
            }
            ControlEvent::RebalanceFailed { error } => {
                tracing::warn!(target: TARGET, connector = %connector, error = %error, "rebalance error; dropping every partition");
            }
            ControlEvent::ShutdownDrainUnanswered => {
                tracing::warn!(
                    target: TARGET,
                    connector = %connector,
                    "shutdown drain did not answer; committing nothing"
                );
            }
            ControlEvent::DrainCommitted { partitions } => {
                tracing::info!(target: TARGET, connector = %connector, partitions, "committed drained offsets");
            }
            ControlEvent::DrainCommitFailed { error } => {
                t.commit_failures.inc();
                tracing::warn!(target: TARGET, connector = %connector, error = %error,
                    "commit of drained offsets failed; records after the last commit will be redelivered");
            }
            ControlEvent::CommitNotQueued { error } => {
                t.commit_failures.inc();
                tracing::warn!(target: TARGET, connector = %connector, error = %error, "offset commit could not be queued");
            }
            ControlEvent::CommitFailed { error, partitions } => {
                t.commit_failures.inc();
                tracing::warn!(target: TARGET, connector = %connector, error = %error, partitions,
                    "offset commit failed; it is retried at the next interval");
            }
            ControlEvent::CommitRefused { message, held_back } => {
                t.commit_failures.inc();
                let Some(held_back) = held_back else {
                    return;
                };
                if message.contains(METADATA_TOO_LARGE) {
                    // `check` cannot know the broker's limit; this is where it shows.
                    tracing::warn!(target: TARGET, connector = %connector, error = %message, held_back,
                        "offset commit failed: the finished-offset map is over the broker's offset.metadata.max.bytes; set kafka.commit_metadata_max_bytes below it");
                } else {
                    tracing::warn!(target: TARGET, connector = %connector, error = %message, held_back,
                        "offset commit failed; it is retried at the next interval");
                }
            }
            ControlEvent::StaleFlowChange { topic, partition } => {
                tracing::debug!(
                    target: TARGET,
                    connector = %connector,
                    topic = %topic,
                    partition,
                    "flow change of an earlier assignment ignored"
                );
            }
            ControlEvent::Paused { topic, partition } => {
                tracing::debug!(target: TARGET, connector = %connector, topic = %topic, partition, "partition paused");
            }
            ControlEvent::PauseFailed { error } => {
                tracing::warn!(target: TARGET, connector = %connector, error = %error, "pause failed");
            }
            ControlEvent::ResumeFailed { error } => {
                tracing::warn!(target: TARGET, connector = %connector, error = %error, "resume failed");
            }
            ControlEvent::ResumeWaitsForSeek { topic, partition } => {
                tracing::debug!(
                    target: TARGET,
                    connector = %connector,
                    topic = %topic,
                    partition,
                    "resume waits for the owed seek"
                );
            }
            ControlEvent::Rewound {
                topic,
                partition,
                offset,
            } => {
                tracing::debug!(
                    target: TARGET,
                    connector = %connector,
                    topic = %topic,
                    partition,
                    offset,
                    "partition rewound and resumed"
                );
            }
            ControlEvent::SeekFailed {
                topic,
                partition,
                error,
            } => {
                tracing::error!(target: TARGET, connector = %connector, topic = %topic, partition, error = %error,
                    "seek back for resume failed; the partition stays paused and the seek is retried");
            }
            ControlEvent::SinkFailed { what } => {
                tracing::error!(
                    target: TARGET,
                    connector = %connector,
                    panic = %what,
                    "sink stopped by an internal error; shutting the process down"
                );
            }
            ControlEvent::ConsumerError {
                error,
                at,
                held_back,
            } => {
                t.consumer_errors.inc();
                if let Some(held_back) = held_back {
                    tracing::warn!(target: TARGET, connector = %connector, error = %error, at = %at, held_back, "consumer error");
                }
            }
            ControlEvent::LossyHeaderNames { count } => t.lossy_header_names.inc_by(count),
            ControlEvent::LagMeasured {
                topic,
                partition,
                lag,
            } => {
                let partition = partition.to_string();
                t.lag
                    .with_label_values(&t.lag_labels(topic, &partition))
                    .set(lag.max(0));
            }
            ControlEvent::PartitionLeft { topic, partition } => {
                let partition = partition.to_string();
                let _ = t.lag.remove_label_values(&t.lag_labels(topic, &partition));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    use crate::telemetry::captured::Captured;

    /// What one event must leave behind: its log line (level and message, which operators
    /// alert on) and the metric it moves.
    struct Expect {
        line: Option<(&'static str, &'static str)>,
        metric: Metric,
    }

    enum Metric {
        None,
        /// This series line is in the registry afterwards.
        Reads(&'static str),
        /// The lag series of orders/3 is gone afterwards.
        LagGone,
    }

    const COMMIT_FAILED: &str = "hookbridge_commit_failures_total{connector=\"orders\"} 1";
    const LAG: &str = "hookbridge_consumer_lag{connector=\"orders\",partition=\"3\",topic=\"t\"}";

    /// The log line and metric of every kind. No wildcard arm: a new kind does not
    /// compile until its expectation is written here and a sample added below.
    fn expect(e: &ControlEvent<'_>) -> Expect {
        use ControlEvent as E;
        let log = |level, message| Expect {
            line: Some((level, message)),
            metric: Metric::None,
        };
        let failed = |message| Expect {
            line: Some(("WARN", message)),
            metric: Metric::Reads(COMMIT_FAILED),
        };
        match e {
            E::Assigned { .. } => log("INFO", "partitions assigned"),
            E::CommittedUnreadable { .. } => log("WARN", "could not read committed metadata; records finished above the committed offsets will be delivered again"),
            E::NotAFinishedMap { .. } => log("INFO", "commit metadata is not a finished-offset map of this offset; replaying from the committed offset"),
            E::Revoked { .. } => log("INFO", "partitions revoked; draining"),
            E::Lost { .. } => log("WARN", "assignment lost; dropping its partitions without a drain or commit"),
            E::DispatcherStopped => log("DEBUG", "dispatcher already stopped; nothing to commit"),
            E::RebalanceFailed { .. } => log("WARN", "rebalance error; dropping every partition"),
            E::ShutdownDrainUnanswered => log("WARN", "shutdown drain did not answer; committing nothing"),
            E::DrainCommitted { .. } => log("INFO", "committed drained offsets"),
            E::DrainCommitFailed { .. } => failed("commit of drained offsets failed; records after the last commit will be redelivered"),
            E::CommitNotQueued { .. } => failed("offset commit could not be queued"),
            E::CommitFailed { .. } => failed("offset commit failed; it is retried at the next interval"),
            E::CommitRefused { held_back: None, .. } => Expect {
                line: None,
                metric: Metric::Reads(COMMIT_FAILED),
            },
            E::CommitRefused { message, .. } if message.contains(METADATA_TOO_LARGE) => failed("offset commit failed: the finished-offset map is over the broker's offset.metadata.max.bytes; set kafka.commit_metadata_max_bytes below it"),
            E::CommitRefused { .. } => failed("offset commit failed; it is retried at the next interval"),
            E::StaleFlowChange { .. } => log("DEBUG", "flow change of an earlier assignment ignored"),
            E::Paused { .. } => log("DEBUG", "partition paused"),
            E::PauseFailed { .. } => log("WARN", "pause failed"),
            E::ResumeFailed { .. } => log("WARN", "resume failed"),
            E::ResumeWaitsForSeek { .. } => log("DEBUG", "resume waits for the owed seek"),
            E::Rewound { .. } => log("DEBUG", "partition rewound and resumed"),
            E::SeekFailed { .. } => log("ERROR", "seek back for resume failed; the partition stays paused and the seek is retried"),
            E::SinkFailed { .. } => log("ERROR", "sink stopped by an internal error; shutting the process down"),
            E::ConsumerError { .. } => Expect {
                line: Some(("WARN", "consumer error")),
                metric: Metric::Reads("hookbridge_consumer_errors_total{connector=\"orders\"} 1"),
            },
            E::LossyHeaderNames { .. } => Expect {
                line: None,
                metric: Metric::Reads("hookbridge_lossy_header_names_total{connector=\"orders\"} 2"),
            },
            E::LagMeasured { .. } => Expect {
                line: None,
                metric: Metric::Reads("hookbridge_consumer_lag{connector=\"orders\",partition=\"3\",topic=\"t\"} 7"),
            },
            E::PartitionLeft { .. } => Expect {
                line: None,
                metric: Metric::LagGone,
            },
        }
    }

    /// One event of every kind (both refusal texts of `CommitRefused`).
    fn samples(error: &dyn Display) -> Vec<ControlEvent<'_>> {
        use ControlEvent as E;
        let (topic, partition) = ("t", 3);
        vec![
            E::Assigned { partitions: 2 },
            E::CommittedUnreadable { error },
            E::NotAFinishedMap { topic, partition },
            E::Revoked { partitions: 2 },
            E::Lost { partitions: 2 },
            E::DispatcherStopped,
            E::RebalanceFailed { error },
            E::ShutdownDrainUnanswered,
            E::DrainCommitted { partitions: 2 },
            E::DrainCommitFailed { error },
            E::CommitNotQueued { error },
            E::CommitFailed { error, partitions: 2 },
            E::CommitRefused { message: "Offset commit (manual) failed for 1/2 partition(s): Broker: Offset metadata string too large", held_back: Some(0) },
            E::CommitRefused { message: "Offset commit (manual) failed for 1/1 partition(s): Broker: Not coordinator", held_back: Some(4) },
            E::CommitRefused { message: "Offset commit (manual) failed for 1/1 partition(s): Broker: Not coordinator", held_back: None },
            E::StaleFlowChange { topic, partition },
            E::Paused { topic, partition },
            E::PauseFailed { error },
            E::ResumeFailed { error },
            E::ResumeWaitsForSeek { topic, partition },
            E::Rewound { topic, partition, offset: 42 },
            E::SeekFailed { topic, partition, error },
            E::SinkFailed { what: "bug" },
            E::ConsumerError {
                error,
                at: "t/3@17",
                held_back: Some(3),
            },
            E::LossyHeaderNames { count: 2 },
            E::LagMeasured { topic, partition, lag: 7 },
            E::PartitionLeft { topic, partition },
        ]
    }

    #[test]
    fn every_control_event_logs_its_line_and_moves_its_metric() {
        let samples = samples(&"broker down");
        let kinds: HashSet<_> = samples.iter().map(std::mem::discriminant).collect();
        assert_eq!(kinds.len(), 25, "one sample of every kind");
        for event in &samples {
            let metrics = Metrics::new();
            let t = ControlTelemetry::new("orders".into(), &metrics);
            // The series PartitionLeft must take away.
            t.lag.with_label_values(&["orders", "t", "3"]).set(1);
            let captured = Captured::default();
            let subscriber = tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_max_level(tracing::Level::TRACE)
                .with_writer(captured.clone())
                .finish();
            tracing::subscriber::with_default(subscriber, || event.emit(&t));
            let text = captured.text();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let want = expect(event);
            match want.line {
                Some((level, message)) => {
                    assert_eq!(lines.len(), 1, "one line for {message:?}: {text}");
                    assert_eq!(lines[0]["level"], level, "{text}");
                    assert_eq!(lines[0]["message"], message, "{text}");
                    assert_eq!(lines[0]["connector"], "orders", "{text}");
                    assert_eq!(lines[0]["target"], TARGET, "{text}");
                    if matches!(event, ControlEvent::ConsumerError { .. }) {
                        assert_eq!(lines[0]["held_back"], 3, "{text}");
                        assert_eq!(lines[0]["at"], "t/3@17", "{text}");
                    }
                }
                None => assert!(lines.is_empty(), "a metric-only event logged: {text}"),
            }
            let rendered = metrics.render();
            match want.metric {
                Metric::Reads(series) => assert!(rendered.contains(series), "{series} missing"),
                Metric::LagGone => assert!(!rendered.contains(LAG), "lag series left behind"),
                Metric::None => {
                    for untouched in [
                        "hookbridge_commit_failures_total{connector=\"orders\"} 0",
                        "hookbridge_lossy_header_names_total{connector=\"orders\"} 0",
                        "hookbridge_consumer_errors_total{connector=\"orders\"} 0",
                        &format!("{LAG} 1"),
                    ] {
                        assert!(rendered.contains(untouched), "{untouched} moved");
                    }
                }
            }
        }
    }

    /// The default `pretty` log format prints a `&str` field with quotes unless it is
    /// recorded with `%`: operators grep and alert on `connector=orders` and `topic=t`,
    /// as the data path's lines print them.
    #[test]
    fn pretty_lines_name_the_connector_and_topic_without_quotes() {
        for event in &samples(&"broker down") {
            let metrics = Metrics::new();
            let t = ControlTelemetry::new("orders".into(), &metrics);
            let captured = Captured::default();
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_max_level(tracing::Level::TRACE)
                .with_writer(captured.clone())
                .finish();
            tracing::subscriber::with_default(subscriber, || event.emit(&t));
            let text = captured.text();
            if text.is_empty() {
                continue; // a metric-only event
            }
            assert!(text.contains("connector=orders"), "{text}");
            assert!(!text.contains("=\""), "{text}");
            if text.contains("topic") {
                assert!(text.contains("topic=t "), "{text}");
            }
        }
    }
}
