//! Telemetry: the Prometheus registry with every `hookbridge_` metric, and log setup.

pub mod logging;
pub mod metrics;

pub use metrics::Metrics;
