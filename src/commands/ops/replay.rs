//! `hookbridge replay --connector NAME --from TIME`: moves a sink's consumer group back to
//! the first offset at or after TIME on every partition, so those records are delivered
//! again. It only ever moves a group back (or leaves it): a target past where the group
//! would resume would skip records that were never delivered, so the whole replay is
//! refused and nothing changes. Also refused while the group has live members, whose
//! commits would overwrite it.

use std::time::{Duration, SystemTime};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{KafkaContext, OpsError};
use crate::config::load::Loaded;
use crate::connectors::{Connectors, Sink};

/// `--from`: an RFC 3339 time (`2026-11-22T08:00:00Z`) or a duration ago (`2h`).
pub fn parse_from(text: &str) -> Result<SystemTime, OpsError> {
    parse_time("--from", text)
}

/// A point in time given as option `option`: an RFC 3339 time or a duration ago; the
/// error names the option.
pub fn parse_time(option: &str, text: &str) -> Result<SystemTime, OpsError> {
    if let Some(t) = crate::clock::parse_rfc3339(text) {
        return Ok(t);
    }
    let ago = humantime::parse_duration(text).map_err(|_| {
        OpsError::Invalid(format!(
            "{option} {text:?}: expected an RFC 3339 time or a duration such as 2h"
        ))
    })?;
    SystemTime::now()
        .checked_sub(ago)
        .ok_or_else(|| OpsError::Invalid(format!("{option} {text:?} is too far back")))
}

/// One partition's move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    /// Where the group resumes today: its committed offset, or the log start when it has
    /// none (or the committed records were deleted by retention).
    pub resume: i64,
    /// First offset at or after `--from`; `None` when no record is that recent.
    pub target: Option<i64>,
}

impl Move {
    /// Undelivered records this move would skip.
    pub fn skipped(&self) -> i64 {
        self.target.map_or(0, |t| (t - self.resume).max(0))
    }

    /// Records this move would deliver again.
    pub fn again(&self) -> i64 {
        self.target.map_or(0, |t| (self.resume - t).max(0))
    }
}

/// The sink, when a replay can move its group: not one that reads topics by pattern.
fn replayable<'c>(connectors: &'c Connectors, name: &str) -> Result<&'c Sink, OpsError> {
    let sink = super::sink(connectors, name)?;
    // Which topics a pattern names is the broker's subscription's answer (librdkafka's
    // regular expressions, over metadata that changes): matched here by another engine,
    // a replay could move a different set than the sink reads. Refused, naming the way.
    if let Some(pattern) = sink.topics.iter().find(|t| t.starts_with('^')) {
        return Err(OpsError::Invalid(format!(
            "sink {:?} reads topics by pattern ({pattern}): replay moves a group over the topics a \
             sink names; move it with Kafka's kafka-consumer-groups.sh --reset-offsets \
             --to-datetime, per topic, while the sink is stopped",
            sink.name
        )));
    }
    Ok(sink)
}

/// The replay's dry run: each partition's move, changing nothing. A move with
/// [`Move::skipped`] above zero means the replay would be refused.
pub fn dry_run(
    loaded: &Loaded,
    connectors: &Connectors,
    name: &str,
    from: SystemTime,
) -> Result<Vec<Move>, OpsError> {
    let sink = replayable(connectors, name)?;
    let consumer = super::consumer(loaded, &sink.group_id, &[])?;
    plan(&consumer, sink, from)
}

