//! The sink's Kafka consumer: a dedicated poll thread (so a rebalance callback may block
//! while in-flight deliveries drain) and the context that commits the drained watermark
//! synchronously before partitions are handed to another member. Every commit names its
//! partitions explicitly and carries the finished-offset map as metadata; on assignment
//! the committed maps are read back so finished records are not delivered again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::dispatcher::{Commit, Event, PartitionControl};
use super::finished::{self, FinishedMap};
use super::partition::Rewind;
use super::record::{Record, TopicPartition};
use crate::telemetry::Health;

/// Callbacks of one sink's consumer.
pub struct SinkContext {
    name: Arc<str>,
    events: UnboundedSender<Event>,
    drain_timeout: Duration,
    assigned: AtomicBool,
    health: Arc<Health>,
    lag: prometheus::IntGaugeVec,
    /// Records polled and not yet handed to the dispatcher. A rebalance callback flushes
    /// it before announcing the rebalance, so the dispatcher sees records and rebalances
    /// in exactly the order they were polled.
    batch: std::sync::Mutex<Vec<Record>>,
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
            batch: std::sync::Mutex::new(Vec::with_capacity(POLL_BATCH)),
        }
    }

    fn push(&self, record: Record) -> usize {
        let mut batch = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        batch.push(record);
        batch.len()
    }

    /// Hands the polled records to the dispatcher; false when it is gone.
    fn flush(&self) -> bool {
        let records = {
            let mut batch = self.batch.lock().unwrap_or_else(|p| p.into_inner());
            if batch.is_empty() {
                return true;
            }
            std::mem::replace(&mut *batch, Vec::with_capacity(POLL_BATCH))
        };
        self.events.send(Event::Records(records)).is_ok()
    }

    /// Asks the dispatcher to drain `partitions` and waits for its commits. Both sides
    /// measure the drain from one deadline, set here, so a dispatcher that picks the
    /// request up late drains for less, not longer than this side waits.
    fn drain(&self, partitions: Vec<TopicPartition>, shutdown: bool) -> Option<Vec<Commit>> {
        self.flush();
        let (reply, answer) = std::sync::mpsc::channel();
        let deadline = Instant::now() + self.drain_timeout;
        let event = if shutdown {
            Event::Shutdown { reply, deadline }
        } else {
            Event::Revoke {
                partitions,
                reply,
                deadline,
            }
        };
        self.events.send(event).ok()?;
        answer.recv_timeout(self.drain_timeout + DRAIN_GRACE).ok()
    }

    /// Reads the committed offsets and finished-offset maps of newly assigned partitions
    /// and hands them to the dispatcher before any of their records is polled.
    fn announce_assignment(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        self.flush();
        let committed = match consumer.committed_offsets(tpl.clone(), COMMITTED_LOOKUP_TIMEOUT) {
            Ok(c) => read_committed(&c),
            Err(e) => {
                tracing::warn!(connector = %self.name, error = %e,
                    "could not read committed metadata; records finished above the committed offsets will be delivered again");
                HashMap::new()
            }
        };
        let partitions = partitions_of(tpl)
            .into_iter()
            .map(|tp| {
                let resumed = committed.get(&tp).and_then(|(offset, metadata)| {
                    let map = finished::decode(metadata, *offset);
                    if map.is_none() && !metadata.is_empty() {
                        tracing::info!(connector = %self.name, topic = %tp.topic, partition = tp.partition,
                            "commit metadata is not a finished-offset map of this offset; replaying from the committed offset");
                    }
                    map
                });
                (tp, resumed)
            })
            .collect::<Vec<(TopicPartition, Option<FinishedMap>)>>();
        let _ = self.events.send(Event::Assigned(partitions));
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

/// How long the dispatcher's reply to a drain is awaited beyond the drain deadline.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
const COMMITTED_LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

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
fn read_committed(tpl: &TopicPartitionList) -> HashMap<TopicPartition, (i64, Vec<u8>)> {
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
                topic: topic.as_ref().into(),
                partition: e.partition,
            },
            (e.offset, metadata),
        );
    }
    out
}

/// Synchronous commit, used on revoke and shutdown.
fn commit_sync<C: ConsumerContext>(consumer: &BaseConsumer<C>, offsets: &[Commit], name: &str) {
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

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Ready once the group has given this member its share, even an empty one: a
        // replica beyond the partition count still serves webhooks and must not hold up
        // a rollout.
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(connector = %self.name, partitions = tpl.count(), "partitions assigned");
                self.announce_assignment(consumer, tpl);
                self.set_assigned(true);
            }
            // Eager: the whole assignment goes before the next one arrives. Cooperative:
            // only the partitions that move go; the member keeps the rest, stays ready.
            Rebalance::Revoke(_) => {
                if !matches!(
                    consumer.rebalance_protocol(),
                    RebalanceProtocol::Cooperative
                ) {
                    self.set_assigned(false)
                }
            }
            Rebalance::Error(e) => {
                // librdkafka has taken the whole assignment away: whatever is still
                // delivering may belong to another member by now.
                tracing::warn!(connector = %self.name, error = %e, "rebalance error; dropping every partition");
                self.flush();
                let _ = self.events.send(Event::Unassigned);
                self.set_assigned(false);
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
    /// The dispatcher forgot the partition: clear the pause and any seek still owed.
    Release(TopicPartition),
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

    fn release(&self, tp: &TopicPartition) {
        let _ = self.flow.send(Flow::Release(tp.clone()));
    }

    fn commit_async(&self, commits: &[Commit]) {
        if let Err(e) = self.consumer.commit(&to_tpl(commits), CommitMode::Async) {
            tracing::warn!(error = %e, "offset commit could not be queued");
        }
    }
}

