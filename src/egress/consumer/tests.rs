use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientContext;

use super::poll::contain_panic;
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
fn quiet_queues(consumer: &BaseConsumer) -> (fetched::FetchedQueue, QueueHandle) {
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
