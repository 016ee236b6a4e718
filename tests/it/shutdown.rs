//! Dead-letter writes that fail and then succeed, and SIGTERM while a record waits: in
//! retry backoff, or behind a dead-letter write the broker keeps refusing. In every case
//! the commit stops at the unfinished record, and the process exits well within
//! `shutdown.drain_timeout` (20 s in the tests) instead of waiting the wait out.

use std::time::{Duration, Instant};

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use serde_json::json;

use crate::support::broker::Broker;
use crate::support::cluster::Cluster;
use crate::support::connectors::SinkToml;
use crate::support::hookbridge::{metric, Config, Hookbridge};
use crate::support::kafka;
use crate::support::receiver::{Answer, Receiver};
use crate::support::unique;

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Well under the tests' 20 s drain timeout, far over a prompt exit (about a second).
const PROMPT_EXIT: Duration = Duration::from_secs(15);

/// The tests' sink: signed, 3 attempts backing off up to 2 minutes (a `Retry-After` of
/// a minute is honoured as asked), with a DLQ when given one.
fn sink(topic: &str, url: &str, dlq: Option<&str>) -> String {
    let sink = SinkToml::new(topic, url)
        .timeout("5s")
        .sign_standard_webhooks("${SINK_WHSEC}")
        .max_attempts(3)
        .backoff("100ms", "2m");
    match dlq {
        Some(dlq) => sink.dlq(dlq),
        None => sink,
    }
    .render()
}

async fn start(broker: &Broker, topic: &str, url: &str, dlq: Option<&str>) -> Hookbridge {
    let cfg = Config::new(&broker.addr())
        .connector("orders.toml", &sink(topic, url, dlq))
        .env("SINK_WHSEC", WHSEC);
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    hb
}

fn admin(broker: &Broker) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", broker.addr())
        .create()
        .expect("admin client")
}

/// A dead-letter topic whose records may be at most `max_bytes` (a topic setting: the
/// broker refuses larger ones, as it would a cluster's real limit).
async fn dlq_topic_limited_to(broker: &Broker, name: &str, max_bytes: usize) {
    let limit = max_bytes.to_string();
    let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1)).set("max.message.bytes", &limit);
    let made = admin(broker)
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create topics");
    assert!(made.iter().all(|r| r.is_ok()), "{made:?}");
}

async fn raise_limit(broker: &Broker, name: &str) {
    let change =
        AlterConfig::new(ResourceSpecifier::Topic(name)).set("max.message.bytes", "8388608");
    let done = admin(broker)
        .alter_configs([&change], &AdminOptions::new())
        .await
        .expect("alter configs");
    assert!(done.iter().all(|r| r.is_ok()), "{done:?}");
}

/// The group's committed offset of partition 0, once it has been `expected` for a
/// moment; panics naming what it was.
async fn wait_committed(broker: &Broker, topic: &str, expected: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let c = kafka::committed(&broker.addr(), &format!("g-{topic}"), topic).await;
        let now = c.get(&0).map(|c| c.0);
        if now == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "committed {now:?}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn committed(broker: &Broker, topic: &str) -> Option<i64> {
    let c = kafka::committed(&broker.addr(), &format!("g-{topic}"), topic).await;
    c.get(&0).map(|c| c.0)
}

/// `a`, a poison record the destination refuses for good (422), `b`. The poison
/// record's 900-byte key (never cut) makes its dead letter larger than the limited
/// dead-letter topic takes.
async fn poison_between_two(broker: &Broker, topic: &str) -> Receiver {
    let rx = Receiver::start(|r| {
        if String::from_utf8_lossy(&r.body).contains("poison") {
            Answer::status(422)
        } else {
            Answer::status(200)
        }
    })
    .await;
    kafka::produce(
        &broker.addr(),
        topic,
        &[
            json!({"key": "a", "value": "{\"ok\":1}"}),
            json!({"key": "p".repeat(900), "value": "{\"poison\":1}"}),
            json!({"key": "b", "value": "{\"ok\":2}"}),
        ],
    )
    .await;
    rx
}

/// Records `a`, `b` and `c` in `topic`, and a destination that takes `a` and `c` and
/// asks `b` to come back in a minute (`Retry-After: 60`).
async fn second_of_three_waits(brokers: &str, topic: &str) -> Receiver {
    let rx = Receiver::start(|r| {
        if String::from_utf8_lossy(&r.body).contains("later") {
            Answer {
                status: 503,
                headers: vec![("retry-after", "60".to_owned())],
                delay: Duration::ZERO,
            }
        } else {
            Answer::status(200)
        }
    })
    .await;
    kafka::produce(
        brokers,
        topic,
        &[
            json!({"key": "a", "value": "{\"ok\":1}"}),
            json!({"key": "b", "value": "{\"later\":1}"}),
            json!({"key": "c", "value": "{\"ok\":2}"}),
        ],
    )
    .await;
    rx
}

