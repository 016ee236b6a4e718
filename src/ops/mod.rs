//! Operator commands that act on Kafka state: `dlq redrive` and `replay`.

pub mod redrive;
pub mod replay;

use std::time::Duration;

use anyhow::{anyhow, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::config::load::Loaded;
use crate::kafka;

/// A plain consumer for operator commands, in `group`, not subscribed.
pub fn consumer(loaded: &Loaded, group: &str) -> anyhow::Result<BaseConsumer> {
    let props = loaded
        .settings
        .kafka
        .resolved_properties(&loaded.file_label())?;
    let mut cfg = kafka::client_config(&loaded.settings.kafka, &props, kafka::CONSUMER_DEFAULTS);
    cfg.set("group.id", group);
    cfg.create().context("creating a Kafka consumer")
}

/// Partition numbers of `topic`.
pub fn partitions(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<Vec<i32>> {
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("fetching metadata for topic {topic}"))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| anyhow!("topic {topic} not found"))?;
    if let Some(err) = t.error() {
        return Err(anyhow!("topic {topic}: {err:?}"));
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}
