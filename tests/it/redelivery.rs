//! What a crash costs: with finished-offset maps in the commit metadata, a restarted
//! member delivers again only what was unfinished, not everything behind a stuck key;
//! and a record the destination refuses on every breaker probe still reaches the DLQ.
//!
//! The redelivery test needs a broker that keeps commit metadata, as Apache Kafka (the
//! suite's broker) does; on the Tansu lane, which drops it, it says so and is skipped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::support::audit::Auditor;
use crate::support::broker::Broker;
use crate::support::connectors::SinkToml;
use crate::support::hookbridge::{metric, Config, Hookbridge};
use crate::support::kafka;
use crate::support::receiver::{Answer, Received, Receiver};
use crate::support::scenario::{Scenario, Setup};
use crate::support::{unique, wait_until};

/// A partition-ordered sink with three attempts and a DLQ; each test sets its breaker.
fn partition_sink(topic: &str, url: &str, dlq: &str) -> SinkToml {
    SinkToml::new(topic, url)
        .ordering("partition")
        .max_attempts(3)
        .backoff("50ms", "100ms")
        .dlq(dlq)
}

fn key_of(r: &Received) -> String {
    serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|v| v["k"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Records delivered (2xx) above the first offset never delivered, over every partition:
/// what a commit made after all of them says is finished above its watermark. The
/// partition and offset come from the `webhook-id` (`<topic>-<partition>-<offset>`).
fn finished_above_first_gap(seen: &[Received]) -> usize {
    let mut delivered: HashMap<i64, HashSet<i64>> = HashMap::new();
    for r in seen.iter().filter(|r| r.status == 200) {
        let id = r.header("webhook-id");
        let mut parts = id.rsplitn(3, '-');
        let (Some(offset), Some(partition)) = (parts.next(), parts.next()) else {
            continue;
        };
        if let (Ok(o), Ok(p)) = (offset.parse(), partition.parse()) {
            delivered.entry(p).or_default().insert(o);
        }
    }
    delivered
        .values()
        .map(|offsets| {
            let gap = (0..).find(|o| !offsets.contains(o)).unwrap_or(0);
            offsets.iter().filter(|&&o| o > gap).count()
        })
        .sum()
}

fn seq_of(r: &Received) -> u64 {
    serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|v| v["seq"].as_u64())
        .unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_redelivers_only_the_stuck_key_not_everything_behind_it() {
    let broker = Broker::start();
    if !broker.keeps_commit_metadata() {
        eprintln!("skipped: this broker drops commit metadata (Tansu)");
        return;
    }
    let brokers = broker.addr();
    let topic = unique("stuck");
    broker.create_topic(&topic, 4);
    const N: usize = 2000;
    const KEYS: usize = 100;
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = healthy.clone();
    // One key is refused until the "fix" is deployed; everything else is taken at once.
    let rx = Receiver::start(move |r| {
        if key_of(r) == "k7" && !flag.load(Ordering::SeqCst) {
            Answer::status(503)
        } else {
            Answer::status(200)
        }
    })
    .await;
    let sink = SinkToml::new(&topic, &rx.url)
        .concurrency(16)
        .max_attempts(0)
        .backoff("100ms", "300ms")
        .breaker_failures(0)
        .render();
    let cfg = Config::new(&brokers).connector("orders.toml", &sink);
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    let recs: Vec<_> = (0..N)
        .map(|i| json!({"key": format!("k{}", i % KEYS), "value": json!({"k": format!("k{}", i % KEYS), "seq": i}).to_string()}))
        .collect();
    kafka::produce(&brokers, &topic, &recs).await;

    let others = N - N / KEYS;
    rx.wait_for(Duration::from_secs(60), "every other key delivered", |s| {
        s.iter()
            .filter(|r| r.status == 200)
            .map(|r| r.header("webhook-id"))
            .collect::<HashSet<_>>()
            .len()
            >= others
    })
    .await;
    // The crash comes once the broker holds a commit whose finished-offset map covers
    // every record delivered. The sink reports, at each commit it makes, how many
    // finished records lie above the committed offsets (known here from the webhook ids)
    // and its largest map's length; the commit counts once an independent reader finds
    // a map of that length stored (the gauges are set when a commit is handed to the
    // consumer, before the broker has it).
    let above = finished_above_first_gap(&rx.seen());
    assert!(above > 0, "nothing was delivered past the stuck key");
    let group = format!("g-{topic}");
    wait_until(
        Duration::from_secs(30),
        "a stored commit covering every delivery",
        || async {
            let m = hb.metrics().await;
            let orders = [("connector", "orders")];
            let reported = metric(&m, "hookbridge_finished_above_watermark", &orders);
            let map_bytes = metric(&m, "hookbridge_commit_metadata_bytes", &orders);
            if reported != above as f64 || map_bytes <= 0.0 {
                return false;
            }
            let stored = kafka::committed_with_metadata(&brokers, &group, &topic, 4);
            stored.iter().map(|(_, map)| map.len()).max() == Some(map_bytes as usize)
        },
    )
    .await;
    hb.kill9();
    let delivered_before: HashSet<String> = rx
        .seen()
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.header("webhook-id"))
        .collect();
    let seen_before = rx.seen().len();

    healthy.store(true, Ordering::SeqCst);
    hb.spawn();
    hb.ready(Duration::from_secs(40)).await;
    rx.wait_for(Duration::from_secs(60), "all delivered", |s| {
        s.iter()
            .filter(|r| r.status == 200)
            .map(|r| r.header("webhook-id"))
            .collect::<HashSet<_>>()
            .len()
            >= N
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = &rx.seen()[seen_before..];
    let redelivered = after
        .iter()
        .filter(|r| r.status == 200 && delivered_before.contains(&r.header("webhook-id")))
        .count();
    let m = hb.metrics().await;
    let skipped = metric(
        &m,
        "hookbridge_skipped_on_resume_total",
        &[("connector", "orders")],
    );
    println!("stuck key, kill -9: {redelivered} of {} finished records delivered again after restart; {skipped} skipped on resume", delivered_before.len());
    // Without the map every record behind the stuck key's first offset in each partition
    // (about three quarters of the stream) would be delivered again.
    assert!(
        redelivered <= 16,
        "{redelivered} finished records were delivered again after the restart"
    );
    assert!(skipped > 0.0, "nothing was skipped on resume:\n{m}");

    // Per-key order of first deliveries is kept across the crash.
    let mut by_key: HashMap<String, Vec<u64>> = HashMap::new();
    let mut first = HashSet::new();
    for r in rx.seen().iter().filter(|r| r.status == 200) {
        if first.insert(r.header("webhook-id")) {
            by_key.entry(key_of(r)).or_default().push(seq_of(r));
        }
    }
    for (k, seqs) in &by_key {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "key {k} out of order: {seqs:?}"
        );
    }
    // Everything finished, so every partition's watermark reaches its end.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let committed = kafka::committed(&brokers, &format!("g-{topic}"), &topic).await;
        if committed.len() == 4 && committed.values().all(|(c, h)| c == h) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not committed to the end: {committed:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_refused_on_every_probe_is_dead_lettered_not_stuck_forever() {
    let broker = Broker::start();
    let topic = unique("probe");
    let dlq = format!("{topic}.dlq");
    broker.create_topic(&topic, 1);
    broker.create_topic(&dlq, 1);
    // The destination is up, but refuses record 0 with a retryable status every time.
    let rx = Receiver::start(|r| Answer::status(if seq_of(r) == 0 { 503 } else { 200 })).await;
    let sink = partition_sink(&topic, &rx.url, &dlq)
        .breaker_failures(2)
        .breaker_cooldown("200ms")
        .render();
    let group = format!("g-{topic}");
    let audit =
        Auditor::start_with_dlq(&broker.addr(), &group, &topic, 1, rx.finished(), Some(&dlq));
    let mut hb = Hookbridge::start(&Config::new(&broker.addr()).connector("orders.toml", &sink));
    hb.ready(Duration::from_secs(40)).await;
    let recs: Vec<_> = (0..5)
        .map(|i| json!({"key": "k", "value": json!({"k": "k", "seq": i}).to_string()}))
        .collect();
    kafka::produce(&broker.addr(), &topic, &recs).await;
    rx.wait_for(
        Duration::from_secs(30),
        "records behind the refused one delivered",
        |s| s.iter().filter(|r| r.status == 200).count() >= 4,
    )
    .await;
    let dead = kafka::read(&broker.addr(), &dlq, Some(1), 10.0).await;
    assert_eq!(dead.len(), 1, "the refused record was not dead-lettered");
    assert_eq!(
        dead[0].header("hookbridge-dlq-reason").as_deref(),
        Some("exhausted")
    );
    let attempts = rx.seen().iter().filter(|r| seq_of(r) == 0).count();
    assert!(attempts >= 3, "dead-lettered after {attempts} attempts");
    // The watermark moves past the dead letter, and every commit on the way covers only
    // records answered 2xx or in the DLQ.
    wait_until(Duration::from_secs(20), "a commit to 5", || async {
        kafka::committed(&broker.addr(), &group, &topic)
            .await
            .get(&0)
            == Some(&(5, 5))
    })
    .await;
    audit.finish().await.assert_clean("refused on every probe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_taking_turns_at_probing_are_still_dead_lettered() {
    // The head of each partition is refused every time: the two take turns at probing.
    let Scenario {
        broker,
        topic,
        dlq,
        rx,
        hb: _hb,
    } = Setup::new("probe-turns")
        .partitions(2)
        .dlq()
        .sink(
            |r| Answer::status(if seq_of(r) < 2 { 503 } else { 200 }),
            |n| {
                partition_sink(&n.topic, &n.url, &n.dlq)
                    .breaker_failures(2)
                    .breaker_cooldown("150ms")
            },
        )
        .await;
    let recs: Vec<_> = (0..6)
        .map(|i| json!({"key": "k", "partition": i % 2, "value": json!({"k": "k", "seq": i}).to_string()}))
        .collect();
    kafka::produce(&broker.addr(), &topic, &recs).await;
    rx.wait_for(
        Duration::from_secs(60),
        "the records behind both refused heads",
        |s| s.iter().filter(|r| r.status == 200).count() >= 4,
    )
    .await;
    let dead = kafka::read(&broker.addr(), &dlq, Some(2), 10.0).await;
    assert_eq!(dead.len(), 2, "both refused heads dead-lettered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_waiting_alone_through_an_outage_is_not_dead_lettered_for_it() {
    let broker = Broker::start();
    let topic = unique("outage");
    let dlq = format!("{topic}.dlq");
    broker.create_topic(&topic, 1);
    broker.create_topic(&dlq, 1);
    // Nothing listens there: every attempt fails to connect, as in a plain outage.
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", down.local_addr().unwrap());
    drop(down);
    let sink = partition_sink(&topic, &url, &dlq)
        .breaker_failures(1)
        .breaker_cooldown("100ms")
        .render();
    let mut hb = Hookbridge::start(&Config::new(&broker.addr()).connector("orders.toml", &sink));
    hb.ready(Duration::from_secs(40)).await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[json!({"key": "k", "value": json!({"k": "k", "seq": 0}).to_string()})],
    )
    .await;
    // Many more probes than max_attempts...
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = hb.metrics().await;
        if metric(
            &text,
            "hookbridge_delivery_attempts_total",
            &[("result", "connect")],
        ) >= 12.0
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "too few probes:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...and the record still waits for the destination instead of the DLQ.
    let text = hb.metrics().await;
    assert_eq!(metric(&text, "hookbridge_dlq_writes_total", &[]), 0.0);
    assert!(kafka::read(&broker.addr(), &dlq, None, 2.0)
        .await
        .is_empty());
}
