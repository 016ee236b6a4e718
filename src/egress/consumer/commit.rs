//! Commits of a sink's watermark: synchronous on revoke and shutdown, asynchronous on the
//! commit interval, each naming its partitions with the finished-offset map as metadata;
//! reading the committed maps back on assignment; and the librdkafka client callbacks
//! that report what the commit path cannot hear otherwise (a failed asynchronous commit)
//! and the committed-offset lag.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::SinkContext;
use crate::egress::dispatcher::Commit;
use crate::egress::record::{Topic, TopicPartition};
use crate::telemetry::control::ControlEvent;

/// The commit as librdkafka takes it: every partition named, with its metadata (a commit
/// without an explicit list would drop the metadata).
fn to_tpl(commits: &[Commit]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::with_capacity(commits.len());
    for c in commits {
        let mut e = tpl.add_partition(&c.tp.topic, c.tp.partition);
        if e.set_offset(Offset::Offset(c.offset)).is_ok() {
            e.set_metadata(&c.metadata);
        }
    }
    tpl
}

/// Committed offset and raw metadata per partition. Read from librdkafka's list
/// directly: the safe accessor panics on metadata that is not UTF-8, which any other
/// client may have written.
pub(super) fn read_committed(tpl: &TopicPartitionList) -> HashMap<TopicPartition, (i64, Vec<u8>)> {
    let mut out = HashMap::new();
    let raw = tpl.ptr();
    if raw.is_null() {
        return out;
    }
    // SAFETY: `raw` is the live list owned by `tpl`, borrowed for this function; librdkafka
    // guarantees `elems` holds `cnt` initialised elements, each with a NUL-terminated topic
    // and `metadata_size` readable bytes at `metadata` when it is not null.
    let elems = unsafe {
        let list = &*raw;
        if list.elems.is_null() || list.cnt <= 0 {
            return out;
        }
        std::slice::from_raw_parts(list.elems, list.cnt as usize)
    };
    for e in elems {
        if e.topic.is_null() || e.offset < 0 {
            continue;
        }
        let topic = unsafe { std::ffi::CStr::from_ptr(e.topic) }.to_string_lossy();
        let metadata = if e.metadata.is_null() || e.metadata_size == 0 {
            Vec::new()
        } else {
            unsafe { std::slice::from_raw_parts(e.metadata as *const u8, e.metadata_size) }.to_vec()
        };
        out.insert(
            TopicPartition {
                topic: Topic::new(topic.as_ref()),
                partition: e.partition,
            },
            (e.offset, metadata),
        );
    }
    out
}

/// Synchronous commit of drained partitions. With `settle_until`, a commit refused
/// because the group is between generations ([`group_settling`]) is tried again until
/// then. False when the broker refused it or did not answer.
pub(super) fn commit_sync(
    consumer: &BaseConsumer<SinkContext>,
    offsets: &[Commit],
    settle_until: Option<Instant>,
) -> bool {
    if offsets.is_empty() {
        return true;
    }
    let tpl = to_tpl(offsets);
    loop {
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                consumer.context().emit(ControlEvent::DrainCommitted {
                    partitions: offsets.len(),
                });
                return true;
            }
            // Unless librdkafka gave the assignment up as lost: it rejoins only once
            // the lost partitions are revoked, which waits for a poll.
            Err(e)
                if group_settling(&e)
                    && !consumer.assignment_lost()
                    && settle_until.is_some_and(|u| Instant::now() + SETTLE_EVERY < u) =>
            {
                std::thread::sleep(SETTLE_EVERY);
            }
            Err(e) => {
                consumer
                    .context()
                    .emit(ControlEvent::DrainCommitFailed { error: &e });
                return false;
            }
        }
    }
}

/// How long a sink's final commit is tried again while its group settles (bounded by
/// the shutdown deadline too).
pub(super) const SETTLE: Duration = Duration::from_secs(10);
const SETTLE_EVERY: Duration = Duration::from_millis(100);

/// Whether a refused commit may be taken once the group settles. A member joined or
/// left a moment ago: until every member has synced the new generation, the broker
/// refuses commits (`IllegalGeneration` in librdkafka's wait-sync state, or
/// `RebalanceInProgress`), and takes them again after, this member's included:
/// librdkafka joins and syncs on its own thread, without this one polling. A group
/// waiting out a killed member's session stays refused until the deadline.
fn group_settling(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::IllegalGeneration | RDKafkaErrorCode::RebalanceInProgress)
    )
}

