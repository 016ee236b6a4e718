//! Delivering one record: attempts with backoff until the destination takes it (2xx) or
//! it is dead-lettered with the broker's acknowledgement. Cancellation (revoke,
//! shutdown) abandons the record unfinished, so its offset is never committed.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::{Bytes, BytesMut};
use governor::DefaultDirectRateLimiter;
use prometheus::IntGauge;
use rdkafka::producer::FutureProducer;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::breaker::{Admission, Breaker};
use super::dlq::{self, DeadLetter};
use super::outcome::{self, Outcome};
use super::record::Record;
use super::retry;
use super::sign::Signer;
use crate::connectors::Sink;
use crate::ingress::trace;
use crate::telemetry::Metrics;

/// How a record's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The destination answered 2xx.
    Delivered,
    /// Written to the DLQ and acknowledged.
    DeadLettered,
    /// Stopped by revoke or shutdown: not finished, the offset must not move past it.
    Abandoned,
}

/// Everything the deliveries of one sink share.
pub struct Destination {
    pub sink: Sink,
    /// One pooled client per sink.
    client: reqwest::Client,
    /// Content-Type default and configured headers, built once.
    base_headers: HeaderMap,
    forward: Vec<(String, HeaderName)>,
    signer: Option<Signer>,
    limiter: Option<DefaultDirectRateLimiter>,
    permits: Semaphore,
    breaker: Breaker,
    producer: FutureProducer,
    metrics: Arc<Metrics>,
    gauges: Gauges,
    /// Fired on shutdown: a failed attempt is not retried (the record stays unfinished
    /// and is delivered after the restart).
    no_retry: CancellationToken,
}

/// This sink's gauges, resolved once instead of per record.
pub struct Gauges {
    pub buffered: IntGauge,
    pub in_flight: IntGauge,
    pub paused: IntGauge,
}

