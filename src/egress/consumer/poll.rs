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
use tokio_util::sync::CancellationToken;

use super::commit::commit_sync;
use super::fetched::{Fetched, FetchedQueue, Taken, REFORWARD};
use super::flow::{Flow, FlowState};
use super::{SinkContext, POLL_BATCH};
use crate::egress::record::{topic_name, Record, Topic};
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
/// ends instead of waiting forever. True when the poll loop panicked (or could not start:
/// the consumer had no queue of its own). `check_items`: each
/// record's value is checked as a batch item here ([`Record::check_item`]).
pub fn poll_thread(
    consumer: Arc<BaseConsumer<SinkContext>>,
    flow: std::sync::mpsc::Receiver<Flow>,
    stop: CancellationToken,
    check_items: bool,
) -> bool {
    let ctx = consumer.context();
    // SAFETY: the consumer outlives the queue: this thread holds the only strong
    // reference, dropped before its reference to the consumer, on a panic too.
    let fetched = unsafe { FetchedQueue::new(consumer.client().native_ptr()) }.map(Arc::new);
    let died = match &fetched {
        Some(q) => {
            ctx.set_fetched(q);
            !contain_panic(ctx, &stop, || {
                poll_loop(&consumer, &flow, &stop, check_items, q)
            })
        }
        // Only a consumer without a group has no queue of its own: a sink's always has one.
        None => {
            ctx.failed(&stop, "poll thread: the consumer has no group queue");
            true
        }
    };
    match ctx.drain(Vec::new(), true) {
        Some(commits) => commit_sync(&consumer, &commits),
        None => ctx.emit(ControlEvent::ShutdownDrainUnanswered),
    }
    ctx.set_assigned(false);
    // Closing serves one last revoke; the dispatcher is gone by then, so it commits nothing.
    consumer.unsubscribe();
    drop(fetched);
    died
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
const WAIT: Duration = Duration::from_millis(50);

fn poll_loop(
    consumer: &BaseConsumer<SinkContext>,
    flow: &std::sync::mpsc::Receiver<Flow>,
    stop: &CancellationToken,
    check_items: bool,
    fetched: &FetchedQueue,
) {
    let ctx = consumer.context();
    let mut taker = Taker {
        topics: Topics::default(),
        state: FlowState::default(),
        check_items,
    };
    let mut taken = Taken::new(POLL_BATCH);
    ctx.handoff.poller();
    let mut reforward_at = Instant::now() + REFORWARD;
    let mut busy_turns = 0;
    while !stop.is_cancelled() {
        while let Ok(change) = flow.try_recv() {
            taker.state.apply(consumer, change);
        }
        taker.state.retry_seeks(consumer);
        if Instant::now() >= reforward_at {
            fetched.forward(&ctx.held());
            reforward_at = Instant::now() + REFORWARD;
        }
        // Rebalances, commit results, errors, logs, statistics: all of them first, and a
        // record that reached the consumer's queue (before its partition was forwarded)
        // before any fetched after it, unless events keep that queue from emptying for
        // `BUSY_TURNS` turns: records are not held back by a flood of them.
        let hold_back = match taker.serve_consumer_queue(consumer, fetched) {
            Served::Records => true,
            Served::Empty => false,
            Served::NotEmpty => {
                busy_turns += 1;
                busy_turns < BUSY_TURNS
            }
        };
        if hold_back {
            if !ctx.flush() {
                return;
            }
            continue;
        }
        // Events still waiting (a flood held them past `BUSY_TURNS`) must not also wait
        // out `WAIT`: their arrival woke no one, the queue was not empty.
        let wait = if busy_turns > 0 { Duration::ZERO } else { WAIT };
        busy_turns = 0;
        // The dispatcher is behind: what librdkafka fetched stays there (its prefetch is
        // bounded) until the dispatcher has taken in enough of what it was handed.
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
    }
}

/// How long the poll thread waits at most for the dispatcher to make room before it
/// serves the consumer's queue again (rebalances wait at most this long meanwhile).
const ROOM_WAIT: Duration = Duration::from_millis(10);

/// What serving the consumer's own queue left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    /// It gave records: records fetched after them wait for the next turn.
    Records,
    /// It is empty.
    Empty,
    /// It still holds events (a batch of them was served).
    NotEmpty,
}

/// Turns in a row the consumer's own queue may hold up the fetched records while it does
/// not empty.
const BUSY_TURNS: u32 = 64;

/// What the poll thread keeps between polls to turn messages into records.
struct Taker {
    topics: Topics,
    state: FlowState,
    check_items: bool,
}

impl Taker {
    /// Serves the consumer's own queue until it is empty, or up to a batch of events or
    /// records.
    fn serve_consumer_queue(
        &mut self,
        consumer: &BaseConsumer<SinkContext>,
        fetched: &FetchedQueue,
    ) -> Served {
        let ctx = consumer.context();
        let mut served = Served::NotEmpty;
        for _ in 0..POLL_BATCH {
            if fetched.consumer_queue_is_empty() {
                return match served {
                    Served::Records => Served::Records,
                    _ => Served::Empty,
                };
            }
            // An event other than a record reads as `None` here.
            match consumer.poll(Duration::ZERO) {
                None => {}
                Some(Ok(msg)) => {
                    // SAFETY: `msg` is live for this block.
                    let topic = self.topics.get(unsafe { topic_name(msg.ptr()) });
                    self.record(ctx, Record::from_message(&msg, topic));
                    served = Served::Records;
                }
                Some(Err(e)) => ctx.emit(ControlEvent::ConsumerError { error: &e }),
            }
        }
        served
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
            ctx.emit(ControlEvent::ConsumerError { error: &error });
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
        if self.check_items {
            record.check_item();
        }
        ctx.push(record)
    }
}
