//! Running it like a product: the breaker during an outage, metrics after known traffic,
//! trace context end to end, and SIGTERM under ingress load.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::broker::Broker;
use crate::support::connectors::{SinkToml, SourceToml};
use crate::support::hookbridge::{metric, Config, Hookbridge};
use crate::support::kafka;
use crate::support::receiver::{Answer, Received, Receiver};
use crate::support::scenario::{Scenario, Setup};
use crate::support::{github_sig, unique, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_during_an_outage_keeps_the_dlq_empty_and_recovers_in_order() {
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    // Without the breaker, 4 attempts at 50ms..200ms would dead-letter everything within
    // a second of the outage.
    let Scenario {
        broker,
        topic,
        dlq,
        rx,
        hb,
    } = Setup::new("breaker")
        .partitions(2)
        .dlq()
        .sink(
            move |_| {
                Answer::status(if flag.load(Ordering::SeqCst) {
                    200
                } else {
                    503
                })
            },
            |n| {
                SinkToml::new(&n.topic, &n.url)
                    .max_attempts(4)
                    .backoff("50ms", "200ms")
                    .breaker_failures(2)
                    .breaker_cooldown("500ms")
                    .dlq(&n.dlq)
            },
        )
        .await;
    let recs: Vec<_> = (0..30)
        .map(|i| json!({"key": format!("k{}", i % 5), "value": json!({"k": format!("k{}", i % 5), "seq": i}).to_string()}))
        .collect();
    kafka::produce(&broker.addr(), &topic, &recs).await;

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = hb.metrics().await;
        if metric(&m, "hookbridge_breaker_state", &[("connector", "orders")]) == 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "breaker never opened:\n{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    up.store(true, Ordering::SeqCst);
    rx.wait_for(Duration::from_secs(30), "all 30 delivered", |s| {
        s.iter().filter(|r| r.status == 200).count() >= 30
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut by_key: std::collections::HashMap<String, Vec<u64>> = Default::default();
    for r in rx.seen().iter().filter(|r| r.status == 200) {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        by_key
            .entry(v["k"].as_str().unwrap().to_owned())
            .or_default()
            .push(v["seq"].as_u64().unwrap());
    }
    assert_eq!(
        by_key.values().map(Vec::len).sum::<usize>(),
        30,
        "each record delivered once"
    );
    for (key, seqs) in &by_key {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "key {key} out of order after recovery: {seqs:?}"
        );
    }
    let m = hb.metrics().await;
    assert_eq!(
        metric(&m, "hookbridge_dlq_writes_total", &[]),
        0.0,
        "no DLQ flood during the outage"
    );
    assert_eq!(
        metric(
            &m,
            "hookbridge_deliveries_total",
            &[("outcome", "delivered")]
        ),
        30.0
    );
    assert_eq!(
        metric(&m, "hookbridge_breaker_state", &[("connector", "orders")]),
        0.0
    );
    assert!(kafka::read(&broker.addr(), &dlq, None, 2.0)
        .await
        .is_empty());
}

/// A sink whose topic does not exist yet never joins its group (librdkafka waits for the
/// topic): it must not keep the replica unready, or one misspelt or not yet created topic
/// takes every replica's webhooks out of the load balancer. Once the topic is made, the
/// sink joins and delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_whose_topic_does_not_exist_yet_leaves_the_replica_ready() {
    let broker = Broker::start();
    let topic = unique("not-yet");
    let rx = Receiver::start(|_| Answer::status(200)).await;
    let cfg = Config::new(&broker.addr())
        .connector("out.toml", &SinkToml::new(&topic, &rx.url).render())
        .prop("topic.metadata.refresh.interval.ms", "1000");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    broker.create_topic(&topic, 1);
    one_record_delivered(&broker, &topic, &rx).await;
    // Deleted under the running sink, the topic takes the sink's partitions with it,
    // and librdkafka never says again that it is missing: still ready.
    broker.delete_topic(&topic);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !hb.logs().contains("partitions revoked") && !hb.logs().contains("assignment lost") {
        assert!(
            Instant::now() < deadline,
            "the partition never left: {}",
            hb.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    hb.ready(Duration::from_secs(20)).await;
}

/// Under the KIP-848 consumer group protocol the broker, not a rebalance callback, hands
/// a member its share: a replica the group gives no partition (more replicas than
/// partitions), and a sink whose topic does not exist yet, must be ready all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_consumer_group_protocol_a_replica_with_nothing_to_read_is_ready() {
    let broker = Broker::start();
    let topic = unique("spare-848");
    broker.create_topic(&topic, 1);
    let rx = Receiver::start(|_| Answer::status(200)).await;
    let replica = |topic: &str| {
        Config::new(&broker.addr())
            .default_session()
            .prop("group.protocol", "consumer")
            .connector("out.toml", &SinkToml::new(topic, &rx.url).render())
    };
    let mut first = Hookbridge::start(&replica(&topic));
    first.ready(Duration::from_secs(40)).await;
    let mut second = Hookbridge::start(&replica(&topic));
    second.ready(Duration::from_secs(40)).await;
    let mut waiting = Hookbridge::start(&replica(&unique("not-yet-848")));
    waiting.ready(Duration::from_secs(40)).await;
    one_record_delivered(&broker, &topic, &rx).await;
}

/// Produces one record to `topic` and waits until `rx` has it.
async fn one_record_delivered(broker: &Broker, topic: &str, rx: &Receiver) {
    kafka::produce(&broker.addr(), topic, &[json!({"key": "k", "value": "{}"})]).await;
    rx.wait_for(Duration::from_secs(40), "the record", |s| !s.is_empty())
        .await;
}

/// One process with a GitHub source and a sink reading the source's topic.
async fn bridge(broker: &Broker, topic: &str, url: &str) -> Hookbridge {
    broker.create_topic(topic, 2);
    let source = SourceToml::new("github", "/gh", topic)
        .verify_secrets("github", &["${GH}"])
        .key("json:/id")
        .render();
    let sink = SinkToml::new(topic, url).name("out").render();
    let cfg = Config::new(&broker.addr())
        .connector("gh.toml", &source)
        .connector("out.toml", &sink)
        .env("GH", "s3cr3t-github");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    hb
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_and_bytes_flow_from_webhook_through_kafka_to_the_destination() {
    let broker = Broker::start();
    let topic = unique("trace");
    let rx = Receiver::start(|_| Answer::status(200)).await;
    let hb = bridge(&broker, &topic, &rx.url).await;
    let body = br#"{"id":"evt_1","n":1}"#;
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let resp = reqwest::Client::new()
        .post(hb.url("/gh"))
        .header("content-type", "application/vnd.custom+json")
        .header("traceparent", tp)
        .header("X-Hub-Signature-256", github_sig("s3cr3t-github", body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    rx.wait_for(Duration::from_secs(30), "the delivery", |s| !s.is_empty())
        .await;
    let got = &rx.seen()[0];
    assert_eq!(&got.body[..], body);
    assert_eq!(got.header("content-type"), "application/vnd.custom+json");
    let out = got.header("traceparent");
    assert!(
        out.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "same trace id: {out}"
    );
    assert_ne!(out, tp, "a new span for the outgoing POST");

    // The scrape waits for the delivery's outcome to be counted, not just sent.
    let mut m = hb.metrics().await;
    for _ in 0..50 {
        if metric(&m, "hookbridge_deliveries_total", &[("connector", "out")]) >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        m = hb.metrics().await;
    }
    assert_eq!(
        metric(
            &m,
            "hookbridge_ingress_requests_total",
            &[("connector", "github"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "hookbridge_produce_latency_seconds_count",
            &[("connector", "github")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "hookbridge_deliveries_total",
            &[("connector", "out"), ("outcome", "delivered")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "hookbridge_delivery_attempts_total",
            &[("connector", "out"), ("result", "2xx")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "hookbridge_delivery_latency_seconds_count",
            &[("connector", "out")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "hookbridge_deliveries_in_flight",
            &[("connector", "out")]
        ),
        0.0
    );
    assert_eq!(
        metric(&m, "hookbridge_buffered_records", &[("connector", "out")]),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_accepted_webhook_and_leaves_nothing_uncommitted() {
    let broker = Broker::start();
    let topic = unique("termload");
    let rx = Receiver::start(|_| Answer {
        status: 200,
        headers: vec![],
        delay: Duration::from_millis(20),
    })
    .await;
    let mut hb = bridge(&broker, &topic, &rx.url).await;
    let url = hb.url("/gh");
    let stop = Arc::new(AtomicBool::new(false));
    let accepted_so_far = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for w in 0..8 {
        let (url, stop, counter) = (url.clone(), stop.clone(), accepted_so_far.clone());
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut accepted = Vec::new();
            for i in 0..10_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let id = format!("w{w}-{i}");
                let body = format!("{{\"id\":\"{id}\"}}");
                let sig = github_sig("s3cr3t-github", body.as_bytes());
                match client
                    .post(&url)
                    .header("X-Hub-Signature-256", sig)
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        counter.fetch_add(1, Ordering::SeqCst);
                        accepted.push(id)
                    }
                    Ok(_) => {}
                    Err(_) => break, // listener closed
                }
            }
            accepted
        }));
    }
    // SIGTERM comes under load both ways: webhooks accepted and records being delivered.
    wait_until(Duration::from_secs(30), "load both ways", || {
        std::future::ready(accepted_so_far.load(Ordering::SeqCst) > 20 && !rx.seen().is_empty())
    })
    .await;
    let status = hb.terminate(Duration::from_secs(30)).await;
    stop.store(true, Ordering::SeqCst);
    assert!(status.success(), "exit {status}");
    let mut accepted = Vec::new();
    for s in senders {
        accepted.extend(s.await.unwrap());
    }
    assert!(accepted.len() > 20, "load was running: {}", accepted.len());
    let in_kafka: std::collections::HashSet<String> =
        kafka::read(&broker.addr(), &topic, Some(accepted.len()), 20.0)
            .await
            .iter()
            .map(|r| String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned())
            .collect();
    let lost: Vec<_> = accepted
        .iter()
        .filter(|id| !in_kafka.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} accepted webhooks missing from Kafka: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    // Everything delivered before the exit was committed: a restart redelivers nothing
    // that had finished, and every record produced is delivered.
    let before = rx.seen().len();
    hb.spawn();
    rx.wait_for(Duration::from_secs(60), "every record delivered", |s| {
        s.iter()
            .map(|r| r.header("webhook-id"))
            .collect::<std::collections::HashSet<_>>()
            .len()
            >= in_kafka.len()
    })
    .await;
    let redelivered = rx.seen().iter().skip(before).filter(|r| r.nth > 1).count();
    assert_eq!(
        redelivered, 0,
        "records finished before SIGTERM were committed"
    );
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_destination_keeps_the_sink_s_memory_bounded() {
    // The destination accepts connections and never answers within the test.
    let never = |_: &Received| Answer {
        status: 200,
        headers: vec![],
        delay: Duration::from_secs(120),
    };
    let Scenario {
        broker,
        topic,
        rx,
        hb,
        ..
    } = Setup::new("stall")
        .partitions(2)
        .sink(never, |n| {
            SinkToml::new(&n.topic, &n.url)
                .name("stalled")
                .timeout("15s")
                .concurrency(8)
                .buffer(100)
        })
        .await;
    let idle_rss = rss_kib(hb.pid());
    let status = std::fs::read_to_string(format!("/proc/{}/status", hb.pid())).expect("status");
    assert!(
        (status.lines()).any(|l| l.split_whitespace().eq(["THP_enabled:", "0"])),
        "transparent huge pages are off for the process:\n{status}"
    );
    let value = "x".repeat(2048);
    let recs: Vec<_> = (0..8000)
        .map(|i| json!({"key": format!("k{i}"), "value": value}))
        .collect();
    kafka::produce(&broker.addr(), &topic, &recs).await;

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut m;
    loop {
        m = hb.metrics().await;
        let in_flight = metric(
            &m,
            "hookbridge_deliveries_in_flight",
            &[("connector", "stalled")],
        );
        if in_flight == 8.0 {
            break;
        }
        assert!(Instant::now() < deadline, "requests never in flight:\n{m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // From then on, the bounds are watched at every sample: through a window of 5 s, or
    // until the sink has dropped records fetched past what a paused partition holds
    // (saturated), whichever comes first. The sink holds its poll thread back once
    // enough records wait for a request slot, and a partition pauses at its buffer:
    // either way what it holds stays bounded.
    let watch_until = Instant::now() + Duration::from_secs(5);
    let (mut buffered, mut in_flight, mut rss);
    loop {
        buffered = metric(
            &m,
            "hookbridge_buffered_records",
            &[("connector", "stalled")],
        );
        in_flight = metric(
            &m,
            "hookbridge_deliveries_in_flight",
            &[("connector", "stalled")],
        );
        rss = rss_kib(hb.pid());
        assert!(rss > 0, "RSS of the process is readable");
        // A paused partition still holds what was fetched before its pause, up to half
        // its buffer more: at most 150 each.
        assert!(
            buffered <= 2.0 * 150.0,
            "buffer limit not enforced: {buffered}"
        );
        // 8000 × 2 KiB = 16 MiB were produced; a bounded sink holds a fraction of that.
        assert!(
            rss < idle_rss + 64 * 1024,
            "RSS grew from {idle_rss} KiB to {rss} KiB"
        );
        let dropped = metric(
            &m,
            "hookbridge_refetched_records_total",
            &[("connector", "stalled")],
        );
        if dropped > 0.0 || Instant::now() >= watch_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        m = hb.metrics().await;
    }
    eprintln!("stalled destination: buffered {buffered}, in flight {in_flight}, RSS {idle_rss} KiB idle → {rss} KiB");
    assert_eq!(in_flight, 8.0, "concurrency bounds the requests in flight");
    rx.wait_for(Duration::from_secs(10), "the requests in flight", |s| {
        s.len() >= 8
    })
    .await;
    assert_eq!(rx.seen().len(), 8, "no request beyond the concurrency");
}

/// A destination slower than Kafka (the usual case) holds the sink's poll thread back: the
/// records wait in librdkafka's bounded prefetch, read once, instead of being taken in
/// until each partition holds its `buffer` and pauses (each pause makes librdkafka drop
/// what it had prefetched for the partition and fetch it again on resume).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_slower_than_kafka_holds_the_sink_back_without_pausing_partitions() {
    let slow = |_: &Received| Answer {
        status: 200,
        headers: vec![],
        delay: Duration::from_millis(1),
    };
    let Scenario {
        broker,
        topic,
        rx,
        hb,
        ..
    } = Setup::new("paced")
        .partitions(2)
        .sink(slow, |n| {
            SinkToml::new(&n.topic, &n.url)
                .name("paced")
                .concurrency(4)
                .buffer(5000)
        })
        .await;
    // Twice the buffer per partition, every record of a key of its own (ready to start
    // as soon as a request slot is free). Held back, a partition holds a few rounds of
    // the concurrency and at most the 8 poll batches (2 048 records) handed over before.
    let recs: Vec<_> = (0..20_000)
        .map(|i| json!({"key": format!("k{i}"), "value": format!("{{\"n\":{i}}}")}))
        .collect();
    kafka::produce(&broker.addr(), &topic, &recs).await;
    rx.wait_for(Duration::from_secs(120), "every record delivered", |s| {
        s.len() >= recs.len()
    })
    .await;
    let m = hb.metrics().await;
    let logs = hb.logs();
    assert!(
        !logs.contains("partition paused"),
        "a partition paused though only the destination was slow"
    );
    assert_eq!(
        metric(
            &m,
            "hookbridge_refetched_records_total",
            &[("connector", "paced")]
        ),
        0.0
    );
}
