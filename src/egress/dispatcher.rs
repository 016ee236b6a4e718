//! The dispatcher of one sink: the async shell around the pure partition core
//! ([`super::partition`]). It owns every assigned partition's state, takes polled records
//! in batches, runs the deliveries the core starts (as futures it polls itself: no task or
//! channel hop per record), carries out pause and resume, holds the poll thread back
//! while enough started records wait for a delivery slot, commits each partition's
//! watermark with its finished-offset map soon after it changes (at most once per commit
//! interval, so a crash costs little and a busy sink sends few commits), and drains
//! partitions on revoke and shutdown.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use super::delivery::{Destination, Finish, Stop};
use super::finished::FinishedMap;
use super::handoff::{Handoff, ReadyBacklog};
use super::memory::{self, MemoryBudget};
use super::partition::{Admitted, LaneId, Partition, Rewind, Sequence, Step};
use super::record::{Record, TopicPartition};
use crate::connectors::sink::Ordering;
use crate::telemetry::sink::{
    Buffered, Committed, Paused, Refetched, SinkTelemetry, SkippedOnResume,
};
use alarm::Alarm;
use batching::Batching;
use drain::Drain;

/// One partition's commit: the watermark and the finished-offset map above it, taken from
/// one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub tp: TopicPartition,
    pub offset: i64,
    pub metadata: String,
}

/// What the dispatcher reacts to.
pub enum Event {
    /// Records polled from Kafka, in poll order.
    Records(Vec<Record>),
    /// The consumer's position in partitions, each with the flow epoch it was read
    /// under, read after every record below it was handed over ([`Partition::passed`]).
    Positions(Vec<(TopicPartition, i64, u64)>),
    /// Partitions given to this member, with what their commit metadata says was
    /// finished already (`None`: nothing known).
    /// Each comes with its assignment number, which the partition's flow changes carry.
    Assigned(Vec<(TopicPartition, Option<FinishedMap>, u64)>),
    /// Partitions are being revoked: stop starting their records, let in-flight ones
    /// finish until `deadline`, then reply with the commits to make.
    Revoke {
        partitions: Vec<TopicPartition>,
        reply: std::sync::mpsc::Sender<Vec<Commit>>,
        deadline: Instant,
    },
    /// The whole assignment is gone without a drain (a rebalance error): forget every
    /// partition at once, committing nothing (another member may own them by now).
    Unassigned,
    /// These partitions are lost without a drain: forget them at once, committing
    /// nothing. Partitions not named stay assigned and keep delivering.
    Lost(Vec<TopicPartition>),
    /// The process is stopping: drain everything by `deadline`, reply, exit.
    Shutdown {
        reply: std::sync::mpsc::Sender<Vec<Commit>>,
        deadline: Instant,
    },
}

/// Consumer operations the dispatcher needs (the real consumer, or a test double).
/// Pause and resume are applied in the order they are requested.
/// Each names the partition's assignment it is meant for: one meant for an earlier
/// assignment of the partition is ignored.
pub trait PartitionControl: Send + Sync {
    fn pause(&self, tp: &TopicPartition, assignment: u64);
    /// Resumes fetching; with `rewind`, first seeks back to that offset and stamps
    /// records polled from then on with that epoch.
    fn resume(&self, tp: &TopicPartition, assignment: u64, rewind: Option<Rewind>);
    /// Commits without waiting (the periodic commit); failures are logged by the consumer.
    fn commit_async(&self, commits: &[Commit]);
    /// The partition's state is gone (drained, or replaced by a new assignment): clear
    /// any pause and any seek still owed, or a partition that comes back would never be
    /// fetched again (librdkafka keeps an application pause across reassignment).
    fn release(&self, tp: &TopicPartition, assignment: u64);
}

/// Commit timing and the metadata budget.
#[derive(Debug, Clone, Copy)]
pub struct CommitPolicy {
    /// Least time between two commits of the sink. A change (a record finished) is
    /// committed as soon as this much time has passed since the last commit.
    pub interval: Duration,
    /// Largest finished-offset map written per partition, in bytes.
    pub metadata_budget: usize,
}

/// Records taken in or given up by one event, and the bytes they hold.
#[derive(Default)]
struct Held {
    records: i64,
    bytes: u64,
}

/// A delivery's result, tagged with the partition state it was started for.
struct Done {
    tp: TopicPartition,
    generation: u64,
    offset: i64,
    lane: Option<LaneId>,
    finish: Finish,
    /// What the record counted against the memory budget.
    bytes: u64,
}

