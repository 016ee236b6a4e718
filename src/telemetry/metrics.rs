//! Every metric hookbridge exports, with fixed label sets. One `Metrics` per process,
//! shared by reference; label values are connector names and small closed sets, never
//! anything taken from a request.

use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::catalog::EventCatalog;
use super::failures::RecentFailures;

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    /// Not a Prometheus metric: the last failed attempts of each sink, for the console.
    pub recent_failures: RecentFailures,
    /// Not a Prometheus metric either: the event types each source saw, for the console.
    pub event_catalog: EventCatalog,
    /// Ingress requests by connector and HTTP status.
    pub ingress_requests: IntCounterVec,
    /// Webhooks whose record the broker acknowledged, by connector and event type (the
    /// event catalog's buckets: at most `catalog::MAX_TYPES` types per source, then
    /// `other`; empty when the source reads none or the webhook had none).
    pub ingress_accepted: IntCounterVec,
    /// Signature failures by connector and reason.
    pub signature_failures: IntCounterVec,
    /// Time from handing a record to the producer to the broker's acknowledgement.
    pub produce_latency: HistogramVec,
    /// Finished records by connector and outcome (delivered, dead_lettered).
    pub deliveries: IntCounterVec,
    /// HTTP attempts by connector and result class (2xx, 4xx, 5xx, timeout, connect, …).
    pub attempts: IntCounterVec,
    /// Attempts that were retried, by connector.
    pub retries: IntCounterVec,
    /// Dead-letter writes by connector and reason.
    pub dlq_writes: IntCounterVec,
    /// Duration of one HTTP attempt to a destination.
    pub delivery_latency: HistogramVec,
    /// Records per batch request sent (its count: batches sent), per sink.
    pub batch_records: HistogramVec,
    /// HTTP requests to the destination in progress, by connector.
    pub in_flight: IntGaugeVec,
    /// Records held (received, not finished) by connector.
    pub buffered: IntGaugeVec,
    /// Partitions paused for back-pressure or an open breaker, by connector.
    pub paused_partitions: IntGaugeVec,
    /// Committed-watermark lag: high watermark minus committed offset, per partition.
    pub consumer_lag: IntGaugeVec,
    /// Breaker state by connector: 0 closed, 1 open, 2 half-open.
    pub breaker_state: IntGaugeVec,
    /// Finished records above the committed watermark, carried in the commit metadata.
    pub finished_above_watermark: IntGaugeVec,
    /// Size of the largest finished-offset map in the last commit, in bytes.
    pub commit_metadata_bytes: IntGaugeVec,
    /// Records skipped after an assignment because the commit metadata says they were
    /// finished already.
    pub skipped_on_resume: IntCounterVec,
    /// Records fetched again, by connector: polled while their partition was paused past
    /// what a pause holds (dropped), or stale copies arriving after the rewind.
    pub refetched_records: IntCounterVec,
    /// Consumed header names that were not UTF-8 and were read lossily, by connector.
    pub lossy_header_names: IntCounterVec,
    /// Errors a sink's consumer polled, by connector (logged once per kind per 30 s).
    pub consumer_errors: IntCounterVec,
    /// Failed dead-letter writes by connector and error class.
    pub dlq_write_failures: IntCounterVec,
    /// Dead letters written cut because the whole record did not fit the DLQ topic.
    pub dlq_truncated: IntCounterVec,
    /// Offset commits that failed (refused, or could not be queued), by connector.
    pub commit_failures: IntCounterVec,
    /// Bytes of records held by egress, all sinks together (`kafka.buffer_memory`).
    pub buffered_bytes: prometheus::IntGauge,
    /// Failed OAuth2 token requests by connector and class (retried with backoff).
    pub token_failures: IntCounterVec,
    /// jq worker processes replaced (or that failed to start), by connector and reason.
    pub jq_worker_restarts: IntCounterVec,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let buckets = vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    histogram_with(r, name, help, labels, buckets)
}

