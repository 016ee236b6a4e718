//! The dispatcher shell against a real loopback destination and a recording consumer
//! double: drains, generations and commits.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Mutex;

use bytes::Bytes;

use super::*;
use crate::connectors::{load_file, Connectors};
use crate::telemetry::sink::SinkTelemetry;
use crate::telemetry::Metrics;

/// A control command the dispatcher gave the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Control {
    Pause(TopicPartition, u64),
    Resume(TopicPartition, u64, Option<Rewind>),
    Release(TopicPartition, u64),
    Commit(Commit),
}

/// Records every control command the dispatcher hands to the consumer, in order.
#[derive(Default)]
struct Recorded {
    log: Mutex<Vec<Control>>,
    /// When each commit was handed over, with its partition and offset.
    commit_times: Mutex<Vec<(Instant, TopicPartition, i64)>>,
}

impl PartitionControl for Recorded {
    fn pause(&self, tp: &TopicPartition, assignment: u64) {
        self.push(Control::Pause(tp.clone(), assignment));
    }
    fn resume(&self, tp: &TopicPartition, assignment: u64, rewind: Option<Rewind>) {
        self.push(Control::Resume(tp.clone(), assignment, rewind));
    }
    fn release(&self, tp: &TopicPartition, assignment: u64) {
        self.push(Control::Release(tp.clone(), assignment));
    }
    fn commit_async(&self, commits: &[Commit]) {
        let now = Instant::now();
        (self.commit_times.lock().unwrap())
            .extend(commits.iter().map(|c| (now, c.tp.clone(), c.offset)));
        for c in commits {
            self.push(Control::Commit(c.clone()));
        }
    }
}

impl Recorded {
    /// When `offset` of `tp` was first committed.
    fn committed_at(&self, tp: &TopicPartition, offset: i64) -> Option<Instant> {
        let times = self.commit_times.lock().unwrap();
        times
            .iter()
            .find(|(_, t, o)| t == tp && *o == offset)
            .map(|(at, _, _)| *at)
    }

    fn push(&self, c: Control) {
        self.log.lock().unwrap().push(c);
    }

    fn last_commit(&self, tp: &TopicPartition) -> Option<i64> {
        self.commits(tp).last().copied()
    }

    /// Every offset committed for `tp`, in order.
    fn commits(&self, tp: &TopicPartition) -> Vec<i64> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter_map(|c| match c {
                Control::Commit(c) if &c.tp == tp => Some(c.offset),
                _ => None,
            })
            .collect()
    }

    /// Every command but the commits, in order.
    fn flow(&self) -> Vec<Control> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|c| !matches!(c, Control::Commit(_)))
            .cloned()
            .collect()
    }
}

