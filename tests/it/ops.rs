//! Operator commands against a real broker: `dlq redrive` and `replay`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::support::broker::Broker;
use crate::support::connectors::SinkToml;
use crate::support::hookbridge::{bin, Config, Hookbridge};
use crate::support::kafka;
use crate::support::receiver::{Answer, Receiver};
use crate::support::unique;

/// The sink `orders` of these tests: two attempts, then the DLQ if it has one.
fn sink(topic: &str, url: &str) -> SinkToml {
    SinkToml::new(topic, url)
        .max_attempts(2)
        .backoff("100ms", "1s")
}

/// A stopped sink `orders` whose three records were dead-lettered: its destination
/// answers 400 until `accept` is set.
struct DeadLettered {
    broker: Broker,
    topic: String,
    dlq: String,
    accept: Arc<AtomicBool>,
    rx: Receiver,
    hb: Hookbridge,
}

/// Runs `dlq redrive` for `connector`; it must succeed. Returns what it printed.
async fn redrive_ok(hb: &Hookbridge, connector: &str) -> String {
    let (ok, out) = hb
        .command(&["dlq", "redrive", "--connector", connector])
        .await;
    assert!(ok, "{out}");
    out
}

/// A running sink `orders` on a new topic of `partitions` (and a one-partition DLQ),
/// whose destination always answers `status`.
struct Running {
    broker: Broker,
    topic: String,
    dlq: String,
    #[allow(dead_code)] // held: the destination answers while the sink runs
    rx: Receiver,
    hb: Hookbridge,
}

async fn running(prefix: &str, partitions: u32, status: u16) -> Running {
    let broker = Broker::start();
    let topic = unique(prefix);
    let dlq = format!("{topic}.dlq");
    broker.create_topic(&topic, partitions);
    broker.create_topic(&dlq, 1);
    let rx = Receiver::start(move |_| Answer::status(status)).await;
    let cfg = Config::new(&broker.addr())
        .connector("orders.toml", &sink(&topic, &rx.url).dlq(&dlq).render());
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    Running {
        broker,
        topic,
        dlq,
        rx,
        hb,
    }
}

/// Stops the sink, then redrives its dead letters to their source topic; returns what
/// the redrive printed.
async fn stop_and_redrive_to_source(hb: &mut Hookbridge) -> String {
    assert!(hb.terminate(Duration::from_secs(20)).await.success());
    let (ok, out) = hb
        .command(&["dlq", "redrive", "--connector", "orders", "--to", "source"])
        .await;
    assert!(ok, "{out}");
    out
}

/// A destination that answers 400 until `accept` is set, then 200 after `delay`.
async fn refusing_until(accept: Arc<AtomicBool>, delay: Duration) -> Receiver {
    Receiver::start(move |_| match accept.load(Ordering::SeqCst) {
        true => Answer {
            status: 200,
            headers: Vec::new(),
            delay,
        },
        false => Answer::status(400),
    })
    .await
}

async fn three_dead_lettered(prefix: &str) -> DeadLettered {
    three_dead_lettered_answered_after(prefix, Duration::ZERO).await
}

