//! The dispatcher of one sink: the only owner of its partitions' state. It receives
//! records from the poll thread and outcomes from delivery tasks, keeps per-key (or
//! per-partition) order, pauses partitions whose buffer is full, commits the contiguous
//! watermark on an interval, and drains partitions on revoke and shutdown.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::delivery::{Destination, Finish};
use super::record::{Record, TopicPartition};
use super::watermark::Watermark;
use crate::connectors::sink::Ordering;

/// Offsets to commit: the next offset to read, per partition.
pub type Offsets = Vec<(TopicPartition, i64)>;

/// Where to re-read a partition from after records were dropped while it was paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewind {
    pub offset: i64,
    pub epoch: u64,
}

/// What the dispatcher reacts to.
pub enum Event {
    /// A record polled from Kafka.
    Record(Record),
    /// A delivery task ended.
    Done {
        tp: TopicPartition,
        /// The partition state the delivery was started for (see `Partition::generation`).
        generation: u64,
        offset: i64,
        lane: Option<Bytes>,
        finish: Finish,
    },
    /// Partitions are being revoked: stop starting their records, let in-flight ones
    /// finish within the drain deadline, then reply with the offsets to commit.
    Revoke {
        partitions: Vec<TopicPartition>,
        reply: std::sync::mpsc::Sender<Offsets>,
    },
    /// The process is stopping: drain everything, reply with the final offsets, exit.
    Shutdown {
        reply: std::sync::mpsc::Sender<Offsets>,
    },
}

/// Consumer operations the dispatcher needs (the real consumer, or a test double).
/// Pause and resume are applied in the order they are requested.
pub trait PartitionControl: Send + Sync {
    fn pause(&self, tp: &TopicPartition);
    /// Resumes fetching; with `rewind`, first seeks back to that offset and stamps
    /// records polled from then on with that epoch.
    fn resume(&self, tp: &TopicPartition, rewind: Option<Rewind>);
    /// Commits without waiting (the periodic commit); failures are logged by the consumer.
    fn commit_async(&self, offsets: &Offsets);
}

struct Partition {
    watermark: Watermark,
    /// Records waiting behind the in-flight head of their lane (a key or the partition).
    lanes: HashMap<Bytes, VecDeque<Record>>,
    in_flight: usize,
    paused: bool,
    /// Records polled after the partition filled up are not held (that is what keeps
    /// memory bounded): the first such offset, to re-read from on resume.
    dropped_from: Option<i64>,
    /// Epoch of the latest rewind; records stamped with an earlier epoch were polled
    /// before it and are ignored.
    epoch: u64,
    /// Cancelled when the partition is revoked: its deliveries stop at the next wait.
    cancel: CancellationToken,
    committed: Option<i64>,
    /// Distinguishes this state from an earlier one of the same partition (revoked and
    /// assigned again), so a late outcome never lands on the wrong state.
    generation: u64,
}

impl Partition {
    fn new(generation: u64) -> Self {
        Self {
            generation,
            watermark: Watermark::default(),
            lanes: HashMap::new(),
            in_flight: 0,
            paused: false,
            dropped_from: None,
            epoch: 0,
            cancel: CancellationToken::new(),
            committed: None,
        }
    }
}

struct Drain {
    partitions: Vec<TopicPartition>,
    reply: std::sync::mpsc::Sender<Offsets>,
    deadline: Instant,
    exit: bool,
}

/// See the module docs.
pub struct Dispatcher {
    destination: Arc<Destination>,
    control: Arc<dyn PartitionControl>,
    events: UnboundedSender<Event>,
    partitions: HashMap<TopicPartition, Partition>,
    tasks: TaskTracker,
    ordering: Ordering,
    buffer: usize,
    commit_interval: Duration,
    drain_timeout: Duration,
    drain: Option<Drain>,
    name: Arc<str>,
    /// Source of partition generations and rewind epochs: strictly increasing.
    generations: u64,
    /// Commit intervals so far.
    ticks: u64,
}

