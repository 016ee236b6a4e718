//! The sink's Kafka consumer: a dedicated poll thread (so a rebalance callback may block
//! while in-flight deliveries drain) and the context that commits the drained watermark
//! synchronously before partitions are handed to another member. Every commit names its
//! partitions explicitly and carries the finished-offset map as metadata; on assignment
//! the committed maps are read back so finished records are not delivered again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::dispatcher::{Commit, Event, PartitionControl};
use super::finished::{self, FinishedMap};
use super::partition::Rewind;
use super::record::{Record, TopicPartition};
use crate::telemetry::{Health, Metrics};

/// Callbacks of one sink's consumer.
pub struct SinkContext {
    name: Arc<str>,
    events: UnboundedSender<Event>,
    drain_timeout: Duration,
    assigned: AtomicBool,
    health: Arc<Health>,
    lag: prometheus::IntGaugeVec,
    lossy_header_names: prometheus::IntCounter,
    commit_failures: prometheus::IntCounter,
    /// When the process must be done stopping: set once, when the stop signal fires
    /// (see [`SinkContext::stopping`]). Every drain and wait after that ends by it, so a
    /// SIGTERM during a revoke drain does not add a second `drain_timeout`.
    stop_deadline: Arc<std::sync::OnceLock<Instant>>,
    /// The current assignment number of each partition held. Flow changes carry the
    /// number of the partition state that asked for them; one from an earlier
    /// assignment (a state the dispatcher had not given up yet when the partition was
    /// revoked and assigned again) must not pause, resume or seek the new one.
    assignments: std::sync::Mutex<Assignments>,
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
        metrics: &Metrics,
    ) -> Self {
        health.sinks_unassigned.fetch_add(1, Ordering::Relaxed);
        Self {
            lag: metrics.consumer_lag.clone(),
            lossy_header_names: metrics
                .lossy_header_names
                .with_label_values(&[name.as_ref()]),
            commit_failures: metrics.commit_failures.with_label_values(&[name.as_ref()]),
            name,
            events,
            drain_timeout,
            assigned: AtomicBool::new(false),
            stop_deadline: Arc::default(),
            assignments: std::sync::Mutex::default(),
            health,
            batch: std::sync::Mutex::new(Vec::with_capacity(POLL_BATCH)),
        }
    }

    fn assignments(&self) -> std::sync::MutexGuard<'_, Assignments> {
        self.assignments.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A future that, once `stop` fires, fixes the shutdown deadline every later drain
    /// and wait of this sink ends by: `drain_timeout` from the signal.
    pub fn stopping(&self, stop: CancellationToken) -> impl std::future::Future<Output = ()> {
        let (deadline, drain) = (self.stop_deadline.clone(), self.drain_timeout);
        async move {
            stop.cancelled().await;
            let _ = deadline.set(Instant::now() + drain);
        }
    }

    /// `want`, shortened to what is left before the shutdown deadline once stopping.
    fn bounded(&self, want: Duration) -> Duration {
        match self.stop_deadline.get() {
            Some(d) => want.min(d.saturating_duration_since(Instant::now())),
            None => want,
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
    /// request up late drains for less, not longer than this side waits. Once the
    /// process is stopping, no drain outlasts the shutdown deadline.
    fn drain(&self, partitions: Vec<TopicPartition>, shutdown: bool) -> Option<Vec<Commit>> {
        self.flush();
        let (reply, answer) = std::sync::mpsc::channel();
        let deadline = Instant::now() + self.bounded(self.drain_timeout);
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
        answer
            .recv_timeout(deadline.saturating_duration_since(Instant::now()) + DRAIN_GRACE)
            .ok()
    }

    /// Reads the committed offsets and finished-offset maps of newly assigned partitions
    /// and hands them to the dispatcher before any of their records is polled.
    fn announce_assignment(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        self.flush();
        let lookup = self.bounded(COMMITTED_LOOKUP_TIMEOUT);
        let committed = match consumer.committed_offsets(tpl.clone(), lookup) {
            Ok(c) => read_committed(&c),
            Err(e) => {
                tracing::warn!(connector = %self.name, error = %e,
                    "could not read committed metadata; records finished above the committed offsets will be delivered again");
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
                        tracing::info!(connector = %self.name, topic = %tp.topic, partition = tp.partition,
                            "commit metadata is not a finished-offset map of this offset; replaying from the committed offset");
                    }
                    map
                });
                (tp, resumed, assignment)
            })
            .collect::<Vec<(TopicPartition, Option<FinishedMap>, u64)>>();
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

