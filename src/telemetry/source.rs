//! One source's telemetry handle: its metrics resolved once, at start, so a webhook bumps
//! plain atomics instead of looking labels up per request; and the typed events the
//! ingress path emits, each of which counts itself and logs its one line.

use std::fmt::Display;
use std::net::IpAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use prometheus::{Histogram, IntCounter};

use super::catalog::{Bucket, SourceCatalog};
use super::reports::Reports;
use super::Metrics;

/// Statuses a webhook is commonly answered with; others (a provider handshake's own
/// status) are looked up when they happen.
const ANSWERS: [StatusCode; 8] = [
    StatusCode::OK,
    StatusCode::BAD_REQUEST,
    StatusCode::UNAUTHORIZED,
    StatusCode::METHOD_NOT_ALLOWED,
    StatusCode::REQUEST_TIMEOUT,
    StatusCode::PAYLOAD_TOO_LARGE,
    StatusCode::TOO_MANY_REQUESTS,
    StatusCode::SERVICE_UNAVAILABLE,
];

/// The metrics of one source, labels resolved.
pub struct SourceTelemetry {
    name: Arc<str>,
    metrics: Arc<Metrics>,
    answers: [IntCounter; ANSWERS.len()],
    produce_latency: Histogram,
    catalog: Arc<SourceCatalog>,
    /// Produce failures are written once per kind per window: during a broker outage
    /// every webhook fails alike, and a line per request said the same thing thousands
    /// of times.
    produce_failures: Reports,
}

impl SourceTelemetry {
    pub fn new(name: Arc<str>, metrics: Arc<Metrics>) -> Self {
        let n: &str = &name;
        let m = &metrics;
        Self {
            answers: ANSWERS.map(|s| m.ingress_requests.with_label_values(&[n, s.as_str()])),
            produce_latency: m.produce_latency.with_label_values(&[n]),
            catalog: m.event_catalog.of(&name),
            metrics: metrics.clone(),
            name,
            produce_failures: Reports::default(),
        }
    }
}

/// The sender got its answer (any status).
pub struct WebhookAnswered {
    pub status: StatusCode,
}

impl WebhookAnswered {
    pub fn emit(&self, t: &SourceTelemetry) {
        match ANSWERS.iter().position(|s| *s == self.status) {
            Some(i) => t.answers[i].inc(),
            None => t
                .metrics
                .ingress_requests
                .with_label_values(&[&t.name, self.status.as_str()])
                .inc(),
        }
    }
}

/// The signature did not verify; the request is answered 401 (or 429 once the client's
/// address has spent its budget).
pub struct WebhookRejected {
    pub reason: &'static str,
    pub client: IpAddr,
}

impl WebhookRejected {
    pub fn emit(&self, t: &SourceTelemetry) {
        // The reasons are a closed set in verify/, but rare: looked up when they happen.
        t.metrics
            .signature_failures
            .with_label_values(&[&t.name, self.reason])
            .inc();
        tracing::info!(source = %t.name, reason = self.reason, client = %self.client,
            "webhook signature rejected");
    }
}

/// The broker acknowledged the webhook's record.
pub struct WebhookAccepted<'a> {
    /// From handing the record to the producer to the acknowledgement.
    pub produce_seconds: f64,
    /// The webhook's event type, for the source's event catalog; `None` when the source
    /// reads none (then the catalog is not kept) or the rule found none.
    pub event_type: Option<&'a [u8]>,
    /// Whether the source has an `event_type` rule.
    pub typed: bool,
}

impl WebhookAccepted<'_> {
    pub fn emit(&self, t: &SourceTelemetry) {
        t.produce_latency.observe(self.produce_seconds);
        // The catalog owns the cap on distinct types; the label follows its bucket.
        let bucket = if self.typed {
            t.catalog.seen(self.event_type)
        } else {
            Bucket::Untyped
        };
        let event_type: &str = match &bucket {
            Bucket::Type(name, true) => name,
            Bucket::Type(_, false) | Bucket::Other => "other",
            Bucket::Untyped => "",
        };
        t.metrics
            .ingress_accepted
            .with_label_values(&[&t.name, event_type])
            .inc();
    }
}

/// The broker refused the record, or did not acknowledge it in time; the sender gets a
/// 503 and retries.
pub enum ProduceFailed<'a> {
    Refused {
        topic: &'a str,
        error: &'a dyn Display,
    },
    TimedOut {
        topic: &'a str,
    },
}

