//! Telemetry: the Prometheus registry with every `hookbridge_` metric, per-sink handles
//! and typed events, readiness, W3C trace context, and log setup.

pub mod health;
pub mod logging;
pub mod metrics;
pub mod sink;
pub mod source;
pub mod trace;

pub use health::Health;
pub use metrics::Metrics;
