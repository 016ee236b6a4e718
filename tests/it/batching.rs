//! Batched delivery end to end on a real broker: several records per request, key order
//! kept across batches, `max_records` respected, a batch retried and then delivered, a
//! batch refused for good dead-lettered record by record, records that cannot be items
//! dead-lettered alone. Every batch here carries envelope items, so the receiver (and
//! the commit auditor through it) knows which records a 2xx finished.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::audit::Auditor;
use crate::support::broker::Broker;
use crate::support::connectors::SinkToml;
use crate::support::kafka;
use crate::support::receiver::{batch_items, Answer, Received, Receiver};
use crate::support::scenario::{Scenario, Setup};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// A secret header one sink sends, which its receiver echoes.
const API_KEY: &str = "api-key-5d0c7e21";

/// A signed sink sending batches of at most `max_records` envelope items.
fn sink(topic: &str, url: &str, max_records: usize) -> SinkToml {
    SinkToml::new(topic, url)
        .timeout("5s")
        .concurrency(8)
        .sign_standard_webhooks("${SINK_WHSEC}")
        .max_attempts(4)
        .backoff("100ms", "1s")
        .set(
            "batch",
            &format!(
                "{{ max_records = {max_records}, max_wait = \"20ms\", items = \"envelope\" }}"
            ),
        )
}

fn setup(prefix: &str) -> Setup {
    Setup::new(prefix).env("SINK_WHSEC", WHSEC)
}

/// Records `{"k": key, "seq": n}` with `keys` keys round-robin.
fn records(n: usize, keys: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let k = format!("k{}", i % keys);
            json!({"key": k, "value": json!({"k": k, "seq": i}).to_string()})
        })
        .collect()
}

