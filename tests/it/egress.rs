//! Egress end to end: records produced with confluent-kafka, POSTed by hookbridge to a
//! loopback receiver, offsets checked through the group's committed offsets.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde_json::json;

use crate::support::audit::Auditor;
use crate::support::broker::Broker;
use crate::support::connectors::SinkToml;
use crate::support::hookbridge::{metric, Config, Hookbridge};
use crate::support::kafka;
use crate::support::receiver::{Answer, Received, Receiver};
use crate::support::scenario::{Scenario, Setup};
use crate::support::unique;

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The signed sink `orders` these tests run; each adds what it checks.
fn sink(topic: &str, url: &str) -> SinkToml {
    SinkToml::new(topic, url)
        .timeout("5s")
        .concurrency(16)
        .sign_standard_webhooks("${SINK_WHSEC}")
        .max_attempts(5)
        .backoff("100ms", "2s")
}

/// A scenario of these tests: the signed sink's secret in the process's environment.
fn setup(prefix: &str) -> Setup {
    Setup::new(prefix).env("SINK_WHSEC", WHSEC)
}

async fn start_sink(broker: &Broker, sink: SinkToml, props: &str) -> Hookbridge {
    let cfg = Config::new(&broker.addr())
        .connector("orders.toml", &sink.render())
        .env("SINK_WHSEC", WHSEC)
        .extra(props);
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    hb
}

/// Records `{"k": key, "seq": n}` with `keys` keys round-robin.
fn records(n: usize, keys: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| json!({"key": format!("k{}", i % keys), "value": json!({"k": format!("k{}", i % keys), "seq": i}).to_string(), "headers": {"content-type": "application/json"}}))
        .collect()
}

fn distinct_ids(seen: &[Received]) -> usize {
    seen.iter()
        .map(|r| r.header("webhook-id"))
        .collect::<HashSet<_>>()
        .len()
}

/// Every partition of `topic` committed to its end by `group`.
async fn wait_committed_to_end(
    broker: &Broker,
    group: &str,
    topic: &str,
) -> BTreeMap<i32, (i64, i64)> {
    kafka::wait_committed_to_end(&broker.addr(), group, topic, Duration::from_secs(30)).await
}

/// The commit auditor on a sink's group (`g-<topic>`): see `support/audit.rs`.
fn audit(broker: &Broker, topic: &str, partitions: u32, rx: &Receiver) -> Auditor {
    Auditor::start(
        &broker.addr(),
        &format!("g-{topic}"),
        topic,
        partitions,
        rx.finished(),
    )
}

/// First-delivery order of `seq` per key.
fn first_delivery_order(seen: &[Received]) -> HashMap<String, Vec<u64>> {
    let mut order: HashMap<String, Vec<u64>> = HashMap::new();
    for r in seen.iter().filter(|r| r.nth == 1) {
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json body");
        order
            .entry(v["k"].as_str().unwrap_or("").to_owned())
            .or_default()
            .push(v["seq"].as_u64().unwrap_or(0));
    }
    order
}

fn assert_key_order(seen: &[Received]) {
    for (key, seqs) in first_delivery_order(seen) {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "key {key} out of order: {seqs:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_delivers_each_record_once_signed_and_commits_to_the_end() {
    let Scenario {
        broker,
        topic,
        rx,
        hb,
        ..
    } = setup("orders")
        .partitions(4)
        .sink(|_| Answer::status(200), |n| sink(&n.topic, &n.url))
        .await;
    let auditor = audit(&broker, &topic, 4, &rx);
    kafka::produce(&broker.addr(), &topic, &records(200, 20)).await;
    rx.wait_for(Duration::from_secs(30), "200 deliveries", |s| {
        distinct_ids(s) >= 200
    })
    .await;

    let seen = rx.seen();
    assert_eq!(
        seen.len(),
        200,
        "each record exactly once on the happy path"
    );
    let wh = standardwebhooks::Webhook::new(WHSEC).unwrap();
    for r in &seen {
        wh.verify(&r.body, &r.headers)
            .expect("valid Standard Webhooks signature");
        assert_eq!(r.header("content-type"), "application/json");
        let id = r.header("webhook-id");
        assert!(id.starts_with(&format!("{topic}-")), "{id}");
        assert!(r.header("traceparent").starts_with("00-"));
    }
    assert_key_order(&seen);
    wait_committed_to_end(&broker, &format!("g-{topic}"), &topic).await;
    auditor.finish().await.assert_clean("happy path");
    drop(hb);
}

/// Producers compress their batches with any codec Kafka has (Go's and Java's clients
/// often zstd): every one is read and delivered, in key order, with the uncompressed
/// records after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_in_batches_of_every_compression_codec_are_delivered() {
    let Scenario {
        broker,
        topic,
        rx,
        hb,
        ..
    } = setup("codecs")
        .sink(|_| Answer::status(200), |n| sink(&n.topic, &n.url))
        .await;
    let padding = "a".repeat(500);
    let mut produced = 0;
    for codec in ["gzip", "snappy", "lz4", "zstd", "none"] {
        let batch: Vec<_> = (0..10)
            .map(|i| {
                let key = format!("k{}", i % 3);
                let seq = produced + i;
                json!({"key": key, "value": json!({"k": key, "seq": seq, "codec": codec, "pad": padding}).to_string()})
            })
            .collect();
        kafka::produce_compressed(&broker.addr(), &topic, &batch, codec).await;
        produced += batch.len();
    }
    rx.wait_for(Duration::from_secs(30), "every record", |s| {
        distinct_ids(s) >= produced
    })
    .await;
    let seen = rx.seen();
    for codec in ["gzip", "snappy", "lz4", "zstd", "none"] {
        let of_codec = (seen.iter())
            .filter(|r| {
                String::from_utf8_lossy(&r.body).contains(&format!("\"codec\":\"{codec}\""))
            })
            .count();
        assert_eq!(of_codec, 10, "{codec}");
    }
    assert_key_order(&seen);
    wait_committed_to_end(&broker, &format!("g-{topic}"), &topic).await;
    drop(hb);
}

