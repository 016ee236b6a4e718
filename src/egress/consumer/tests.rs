use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientContext;

use super::poll::{self, contain_panic, poll_loop, Every, Flood, Polled, Served, Turn, BUSY_TURNS};
use super::positions::PastErrors;
use super::*;

/// The context of sink "orders", its dispatcher channel dropped.
fn context(health: Arc<Health>, metrics: &Metrics) -> SinkContext {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    SinkContext::new("orders".into(), tx, Duration::from_secs(1), health, metrics)
}

#[test]
fn a_panic_in_a_sink_thread_takes_readiness_down_and_stops_the_process() {
    let health = Arc::new(Health::default());
    health.broker_reachable.store(true, Ordering::Relaxed);
    let ctx = context(health.clone(), &Metrics::new());
    ctx.assigned_for_test(&[]);
    let stop = CancellationToken::new();
    assert!(contain_panic(&ctx, &stop, || {}));
    assert!(health.ready() && !stop.is_cancelled());
    assert!(!contain_panic(&ctx, &stop, || panic!("bug")));
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
    let metrics = Metrics::new();
    let ctx = context(Arc::new(Health::default()), &metrics);
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
    let metrics = Metrics::new();
    let ctx = context(Arc::new(Health::default()), &metrics);
    let tp = TopicPartition {
        topic: "orders".into(),
        partition: 3,
    };
    let series = "hookbridge_consumer_lag{connector=\"orders\",partition=\"3\",topic=\"orders\"}";
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

/// A consumer of group "g" with no broker to reach: nothing arrives on its queue unless
/// a test puts it there.
fn quiet_consumer() -> BaseConsumer {
    rdkafka::ClientConfig::new()
        .set("group.id", "g")
        .create()
        .expect("a consumer")
}

/// A queue handle another thread may use.
struct QueueHandle(*mut rdkafka::bindings::rd_kafka_queue_t);
// SAFETY: librdkafka queue handles are thread-safe.
unsafe impl Send for QueueHandle {}
unsafe impl Sync for QueueHandle {}

impl QueueHandle {
    /// Wakes the queue's reader; on an empty queue, runs its event callback.
    fn wake(&self) {
        // SAFETY: the handle is live until dropped.
        unsafe { rdkafka::bindings::rd_kafka_queue_yield(self.0) };
    }
}

impl Drop for QueueHandle {
    fn drop(&mut self) {
        // SAFETY: obtained from librdkafka, destroyed once.
        unsafe { rdkafka::bindings::rd_kafka_queue_destroy(self.0) };
    }
}

/// The fetched queue of `consumer` (whose own queue is empty) and a handle on that own
/// queue; both are dropped before `consumer`.
fn quiet_queues<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
) -> (fetched::FetchedQueue, QueueHandle) {
    let client = consumer.client().native_ptr();
    // SAFETY: `consumer` outlives both, as the caller drops them first.
    let fetched = unsafe { fetched::FetchedQueue::new(client) }.expect("a queue");
    assert!(fetched.consumer_queue_is_empty());
    // SAFETY: as above.
    let consumer_queue =
        QueueHandle(unsafe { rdkafka::bindings::rd_kafka_queue_get_consumer(client) });
    (fetched, consumer_queue)
}

#[test]
fn an_event_for_the_consumer_ends_a_wait_for_fetched_records() {
    // While the poll thread waits for records, a rebalance, error or log event must be
    // served at once, not after the wait.
    let consumer = quiet_consumer();
    let (fetched, consumer_queue) = quiet_queues(&consumer);
    let waiting = std::sync::atomic::AtomicBool::new(true);
    let wait = Duration::from_secs(60);
    let mut taken = fetched::Taken::new(8);
    let began = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            // The consumer's queue stays empty: each yield on it is the "event arrived on
            // an empty queue" librdkafka calls back for. Repeated until the wait ended, so
            // one given before the wait began does not decide the test.
            while waiting.load(Ordering::Relaxed) {
                consumer_queue.wake();
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        fetched.take(&mut taken, wait);
        waiting.store(false, Ordering::Relaxed);
    });
    assert!(taken.messages.is_empty(), "nothing is fetched");
    assert!(began.elapsed() < wait, "the wait ran its full length");
    drop((consumer_queue, fetched));
}

#[test]
fn an_event_for_the_consumer_since_its_queue_was_found_empty_ends_the_next_wait() {
    // The poll thread finds the consumer's queue empty, an event arrives, then it waits
    // for records: the event must end that wait, not the end of it.
    let consumer = quiet_consumer();
    let (fetched, consumer_queue) = quiet_queues(&consumer);
    consumer_queue.wake();
    let (wait, began) = (Duration::from_secs(60), Instant::now());
    let mut taken = fetched::Taken::new(8);
    fetched.take(&mut taken, wait);
    assert!(taken.messages.is_empty(), "nothing is fetched");
    assert!(began.elapsed() < wait, "the wait ran its full length");
    drop((consumer_queue, fetched));
}