/// What a dispatcher future ends with.
enum Ended {
    /// One record's delivery.
    One(Done),
    /// A batch's records, in batch order.
    Many(Vec<Done>),
    /// A record of a batching sink shaped (see `batching`).
    Shaped(Box<Ready>, batching::Shaped<'static>),
}

type Deliveries = FuturesUnordered<Pin<Box<dyn Future<Output = Ended> + Send>>>;

/// A record the core started, waiting for a ticket to become a delivery.
struct Ready {
    tp: TopicPartition,
    generation: u64,
    stops: Arc<Stops>,
    offset: i64,
    lane: Option<LaneId>,
    record: Record,
}

/// What stops the deliveries of one partition state. Its records share one: cloning a
/// token takes a lock (its tree of children), cloning this `Arc` counts a reference.
struct Stops {
    /// Cancelled when the partition is revoked: its deliveries stop at the next wait.
    cancel: CancellationToken,
    /// Cancelled when the partition state is given up (drain over or deadline passed):
    /// attempts still in progress are cut off.
    abort: CancellationToken,
}

impl Stops {
    fn stop(&self) -> Stop<'_> {
        Stop {
            cancel: &self.cancel,
            abort: &self.abort,
        }
    }
}

/// An assigned partition: the pure core plus what cancels its deliveries.
struct Assigned {
    core: Partition<Record, LaneId>,
    stops: Arc<Stops>,
    /// The consumer's number for this assignment of the partition.
    assignment: u64,
    /// Finished records above the watermark and map size at the last commit.
    map_stats: (i64, usize),
    /// Bytes of its tracked, unfinished records, counted against the memory budget.
    bytes: u64,
}

/// See the module docs.
pub struct Dispatcher {
    destination: Arc<Destination>,
    /// The sink's figures the dispatcher keeps: buffered records, paused partitions,
    /// commits. A delivery's own are the destination's to record.
    telemetry: Arc<SinkTelemetry>,
    control: Arc<dyn PartitionControl>,
    partitions: HashMap<TopicPartition, Assigned>,
    ordering: Ordering,
    /// Keys each record key's [`LaneId`] hash: record keys come from producers.
    lanes: std::collections::hash_map::RandomState,
    buffer: usize,
    policy: CommitPolicy,
    drains: Vec<Drain>,
    seq: Sequence,
    /// Steps returned by the core, reused between calls.
    steps: Vec<Step<Record, LaneId>>,
    /// Started records waiting for a delivery ticket, in start order.
    ready: VecDeque<Ready>,
    /// A record finished (or was skipped) since the last commit.
    dirty: bool,
    /// The process-wide budget for held records.
    memory: Arc<MemoryBudget>,
    /// Some partition paused for the memory budget and waits for room.
    waiting_for_memory: bool,
    /// When the last commit was handed to the consumer.
    last_commit: Instant,
    /// The batches of a sink with `batch` set.
    batching: Option<Batching>,
    /// Told the bytes of each poll batch taken in, which the poll thread waits for, and
    /// when to hold the poll thread back for the records waiting in `ready`.
    handoff: Arc<Handoff>,
    backlog: ReadyBacklog,
}

/// Unchanged positions are committed again this often: an async commit that failed
/// (coordinator moved) is then repaired even on a partition that went idle.
const REFRESH: Duration = Duration::from_secs(5);

/// Events taken from the consumer per turn of the loop: a few poll batches (256 records
/// each), so a backlog arriving at once is admitted in slices between the deliveries
/// that end, instead of leaving finished requests unanswered (and the destination idle)
/// while thousands of records are admitted.
const EVENTS_PER_TURN: usize = 4;

/// How often partitions paused for the memory budget look for room again.
const MEMORY_CHECK: Duration = Duration::from_millis(100);

