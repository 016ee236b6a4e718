//! The sink's Kafka consumer: a dedicated poll thread (so a rebalance callback may block
//! while in-flight deliveries drain) and the context that commits the drained watermark
//! synchronously before partitions are handed to another member.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::dispatcher::{Event, Offsets, PartitionControl, Rewind};
use super::record::{Record, TopicPartition};
use crate::admin::Health;

/// Callbacks of one sink's consumer.
pub struct SinkContext {
    name: Arc<str>,
    events: UnboundedSender<Event>,
    drain_timeout: Duration,
    assigned: AtomicBool,
    health: Arc<Health>,
    lag: prometheus::IntGaugeVec,
}

impl SinkContext {
    pub fn new(
        name: Arc<str>,
        events: UnboundedSender<Event>,
        drain_timeout: Duration,
        health: Arc<Health>,
        lag: prometheus::IntGaugeVec,
    ) -> Self {
        health.sinks_unassigned.fetch_add(1, Ordering::Relaxed);
        Self {
            lag,
            name,
            events,
            drain_timeout,
            assigned: AtomicBool::new(false),
            health,
        }
    }

    /// Asks the dispatcher to drain `partitions` and waits for its offsets.
    fn drain(&self, partitions: Vec<TopicPartition>, shutdown: bool) -> Option<Offsets> {
        let (reply, answer) = std::sync::mpsc::channel();
        let event = if shutdown {
            Event::Shutdown { reply }
        } else {
            Event::Revoke { partitions, reply }
        };
        self.events.send(event).ok()?;
        answer
            .recv_timeout(self.drain_timeout + Duration::from_secs(2))
            .ok()
    }

    fn set_assigned(&self, assigned: bool) {
        if self.assigned.swap(assigned, Ordering::Relaxed) != assigned {
            if assigned {
                self.health.sinks_unassigned.fetch_sub(1, Ordering::Relaxed);
            } else {
                self.health.sinks_unassigned.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition {
            topic: e.topic().into(),
            partition: e.partition(),
        })
        .collect()
}

fn to_tpl(offsets: &Offsets) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::with_capacity(offsets.len());
    for (tp, o) in offsets {
        let _ = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*o));
    }
    tpl
}

/// Synchronous commit, used on revoke and shutdown.
fn commit_sync<C: ConsumerContext>(consumer: &BaseConsumer<C>, offsets: &Offsets, name: &str) {
    if offsets.is_empty() {
        return;
    }
    match consumer.commit(&to_tpl(offsets), CommitMode::Sync) {
        Ok(()) => tracing::info!(
            connector = name,
            partitions = offsets.len(),
            "committed drained offsets"
        ),
        Err(e) => {
            tracing::warn!(connector = name, error = %e, "commit of drained offsets failed; records after the last commit will be redelivered")
        }
    }
}

impl ClientContext for SinkContext {
    /// librdkafka statistics (every `statistics.interval.ms`): the committed-offset lag
    /// per partition, i.e. records not yet finished by this group.
    fn stats(&self, stats: rdkafka::Statistics) {
        for topic in stats.topics.values() {
            for p in topic.partitions.values() {
                // -1 is librdkafka's internal "unassigned" partition; negative offsets
                // mean not known yet.
                if p.partition < 0 || p.hi_offset < 0 {
                    continue;
                }
                let committed = p.committed_offset.max(0);
                self.lag
                    .with_label_values(&[
                        self.name.as_ref(),
                        topic.topic.as_str(),
                        &p.partition.to_string(),
                    ])
                    .set((p.hi_offset - committed).max(0));
            }
        }
    }
}

impl ConsumerContext for SinkContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let partitions = partitions_of(tpl);
            tracing::info!(connector = %self.name, partitions = partitions.len(), "partitions revoked; draining");
            match self.drain(partitions, false) {
                Some(offsets) => commit_sync(consumer, &offsets, &self.name),
                None => {
                    tracing::debug!(connector = %self.name, "dispatcher already stopped; nothing to commit")
                }
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Ready once the group has given this member its share, even an empty one: a
        // replica beyond the partition count still serves webhooks and must not hold up
        // a rollout.
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(connector = %self.name, partitions = tpl.count(), "partitions assigned");
                self.set_assigned(true);
            }
            Rebalance::Revoke(_) => self.set_assigned(false),
            Rebalance::Error(e) => {
                tracing::warn!(connector = %self.name, error = %e, "rebalance error")
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(connector = %self.name, error = %e, partitions = offsets.count(), "offset commit failed; it is retried at the next interval");
        }
    }
}

/// A flow change for the poll thread, which applies them in order between polls.
pub enum Flow {
    Pause(TopicPartition),
    Resume(TopicPartition, Option<Rewind>),
}

