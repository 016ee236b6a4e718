//! Group membership of a sink: on assignment the committed offsets and finished-offset
//! maps are read back and handed to the dispatcher before any record of the new
//! partitions is polled; on revoke the partitions are drained and their watermark
//! committed synchronously before another member may take them; a lost assignment (or a
//! rebalance error) drops the partitions' states at once, without a drain or a commit,
//! since another member may own them already.

use std::collections::HashMap;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::TopicPartitionList;

use super::commit::{commit_sync, read_committed};
use super::{partitions_of, SinkContext};
use crate::egress::dispatcher::Event;
use crate::egress::finished::{self, FinishedMap};
use crate::egress::record::TopicPartition;
use crate::telemetry::control::ControlEvent;

const COMMITTED_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl SinkContext {
    /// Reads the committed offsets and finished-offset maps of newly assigned partitions
    /// and hands them to the dispatcher before any of their records is polled.
    fn announce_assignment(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        self.flush();
        let lookup = self.bounded(COMMITTED_LOOKUP_TIMEOUT);
        let committed = match consumer.committed_offsets(tpl.clone(), lookup) {
            Ok(c) => read_committed(&c),
            Err(e) => {
                self.emit(ControlEvent::CommittedUnreadable { error: &e });
                HashMap::new()
            }
        };
        let tps = partitions_of(tpl);
        let numbers = self.assignments().assign(&tps);
        let partitions = tps
            .into_iter()
            .zip(numbers)
            .map(|(tp, assignment)| {
                let resumed = committed.get(&tp).and_then(|(offset, metadata)| {
                    let map = finished::decode(metadata, *offset);
                    if map.is_none() && !metadata.is_empty() {
                        self.emit(ControlEvent::NotAFinishedMap {
                            topic: &tp.topic,
                            partition: tp.partition,
                        });
                    }
                    map
                });
                (tp, resumed, assignment)
            })
            .collect::<Vec<(TopicPartition, Option<FinishedMap>, u64)>>();
        let _ = self.events.send(Event::Assigned(partitions));
    }

    /// The revoked `partitions` are lost: their states go without a drain or commit.
    /// Only these: with cooperative-sticky assignment librdkafka also calls a revoke of
    /// some partitions lost (a subscribed topic deleted), and the partitions kept go on
    /// being fetched, so their states must stay.
    pub(in crate::egress) fn lose(&self, partitions: Vec<TopicPartition>) {
        self.forget(&partitions);
        self.flush();
        let _ = self.events.send(Event::Lost(partitions));
    }

    /// A revoke is done: the sink is between assignments only if it holds nothing now
    /// (an incremental revoke leaves the rest of the assignment in place).
    pub(in crate::egress) fn revoked(&self) {
        self.set_assigned(!self.assignments().current.is_empty());
    }

    /// What announcing an assignment records, without a consumer to read offsets from.
    #[cfg(test)]
    pub(in crate::egress) fn assigned_for_test(&self, tps: &[TopicPartition]) {
        self.assignments().assign(tps);
        self.set_assigned(true);
    }
}

impl ConsumerContext for SinkContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            // Before librdkafka starts fetching them (see `fetched`).
            self.forward(&partitions_of(tpl), false);
        }
        if let Rebalance::Revoke(tpl) = rebalance {
            let partitions = partitions_of(tpl);
            // From here on nothing the old states ask for touches these partitions.
            self.forget(&partitions);
            // rust-rdkafka reports a lost assignment (session timed out, poll interval
            // exceeded) as a plain revoke: another member may own these partitions
            // already, so draining would deliver beside it and its commit is refused
            // anyway. Drop their states at once instead.
            if consumer.assignment_lost() {
                self.emit(ControlEvent::Lost {
                    partitions: partitions.len(),
                });
                self.lose(partitions);
                return;
            }
            self.emit(ControlEvent::Revoked {
                partitions: partitions.len(),
            });
            match self.drain(partitions, false) {
                // A refused commit here is only logged: the partition goes to its next
                // owner either way, which delivers again what was not committed.
                Some(offsets) => {
                    commit_sync(consumer, &offsets, None);
                }
                None => self.emit(ControlEvent::DispatcherStopped),
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Ready once the group has given this member its share, even an empty one: a
        // replica beyond the partition count still serves webhooks and must not hold up
        // a rollout.
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.forward(&partitions_of(tpl), true);
                self.emit(ControlEvent::Assigned {
                    partitions: tpl.count(),
                });
                self.announce_assignment(consumer, tpl);
                self.set_assigned(true);
            }
            // Eager: the whole assignment goes before the next one arrives. Cooperative:
            // only the partitions that move go; a member that keeps some stays ready.
            Rebalance::Revoke(_) => self.revoked(),
            Rebalance::Error(e) => {
                // librdkafka has taken the whole assignment away: whatever is still
                // delivering may belong to another member by now.
                self.emit(ControlEvent::RebalanceFailed { error: e });
                self.forget_all();
                self.flush();
                let _ = self.events.send(Event::Unassigned);
                self.set_assigned(false);
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            self.emit(ControlEvent::CommitFailed {
                error: &e,
                partitions: offsets.count(),
            });
        }
    }
}