fn histogram_with(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid metric definition");
    r.register(Box::new(h.clone()))
        .expect("metric registered once");
    h
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        Self {
            ingress_requests: counter(
                &r,
                "hookbridge_ingress_requests_total",
                "Webhook requests by connector and HTTP status.",
                &["connector", "status"],
            ),
            ingress_accepted: counter(
                &r,
                "hookbridge_ingress_accepted_total",
                "Webhooks acknowledged by the broker, by connector and event type.",
                &["connector", "event_type"],
            ),
            signature_failures: counter(
                &r,
                "hookbridge_signature_failures_total",
                "Rejected webhook signatures by connector and reason.",
                &["connector", "reason"],
            ),
            produce_latency: histogram(
                &r,
                "hookbridge_produce_latency_seconds",
                "Time from produce to broker acknowledgement.",
                &["connector"],
            ),
            deliveries: counter(
                &r,
                "hookbridge_deliveries_total",
                "Finished records by connector and outcome.",
                &["connector", "outcome"],
            ),
            attempts: counter(
                &r,
                "hookbridge_delivery_attempts_total",
                "HTTP delivery attempts by connector and result.",
                &["connector", "result"],
            ),
            retries: counter(
                &r,
                "hookbridge_delivery_retries_total",
                "Delivery attempts that will be retried.",
                &["connector"],
            ),
            dlq_writes: counter(
                &r,
                "hookbridge_dlq_writes_total",
                "Records written to the dead-letter topic.",
                &["connector", "reason"],
            ),
            delivery_latency: histogram(
                &r,
                "hookbridge_delivery_latency_seconds",
                "Duration of one HTTP delivery attempt.",
                &["connector"],
            ),
            batch_records: histogram_with(
                &r,
                "hookbridge_batch_records",
                "Records per batch request sent; its count is the batches sent.",
                &["connector"],
                vec![
                    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0, 10000.0,
                ],
            ),
            in_flight: gauge(
                &r,
                "hookbridge_deliveries_in_flight",
                "HTTP requests to the destination in progress.",
                &["connector"],
            ),
            buffered: gauge(
                &r,
                "hookbridge_buffered_records",
                "Records received and not yet finished.",
                &["connector"],
            ),
            paused_partitions: gauge(
                &r,
                "hookbridge_paused_partitions",
                "Partitions paused by back-pressure or an open breaker.",
                &["connector"],
            ),
            consumer_lag: gauge(
                &r,
                "hookbridge_consumer_lag",
                "High watermark minus committed offset.",
                &["connector", "topic", "partition"],
            ),
            breaker_state: gauge(
                &r,
                "hookbridge_breaker_state",
                "Circuit breaker: 0 closed, 1 open, 2 half-open.",
                &["connector"],
            ),
            finished_above_watermark: gauge(
                &r,
                "hookbridge_finished_above_watermark",
                "Finished records above the committed offset, kept in the commit metadata.",
                &["connector"],
            ),
            commit_metadata_bytes: gauge(
                &r,
                "hookbridge_commit_metadata_bytes",
                "Largest finished-offset map written with the last commit.",
                &["connector"],
            ),
            skipped_on_resume: counter(
                &r,
                "hookbridge_skipped_on_resume_total",
                "Records not delivered again after an assignment: finished per the commit metadata.",
                &["connector"],
            ),
            refetched_records: counter(
                &r,
                "hookbridge_refetched_records_total",
                "Records fetched again: polled while their partition was paused past what a pause holds, or stale copies of a rewind.",
                &["connector"],
            ),
            lossy_header_names: counter(
                &r,
                "hookbridge_lossy_header_names_total",
                "Consumed header names that were not UTF-8; invalid bytes read as U+FFFD.",
                &["connector"],
            ),
            consumer_errors: counter(
                &r,
                "hookbridge_consumer_errors_total",
                "Errors a sink's consumer polled (each written to the log at most once per kind per 30 s).",
                &["connector"],
            ),
            dlq_write_failures: counter(
                &r,
                "hookbridge_dlq_write_failures_total",
                "Failed dead-letter writes by connector and error class (too_large, unknown_topic, not_authorized, timeout, other).",
                &["connector", "error"],
            ),
            dlq_truncated: counter(
                &r,
                "hookbridge_dlq_truncated_total",
                "Dead letters written cut (marked hookbridge-dlq-truncated) because the whole record did not fit.",
                &["connector"],
            ),
            commit_failures: counter(
                &r,
                "hookbridge_commit_failures_total",
                "Offset commits that failed or could not be queued; the next commit repeats them.",
                &["connector"],
            ),
            buffered_bytes: {
                let g = prometheus::IntGauge::new(
                    "hookbridge_buffered_bytes",
                    "Bytes of records held by egress (received, not finished), all sinks together.",
                )
                .expect("valid metric definition");
                r.register(Box::new(g.clone()))
                    .expect("metric registered once");
                g
            },
            jq_worker_restarts: counter(
                &r,
                "hookbridge_jq_worker_restarts_total",
                "A sink's jq worker processes replaced (timeout, crashed, given-up, exited, killed) or that could not be started (spawn-failed).",
                &["connector", "reason"],
            ),
            token_failures: counter(
                &r,
                "hookbridge_oauth2_token_failures_total",
                "Failed OAuth2 token requests of a sink, by class; each is retried with backoff.",
                &["connector", "class"],
            ),
            registry: r,
            recent_failures: RecentFailures::default(),
            event_catalog: EventCatalog::default(),
        }
    }

    /// Every metric's current samples: what [`Metrics::render`] writes, for the console.
    pub fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
