//! Operator commands on Kafka state: `dlq redrive`, `dlq list`/`dlq show` and `replay`.

pub(crate) mod dlq_read;
pub(crate) mod escape;
pub mod inspect;
pub mod redrive;
pub mod replay;

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;

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
    #[error("{0}")]
    Refused(String),
    /// What the operator asked for is not there (`dlq show` of a missing offset).
    #[error("{0}")]
    NotFound(String),
    #[error("topic {0} not found")]
    NoTopic(String),
    #[error("{what}: {source}")]
    Kafka {
        what: String,
        #[source]
        source: KafkaError,
    },
    #[error("creating the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Attaches what was being done to a Kafka error.
pub(crate) trait KafkaContext<T> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T, OpsError>;
}

impl<T> KafkaContext<T> for Result<T, KafkaError> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T, OpsError> {
        self.map_err(|source| OpsError::Kafka {
            what: what(),
            source,
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
    let props = loaded
        .settings
        .kafka
        .resolved_properties(&loaded.file_label())?;
    let mut cfg = kafka::client_config(&loaded.settings.kafka, &props, kafka::CONSUMER_DEFAULTS);
    cfg.set("group.id", group);
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().doing(|| "creating a Kafka consumer".into())
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
        return Err(OpsError::Kafka {
            what: format!("topic {topic}"),
            source: KafkaError::MetadataFetch(err.into()),
        });
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}
