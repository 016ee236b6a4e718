//! The poll thread of a sink: polls librdkafka, stamps each record with its partition's
//! epoch and hands records to the dispatcher in batches, applies flow changes between
//! polls, and on stop drains, commits synchronously and leaves the group. A panic in it
//! is contained: the sink is marked failed and the process shuts down.

use foldhash::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::Offset;
use tokio_util::sync::CancellationToken;

use super::commit::{self, commit_sync};
use super::fetched::{Fetched, FetchedQueue, Taken, REFORWARD};
use super::flow::{Flow, FlowState};
use super::positions::PastErrors;
use super::subscription;
use super::{SinkContext, POLL_BATCH};
use crate::egress::dispatcher::Event;
use crate::egress::record::{topic_name, Record, Topic, TopicPartition};
use crate::telemetry::control::ControlEvent;

/// Turns the topic names of polled messages into [`Topic`]s. A poll's records come in
/// runs of one topic, so the last topic is tried first (a compare of a few bytes, no hash
/// and no UTF-8 check); another name is looked up once.
#[derive(Default)]
struct Topics {
    last: Option<Topic>,
    known: HashMap<Box<[u8]>, Topic>,
}

impl Topics {
    fn get(&mut self, name: &[u8]) -> Topic {
        if let Some(t) = self.last.filter(|t| t.as_bytes() == name) {
            return t;
        }
        let t = match self.known.get(name) {
            Some(t) => *t,
            None => {
                // Kafka topic names are ASCII; anything else is read lossily.
                let t = Topic::new(&String::from_utf8_lossy(name));
                self.known.insert(name.into(), t);
                t
            }
        };
        self.last = Some(t);
        t
    }
}

/// Polls until `stop`, forwarding records to the dispatcher in batches; then drains,
/// commits synchronously and closes the consumer (leaving the group at once). A panic
/// while polling (a bug: no record should cause one) is contained here: the sink is
/// marked failed, which takes `/readyz` down, `stop` is cancelled so the whole process
/// shuts down (and exits non-zero), and the drain below still runs so the dispatcher
/// ends instead of waiting forever. `None` when the poll loop died (panicked, or could
/// not start: the consumer had no queue of its own). `check_items`: each record's value
/// is checked as a batch item here ([`Record::check_item`]).
pub fn poll_thread(
    consumer: Arc<BaseConsumer<SinkContext>>,
    flow: std::sync::mpsc::Receiver<Flow>,
    stop: CancellationToken,
    check_items: bool,
) -> Option<Drained> {
    let ctx = consumer.context();
    // SAFETY: the consumer outlives the queue: this thread holds the only strong
    // reference, dropped before its reference to the consumer, on a panic too.
    let fetched = unsafe { FetchedQueue::new(consumer.client().native_ptr()) }.map(Arc::new);
    let died = match &fetched {
        Some(q) => {
            ctx.set_fetched(q);
            !contain_panic(ctx, &stop, || {
                poll_loop(&consumer, &flow, &stop, check_items, q, REFORWARD)
            })
        }
        // Only a consumer without a group has no queue of its own: a sink's always has one.
        None => {
            ctx.failed(&stop, "poll thread: the consumer has no group queue");
            true
        }
    };
    let committed = match ctx.drain(Vec::new(), true) {
        // A stop right after another member joined or left finds the group between
        // generations: its commit is tried again until the group settles.
        Some(commits) => {
            let settle_until = Instant::now() + ctx.bounded(commit::SETTLE);
            commit_sync(&consumer, &commits, Some(settle_until))
        }
        None => {
            ctx.emit(ControlEvent::ShutdownDrainUnanswered);
            false
        }
    };
    ctx.set_assigned(false);
    // Closing serves one last revoke; the dispatcher is gone by then, so it commits nothing.
    consumer.unsubscribe();
    drop(fetched);
    match (died, committed) {
        (true, _) => None,
        (false, true) => Some(Drained::Committed),
        (false, false) => Some(Drained::NotCommitted),
    }
}

