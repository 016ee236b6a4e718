//! The console's live figures per source and sink, read from the same `Metrics` registry
//! that `/metrics` renders, so the page and Prometheus always agree. Metric names come
//! from the registry's own descriptors, not from copies here.

use std::collections::BTreeMap;

use prometheus::core::Collector;
use prometheus::proto::{Metric, MetricFamily};
use serde::Serialize;

use crate::telemetry::Metrics;

/// One sink's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SinkFigures {
    pub delivered: u64,
    pub dead_lettered: u64,
    /// HTTP attempts, and those answered 2xx.
    pub attempts: u64,
    pub attempts_ok: u64,
    pub retries: u64,
    pub dlq_writes: u64,
    pub in_flight: i64,
    pub buffered: i64,
    pub paused_partitions: i64,
    /// `closed`, `open` or `half-open`.
    pub breaker: &'static str,
    /// Lag per `topic [partition]`.
    pub lag: BTreeMap<String, i64>,
    pub lag_total: i64,
    /// Attempt latency quantiles in seconds (bucket upper bounds); `None` before any.
    pub p50_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
}

/// One source's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceFigures {
    pub requests: u64,
    /// Requests answered 2xx: in Kafka.
    pub accepted: u64,
    /// Signature failures by reason.
    pub signature_failures: BTreeMap<String, u64>,
    pub produce_p99_seconds: Option<f64>,
}

/// Every configured connector's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overview {
    pub sources: BTreeMap<String, SourceFigures>,
    pub sinks: BTreeMap<String, SinkFigures>,
}

/// The figures of the named sources and sinks now.
pub fn overview(metrics: &Metrics, sources: &[String], sinks: &[String]) -> Overview {
    let mut o = Overview {
        sources: sources
            .iter()
            .map(|s| (s.clone(), SourceFigures::default()))
            .collect(),
        sinks: sinks
            .iter()
            .map(|s| {
                (
                    s.clone(),
                    SinkFigures {
                        breaker: "closed",
                        ..SinkFigures::default()
                    },
                )
            })
            .collect(),
    };
    let families = metrics.gather();
    let of = |c: &dyn Collector| -> Option<&MetricFamily> {
        let name = &c.desc().first()?.fq_name;
        families.iter().find(|f| f.name() == name)
    };
    let each = |c: &dyn Collector, f: &mut dyn FnMut(&str, &Metric)| {
        if let Some(fam) = of(c) {
            for m in fam.get_metric() {
                if let Some(conn) = label(m, "connector") {
                    f(conn, m);
                }
            }
        }
    };
    let counter = |m: &Metric| m.get_counter().get_value() as u64;
    let gauge = |m: &Metric| m.get_gauge().get_value() as i64;

    each(&metrics.deliveries, &mut |c, m| {
        if let Some(s) = o.sinks.get_mut(c) {
            match label(m, "outcome") {
                Some("delivered") => s.delivered += counter(m),
                Some("dead_lettered") => s.dead_lettered += counter(m),
                _ => {}
            }
        }
    });
    each(&metrics.attempts, &mut |c, m| {
        if let Some(s) = o.sinks.get_mut(c) {
            s.attempts += counter(m);
            if label(m, "result") == Some("2xx") {
                s.attempts_ok += counter(m);
            }
        }
    });
    each(&metrics.retries, &mut |c, m| {
        if let Some(s) = o.sinks.get_mut(c) {
            s.retries += counter(m);
        }
    });
    each(&metrics.dlq_writes, &mut |c, m| {
        if let Some(s) = o.sinks.get_mut(c) {
            s.dlq_writes += counter(m);
        }
    });
    each(&metrics.in_flight, &mut |c, m| {
        if let Some(s) = o.sinks.get_mut(c) {
            s.in_flight = gauge(m);
        }
    });
    each(&metrics.buffered, &mut |c, m| {
        if let Some(s) = o.sinks.get_mut(c) {
            s.buffered = gauge(m);
        }
    });
    each(&metrics.paused_partitions, &mut |c, m| {
        if let Some(s) = o.sinks.get_mut(c) {
            s.paused_partitions = gauge(m);
        }
    });
    each(&metrics.breaker_state, &mut |c, m| {
        if let Some(s) = o.sinks.get_mut(c) {
            s.breaker = match gauge(m) {
                1 => "open",
                2 => "half-open",
                _ => "closed",
            };
        }
    });
    each(&metrics.consumer_lag, &mut |c, m| {
        if let Some(s) = o.sinks.get_mut(c) {
            let at = format!(
                "{} [{}]",
                label(m, "topic").unwrap_or("?"),
                label(m, "partition").unwrap_or("?")
            );
            s.lag.insert(at, gauge(m));
            s.lag_total = s.lag.values().sum();
        }
    });
    each(&metrics.delivery_latency, &mut |c, m| {
        if let Some(s) = o.sinks.get_mut(c) {
            s.p50_seconds = quantile(m, 0.5);
            s.p99_seconds = quantile(m, 0.99);
        }
    });
    each(&metrics.ingress_requests, &mut |c, m| {
        if let Some(s) = o.sources.get_mut(c) {
            s.requests += counter(m);
            if label(m, "status").is_some_and(|st| st.starts_with('2')) {
                s.accepted += counter(m);
            }
        }
    });
    each(&metrics.signature_failures, &mut |c, m| {
        if let Some(s) = o.sources.get_mut(c) {
            let reason = label(m, "reason").unwrap_or("?").to_owned();
            *s.signature_failures.entry(reason).or_default() += counter(m);
        }
    });
    each(&metrics.produce_latency, &mut |c, m| {
        if let Some(s) = o.sources.get_mut(c) {
            s.produce_p99_seconds = quantile(m, 0.99);
        }
    });
    o
}

