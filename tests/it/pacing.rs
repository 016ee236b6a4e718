//! Pacing rules of a sink: waiting is not failing (`retry.max_elapsed` does not count
//! time spent waiting for the breaker), and a rate limit holds even after the
//! destination stalled (the concurrency slot is taken before the rate-limit token).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::connectors::SinkToml;
use crate::support::kafka;
use crate::support::receiver::{Answer, Received};
use crate::support::scenario::{Scenario, Setup};

fn records(n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| json!({"key": format!("k{i}"), "value": json!({"seq": i}).to_string()}))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_the_breaker_does_not_spend_max_elapsed() {
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    // An outage three times longer than max_elapsed: the records wait it out behind the
    // breaker and must not be dead-lettered for the time they waited.
    let Scenario {
        broker,
        topic,
        dlq,
        rx,
        hb: _hb,
    } = Setup::new("elapsed")
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
                    .max_attempts(0)
                    .max_elapsed("1s")
                    .backoff("50ms", "100ms")
                    .breaker_failures(2)
                    .breaker_cooldown("400ms")
                    .dlq(&n.dlq)
            },
        )
        .await;
    kafka::produce(&broker.addr(), &topic, &records(10)).await;
    rx.wait_for(Duration::from_secs(20), "first attempts", |s| !s.is_empty())
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    up.store(true, Ordering::SeqCst);
    rx.wait_for(Duration::from_secs(30), "all 10 delivered", |s| {
        s.iter().filter(|r| r.status == 200).count() >= 10
    })
    .await;
    let dead = kafka::read(&broker.addr(), &dlq, None, 3.0).await;
    assert!(
        dead.is_empty(),
        "{} records dead-lettered for time spent waiting",
        dead.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_after_the_destination_stalled() {
    let first = Arc::new(AtomicUsize::new(0));
    let counter = first.clone();
    // The first request is held for two seconds; everything after is answered at once.
    let answer = move |_: &Received| {
        let delay = if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Duration::from_secs(2)
        } else {
            Duration::ZERO
        };
        Answer {
            status: 200,
            headers: vec![],
            delay,
        }
    };
    let Scenario {
        broker,
        topic,
        rx,
        hb: _hb,
        ..
    } = Setup::new("rate")
        .sink(answer, |n| {
            SinkToml::new(&n.topic, &n.url)
                .ordering("none")
                .concurrency(1)
                .rate_limit(5, 1)
        })
        .await;
    kafka::produce(&broker.addr(), &topic, &records(20)).await;
    rx.wait_for(Duration::from_secs(30), "all 20 delivered", |s| {
        s.len() >= 20
    })
    .await;
    let at: Vec<Instant> = rx.seen().iter().map(|r| r.at).collect();
    let busiest = at
        .iter()
        .map(|start| {
            at.iter()
                .filter(|t| **t >= *start && t.duration_since(*start) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    // 5 per second plus a burst of 1; a little slack for timer granularity.
    assert!(
        busiest <= 7,
        "{busiest} requests within one second at 5/s with burst 1"
    );
}
