//! Operator commands against a real broker: `dlq redrive` and `replay`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::support::broker::Broker;
use crate::support::hookbridge::{Config, Hookbridge};
use crate::support::kafka;
use crate::support::receiver::{Answer, Receiver};
use crate::support::unique;

fn sink(topic: &str, url: &str, extra: &str) -> String {
    format!(
        "[sink]\nname = \"orders\"\ntopics = [\"{topic}\"]\ngroup_id = \"g-{topic}\"\nurl = \"{url}\"\nretry = {{ max_attempts = 2, initial = \"100ms\", max = \"1s\" }}\n{extra}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_redrive_dry_run_changes_nothing_and_redrive_delivers_once() {
    let broker = Broker::start();
    let topic = unique("redrive");
    let dlq = format!("{topic}.dlq");
    broker.create_topic(&topic, 1);
    broker.create_topic(&dlq, 1);
    let accept = Arc::new(AtomicBool::new(false));
    let flag = accept.clone();
    let rx = Receiver::start(move |_| {
        Answer::status(if flag.load(Ordering::SeqCst) {
            200
        } else {
            400
        })
    })
    .await;
    let cfg = Config::new(&broker.addr()).connector(
        "orders.toml",
        &sink(&topic, &rx.url, &format!("dlq = {{ topic = \"{dlq}\" }}")),
    );
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    let recs: Vec<_> = (0..3)
        .map(|i| json!({"key": format!("k{i}"), "value": format!("{{\"n\":{i}}}")}))
        .collect();
    kafka::produce(&broker.addr(), &topic, &recs).await;
    assert_eq!(
        kafka::read(&broker.addr(), &dlq, Some(3), 20.0).await.len(),
        3
    );
    assert!(hb.terminate(Duration::from_secs(20)).await.success());
    let before = rx.seen().len();

    for _ in 0..2 {
        let (ok, out) = hb
            .command(&["dlq", "redrive", "--connector", "orders", "--dry-run"])
            .await;
        assert!(ok, "{out}");
        assert!(out.contains("would redrive: 3"), "{out}");
    }
    assert_eq!(rx.seen().len(), before, "a dry run sends nothing");

    accept.store(true, Ordering::SeqCst);
    let (ok, out) = hb
        .command(&["dlq", "redrive", "--connector", "orders"])
        .await;
    assert!(ok, "{out}");
    assert!(out.contains("redriven: 3"), "{out}");
    let redriven: Vec<_> = rx.seen().into_iter().skip(before).collect();
    assert_eq!(redriven.len(), 3);
    let mut ids: Vec<String> = redriven.iter().map(|r| r.header("webhook-id")).collect();
    ids.sort();
    assert_eq!(
        ids,
        (0..3).map(|o| format!("{topic}-0-{o}")).collect::<Vec<_>>(),
        "same webhook-id as the first try"
    );

    let (ok, out) = hb
        .command(&["dlq", "redrive", "--connector", "orders"])
        .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("redriven: 0"),
        "a redrive is not repeated: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_from_a_time_redelivers_only_later_records() {
    let broker = Broker::start();
    let topic = unique("replay");
    broker.create_topic(&topic, 1);
    let rx = Receiver::start(|_| Answer::status(200)).await;
    let cfg = Config::new(&broker.addr()).connector("orders.toml", &sink(&topic, &rx.url, ""));
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    let batch = |from: usize| {
        (from..from + 5)
            .map(|i| json!({"key": format!("k{i}"), "value": format!("{{\"n\":{i}}}")}))
            .collect::<Vec<_>>()
    };
    kafka::produce(&broker.addr(), &topic, &batch(0)).await;
    rx.wait_for(Duration::from_secs(20), "first batch", |s| s.len() >= 5)
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let between = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    kafka::produce(&broker.addr(), &topic, &batch(5)).await;
    rx.wait_for(Duration::from_secs(20), "second batch", |s| s.len() >= 10)
        .await;

    let (ok, out) = hb
        .command(&["replay", "--connector", "orders", "--from", &between])
        .await;
    assert!(
        !ok && out.contains("live member"),
        "replay refuses while the sink runs: {out}"
    );

    assert!(hb.terminate(Duration::from_secs(20)).await.success());
    let (ok, out) = hb
        .command(&["replay", "--connector", "orders", "--from", &between])
        .await;
    assert!(ok, "{out}");
    hb.spawn();
    rx.wait_for(Duration::from_secs(40), "the replayed records", |s| {
        s.len() >= 15
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again: Vec<String> = rx
        .seen()
        .iter()
        .filter(|r| r.nth == 2)
        .map(|r| r.header("webhook-id"))
        .collect();
    assert_eq!(again.len(), 5, "{again:?}");
    assert!(
        again.iter().all(|id| id
            .rsplit('-')
            .next()
            .and_then(|o| o.parse::<i64>().ok())
            .is_some_and(|o| o >= 5)),
        "{again:?}"
    );
}
