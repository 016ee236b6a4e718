//! A sink connector: Kafka topics consumed by one group and POSTed to one HTTP
//! destination with its own retry policy, rate limit, signing and dead-letter topic.
//!
//! The file is read into the serde types of [`config`]; then two phases:
//! [`SinkConfig::validate`] ([`definition`]) checks the values into a
//! [`definition::SinkDefinition`] without touching the environment or files;
//! [`definition::SinkDefinition::build`] ([`build`]) resolves the secrets (header values,
//! `auth`, the signing key) and the `tls` files into a [`Sink`].

mod build;
mod config;
mod definition;
#[cfg(test)]
mod tests;

pub use build::{Credentials, Sink};
pub use config::{
    AuthConfig, BatchFormat, BatchItems, ClientAuth, Format, Ordering, RetryConfig, SinkConfig,
    Tombstones,
};
pub use definition::{carries_credentials, is_framing, HeaderPattern};