/// Which assignment of each held partition is current (see `SinkContext::assignments`).
#[derive(Default)]
struct Assignments {
    current: HashMap<TopicPartition, u64>,
    last: u64,
}

impl Assignments {
    /// Numbers the partitions just assigned, each above every earlier number.
    fn assign(&mut self, tps: &[TopicPartition]) -> Vec<u64> {
        tps.iter()
            .map(|tp| {
                self.last += 1;
                self.current.insert(tp.clone(), self.last);
                self.last
            })
            .collect()
    }

    fn revoke(&mut self, tps: &[TopicPartition]) {
        for tp in tps {
            self.current.remove(tp);
        }
    }

    fn is_current(&self, tp: &TopicPartition, assignment: u64) -> bool {
        self.current.get(tp) == Some(&assignment)
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
fn commit_sync(consumer: &BaseConsumer<SinkContext>, offsets: &[Commit], name: &str) {
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
            consumer.context().commit_failures.inc();
            tracing::warn!(connector = name, error = %e, "commit of drained offsets failed; records after the last commit will be redelivered")
        }
    }
}

impl ClientContext for SinkContext {
    /// librdkafka answers an asynchronous `rd_kafka_commit` to no queue (rust-rdkafka
    /// sets no `offset_commit_cb`), so [`commit_callback`](ConsumerContext::commit_callback)
    /// never hears of it; a refusal (`OFFSET_METADATA_TOO_LARGE`, a lost coordinator, …)
    /// only reaches this log as `COMMITFAIL`. Counted and warned about here, once each.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        if fac == "COMMITFAIL" {
            self.commit_failures.inc();
            if log_message.contains("Offset metadata string too large") {
                // `check` cannot know the broker's limit; this is where it shows.
                tracing::warn!(connector = %self.name, error = %log_message,
                    "offset commit failed: the finished-offset map is over the broker's offset.metadata.max.bytes; set kafka.commit_metadata_max_bytes below it");
            } else {
                tracing::warn!(connector = %self.name, error = %log_message, "offset commit failed; it is retried at the next interval");
            }
            return;
        }
        rdkafka::client::DefaultClientContext.log(level, fac, log_message);
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
                    topic: topic.topic.as_str().into(),
                    partition: p.partition,
                };
                self.set_lag(&tp, p.hi_offset - p.committed_offset.max(0));
            }
        }
    }
}

impl SinkContext {
    fn lag_labels(&self, tp: &TopicPartition) -> [String; 3] {
        [
            self.name.to_string(),
            tp.topic.to_string(),
            tp.partition.to_string(),
        ]
    }

    /// Sets a held partition's lag; partitions not held here have no series.
    fn set_lag(&self, tp: &TopicPartition, lag: i64) {
        if !self.assignments().current.contains_key(tp) {
            return;
        }
        let labels = self.lag_labels(tp);
        let labels: [&str; 3] = [&labels[0], &labels[1], &labels[2]];
        self.lag.with_label_values(&labels).set(lag.max(0));
    }

    /// The partitions left this member: their lag series go with them.
    fn forget(&self, tps: &[TopicPartition]) {
        self.assignments().revoke(tps);
        for tp in tps {
            let labels = self.lag_labels(tp);
            let _ = self
                .lag
                .remove_label_values(&[&labels[0], &labels[1], &labels[2]]);
        }
    }