impl Dispatcher {
    pub fn new(
        destination: Arc<Destination>,
        telemetry: Arc<SinkTelemetry>,
        control: Arc<dyn PartitionControl>,
        policy: CommitPolicy,
        memory: Arc<MemoryBudget>,
        handoff: Arc<Handoff>,
    ) -> Self {
        let destination_concurrency = destination.concurrency();
        Self {
            batching: (destination.batch_rules()).map(|rules| {
                Batching::new(
                    rules,
                    destination.shaper().is_inline(),
                    destination.concurrency(),
                )
            }),
            ordering: destination.ordering(),
            lanes: std::collections::hash_map::RandomState::new(),
            buffer: destination.buffer(),
            destination,
            telemetry,
            control,
            partitions: HashMap::new(),
            policy,
            drains: Vec::new(),
            seq: Sequence::default(),
            steps: Vec::new(),
            ready: VecDeque::new(),
            dirty: false,
            memory,
            waiting_for_memory: false,
            // The first change is committed at once.
            last_commit: Instant::now()
                .checked_sub(policy.interval)
                .unwrap_or_else(Instant::now),
            handoff,
            backlog: ReadyBacklog::new(destination_concurrency),
        }
    }

    /// Runs until a `Shutdown` event has been fully handled (or the poll side is gone).
    pub async fn run(mut self, mut events: UnboundedReceiver<Event>) {
        let mut deliveries = Deliveries::new();
        let mut refresh = tokio::time::interval(REFRESH.max(self.policy.interval));
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        refresh.reset();
        // Memory freed by another sink is noticed within this.
        let mut memory_check = tokio::time::interval(MEMORY_CHECK);
        memory_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(EVENTS_PER_TURN);
        let destination = self.destination.clone();
        let (mut due_alarm, mut commit_alarm, mut drain_alarm) =
            (Alarm::new(), Alarm::new(), Alarm::new());
        loop {
            // An alarm's branch below is enabled only while the alarm is armed.
            let due_armed = due_alarm.set(self.batching.as_ref().and_then(Batching::next_due));
            let commit_at = self.dirty.then(|| self.last_commit + self.policy.interval);
            let commit_armed = commit_alarm.set(commit_at);
            let drain_armed = drain_alarm.set(self.drain_deadline());
            tokio::select! {
                _ = destination.ticket_returned(), if !self.ready.is_empty() || self.batching.as_ref().is_some_and(Batching::has_sealed) => {
                    self.start_ready(&mut deliveries);
                }
                Some(ended) = deliveries.next(), if !deliveries.is_empty() => match ended {
                    Ended::One(done) => self.ended([done], &mut deliveries),
                    Ended::Many(done) => self.ended(done, &mut deliveries),
                    Ended::Shaped(r, shaped) => self.shaped(*r, shaped, &mut deliveries),
                },
                () = &mut due_alarm, if due_armed => {
                    self.send_due(&mut deliveries);
                }
                n = events.recv_many(&mut batch, EVENTS_PER_TURN) => {
                    if n == 0 {
                        break;
                    }
                    for ev in batch.drain(..) {
                        self.handle(ev, &mut deliveries);
                    }
                }
                () = &mut commit_alarm, if commit_armed => {
                    self.commit_progress(false);
                }
                _ = refresh.tick() => self.commit_progress(true),
                _ = memory_check.tick(), if self.waiting_for_memory => {
                    self.resume_for_memory(&mut deliveries);
                }
                () = &mut drain_alarm, if drain_armed => {
                    tracing::warn!(connector = %self.destination.name(), "drain deadline passed; unfinished records stay uncommitted");
                }
            }
            if self.finish_drains() {
                break;
            }
            self.pace_polling();
        }
        self.handoff.hold(false);
    }

    /// Holds the poll thread back while enough started records wait for a delivery slot
    /// (see [`ReadyBacklog`]), and lets it go once they are few.
    fn pace_polling(&mut self) {
        if let Some(held) = self.backlog.update(self.ready.len()) {
            self.handoff.hold(held);
        }
    }

    fn handle(&mut self, ev: Event, deliveries: &mut Deliveries) {
        match ev {
            Event::Records(records) => self.receive(records, deliveries),
            Event::Positions(positions) => {
                for (tp, to, epoch) in positions {
                    if let Some(p) = self.partitions.get_mut(&tp) {
                        self.dirty |= p.core.passed(to, epoch);
                    }
                }
            }
            Event::Assigned(partitions) => self.assign(partitions),
            Event::Revoke {
                partitions,
                reply,
                deadline,
            } => self.start_drain(partitions, reply, deadline, false),
            Event::Shutdown { reply, deadline } => {
                let all = self.partitions.keys().cloned().collect();
                self.start_drain(all, reply, deadline, true);
            }
            Event::Unassigned => self.unassign_all(),
            Event::Lost(partitions) => {
                for tp in partitions {
                    self.remove_state(&tp);
                }
            }
        }
    }

