//! Ingress: webhooks in, verified over their raw bytes, produced to Kafka, and answered
//! 2xx only after the broker acknowledged the record.

pub mod body;
pub mod client_limit;
pub mod handler;
pub mod keys;
pub mod replay;
pub mod response;

pub use handler::{app, Ingress, Protection};