/// The kind of a `COMMITFAIL` line: the line without its digits. librdkafka writes
/// counts, offsets and partitions into it ("Offset commit (manual) failed for 1/2
/// partition(s) in join-state wait-join: Broker: Specified group generation id is not
/// valid: orders[0]@1188(…)"), which vary from one refusal to the next of the same kind.
fn refusal(message: &str) -> String {
    // From the join state on: the start is the same for every refusal, and a kind is
    // known by its first 160 characters.
    let why = message
        .split_once("partition(s) ")
        .map_or(message, |(_, why)| why);
    why.chars().filter(|c| !c.is_ascii_digit()).collect()
}

/// Queued commit, on the commit interval; its result comes back to the callbacks.
pub(super) fn commit_async(consumer: &BaseConsumer<SinkContext>, commits: &[Commit]) {
    if let Err(e) = consumer.commit(&to_tpl(commits), CommitMode::Async) {
        consumer
            .context()
            .emit(ControlEvent::CommitNotQueued { error: &e });
    }
}

impl ClientContext for SinkContext {
    /// librdkafka answers an asynchronous `rd_kafka_commit` to no queue (rust-rdkafka
    /// sets no `offset_commit_cb`), so [`commit_callback`](ConsumerContext::commit_callback)
    /// never hears of it; a refusal (`OFFSET_METADATA_TOO_LARGE`, a lost coordinator, …)
    /// only reaches this log as `COMMITFAIL`. Counted here, and written once per kind of
    /// refusal per `client_log::EVERY`.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        if fac == "COMMITFAIL" {
            let held_back = (self.client_log).admit(&format!("commit {}", refusal(log_message)));
            self.emit(ControlEvent::CommitRefused {
                message: log_message,
                held_back,
            });
            return;
        }
        self.client_log.log(level, fac, log_message);
    }

    /// A global error, each kind at most once per `client_log::EVERY`.
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.client_log.error(&error, reason);
    }

    /// librdkafka statistics (every `statistics.interval.ms`): the committed-offset lag
    /// per partition, i.e. records not yet finished by this group. Only partitions held
    /// now: librdkafka keeps reporting partitions it fetched before.
    fn stats(&self, stats: rdkafka::Statistics) {
        for topic in stats.topics.values() {
            for p in topic.partitions.values() {
                // -1 is librdkafka's internal "unassigned" partition; negative offsets
                // mean not known yet.
                if p.partition < 0 || p.hi_offset < 0 {
                    continue;
                }
                let tp = TopicPartition {
                    topic: Topic::new(&topic.topic),
                    partition: p.partition,
                };
                self.set_lag(&tp, p.hi_offset - p.committed_offset.max(0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refusals of one kind are known as one, whatever their counts and offsets.
    #[test]
    fn a_commit_refusal_is_known_by_its_kind_not_its_counts() {
        let line = |n: u32, offset: u64| {
            format!("Offset commit (manual) failed for {n}/6 partition(s) in join-state wait-join: Broker: Specified group generation id is not valid: orders[0]@{offset}(Broker: Specified group generation id is not valid)")
        };
        assert_eq!(refusal(&line(1, 1188)), refusal(&line(6, 20_517)));
        assert_ne!(
            refusal(&line(1, 1188)),
            refusal("Offset commit (manual) failed for 1/6 partition(s) in join-state steady: Broker: Not coordinator")
        );
    }

    /// Only a group between generations is waited out: a refusal that waiting cannot
    /// change (metadata over the broker's limit, a member the group no longer knows, a
    /// broker that does not answer) ends the final commit at once.
    #[test]
    fn only_a_group_between_generations_is_waited_out() {
        let refused = |code| KafkaError::ConsumerCommit(code);
        assert!(group_settling(&refused(
            RDKafkaErrorCode::IllegalGeneration
        )));
        assert!(group_settling(&refused(
            RDKafkaErrorCode::RebalanceInProgress
        )));
        for code in [
            RDKafkaErrorCode::OffsetMetadataTooLarge,
            RDKafkaErrorCode::UnknownMemberId,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::NotCoordinator,
        ] {
            assert!(!group_settling(&refused(code)), "{code:?}");
        }
    }
}