/// A topic written by transactions ends each one with a commit or abort marker that no
/// consumer is handed, and an aborted transaction's records are never read (the consumer
/// reads committed records only). The sink's commit still reaches the log's end, past the
/// last marker, so its lag reads zero once everything was delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_written_by_transactions_is_committed_to_its_end() {
    let Scenario {
        broker,
        topic,
        rx,
        hb,
        ..
    } = setup("transactions")
        .sink(|_| Answer::status(200), |n| sink(&n.topic, &n.url))
        .await;
    let records = |what: &str| -> Vec<serde_json::Value> {
        (0..6)
            .map(|i| json!({"key": format!("k{}", i % 2), "value": format!("{what}-{i}")}))
            .collect()
    };
    kafka::produce_in_transaction(&broker.addr(), &topic, &records("kept"), "commit").await;
    kafka::produce_in_transaction(&broker.addr(), &topic, &records("aborted"), "abort").await;
    rx.wait_for(Duration::from_secs(30), "the committed transaction", |s| {
        distinct_ids(s) >= 6
    })
    .await;
    let ends = wait_committed_to_end(&broker, &format!("g-{topic}"), &topic).await;
    // 12 records and a marker per transaction in each partition it wrote to: the commit
    // went past markers no consumer is handed.
    assert!(
        ends.values().map(|&(_, end)| end).sum::<i64>() >= 14,
        "{ends:?}"
    );
    let seen = rx.seen();
    assert!(
        seen.iter()
            .all(|r| !String::from_utf8_lossy(&r.body).contains("aborted")),
        "an aborted record was delivered"
    );
    assert_eq!(distinct_ids(&seen), 6);
    drop(hb);
}

/// A topic deleted and created again under a running sink starts its log over: its new
/// records are delivered, and the sink's commit comes back down to them, so a restart
/// resumes at the new log's next record, not at the old log's (which would skip new
/// records below it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_created_again_under_a_running_sink_is_delivered_whole_across_a_restart() {
    let Scenario {
        broker,
        topic,
        rx,
        mut hb,
        ..
    } = setup("recreated")
        // Whichever way the client learns of the new topic (a fetch error, or finding
        // it gone and back), within a second rather than librdkafka's 5 minutes.
        .config(|c| c.prop("topic.metadata.refresh.interval.ms", "1000"))
        .sink(|_| Answer::status(200), |n| sink(&n.topic, &n.url))
        .await;
    let generation = |gen: u32, range: std::ops::Range<usize>| -> Vec<serde_json::Value> {
        range
            .map(|i| json!({"key": format!("k{}", i % 5), "value": json!({"gen": gen, "n": i}).to_string()}))
            .collect()
    };
    let seen_of = |gen: u32| -> HashSet<u64> {
        (rx.seen().iter())
            .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
            .filter(|v| v["gen"] == gen)
            .filter_map(|v| v["n"].as_u64())
            .collect()
    };
    kafka::produce(&broker.addr(), &topic, &generation(1, 0..100)).await;
    let group = format!("g-{topic}");
    wait_committed_to_end(&broker, &group, &topic).await;

    broker.delete_topic(&topic);
    broker.create_topic(&topic, 1);
    kafka::produce(&broker.addr(), &topic, &generation(2, 0..50)).await;
    rx.wait_for(Duration::from_secs(60), "the new log's records", |_| {
        seen_of(2).len() >= 50
    })
    .await;
    wait_committed_to_end(&broker, &group, &topic).await;
    assert!(hb.terminate(Duration::from_secs(30)).await.success());

    kafka::produce(&broker.addr(), &topic, &generation(2, 50..150)).await;
    hb.spawn();
    rx.wait_for(
        Duration::from_secs(60),
        "every record of the new log",
        |_| seen_of(2).len() >= 150,
    )
    .await;
    assert_eq!(seen_of(2), (0..150).collect::<HashSet<u64>>());
}