    fn assign(&mut self, partitions: Vec<(TopicPartition, Option<FinishedMap>, u64)>) {
        for (tp, resumed, assignment) in partitions {
            let generation = self.seq.advance();
            // A state left from an earlier assignment is replaced: its late outcomes
            // carry the old generation and are ignored.
            self.remove_state(&tp);
            self.partitions.insert(
                tp,
                Assigned {
                    core: Partition::new(generation, self.buffer, resumed),
                    stops: Arc::new(Stops {
                        cancel: CancellationToken::new(),
                        abort: CancellationToken::new(),
                    }),
                    assignment,
                    map_stats: (0, 0),
                    bytes: 0,
                },
            );
        }
    }

    fn lane(&self, r: &Record) -> Option<LaneId> {
        match self.ordering {
            // Records without a key have no order to keep.
            Ordering::Key => (r.key.as_ref()).map(|k| LaneId::of(&self.lanes, k)),
            Ordering::Partition => Some(LaneId::PARTITION),
            Ordering::None => None,
        }
    }

    fn receive(&mut self, records: Vec<Record>, deliveries: &mut Deliveries) {
        let (mut skipped, mut refetched) = (0u64, 0u64);
        // The records tracked and their bytes go to the shared gauges and budget once
        // per poll batch: an atomic update per record was a measurable part of a
        // batching sink's CPU. The budget is read with them counted, record by record.
        let mut held = Held::default();
        // Every record of the batch, tracked or not, as the poll thread counted it.
        let mut handed = 0;
        for record in records {
            let bytes = memory::record_bytes(&record);
            handed += bytes;
            let lane = self.lane(&record);
            let Some(p) = self.partitions.get_mut(&record.tp) else {
                // Not (or no longer) assigned here: never tracked, never committed.
                continue;
            };
            let (offset, epoch, tp) = (record.offset, record.epoch, record.tp.clone());
            let leader_epoch = record.leader_epoch;
            match (p.core).admit_from_leader(
                offset,
                epoch,
                leader_epoch,
                lane,
                record,
                &mut self.steps,
            ) {
                Admitted::Tracked => {
                    held.records += 1;
                    held.bytes += bytes;
                    p.bytes += bytes;
                    if self.memory.spent_with(held.bytes) {
                        p.core.memory_spent(&mut self.steps);
                        self.waiting_for_memory |= p.core.is_memory_paused();
                    }
                }
                Admitted::Skipped => {
                    skipped += 1;
                    self.dirty = true;
                }
                // Both are fetched again: dropped ones once the partition resumes,
                // stale copies (of a rewind) once its seek takes effect.
                Admitted::Dropped | Admitted::Stale => refetched += 1,
                Admitted::Ignored => {}
            }
            self.carry_out(&tp, deliveries);
        }
        // Held back before the batch counts as taken in: the other way round, the room it
        // makes would wake the poll thread to hand over more first.
        self.pace_polling();
        self.handoff.taken(handed);
        if held.records > 0 {
            self.memory.add(held.bytes);
            Buffered(held.records).emit(&self.telemetry);
        }
        if skipped > 0 {
            SkippedOnResume { records: skipped }.emit(&self.telemetry);
        }
        if refetched > 0 {
            Refetched { records: refetched }.emit(&self.telemetry);
        }
    }

    /// Carries out the steps the core returned for partition `tp`.
    fn carry_out(&mut self, tp: &TopicPartition, deliveries: &mut Deliveries) {
        if self.steps.is_empty() {
            return;
        }
        let Some(p) = self.partitions.get(tp) else {
            self.steps.clear();
            return;
        };
        for step in self.steps.drain(..) {
            match step {
                Step::Start { offset, lane, item } => self.ready.push_back(Ready {
                    tp: tp.clone(),
                    generation: p.core.generation(),
                    stops: p.stops.clone(),
                    offset,
                    lane,
                    record: item,
                }),
                Step::Pause => {
                    self.control.pause(tp, p.assignment);
                    Paused(1).emit(&self.telemetry);
                }
                Step::Resume(rewind) => {
                    self.control.resume(tp, p.assignment, rewind);
                    Paused(-1).emit(&self.telemetry);
                }
            }
        }
        self.start_ready(deliveries);
    }