/// [`three_dead_lettered`], the destination taking `delay` to accept a record.
async fn three_dead_lettered_answered_after(prefix: &str, delay: Duration) -> DeadLettered {
    let broker = Broker::start();
    let topic = unique(prefix);
    let dlq = format!("{topic}.dlq");
    broker.create_topic(&topic, 1);
    broker.create_topic(&dlq, 1);
    let accept = Arc::new(AtomicBool::new(false));
    let rx = refusing_until(accept.clone(), delay).await;
    let cfg = Config::new(&broker.addr())
        .connector("orders.toml", &sink(&topic, &rx.url).dlq(&dlq).render());
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
    DeadLettered {
        broker,
        topic,
        dlq,
        accept,
        rx,
        hb,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_redrive_dry_run_changes_nothing_and_redrive_delivers_once() {
    let DeadLettered {
        broker: _broker,
        topic,
        accept,
        rx,
        hb,
        ..
    } = three_dead_lettered("redrive").await;
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
    let out = redrive_ok(&hb, "orders").await;
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

    let out = redrive_ok(&hb, "orders").await;
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
    let cfg = Config::new(&broker.addr()).connector("orders.toml", &sink(&topic, &rx.url).render());
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

/// A sink on the KIP-848 consumer group protocol has live members too, though the
/// classic group listing shows none: the broker refuses the replay's commit, and the
/// operator is told why (the live members), not the broker's error code, with the
/// group's offsets as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_is_refused_while_a_sink_on_the_consumer_group_protocol_runs() {
    let broker = Broker::start();
    let topic = unique("replay-848");
    broker.create_topic(&topic, 1);
    let rx = Receiver::start(|_| Answer::status(200)).await;
    let cfg = Config::new(&broker.addr())
        .default_session()
        .prop("group.protocol", "consumer")
        .connector("orders.toml", &sink(&topic, &rx.url).render());
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    let records: Vec<_> = (0..3)
        .map(|i| json!({"key": format!("k{i}"), "value": format!("{{\"n\":{i}}}")}))
        .collect();
    kafka::produce(&broker.addr(), &topic, &records).await;
    rx.wait_for(Duration::from_secs(30), "the records", |s| s.len() >= 3)
        .await;
    let group = format!("g-{topic}");
    let before =
        kafka::wait_committed_to_end(&broker.addr(), &group, &topic, Duration::from_secs(20)).await;

    let (ok, out) = hb
        .command(&["replay", "--connector", "orders", "--from", "1h"])
        .await;
    assert!(
        !ok && out.contains("live member"),
        "replay refuses while the sink runs: {out}"
    );
    assert_eq!(
        kafka::committed(&broker.addr(), &group, &topic).await,
        before,
        "the group's offsets did not move"
    );
    assert!(hb.terminate(Duration::from_secs(20)).await.success());
}

/// Runs a hookbridge operator command with `hb`'s config and `env`; `None` if it has not
/// ended within `limit` (it is then killed).
async fn command_within(
    hb: &Hookbridge,
    env: &[(&str, &str)],
    args: &[&str],
    limit: Duration,
) -> Option<(bool, String)> {
    let mut cmd = tokio::process::Command::new(bin());
    cmd.envs(env.iter().copied())
        .args(args)
        .arg("--config")
        .arg(hb.dir.path().join("hookbridge.toml"))
        .kill_on_drop(true);
    let out = tokio::time::timeout(limit, cmd.output()).await.ok()?;
    let out = out.expect("run hookbridge command");
    Some((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

const ORDERS_WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn ids(seen: &[crate::support::receiver::Received]) -> Vec<String> {
    let mut ids: Vec<String> = seen.iter().map(|r| r.header("webhook-id")).collect();
    ids.sort();
    ids
}

/// Two redrives of one sink at once (two shells, or a shell and the console): the second
/// is refused while the first runs, so no dead letter is sent twice; once the first has
/// ended, the next runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_redrive_is_refused_while_one_runs_and_nothing_is_sent_twice() {
    let DeadLettered {
        topic,
        accept,
        rx,
        hb,
        ..
    } = three_dead_lettered_answered_after("redrive-twice", Duration::from_secs(4)).await;
    accept.store(true, Ordering::SeqCst);
    let before = rx.seen().len();
    let redrive = ["dlq", "redrive", "--connector", "orders"];
    let ((first_ok, first), (second_ok, second)) = tokio::join!(hb.command(&redrive), async {
        rx.wait_for(Duration::from_secs(40), "the first redrive sending", |s| {
            s.len() > before
        })
        .await;
        hb.command(&redrive).await
    });
    assert!(first_ok, "{first}");
    assert!(first.contains("redriven: 3;"), "{first}");
    assert!(!second_ok, "{second}");
    assert!(
        second.contains("another redrive of sink \"orders\" is running"),
        "{second}"
    );
    let redriven: Vec<_> = rx.seen().into_iter().skip(before).collect();
    assert_eq!(
        ids(&redriven),
        (0..3).map(|o| format!("{topic}-0-{o}")).collect::<Vec<_>>(),
        "each dead letter sent once"
    );
    let out = redrive_ok(&hb, "orders").await;
    assert!(out.contains("redriven: 0;"), "the lock was left: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_redrive_leaves_records_dead_lettered_again_for_the_next_redrive() {
    let DeadLettered {
        broker,
        topic,
        dlq,
        accept,
        rx,
        hb,
    } = three_dead_lettered("redrive-again").await;

    // The destination still refuses: each record is dead-lettered again, after the
    // redrive started. Those copies are the next redrive's work, not skipped.
    // Exit 4: a script sees that records are still dead-lettered.
    let (code, out) = hb
        .command_code(&["dlq", "redrive", "--connector", "orders"])
        .await;
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("redriven: 0; dead-lettered again: 3"), "{out}");
    assert_eq!(
        kafka::read(&broker.addr(), &dlq, Some(6), 20.0).await.len(),
        6
    );

    accept.store(true, Ordering::SeqCst);
    let before = rx.seen().len();
    let out = redrive_ok(&hb, "orders").await;
    assert!(
        out.contains("redriven: 3;"),
        "the copies are redriven: {out}"
    );
    let redriven: Vec<_> = rx.seen().into_iter().skip(before).collect();
    assert_eq!(
        ids(&redriven),
        (0..3).map(|o| format!("{topic}-0-{o}")).collect::<Vec<_>>(),
        "still the original webhook-ids"
    );
    let out = redrive_ok(&hb, "orders").await;
    assert!(out.contains("redriven: 0;"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_redrive_on_a_shared_dlq_sends_only_its_own_records_and_ends_while_others_keep_dead_lettering(
) {
    let broker = Broker::start();
    let orders = unique("shared-orders");
    let billing = unique("shared-billing");
    let dlq = unique("shared.dlq");
    broker.create_topic(&orders, 1);
    broker.create_topic(&billing, 1);
    broker.create_topic(&dlq, 2);
    // Orders' destination refuses each record once, then takes it: its records are
    // dead-lettered by the sink and delivered by the redrive.
    let orders_rx = Receiver::start(|r| Answer::status(if r.nth == 1 { 400 } else { 200 })).await;
    let billing_ok = Arc::new(AtomicBool::new(false));
    let billing_rx = refusing_until(billing_ok.clone(), Duration::ZERO).await;
    let cfg = Config::new(&broker.addr())
        .connector(
            "orders.toml",
            &sink(&orders, &orders_rx.url)
                .dlq(&dlq)
                .sign_standard_webhooks("${ORDERS_WHSEC}")
                .render(),
        )
        .connector(
            "billing.toml",
            &sink(&billing, &billing_rx.url)
                .name("billing")
                .dlq(&dlq)
                .render(),
        )
        .env("ORDERS_WHSEC", ORDERS_WHSEC);
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    let batch = |n: usize, tag: &str| -> Vec<serde_json::Value> {
        (0..n)
            .map(|i| json!({"key": format!("{tag}{i}"), "value": format!("{{\"{tag}\":{i}}}")}))
            .collect()
    };
    kafka::produce(&broker.addr(), &orders, &batch(3, "o")).await;
    kafka::produce(&broker.addr(), &billing, &batch(3, "b")).await;
    assert_eq!(
        kafka::read(&broker.addr(), &dlq, Some(6), 20.0).await.len(),
        6
    );

    // Billing keeps dead-lettering into the shared DLQ for as long as the redrive runs.
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (stop, addr, billing) = (stop.clone(), broker.addr(), billing.clone());
        tokio::spawn(async move {
            let mut n = 100;
            while !stop.load(Ordering::SeqCst) {
                kafka::produce(&addr, &billing, &batch(1, &format!("b{n}-"))).await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // The redrive starts once the fed records are being dead-lettered beside the six.
    assert!(
        kafka::read(&broker.addr(), &dlq, Some(7), 30.0).await.len() >= 7,
        "billing's fed records are not being dead-lettered"
    );
    let before = orders_rx.seen().len();
    let ran = command_within(
        &hb,
        &[("ORDERS_WHSEC", ORDERS_WHSEC)],
        &["dlq", "redrive", "--connector", "orders"],
        Duration::from_secs(90),
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let _ = feeder.await;
    let (ok, out) = ran.expect("the redrive ends while billing keeps dead-lettering");
    assert!(ok, "{out}");
    assert!(out.contains("redriven: 3;"), "{out}");
    let redriven: Vec<_> = orders_rx.seen().into_iter().skip(before).collect();
    assert_eq!(
        ids(&redriven),
        (0..3)
            .map(|o| format!("{orders}-0-{o}"))
            .collect::<Vec<_>>(),
        "only orders' own records reach orders' destination"
    );
    assert!(redriven
        .iter()
        .all(|r| !r.header("webhook-signature").is_empty()));

    // Billing's records were passed over by orders' redrive group, not consumed away.
    assert!(hb.terminate(Duration::from_secs(20)).await.success());
    let dead_billing = kafka::read_all(&broker.addr(), &dlq, 20.0)
        .await
        .into_iter()
        .filter(|r| r.header("hookbridge-dlq-connector").as_deref() == Some("billing"))
        .count();
    assert!(
        dead_billing > 3,
        "billing kept dead-lettering: {dead_billing}"
    );
    billing_ok.store(true, Ordering::SeqCst);
    let before = billing_rx.seen().len();
    let out = redrive_ok(&hb, "billing").await;
    assert!(out.contains(&format!("redriven: {dead_billing};")), "{out}");
    let redriven = billing_rx
        .seen()
        .into_iter()
        .skip(before)
        .collect::<Vec<_>>();
    assert!(
        redriven
            .iter()
            .all(|r| r.header("webhook-id").starts_with(&format!("{billing}-0-"))),
        "{:?}",
        ids(&redriven)
    );
    assert!(orders_rx
        .seen()
        .iter()
        .all(|r| r.header("webhook-id").starts_with(&format!("{orders}-0-"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_refuses_to_move_a_group_forward_past_undelivered_records() {
    let broker = Broker::start();
    let topic = unique("replay-fwd");
    let group = format!("g-{topic}");
    broker.create_topic(&topic, 1);
    let rx = Receiver::start(|_| Answer::status(200)).await;
    let cfg = Config::new(&broker.addr()).connector("orders.toml", &sink(&topic, &rx.url).render());
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    let batch = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| json!({"key": format!("k{i}"), "value": format!("{{\"n\":{i}}}")}))
            .collect::<Vec<_>>()
    };
    let at_start = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    kafka::produce(&broker.addr(), &topic, &batch(0, 5)).await;
    rx.wait_for(Duration::from_secs(20), "first batch", |s| s.len() >= 5)
        .await;
    assert!(hb.terminate(Duration::from_secs(20)).await.success());
    assert_eq!(
        kafka::committed(&broker.addr(), &group, &topic).await[&0].0,
        5
    );

    // Offsets 5..8 arrive while the sink is stopped, then 8..10 after `later`.
    kafka::produce(&broker.addr(), &topic, &batch(5, 3)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    kafka::produce(&broker.addr(), &topic, &batch(8, 2)).await;

    let (ok, out) = hb
        .command(&["replay", "--connector", "orders", "--from", &later])
        .await;
    assert!(!ok, "moving forward would skip offsets 5..8: {out}");
    assert!(
        out.contains("only moves group") && out.contains("3 undelivered record(s)"),
        "{out}"
    );
    assert_eq!(
        kafka::committed(&broker.addr(), &group, &topic).await[&0].0,
        5,
        "nothing changed"
    );

    let (ok, out) = hb
        .command(&["replay", "--connector", "orders", "--from", &at_start])
        .await;
    assert!(ok, "moving back is allowed: {out}");
    assert_eq!(
        kafka::committed(&broker.addr(), &group, &topic).await[&0].0,
        0
    );
}

/// Produces `{"key", "value", "headers", "timestamp"}` records with their own
/// timestamps through confluent-kafka, in one batch where the client allows.
async fn produce_at(brokers: &str, topic: &str, records: &[serde_json::Value]) {
    const SCRIPT: &str = r#"
import json, sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1], "acks": "all", "linger.ms": 50})
for line in sys.stdin:
    r = json.loads(line)
    p.produce(sys.argv[2], key=r["key"].encode(), value=r["value"].encode(),
              headers=[(k, v.encode()) for k, v in r["headers"].items()], timestamp=r["timestamp"])
sys.exit(1 if p.flush(30) else 0)
"#;
    let input: String = records.iter().map(|r| format!("{r}\n")).collect();
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", SCRIPT, brokers, topic])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = child.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, input.as_bytes())
        .await
        .expect("write records");
    drop(stdin);
    assert!(child.wait().await.expect("produced").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_redrive_handles_every_record_present_at_its_start_whatever_its_timestamp() {
    let Running {
        broker,
        topic,
        dlq,
        rx,
        mut hb,
    } = running("redrive-ts", 1, 200).await;
    assert!(hb.terminate(Duration::from_secs(20)).await.success());

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let dead = |connector: &str, offset: i64, ts: i64| {
        json!({"key": format!("k{offset}"), "value": format!("{{\"n\":{offset}}}"), "timestamp": ts,
            "headers": {"hookbridge-dlq-connector": connector, "hookbridge-dlq-topic": topic,
                "hookbridge-dlq-partition": "0", "hookbridge-dlq-offset": offset.to_string(),
                "hookbridge-dlq-reason": "permanent", "hookbridge-dlq-status": "400"}})
    };
    produce_at(
        &broker.addr(),
        &dlq,
        &[
            // Dead-lettered by a replica whose clock runs an hour ahead.
            dead("orders", 7, now_ms + 3_600_000),
            dead("billing", 3, now_ms),
            json!({"key": "x", "value": "{}", "timestamp": now_ms, "headers": {"origin": "elsewhere"}}),
            dead("orders", 8, now_ms),
        ],
    )
    .await;

    let out = redrive_ok(&hb, "orders").await;
    assert!(
        out.contains("redriven: 2; dead-lettered again: 0; other sinks' records left for their own redrive: 1; unreadable: 1"),
        "{out}"
    );
    assert_eq!(
        ids(&rx.seen()),
        vec![format!("{topic}-0-7"), format!("{topic}-0-8")]
    );
    let committed = kafka::committed(&broker.addr(), &format!("g-{topic}-redrive"), &dlq).await;
    assert_eq!(committed[&0].0, 4, "{committed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_redrive_to_source_puts_each_record_back_into_its_own_partition() {
    let Running {
        broker,
        topic,
        dlq,
        rx: _rx,
        mut hb,
    } = running("back", 4, 400).await;
    // One key on every partition, as a producer with another partitioner (or an explicit
    // partition) can place it: the hash of the key says nothing about where it belongs.
    let recs: Vec<_> = (0..4)
        .map(|p| json!({"key": "same", "value": format!("{{\"p\":{p}}}"), "partition": p}))
        .collect();
    kafka::produce(&broker.addr(), &topic, &recs).await;
    assert_eq!(
        kafka::read(&broker.addr(), &dlq, Some(4), 20.0).await.len(),
        4
    );
    let out = stop_and_redrive_to_source(&mut hb).await;
    let back = kafka::read(&broker.addr(), &topic, Some(8), 20.0).await;
    assert_eq!(back.len(), 8, "{out}");
    for r in &back {
        let v: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
        assert_eq!(
            v["p"].as_i64(),
            Some(i64::from(r.partition)),
            "a copy landed away from its partition"
        );
    }
}

/// A tombstone (null value) that is dead-lettered stays a tombstone in the dead-letter
/// topic and when redriven to its topic, where it still deletes its key; an empty value
/// stays empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_tombstone_is_redriven_as_a_tombstone() {
    let Running {
        broker,
        topic,
        dlq,
        rx: _rx,
        mut hb,
    } = running("tomb", 1, 400).await;
    let recs = [
        json!({"key": "gone", "value": null}),
        json!({"key": "blank", "value": ""}),
    ];
    kafka::produce(&broker.addr(), &topic, &recs).await;
    // Two keys: dead-lettered in either order.
    let nulls = |read: Vec<kafka::Read>| {
        let mut nulls: Vec<_> = read.iter().map(|r| (r.key.clone(), r.null_value)).collect();
        nulls.sort();
        nulls
    };
    let gone = (Some(b"gone".to_vec()), true);
    let blank = (Some(b"blank".to_vec()), false);
    let dead = kafka::read(&broker.addr(), &dlq, Some(2), 20.0).await;
    assert_eq!(nulls(dead), [blank.clone(), gone.clone()]);
    let out = stop_and_redrive_to_source(&mut hb).await;
    let back = kafka::read(&broker.addr(), &topic, Some(4), 20.0).await;
    assert_eq!(
        nulls(back),
        [blank.clone(), blank, gone.clone(), gone],
        "{out}"
    );
}

/// A dead letter whose topic no longer exists stops a redrive to source at once, naming
/// the topic: the broker is never asked to create it (a topic made with its default
/// partitions is not where the record came from), and the records before it stay
/// redriven and committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_redrive_to_source_stops_at_a_record_whose_topic_is_gone() {
    let Running {
        broker,
        topic,
        dlq,
        rx: _rx,
        mut hb,
    } = running("gone", 1, 400).await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[json!({"key": "k", "value": "{}"})],
    )
    .await;
    let dead = kafka::read(&broker.addr(), &dlq, Some(1), 20.0).await;
    assert_eq!(dead.len(), 1);
    // The same dead letter, as if its topic had been deleted since.
    let gone = format!("{topic}-deleted");
    let headers: serde_json::Map<String, serde_json::Value> = (dead[0].headers.iter())
        .map(|(k, v)| {
            let v = if k == "hookbridge-dlq-topic" {
                gone.clone()
            } else {
                String::from_utf8_lossy(v).into_owned()
            };
            (k.clone(), json!(v))
        })
        .collect();
    let copy = json!({"key": "k", "value": "{}", "headers": headers});
    kafka::produce(&broker.addr(), &dlq, &[copy]).await;
    assert!(hb.terminate(Duration::from_secs(20)).await.success());
    // A dry run stops where the redrive would, and commits nothing.
    let (ok, out) = hb
        .command(&[
            "dlq",
            "redrive",
            "--connector",
            "orders",
            "--to",
            "source",
            "--dry-run",
        ])
        .await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("its topic {gone} does not exist")),
        "{out}"
    );
    let (ok, out) = hb
        .command(&["dlq", "redrive", "--connector", "orders", "--to", "source"])
        .await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("its topic {gone} does not exist")),
        "{out}"
    );
    let back = kafka::read(&broker.addr(), &topic, Some(2), 20.0).await;
    assert_eq!(
        back.len(),
        2,
        "the first dead letter is back in its topic: {out}"
    );
    let committed = kafka::committed(&broker.addr(), &format!("g-{topic}-redrive"), &dlq).await;
    assert_eq!(committed[&0].0, 1, "{committed:?} {out}");
}
