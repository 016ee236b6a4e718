//! The sink's Kafka consumer: a dedicated poll thread (so a rebalance callback may block
//! while in-flight deliveries drain) and the context that commits the drained watermark
//! synchronously before partitions are handed to another member. Every commit names its
//! partitions explicitly and carries the finished-offset map as metadata; on assignment
//! the committed maps are read back so finished records are not delivered again.
//!
//! This file holds [`SinkContext`], the state the callbacks and the poll thread share
//! (the assignment held, records polled and not yet handed over, the drain deadline);
//! each responsibility around it has its own file: [`rebalance`] (assign, revoke, lost),
//! [`commit`] (synchronous and asynchronous commits, reading committed maps back),
//! [`flow`] (pause, resume and seeks, applied between polls), [`fetched`] (the queue
//! records are taken from in batches), [`poll`] (the thread), [`positions`] (when the
//! consumer's position may be reported) and [`subscription`] (whether a sink holding
//! nothing has anything to join).

mod commit;
mod fetched;
mod flow;
mod poll;
mod positions;
mod rebalance;
mod subscription;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::TopicPartitionList;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::dispatcher::{Commit, Event};
use super::handoff::Handoff;
use super::memory;
use super::record::{Record, Topic, TopicPartition};
use crate::kafka::client_log::ClientLog;
use crate::telemetry::control::{ControlEvent, ControlTelemetry};
use crate::telemetry::{Health, Metrics};

pub use flow::Control;
pub use poll::{poll_thread, Drained};

/// Callbacks of one sink's consumer.
pub struct SinkContext {
    /// The sink's name and the metrics its control-plane events move.
    telemetry: ControlTelemetry,
    events: UnboundedSender<Event>,
    drain_timeout: Duration,
    assigned: AtomicBool,
    health: Arc<Health>,
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
    /// The queue the poll thread takes records from, which each partition is forwarded
    /// to as it is assigned ([`fetched`]). Held weakly: the poll thread owns it, and it
    /// must be gone before the consumer, whichever way the thread ends.
    fetched: std::sync::Mutex<std::sync::Weak<fetched::FetchedQueue>>,
    /// The records handed to the dispatcher and not yet taken in (their bytes and poll
    /// batches), and whether the dispatcher holds the poll thread back.
    handoff: Arc<Handoff>,
    /// librdkafka's reports and the poll's errors, each kind at most once a window.
    client_log: ClientLog,
    /// The group is joined by the KIP-848 consumer protocol, which announces no empty
    /// share (see [`subscription`]).
    consumer_protocol: bool,
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
            telemetry: ControlTelemetry::new(name, metrics),
            events,
            drain_timeout,
            assigned: AtomicBool::new(false),
            stop_deadline: Arc::default(),
            assignments: std::sync::Mutex::default(),
            health,
            batch: std::sync::Mutex::new(Vec::with_capacity(POLL_BATCH)),
            fetched: std::sync::Mutex::default(),
            handoff: Arc::default(),
            client_log: ClientLog::default(),
            consumer_protocol: false,
        }
    }

    /// The same context for a consumer that joins by the KIP-848 consumer protocol.
    pub fn under_consumer_protocol(mut self, yes: bool) -> Self {
        self.consumer_protocol = yes;
        self
    }

    /// What the dispatcher of this sink reports the records it takes in to.
    pub fn handoff(&self) -> Arc<Handoff> {
        self.handoff.clone()
    }

    fn set_fetched(&self, queue: &Arc<fetched::FetchedQueue>) {
        *self.fetched.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(queue);
    }

    /// Forwards the fetched records of `partitions` to the poll thread's queue.
    /// `fetching`: librdkafka may have fetched them already (see [`fetched::FetchedQueue::forward`]).
    fn forward(&self, partitions: &[TopicPartition], fetching: bool) {
        let queue = self
            .fetched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .upgrade();
        if let Some(q) = queue {
            q.forward(partitions, fetching);
        }
    }

    /// Every partition held now.
    fn held(&self) -> Vec<TopicPartition> {
        self.assignments().current.keys().cloned().collect()
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

    /// Sends the dispatcher something other than records; false when it is gone.
    fn report(&self, event: Event) -> bool {
        self.events.send(event).is_ok()
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
        // Counted before it is sent: taken in first, it would be subtracted (saturating)
        // before it was added, and the count would creep up until it read full for good.
        self.handoff
            .handed(records.iter().map(memory::record_bytes).sum());
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
            topic: Topic::new(e.topic()),
            partition: e.partition(),
        })
        .collect()
}

/// How long the dispatcher's reply to a drain is awaited beyond the drain deadline.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Records handed to the dispatcher per batch (one channel message and one wakeup for
/// up to this many), and taken from librdkafka at a time.
const POLL_BATCH: usize = 256;

impl SinkContext {
    /// Emits one control-plane event of this sink.
    fn emit(&self, event: ControlEvent<'_>) {
        event.emit(&self.telemetry);
    }

    /// An error a poll returned (`partition`: the `topic/partition` it names, `at` that
    /// with its offset; "" when it names none): counted always, written at most once per
    /// partition and error per `client_log::EVERY`, since while a broker is unreachable
    /// librdkafka hands one out for every reconnection failure.
    fn consumer_error(&self, error: &KafkaError, partition: &str, at: &str) {
        let held_back = self
            .client_log
            .admit(&format!("consumer {partition} {error}"));
        self.emit(ControlEvent::ConsumerError {
            error,
            at,
            held_back,
        });
    }

    /// Sets a held partition's lag; partitions not held here have no series.
    fn set_lag(&self, tp: &TopicPartition, lag: i64) {
        if !self.assignments().current.contains_key(tp) {
            return;
        }
        self.emit(ControlEvent::LagMeasured {
            topic: &tp.topic,
            partition: tp.partition,
            lag,
        });
    }

    /// The partitions left this member: their lag series go with them.
    fn forget(&self, tps: &[TopicPartition]) {
        self.assignments().revoke(tps);
        for tp in tps {
            self.emit(ControlEvent::PartitionLeft {
                topic: &tp.topic,
                partition: tp.partition,
            });
        }
    }

    /// Every partition left this member (a rebalance error).
    fn forget_all(&self) {
        let held: Vec<TopicPartition> = self.assignments().current.keys().cloned().collect();
        self.forget(&held);
    }
}