impl ProduceFailed<'_> {
    /// Logged at most once per kind (the topic, and the broker's error) per window, with
    /// how many like it were held back since; the answers are counted per request.
    pub fn emit(&self, t: &SourceTelemetry) {
        match self {
            ProduceFailed::Refused { topic, error } => {
                let kind = format!("refused {topic} {error}");
                if let Some(held_back) = t.produce_failures.admit(&kind) {
                    tracing::warn!(source = %t.name, topic = %topic, error = %error, held_back,
                        "Kafka did not acknowledge the webhook");
                }
            }
            ProduceFailed::TimedOut { topic } => {
                let kind = format!("timed out {topic}");
                if let Some(held_back) = t.produce_failures.admit(&kind) {
                    tracing::warn!(source = %t.name, topic = %topic, held_back,
                        "Kafka acknowledgement timed out");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(metrics: &Metrics, starts: &str) -> Option<String> {
        metrics
            .render()
            .lines()
            .find(|l| l.starts_with(starts))
            .map(str::to_owned)
    }

    /// During a broker outage every webhook fails alike: one line per kind (its topic,
    /// the broker's error) per window, not one per request.
    #[test]
    fn produce_failures_are_written_once_per_kind_per_window() {
        let t = SourceTelemetry::new("gh".into(), Arc::new(Metrics::new()));
        let captured = crate::telemetry::captured::Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(captured.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..50 {
                ProduceFailed::TimedOut { topic: "a" }.emit(&t);
                ProduceFailed::TimedOut { topic: "b" }.emit(&t);
                let error = "Broker: Not enough in-sync replicas";
                ProduceFailed::Refused {
                    topic: "a",
                    error: &error,
                }
                .emit(&t);
            }
        });
        let text = captured.text();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert_eq!(text.matches("Kafka acknowledgement timed out").count(), 2);
        assert_eq!(
            text.matches("Kafka did not acknowledge the webhook")
                .count(),
            1
        );
    }

    #[test]
    fn events_count_under_the_source_label() {
        let metrics = Arc::new(Metrics::new());
        let t = SourceTelemetry::new("gh".into(), metrics.clone());
        WebhookAnswered {
            status: StatusCode::OK,
        }
        .emit(&t);
        WebhookAnswered {
            status: StatusCode::ACCEPTED,
        }
        .emit(&t);
        WebhookRejected {
            reason: "mismatch",
            client: IpAddr::from([127, 0, 0, 1]),
        }
        .emit(&t);
        WebhookAccepted {
            produce_seconds: 0.002,
            event_type: Some(b"push"),
            typed: true,
        }
        .emit(&t);
        assert_eq!(metrics.event_catalog.snapshot("gh").types[0].1.count, 1);
        let ok = r#"hookbridge_ingress_requests_total{connector="gh",status="200"} 1"#;
        let handshake = r#"hookbridge_ingress_requests_total{connector="gh",status="202"} 1"#;
        assert_eq!(line(&metrics, ok).as_deref(), Some(ok));
        assert_eq!(line(&metrics, handshake).as_deref(), Some(handshake));
        let rejected = r#"hookbridge_signature_failures_total{connector="gh",reason="mismatch"} 1"#;
        assert_eq!(line(&metrics, rejected).as_deref(), Some(rejected));
        let count = r#"hookbridge_produce_latency_seconds_count{connector="gh"} 1"#;
        assert_eq!(line(&metrics, count).as_deref(), Some(count));
        let accepted = r#"hookbridge_ingress_accepted_total{connector="gh",event_type="push"} 1"#;
        assert_eq!(line(&metrics, accepted).as_deref(), Some(accepted));
    }

    /// Past the metric's cap, new types are counted as `other`: a sender inventing types
    /// adds at most MAX_LABELLED_TYPES series; a source without a rule counts under no type.
    #[test]
    fn accepted_webhooks_are_labelled_by_capped_event_type() {
        let metrics = Arc::new(Metrics::new());
        let t = SourceTelemetry::new("gh".into(), metrics.clone());
        let accept = |event_type: Option<&[u8]>, typed: bool| {
            WebhookAccepted {
                produce_seconds: 0.001,
                event_type,
                typed,
            }
            .emit(&t)
        };
        for n in 0..super::super::catalog::MAX_TYPES + 3 {
            accept(Some(format!("t{n}").as_bytes()), true);
        }
        accept(Some(b"t0"), true);
        accept(None, true);
        accept(None, false);
        let text = metrics.render();
        let series = text
            .lines()
            .filter(|l| l.starts_with("hookbridge_ingress_accepted_total{"))
            .count();
        assert_eq!(
            series,
            super::super::catalog::MAX_LABELLED_TYPES + 2,
            "the first types seen, other, none"
        );
        let past_labels =
            super::super::catalog::MAX_TYPES - super::super::catalog::MAX_LABELLED_TYPES;
        let other = format!(
            r#"hookbridge_ingress_accepted_total{{connector="gh",event_type="other"}} {}"#,
            past_labels + 3
        );
        for want in [
            r#"hookbridge_ingress_accepted_total{connector="gh",event_type="t0"} 2"#,
            &other,
            r#"hookbridge_ingress_accepted_total{connector="gh",event_type=""} 2"#,
        ] {
            assert!(text.lines().any(|l| l == want), "{want} missing");
        }
    }
}