/// The consumer as the dispatcher sees it: commits go straight to librdkafka; pause and
/// resume go through the poll thread so they apply in order with the records it stamps.
pub struct Control {
    pub consumer: Arc<BaseConsumer<SinkContext>>,
    pub flow: std::sync::mpsc::Sender<Flow>,
}

impl PartitionControl for Control {
    fn pause(&self, tp: &TopicPartition) {
        let _ = self.flow.send(Flow::Pause(tp.clone()));
    }

    fn resume(&self, tp: &TopicPartition, rewind: Option<Rewind>) {
        let _ = self.flow.send(Flow::Resume(tp.clone(), rewind));
    }

    fn commit_async(&self, offsets: &Offsets) {
        if let Err(e) = self.consumer.commit(&to_tpl(offsets), CommitMode::Async) {
            tracing::warn!(error = %e, "offset commit could not be queued");
        }
    }
}

fn one(tp: &TopicPartition) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&tp.topic, tp.partition);
    tpl
}

/// Applies one flow change. A rewind seeks before resuming and bumps the epoch that
/// later records are stamped with.
fn apply(
    consumer: &BaseConsumer<SinkContext>,
    flow: Flow,
    epochs: &mut HashMap<TopicPartition, u64>,
) {
    let name = &consumer.context().name;
    match flow {
        Flow::Pause(tp) => {
            tracing::debug!(connector = %name, topic = %tp.topic, partition = tp.partition, "partition paused: buffer full");
            if let Err(e) = consumer.pause(&one(&tp)) {
                tracing::warn!(connector = %name, error = %e, "pause failed");
            }
        }
        Flow::Resume(tp, rewind) => {
            tracing::debug!(connector = %name, topic = %tp.topic, partition = tp.partition, rewind = ?rewind, "partition resumed");
            if let Some(r) = rewind {
                let mut at = TopicPartitionList::new();
                let _ = at.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(r.offset));
                let sought = consumer
                    .seek_partitions(at, Duration::from_secs(5))
                    .map_err(|e| e.to_string())
                    .and_then(
                        |tpl| match tpl.elements().iter().find_map(|e| e.error().err()) {
                            Some(e) => Err(e.to_string()),
                            None => Ok(()),
                        },
                    );
                if let Err(e) = sought {
                    // Resuming without the seek would skip the records dropped while
                    // paused; staying paused loses nothing (they are re-read after the
                    // next rebalance or restart).
                    tracing::error!(connector = %name, topic = %tp.topic, partition = tp.partition, error = %e,
                        "seek back for resume failed; the partition stays paused");
                    return;
                }
                epochs.insert(tp.clone(), r.epoch);
            }
            if let Err(e) = consumer.resume(&one(&tp)) {
                tracing::warn!(connector = %name, error = %e, "resume failed");
            }
        }
    }
}

/// Polls until `stop`, forwarding records to the dispatcher; then drains, commits
/// synchronously and closes the consumer (leaving the group at once).
pub fn poll_thread(
    consumer: Arc<BaseConsumer<SinkContext>>,
    events: UnboundedSender<Event>,
    flow: std::sync::mpsc::Receiver<Flow>,
    stop: CancellationToken,
) {
    let mut topics: HashMap<String, Arc<str>> = HashMap::new();
    let mut epochs: HashMap<TopicPartition, u64> = HashMap::new();
    while !stop.is_cancelled() {
        while let Ok(change) = flow.try_recv() {
            apply(&consumer, change, &mut epochs);
        }
        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            Some(Ok(msg)) => {
                let topic = match topics.get(msg.topic()) {
                    Some(t) => t.clone(),
                    None => {
                        let t: Arc<str> = msg.topic().into();
                        topics.insert(msg.topic().to_owned(), t.clone());
                        t
                    }
                };
                let mut record = Record::from_message(&msg, topic);
                record.epoch = epochs.get(&record.tp).copied().unwrap_or(0);
                if events.send(Event::Record(record)).is_err() {
                    break;
                }
            }
            Some(Err(e)) => {
                tracing::warn!(connector = %consumer.context().name, error = %e, "consumer error")
            }
        }
    }
    let ctx = consumer.context();
    match ctx.drain(Vec::new(), true) {
        Some(offsets) => commit_sync(&consumer, &offsets, &ctx.name),
        None => {
            tracing::warn!(connector = %ctx.name, "shutdown drain did not answer; committing nothing")
        }
    }
    ctx.set_assigned(false);
    // Closing serves one last revoke; the dispatcher is gone by then, so it commits nothing.
    consumer.unsubscribe();
}