/// `(partition, offset)` of every item answered 2xx.
fn delivered(seen: &[Received]) -> BTreeSet<(i64, i64)> {
    seen.iter()
        .filter(|r| (200..300).contains(&r.status))
        .flat_map(|r| batch_items(&r.body))
        .map(|i| {
            (
                i["partition"].as_i64().unwrap(),
                i["offset"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn audit(
    broker: &Broker,
    topic: &str,
    partitions: u32,
    rx: &Receiver,
    dlq: Option<&str>,
) -> Auditor {
    Auditor::start_with_dlq(
        &broker.addr(),
        &format!("g-{topic}"),
        topic,
        partitions,
        rx.finished(),
        dlq,
    )
}

/// Waits until `n` records were answered 2xx (as items of batches).
async fn wait_delivered(rx: &Receiver, n: usize, within: Duration, what: &str) {
    rx.wait_for(within, what, |s| delivered(s).len() >= n).await;
}

/// Waits until the sink's group (`g-<topic>`) has committed every partition to its end.
async fn wait_committed(broker: &Broker, topic: &str, within: Duration) {
    kafka::wait_committed_to_end(&broker.addr(), &format!("g-{topic}"), topic, within).await;
}

/// Produces `records` with the commit auditor watching from before the first, waits
/// until every one was answered 2xx within `within` and the group committed to the end,
/// and requires the auditor to have seen no commit past an unfinished record.
async fn deliver_audited(
    broker: &Broker,
    topic: &str,
    partitions: u32,
    rx: &Receiver,
    records: &[Value],
    within: Duration,
    what: &str,
) {
    let auditor = audit(broker, topic, partitions, rx, None);
    kafka::produce(&broker.addr(), topic, records).await;
    let n = records.len();
    wait_delivered(rx, n, within, &format!("{n} records delivered")).await;
    wait_committed(broker, topic, Duration::from_secs(30)).await;
    auditor.finish().await.assert_clean(what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_keep_key_order_and_max_records_and_commit_to_the_end() {
    let Scenario {
        broker,
        topic,
        rx,
        hb,
        ..
    } = setup("batch-order")
        .partitions(4)
        .sink(|_| Answer::status(200), |n| sink(&n.topic, &n.url, 10))
        .await;
    deliver_audited(
        &broker,
        &topic,
        4,
        &rx,
        &records(400, 8),
        Duration::from_secs(40),
        "batched happy path",
    )
    .await;

    let seen = rx.seen();
    let wh = standardwebhooks::Webhook::new(WHSEC).unwrap();
    let mut order: HashMap<String, Vec<u64>> = HashMap::new();
    let mut largest = 0;
    for r in &seen {
        wh.verify(&r.body, &r.headers).expect("batch body signed");
        assert_eq!(r.header("content-type"), "application/json");
        assert!(
            r.header("webhook-id").contains("-batch-"),
            "{}",
            r.header("webhook-id")
        );
        let items = batch_items(&r.body);
        assert!(
            !items.is_empty() && items.len() <= 10,
            "{} items",
            items.len()
        );
        largest = largest.max(items.len());
        for item in items {
            let data = &item["data"];
            order
                .entry(data["k"].as_str().unwrap().to_owned())
                .or_default()
                .push(data["seq"].as_u64().unwrap());
        }
    }
    assert!(largest > 1, "records travelled together");
    assert!(
        seen.len() < 400,
        "fewer requests than records: {}",
        seen.len()
    );
    for (key, seqs) in order {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "key {key} out of order across batches: {seqs:?}"
        );
    }
    drop(hb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answered_503_is_sent_again_whole_then_delivered() {
    let answered = Arc::new(AtomicUsize::new(0));
    let n = answered.clone();
    let Scenario {
        broker,
        topic,
        rx,
        hb,
        ..
    } = setup("batch-retry")
        .sink(
            move |_| {
                if n.fetch_add(1, Ordering::SeqCst) == 0 {
                    Answer::status(503)
                } else {
                    Answer::status(200)
                }
            },
            |n| sink(&n.topic, &n.url, 50),
        )
        .await;
    deliver_audited(
        &broker,
        &topic,
        1,
        &rx,
        &records(30, 3),
        Duration::from_secs(30),
        "batch retried",
    )
    .await;
    let seen = rx.seen();
    let refused = &seen[0];
    assert_eq!(refused.status, 503);
    let again = seen
        .iter()
        .find(|r| r.nth == 2 && r.header("webhook-id") == refused.header("webhook-id"))
        .expect("the refused batch sent again under the same webhook-id");
    assert_eq!(again.body, refused.body, "the same batch, whole");
    assert_eq!(again.status, 200);
    drop(hb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_for_good_is_dead_lettered_record_by_record_and_commit_moves_on() {
    let Scenario {
        broker,
        topic,
        dlq,
        rx,
        hb,
    } = setup("batch-dlq")
        .dlq()
        .sink(
            |r| {
                if String::from_utf8_lossy(&r.body).contains("poison") {
                    Answer::status(422)
                } else {
                    Answer::status(200)
                }
            },
            |n| sink(&n.topic, &n.url, 100).dlq(&n.dlq),
        )
        .await;
    let auditor = audit(&broker, &topic, 1, &rx, Some(&dlq));
    // One request: a poisoned batch of three, with a record that is not JSON before it.
    kafka::produce(
        &broker.addr(),
        &topic,
        &[
            json!({"key": "x", "value": "not json"}),
            json!({"key": "a", "value": "{\"n\":1}"}),
            json!({"key": "b", "value": "{\"poison\":true}"}),
            json!({"key": "c", "value": "{\"n\":3}"}),
        ],
    )
    .await;
    let dead = kafka::read(&broker.addr(), &dlq, Some(4), 30.0).await;
    assert_eq!(dead.len(), 4, "every record dead-lettered");
    let by_key: HashMap<String, &kafka::Read> = dead
        .iter()
        .map(|d| {
            (
                String::from_utf8_lossy(d.key.as_deref().unwrap()).into_owned(),
                d,
            )
        })
        .collect();
    let x = by_key["x"];
    assert_eq!(x.value, b"not json");
    assert_eq!(x.header("hookbridge-dlq-reason").as_deref(), Some("batch"));
    assert_eq!(
        x.header("hookbridge-dlq-error").as_deref(),
        Some("not-json")
    );
    for k in ["a", "b", "c"] {
        let d = by_key[k];
        assert_eq!(
            d.header("hookbridge-dlq-reason").as_deref(),
            Some("permanent"),
            "{k}"
        );
        assert_eq!(
            d.header("hookbridge-dlq-status").as_deref(),
            Some("422"),
            "{k}"
        );
    }
    assert_eq!(by_key["b"].value, b"{\"poison\":true}");
    wait_committed(&broker, &topic, Duration::from_secs(30)).await;
    auditor.finish().await.assert_clean("batch dead-lettered");
    assert!(
        rx.seen()
            .iter()
            .all(|r| !String::from_utf8_lossy(&r.body).contains("not json")),
        "a record that is not JSON never joins a batch"
    );
    drop(hb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_with_batches_in_flight_loses_nothing() {
    let Scenario {
        broker,
        topic,
        rx,
        mut hb,
        ..
    } = setup("batch-crash")
        .partitions(4)
        .sink(
            // Slow answers: batches are always in flight when the process dies, and
            // the rest takes seconds, however late a loaded machine kills it.
            |_| Answer {
                status: 200,
                headers: Vec::new(),
                delay: Duration::from_millis(200),
            },
            |n| sink(&n.topic, &n.url, 10),
        )
        .await;
    let auditor = audit(&broker, &topic, 4, &rx, None);
    const N: usize = 1500;
    kafka::produce(&broker.addr(), &topic, &records(N, 40)).await;
    wait_delivered(&rx, N / 5, Duration::from_secs(40), "a fifth delivered").await;
    hb.kill9();
    let before = delivered(&rx.seen()).len();
    assert!(before < N, "killed while records were still to deliver");
    hb.spawn();
    hb.ready(Duration::from_secs(40)).await;
    wait_delivered(&rx, N, Duration::from_secs(90), "every record delivered").await;
    wait_committed(&broker, &topic, Duration::from_secs(30)).await;
    let report = auditor.finish().await;
    report.assert_clean("kill -9 mid-batch");
    let all: BTreeSet<(i64, i64)> = delivered(&rx.seen());
    assert_eq!(all.len(), N, "every record delivered at least once");
    drop(hb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_item_answers_finish_retry_and_dead_letter_items_keeping_key_order() {
    let a1_seen = Arc::new(AtomicUsize::new(0));
    let seen_a1 = a1_seen.clone();
    let broker = Broker::start();
    let topic = crate::support::unique("batch-items");
    let dlq = format!("{topic}.dlq");
    broker.create_topic(&topic, 1);
    broker.create_topic(&dlq, 1);
    // Per item: a1 is refused with 503 the first time, the poison item with 422, the
    // rest taken; the answer is 207 with one result per item.
    let rx = Receiver::start_with_bodies(move |r| {
        let results: Vec<Value> = batch_items(&r.body)
            .iter()
            .map(|item| {
                let data = &item["data"];
                let status = if data["poison"] == json!(true) {
                    422
                } else if data["k"] == json!("a")
                    && data["seq"] == json!(1)
                    && seen_a1.fetch_add(1, Ordering::SeqCst) == 0
                {
                    503
                } else {
                    200
                };
                json!({ "status": status })
            })
            .collect();
        // The answer echoes the sink's secret header, as some receivers do.
        let echo = r.header("x-api-key");
        (
            Answer::status(207),
            Some(json!({ "results": results, "echo": echo }).to_string()),
        )
    })
    .await;
    let auditor = audit(&broker, &topic, 1, &rx, Some(&dlq));
    let cfg = crate::support::hookbridge::Config::new(&broker.addr())
        .connector(
            "orders.toml",
            &sink(&topic, &rx.url, 100)
                .dlq(&dlq)
                .set("headers", r#"{ X-Api-Key = "${API_KEY}" }"#)
                .render(),
        )
        .env("SINK_WHSEC", WHSEC)
        .env("API_KEY", API_KEY);
    let mut hb = crate::support::hookbridge::Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    let value = |k: &str, seq: u64| json!({"k": k, "seq": seq}).to_string();
    kafka::produce(
        &broker.addr(),
        &topic,
        &[
            json!({"key": "a", "value": value("a", 1)}),
            json!({"key": "b", "value": value("b", 1)}),
            json!({"key": "a", "value": value("a", 2)}),
            json!({"key": "p", "value": "{\"poison\":true}"}),
            json!({"key": "b", "value": value("b", 2)}),
            json!({"key": "a", "value": value("a", 3)}),
        ],
    )
    .await;
    let dead = kafka::read(&broker.addr(), &dlq, Some(1), 30.0).await;
    wait_committed(&broker, &topic, Duration::from_secs(30)).await;
    auditor.finish().await.assert_clean("per-item answers");
    assert_eq!(dead.len(), 1, "only the poison item dead-lettered");
    assert_eq!(dead[0].value, b"{\"poison\":true}");
    assert_eq!(
        dead[0].header("hookbridge-dlq-status").as_deref(),
        Some("422")
    );
    // The 2xx answer kept for the failed item has the echoed secret masked.
    let kept = dead[0]
        .header("hookbridge-dlq-response")
        .unwrap_or_default();
    assert!(
        kept.contains("[redacted]") && !kept.contains(API_KEY),
        "{kept}"
    );
    assert!(a1_seen.load(Ordering::SeqCst) >= 2, "a1 sent again");
    // Key a as the receiver took it last: every record of it, in order.
    let mut last_a: HashMap<u64, usize> = HashMap::new();
    let mut taken = 0;
    for r in rx.seen() {
        for item in batch_items(&r.body) {
            taken += 1;
            if item["data"]["k"] == json!("a") {
                last_a.insert(item["data"]["seq"].as_u64().unwrap(), taken);
            }
        }
    }
    assert_eq!(last_a.len(), 3, "{last_a:?}");
    assert!(
        last_a[&1] < last_a[&2] && last_a[&2] < last_a[&3],
        "a2 and a3 were sent again after a1: {last_a:?}"
    );
    drop(hb);
}

/// A record answered 503 per item until its attempts run out is dead-lettered alone: the
/// records of its key behind it, answered 2xx every time but sent again only to follow
/// it, are delivered after it on attempts of their own, not dead-lettered with its
/// reason. And an answer per item that cannot be read (an entry missing) is never taken
/// as every item delivered: the batch is sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_item_is_dead_lettered_alone_and_an_unreadable_answer_is_sent_again() {
    let m_sent = Arc::new(AtomicUsize::new(0));
    let sent_m = m_sent.clone();
    let broker = Broker::start();
    let topic = crate::support::unique("batch-behind");
    let dlq = format!("{topic}.dlq");
    broker.create_topic(&topic, 1);
    broker.create_topic(&dlq, 1);
    let rx = Receiver::start_with_bodies(move |r| {
        let items = batch_items(&r.body);
        let has_m = items.iter().any(|i| i["data"]["k"] == json!("m"));
        // The first batch carrying key m is answered with one entry too few.
        if has_m && sent_m.fetch_add(1, Ordering::SeqCst) == 0 {
            let short: Vec<Value> = items
                .iter()
                .skip(1)
                .map(|_| json!({"status": 200}))
                .collect();
            return (
                Answer::status(207),
                Some(json!({ "results": short }).to_string()),
            );
        }
        let results: Vec<Value> = items
            .iter()
            .map(|item| {
                let failing = item["data"]["k"] == json!("a") && item["data"]["seq"] == json!(1);
                json!({ "status": if failing { 503 } else { 200 } })
            })
            .collect();
        // a0's batch is answered late, so a1 and the records behind it wait in their
        // lane and set out together once it is finished.
        let first = items.iter().any(|i| i["data"]["seq"] == json!(0));
        let answer = Answer {
            delay: Duration::from_millis(if first { 500 } else { 0 }),
            ..Answer::status(207)
        };
        (answer, Some(json!({ "results": results }).to_string()))
    })
    .await;
    let auditor = audit(&broker, &topic, 1, &rx, Some(&dlq));
    let value = |k: &str, seq: u64| json!({"k": k, "seq": seq}).to_string();
    let record = |k: &str, seq: u64| json!({"key": k, "value": value(k, seq)});
    kafka::produce(
        &broker.addr(),
        &topic,
        &[
            record("a", 0),
            record("a", 1),
            record("a", 2),
            record("b", 1),
            record("a", 3),
        ],
    )
    .await;
    let cfg = crate::support::hookbridge::Config::new(&broker.addr())
        .connector(
            "orders.toml",
            &sink(&topic, &rx.url, 100).dlq(&dlq).render(),
        )
        .env("SINK_WHSEC", WHSEC);
    let mut hb = crate::support::hookbridge::Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    let dead = kafka::read(&broker.addr(), &dlq, Some(1), 30.0).await;
    wait_committed(&broker, &topic, Duration::from_secs(30)).await;
    kafka::produce(&broker.addr(), &topic, &[record("m", 1), record("m", 2)]).await;
    wait_committed(&broker, &topic, Duration::from_secs(30)).await;
    auditor
        .finish()
        .await
        .assert_clean("a failed item and an unreadable answer");
    let dead_values: Vec<String> = dead
        .iter()
        .map(|d| String::from_utf8_lossy(&d.value).into_owned())
        .collect();
    assert_eq!(dead_values, vec![value("a", 1)], "only a1 dead-lettered");
    assert_eq!(
        dead[0].header("hookbridge-dlq-status").as_deref(),
        Some("503")
    );
    let again = kafka::read(&broker.addr(), &dlq, None, 3.0).await;
    assert_eq!(again.len(), 1, "nothing else dead-lettered");
    // a2 and a3 were taken after a1's last attempt, in order.
    let mut last: HashMap<(String, u64), usize> = HashMap::new();
    let mut taken = 0;
    for r in rx.seen() {
        for item in batch_items(&r.body) {
            taken += 1;
            let k = item["data"]["k"].as_str().unwrap_or_default().to_owned();
            last.insert((k, item["data"]["seq"].as_u64().unwrap_or(0)), taken);
        }
    }
    let at = |k: &str, seq: u64| last[&(k.to_owned(), seq)];
    assert!(
        at("a", 1) < at("a", 2) && at("a", 2) < at("a", 3),
        "{last:?}"
    );
    // a1's batch carried a2 behind it: the case where a2 could share a1's fate.
    let together = rx.seen().iter().any(|r| {
        let items: Vec<(Value, Value)> = (batch_items(&r.body).iter())
            .map(|i| (i["data"]["k"].clone(), i["data"]["seq"].clone()))
            .collect();
        items.starts_with(&[(json!("a"), json!(1)), (json!("a"), json!(2))])
    });
    assert!(together, "no batch carried a2 behind a1");
    assert!(
        m_sent.load(Ordering::SeqCst) >= 2,
        "the batch answered with an entry missing was sent again"
    );

    // `dlq redrive` sends a1 as the sink sends its records, a batch of one, and reads
    // the answer per item: refused again, it is dead-lettered again, not redriven.
    let before = rx.seen().len();
    let (code, out) = hb
        .command_code(&["dlq", "redrive", "--connector", "orders"])
        .await;
    assert_eq!(code, 4, "dead-lettered again: {out}");
    let redriven = rx.seen()[before..].to_vec();
    assert!(!redriven.is_empty(), "{out}");
    for r in &redriven {
        assert!(r.body.starts_with(b"["), "a batch of one: {:?}", r.body);
        let items = batch_items(&r.body);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["data"], json!({"k": "a", "seq": 1}));
    }
    let dead = kafka::read(&broker.addr(), &dlq, Some(2), 30.0).await;
    assert_eq!(dead.len(), 2, "a1 dead-lettered again: {out}");
    assert_eq!(dead[1].value, value("a", 1).as_bytes());
    drop(hb);
}

/// A batch the destination refuses as too large (413) is split in halves, sent one after
/// the other (split again while refused so), instead of every record being dead-lettered;
/// a key's records keep their order across the parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_as_too_large_is_split_and_delivered_in_order() {
    let broker = Broker::start();
    let topic = crate::support::unique("batch-413");
    let dlq = format!("{topic}.dlq");
    broker.create_topic(&topic, 1);
    broker.create_topic(&dlq, 1);
    // Takes at most 3 items per request.
    let rx = Receiver::start_with_bodies(|r| {
        let status = if batch_items(&r.body).len() > 3 {
            413
        } else {
            200
        };
        (Answer::status(status), None)
    })
    .await;
    let records = records(10, 2);
    // Produced before the sink starts, so its first batch carries them all.
    kafka::produce(&broker.addr(), &topic, &records).await;
    let auditor = audit(&broker, &topic, 1, &rx, Some(&dlq));
    let cfg = crate::support::hookbridge::Config::new(&broker.addr())
        .connector("orders.toml", &sink(&topic, &rx.url, 10).dlq(&dlq).render())
        .env("SINK_WHSEC", WHSEC);
    let mut hb = crate::support::hookbridge::Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    wait_delivered(&rx, 10, Duration::from_secs(30), "10 records delivered").await;
    wait_committed(&broker, &topic, Duration::from_secs(30)).await;
    auditor.finish().await.assert_clean("a batch split for 413");
    let seen = rx.seen();
    assert!(
        seen.iter()
            .any(|r| r.status == 413 && batch_items(&r.body).len() > 3),
        "a batch was refused as too large"
    );
    let dead = kafka::read(&broker.addr(), &dlq, None, 3.0).await;
    assert!(dead.is_empty(), "{} dead-lettered", dead.len());
    // Each key's records as the receiver took them: in offset order.
    let mut last: HashMap<String, u64> = HashMap::new();
    for r in seen.iter().filter(|r| r.status == 200) {
        for item in batch_items(&r.body) {
            let k = item["data"]["k"].as_str().unwrap_or_default().to_owned();
            let seq = item["data"]["seq"].as_u64().unwrap_or_default();
            let before = last.insert(k.clone(), seq);
            assert!(
                before.is_none_or(|b| b < seq),
                "{k}: {seq} after {before:?}"
            );
        }
    }
    drop(hb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_rendering_different_urls_go_in_different_batches_through_filter_and_transform() {
    let Scenario {
        broker,
        topic,
        rx,
        hb,
        ..
    } = setup("batch-split")
        .sink(
            |_| Answer::status(200),
            |n| {
                sink(&n.topic, &format!("{}/{{key}}", n.url), 50)
                    .set("filter", "'.seq % 2 == 0'")
                    .set("transform", "'{k: .k, seq: .seq}'")
            },
        )
        .await;
    kafka::produce(&broker.addr(), &topic, &records(80, 4)).await;
    wait_committed(&broker, &topic, Duration::from_secs(40)).await;
    let seen = rx.seen();
    let mut order: HashMap<String, Vec<u64>> = HashMap::new();
    for r in &seen {
        for item in batch_items(&r.body) {
            let k = item["data"]["k"].as_str().unwrap().to_owned();
            assert!(r.uri.ends_with(&format!("/{k}")), "{k} sent to {}", r.uri);
            order
                .entry(k)
                .or_default()
                .push(item["data"]["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(
        order.values().map(Vec::len).sum::<usize>(),
        40,
        "the even half"
    );
    for (key, seqs) in order {
        assert!(seqs.iter().all(|s| s % 2 == 0), "{key}: {seqs:?}");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{key}: {seqs:?}");
    }
    drop(hb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_sends_batches_still_filling_at_once_and_commits_them() {
    let Scenario {
        broker,
        topic,
        rx,
        mut hb,
        ..
    } = setup("batch-stop")
        .sink(
            |_| Answer::status(200),
            |n| {
                sink(&n.topic, &n.url, 1000).set(
                    "batch",
                    "{ max_records = 1000, max_wait = \"60s\", items = \"envelope\" }",
                )
            },
        )
        .await;
    kafka::produce(&broker.addr(), &topic, &records(5, 5)).await;
    crate::support::wait_until(Duration::from_secs(30), "5 records held", || {
        let hb = &hb;
        async move {
            crate::support::hookbridge::metric(
                &hb.metrics().await,
                "hookbridge_buffered_records",
                &[("connector", "orders")],
            ) >= 5.0
        }
    })
    .await;
    assert!(rx.seen().is_empty(), "a batch waits for max_wait");
    let status = hb.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    assert_eq!(delivered(&rx.seen()).len(), 5, "sent on the way out");
    let committed = kafka::committed(&broker.addr(), &format!("g-{topic}"), &topic).await;
    assert_eq!(committed.get(&0).map(|c| c.0), Some(5), "{committed:?}");
}
