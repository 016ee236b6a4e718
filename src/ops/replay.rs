//! `hookbridge replay --connector NAME --from TIME`: moves a sink's consumer group back to
//! the first offset at or after TIME on every partition, so those records are delivered
//! again. Refuses while the group has live members, whose commits would overwrite it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::load::Loaded;
use crate::connectors::Connectors;

/// `--from`: an RFC 3339 time (`2026-11-22T08:00:00Z`) or a duration ago (`2h`).
pub fn parse_from(text: &str) -> anyhow::Result<SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(t);
    }
    let ago = humantime::parse_duration(text).map_err(|_| {
        anyhow!("--from {text:?}: expected an RFC 3339 time or a duration such as 2h")
    })?;
    SystemTime::now()
        .checked_sub(ago)
        .ok_or_else(|| anyhow!("--from {text:?} is too far back"))
}

/// Rewinds the sink's group. Prints one line per partition.
pub fn replay(
    loaded: &Loaded,
    connectors: &Connectors,
    name: &str,
    from: SystemTime,
) -> anyhow::Result<()> {
    let sink = connectors
        .sink(name)
        .ok_or_else(|| anyhow!("no sink connector named {name:?}"))?;
    let consumer = super::consumer(loaded, &sink.group_id)?;
    let groups = consumer
        .fetch_group_list(Some(&sink.group_id), Duration::from_secs(10))
        .context("listing the consumer group")?;
    if let Some(g) = groups.groups().iter().find(|g| !g.members().is_empty()) {
        bail!(
            "consumer group {} has {} live member(s); stop the hookbridge processes running sink {name:?} (scale to 0), then replay",
            g.name(),
            g.members().len()
        );
    }
    let ms = from
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut query = TopicPartitionList::new();
    for topic in &sink.topics {
        for p in super::partitions(&consumer, topic)? {
            query.add_partition_offset(topic, p, Offset::Offset(ms))?;
        }
    }
    let found = consumer
        .offsets_for_times(query, Duration::from_secs(10))
        .context("looking up offsets for the time")?;
    let mut commit = TopicPartitionList::new();
    for e in found.elements() {
        match e.offset() {
            Offset::Offset(o) => {
                println!("{} [{}] → offset {o}", e.topic(), e.partition());
                commit.add_partition_offset(e.topic(), e.partition(), Offset::Offset(o))?;
            }
            _ => println!(
                "{} [{}] has no record after that time; unchanged",
                e.topic(),
                e.partition()
            ),
        }
    }
    if commit.count() > 0 {
        consumer
            .commit(&commit, CommitMode::Sync)
            .context("committing the rewound offsets")?;
    }
    println!(
        "group {} rewound on {} partition(s); start the sink to re-deliver",
        sink.group_id,
        commit.count()
    );
    Ok(())
}