    /// Turns ready records into deliveries while tickets are free.
    fn start_ready(&mut self, deliveries: &mut Deliveries) {
        if self.batching.is_some() {
            return self.collect_ready(deliveries);
        }
        while !self.ready.is_empty() {
            let Some(ticket) = self.destination.ticket() else {
                return;
            };
            let Some(r) = self.ready.pop_front() else {
                return;
            };
            let destination = self.destination.clone();
            deliveries.push(Box::pin(async move {
                let finish = (destination)
                    .deliver(&r.record, r.stops.stop(), Some(ticket))
                    .await;
                Ended::One(r.done(finish))
            }));
        }
    }

    /// Forgets the ready records of one partition state: they were started by the core
    /// and end now, unfinished, without a delivery.
    fn purge_ready(&mut self, tp: &TopicPartition, generation: u64) {
        let mut abandoned = Vec::new();
        self.ready.retain_mut(|r| {
            let ours = &r.tp == tp && r.generation == generation;
            if ours {
                abandoned.push((r.offset, r.lane.take()));
            }
            !ours
        });
        abandoned.extend(self.purge_batches(tp, generation));
        if let Some(p) = self
            .partitions
            .get_mut(tp)
            .filter(|p| p.core.generation() == generation)
        {
            for (offset, lane) in abandoned {
                p.core.abandon(offset, lane);
            }
        }
    }

    /// Deliveries ended: each record finishes in its partition, and what they held is
    /// given back to the gauges and the budget at once (a batch's records together).
    fn ended(&mut self, done: impl IntoIterator<Item = Done>, deliveries: &mut Deliveries) {
        let mut freed = Held::default();
        for d in done {
            self.done(d, &mut freed, deliveries);
        }
        if freed.records == 0 {
            return;
        }
        self.memory.sub(freed.bytes);
        Buffered(-freed.records).emit(&self.telemetry);
        if self.waiting_for_memory {
            self.resume_for_memory(deliveries);
        }
    }

    fn done(&mut self, done: Done, freed: &mut Held, deliveries: &mut Deliveries) {
        let Some(p) = self
            .partitions
            .get_mut(&done.tp)
            .filter(|p| p.core.generation() == done.generation)
        else {
            // A delivery that outlived its partition's drain: the partition was handed
            // on (and may be back with fresh state); this outcome is not ours.
            return;
        };
        if done.finish == Finish::Abandoned {
            p.core.abandon(done.offset, done.lane);
            return;
        }
        p.core
            .finish(done.offset, done.lane, &mut self.seq, &mut self.steps);
        p.bytes = p.bytes.saturating_sub(done.bytes);
        freed.records += 1;
        freed.bytes += done.bytes;
        self.dirty = true;
        self.carry_out(&done.tp, deliveries);
    }

    /// Resumes the partitions paused for the memory budget once it has room again.
    fn resume_for_memory(&mut self, deliveries: &mut Deliveries) {
        if !self.memory.has_room() {
            return;
        }
        self.waiting_for_memory = false;
        let paused: Vec<TopicPartition> = (self.partitions.iter())
            .filter(|(_, p)| p.core.is_memory_paused())
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in paused {
            if let Some(p) = self.partitions.get_mut(&tp) {
                p.core.memory_freed(&mut self.seq, &mut self.steps);
            }
            self.carry_out(&tp, deliveries);
        }
    }

    /// Commits every partition whose position or map changed; with `refresh`, the
    /// unchanged ones too.
    fn commit_progress(&mut self, refresh: bool) {
        self.dirty = false;
        self.last_commit = Instant::now();
        let budget = self.policy.metadata_budget;
        let mut commits = Vec::new();
        let mut truncated = 0;
        for (tp, p) in &mut self.partitions {
            if p.core.is_revoked() {
                continue;
            }
            let Some((snap, encoded)) = p.core.commit(refresh, budget) else {
                continue;
            };
            p.map_stats = (snap.finished_above(), encoded.text.len());
            truncated += usize::from(encoded.truncated);
            commits.push(Commit {
                tp: tp.clone(),
                offset: snap.base,
                metadata: encoded.text,
            });
        }
        // Over every partition held, not only those committed now.
        let stats = Committed {
            finished_above: self.partitions.values().map(|p| p.map_stats.0).sum(),
            metadata_bytes: (self.partitions.values().map(|p| p.map_stats.1))
                .max()
                .unwrap_or(0),
            truncated,
        };
        if !commits.is_empty() {
            self.control.commit_async(&commits);
            stats.emit(&self.telemetry);
        }
    }
}

mod alarm;
mod batching;
mod bodies;
mod drain;
mod open_batches;

#[cfg(test)]
mod tests;
