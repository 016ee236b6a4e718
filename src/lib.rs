//! hookbridge: a Kafka ⇄ webhook bridge.
//!
//! * `ingress`: webhooks in, verified ([`verify`]) and produced to Kafka; answered 2xx
//!   only after the broker acknowledged the record.
//! * [`egress`]: Kafka records out to HTTP destinations; offsets committed only up to the
//!   contiguous watermark of finished (delivered or dead-lettered) records.
//! * `http`: the listener both ports stand on (connection limits, TLS, per-address
//!   shares), below `ingress` and the admin listener.
//!
//! The binary (`src/main.rs`) dispatches to [`commands`], which wire these together from
//! [`config`] and [`connectors`].
//!
//! Modules are `pub` only where the binary, the benches or the bench examples name them;
//! everything else is `pub(crate)`, so the compiler reports what nobody uses.

pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod connectors;
pub mod egress;
pub(crate) mod http;
pub(crate) mod ingress;
pub mod kafka;
pub mod shutdown;
pub(crate) mod signature;
pub mod telemetry;
pub mod verify;