/// How a sink's run ended once it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Its drained watermark was committed (or there was nothing to commit).
    Committed,
    /// Its final commit was refused or not answered (or the dispatcher did not answer
    /// the drain): what it delivered after its last commit is delivered again by the
    /// group's next owner.
    NotCommitted,
}

/// Runs `work`; when it panics, marks the sink failed (not ready) and cancels `stop` so
/// the process shuts down instead of running on without this sink. False on a panic.
pub(super) fn contain_panic(
    ctx: &SinkContext,
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
            ctx.failed(stop, &what);
            false
        }
    }
}

impl SinkContext {
    /// A sink's thread or task died: not ready from now on, and the process stops.
    pub(crate) fn failed(&self, stop: &CancellationToken, what: &str) {
        self.health.sinks_failed.fetch_add(1, Ordering::Relaxed);
        self.emit(ControlEvent::SinkFailed { what });
        stop.cancel();
    }
}

/// How long the poll thread waits for a record when none is there; rebalances and other
/// events wait at most this long to be served.
pub(super) const WAIT: Duration = Duration::from_millis(50);

/// The poll thread's turns until `stop` (see [`poll_thread`]); every held partition is
/// forwarded to `fetched` again every `reforward_every` ([`REFORWARD`]).
pub(super) fn poll_loop(
    consumer: &BaseConsumer<SinkContext>,
    flow: &std::sync::mpsc::Receiver<Flow>,
    stop: &CancellationToken,
    check_items: bool,
    fetched: &FetchedQueue,
    reforward_every: Duration,
) {
    let ctx = consumer.context();
    let mut taker = Taker {
        topics: Topics::default(),
        state: FlowState::default(),
        check_items,
        errored: PastErrors::default(),
        check_topics: false,
    };
    let mut taken = Taken::new(POLL_BATCH);
    ctx.handoff.poller();
    let mut reforward = Every::new(Instant::now(), reforward_every);
    let mut positions = Every::new(Instant::now(), POSITIONS);
    let mut topics = Every::new(Instant::now(), subscription::CHECK_EVERY);
    let mut flood = Flood::default();
    while !stop.is_cancelled() {
        while let Ok(change) = flow.try_recv() {
            taker.state.apply(consumer, change);
        }
        taker.state.retry_seeks(consumer);
        if reforward.due(Instant::now()) {
            fetched.forward(&ctx.held(), true);
        }
        let served = taker.serve_consumer_queue(consumer, fetched);
        let wait = match flood.turn(served, fetched.records_may_wait_there()) {
            Turn::HoldBack => {
                if !ctx.flush() {
                    return;
                }
                continue;
            }
            Turn::Take(wait) => wait,
        };
        // The dispatcher is behind, or holds this thread back while enough records wait
        // for a delivery slot: what librdkafka fetched stays there (its prefetch is
        // bounded) until the dispatcher has taken in enough of what it was handed and
        // lets go.
        if ctx.handoff.is_full() {
            fetched.polled_without_taking();
            ctx.handoff.wait_for_room(ROOM_WAIT);
            continue;
        }
        fetched.take(&mut taken, wait);
        for message in taken.messages.drain(..) {
            taker.fetched(ctx, &message);
        }
        if !ctx.flush() {
            return;
        }
        // Right after a flush: every record taken so far is with the dispatcher.
        if positions.due(Instant::now()) && !taker.report_positions(consumer) {
            return;
        }
        if std::mem::take(&mut taker.check_topics) | topics.due(Instant::now()) {
            ctx.check_subscription(consumer);
        }
    }
}

/// How often the poll thread tells the dispatcher where the consumer is in each
/// partition (see [`Partition::passed`](crate::egress::partition::Partition::passed)).
pub(super) const POSITIONS: Duration = Duration::from_secs(1);

/// How long the poll thread waits at most for the dispatcher to make room before it
/// serves the consumer's queue again: rebalances, commit results and errors wait at most
/// this long meanwhile (an event there ends a wait for records at once, not this one).
/// The dispatcher wakes it as soon as it makes room or lets it go.
const ROOM_WAIT: Duration = Duration::from_millis(10);

