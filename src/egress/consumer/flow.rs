//! Partition flow as the dispatcher asks for it: pause, resume, rewind (a seek back
//! before resuming) and release, applied by the poll thread between polls so they apply
//! in order with the records it stamps. A failed seek keeps the partition paused and is
//! retried; a change sent for an earlier assignment of a partition is ignored.

use foldhash::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::commit::commit_async;
use super::SinkContext;
use crate::egress::dispatcher::{Commit, PartitionControl};
use crate::egress::partition::Rewind;
use crate::egress::record::TopicPartition;
use crate::telemetry::control::ControlEvent;

/// A flow change for the poll thread, which applies them in order between polls. Each
/// carries the assignment number of the partition state that asked for it.
pub enum Flow {
    Pause(TopicPartition, u64),
    Resume(TopicPartition, u64, Option<Rewind>),
    /// The dispatcher forgot the partition state: clear the pause and any seek still
    /// owed. Applied whatever its assignment: the dispatcher sends it before anything of
    /// a newer state of the partition, and librdkafka keeps a pause across reassignment.
    Release(TopicPartition, u64),
}

/// The consumer as the dispatcher sees it: commits go straight to librdkafka; pause and
/// resume go through the poll thread so they apply in order with the records it stamps.
pub struct Control {
    pub consumer: Arc<BaseConsumer<SinkContext>>,
    pub flow: std::sync::mpsc::Sender<Flow>,
}

impl PartitionControl for Control {
    fn pause(&self, tp: &TopicPartition, assignment: u64) {
        let _ = self.flow.send(Flow::Pause(tp.clone(), assignment));
    }

    fn resume(&self, tp: &TopicPartition, assignment: u64, rewind: Option<Rewind>) {
        let _ = self.flow.send(Flow::Resume(tp.clone(), assignment, rewind));
    }

    fn release(&self, tp: &TopicPartition, assignment: u64) {
        let _ = self.flow.send(Flow::Release(tp.clone(), assignment));
    }

    fn commit_async(&self, commits: &[Commit]) {
        commit_async(&self.consumer, commits);
    }
}

fn one(tp: &TopicPartition) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&tp.topic, tp.partition);
    tpl
}

/// A rewind whose seek failed: retried until it succeeds or the partition is drained.
struct PendingSeek {
    assignment: u64,
    rewind: Rewind,
    next_try: Instant,
}

const SEEK_RETRY: Duration = Duration::from_secs(1);

/// Seeks `tp` back to the rewind; the error text when it failed.
fn seek(
    consumer: &BaseConsumer<SinkContext>,
    tp: &TopicPartition,
    r: Rewind,
) -> Result<(), String> {
    let mut at = TopicPartitionList::new();
    let _ = at.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(r.offset));
    consumer
        .seek_partitions(at, Duration::from_secs(5))
        .map_err(|e| e.to_string())
        .and_then(
            |tpl| match tpl.elements().iter().find_map(|e| e.error().err()) {
                Some(e) => Err(e.to_string()),
                None => Ok(()),
            },
        )
}

/// The poll thread's view of partition flow: epochs stamped on records, and seeks to retry.
#[derive(Default)]
pub(super) struct FlowState {
    epochs: HashMap<TopicPartition, u64>,
    pending: HashMap<TopicPartition, PendingSeek>,
}

impl FlowState {
    /// Applies one flow change. A rewind seeks before resuming and bumps the epoch that
    /// later records are stamped with; a failed seek keeps the partition paused and is
    /// retried (resuming without it would skip the records dropped while paused).
    pub(super) fn apply(&mut self, consumer: &BaseConsumer<SinkContext>, flow: Flow) {
        let ctx = consumer.context();
        if let Flow::Pause(tp, a) | Flow::Resume(tp, a, _) = &flow {
            if !ctx.assignments().is_current(tp, *a) {
                ctx.emit(ControlEvent::StaleFlowChange {
                    topic: &tp.topic,
                    partition: tp.partition,
                });
                return;
            }
        }
        match flow {
            Flow::Pause(tp, _) => {
                ctx.emit(ControlEvent::Paused {
                    topic: &tp.topic,
                    partition: tp.partition,
                });
                if let Err(e) = consumer.pause(&one(&tp)) {
                    ctx.emit(ControlEvent::PauseFailed { error: &e });
                }
            }
            Flow::Resume(tp, a, Some(r)) => {
                self.pending.remove(&tp);
                self.rewind(consumer, tp, a, r);
            }
            // A seek still owed must happen before the partition is fetched again: the
            // records it re-reads are the ones the dispatcher waits for.
            Flow::Resume(tp, _, None) if self.pending.contains_key(&tp) => {
                ctx.emit(ControlEvent::ResumeWaitsForSeek {
                    topic: &tp.topic,
                    partition: tp.partition,
                });
            }
            Flow::Resume(tp, _, None) => resume(consumer, &tp),
            Flow::Release(tp, a) => {
                if self.pending.get(&tp).is_some_and(|p| p.assignment <= a) {
                    self.pending.remove(&tp);
                }
                resume(consumer, &tp);
            }
        }
    }

    fn rewind(
        &mut self,
        consumer: &BaseConsumer<SinkContext>,
        tp: TopicPartition,
        assignment: u64,
        r: Rewind,
    ) {
        let ctx = consumer.context();
        match seek(consumer, &tp, r) {
            Ok(()) => {
                self.epochs.insert(tp.clone(), r.epoch);
                ctx.emit(ControlEvent::Rewound {
                    topic: &tp.topic,
                    partition: tp.partition,
                    offset: r.offset,
                });
                resume(consumer, &tp);
            }
            Err(e) => {
                ctx.emit(ControlEvent::SeekFailed {
                    topic: &tp.topic,
                    partition: tp.partition,
                    error: &e,
                });
                self.pending.insert(
                    tp,
                    PendingSeek {
                        assignment,
                        rewind: r,
                        next_try: Instant::now() + SEEK_RETRY,
                    },
                );
            }
        }
    }

    /// Retries the seeks that are due.
    pub(super) fn retry_seeks(&mut self, consumer: &BaseConsumer<SinkContext>) {
        if self.pending.is_empty() {
            return;
        }
        let now = Instant::now();
        let due: Vec<TopicPartition> = self
            .pending
            .iter()
            .filter(|(_, p)| p.next_try <= now)
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in due {
            let Some(p) = self.pending.remove(&tp) else {
                continue;
            };
            // Owed to an assignment that is gone: the new one starts from its own
            // committed offset.
            if consumer
                .context()
                .assignments()
                .is_current(&tp, p.assignment)
            {
                self.rewind(consumer, tp, p.assignment, p.rewind);
            }
        }
    }

    pub(super) fn epoch(&self, tp: &TopicPartition) -> u64 {
        self.epochs.get(tp).copied().unwrap_or(0)
    }
}

fn resume(consumer: &BaseConsumer<SinkContext>, tp: &TopicPartition) {
    if let Err(e) = consumer.resume(&one(tp)) {
        consumer
            .context()
            .emit(ControlEvent::ResumeFailed { error: &e });
    }
}