/// A destination that answers 200, or holds every request while `hold` is set. `arrived`
/// counts the requests it received.
async fn destination(hold: Arc<AtomicBool>, arrived: Arc<AtomicUsize>) -> String {
    let app = axum::Router::new().fallback(move || {
        let hold = hold.clone();
        arrived.fetch_add(1, AtomicOrdering::SeqCst);
        async move {
            while hold.load(AtomicOrdering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn tp(partition: i32) -> TopicPartition {
    TopicPartition {
        topic: "orders".into(),
        partition,
    }
}

fn record(partition: i32, offset: i64) -> Record {
    Record {
        tp: tp(partition),
        offset,
        key: Some(Bytes::from(format!("k{offset}"))),
        value: Bytes::from_static(b"{}"),
        headers: Vec::new(),
        epoch: 0,
        leader_epoch: -1,
        checked_item: None,
        null_headers: Vec::new(),
        null_value: false,
    }
}

struct Harness {
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    control: Arc<Recorded>,
    metrics: Arc<Metrics>,
    hold: Arc<AtomicBool>,
    arrived: Arc<AtomicUsize>,
    /// What the dispatcher reports taking records in to.
    handoff: Arc<crate::egress::handoff::Handoff>,
}

async fn start() -> Harness {
    start_with("").await
}

async fn start_with(extra: &str) -> Harness {
    start_with_interval(extra, Duration::from_millis(20)).await
}

async fn start_with_interval(extra: &str, interval: Duration) -> Harness {
    start_with_memory(extra, interval, 1 << 30).await
}

async fn start_with_memory(extra: &str, interval: Duration, memory: u64) -> Harness {
    let hold = Arc::new(AtomicBool::new(false));
    let arrived = Arc::new(AtomicUsize::new(0));
    let url = destination(hold.clone(), arrived.clone()).await;
    let mut c = Connectors::default();
    let text = format!(
        "[sink]\nname = \"orders\"\ntopics = [\"orders\"]\nurl = \"{url}\"\ntimeout = \"5s\"\n{extra}"
    );
    load_file("orders.toml", &text, &mut c).unwrap();
    let sink = c.sinks.remove(0);
    // Created offline: only a dead-letter write would use it.
    let producer = crate::kafka::producer::Producer::create(
        rdkafka::ClientConfig::new().set("bootstrap.servers", "127.0.0.1:1"),
    )
    .unwrap();
    let producer = crate::egress::dlq::Producers {
        batched: producer.clone(),
        alone: producer,
    };
    let metrics = Arc::new(Metrics::new());
    let telemetry = Arc::new(SinkTelemetry::new(sink.name.clone(), metrics.clone()));
    let destination = Arc::new(Destination::new(sink, producer, telemetry.clone()).unwrap());
    let control = Arc::new(Recorded::default());
    let (events, rx) = tokio::sync::mpsc::unbounded_channel();
    let policy = CommitPolicy {
        interval,
        metadata_budget: 4000,
    };
    let handoff = Arc::new(crate::egress::handoff::Handoff::default());
    tokio::spawn(
        Dispatcher::new(
            destination,
            telemetry,
            control.clone(),
            policy,
            Arc::new(crate::egress::memory::MemoryBudget::new(memory)),
            handoff.clone(),
        )
        .run(rx),
    );
    Harness {
        events,
        control,
        metrics,
        hold,
        arrived,
        handoff,
    }
}

impl Harness {
    fn send(&self, ev: Event) {
        self.events.send(ev).unwrap();
    }

    fn revoke(
        &self,
        partitions: Vec<TopicPartition>,
        deadline: Instant,
    ) -> std::sync::mpsc::Receiver<Vec<Commit>> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.send(Event::Revoke {
            partitions,
            reply,
            deadline,
        });
        answer
    }

    /// Waits until the destination has received `n` requests in all.
    async fn arrived(&self, n: usize) {
        for _ in 0..500 {
            if self.arrived.load(AtomicOrdering::SeqCst) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{n} requests never reached the destination");
    }

    /// Waits until the sink's buffered-records and paused-partitions gauges read
    /// `buffered` (any above zero when `None`) and `paused`.
    async fn gauges(&self, buffered: Option<i64>, paused: i64) {
        let read = || {
            (
                self.metrics.buffered.with_label_values(&["orders"]).get(),
                (self.metrics.paused_partitions)
                    .with_label_values(&["orders"])
                    .get(),
            )
        };
        for _ in 0..300 {
            let (b, p) = read();
            if buffered.map_or(b > 0, |n| b == n) && p == paused {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("gauges never read ({buffered:?}, {paused}): {:?}", read());
    }

    async fn committed(&self, tp: &TopicPartition, offset: i64) {
        for _ in 0..300 {
            if self.control.last_commit(tp) == Some(offset) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{tp:?} never committed {offset}: last {:?}",
            self.control.last_commit(tp)
        );
    }
}

async fn answer(rx: std::sync::mpsc::Receiver<Vec<Commit>>) -> Option<Vec<Commit>> {
    tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(5)).ok())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batch_that_does_not_fill_is_sent_at_its_max_wait() {
    let h = start_with(
        "batch = { max_records = 1000, max_wait = \"50ms\", format = \"json-array\" }\n",
    )
    .await;
    h.send(Event::Assigned(vec![(tp(0), None, 0)]));
    let sent = Instant::now();
    h.send(Event::Records(vec![record(0, 0)]));
    // One record of a thousand: only its max_wait sends it, not the next periodic
    // commit seconds later.
    h.arrived(1).await;
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
    h.committed(&tp(0), 1).await;
}

#[tokio::test]
async fn two_pending_drains_are_both_answered() {
    let h = start().await;
    h.send(Event::Assigned(vec![(tp(0), None, 0), (tp(1), None, 0)]));
    h.hold.store(true, AtomicOrdering::SeqCst);
    h.send(Event::Records(vec![record(0, 0), record(1, 0)]));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let first = h.revoke(vec![tp(0)], Instant::now() + Duration::from_secs(3));
    let second = h.revoke(vec![tp(1)], Instant::now() + Duration::from_secs(3));
    h.hold.store(false, AtomicOrdering::SeqCst);
    let (first, second) = (answer(first).await, answer(second).await);
    assert_eq!(
        first.map(|c| c[0].offset),
        Some(1),
        "first drain unanswered"
    );
    assert_eq!(
        second.map(|c| c[0].offset),
        Some(1),
        "second drain unanswered"
    );
}

#[tokio::test]
async fn a_late_revoke_never_costs_the_reassigned_partition_its_records() {
    let h = start().await;
    h.send(Event::Assigned(vec![(tp(0), None, 0)]));
    h.send(Event::Records(vec![record(0, 0)]));
    h.committed(&tp(0), 1).await;
    // The consumer gave up on this drain long ago and the partition came back.
    let stale = h.revoke(vec![tp(0)], Instant::now() - Duration::from_secs(1));
    h.send(Event::Assigned(vec![(tp(0), None, 0)]));
    h.send(Event::Records((1..20).map(|o| record(0, o)).collect()));
    let _ = answer(stale).await;
    h.committed(&tp(0), 20).await;
}

fn keyed(partition: i32, offset: i64, key: &'static str) -> Record {
    Record {
        key: Some(Bytes::from_static(key.as_bytes())),
        ..record(partition, offset)
    }
}

#[tokio::test]
async fn a_late_outcome_of_an_earlier_assignment_is_ignored() {
    let h = start().await;
    h.send(Event::Assigned(vec![(tp(0), None, 1)]));
    h.hold.store(true, AtomicOrdering::SeqCst);
    h.send(Event::Records(vec![keyed(0, 5, "k")]));
    h.arrived(1).await;
    // Assigned again (the old state was never drained) and re-read from 5, in one batch:
    // the old delivery of 5 is cut off and its outcome arrives after the new state took
    // record 5 (in flight) and 6 (waiting behind it on the same key). Taken for the new
    // state's, it would end the new 5 and forget 6: the watermark would stop at 6.
    h.send(Event::Assigned(vec![(tp(0), None, 2)]));
    h.send(Event::Records(vec![keyed(0, 5, "k"), keyed(0, 6, "k")]));
    h.arrived(2).await;
    h.hold.store(false, AtomicOrdering::SeqCst);
    h.committed(&tp(0), 7).await;
    let commits = h.control.commits(&tp(0));
    assert!(
        commits.windows(2).all(|w| w[0] <= w[1]) && commits.iter().all(|&c| c >= 5),
        "{commits:?}"
    );
    assert_eq!(
        h.control.flow(),
        vec![Control::Release(tp(0), 1)],
        "the replaced state is released, under its own assignment"
    );
}

#[tokio::test]
async fn shutdown_drains_every_partition_and_releases_each_under_its_assignment() {
    let h = start().await;
    h.send(Event::Assigned(vec![(tp(0), None, 3), (tp(1), None, 4)]));
    h.send(Event::Records(vec![record(0, 0), record(0, 1)]));
    h.committed(&tp(0), 2).await;
    h.hold.store(true, AtomicOrdering::SeqCst);
    h.send(Event::Records(vec![record(0, 2), record(1, 0)]));
    h.arrived(4).await;
    let (reply, answer_rx) = std::sync::mpsc::channel();
    h.send(Event::Shutdown {
        reply,
        deadline: Instant::now() + Duration::from_secs(30),
    });
    h.hold.store(false, AtomicOrdering::SeqCst);
    let mut commits: Vec<(i32, i64)> = answer(answer_rx)
        .await
        .expect("answered")
        .into_iter()
        .map(|c| (c.tp.partition, c.offset))
        .collect();
    commits.sort();
    assert_eq!(commits, vec![(0, 3), (1, 1)], "what was in flight finished");
    let mut flow = h.control.flow();
    flow.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(
        flow,
        vec![Control::Release(tp(0), 3), Control::Release(tp(1), 4)]
    );
}

#[tokio::test]
async fn shutdown_past_its_deadline_commits_nothing_past_a_stalled_record() {
    let h = start().await;
    h.send(Event::Assigned(vec![(tp(0), None, 1)]));
    h.send(Event::Records(vec![record(0, 0)]));
    h.committed(&tp(0), 1).await;
    h.hold.store(true, AtomicOrdering::SeqCst);
    h.send(Event::Records(vec![record(0, 1), record(0, 2)]));
    h.arrived(3).await;
    let (reply, answer_rx) = std::sync::mpsc::channel();
    let deadline = Instant::now() + Duration::from_millis(300);
    h.send(Event::Shutdown { reply, deadline });
    let commits = answer(answer_rx).await.expect("answered at the deadline");
    assert!(Instant::now() >= deadline);
    // At the deadline, not at the next periodic commit seconds later.
    assert!(
        Instant::now() < deadline + Duration::from_secs(1),
        "answered soon after the deadline"
    );
    assert_eq!(
        commits.iter().map(|c| c.offset).collect::<Vec<_>>(),
        vec![1]
    );
    assert_eq!(h.control.flow(), vec![Control::Release(tp(0), 1)]);
}

#[tokio::test]
async fn records_of_partitions_not_assigned_here_are_never_committed() {
    let h = start().await;
    h.send(Event::Assigned(vec![(tp(0), None, 0)]));
    h.send(Event::Records(vec![record(3, 7), record(0, 0)]));
    h.committed(&tp(0), 1).await;
    assert_eq!(h.control.last_commit(&tp(3)), None);
}

/// The poll thread waits while what it handed over and the dispatcher has not taken in
/// is at its bound: every record of a batch must count as taken in, whatever became of
/// it, or the sink would stop taking records for good.
#[tokio::test]
async fn every_record_handed_over_is_counted_as_taken_in_whatever_becomes_of_it() {
    let h = start().await;
    h.send(Event::Assigned(vec![(tp(0), None, 0)]));
    // Tracked, not assigned here, and a copy of one already held.
    let batch = vec![record(0, 0), record(3, 7), record(0, 1), record(0, 1)];
    let bytes = batch.iter().map(crate::egress::memory::record_bytes).sum();
    h.handoff.handed(bytes);
    h.send(Event::Records(batch));
    h.committed(&tp(0), 2).await;
    assert_eq!(h.handoff.bytes(), 0);
}

/// Waits until the handoff reads `full` (the poll thread held back or let go).
async fn handoff_full(h: &Harness, full: bool) {
    for _ in 0..300 {
        if h.handoff.is_full() == full {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the handoff never read full = {full}");
}

/// Records waiting for a ticket hold the poll thread back from two rounds of the sink's
/// concurrency until one: more would only wait too (see `ReadyBacklog`).
#[tokio::test]
async fn records_waiting_for_a_ticket_hold_the_poll_thread_back_until_few_are_left() {
    let h = start_with("concurrency = 2\nbuffer = 1000\n").await;
    h.send(Event::Assigned(vec![(tp(0), None, 0)]));
    h.hold.store(true, AtomicOrdering::SeqCst);
    // Two in flight, one holding a ticket, none waiting for one: under the high mark (four).
    h.send(Event::Records((0..3).map(|o| record(0, o)).collect()));
    h.arrived(2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !h.handoff.is_full(),
        "held back with no record waiting for a ticket"
    );
    // Two in flight, two holding tickets, four waiting for one.
    h.send(Event::Records((3..8).map(|o| record(0, o)).collect()));
    handoff_full(&h, true).await;
    h.hold.store(false, AtomicOrdering::SeqCst);
    h.committed(&tp(0), 8).await;
    handoff_full(&h, false).await;
    assert!(
        !(h.control.flow().iter()).any(|c| matches!(c, Control::Pause(..))),
        "no partition paused: {:?}",
        h.control.flow()
    );
}

#[tokio::test]
async fn a_revoke_forgets_records_waiting_for_a_delivery_slot() {
    let h = start_with("concurrency = 2\n").await;
    h.send(Event::Assigned(vec![(tp(0), None, 0)]));
    h.hold.store(true, AtomicOrdering::SeqCst);
    h.send(Event::Records((0..10).map(|o| record(0, o)).collect()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let drained = h.revoke(vec![tp(0)], Instant::now() + Duration::from_secs(30));
    h.hold.store(false, AtomicOrdering::SeqCst);
    let started = Instant::now();
    let commits = answer(drained).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the drain waited for records that never started"
    );
    assert_eq!(commits.map(|c| c[0].offset), Some(2));
}

#[tokio::test]
async fn after_a_rebalance_error_nothing_of_the_old_assignment_is_delivered_or_committed() {
    let h = start().await;
    h.send(Event::Assigned(vec![(tp(0), None, 0)]));
    h.send(Event::Records(vec![record(0, 0)]));
    h.committed(&tp(0), 1).await;
    h.send(Event::Unassigned);
    // Records still in flight from the old fetch belong to no assignment now.
    h.send(Event::Records(vec![record(0, 1), record(0, 2)]));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.control.last_commit(&tp(0)), Some(1));
    // Assigned again: tracked and committed as usual.
    h.send(Event::Assigned(vec![(tp(0), None, 0)]));
    h.send(Event::Records(vec![record(0, 1), record(0, 2)]));
    h.committed(&tp(0), 3).await;
}

#[tokio::test]
async fn a_change_is_committed_at_once_then_at_most_once_per_interval() {
    let h = start_with_interval("", Duration::from_millis(800)).await;
    h.send(Event::Assigned(vec![(tp(0), None, 0)]));
    // Let the start-up pass: a commit right after start would hide a ticking schedule.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = Instant::now();
    h.send(Event::Records(vec![record(0, 0)]));
    h.committed(&tp(0), 1).await;
    assert!(
        sent.elapsed() < Duration::from_millis(400),
        "a lone change waited {:?} for its commit",
        sent.elapsed()
    );
    h.send(Event::Records(vec![record(0, 1)]));
    h.committed(&tp(0), 2).await;
    // Both times taken when the dispatcher handed the commits over, so a test thread
    // that runs late cannot shorten the gap.
    let (first, second) = (
        h.control.committed_at(&tp(0), 1).unwrap(),
        h.control.committed_at(&tp(0), 2).unwrap(),
    );
    assert!(
        second - first >= Duration::from_millis(790),
        "commits closer than the interval: {:?}",
        second - first
    );
}

#[tokio::test]
async fn a_spent_memory_budget_pauses_the_partition_until_half_is_free() {
    // Each test record costs about 140 bytes against the budget.
    let h = start_with_memory("", Duration::from_millis(20), 1000).await;
    h.send(Event::Assigned(vec![(tp(0), None, 0)]));
    h.hold.store(true, AtomicOrdering::SeqCst);
    h.send(Event::Records((0..10).map(|o| record(0, o)).collect()));
    for _ in 0..300 {
        if !h.control.flow().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        h.control.flow(),
        vec![Control::Pause(tp(0), 0)],
        "paused for memory"
    );
    h.hold.store(false, AtomicOrdering::SeqCst);
    h.committed(&tp(0), 8).await;
    let flow = h.control.flow();
    assert_eq!(flow.len(), 2, "{flow:?}");
    assert!(
        matches!(&flow[1], Control::Resume(t, 0, Some(Rewind { offset: 8, .. })) if *t == tp(0)),
        "resumed once the held records were delivered, re-reading the dropped ones: {flow:?}"
    );
}

#[tokio::test]
async fn losing_some_partitions_keeps_the_others_delivering_and_ready() {
    use crate::egress::consumer::SinkContext;
    use crate::telemetry::Health;
    let h = start().await;
    let health = Arc::new(Health::default());
    health
        .broker_reachable
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let ctx = SinkContext::new(
        "orders".into(),
        h.events.clone(),
        Duration::from_secs(1),
        health.clone(),
        &Metrics::new(),
    );
    ctx.assigned_for_test(&[tp(0), tp(1)]);
    h.send(Event::Assigned(vec![(tp(0), None, 1), (tp(1), None, 2)]));
    h.send(Event::Records(vec![record(0, 0), record(1, 0)]));
    h.committed(&tp(0), 1).await;
    h.committed(&tp(1), 1).await;
    // An incremental revoke that librdkafka calls lost (a subscribed topic deleted):
    // only partition 0 goes; partition 1 is still fetched and must still be delivered.
    ctx.lose(vec![tp(0)]);
    ctx.revoked();
    assert!(health.ready(), "a sink still holding partitions is ready");
    h.send(Event::Records(vec![
        record(0, 1),
        record(1, 1),
        record(1, 2),
    ]));
    h.committed(&tp(1), 3).await;
    assert_eq!(
        h.control.last_commit(&tp(0)),
        Some(1),
        "the lost one is gone"
    );
    // Losing the rest leaves the sink between assignments.
    ctx.lose(vec![tp(1)]);
    ctx.revoked();
    assert!(!health.ready());
}

/// The dispatcher's figures follow its records: `buffered` counts the tracked,
/// unfinished records and `paused` the partitions held back, and both go back to zero
/// when the records finish or their partition is given up.
#[tokio::test]
async fn buffered_and_paused_return_to_zero_when_records_finish_or_their_partition_goes() {
    let h = start_with("buffer = 2\n").await;
    h.send(Event::Assigned(vec![(tp(0), None, 0), (tp(1), None, 0)]));
    h.hold.store(true, AtomicOrdering::SeqCst);
    h.send(Event::Records((0..3).map(|o| record(0, o)).collect()));
    h.gauges(None, 1).await;
    h.hold.store(false, AtomicOrdering::SeqCst);
    h.gauges(Some(0), 0).await;
    h.hold.store(true, AtomicOrdering::SeqCst);
    h.send(Event::Records((0..3).map(|o| record(1, o)).collect()));
    h.gauges(None, 1).await;
    h.send(Event::Lost(vec![tp(1)]));
    h.gauges(Some(0), 0).await;
}

/// `hookbridge_refetched_records_total` counts every record read again: those dropped
/// past what a pause holds, and their stale copies that arrive after the rewind.
#[tokio::test]
async fn records_read_again_after_a_pause_are_counted() {
    let h = start_with("buffer = 2\n").await;
    let refetched = || {
        h.metrics
            .refetched_records
            .with_label_values(&["orders"])
            .get()
    };
    h.send(Event::Assigned(vec![(tp(0), None, 0)]));
    h.hold.store(true, AtomicOrdering::SeqCst);
    // 0 and 1 fill the buffer, 2 is held, 3..6 are dropped.
    h.send(Event::Records((0..6).map(|o| record(0, o)).collect()));
    h.gauges(Some(3), 1).await;
    assert_eq!(refetched(), 3);
    h.hold.store(false, AtomicOrdering::SeqCst);
    h.gauges(Some(0), 0).await;
    let rewound = h
        .control
        .flow()
        .into_iter()
        .any(|c| matches!(c, Control::Resume(_, _, Some(Rewind { offset: 3, .. }))));
    assert!(rewound, "resumed from the first dropped record");
    // A copy fetched before the rewind, still on its way: read again too.
    h.send(Event::Records(vec![record(0, 6)]));
    h.send(Event::Records(vec![record(0, 7)]));
    let deadline = Instant::now() + Duration::from_secs(5);
    while refetched() != 5 {
        assert!(
            Instant::now() < deadline,
            "{} counted, 5 read again",
            refetched()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn an_item_skips_its_check_only_when_its_body_is_the_value_checked() {
    use crate::egress::batch::{Item, NotJson};
    let rules = batching::tests::rules();
    let mut r = record(0, 1);
    r.check_item();
    assert_eq!(
        crate::egress::delivery::record_item(&rules, &r, &mut None),
        Ok(Item::Value)
    );
    // Another body (a transform's output) is checked: trusting it would put text that is
    // not JSON into the array.
    let mut other = Some(Bytes::from_static(b"not json"));
    assert_eq!(
        crate::egress::delivery::record_item(&rules, &r, &mut other),
        Err(NotJson)
    );
    // One that is JSON is the item as it is: moved into the batch, not copied.
    let mut json = Some(Bytes::from_static(b"[1]"));
    assert_eq!(
        crate::egress::delivery::record_item(&rules, &r, &mut json),
        Ok(Item::Made(Bytes::from_static(b"[1]")))
    );
    assert_eq!(json, None);
}