#[test]
fn a_fetched_queue_of_a_consumer_without_a_group_is_not_made() {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:1")
        .create()
        .expect("a consumer");
    // SAFETY: `consumer` outlives the call.
    assert!(unsafe { fetched::FetchedQueue::new(consumer.client().native_ptr()) }.is_none());
}

#[test]
fn a_flushed_batch_counts_its_bytes_as_handed_to_the_dispatcher() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let ctx = SinkContext::new(
        "orders".into(),
        tx,
        Duration::from_secs(1),
        Arc::new(Health::default()),
        &Metrics::new(),
    );
    let records: Vec<Record> = (0..3)
        .map(|offset| Record {
            tp: TopicPartition {
                topic: "orders".into(),
                partition: 0,
            },
            offset,
            key: Some(bytes::Bytes::from_static(b"k")),
            value: bytes::Bytes::from(vec![b'x'; 100 * (offset as usize + 1)]),
            headers: vec![("h".into(), bytes::Bytes::from_static(b"v"))],
            epoch: 0,
            leader_epoch: -1,
            checked_item: None,
            null_headers: Vec::new(),
            null_value: false,
        })
        .collect();
    let bytes: u64 = records
        .iter()
        .map(crate::egress::memory::record_bytes)
        .sum();
    for r in records {
        ctx.push(r);
    }
    assert_eq!(
        ctx.handoff().bytes(),
        0,
        "counted when handed over, not before"
    );
    assert!(ctx.flush());
    assert_eq!(ctx.handoff().bytes(), bytes);
    assert!(matches!(rx.try_recv(), Ok(Event::Records(r)) if r.len() == 3));
}

/// What a turn serving the consumer's queue takes from `items` (then the queue is
/// empty, unless `more` events wait behind them), and how many it took.
fn serve(items: &[Polled], more: usize) -> (Served, usize) {
    let mut queue = items
        .iter()
        .copied()
        .chain(std::iter::repeat_n(Polled::Event, more));
    let mut taken = 0;
    let served = Served::serve(POLL_BATCH, || {
        let item = queue.next();
        taken += usize::from(item.is_some());
        item
    });
    (served, taken)
}

#[test]
fn a_turn_serves_the_consumer_s_queue_until_it_is_empty_or_a_batch_was_served() {
    use Polled::{Event, Record};
    assert_eq!(serve(&[], 0), (Served::Empty, 0));
    assert_eq!(serve(&[Event, Event], 0), (Served::Empty, 2));
    assert_eq!(serve(&[Event, Record, Event], 0), (Served::Records, 3));
    // A flood: a batch is served, the rest waits for the next turn.
    assert_eq!(serve(&[], 2 * POLL_BATCH), (Served::NotEmpty, POLL_BATCH));
    assert_eq!(
        serve(&[Event; POLL_BATCH], 1),
        (Served::NotEmpty, POLL_BATCH)
    );
    // A record anywhere in the batch holds the fetched records back, emptied or not.
    assert_eq!(
        serve(&[Record], 2 * POLL_BATCH),
        (Served::Records, POLL_BATCH)
    );
    let mut last = [Event; POLL_BATCH];
    last[POLL_BATCH - 1] = Record;
    assert_eq!(serve(&last, 1), (Served::Records, POLL_BATCH));
}

#[test]
fn a_flood_of_events_holds_fetched_records_back_for_busy_turns_turns_at_most() {
    let mut flood = Flood::default();
    assert_eq!(
        flood.turn(Served::Empty, false),
        Turn::Take(poll::WAIT),
        "quiet"
    );
    for _ in 0..2 {
        for turn in 1..BUSY_TURNS {
            assert_eq!(
                flood.turn(Served::NotEmpty, false),
                Turn::HoldBack,
                "turn {turn}"
            );
        }
        // Taken at last, without waiting: the events still there woke no one.
        assert_eq!(
            flood.turn(Served::NotEmpty, false),
            Turn::Take(Duration::ZERO)
        );
    }
    // A queue that empties ends the flood: the next one is counted from its start.
    for _ in 1..BUSY_TURNS {
        assert_eq!(flood.turn(Served::NotEmpty, false), Turn::HoldBack);
    }
    // Events were still waiting at the start of the turn that found it empty: no wait.
    assert_eq!(flood.turn(Served::Empty, false), Turn::Take(Duration::ZERO));
    assert_eq!(flood.turn(Served::NotEmpty, false), Turn::HoldBack);
    assert_eq!(flood.turn(Served::Empty, false), Turn::Take(Duration::ZERO));
    assert_eq!(flood.turn(Served::Empty, false), Turn::Take(poll::WAIT));
    // Records on the consumer's queue go before any fetched after them, however long.
    for turn in 0..4 * BUSY_TURNS {
        assert_eq!(
            flood.turn(Served::Records, false),
            Turn::HoldBack,
            "turn {turn}"
        );
    }
}