/// What serving the consumer's own queue left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Served {
    /// It gave records: records fetched after them wait for the next turn.
    Records,
    /// It is empty.
    Empty,
    /// It still holds events (a batch of them was served).
    NotEmpty,
}

/// One item taken from the consumer's own queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Polled {
    /// A record (of a partition not forwarded to the fetched queue when it was fetched).
    Record,
    /// Anything else: a rebalance, a commit result, an error, a log line, statistics.
    Event,
}

impl Served {
    /// Serves the consumer's own queue, one item of `next` at a time (`None`: it is
    /// empty), until it is empty or `batch` items were served.
    pub(super) fn serve(batch: usize, mut next: impl FnMut() -> Option<Polled>) -> Self {
        let mut served = Self::NotEmpty;
        for _ in 0..batch {
            match next() {
                None if served == Self::Records => return Self::Records,
                None => return Self::Empty,
                Some(Polled::Record) => served = Self::Records,
                Some(Polled::Event) => {}
            }
        }
        served
    }
}

/// Turns in a row the consumer's own queue may hold up the fetched records while it does
/// not empty.
pub(super) const BUSY_TURNS: u32 = 64;

/// What a turn of the poll loop does once the consumer's own queue was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Turn {
    /// Takes no fetched record: the next turn serves the consumer's queue first again.
    HoldBack,
    /// Takes fetched records, waiting at most this long for the first.
    Take(Duration),
}

/// The turns in a row events kept the consumer's own queue from emptying. Rebalances,
/// commit results, errors, logs, statistics: all of them come first, and a record that
/// reached the consumer's queue (before its partition was forwarded) before any fetched
/// after it. Events that keep that queue from emptying for [`BUSY_TURNS`] turns no longer
/// hold fetched records back, unless a record may still wait behind them
/// ([`FetchedQueue::records_may_wait_there`](super::fetched::FetchedQueue::records_may_wait_there)):
/// taken first, the ones fetched after it could finish and the watermark pass it.
#[derive(Debug, Default)]
pub(super) struct Flood {
    turns: u32,
}

impl Flood {
    /// What this turn does, given what serving the consumer's queue left and whether a
    /// record may still wait there behind its events (`behind`).
    pub(super) fn turn(&mut self, served: Served, behind: bool) -> Turn {
        match served {
            Served::Records => return Turn::HoldBack,
            Served::Empty => {}
            Served::NotEmpty => {
                // Saturating: while a record may wait behind them, a flood holds
                // fetched records back for as many turns as it lasts.
                self.turns = self.turns.saturating_add(1);
                if self.turns < BUSY_TURNS || behind {
                    return Turn::HoldBack;
                }
            }
        }
        // Events still waiting (a flood held them past `BUSY_TURNS`) must not also wait
        // out `WAIT`: their arrival woke no one, the queue was not empty.
        let wait = if self.turns > 0 { Duration::ZERO } else { WAIT };
        self.turns = 0;
        Turn::Take(wait)
    }
}

/// When the poll loop does something periodic (forwards every held partition to the
/// fetched queue again, [`REFORWARD`]; reports positions, [`POSITIONS`]; asks whether a
/// waiting sink's topics exist, [`subscription::CHECK_EVERY`]): every `every`, counted
/// from the last time.
#[derive(Debug)]
pub(super) struct Every {
    every: Duration,
    next: Instant,
}

impl Every {
    /// The first time is `every` from `now`.
    pub(super) fn new(now: Instant, every: Duration) -> Self {
        Self {
            every,
            next: now + every,
        }
    }

    /// Whether it is time at `now`; when it is, the next time is `every` from `now`.
    pub(super) fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + self.every;
        true
    }
}

/// What the poll thread keeps between polls to turn messages into records.
struct Taker {
    topics: Topics,
    state: FlowState,
    check_items: bool,
    /// Partitions whose position is past an error, not a record: not reported.
    errored: PastErrors,
    /// librdkafka reported a subscribed topic missing: ask the cluster about them all
    /// ([`subscription`](super::subscription)) before the next periodic check.
    check_topics: bool,
}

