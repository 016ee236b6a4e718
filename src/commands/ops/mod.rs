//! Operator commands on Kafka state: `dlq redrive`, `dlq list`/`dlq show` and `replay`.

pub(crate) mod dlq_read;
pub(crate) mod escape;
pub mod inspect;
pub mod redrive;
pub mod replay;

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::config::load::Loaded;
use crate::config::ConfigError;
use crate::connectors::{Connectors, Sink};
use crate::kafka;

/// Why an operator command stopped. Each message says what to do where it can.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no sink connector named {0:?}")]
    NoSink(String),
    #[error("sink {0:?} has no dlq configured")]
    NoDlq(String),
    /// What the operator gave cannot be used (a time, a reason, a selection): nothing
    /// was done.
    #[error("{0}")]
    Invalid(String),
    /// What the operator asked for conflicts with the state of the sink or the DLQ
    /// (already redriven, live group members, another action running), or was stopped
    /// before it finished.
    #[error("{0}")]
    Refused(String),
    /// The broker did not answer in time.
    #[error("{0}")]
    NoAnswer(String),
    /// What the operator asked for is not there (`dlq show` of a missing offset).
    #[error("{0}")]
    NotFound(String),
    #[error("topic {0} not found")]
    NoTopic(String),
    /// The Kafka error is in the message and not linked as its source: an operator
    /// command prints an error with its causes, and each would print it again.
    #[error("{what}: {error}")]
    Kafka { what: String, error: KafkaError },
    /// With the client error's causes (a TLS library's reason is among them), in the
    /// message for the same reason.
    #[error("creating the HTTP client: {}", crate::egress::client::causes(.0))]
    Client(reqwest::Error),
}

impl From<reqwest::Error> for OpsError {
    fn from(e: reqwest::Error) -> Self {
        OpsError::Client(e)
    }
}

/// Attaches what was being done to a Kafka error.
pub(crate) trait KafkaContext<T> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T, OpsError>;
}

impl<T> KafkaContext<T> for Result<T, KafkaError> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T, OpsError> {
        self.map_err(|error| OpsError::Kafka {
            what: what(),
            error,
        })
    }
}

/// The sink connector named `name`.
pub(crate) fn sink<'a>(connectors: &'a Connectors, name: &str) -> Result<&'a Sink, OpsError> {
    connectors
        .sink(name)
        .ok_or_else(|| OpsError::NoSink(name.to_owned()))
}

/// A plain consumer for operator commands, in `group`, not subscribed. `extra` overrides
/// the sink consumer defaults.
pub(crate) fn consumer(
    loaded: &Loaded,
    group: &str,
    extra: &[(&str, &str)],
) -> Result<BaseConsumer, OpsError> {
    consumer_config(loaded, group, extra)?
        .create()
        .doing(|| "creating a Kafka consumer".into())
}

/// The configuration of [`consumer`], for a consumer with a context of its own.
pub(crate) fn consumer_config(
    loaded: &Loaded,
    group: &str,
    extra: &[(&str, &str)],
) -> Result<ClientConfig, OpsError> {
    let props = loaded
        .settings
        .kafka
        .resolved_properties(&loaded.file_label())?;
    let mut cfg = kafka::client_config(&loaded.settings.kafka, &props, kafka::CONSUMER_DEFAULTS);
    cfg.set("group.id", group);
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    Ok(cfg)
}

/// Partition numbers of `topic`.
pub(crate) fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, OpsError> {
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .doing(|| format!("fetching metadata for topic {topic}"))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| OpsError::NoTopic(topic.to_owned()))?;
    if let Some(err) = t.error() {
        // The broker lists a topic it does not have with this error, not by leaving it
        // out (a DLQ topic no record was dead-lettered to yet).
        let code = RDKafkaErrorCode::from(err);
        if matches!(
            code,
            RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic
        ) {
            return Err(OpsError::NoTopic(topic.to_owned()));
        }
        return Err(OpsError::Kafka {
            what: format!("topic {topic}"),
            error: KafkaError::MetadataFetch(err.into()),
        });
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaErrorCode;

    #[test]
    fn a_kafka_error_is_printed_once_with_what_was_being_done() {
        let e = OpsError::Kafka {
            what: "topic orders.dlq".into(),
            error: KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition),
        };
        // What the console shows, and what an operator command prints with the causes.
        let plain = e.to_string();
        let chained = format!("{:#}", anyhow::Error::from(e));
        for text in [plain, chained] {
            assert!(text.starts_with("topic orders.dlq: "), "{text}");
            assert_eq!(
                text.matches("Unknown topic or partition").count(),
                1,
                "{text}"
            );
        }
    }
}