#[test]
fn a_record_that_may_wait_behind_a_flood_of_events_holds_fetched_records_back_however_long() {
    let mut flood = Flood::default();
    for turn in 0..4 * BUSY_TURNS {
        assert_eq!(
            flood.turn(Served::NotEmpty, true),
            Turn::HoldBack,
            "turn {turn}"
        );
    }
    // Once it was taken, the flood no longer holds them back.
    assert_eq!(
        flood.turn(Served::NotEmpty, false),
        Turn::Take(Duration::ZERO)
    );
    // An empty queue is never held back for it: nothing waits there.
    assert_eq!(flood.turn(Served::Empty, true), Turn::Take(poll::WAIT));
}

#[test]
fn held_partitions_are_forwarded_again_every_reforward_from_the_last_time() {
    let (start, every) = (Instant::now(), fetched::REFORWARD);
    let ms = Duration::from_millis(1);
    let mut reforward = Every::new(start, every);
    assert!(!reforward.due(start));
    assert!(!reforward.due(start + every - ms));
    assert!(reforward.due(start + every));
    assert!(!reforward.due(start + every), "once");
    // A turn that comes late counts the next period from itself.
    let late = start + every + every + 2 * ms;
    assert!(reforward.due(late));
    assert!(!reforward.due(late + every - ms));
    assert!(reforward.due(late + every));
}

/// Counts the calls, on the `AtomicUsize` at `count`.
unsafe extern "C" fn count_call(
    _client: *mut rdkafka::bindings::rd_kafka_t,
    count: *mut std::ffi::c_void,
) {
    (*count.cast::<std::sync::atomic::AtomicUsize>()).fetch_add(1, Ordering::Relaxed);
}

/// The queue librdkafka puts a partition's fetched records on.
struct PartitionQueue {
    queue: QueueHandle,
    /// Wake-ups that reached this queue itself (its event callback's calls).
    wakes: Box<std::sync::atomic::AtomicUsize>,
}

impl PartitionQueue {
    fn of<C: rdkafka::consumer::ConsumerContext>(
        consumer: &BaseConsumer<C>,
        tp: &TopicPartition,
    ) -> Self {
        let topic = std::ffi::CString::new(tp.topic.as_bytes()).unwrap();
        // SAFETY: the consumer is live; the handle is destroyed before it (callers drop
        // this first).
        let queue = QueueHandle(unsafe {
            rdkafka::bindings::rd_kafka_queue_get_partition(
                consumer.client().native_ptr(),
                topic.as_ptr(),
                tp.partition,
            )
        });
        assert!(!queue.0.is_null());
        let wakes = Box::<std::sync::atomic::AtomicUsize>::default();
        let count: *const std::sync::atomic::AtomicUsize = &*wakes;
        // SAFETY: `wakes` outlives the callback, switched off on drop.
        unsafe {
            rdkafka::bindings::rd_kafka_queue_cb_event_enable(
                queue.0,
                Some(count_call),
                count.cast_mut().cast(),
            )
        };
        Self { queue, wakes }
    }

    /// Whether the partition's records go to another queue: a wake-up given to its own
    /// (empty) queue reaches that one instead and runs no callback here.
    fn is_forwarded(&self) -> bool {
        let before = self.wakes.load(Ordering::Relaxed);
        self.queue.wake();
        self.wakes.load(Ordering::Relaxed) == before
    }

    /// Undoes the forwarding, as librdkafka does when it stops fetching the partition.
    fn lose_forwarding(&self) {
        // SAFETY: the handle is live.
        unsafe { rdkafka::bindings::rd_kafka_queue_forward(self.queue.0, std::ptr::null_mut()) };
    }
}

impl Drop for PartitionQueue {
    fn drop(&mut self) {
        // SAFETY: the handle is live; no callback runs on `wakes` after this.
        unsafe {
            rdkafka::bindings::rd_kafka_queue_cb_event_enable(
                self.queue.0,
                None,
                std::ptr::null_mut(),
            )
        };
    }
}