fn label<'m>(m: &'m Metric, name: &str) -> Option<&'m str> {
    m.get_label()
        .iter()
        .find(|l| l.name() == name)
        .map(|l| l.value())
}

/// The upper bound of the bucket holding quantile `q`; the largest bound when it lies
/// beyond every bucket; `None` without samples.
fn quantile(m: &Metric, q: f64) -> Option<f64> {
    let h = m.get_histogram();
    let count = h.get_sample_count();
    if count == 0 {
        return None;
    }
    let rank = (q * count as f64).ceil() as u64;
    let buckets = h.get_bucket();
    buckets
        .iter()
        .find(|b| b.cumulative_count() >= rank)
        .or(buckets.last())
        .map(|b| b.upper_bound())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_the_registry_values() {
        let metrics = Metrics::new();
        metrics
            .deliveries
            .with_label_values(&["orders", "delivered"])
            .inc_by(7);
        metrics
            .deliveries
            .with_label_values(&["orders", "dead_lettered"])
            .inc();
        metrics
            .attempts
            .with_label_values(&["orders", "2xx"])
            .inc_by(7);
        metrics
            .attempts
            .with_label_values(&["orders", "5xx"])
            .inc_by(3);
        metrics.breaker_state.with_label_values(&["orders"]).set(1);
        metrics
            .consumer_lag
            .with_label_values(&["orders", "t", "0"])
            .set(4);
        metrics
            .consumer_lag
            .with_label_values(&["orders", "t", "1"])
            .set(5);
        for _ in 0..99 {
            metrics
                .delivery_latency
                .with_label_values(&["orders"])
                .observe(0.003);
        }
        metrics
            .delivery_latency
            .with_label_values(&["orders"])
            .observe(3.0);
        metrics
            .ingress_requests
            .with_label_values(&["github", "200"])
            .inc_by(2);
        metrics
            .ingress_requests
            .with_label_values(&["github", "401"])
            .inc();
        metrics
            .signature_failures
            .with_label_values(&["github", "mismatch"])
            .inc();
        metrics
            .deliveries
            .with_label_values(&["unknown", "delivered"])
            .inc();

        let o = overview(&metrics, &["github".into()], &["orders".into()]);
        let s = &o.sinks["orders"];
        assert_eq!((s.delivered, s.dead_lettered), (7, 1));
        assert_eq!((s.attempts, s.attempts_ok), (10, 7));
        assert_eq!(s.breaker, "open");
        assert_eq!(s.lag_total, 9);
        assert_eq!(s.p50_seconds, Some(0.005));
        assert_eq!(s.p99_seconds, Some(0.005));
        let g = &o.sources["github"];
        assert_eq!((g.requests, g.accepted), (3, 2));
        assert_eq!(g.signature_failures["mismatch"], 1);
        assert_eq!(o.sinks.len(), 1, "only configured connectors");
    }
}