    /// The revoked `partitions` are lost: their states go without a drain or commit.
    /// Only these: with cooperative-sticky assignment librdkafka also calls a revoke of
    /// some partitions lost (a subscribed topic deleted), and the partitions kept go on
    /// being fetched, so their states must stay.
    pub(super) fn lose(&self, partitions: Vec<TopicPartition>) {
        self.forget(&partitions);
        self.flush();
        let _ = self.events.send(Event::Lost(partitions));
    }

    /// A revoke is done: the sink is between assignments only if it holds nothing now
    /// (an incremental revoke leaves the rest of the assignment in place).
    pub(super) fn revoked(&self) {
        self.set_assigned(!self.assignments().current.is_empty());
    }

    /// What announcing an assignment records, without a consumer to read offsets from.
    #[cfg(test)]
    pub(super) fn assigned_for_test(&self, tps: &[TopicPartition]) {
        self.assignments().assign(tps);
        self.set_assigned(true);
    }

    /// Every partition left this member (a rebalance error).
    fn forget_all(&self) {
        let held: Vec<TopicPartition> = self.assignments().current.keys().cloned().collect();
        self.forget(&held);
    }
}

impl ConsumerContext for SinkContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let partitions = partitions_of(tpl);
            // From here on nothing the old states ask for touches these partitions.
            self.forget(&partitions);
            // rust-rdkafka reports a lost assignment (session timed out, poll interval
            // exceeded) as a plain revoke: another member may own these partitions
            // already, so draining would deliver beside it and its commit is refused
            // anyway. Drop their states at once instead.
            if consumer.assignment_lost() {
                tracing::warn!(connector = %self.name, partitions = partitions.len(),
                    "assignment lost; dropping its partitions without a drain or commit");
                self.lose(partitions);
                return;
            }
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
            // only the partitions that move go; a member that keeps some stays ready.
            Rebalance::Revoke(_) => self.revoked(),
            Rebalance::Error(e) => {
                // librdkafka has taken the whole assignment away: whatever is still
                // delivering may belong to another member by now.
                tracing::warn!(connector = %self.name, error = %e, "rebalance error; dropping every partition");
                self.forget_all();
                self.flush();
                let _ = self.events.send(Event::Unassigned);
                self.set_assigned(false);
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            self.commit_failures.inc();
            tracing::warn!(connector = %self.name, error = %e, partitions = offsets.count(), "offset commit failed; it is retried at the next interval");
        }
    }
}

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
        if let Err(e) = self.consumer.commit(&to_tpl(commits), CommitMode::Async) {
            self.consumer.context().commit_failures.inc();
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
    assignment: u64,
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
        let ctx = consumer.context();
        let name = &ctx.name;
        if let Flow::Pause(tp, a) | Flow::Resume(tp, a, _) = &flow {
            if !ctx.assignments().is_current(tp, *a) {
                tracing::debug!(connector = %name, topic = %tp.topic, partition = tp.partition,
                    "flow change of an earlier assignment ignored");
                return;
            }
        }
        match flow {
            Flow::Pause(tp, _) => {
                tracing::debug!(connector = %name, topic = %tp.topic, partition = tp.partition, "partition paused");
                if let Err(e) = consumer.pause(&one(&tp)) {
                    tracing::warn!(connector = %name, error = %e, "pause failed");
                }
            }
            Flow::Resume(tp, a, Some(r)) => {
                self.pending.remove(&tp);
                self.rewind(consumer, tp, a, r);
            }
            // A seek still owed must happen before the partition is fetched again: the
            // records it re-reads are the ones the dispatcher waits for.
            Flow::Resume(tp, _, None) if self.pending.contains_key(&tp) => {
                tracing::debug!(connector = %name, topic = %tp.topic, partition = tp.partition, "resume waits for the owed seek");
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
                        assignment,
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
/// commits synchronously and closes the consumer (leaving the group at once). A panic
/// while polling (a bug: no record should cause one) is contained here: the sink is
/// marked failed, which takes `/readyz` down, `stop` is cancelled so the whole process
/// shuts down (and exits non-zero), and the drain below still runs so the dispatcher
/// ends instead of waiting forever. True when the poll loop panicked.
pub fn poll_thread(
    consumer: Arc<BaseConsumer<SinkContext>>,
    flow: std::sync::mpsc::Receiver<Flow>,
    stop: CancellationToken,
) -> bool {
    let ctx = consumer.context();
    let died = !contain_panic(&ctx.name, &ctx.health, &stop, || {
        poll_loop(&consumer, &flow, &stop)
    });
    match ctx.drain(Vec::new(), true) {
        Some(commits) => commit_sync(&consumer, &commits, &ctx.name),
        None => {
            tracing::warn!(connector = %ctx.name, "shutdown drain did not answer; committing nothing")
        }
    }
    ctx.set_assigned(false);
    // Closing serves one last revoke; the dispatcher is gone by then, so it commits nothing.
    consumer.unsubscribe();
    died
}

/// Runs `work`; when it panics, marks the sink failed (not ready) and cancels `stop` so
/// the process shuts down instead of running on without this sink. False on a panic.
pub(crate) fn contain_panic(
    name: &str,
    health: &Health,
    stop: &CancellationToken,
    work: impl FnOnce(),
) -> bool {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(()) => true,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            sink_failed(name, health, stop, &what);
            false
        }
    }
}

/// A sink's thread or task died: not ready from now on, and the process stops.
pub(crate) fn sink_failed(name: &str, health: &Health, stop: &CancellationToken, what: &str) {
    health.sinks_failed.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        connector = name,
        panic = what,
        "sink stopped by an internal error; shutting the process down"
    );
    stop.cancel();
}