/// Waits until `times` dead-letter writes failed (the metric counts each; the log writes
/// one line per kind per 30 s, which is checked to be there).
async fn wait_dead_letter_failures(hb: &Hookbridge, times: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = hb.metrics().await;
        if metric(&text, "hookbridge_dlq_write_failures_total", &[]) >= times {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{times} dead-letter write failures:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let line = "dead-letter write failed; the record stays unfinished";
    assert!(hb.logs().contains(line), "{}", hb.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_the_broker_refuses_until_its_topic_allows_it_is_committed_after_the_ack() {
    let broker = Broker::start();
    let topic = unique("dlq-later");
    let dlq = format!("{topic}.dlq");
    broker.create_topic(&topic, 1);
    dlq_topic_limited_to(&broker, &dlq, 1000).await;
    let rx = poison_between_two(&broker, &topic).await;
    let hb = start(&broker, &topic, &rx.url, Some(&dlq)).await;
    // Refused whole, alone and cut: then retried with backoff, the record unfinished.
    wait_dead_letter_failures(&hb, 2.0).await;
    rx.wait_for(Duration::from_secs(20), "both good records", |s| {
        s.iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains("ok"))
            .count()
            >= 2
    })
    .await;
    wait_committed(&broker, &topic, 1, Duration::from_secs(20)).await;
    // The operator raises the topic's limit: the next try is acknowledged, and only
    // then does the commit pass the record.
    raise_limit(&broker, &dlq).await;
    wait_committed(&broker, &topic, 3, Duration::from_secs(60)).await;
    let letters = kafka::read(&broker.addr(), &dlq, Some(1), 30.0).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].key.as_deref(), Some("p".repeat(900).as_bytes()));
    assert!(hb.logs().contains("dead-lettered"), "{}", hb.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_a_dead_letter_write_keeps_failing_exits_promptly_and_commits_nothing_past_it(
) {
    let broker = Broker::start();
    let topic = unique("dlq-term");
    let dlq = format!("{topic}.dlq");
    broker.create_topic(&topic, 1);
    dlq_topic_limited_to(&broker, &dlq, 1000).await;
    let rx = poison_between_two(&broker, &topic).await;
    let mut hb = start(&broker, &topic, &rx.url, Some(&dlq)).await;
    wait_dead_letter_failures(&hb, 2.0).await;
    wait_committed(&broker, &topic, 1, Duration::from_secs(20)).await;
    let asked = Instant::now();
    let status = hb.terminate(Duration::from_secs(40)).await;
    let took = asked.elapsed();
    assert!(took < PROMPT_EXIT, "exited {took:?} after SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert_eq!(committed(&broker, &topic).await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_record_waiting_out_retry_after_exits_promptly_without_committing_it() {
    let broker = Broker::start();
    let topic = unique("backoff-term");
    broker.create_topic(&topic, 1);
    let rx = second_of_three_waits(&broker.addr(), &topic).await;
    let mut hb = start(&broker, &topic, &rx.url, None).await;
    rx.wait_for(Duration::from_secs(20), "all three tried once", |s| {
        s.len() >= 3
    })
    .await;
    wait_committed(&broker, &topic, 1, Duration::from_secs(20)).await;
    let asked = Instant::now();
    // A hangup (the terminal that started it closed) drains as SIGTERM does.
    let status = hb.terminate_by("HUP", Duration::from_secs(40)).await;
    let took = asked.elapsed();
    assert!(took < PROMPT_EXIT, "exited {took:?} after SIGHUP");
    assert!(status.success(), "exit status {status}");
    assert_eq!(
        committed(&broker, &topic).await,
        Some(1),
        "the record waiting out its Retry-After is not committed"
    );
    let tried_later = rx
        .seen()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("later"))
        .count();
    assert_eq!(tried_later, 1, "not sent again before its Retry-After");
}

/// From SIGTERM on, `/readyz` answers 503 "stopping" while the process drains (the
/// webhook listener no longer accepts connections), so a load balancer sends elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_goes_down_at_sigterm_while_deliveries_drain() {
    let broker = Broker::start();
    let topic = unique("drain-ready");
    broker.create_topic(&topic, 1);
    // A delivery that takes its time, so the drain lasts.
    let rx = Receiver::start(|_| Answer {
        status: 200,
        headers: vec![],
        delay: Duration::from_secs(3),
    })
    .await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[json!({"key": "a", "value": "{\"slow\":1}"})],
    )
    .await;
    let mut hb = start(&broker, &topic, &rx.url, None).await;
    rx.wait_for(Duration::from_secs(20), "the delivery under way", |s| {
        !s.is_empty()
    })
    .await;
    let readyz = hb.admin_url("/readyz");
    let answer = reqwest::get(&readyz).await.expect("readyz");
    assert_eq!(answer.status(), 200, "ready before the signal");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &hb.pid().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(2);
    let said = loop {
        let answer = reqwest::get(&readyz)
            .await
            .expect("the admin listener answers while draining");
        if answer.status() == 503 {
            break answer.text().await.unwrap_or_default();
        }
        assert!(Instant::now() < deadline, "still ready after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(said.contains("stopping"), "{said}");
    let status = hb.terminate(Duration::from_secs(40)).await;
    assert!(status.success(), "exit status {status}");
}

/// A final commit the broker refuses makes the exit non-zero. Nothing is lost, but what
/// the sink delivered since its last commit is delivered again after the restart, and
/// whatever runs the process hears that the stop was not clean. The broker here takes
/// at most one byte of commit metadata, and the finished-offset map above a record
/// waiting out its `Retry-After` is longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_whose_final_commit_is_refused_exits_non_zero() {
    let cluster = Cluster::start_with(1, "offset.metadata.max.bytes=1");
    let topic = unique("commit-refused");
    cluster.create_topic(&topic, 1);
    let rx = second_of_three_waits(&cluster.bootstrap(), &topic).await;
    let cfg = Config::new(&cluster.bootstrap())
        .connector("orders.toml", &sink(&topic, &rx.url, None))
        .env("SINK_WHSEC", WHSEC);
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(60)).await;
    rx.wait_for(Duration::from_secs(30), "all three tried once", |s| {
        s.len() >= 3
    })
    .await;
    let status = hb.terminate(Duration::from_secs(40)).await;
    let logs = hb.logs();
    assert!(
        logs.contains("commit of drained offsets failed"),
        "the final commit was refused: {logs}"
    );
    assert!(!status.success(), "exit status {status}");
    assert!(logs.contains("its final commit failed"), "{logs}");
}