impl Dispatcher {
    pub fn new(
        destination: Arc<Destination>,
        control: Arc<dyn PartitionControl>,
        events: UnboundedSender<Event>,
        commit_interval: Duration,
        drain_timeout: Duration,
    ) -> Self {
        let sink = &destination.sink;
        Self {
            ordering: sink.ordering,
            buffer: sink.buffer,
            name: sink.name.clone(),
            destination: destination.clone(),
            control,
            events,
            partitions: HashMap::new(),
            tasks: TaskTracker::new(),
            commit_interval,
            drain_timeout,
            drain: None,
            generations: 0,
            ticks: 0,
        }
    }

    /// Runs until a `Shutdown` event has been fully handled.
    pub async fn run(mut self, mut events: UnboundedReceiver<Event>) {
        let mut tick = tokio::time::interval(self.commit_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.drain.as_ref().map(|d| d.deadline);
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => self.handle(ev),
                    None => break,
                },
                _ = tick.tick() => self.commit_progress(),
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    tracing::warn!(connector = %self.name, "drain deadline passed; unfinished records stay uncommitted");
                    if self.finish_drain() { break; }
                }
            }
            if self.drain.is_some() && self.drain_complete() && self.finish_drain() {
                break;
            }
        }
        self.tasks.close();
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Record(r) => self.receive(r),
            Event::Done {
                tp,
                generation,
                offset,
                lane,
                finish,
            } => self.done(tp, generation, offset, lane, finish),
            Event::Revoke { partitions, reply } => self.start_drain(partitions, reply, false),
            Event::Shutdown { reply } => {
                let all = self.partitions.keys().cloned().collect();
                self.start_drain(all, reply, true);
            }
        }
    }

    fn lane(&self, r: &Record) -> Option<Bytes> {
        match self.ordering {
            // Records without a key have no order to keep.
            Ordering::Key => r.key.clone(),
            Ordering::Partition => Some(Bytes::new()),
            Ordering::None => None,
        }
    }

    fn receive(&mut self, record: Record) {
        let lane = self.lane(&record);
        let generations = &mut self.generations;
        let p = self.partitions.entry(record.tp.clone()).or_insert_with(|| {
            *generations += 1;
            Partition::new(*generations)
        });
        if p.cancel.is_cancelled() || record.epoch < p.epoch {
            // A late record of a partition being drained, or one polled before the last
            // rewind: never tracked, so the watermark cannot pass it.
            return;
        }
        if p.paused {
            // Already polled when the pause took effect. Not held: re-read on resume.
            p.dropped_from = Some(
                p.dropped_from
                    .map_or(record.offset, |d| d.min(record.offset)),
            );
            return;
        }
        p.watermark.track(record.offset);
        self.destination.gauges().buffered.inc();
        if !p.paused && p.watermark.outstanding() >= self.buffer {
            p.paused = true;
            self.control.pause(&record.tp);
            self.destination.gauges().paused.inc();
        }
        if let Some(lane) = &lane {
            match p.lanes.get_mut(lane) {
                Some(waiting) => {
                    waiting.push_back(record);
                    return;
                }
                None => {
                    p.lanes.insert(lane.clone(), VecDeque::new());
                }
            }
        }
        self.start(record, lane);
    }

    fn start(&mut self, record: Record, lane: Option<Bytes>) {
        let Some(p) = self.partitions.get_mut(&record.tp) else {
            return;
        };
        p.in_flight += 1;
        let cancel = p.cancel.clone();
        let generation = p.generation;
        let destination = self.destination.clone();
        let events = self.events.clone();
        self.tasks.spawn(async move {
            let finish = destination.deliver(&record, &cancel).await;
            let _ = events.send(Event::Done {
                tp: record.tp,
                generation,
                offset: record.offset,
                lane,
                finish,
            });
        });
    }

    fn done(
        &mut self,
        tp: TopicPartition,
        generation: u64,
        offset: i64,
        lane: Option<Bytes>,
        finish: Finish,
    ) {
        let Some(p) = self
            .partitions
            .get_mut(&tp)
            .filter(|p| p.generation == generation)
        else {
            // A delivery that outlived its partition's drain deadline: the partition was
            // handed on (and may be back with fresh state); this outcome is not ours.
            return;
        };
        p.in_flight = p.in_flight.saturating_sub(1);
        if finish == Finish::Abandoned {
            // The rest of its lane must not overtake it: those records stay unfinished too.
            if let Some(l) = &lane {
                p.lanes.remove(l);
            }
            return;
        }
        p.watermark.finish(offset);
        self.destination.gauges().buffered.dec();
        self.destination.count_finish(finish);
        if p.cancel.is_cancelled() {
            return; // being revoked: no resume, no rewind, nothing new started
        }
        if p.paused && p.watermark.outstanding() <= self.buffer / 2 {
            p.paused = false;
            // Epochs come from the dispatcher-wide counter, so they only grow for a
            // partition even across revoke and reassignment.
            let rewind = match p.dropped_from.take() {
                Some(offset) => {
                    self.generations += 1;
                    p.epoch = self.generations;
                    Some(Rewind {
                        offset,
                        epoch: p.epoch,
                    })
                }
                None => None,
            };
            self.control.resume(&tp, rewind);
            self.destination.gauges().paused.dec();
        }
        let next = lane.as_ref().and_then(|l| match p.lanes.get_mut(l) {
            Some(waiting) if !waiting.is_empty() => waiting.pop_front(),
            _ => {
                p.lanes.remove(l);
                None
            }
        });
        if let Some(next) = next {
            self.start(next, lane);
        }
    }

    /// Periodic commit of every partition whose watermark moved.
    fn commit_progress(&mut self) {
        // Every so often, commit unchanged watermarks too: an async commit that failed
        // (coordinator moved) is then repaired even on a partition that went idle.
        self.ticks += 1;
        let refresh = self.ticks % 10 == 0;
        let mut offsets = Offsets::new();
        for (tp, p) in &mut self.partitions {
            if p.cancel.is_cancelled() {
                continue;
            }
            if let Some(o) = p.watermark.committable() {
                if refresh || p.committed != Some(o) {
                    p.committed = Some(o);
                    offsets.push((tp.clone(), o));
                }
            }
        }
        if !offsets.is_empty() {
            self.control.commit_async(&offsets);
        }
    }

    fn start_drain(
        &mut self,
        partitions: Vec<TopicPartition>,
        reply: std::sync::mpsc::Sender<Offsets>,
        exit: bool,
    ) {
        if exit {
            // Shutdown: no new records arrive (the poll loop has stopped), but what is
            // buffered is still delivered, each record getting one more attempt at most,
            // so everything delivered before the exit can be committed.
            self.destination.stop_retrying();
        } else {
            // Revoke: the partitions belong to another member now. In-flight attempts
            // finish; records not yet started stay unfinished below the watermark.
            for tp in &partitions {
                if let Some(p) = self.partitions.get_mut(tp) {
                    p.cancel.cancel();
                    p.lanes.clear();
                }
            }
        }
        self.drain = Some(Drain {
            partitions,
            reply,
            deadline: Instant::now() + self.drain_timeout,
            exit,
        });
    }

    fn drain_complete(&self) -> bool {
        self.drain.as_ref().is_some_and(|d| {
            d.partitions
                .iter()
                .all(|tp| self.partitions.get(tp).is_none_or(|p| p.in_flight == 0))
        })
    }

    /// Replies with the drained partitions' offsets and forgets them. True = exit now.
    fn finish_drain(&mut self) -> bool {
        let Some(drain) = self.drain.take() else {
            return false;
        };
        let mut offsets = Offsets::new();
        for tp in &drain.partitions {
            if let Some(p) = self.partitions.remove(tp) {
                p.cancel.cancel(); // stragglers past the deadline stop at their next wait
                self.destination
                    .gauges()
                    .buffered
                    .sub(p.watermark.outstanding() as i64);
                if p.paused {
                    self.destination.gauges().paused.dec();
                }
                // librdkafka keeps an application pause across unassign and reassign:
                // clear it, or the partition would never be fetched again if it comes back.
                self.control.resume(tp, None);
                if let Some(o) = p.watermark.committable() {
                    offsets.push((tp.clone(), o));
                }
            }
        }
        tracing::info!(connector = %self.name, partitions = offsets.len(), "partitions drained");
        let _ = drain.reply.send(offsets);
        drain.exit
    }
}
