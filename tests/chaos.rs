//! The chaos suite: hostile conditions that must not lose a single event. Each scenario
//! prints a summary row (sent, acknowledged, delivered, duplicates, lost, reordered) and
//! fails on any loss or reordering.
//!
//! `cargo test --test chaos` runs the bounded configuration CI uses;
//! `HOOKBRIDGE_CHAOS=full cargo test --test chaos -- --test-threads 1 --nocapture`
//! runs the full one (50 000 records, 6 kills, …). Loopback only, bounded in time.

#[path = "it/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::json;

use support::broker::Broker;
use support::hookbridge::{Config, Hookbridge};
use support::kafka;
use support::receiver::{Answer, Received, Receiver};
use support::{github_sig, unique};

/// Sizes of one run.
struct Scale {
    records: usize,
    partitions: u32,
    keys: usize,
    kills: usize,
    senders: usize,
    ingress_seconds: u64,
    outage: Duration,
    replica_rounds: usize,
    /// The broker-outage scenario needs Tansu with sqlite storage, whose group
    /// coordinator now and then never reassigns a member's partitions after a session
    /// expiry (roughly 1 run in 10 here): it runs in the full configuration only, so a
    /// broker bug cannot turn CI red.
    outage_scenario: bool,
}

fn scale() -> Scale {
    if std::env::var("HOOKBRIDGE_CHAOS").as_deref() == Ok("full") {
        Scale {
            records: 50_000,
            partitions: 8,
            keys: 1_000,
            kills: 6,
            senders: 32,
            ingress_seconds: 30,
            outage: Duration::from_secs(10),
            replica_rounds: 4,
            outage_scenario: true,
        }
    } else {
        Scale {
            records: 4_000,
            partitions: 8,
            keys: 200,
            kills: 3,
            senders: 12,
            ingress_seconds: 8,
            outage: Duration::from_secs(6),
            replica_rounds: 2,
            outage_scenario: false,
        }
    }
}

/// One row of the summary table.
#[derive(Default)]
struct Summary {
    scenario: &'static str,
    sent: usize,
    acknowledged: usize,
    delivered: usize,
    duplicates: usize,
    lost: usize,
    reordered: usize,
    seconds: f64,
}

impl Summary {
    fn print(&self) {
        eprintln!(
            "\n| scenario | sent | acknowledged | delivered | duplicates | lost | reordered | seconds |\n|---|---|---|---|---|---|---|---|\n| {} | {} | {} | {} | {} | {} | {} | {:.1} |\n",
            self.scenario, self.sent, self.acknowledged, self.delivered, self.duplicates, self.lost, self.reordered, self.seconds
        );
    }

    fn assert_nothing_lost(&self) {
        self.print();
        assert_eq!(self.lost, 0, "{}: lost records", self.scenario);
        assert_eq!(self.reordered, 0, "{}: reordered keys", self.scenario);
    }
}

/// Records `{"k", "seq"}` round-robin over `keys` keys.
fn records(from: usize, n: usize, keys: usize) -> Vec<serde_json::Value> {
    (from..from + n)
        .map(|i| {
            let k = format!("k{}", i % keys);
            json!({"key": k, "value": json!({"k": k, "seq": i}).to_string()})
        })
        .collect()
}

/// Successful deliveries (answered 200 in time) → per-key seq order of first successes.
fn analyse(seen: &[Received], sent: usize) -> (usize, usize, usize, usize) {
    let ok: Vec<&Received> = seen.iter().filter(|r| r.status == 200).collect();
    let mut first: HashSet<String> = HashSet::new();
    let mut order: HashMap<String, Vec<u64>> = HashMap::new();
    for r in &ok {
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json body");
        let seq = v["seq"].as_u64().unwrap_or(0);
        if first.insert(seq.to_string()) {
            order
                .entry(v["k"].as_str().unwrap_or("").to_owned())
                .or_default()
                .push(seq);
        }
    }
    let delivered = first.len();
    let reordered = order
        .values()
        .map(|s| s.windows(2).filter(|w| w[0] > w[1]).count())
        .sum();
    (
        delivered,
        ok.len() - delivered,
        sent.saturating_sub(delivered),
        reordered,
    )
}

