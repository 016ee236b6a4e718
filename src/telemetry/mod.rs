//! Telemetry: the Prometheus registry with every `hookbridge_` metric, per-sink handles
//! and typed events (the data path's in `sink`, the consumer control plane's in
//! `control`), readiness, W3C trace context, log setup, and what the operator console
//! shows beside the metrics: the recent failures per sink and the event catalog per
//! source.

#[cfg(test)]
pub(crate) mod captured;
pub(crate) mod catalog;
pub(crate) mod control;
pub(crate) mod failures;
pub(crate) mod health;
pub mod logging;
pub(crate) mod metrics;
pub(crate) mod repeats;
pub(crate) mod reports;
pub(crate) mod sink;
pub(crate) mod source;
pub mod trace;

pub use health::Health;
pub use metrics::Metrics;
pub use sink::SinkTelemetry;