/// A record that holds an encoded body (its webhook's Content-Encoding kept beside it)
/// is POSTed as it is, with that Content-Encoding; one without says none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoded_value_is_sent_with_its_content_encoding() {
    let Scenario {
        topic,
        rx,
        hb,
        broker,
        ..
    } = setup("enc")
        .sink(|_| Answer::status(200), |n| sink(&n.topic, &n.url))
        .await;
    let recs = [
        json!({"key": "a", "value": "gz", "headers": {"content-encoding": "gzip"}}),
        json!({"key": "a", "value": "plain", "headers": {}}),
    ];
    kafka::produce(&broker.addr(), &topic, &recs).await;
    rx.wait_for(Duration::from_secs(30), "2 deliveries", |s| s.len() >= 2)
        .await;
    let seen = rx.seen();
    let encodings: Vec<_> = (seen.iter())
        .map(|r| (r.body.to_vec(), r.header("content-encoding")))
        .collect();
    assert_eq!(
        encodings,
        [
            (b"gz".to_vec(), "gzip".to_owned()),
            (b"plain".to_vec(), String::new())
        ]
    );
    drop(hb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_delays_one_key_while_other_keys_flow() {
    let Scenario {
        broker,
        topic,
        rx,
        hb,
        ..
    } = setup("retry")
        .sink(
            |r| {
                let body = String::from_utf8_lossy(&r.body);
                if body.contains("\"slow\"") && body.contains("\"seq\":0") && r.nth == 1 {
                    Answer {
                        status: 503,
                        headers: vec![("retry-after", "2".into())],
                        delay: Duration::ZERO,
                    }
                } else {
                    Answer::status(200)
                }
            },
            |n| sink(&n.topic, &n.url),
        )
        .await;
    let mut recs = vec![
        json!({"key": "slow", "value": json!({"k": "slow", "seq": 0}).to_string()}),
        json!({"key": "slow", "value": json!({"k": "slow", "seq": 1}).to_string()}),
    ];
    for i in 2..12 {
        recs.push(json!({"key": format!("fast{i}"), "value": json!({"k": format!("fast{i}"), "seq": i}).to_string()}));
    }
    kafka::produce(&broker.addr(), &topic, &recs).await;
    rx.wait_for(Duration::from_secs(30), "all 12 delivered", |s| {
        s.iter().filter(|r| r.nth >= 1).count() >= 13
    })
    .await;

    let seen = rx.seen();
    let slow0: Vec<&Received> = seen
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("\"slow\",\"seq\":0"))
        .collect();
    assert_eq!(slow0.len(), 2, "503 then 200");
    let gap = slow0[1].at - slow0[0].at;
    assert!(
        gap >= Duration::from_millis(1900) && gap < Duration::from_secs(5),
        "Retry-After: 2 honoured, got {gap:?}"
    );
    let slow1 = seen
        .iter()
        .find(|r| String::from_utf8_lossy(&r.body).contains("\"slow\",\"seq\":1"))
        .unwrap();
    assert!(
        slow1.at >= slow0[1].at,
        "seq 1 of the same key waits for seq 0"
    );
    let fast_done = seen
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("fast"))
        .map(|r| r.at)
        .max()
        .unwrap();
    assert!(
        fast_done < slow0[1].at,
        "other keys kept flowing during the retry wait"
    );
    wait_committed_to_end(&broker, &format!("g-{topic}"), &topic).await;
    drop(hb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failure_is_dead_lettered_with_every_header_and_commit_moves_on() {
    let broker = Broker::start();
    let topic = unique("poison");
    let dlq = format!("{topic}.dlq");
    broker.create_topic(&topic, 1);
    broker.create_topic(&dlq, 1);
    let rx = Receiver::start(|r| {
        if String::from_utf8_lossy(&r.body).contains("poison") {
            Answer::status(400)
        } else {
            Answer::status(200)
        }
    })
    .await;
    let auditor = Auditor::start_with_dlq(
        &broker.addr(),
        &format!("g-{topic}"),
        &topic,
        1,
        rx.finished(),
        Some(&dlq),
    );
    let hb = start_sink(&broker, sink(&topic, &rx.url).dlq(&dlq), "").await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[
            json!({"key": "a", "value": "{\"ok\":1}"}),
            json!({"key": "p", "value": "{\"poison\":true}", "headers": {"x-trace": "t1"}}),
            json!({"key": "b", "value": "{\"ok\":2}"}),
        ],
    )
    .await;
    let dead = kafka::read(&broker.addr(), &dlq, Some(1), 20.0).await;
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(d.value, b"{\"poison\":true}");
    assert_eq!(d.key.as_deref(), Some(&b"p"[..]));
    assert_eq!(
        d.header("x-trace").as_deref(),
        Some("t1"),
        "original headers kept"
    );
    assert_eq!(
        d.header("hookbridge-dlq-reason").as_deref(),
        Some("permanent")
    );
    assert_eq!(d.header("hookbridge-dlq-status").as_deref(), Some("400"));
    assert_eq!(d.header("hookbridge-dlq-attempts").as_deref(), Some("1"));
    assert_eq!(
        d.header("hookbridge-dlq-topic").as_deref(),
        Some(topic.as_str())
    );
    assert_eq!(d.header("hookbridge-dlq-partition").as_deref(), Some("0"));
    assert_eq!(d.header("hookbridge-dlq-offset").as_deref(), Some("1"));
    assert_eq!(
        d.header("hookbridge-dlq-connector").as_deref(),
        Some("orders")
    );
    assert_eq!(
        d.header("hookbridge-dlq-response").as_deref(),
        Some("answer")
    );
    for h in [
        "hookbridge-dlq-first-attempt",
        "hookbridge-dlq-last-attempt",
    ] {
        assert!(
            humantime::parse_rfc3339(&d.header(h).unwrap()).is_ok(),
            "{h}"
        );
    }
    assert_eq!(
        rx.seen()
            .iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains("poison"))
            .count(),
        1,
        "a 400 is not retried"
    );
    wait_committed_to_end(&broker, &format!("g-{topic}"), &topic).await;
    auditor.finish().await.assert_clean("permanent failure");
    drop(hb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_dead_letter_write_keeps_the_offset_uncommitted() {
    let broker = Broker::start();
    let topic = unique("dlqfail");
    broker.create_topic(&topic, 1);
    let rx = Receiver::start(|r| {
        if String::from_utf8_lossy(&r.body).contains("poison") {
            Answer::status(422)
        } else {
            Answer::status(200)
        }
    })
    .await;
    // The DLQ record carries the original key plus the dlq headers; with a 1000-byte
    // message limit the DLQ produce fails while the original (a 900-byte key) was
    // produced and consumed fine: a real produce error from librdkafka, on every try,
    // however much of the value is cut (the key is never cut).
    let cfg = Config::new(&broker.addr())
        .connector(
            "orders.toml",
            &sink(&topic, &rx.url).dlq(&format!("{topic}.dlq")).render(),
        )
        .env("SINK_WHSEC", WHSEC)
        .prop("message.max.bytes", "1000");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[
            json!({"key": "a", "value": "{\"ok\":1}"}),
            json!({"key": "p".repeat(900), "value": "{\"poison\":1}"}),
            json!({"key": "b", "value": "{\"ok\":2}"}),
        ],
    )
    .await;
    // The records around the poison one are delivered, so a watermark that skipped the
    // poison record would have moved to 3.
    rx.wait_for(Duration::from_secs(20), "both good records", |s| {
        s.iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains("ok"))
            .count()
            >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let committed = kafka::committed(&broker.addr(), &format!("g-{topic}"), &topic).await;
    assert_eq!(
        committed.get(&0).map(|c| c.0),
        Some(1),
        "commit stops at the record whose DLQ write failed: {committed:?}"
    );
    assert!(hb.logs().contains("dead-letter write failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_then_restart_loses_nothing() {
    let Scenario {
        broker,
        topic,
        rx,
        mut hb,
        ..
    } = setup("kill")
        .partitions(4)
        .sink(
            |_| Answer {
                status: 200,
                headers: vec![],
                delay: Duration::from_millis(3),
            },
            |n| sink(&n.topic, &n.url).buffer(100),
        )
        .await;
    let auditor = audit(&broker, &topic, 4, &rx);
    const N: usize = 2000;
    kafka::produce(&broker.addr(), &topic, &records(N, 50)).await;
    rx.wait_for(Duration::from_secs(60), "a quarter of the stream", |s| {
        distinct_ids(s) >= N / 4
    })
    .await;
    hb.kill9();
    let before_restart = rx.seen().len();
    hb.spawn();
    rx.wait_for(
        Duration::from_secs(120),
        "every record after restart",
        |s| {
            auditor.fail_fast("kill -9 mid-stream");
            distinct_ids(s) >= N
        },
    )
    .await;
    let seen = rx.seen();
    let duplicates = seen.len() - distinct_ids(&seen);
    eprintln!(
        "kill -9 at {before_restart} deliveries: {} requests, {duplicates} duplicates",
        seen.len()
    );
    // Redelivered at most: what was buffered (4 partitions x 1.5 x buffer 100: a paused
    // partition still holds what was fetched before the pause, up to half its buffer
    // more) — anything delivered but past the last committed watermark.
    assert!(
        duplicates <= 600,
        "{duplicates} duplicates exceed the in-flight window"
    );
    assert_key_order(&seen);
    wait_committed_to_end(&broker, &format!("g-{topic}"), &topic).await;
    auditor.finish().await.assert_clean("kill -9 mid-stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_group_and_survive_one_being_killed() {
    let Scenario {
        broker,
        topic,
        rx,
        hb: mut a,
        ..
    } = setup("pair")
        .partitions(4)
        .sink(|_| Answer::status(200), |n| sink(&n.topic, &n.url))
        .await;
    let mut b = start_sink(&broker, sink(&topic, &rx.url), "").await;
    // Both hold partitions once the group settled.
    a.ready(Duration::from_secs(40)).await;
    b.ready(Duration::from_secs(40)).await;
    let auditor = audit(&broker, &topic, 4, &rx);
    kafka::produce(&broker.addr(), &topic, &records(400, 40)).await;
    rx.wait_for(Duration::from_secs(60), "first 400", |s| {
        distinct_ids(s) >= 400
    })
    .await;
    let delivered = |m: &str| {
        crate::support::hookbridge::metric(
            m,
            "hookbridge_deliveries_total",
            &[("outcome", "delivered")],
        )
    };
    let (ma, mb) = (a.metrics().await, b.metrics().await);
    assert!(
        delivered(&ma) > 0.0 && delivered(&mb) > 0.0,
        "both members delivered: {} / {}",
        delivered(&ma),
        delivered(&mb)
    );
    a.kill9();
    let more: Vec<_> = records(800, 40).into_iter().skip(400).collect();
    kafka::produce(&broker.addr(), &topic, &more).await;
    rx.wait_for(Duration::from_secs(90), "all 800 after the failover", |s| {
        auditor.fail_fast("two members, one killed");
        distinct_ids(s) >= 800
    })
    .await;
    wait_committed_to_end(&broker, &format!("g-{topic}"), &topic).await;
    auditor
        .finish()
        .await
        .assert_clean("two members, one killed");
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_deliveries_commits_and_exits_0() {
    let Scenario {
        broker,
        topic,
        rx,
        mut hb,
        ..
    } = setup("term")
        .partitions(2)
        .sink(
            |_| Answer {
                status: 200,
                headers: vec![],
                delay: Duration::from_millis(1500),
            },
            |n| sink(&n.topic, &n.url),
        )
        .await;
    kafka::produce(&broker.addr(), &topic, &records(12, 12)).await;
    rx.wait_for(Duration::from_secs(20), "12 requests in flight", |s| {
        s.len() >= 12
    })
    .await;
    let status = hb.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status}");
    let committed = wait_committed_to_end(&broker, &format!("g-{topic}"), &topic).await;
    assert_eq!(committed.values().map(|(c, _)| c).sum::<i64>(), 12);
    assert_eq!(rx.seen().len(), 12, "nothing delivered twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_without_partitions_is_still_ready() {
    let Scenario {
        broker,
        topic,
        rx,
        hb: a,
        ..
    } = setup("spare")
        .sink(|_| Answer::status(200), |n| sink(&n.topic, &n.url))
        .await;
    // The second member gets no partition of a 1-partition topic; it must still report
    // ready, or a rollout with more replicas than partitions would never finish.
    let b = start_sink(&broker, sink(&topic, &rx.url), "").await;
    kafka::produce(&broker.addr(), &topic, &records(10, 10)).await;
    rx.wait_for(Duration::from_secs(30), "10 deliveries", |s| {
        distinct_ids(s) >= 10
    })
    .await;
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_token_or_missing_route_is_retried_until_fixed_not_dead_lettered() {
    // A rotated token (401/403) or a route not deployed yet (404) for the first two
    // attempts of each record, then fixed.
    let Scenario {
        broker,
        topic,
        dlq,
        rx,
        hb,
    } = setup("auth-retry")
        .dlq()
        .sink(
            |r| {
                let body = String::from_utf8_lossy(&r.body).into_owned();
                let refused = match body.chars().rev().find(char::is_ascii_digit) {
                    Some('0') => 401,
                    Some('1') => 403,
                    _ => 404,
                };
                Answer::status(if r.nth <= 2 { refused } else { 200 })
            },
            |n| sink(&n.topic, &n.url).dlq(&n.dlq),
        )
        .await;
    kafka::produce(&broker.addr(), &topic, &records(3, 3)).await;
    rx.wait_for(Duration::from_secs(30), "every record delivered", |s| {
        s.iter().filter(|r| r.status == 200).count() >= 3
    })
    .await;
    let statuses: HashSet<u16> = rx.seen().iter().map(|r| r.status).collect();
    assert_eq!(statuses, HashSet::from([200, 401, 403, 404]));
    wait_committed_to_end(&broker, &format!("g-{topic}"), &topic).await;
    assert!(
        kafka::read(&broker.addr(), &dlq, None, 3.0)
            .await
            .is_empty(),
        "nothing dead-lettered"
    );
    drop(hb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_status_policy_decides_what_retries_and_what_dead_letters() {
    // seq 0: 422 once, then accepted. seq 1: 503 every time.
    let Scenario {
        broker,
        topic,
        dlq,
        rx,
        hb,
    } = setup("status-policy")
        .dlq()
        .sink(
            |r| {
                let body = String::from_utf8_lossy(&r.body).into_owned();
                Answer::status(match body.chars().rev().find(char::is_ascii_digit) {
                    Some('0') if r.nth == 1 => 422,
                    Some('0') => 200,
                    _ => 503,
                })
            },
            |n| {
                sink(&n.topic, &n.url)
                    .dlq(&n.dlq)
                    .set("status", "{ retry = [422], dead_letter = [503] }")
            },
        )
        .await;
    kafka::produce(&broker.addr(), &topic, &records(2, 2)).await;
    let dead = kafka::read(&broker.addr(), &dlq, Some(1), 20.0).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].header("hookbridge-dlq-status").as_deref(),
        Some("503")
    );
    assert_eq!(
        dead[0].header("hookbridge-dlq-attempts").as_deref(),
        Some("1")
    );
    rx.wait_for(
        Duration::from_secs(20),
        "seq 0 delivered after a retry",
        |s| s.iter().any(|r| r.status == 200),
    )
    .await;
    wait_committed_to_end(&broker, &format!("g-{topic}"), &topic).await;
    drop(hb);
}

/// Produces `n` records over `partitions` partitions straight through librdkafka; every
/// `poison_every`th carries a header whose *name* is not UTF-8 (as Go's and C's clients
/// can write, and confluent-kafka's Python API cannot).
fn produce_with_raw_header_names(
    brokers: &str,
    topic: &str,
    n: usize,
    partitions: i32,
    poison_every: usize,
) {
    use rdkafka::bindings as rdsys;
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .create()
        .expect("test producer");
    for i in 0..n {
        let headers = OwnedHeaders::new().insert(Header {
            key: "content-type",
            value: Some("application/json"),
        });
        if i % poison_every == poison_every - 1 {
            let name: &[u8] = b"x-\xff\xfe-trace";
            let value: &[u8] = b"v";
            let list = headers.as_borrowed() as *const _ as *mut rdsys::rd_kafka_headers_t;
            // SAFETY: `list` is the header list `headers` owns and nobody else uses yet.
            let err = unsafe {
                rdsys::rd_kafka_header_add(
                    list,
                    name.as_ptr().cast(),
                    name.len() as isize,
                    value.as_ptr().cast(),
                    value.len() as isize,
                )
            };
            assert_eq!(err, rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR);
        }
        // A key always lands on one partition, so key order can be checked.
        let key = format!("k{}", i % 50);
        let value = json!({"k": key, "seq": i}).to_string();
        let mut record = BaseRecord::to(topic)
            .partition((i % 50) as i32 % partitions)
            .key(&key)
            .payload(&value)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(50));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_names_that_are_not_utf8_stop_nothing_and_sigterm_still_exits() {
    let broker = Broker::start();
    let topic = unique("poison");
    broker.create_topic(&topic, 4);
    let rx = Receiver::start(|_| Answer::status(200)).await;
    // The fixture's drain deadline (`shutdown.drain_timeout`) is 20 s.
    let mut hb = start_sink(&broker, sink(&topic, &rx.url), "").await;
    let (brokers, t) = (broker.addr(), topic.clone());
    tokio::task::spawn_blocking(move || produce_with_raw_header_names(&brokers, &t, 2000, 4, 500))
        .await
        .expect("produce");
    rx.wait_for(Duration::from_secs(60), "all 2000 records delivered", |s| {
        distinct_ids(s) >= 2000
    })
    .await;
    let text = hb.metrics().await;
    assert_eq!(
        metric(&text, "hookbridge_lossy_header_names_total", &[]),
        4.0,
        "each poison header counted once"
    );
    assert_key_order(&rx.seen());
    wait_committed_to_end(&broker, &format!("g-{topic}"), &topic).await;
    let asked = std::time::Instant::now();
    let status = hb.terminate(Duration::from_secs(25)).await;
    assert!(status.success(), "exit status {status}");
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "exited within the drain deadline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_too_large_for_the_producer_is_written_cut_and_marked() {
    let broker = Broker::start();
    let topic = unique("huge");
    let dlq = format!("{topic}.dlq");
    broker.create_topic(&topic, 1);
    broker.create_topic(&dlq, 1);
    let rx = Receiver::start(|_| Answer::status(400)).await;
    // The producer's limit follows the sources (none here); a sink consumes whatever is
    // in its topics, so a record can be larger than any dead letter the producer takes.
    let cfg = Config::new(&broker.addr())
        .connector("orders.toml", &sink(&topic, &rx.url).dlq(&dlq).render())
        .env("SINK_WHSEC", WHSEC)
        .env("CONSOLE_TOKEN", "console-token-cut-4a1b9e")
        .extra("[admin.console]\ntoken = \"${CONSOLE_TOKEN}\"")
        .prop("message.max.bytes", "200000");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    let big = "x".repeat(300_000);
    kafka::produce(
        &broker.addr(),
        &topic,
        &[
            json!({"key": "big", "value": big, "headers": {"x-trace": "t1"}}),
            json!({"key": "small", "value": "{}", "headers": {"x-null": null, "x-empty": ""}}),
            json!({"key": "k".repeat(250_000), "value": "{}"}),
        ],
    )
    .await;
    let dead = kafka::read(&broker.addr(), &dlq, Some(3), 30.0).await;
    assert_eq!(dead.len(), 3, "all dead-lettered, the large ones cut");
    // A key too large for any dead letter is cut last, and marked: the record is not
    // left unfinished for good.
    let long_key = dead
        .iter()
        .find(|d| d.key.as_ref().is_some_and(|k| k.len() > 1000))
        .expect("the long key's dead letter");
    assert_eq!(long_key.key.as_ref().map(Vec::len), Some(1024));
    assert_eq!(
        long_key.header("hookbridge-dlq-key-truncated").as_deref(),
        Some("250000")
    );
    let cut = dead
        .iter()
        .find(|d| d.key.as_deref() == Some(&b"big"[..]))
        .expect("the large record's dead letter");
    assert_eq!(
        cut.header("hookbridge-dlq-truncated").as_deref(),
        Some("300000")
    );
    assert!(!cut.value.is_empty() && cut.value.len() < 200_000);
    assert!(big.as_bytes().starts_with(&cut.value), "the value's start");
    assert_eq!(cut.header("x-trace").as_deref(), Some("t1"));
    assert_eq!(
        cut.header("hookbridge-dlq-reason").as_deref(),
        Some("permanent")
    );
    let whole = dead
        .iter()
        .find(|d| d.key.as_deref() == Some(&b"small"[..]))
        .unwrap();
    assert_eq!(whole.header("hookbridge-dlq-truncated"), None);
    assert_eq!(
        whole.null_headers,
        ["x-null"],
        "a null header value stays null"
    );
    assert_eq!(whole.header("x-empty").as_deref(), Some(""));
    // And `dlq show` tells the two apart.
    let at = format!("{}:{}", whole.partition, whole.offset);
    let (ok, out) = hb
        .command(&["dlq", "show", "--connector", "orders", "--at", &at])
        .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("x-null: (null)") && out.contains("x-empty: \n"),
        "{out}"
    );
    wait_committed_to_end(&broker, &format!("g-{topic}"), &topic).await;
    let text = hb.metrics().await;
    assert_eq!(metric(&text, "hookbridge_dlq_truncated_total", &[]), 2.0);
    assert!(
        metric(
            &text,
            "hookbridge_dlq_write_failures_total",
            &[("error", "too_large")]
        ) >= 1.0
    );
    // A cut record is evidence, not something to redrive as if whole.
    let (ok, out) = hb
        .command(&["dlq", "redrive", "--connector", "orders", "--dry-run"])
        .await;
    assert!(ok, "{out}");
    assert!(out.contains("cut to fit"), "{out}");
    assert!(out.contains("would redrive: 1;"), "{out}");
    assert!(out.contains("its key 250000 bytes"), "{out}");
    // Nor from the console, one record at a time.
    let at = format!("{}:{}", cut.partition, cut.offset);
    let (status, body) = console_redrive(&hb, "console-token-cut-4a1b9e", &at).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("cut to fit"), "{body}");
    assert!(
        rx.seen().iter().all(|r| r.body.len() != cut.value.len()),
        "the cut record was sent as if whole"
    );
}

/// Logs in to the console and redrives the dead letter at `P:OFFSET` (the CSRF token
/// read from its page): the answer's status and page.
async fn console_redrive(hb: &Hookbridge, token: &str, at: &str) -> (u16, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(hb.admin_url("/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = http
        .get(hb.admin_url(&format!("/console/sinks/orders/dlq/{at}")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let from = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    let csrf = page[from..].split('"').next().unwrap().to_owned();
    let r = http
        .post(hb.admin_url(&format!("/console/sinks/orders/dlq/{at}/redrive")))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_dlq_topic_is_warned_about_at_start() {
    let broker = Broker::start();
    let topic = unique("nodlq");
    let dlq = format!("{topic}.missing");
    broker.create_topic(&topic, 1);
    let rx = Receiver::start(|_| Answer::status(200)).await;
    let hb = start_sink(&broker, sink(&topic, &rx.url).dlq(&dlq), "").await;
    // Tansu (like Apache Kafka by default) creates a topic on its first produce, so the
    // failing writes themselves (`hookbridge_dlq_write_failures_total{error=
    // "unknown_topic"}`) need a broker that does not; the warning comes first anyway.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !hb.logs().contains("dead-letter topic not found") {
        assert!(
            std::time::Instant::now() < deadline,
            "no startup warning:\n{}",
            hb.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(hb.logs().contains(&dlq));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_stalled_destination_exits_by_the_drain_deadline() {
    let broker = Broker::start();
    let topic = unique("stalled");
    broker.create_topic(&topic, 1);
    // Never answers within the sink's timeout: every attempt ends by timing out, and the
    // records queued behind them would each get one more attempt at shutdown.
    let rx = Receiver::start(|_| Answer {
        status: 200,
        headers: vec![],
        delay: Duration::from_secs(120),
    })
    .await;
    let cfg = Config::new(&broker.addr())
        .connector(
            "orders.toml",
            &sink(&topic, &rx.url).concurrency(2).timeout("15s").render(),
        )
        .env("SINK_WHSEC", WHSEC);
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    kafka::produce(&broker.addr(), &topic, &records(8, 8)).await;
    rx.wait_for(Duration::from_secs(20), "2 stalled requests", |s| {
        s.len() >= 2
    })
    .await;
    // The fixture's shutdown.drain_timeout is 20 s.
    let asked = std::time::Instant::now();
    let status = hb.terminate(Duration::from_secs(40)).await;
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(23),
        "exited {took:?} after SIGTERM"
    );
    assert!(status.success(), "exit status {status}");
    let committed = kafka::committed(&broker.addr(), &format!("g-{topic}"), &topic).await;
    assert!(
        committed.get(&0).is_none_or(|(c, _)| *c <= 0),
        "nothing was delivered, nothing may be committed: {committed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_assignment_is_dropped_at_once_not_drained() {
    let mut broker = Broker::own();
    let topic = unique("lost");
    broker.create_topic(&topic, 1);
    let rx = Receiver::start(|_| Answer {
        status: 200,
        headers: vec![],
        delay: Duration::from_secs(120),
    })
    .await;
    let cfg = Config::new(&broker.addr())
        .connector(
            "orders.toml",
            &sink(&topic, &rx.url).timeout("15s").render(),
        )
        .env("SINK_WHSEC", WHSEC);
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    kafka::produce(&broker.addr(), &topic, &records(4, 4)).await;
    rx.wait_for(Duration::from_secs(20), "stalled requests", |s| {
        !s.is_empty()
    })
    .await;
    // The coordinator goes away: after session.timeout.ms (6 s) the assignment is lost.
    broker.stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !hb.logs().contains("assignment lost") {
        assert!(
            !hb.logs().contains("partitions revoked; draining"),
            "a lost assignment was drained:\n{}",
            hb.logs()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no lost assignment reported:\n{}",
            hb.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(hb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_the_broker_unresponsive_exits_1_soon_after_the_deadline() {
    let broker = Broker::own();
    let topic = unique("frozen");
    broker.create_topic(&topic, 2);
    let rx = Receiver::start(|_| Answer::status(200)).await;
    let cfg = Config::new(&broker.addr())
        .connector("orders.toml", &sink(&topic, &rx.url).render())
        .env("SINK_WHSEC", WHSEC)
        .env("HOOKBRIDGE__SHUTDOWN__DRAIN_TIMEOUT", "6s");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    kafka::produce(&broker.addr(), &topic, &records(10, 10)).await;
    rx.wait_for(Duration::from_secs(30), "10 records delivered", |s| {
        distinct_ids(s) >= 10
    })
    .await;
    // The broker stops answering but keeps its sockets open, as a hung host would: the
    // final commit and the group leave cannot finish.
    broker.signal("-STOP");
    let asked = std::time::Instant::now();
    let status = hb.terminate(Duration::from_secs(30)).await;
    let took = asked.elapsed();
    broker.signal("-CONT");
    assert_eq!(status.code(), Some(1), "exit status {status}");
    // drain_timeout (6 s) + the 3 s a sink is waited for past it, plus slack.
    println!("exited {took:?} after SIGTERM with the broker stopped");
    assert!(
        took < Duration::from_millis(10_500),
        "exited {took:?} after SIGTERM:\n{}",
        hb.logs()
    );
}

/// Records without headers are told apart from records with them by reading librdkafka's
/// message struct (`egress::record::unparsed`): on the librdkafka this build links, that
/// read agrees with the public API for a record without headers, one produced with an
/// empty header list, and ones with headers (a null value among them), which keep them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_without_headers_are_recognised_and_headers_are_kept() {
    use hookbridge::egress::record::{unparsed, Record, Topic};
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::{Offset, TopicPartitionList};

    let broker = Broker::start();
    let topic = unique("headers");
    broker.create_topic(&topic, 1);
    let brokers = broker.addr();
    let t = topic.clone();
    tokio::task::spawn_blocking(move || {
        let producer: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("acks", "all")
            .create()
            .expect("test producer");
        let with = || {
            OwnedHeaders::new()
                .insert(Header {
                    key: "a",
                    value: Some("1"),
                })
                .insert(Header::<&str> {
                    key: "b",
                    value: None,
                })
        };
        let records = [
            BaseRecord::<(), str>::to(&t).payload("none"),
            BaseRecord::to(&t)
                .payload("empty")
                .headers(OwnedHeaders::new()),
            BaseRecord::to(&t).payload("with").headers(with()),
            BaseRecord::to(&t).payload("none-again"),
            BaseRecord::to(&t).payload("with-again").headers(with()),
        ];
        for record in records {
            producer.send(record).map_err(|(e, _)| e).expect("send");
        }
        producer.flush(Duration::from_secs(30)).expect("flush");

        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("g-{t}"))
            .create()
            .expect("test consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&t, 0, Offset::Beginning)
            .expect("tpl");
        consumer.assign(&tpl).expect("assign");
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while seen.len() < 5 && std::time::Instant::now() < deadline {
            let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let msg = msg.expect("message");
            // SAFETY: `msg` is a live consumer message without an error.
            let none = unsafe { unparsed::has_no_headers(msg.ptr()) };
            let (record, _) = Record::from_message(&msg, Topic::new(&t));
            let headers: Vec<(String, Vec<u8>)> = (record.headers.iter())
                .map(|(k, v)| (k.clone(), v.to_vec()))
                .collect();
            seen.push((
                String::from_utf8_lossy(&record.value).into_owned(),
                none,
                headers,
            ));
        }
        let with = vec![
            ("a".to_owned(), b"1".to_vec()),
            ("b".to_owned(), Vec::new()),
        ];
        assert_eq!(
            seen,
            vec![
                ("none".to_owned(), true, vec![]),
                ("empty".to_owned(), true, vec![]),
                ("with".to_owned(), false, with.clone()),
                ("none-again".to_owned(), true, vec![]),
                ("with-again".to_owned(), false, with),
            ]
        );
        assert!(unparsed::trusted(), "no sampled record disagreed");
    })
    .await
    .expect("consume");
}