fn one(tp: &TopicPartition) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&tp.topic, tp.partition);
    tpl
}

/// A rewind whose seek failed: retried until it succeeds or the partition is drained.
struct PendingSeek {
    rewind: Rewind,
    next_try: Instant,
}

const SEEK_RETRY: Duration = Duration::from_secs(1);
/// Records handed to the dispatcher per batch: one channel message and one wakeup for
/// up to this many.
const POLL_BATCH: usize = 256;

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
struct FlowState {
    epochs: HashMap<TopicPartition, u64>,
    pending: HashMap<TopicPartition, PendingSeek>,
}

impl FlowState {
    /// Applies one flow change. A rewind seeks before resuming and bumps the epoch that
    /// later records are stamped with; a failed seek keeps the partition paused and is
    /// retried (resuming without it would skip the records dropped while paused).
    fn apply(&mut self, consumer: &BaseConsumer<SinkContext>, flow: Flow) {
        let name = &consumer.context().name;
        match flow {
            Flow::Pause(tp) => {
                tracing::debug!(connector = %name, topic = %tp.topic, partition = tp.partition, "partition paused");
                if let Err(e) = consumer.pause(&one(&tp)) {
                    tracing::warn!(connector = %name, error = %e, "pause failed");
                }
            }
            Flow::Resume(tp, Some(r)) => {
                self.pending.remove(&tp);
                self.rewind(consumer, tp, r);
            }
            // A seek still owed must happen before the partition is fetched again: the
            // records it re-reads are the ones the dispatcher waits for.
            Flow::Resume(tp, None) if self.pending.contains_key(&tp) => {
                tracing::debug!(connector = %name, topic = %tp.topic, partition = tp.partition, "resume waits for the owed seek");
            }
            Flow::Resume(tp, None) => resume(consumer, &tp),
            Flow::Release(tp) => {
                self.pending.remove(&tp);
                resume(consumer, &tp);
            }
        }
    }

    fn rewind(&mut self, consumer: &BaseConsumer<SinkContext>, tp: TopicPartition, r: Rewind) {
        let name = &consumer.context().name;
        match seek(consumer, &tp, r) {
            Ok(()) => {
                self.epochs.insert(tp.clone(), r.epoch);
                tracing::debug!(connector = %name, topic = %tp.topic, partition = tp.partition, offset = r.offset, "partition rewound and resumed");
                resume(consumer, &tp);
            }
            Err(e) => {
                tracing::error!(connector = %name, topic = %tp.topic, partition = tp.partition, error = %e,
                    "seek back for resume failed; the partition stays paused and the seek is retried");
                self.pending.insert(
                    tp,
                    PendingSeek {
                        rewind: r,
                        next_try: Instant::now() + SEEK_RETRY,
                    },
                );
            }
        }
    }

    /// Retries the seeks that are due.
    fn retry_seeks(&mut self, consumer: &BaseConsumer<SinkContext>) {
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
            if let Some(p) = self.pending.remove(&tp) {
                self.rewind(consumer, tp, p.rewind);
            }
        }
    }

    fn epoch(&self, tp: &TopicPartition) -> u64 {
        self.epochs.get(tp).copied().unwrap_or(0)
    }
}

fn resume(consumer: &BaseConsumer<SinkContext>, tp: &TopicPartition) {
    if let Err(e) = consumer.resume(&one(tp)) {
        tracing::warn!(connector = %consumer.context().name, error = %e, "resume failed");
    }
}

/// Interns topic names: one `Arc<str>` per topic, shared by its records.
#[derive(Default)]
struct Topics(HashMap<String, Arc<str>>);

impl Topics {
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(t) = self.0.get(name) {
            return t.clone();
        }
        let t: Arc<str> = name.into();
        self.0.insert(name.to_owned(), t.clone());
        t
    }
}

/// Polls until `stop`, forwarding records to the dispatcher in batches; then drains,
/// commits synchronously and closes the consumer (leaving the group at once).
pub fn poll_thread(
    consumer: Arc<BaseConsumer<SinkContext>>,
    flow: std::sync::mpsc::Receiver<Flow>,
    stop: CancellationToken,
) {
    let mut topics = Topics::default();
    let mut state = FlowState::default();
    'polling: while !stop.is_cancelled() {
        while let Ok(change) = flow.try_recv() {
            state.apply(&consumer, change);
        }
        state.retry_seeks(&consumer);
        let ctx = consumer.context();
        let mut wait = Duration::from_millis(50);
        loop {
            match consumer.poll(wait) {
                None => break,
                Some(Ok(msg)) => {
                    let mut record = Record::from_message(&msg, topics.get(msg.topic()));
                    record.epoch = state.epoch(&record.tp);
                    if ctx.push(record) >= POLL_BATCH {
                        break;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(connector = %ctx.name, error = %e, "consumer error");
                    break;
                }
            }
            // Take what is already fetched without waiting again.
            wait = Duration::ZERO;
        }
        if !ctx.flush() {
            break 'polling;
        }
    }
    let ctx = consumer.context();
    match ctx.drain(Vec::new(), true) {
        Some(commits) => commit_sync(&consumer, &commits, &ctx.name),
        None => {
            tracing::warn!(connector = %ctx.name, "shutdown drain did not answer; committing nothing")
        }
    }
    ctx.set_assigned(false);
    // Closing serves one last revoke; the dispatcher is gone by then, so it commits nothing.
    consumer.unsubscribe();
}
