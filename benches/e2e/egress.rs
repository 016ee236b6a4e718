//! The egress side: a topic filled once with the benchmark's records, and one target
//! timed from the receiver's first delivery to its last (so process start and the
//! consumer group's first assignment are not counted as delivery time).

use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::error::{BenchError, Result};
use crate::process::Process;
use crate::receiver::Receiver;

/// How the topic is filled.
#[derive(Debug, Clone, Copy)]
pub struct Records {
    pub count: u64,
    pub bytes: usize,
    pub keys: u64,
}

/// Records acknowledged by the broker at once while filling the topic.
const FILL_IN_FLIGHT: usize = 10_000;

/// Produces `records` to `topic` (keys `k0…k{keys-1}` round robin, JSON values of
/// `bytes` bytes) and waits for every acknowledgement.
pub async fn fill(brokers: &str, topic: &str, records: Records) -> Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let failures = futures::stream::iter(0..records.count)
        .map(|i| {
            let producer = &producer;
            async move {
                let key = format!("k{}", i % records.keys.max(1));
                let value = crate::json_of_size(&format!("{{\"n\":{i},\"pad\":\""), records.bytes);
                let record = FutureRecord::to(topic).key(&key).payload(&value);
                producer
                    .send(record, Duration::from_secs(60))
                    .await
                    .is_err()
            }
        })
        .buffer_unordered(FILL_IN_FLIGHT)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    if failures > 0 {
        return Err(BenchError::Tool(format!(
            "{failures} records were not acknowledged while filling {topic}"
        )));
    }
    Ok(())
}

pub struct Measured {
    pub delivered: u64,
    pub seconds: f64,
    pub cpu_per_10k: f64,
    pub peak_rss_mib: f64,
    /// False when `timeout` passed before every record arrived.
    pub complete: bool,
}

impl Measured {
    /// Deliveries per second after the first one.
    pub fn rate(&self) -> f64 {
        self.delivered.saturating_sub(1) as f64 / self.seconds.max(f64::EPSILON)
    }
}

/// Waits for `expected` deliveries from `process` (already started, the receiver reset).
pub async fn measure(
    process: &mut Process,
    receiver: &Receiver,
    expected: u64,
    timeout: Duration,
) -> Result<Measured> {
    let deadline = Instant::now() + timeout;
    let poll = Duration::from_millis(2);
    let first_at = loop {
        if let Some(at) = receiver.progress().first_at {
            break at;
        }
        process.alive()?;
        if Instant::now() > deadline {
            return Err(BenchError::Tool(format!(
                "{}: nothing delivered within {} s (log: {})",
                process.name,
                timeout.as_secs(),
                process.log().display()
            )));
        }
        tokio::time::sleep(poll).await;
    };
    let cpu_before = process.cpu_seconds()?;
    let (progress, complete) = loop {
        let p = receiver.progress();
        if p.done_at.is_some() {
            break (p, true);
        }
        if Instant::now() > deadline || process.alive().is_err() {
            break (p, false);
        }
        tokio::time::sleep(poll).await;
    };
    let cpu = process.cpu_seconds()? - cpu_before;
    let end = progress.done_at.unwrap_or_else(Instant::now);
    let delivered = progress.count.min(expected);
    Ok(Measured {
        delivered,
        seconds: end.duration_since(first_at).as_secs_f64(),
        cpu_per_10k: cpu / delivered.saturating_sub(1).max(1) as f64 * 10_000.0,
        peak_rss_mib: process.peak_rss_mib()?,
        complete,
    })
}