#[test]
fn forwarding_a_partition_again_keeps_it_forwarded_and_restores_a_lost_forwarding() {
    let consumer = quiet_consumer();
    let (fetched, consumer_queue) = quiet_queues(&consumer);
    let tp = TopicPartition {
        topic: "orders".into(),
        partition: 0,
    };
    let partition = PartitionQueue::of(&consumer, &tp);
    assert!(
        !partition.is_forwarded(),
        "librdkafka's own until forwarded"
    );
    assert!(!fetched.records_may_wait_there());
    let other = TopicPartition {
        topic: "orders".into(),
        partition: 1,
    };
    fetched.forward([&other], false);
    assert!(
        !fetched.records_may_wait_there(),
        "forwarded before it is fetched, none of its records can be on the consumer's queue"
    );
    fetched.forward([&tp], true);
    assert!(partition.is_forwarded());
    assert!(
        fetched.records_may_wait_there(),
        "fetched before its first forwarding, a record may wait on the consumer's queue"
    );
    assert!(fetched.consumer_queue_is_empty());
    assert!(
        !fetched.records_may_wait_there(),
        "not once that queue was empty"
    );
    fetched.forward([&tp], true);
    assert!(partition.is_forwarded(), "forwarding again changes nothing");
    partition.lose_forwarding();
    assert!(!partition.is_forwarded());
    fetched.forward([&tp], true);
    assert!(partition.is_forwarded(), "restored");
    assert!(
        !fetched.records_may_wait_there(),
        "a partition forwarded before never sends records to the consumer's queue again"
    );
    // ...to the fetched queue: a wake-up given to the partition ends a wait there.
    let mut taken = fetched::Taken::new(8);
    fetched.take(&mut taken, Duration::ZERO); // uses up the wake-ups given so far
    partition.queue.wake();
    let (wait, began) = (Duration::from_secs(10), Instant::now());
    fetched.take(&mut taken, wait);
    assert!(began.elapsed() < wait, "the wait ran its full length");
    drop((partition, consumer_queue, fetched));
}

#[test]
fn the_poll_loop_restores_a_lost_forwarding_of_a_held_partition() {
    let tp = TopicPartition {
        topic: "orders".into(),
        partition: 0,
    };
    let ctx = context(Arc::new(Health::default()), &Metrics::new());
    ctx.assigned_for_test(std::slice::from_ref(&tp));
    let consumer: BaseConsumer<SinkContext> = rdkafka::ClientConfig::new()
        .set("group.id", "g")
        .create_with_context(ctx)
        .expect("a consumer");
    let (fetched, consumer_queue) = quiet_queues(&consumer);
    let partition = PartitionQueue::of(&consumer, &tp);
    // Shorter than REFORWARD, to be quick: when it is due is the schedule's test above.
    let every = Duration::from_millis(100);
    let (_flow, changes) = std::sync::mpsc::channel();
    let stop = CancellationToken::new();
    std::thread::scope(|s| {
        let (consumer, fetched, stop) = (&consumer, &fetched, &stop);
        let polling = s.spawn(move || poll_loop(consumer, &changes, stop, false, fetched, every));
        // Stops the loop however this ends, on a failed assertion too: the scope waits for
        // the loop before it passes the panic on.
        let stopping = stop.clone().drop_guard();
        // Not forwarded at first (the rebalance callbacks forward it, not called here),
        // then lost after each time the loop forwarded it.
        for round in 0..3 {
            let began = Instant::now();
            while !partition.is_forwarded() && began.elapsed() < 100 * every {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(
                partition.is_forwarded(),
                "not forwarded again (round {round})"
            );
            partition.lose_forwarding();
        }
        drop(stopping);
        polling.join().expect("the poll loop ended");
    });
    drop((partition, consumer_queue, fetched));
}

#[test]
fn a_position_past_an_error_is_hidden_until_a_record_at_or_above_it_was_taken() {
    let tp = |partition| TopicPartition {
        topic: "orders".into(),
        partition,
    };
    let mut errors = PastErrors::default();
    errors.record(&tp(0), 3);
    assert!(!errors.hides(&tp(0)));
    errors.error(tp(0), 7);
    errors.error(tp(0), 5);
    assert!(errors.hides(&tp(0)) && !errors.hides(&tp(1)));
    errors.record(&tp(1), 9);
    errors.record(&tp(0), 6);
    assert!(errors.hides(&tp(0)), "below the latest error");
    errors.record(&tp(0), 7);
    assert!(!errors.hides(&tp(0)), "the record the error was about");
}

#[test]
fn a_sink_has_nothing_to_join_only_when_every_topic_it_subscribes_to_is_missing() {
    use super::subscription::Topics;
    assert_eq!(Topics::of([Some(true)]), Topics::AllMissing);
    assert_eq!(Topics::of([Some(true), Some(true)]), Topics::AllMissing);
    assert_eq!(Topics::of([Some(true), Some(false)]), Topics::Joinable);
    assert_eq!(
        Topics::of([Some(true), None]),
        Topics::Joinable,
        "a pattern"
    );
    assert_eq!(Topics::of([]), Topics::Joinable, "no subscription yet");
}
