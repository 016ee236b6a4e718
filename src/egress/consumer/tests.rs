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

/// A consumer of group "g" whose only broker never answers (nothing listens on port 1):
/// librdkafka reports it on the consumer's queue within moments of starting.
fn unreachable_consumer() -> BaseConsumer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:1")
        .set("group.id", "g")
        .set("reconnect.backoff.ms", "10")
        .create()
        .expect("a consumer")
}

#[test]
fn an_event_for_the_consumer_ends_a_wait_for_fetched_records() {
    // While the poll thread waits for records, a rebalance, error or log event must be
    // served at once, not after the wait.
    let consumer = unreachable_consumer();
    // SAFETY: `consumer` outlives the queue.
    let fetched =
        unsafe { fetched::FetchedQueue::new(consumer.client().native_ptr()) }.expect("a queue");
    let mut taken = fetched::Taken::new(8);
    let wait = Duration::from_secs(60);
    let began = Instant::now();
    while fetched.consumer_queue_is_empty() {
        fetched.take(&mut taken, wait);
        assert!(taken.messages.is_empty(), "nothing is fetched");
        assert!(
            began.elapsed() < wait,
            "the error event did not end the wait"
        );
    }
    drop(fetched);
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
