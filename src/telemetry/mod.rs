//! Telemetry: the Prometheus registry with every `hookbridge_` metric, per-sink handles
//! and typed events, and log setup.

pub mod logging;
pub mod metrics;
pub mod sink;

pub use metrics::Metrics;