fn delivered_count(seen: &[Received]) -> usize {
    seen.iter()
        .filter(|r| r.status == 200)
        .map(|r| r.header("webhook-id"))
        .collect::<HashSet<_>>()
        .len()
}

/// A destination that fails in every way a real one does.
async fn hostile_receiver() -> Receiver {
    Receiver::start(|_| {
        let mut rng = rand::rng();
        let roll: u32 = rng.random_range(0..100);
        match roll {
            0..=7 => Answer::status(500),
            8..=15 => Answer::status(503),
            16..=21 => Answer {
                status: 429,
                headers: vec![("retry-after", "1".into())],
                delay: Duration::ZERO,
            },
            // Longer than the sink's 1s timeout: hookbridge gives up; not a delivery.
            22..=24 => Answer {
                status: 504,
                headers: vec![],
                delay: Duration::from_millis(1300),
            },
            25..=28 => Answer {
                status: 200,
                headers: vec![],
                delay: Duration::from_millis(300),
            },
            _ => Answer {
                status: 200,
                headers: vec![],
                delay: Duration::from_millis(rng.random_range(0..10)),
            },
        }
    })
    .await
}

fn chaos_sink(topic: &str, url: &str) -> String {
    // No DLQ and unlimited attempts: every record must eventually be delivered.
    format!(
        "[sink]\nname = \"chaos\"\ntopics = [\"{topic}\"]\ngroup_id = \"g-{topic}\"\nurl = \"{url}\"\ntimeout = \"1s\"\nconcurrency = 64\nbuffer = 500\nretry = {{ max_attempts = 0, initial = \"50ms\", max = \"1s\" }}\nbreaker = {{ failures = 0 }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_survives_a_hostile_destination_and_repeated_kill_9() {
    let sc = scale();
    let broker = Broker::start();
    let topic = unique("chaos-egress");
    broker.create_topic(&topic, sc.partitions);
    let rx = hostile_receiver().await;
    let started = Instant::now();
    let mut hb = Hookbridge::start(
        &Config::new(&broker.addr()).connector("chaos.toml", &chaos_sink(&topic, &rx.url)),
    );
    hb.ready(Duration::from_secs(40)).await;
    kafka::produce(&broker.addr(), &topic, &records(0, sc.records, sc.keys)).await;

    for kill in 0..sc.kills {
        let wait = Duration::from_millis(rand::rng().random_range(1000..4000));
        tokio::time::sleep(wait).await;
        if delivered_count(&rx.seen()) >= sc.records {
            eprintln!("kill {kill}: stream already complete");
        }
        hb.kill9();
        eprintln!(
            "kill -9 #{} after {:.1}s, {} delivered so far",
            kill + 1,
            started.elapsed().as_secs_f64(),
            delivered_count(&rx.seen())
        );
        hb.spawn();
        hb.ready(Duration::from_secs(60)).await;
    }
    rx.wait_for(Duration::from_secs(600), "every record delivered", |s| {
        delivered_count(s) >= sc.records
    })
    .await;
    let (delivered, duplicates, lost, reordered) = analyse(&rx.seen(), sc.records);
    Summary {
        scenario: "egress: hostile destination + kill -9",
        sent: sc.records,
        acknowledged: sc.records,
        delivered,
        duplicates,
        lost,
        reordered,
        seconds: started.elapsed().as_secs_f64(),
    }
    .assert_nothing_lost();
}

const SECRET: &str = "chaos-github-secret";

fn source(topic: &str) -> String {
    format!(
        "[source]\nname = \"gh\"\npath = \"/gh\"\ntopic = \"{topic}\"\nverify = {{ scheme = \"github\", secrets = [\"${{GH}}\"] }}\nkey = \"json:/id\"\n"
    )
}

/// An id answered 2xx, with when its request started and ended.
type Acked = (String, Instant, Instant);
/// A sender task: how many it sent, and what was acknowledged.
type SenderTask = tokio::task::JoinHandle<(usize, Vec<Acked>)>;

/// Senders posting unique ids until `stop`.
fn spawn_senders(url: String, n: usize, stop: Arc<AtomicBool>) -> Vec<SenderTask> {
    (0..n)
        .map(|w| {
            let (url, stop) = (url.clone(), stop.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("client");
                let (mut sent, mut acked) = (0, Vec::new());
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let id = format!("w{w}-{i}");
                    let body = format!("{{\"id\":\"{id}\"}}");
                    let sig = github_sig(SECRET, body.as_bytes());
                    sent += 1;
                    let t0 = Instant::now();
                    match client
                        .post(&url)
                        .header("X-Hub-Signature-256", sig)
                        .body(body)
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => acked.push((id, t0, Instant::now())),
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
                (sent, acked)
            })
        })
        .collect()
}