impl Taker {
    /// Serves the consumer's own queue until it is empty, or up to a batch of events or
    /// records ([`Served::serve`]).
    fn serve_consumer_queue(
        &mut self,
        consumer: &BaseConsumer<SinkContext>,
        fetched: &FetchedQueue,
    ) -> Served {
        let ctx = consumer.context();
        Served::serve(POLL_BATCH, || {
            if fetched.consumer_queue_is_empty() {
                return None;
            }
            // An event other than a record reads as `None` here.
            Some(match consumer.poll(Duration::ZERO) {
                None => Polled::Event,
                Some(Ok(msg)) => {
                    // SAFETY: `msg` is live for this block.
                    let topic = self.topics.get(unsafe { topic_name(msg.ptr()) });
                    self.record(ctx, Record::from_message(&msg, topic));
                    Polled::Record
                }
                Some(Err(e)) => {
                    ctx.consumer_error(&e, "", "");
                    if e.rdkafka_error_code() == Some(RDKafkaErrorCode::UnknownTopicOrPartition) {
                        self.check_topics = true;
                    }
                    Polled::Event
                }
            })
        })
    }

    /// Tells the dispatcher the consumer's position in each partition it holds, stamped
    /// like a record with the partition's epoch: one past the last message taken, a
    /// transaction marker included, and every record below it has been handed over
    /// (call it right after a flush). Not for a partition whose position is past an
    /// error ([`PastErrors`]). False when the dispatcher is gone.
    fn report_positions(&mut self, consumer: &BaseConsumer<SinkContext>) -> bool {
        let Ok(list) = consumer.position() else {
            return true; // reported again next time
        };
        let positions: Vec<_> = (list.elements().iter())
            .filter_map(|e| match e.offset() {
                Offset::Offset(to) => {
                    let tp = TopicPartition {
                        topic: self.topics.get(e.topic().as_bytes()),
                        partition: e.partition(),
                    };
                    if self.errored.hides(&tp) {
                        return None;
                    }
                    let epoch = self.state.epoch(&tp);
                    Some((tp, to, epoch))
                }
                _ => None, // nothing taken since it was assigned or rewound
            })
            .collect();
        positions.is_empty() || consumer.context().report(Event::Positions(positions))
    }

    /// A message taken from the sink's fetched queue: a record, or a consumer error.
    fn fetched(&mut self, ctx: &SinkContext, message: &Fetched) {
        let code = message.error();
        if code != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            // As rust-rdkafka reads an error message on the consumer's queue.
            let error = if code == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF {
                KafkaError::PartitionEOF(message.partition())
            } else {
                KafkaError::MessageConsumption(RDKafkaErrorCode::from(code))
            };
            // Where it stopped, so a record that cannot be read (a codec this build
            // lacks, a corrupt batch) can be found. Reports are limited per partition
            // and error, not per offset: one recurring at each offset is one kind.
            let partition = format!(
                "{}/{}",
                String::from_utf8_lossy(message.topic()),
                message.partition()
            );
            let at = format!("{partition}@{}", message.offset());
            ctx.consumer_error(&error, &partition, &at);
            if message.offset() >= 0 && message.partition() >= 0 {
                let tp = TopicPartition {
                    topic: self.topics.get(message.topic()),
                    partition: message.partition(),
                };
                self.errored.error(tp, message.offset());
            }
            return;
        }
        let topic = self.topics.get(message.topic());
        // SAFETY: `message` is live (it is destroyed when dropped) and not an error.
        self.record(ctx, unsafe { Record::from_raw(message.ptr(), topic) });
    }

    /// Stamps a record with its partition's epoch, checks it as a batch item when the
    /// sink asks, and adds it to the batch for the dispatcher; the batch's size.
    fn record(&mut self, ctx: &SinkContext, (mut record, lossy): (Record, usize)) -> usize {
        if lossy > 0 {
            ctx.emit(ControlEvent::LossyHeaderNames {
                count: lossy as u64,
            });
        }
        record.epoch = self.state.epoch(&record.tp);
        self.errored.record(&record.tp, record.offset);
        if self.check_items {
            record.check_item();
        }
        ctx.push(record)
    }
}