/// Rewinds the sink's group. Returns one line per partition and a summary.
pub fn replay(
    loaded: &Loaded,
    connectors: &Connectors,
    name: &str,
    from: SystemTime,
) -> Result<Vec<String>, OpsError> {
    let sink = replayable(connectors, name)?;
    let consumer = super::consumer(loaded, &sink.group_id, &[])?;
    refuse_live_members(&consumer, sink)?;
    let moves = plan(&consumer, sink, from)?;
    refuse_forward(&moves, &sink.group_id)?;
    let mut lines = Vec::new();
    let mut commit = TopicPartitionList::new();
    for m in &moves {
        match m.target {
            Some(o) => {
                lines.push(format!(
                    "{} [{}] → offset {o} (was {})",
                    m.topic, m.partition, m.resume
                ));
                commit
                    .add_partition_offset(&m.topic, m.partition, Offset::Offset(o))
                    .doing(|| "building the commit".into())?;
            }
            None => lines.push(format!(
                "{} [{}] has no record after that time; unchanged",
                m.topic, m.partition
            )),
        }
    }
    if commit.count() > 0 {
        match consumer.commit(&commit, CommitMode::Sync) {
            Err(e) if refused_for_members(&e) => return Err(live_members(sink, None)),
            result => result.doing(|| "committing the rewound offsets".into())?,
        }
    }
    lines.push(format!(
        "group {} rewound on {} partition(s)",
        sink.group_id,
        commit.count()
    ));
    Ok(lines)
}

fn refuse_live_members(consumer: &BaseConsumer, sink: &Sink) -> Result<(), OpsError> {
    let groups = consumer
        .fetch_group_list(Some(&sink.group_id), Duration::from_secs(10))
        .doing(|| "listing the consumer group".into())?;
    match groups.groups().iter().find(|g| !g.members().is_empty()) {
        Some(g) => Err(live_members(sink, Some(g.members().len()))),
        None => Ok(()),
    }
}

/// The refusal while the sink's group has members (`count` when the listing said how
/// many).
fn live_members(sink: &Sink, count: Option<usize>) -> OpsError {
    let count = count.map_or_else(|| "live".to_owned(), |n| format!("{n} live"));
    OpsError::Refused(format!(
        "consumer group {} has {count} member(s); stop the hookbridge processes running sink {:?} (scale to 0), then replay",
        sink.group_id, sink.name
    ))
}

/// Whether the broker refused the replay's commit because the group has members. The
/// listing above sees only classic-protocol members: a group on the KIP-848 consumer
/// protocol is listed without them (as `Dead`), and the broker takes a commit from
/// outside the group only while it is empty, so it answers `UNKNOWN_MEMBER_ID`; a
/// classic member that joined since the listing gets the commit refused likewise.
fn refused_for_members(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        e.rdkafka_error_code(),
        Some(
            Code::UnknownMemberId
                | Code::IllegalGeneration
                | Code::RebalanceInProgress
                | Code::StaleMemberEpoch
        )
    )
}

/// Each partition's resume point and the offset `from` points at.
fn plan(consumer: &BaseConsumer, sink: &Sink, from: SystemTime) -> Result<Vec<Move>, OpsError> {
    let ms = crate::clock::millis_of(from);
    let mut query = TopicPartitionList::new();
    for topic in &sink.topics {
        for p in super::partitions(consumer, topic)? {
            query
                .add_partition_offset(topic, p, Offset::Offset(ms))
                .doing(|| "building the time query".into())?;
        }
    }
    let found = consumer
        .offsets_for_times(query.clone(), Duration::from_secs(10))
        .doing(|| "looking up offsets for the time".into())?;
    let committed = consumer
        .committed_offsets(query, Duration::from_secs(10))
        .doing(|| "reading the group's committed offsets".into())?;
    found
        .elements()
        .iter()
        .map(|e| {
            let (topic, partition) = (e.topic(), e.partition());
            let (low, _) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .doing(|| format!("reading the start of {topic} [{partition}]"))?;
            let committed =
                committed
                    .find_partition(topic, partition)
                    .and_then(|c| match c.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    });
            Ok(Move {
                topic: topic.to_owned(),
                partition,
                resume: committed.map_or(low, |c| c.max(low)),
                target: match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                },
            })
        })
        .collect()
}

