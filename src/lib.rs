//! hookbridge: a Kafka ⇄ webhook bridge.
//!
//! * `ingress`: webhooks in, verified ([`verify`]) and produced to Kafka; answered 2xx
//!   only after the broker acknowledged the record.
//! * [`egress`]: Kafka records out to HTTP destinations; offsets committed only up to the
//!   contiguous watermark of finished (delivered or dead-lettered) records.
//!
//! The binary (`src/main.rs`) wires these together from [`config`] and [`connectors`].
//!
//! Modules are `pub` only where the binary, the benches or the bench examples name them;
//! everything else is `pub(crate)`, so the compiler reports what nobody uses.

pub(crate) mod admin;
pub mod check;
pub mod cli;
pub mod config;
pub mod connectors;
pub(crate) mod console;
pub mod egress;
pub(crate) mod ingress;
pub mod kafka;
pub mod ops;
pub mod run;
pub mod send;
pub mod shutdown;
pub(crate) mod signature;
pub mod telemetry;
pub mod verify;