fn poll_loop(
    consumer: &BaseConsumer<SinkContext>,
    flow: &std::sync::mpsc::Receiver<Flow>,
    stop: &CancellationToken,
) {
    let mut topics = Topics::default();
    let mut state = FlowState::default();
    while !stop.is_cancelled() {
        while let Ok(change) = flow.try_recv() {
            state.apply(consumer, change);
        }
        state.retry_seeks(consumer);
        let ctx = consumer.context();
        let mut wait = Duration::from_millis(50);
        loop {
            match consumer.poll(wait) {
                None => break,
                Some(Ok(msg)) => {
                    let (mut record, lossy) = Record::from_message(&msg, topics.get(msg.topic()));
                    if lossy > 0 {
                        ctx.lossy_header_names.inc_by(lossy as u64);
                    }
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
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_sink_thread_takes_readiness_down_and_stops_the_process() {
        let health = Health::default();
        health.broker_reachable.store(true, Ordering::Relaxed);
        let stop = CancellationToken::new();
        assert!(contain_panic("orders", &health, &stop, || {}));
        assert!(health.ready() && !stop.is_cancelled());
        assert!(!contain_panic("orders", &health, &stop, || panic!("bug")));
        assert!(!health.ready(), "/readyz must go down");
        assert!(stop.is_cancelled(), "the process must shut down");
    }

    /// The deadline of the drain `ctx` asks for, answering it at once.
    fn drain_deadline(
        ctx: &Arc<SinkContext>,
        events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
        shutdown: bool,
    ) -> Instant {
        let asking = {
            let ctx = ctx.clone();
            std::thread::spawn(move || ctx.drain(Vec::new(), shutdown))
        };
        let deadline = match events.blocking_recv() {
            Some(Event::Shutdown { reply, deadline })
            | Some(Event::Revoke {
                reply, deadline, ..
            }) => {
                let _ = reply.send(Vec::new());
                deadline
            }
            _ => panic!("no drain asked for"),
        };
        asking.join().unwrap();
        deadline
    }

    #[test]
    fn flow_changes_of_an_earlier_assignment_are_not_current() {
        let tp = TopicPartition {
            topic: "orders".into(),
            partition: 0,
        };
        let mut a = Assignments::default();
        let first = a.assign(std::slice::from_ref(&tp))[0];
        assert!(a.is_current(&tp, first));
        // Revoked while the dispatcher still held the old state, then assigned again:
        // a rewind the old state asked for must not seek the new assignment.
        a.revoke(std::slice::from_ref(&tp));
        assert!(!a.is_current(&tp, first));
        let second = a.assign(std::slice::from_ref(&tp))[0];
        assert!(second > first);
        assert!(a.is_current(&tp, second) && !a.is_current(&tp, first));
    }

    #[test]
    fn a_commit_librdkafka_reports_as_failed_is_counted() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let metrics = Metrics::new();
        let ctx = SinkContext::new(
            "orders".into(),
            tx,
            Duration::from_secs(1),
            Arc::new(Health::default()),
            &metrics,
        );
        ctx.log(
            rdkafka::config::RDKafkaLogLevel::Warning,
            "COMMITFAIL",
            "Offset commit (manual) failed for 1/2 partition(s) in join-state steady: Broker: Offset metadata string too large",
        );
        ctx.log(
            rdkafka::config::RDKafkaLogLevel::Warning,
            "COMMITFAIL",
            "Offset commit (manual) failed for 1/1 partition(s) in join-state steady: Broker: Not coordinator",
        );
        ctx.log(rdkafka::config::RDKafkaLogLevel::Info, "FETCH", "fetching");
        assert!(metrics
            .render()
            .contains("hookbridge_commit_failures_total{connector=\"orders\"} 2"));
    }

    #[test]
    fn a_partition_s_lag_series_leaves_with_the_partition() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let metrics = Metrics::new();
        let ctx = SinkContext::new(
            "orders".into(),
            tx,
            Duration::from_secs(1),
            Arc::new(Health::default()),
            &metrics,
        );
        let tp = TopicPartition {
            topic: "orders".into(),
            partition: 3,
        };
        let series =
            "hookbridge_consumer_lag{connector=\"orders\",partition=\"3\",topic=\"orders\"}";
        ctx.set_lag(&tp, 7);
        assert!(!metrics.render().contains(series), "not held: no series");
        ctx.assignments().assign(std::slice::from_ref(&tp));
        ctx.set_lag(&tp, 7);
        assert!(metrics.render().contains(&format!("{series} 7")));
        ctx.forget(std::slice::from_ref(&tp));
        assert!(!metrics.render().contains(series), "revoked: series gone");
        ctx.set_lag(&tp, 9);
        assert!(
            !metrics.render().contains(series),
            "late statistics add nothing"
        );
    }

    #[test]
    fn every_drain_after_the_stop_signal_ends_by_one_deadline() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let drain = Duration::from_secs(10);
        let ctx = Arc::new(SinkContext::new(
            "orders".into(),
            tx,
            drain,
            Arc::new(Health::default()),
            &Metrics::new(),
        ));
        let before = drain_deadline(&ctx, &mut rx, false);
        assert!(before >= Instant::now() + drain - Duration::from_secs(1));

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let stop = CancellationToken::new();
        stop.cancel();
        let signalled = Instant::now();
        runtime.block_on(ctx.stopping(stop));
        // A revoke drain that was under way when the signal came took its time...
        std::thread::sleep(Duration::from_millis(1500));
        // ...and neither the shutdown drain nor a later revoke gets a fresh timeout.
        for shutdown in [true, false] {
            let deadline = drain_deadline(&ctx, &mut rx, shutdown);
            assert!(
                deadline <= signalled + drain + Duration::from_millis(200),
                "a drain after the signal ends {:?} past the shutdown deadline",
                deadline.saturating_duration_since(signalled + drain)
            );
        }
    }
}