/// Refuses the whole replay when any partition would move forward.
fn refuse_forward(moves: &[Move], group: &str) -> Result<(), OpsError> {
    let forward: Vec<String> = moves
        .iter()
        .filter(|m| m.skipped() > 0)
        .map(|m| {
            format!(
                "{} [{}]: resumes at offset {}, --from points at {} ({} undelivered record(s) would be skipped)",
                m.topic,
                m.partition,
                m.resume,
                m.target.unwrap_or_default(),
                m.skipped()
            )
        })
        .collect();
    if forward.is_empty() {
        return Ok(());
    }
    Err(OpsError::Refused(format!(
        "replay only moves group {group} back, and --from is past records it has not delivered yet: {}. Nothing was changed; choose an earlier --from",
        forward.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(resume: i64, target: Option<i64>) -> Move {
        Move {
            topic: "orders".into(),
            partition: 0,
            resume,
            target,
        }
    }

    #[test]
    fn a_sink_reading_topics_by_pattern_is_not_replayed() {
        let mut connectors = Connectors::default();
        for (file, topics) in [("a.toml", r#"["^gh\\..*"]"#), ("b.toml", r#"["gh.push"]"#)] {
            let name = file.trim_end_matches(".toml");
            let text =
                format!("[sink]\nname = \"{name}\"\ntopics = {topics}\nurl = \"http://x/\"\n");
            crate::connectors::load_file(file, &text, &mut connectors).expect("a sink");
        }
        let e = replayable(&connectors, "a").unwrap_err();
        assert!(matches!(e, OpsError::Invalid(_)), "a usage error: {e}");
        assert!(e.to_string().contains("by pattern (^gh\\..*)"), "{e}");
        assert!(replayable(&connectors, "b").is_ok());
    }

    #[test]
    fn a_time_is_read_as_rfc_3339_or_a_duration_ago_and_refused_naming_its_option() {
        let at = parse_time("--since", "2026-11-22T08:00:00Z").unwrap();
        assert_eq!(
            at,
            humantime::parse_rfc3339("2026-11-22T08:00:00Z").unwrap()
        );
        for same in [
            "2026-11-22T08:00:00",
            "2026-11-22T10:30:00+02:30",
            "2026-11-22T03:00:00-05:00",
            "2026-11-22T08:00:00.000+00:00",
            "2026-11-22T10:30:00.000+02:30",
            "2026-11-22t08:00:00z",
        ] {
            assert_eq!(parse_time("--since", same).unwrap(), at, "{same}");
        }
        for bad in [
            "2026-11-22T08:00:00+2:00",
            "2026-11-22T08:00:00*02:00",
            "2026-11-22T08:00:00+24:00",
            "2026-11-22T08:00:00+02:60",
            "2026-11-22T08:00:00+02-00",
            "+02:00",
            "08:00:00+02:00",
        ] {
            assert!(parse_time("--since", bad).is_err(), "{bad}");
        }
        let ago = SystemTime::now().duration_since(parse_time("--since", "2h").unwrap());
        let ago = ago.unwrap().as_secs();
        assert!((7195..=7205).contains(&ago), "2h read as {ago} s ago");
        let err = parse_time("--since", "soon").unwrap_err().to_string();
        assert!(err.contains("--since \"soon\""), "{err}");
        let err = parse_from("soon").unwrap_err().to_string();
        assert!(err.contains("--from \"soon\""), "{err}");
    }

    #[test]
    fn only_backward_or_equal_moves_pass() {
        assert!(refuse_forward(&[mv(5, Some(2)), mv(5, Some(5)), mv(5, None)], "g").is_ok());
        let err = refuse_forward(&[mv(5, Some(2)), mv(5, Some(8))], "g")
            .unwrap_err()
            .to_string();
        assert!(err.contains("3 undelivered record(s)"), "{err}");
        assert!(err.contains("Nothing was changed"), "{err}");
    }
}
