//! End-to-end throughput of the real binary on loopback, against a local Tansu broker:
//! ingress (signed webhooks answered after the broker ack) and egress (records POSTed to
//! a receiver that answers 200 at once). Prints one table row per direction.
//!
//! `cargo bench --bench throughput` (sizes: `HOOKBRIDGE_BENCH_N`, default 20000;
//! `HOOKBRIDGE_BENCH_CONCURRENCY`, default 32).

#[path = "../tests/it/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;

use support::broker::Broker;
use support::hookbridge::{Config, Hookbridge};
use support::kafka;
use support::receiver::{Answer, Receiver};

const SECRET: &str = "bench-secret";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

async fn ingress(broker: &Broker, n: usize, concurrency: usize) {
    let topic = "bench-ingress";
    broker.create_topic(topic, 8);
    let source = format!(
        "[source]\nname = \"gh\"\npath = \"/gh\"\ntopic = \"{topic}\"\nverify = {{ scheme = \"github\", secrets = [\"${{GH}}\"] }}\nkey = \"json:/id\"\n"
    );
    let cfg = Config::new(&broker.addr())
        .connector("gh.toml", &source)
        .env("GH", SECRET)
        .env("RUST_LOG", "warn");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(60)).await;
    let url = hb.url("/gh");
    let body_pad = "x".repeat(900); // ~1 KiB webhooks
    let started = Instant::now();
    let per_worker = n / concurrency;
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (url, pad) = (url.clone(), body_pad.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut latencies = Vec::with_capacity(per_worker);
                for i in 0..per_worker {
                    let body = format!("{{\"id\":\"w{w}-{i}\",\"pad\":\"{pad}\"}}");
                    let sig = support::github_sig(SECRET, body.as_bytes());
                    let t0 = Instant::now();
                    let r = client
                        .post(&url)
                        .header("X-Hub-Signature-256", sig)
                        .body(body)
                        .send()
                        .await;
                    assert!(r.is_ok_and(|r| r.status() == 200), "bench request failed");
                    latencies.push(t0.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    println!(
        "| ingress (2xx after acks=all) | {} | {concurrency} | {:.0} | {:.1} | {:.1} | {:.1} |",
        all.len(),
        all.len() as f64 / secs,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 1.0),
    );
}

async fn egress(broker: &Broker, n: usize) {
    let topic = "bench-egress";
    broker.create_topic(topic, 8);
    let value = "x".repeat(1000);
    let recs: Vec<_> = (0..n)
        .map(|i| json!({"key": format!("k{}", i % 1000), "value": value}))
        .collect();
    kafka::produce(&broker.addr(), topic, &recs).await;
    let rx = Receiver::start(|_| Answer::status(200)).await;
    let sink = format!(
        "[sink]\nname = \"out\"\ntopics = [\"{topic}\"]\ngroup_id = \"bench\"\nurl = \"{}\"\nconcurrency = 64\n",
        rx.url
    );
    let cfg = Config::new(&broker.addr())
        .connector("out.toml", &sink)
        .env("RUST_LOG", "warn");
    let started = Instant::now();
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(60)).await;
    let assigned = started.elapsed();
    rx.wait_for(Duration::from_secs(600), "every record delivered", |s| {
        s.len() >= n
    })
    .await;
    let secs = (started.elapsed() - assigned).as_secs_f64();
    println!(
        "| egress (key order, 64 in flight) | {n} | 64 | {:.0} | - | - | - |",
        n as f64 / secs
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would run this too: skip then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n = env_usize("HOOKBRIDGE_BENCH_N", 20_000);
    let concurrency = env_usize("HOOKBRIDGE_BENCH_CONCURRENCY", 32);
    let broker = Broker::start();
    println!("| direction | records | concurrency | per second | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    ingress(&broker, n, concurrency).await;
    egress(&broker, n).await;
}