async fn collect(senders: Vec<SenderTask>) -> (usize, Vec<Acked>) {
    let mut total = 0;
    let mut acked = Vec::new();
    for s in senders {
        let (n, a) = s.await.expect("sender");
        total += n;
        acked.extend(a);
    }
    (total, acked)
}

/// Every record key in the topic (records whose sender saw an error may be there too).
async fn ids_in_kafka(broker: &str, topic: &str) -> HashSet<String> {
    kafka::read_all(broker, topic, 120.0)
        .await
        .iter()
        .map(|r| String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_acknowledges_only_what_is_in_kafka_across_kill_9() {
    let sc = scale();
    let broker = Broker::start();
    let topic = unique("chaos-ingress");
    broker.create_topic(&topic, 4);
    let started = Instant::now();
    let mut hb = Hookbridge::start(
        &Config::new(&broker.addr())
            .connector("gh.toml", &source(&topic))
            .env("GH", SECRET),
    );
    hb.ready(Duration::from_secs(30)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let senders = spawn_senders(hb.url("/gh"), sc.senders, stop.clone());
    let kills = 2;
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_secs(sc.ingress_seconds / (kills as u64 + 1))).await;
        hb.kill9();
        tokio::time::sleep(Duration::from_millis(300)).await;
        hb.spawn();
        hb.ready(Duration::from_secs(30)).await;
    }
    tokio::time::sleep(Duration::from_secs(sc.ingress_seconds / (kills as u64 + 1))).await;
    stop.store(true, Ordering::SeqCst);
    let (sent, acked) = collect(senders).await;
    let in_kafka = ids_in_kafka(&broker.addr(), &topic).await;
    let lost = acked
        .iter()
        .filter(|(id, _, _)| !in_kafka.contains(id))
        .count();
    Summary {
        scenario: "ingress: concurrent senders + kill -9",
        sent,
        acknowledged: acked.len(),
        delivered: in_kafka.len(),
        duplicates: in_kafka.len().saturating_sub(acked.len()),
        lost,
        reordered: 0,
        seconds: started.elapsed().as_secs_f64(),
    }
    .assert_nothing_lost();
    assert!(acked.len() > 100, "load was running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_killed_in_turn_move_partitions_and_lose_nothing() {
    let sc = scale();
    let broker = Broker::start();
    let topic = unique("chaos-replicas");
    broker.create_topic(&topic, sc.partitions);
    let rx = Receiver::start(|_| Answer {
        status: 200,
        headers: vec![],
        delay: Duration::from_millis(2),
    })
    .await;
    let cfg = Config::new(&broker.addr()).connector("chaos.toml", &chaos_sink(&topic, &rx.url));
    let started = Instant::now();
    let mut replicas = [Hookbridge::start(&cfg), Hookbridge::start(&cfg)];
    for r in replicas.iter_mut() {
        r.ready(Duration::from_secs(40)).await;
    }
    let per_round = sc.records / (sc.replica_rounds + 1);
    let mut produced = 0;
    for round in 0..sc.replica_rounds {
        kafka::produce(
            &broker.addr(),
            &topic,
            &records(produced, per_round, sc.keys),
        )
        .await;
        produced += per_round;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let victim = &mut replicas[round % 2];
        victim.kill9();
        eprintln!(
            "round {}: killed one replica with {} delivered",
            round + 1,
            delivered_count(&rx.seen())
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        victim.spawn();
    }
    kafka::produce(
        &broker.addr(),
        &topic,
        &records(produced, per_round, sc.keys),
    )
    .await;
    produced += per_round;
    rx.wait_for(Duration::from_secs(300), "every record delivered", |s| {
        delivered_count(s) >= produced
    })
    .await;
    let (delivered, duplicates, lost, reordered) = analyse(&rx.seen(), produced);
    Summary {
        scenario: "egress: 2 replicas, killed in turn",
        sent: produced,
        acknowledged: produced,
        delivered,
        duplicates,
        lost,
        reordered,
        seconds: started.elapsed().as_secs_f64(),
    }
    .assert_nothing_lost();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_answers_no_2xx_and_both_directions_resume() {
    let sc = scale();
    if !sc.outage_scenario {
        eprintln!("broker outage scenario: runs with HOOKBRIDGE_CHAOS=full (see the README)");
        return;
    }
    let mut broker = Broker::start_durable();
    let topic = unique("chaos-outage");
    broker.create_topic(&topic, 2);
    let rx = Receiver::start(|_| Answer::status(200)).await;
    let sink = format!(
        "[sink]\nname = \"out\"\ntopics = [\"{topic}\"]\ngroup_id = \"g-{topic}\"\nurl = \"{}\"\nretry = {{ max_attempts = 0, initial = \"100ms\", max = \"1s\" }}\n",
        rx.url
    );
    // Tansu 0.6 with sqlite storage panics on an idempotent producer's first produce
    // after a broker restart (producer state lookup), so this scenario runs without
    // idempotence; acks=all still holds every 2xx to the broker's acknowledgement.
    let cfg = Config::new(&broker.addr())
        .connector("gh.toml", &source(&topic))
        .connector("out.toml", &sink)
        .env("GH", SECRET)
        .prop("enable.idempotence", "false");
    let started = Instant::now();
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let senders = spawn_senders(hb.url("/gh"), 4, stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;

    broker.stop();
    let down = Instant::now();
    tokio::time::sleep(sc.outage).await;
    broker.restart();
    let up = Instant::now();
    eprintln!("broker down for {:.1}s", (up - down).as_secs_f64());
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::SeqCst);
    let (sent, acked) = collect(senders).await;

    // A request answered while the broker was down cannot have been acknowledged by it.
    let grace = Duration::from_millis(500);
    let during: Vec<_> = acked
        .iter()
        .filter(|(_, _, end)| *end > down + grace && *end < up)
        .collect();
    let after = acked.iter().filter(|(_, start, _)| *start > up).count();
    let in_kafka = ids_in_kafka(&broker.addr(), &topic).await;
    let lost = acked
        .iter()
        .filter(|(id, _, _)| !in_kafka.contains(id))
        .count();
    let acked_ids: HashSet<String> = acked
        .iter()
        .map(|(id, _, _)| format!("\"id\":\"{id}\""))
        .collect();
    rx.wait_for(
        Duration::from_secs(120),
        "every acknowledged webhook delivered",
        |s| {
            let bodies: HashSet<String> = s
                .iter()
                .filter(|r| r.status == 200)
                .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                .collect();
            acked_ids
                .iter()
                .all(|id| bodies.iter().any(|b| b.contains(id.as_str())))
        },
    )
    .await;
    let seen = rx.seen();
    let delivered = seen
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.header("webhook-id"))
        .collect::<HashSet<_>>()
        .len();
    Summary {
        scenario: "broker outage (durable Tansu restarted)",
        sent,
        acknowledged: acked.len(),
        delivered,
        duplicates: seen.len() - delivered,
        lost,
        reordered: 0,
        seconds: started.elapsed().as_secs_f64(),
    }
    .assert_nothing_lost();
    assert!(
        during.is_empty(),
        "{} webhooks got a 2xx while the broker was down",
        during.len()
    );
    assert!(after > 0, "ingress resumed after the outage");
}

/// A destination that refuses one key in a hundred for `stuck_for`, and 3% of requests
/// with 503 and 1% with 429 throughout.
async fn stuck_key_receiver(stuck_for: Duration) -> Receiver {
    let until = Instant::now() + stuck_for;
    Receiver::start(move |r| {
        let key: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let k = key["k"].as_str().unwrap_or("");
        let stuck = k
            .trim_start_matches('k')
            .parse::<usize>()
            .is_ok_and(|n| n % 100 == 7);
        if stuck && Instant::now() < until {
            return Answer::status(503);
        }
        match rand::rng().random_range(0..100) {
            0..=2 => Answer::status(503),
            3 => Answer {
                status: 429,
                headers: vec![("retry-after", "1".into())],
                delay: Duration::ZERO,
            },
            _ => Answer::status(200),
        }
    })
    .await
}

/// Stuck keys hold their partitions' watermarks while everything behind them finishes;
/// kill -9 then must cost only what was unfinished or finished within about one commit
/// interval, thanks to the finished-offset maps in the commit metadata. Runs on
/// librdkafka's Kafka-protocol cluster: Tansu drops commit metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_keys_and_kill_9_redeliver_only_unfinished_work() {
    let sc = scale();
    let cluster = rdkafka::mocking::MockCluster::new(1).expect("Kafka-protocol cluster");
    let brokers = cluster.bootstrap_servers();
    let topic = unique("chaos-stuck");
    cluster
        .create_topic(&topic, sc.partitions as i32, 1)
        .expect("topic");
    let concurrency = 64;
    let commit_interval = Duration::from_millis(200); // the test harness's setting
    let stuck_for = Duration::from_secs(if sc.outage_scenario { 60 } else { 15 });
    let rx = stuck_key_receiver(stuck_for).await;
    let started = Instant::now();
    let sink = format!(
        "[sink]\nname = \"chaos\"\ntopics = [\"{topic}\"]\ngroup_id = \"g-{topic}\"\nurl = \"{}\"\ntimeout = \"1s\"\nconcurrency = {concurrency}\nretry = {{ max_attempts = 0, initial = \"50ms\", max = \"500ms\" }}\nbreaker = {{ failures = 0 }}\n",
        rx.url
    );
    let mut hb = Hookbridge::start(&Config::new(&brokers).connector("chaos.toml", &sink));
    hb.ready(Duration::from_secs(40)).await;
    let keys = sc.keys.max(100);
    kafka::produce(&brokers, &topic, &records(0, sc.records, keys)).await;

    let mut allowance = 0;
    for kill in 0..sc.kills {
        let wait = Duration::from_millis(rand::rng().random_range(1500..3500));
        tokio::time::sleep(wait).await;
        hb.kill9();
        let at = Instant::now();
        // What a crash may cost: the deliveries in flight, and those finished in the last
        // commit intervals (an async commit lands a little after its interval).
        let recent = rx
            .seen()
            .iter()
            .filter(|r| r.status == 200 && at.duration_since(r.at) <= commit_interval * 3)
            .count();
        allowance += concurrency + recent;
        eprintln!(
            "kill -9 #{} after {:.1}s: {} delivered so far, {recent} in the last commit intervals",
            kill + 1,
            started.elapsed().as_secs_f64(),
            delivered_count(&rx.seen())
        );
        hb.spawn();
        hb.ready(Duration::from_secs(60)).await;
    }
    rx.wait_for(Duration::from_secs(600), "every record delivered", |s| {
        delivered_count(s) >= sc.records
    })
    .await;
    let (delivered, duplicates, lost, reordered) = analyse(&rx.seen(), sc.records);
    let summary = Summary {
        scenario: "egress: stuck keys + kill -9 (finished maps)",
        sent: sc.records,
        acknowledged: sc.records,
        delivered,
        duplicates,
        lost,
        reordered,
        seconds: started.elapsed().as_secs_f64(),
    };
    summary.assert_nothing_lost();
    eprintln!(
        "duplicates {duplicates} of {} records after {} kills; bound (in flight + finished within the last commit intervals, per kill): {allowance}",
        sc.records, sc.kills
    );
    assert!(
        duplicates <= allowance,
        "{duplicates} duplicate deliveries, more than the {allowance} in flight or recently finished at the kills"
    );
}