impl Destination {
    pub fn new(
        sink: Sink,
        producer: FutureProducer,
        metrics: Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(sink.timeout)
            .connect_timeout(sink.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(sink.concurrency)
            .user_agent(concat!("hookbridge/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let mut base_headers = HeaderMap::new();
        base_headers.insert(axum::http::header::CONTENT_TYPE, sink.content_type.clone());
        for (k, v) in &sink.headers {
            base_headers.insert(k.clone(), v.clone());
        }
        let forward = sink
            .forward_headers
            .iter()
            .filter_map(|h| {
                HeaderName::try_from(h.as_str())
                    .ok()
                    .map(|n| (h.clone(), n))
            })
            .collect();
        let signer = sink.signing_key.as_ref().and_then(Signer::new);
        let breaker = Breaker::new(
            sink.breaker.failures,
            sink.breaker.cooldown.0,
            metrics.breaker_state.with_label_values(&[&sink.name]),
        );
        let gauges = Gauges {
            buffered: metrics.buffered.with_label_values(&[&sink.name]),
            in_flight: metrics.in_flight.with_label_values(&[&sink.name]),
            paused: metrics.paused_partitions.with_label_values(&[&sink.name]),
        };
        Ok(Self {
            no_retry: CancellationToken::new(),
            gauges,
            limiter: sink.rate_limit.map(|r| r.limiter()),
            permits: Semaphore::new(sink.concurrency),
            client,
            base_headers,
            forward,
            signer,
            breaker,
            producer,
            metrics,
            sink,
        })
    }

    /// From now on, failed attempts end the delivery as abandoned instead of waiting
    /// to retry (graceful shutdown).
    pub fn stop_retrying(&self) {
        self.no_retry.cancel();
    }

    pub fn gauges(&self) -> &Gauges {
        &self.gauges
    }

    /// Counts a finished record by outcome.
    pub fn count_finish(&self, finish: Finish) {
        let outcome = match finish {
            Finish::Delivered => "delivered",
            Finish::DeadLettered => "dead_lettered",
            Finish::Abandoned => return,
        };
        self.metrics
            .deliveries
            .with_label_values(&[self.name(), outcome])
            .inc();
    }

    fn name(&self) -> &str {
        &self.sink.name
    }

    /// Delivers `record`, retrying as the policy says. Returns only when the record is
    /// finished or `cancel` fired.
    pub async fn deliver(&self, record: &Record, cancel: &CancellationToken) -> Finish {
        let first_attempt = SystemTime::now();
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            if cancel.is_cancelled() {
                return Finish::Abandoned;
            }
            let admission = self.breaker.admit(cancel, self.name()).await;
            if admission == Admission::Cancelled {
                return Finish::Abandoned;
            }
            let Some(permit) = self.slot(cancel).await else {
                if admission == Admission::Probe {
                    // Nobody else may probe while this one is out: hand the turn back.
                    self.breaker.release_probe(self.name());
                }
                return Finish::Abandoned;
            };
            attempts += 1;
            self.gauges.in_flight.inc();
            let (outcome, response) = self.attempt(record).await;
            self.gauges.in_flight.dec();
            drop(permit);
            self.metrics
                .attempts
                .with_label_values(&[self.name(), outcome.label()])
                .inc();

            let (error, retry_after, permanent) = match &outcome {
                Outcome::Delivered => {
                    self.breaker.record(Some(true), self.name());
                    return Finish::Delivered;
                }
                Outcome::Retryable {
                    reason,
                    retry_after,
                    ..
                } => {
                    self.breaker.record(Some(false), self.name());
                    if admission == Admission::Probe {
                        // The destination is still down; the record is not at fault.
                        attempts -= 1;
                    }
                    (*reason, *retry_after, false)
                }
                Outcome::Permanent { reason, .. } => {
                    // An answer, even a refusal, means the destination is reachable.
                    self.breaker.record(Some(true), self.name());
                    (*reason, None, true)
                }
            };
            let exhausted = permanent || self.exhausted(attempts, started);
            if exhausted && self.sink.dlq_topic.is_some() {
                let dl = DeadLetter {
                    reason: if permanent { "permanent" } else { "exhausted" },
                    status: outcome.status(),
                    error,
                    attempts,
                    first_attempt,
                    last_attempt: SystemTime::now(),
                    response,
                };
                return self.dead_letter(record, &dl, cancel).await;
            }
            let wait = if exhausted {
                // No DLQ: never drop, never skip. Keep trying at the slowest pace; only
                // this key (or partition) waits.
                tracing::error!(connector = self.name(), id = %record.webhook_id(), error, attempts,
                    "record cannot be delivered and no dlq is configured; retrying at the maximum backoff");
                self.sink.retry.max.0
            } else {
                retry::backoff(&self.sink.retry, attempts, retry_after)
            };
            if self.no_retry.is_cancelled() {
                return Finish::Abandoned;
            }
            self.metrics.retries.with_label_values(&[self.name()]).inc();
            tracing::debug!(connector = self.name(), id = %record.webhook_id(), error, attempts, ?wait, "retrying delivery");
            tokio::select! {
                _ = cancel.cancelled() => return Finish::Abandoned,
                _ = self.no_retry.cancelled() => return Finish::Abandoned,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Waits for the rate limiter and a concurrency permit; `None` when cancelled.
    async fn slot(&self, cancel: &CancellationToken) -> Option<tokio::sync::SemaphorePermit<'_>> {
        if let Some(limiter) = &self.limiter {
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = limiter.until_ready() => {}
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => None,
            p = self.permits.acquire() => p.ok(),
        }
    }

    fn exhausted(&self, attempts: u32, started: Instant) -> bool {
        let retry = &self.sink.retry;
        (retry.max_attempts > 0 && attempts >= retry.max_attempts)
            || retry.max_elapsed.is_some_and(|m| started.elapsed() >= m.0)
    }

    /// One HTTP attempt: the outcome and, for failures, the start of the response body.
    async fn attempt(&self, record: &Record) -> (Outcome, Bytes) {
        let started = Instant::now();
        let request = self
            .client
            .request(self.sink.method.clone(), self.sink.url.clone())
            .headers(self.request_headers(record))
            .body(record.value.clone());
        let result = request.send().await;
        self.metrics
            .delivery_latency
            .with_label_values(&[self.name()])
            .observe(started.elapsed().as_secs_f64());
        match result {
            Err(e) => (outcome::from_error(&e), Bytes::new()),
            Ok(mut resp) => {
                let outcome =
                    outcome::from_response(resp.status(), resp.headers(), SystemTime::now());
                let excerpt = if outcome == Outcome::Delivered {
                    Bytes::new()
                } else {
                    read_excerpt(&mut resp).await
                };
                (outcome, excerpt)
            }
        }
    }

    fn request_headers(&self, record: &Record) -> HeaderMap {
        let mut h = self.base_headers.clone();
        if let Some(ct) = record
            .header(crate::kafka::headers::CONTENT_TYPE)
            .and_then(|v| HeaderValue::from_bytes(v).ok())
        {
            h.insert(axum::http::header::CONTENT_TYPE, ct);
        }
        for (key, name) in &self.forward {
            if let Some(v) = record
                .header(key)
                .and_then(|v| HeaderValue::from_bytes(v).ok())
            {
                h.insert(name.clone(), v);
            }
        }
        let id = record.webhook_id();
        if let Some(signer) = &self.signer {
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let sig = signer.sign(&id, ts, &record.value);
            h.insert("webhook-timestamp", HeaderValue::from(ts));
            if let Ok(v) = HeaderValue::from_str(&sig) {
                h.insert("webhook-signature", v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(&id) {
            h.insert("webhook-id", v);
        }
        let parent = record
            .header(crate::kafka::headers::TRACEPARENT)
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or("");
        if let Ok(v) = HeaderValue::from_str(&trace::child_of(parent)) {
            h.insert("traceparent", v);
        }
        h
    }

    /// Writes to the DLQ until the broker acknowledges (or cancellation).
    async fn dead_letter(
        &self,
        record: &Record,
        dl: &DeadLetter,
        cancel: &CancellationToken,
    ) -> Finish {
        let Some(topic) = &self.sink.dlq_topic else {
            return Finish::Abandoned;
        };
        let mut wait = Duration::from_millis(500);
        loop {
            match dlq::write(&self.producer, topic, record, dl, self.name()).await {
                Ok(_) => {
                    self.metrics
                        .dlq_writes
                        .with_label_values(&[self.name(), dl.reason])
                        .inc();
                    tracing::warn!(connector = self.name(), id = %record.webhook_id(), reason = dl.reason,
                        status = ?dl.status, attempts = dl.attempts, dlq = %topic, "record dead-lettered");
                    return Finish::DeadLettered;
                }
                Err(e) => {
                    tracing::error!(connector = self.name(), id = %record.webhook_id(), dlq = %topic, error = %e,
                        "dead-letter write failed; the record stays unfinished and will be retried");
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return Finish::Abandoned,
                _ = self.no_retry.cancelled() => return Finish::Abandoned,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }
}

/// Up to [`dlq::RESPONSE_EXCERPT`] bytes of a failed response's body.
async fn read_excerpt(resp: &mut reqwest::Response) -> Bytes {
    let mut buf = BytesMut::new();
    while buf.len() < dlq::RESPONSE_EXCERPT {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                buf.extend_from_slice(&chunk[..chunk.len().min(dlq::RESPONSE_EXCERPT - buf.len())])
            }
            _ => break,
        }
    }
    buf.freeze()
}
