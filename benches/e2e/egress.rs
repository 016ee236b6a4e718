//! The egress side: a topic filled once with the benchmark's records, and one target
//! timed from the receiver's first record to its last (so process start and the
//! consumer group's first assignment are not counted as delivery time). A consume-only
//! target has no receiver: it prints when it read its first and its last record
//! ([`ConsumeLog`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::broker::Broker;
use crate::error::{BenchError, Result};
use crate::process::{own_cpu_seconds, Process};
use crate::receiver::Progress;

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
    /// Records the run waited for, and how many of them arrived.
    pub expected: u64,
    pub delivered: u64,
    pub seconds: f64,
    pub cpu_per_10k: f64,
    pub peak_rss_mib: f64,
    /// False when `timeout` passed before every record arrived.
    pub complete: bool,
    /// HTTP requests the receiver answered (records / requests = the batch fill).
    pub requests: Option<u64>,
    /// hookbridge's `hookbridge_refetched_records_total`, when it has the metric.
    pub refetched: Option<f64>,
    /// What the rest of the pipeline spent on the same records meanwhile.
    pub beside: Option<Beside>,
}

/// CPU seconds per 10 000 records the broker and the bench process (whose receiver
/// answers every request) spent during a run. They share the machine's cores with the
/// program under test, so a program that makes them work harder lowers its own rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beside {
    pub broker: f64,
    pub receiver: f64,
}

impl Measured {
    /// Deliveries per second after the first one.
    pub fn rate(&self) -> f64 {
        self.delivered.saturating_sub(1) as f64 / self.seconds.max(f64::EPSILON)
    }
}

/// The run of median rate (the faster of the two middle ones for an even count): with
/// `BENCH_REPEAT`, each egress row is the median of its runs, its CPU and RSS that run's.
pub fn median(runs: Vec<Measured>) -> Measured {
    // A run that missed deliveries fails the row, whichever run is reported.
    let complete = runs.iter().all(|m| m.complete);
    let mut m = crate::median_by(runs, Measured::rate);
    m.complete = complete;
    m
}

/// What a consume-only target printed to its log: `first record` (noted when first
/// seen, within the 2 ms poll), then `consumed N in S s`, where S is its own clock from
/// the first record to the Nth, more exact than the poll.
pub struct ConsumeLog {
    log: PathBuf,
    seen: Progress,
}

/// `(N, S)` from a `consumed N in S s` line.
fn consumed(text: &str) -> Option<(u64, f64)> {
    text.lines().find_map(|l| {
        let mut words = l.strip_prefix("consumed ")?.split_whitespace();
        let n = words.next()?.parse().ok()?;
        let seconds = words.nth(1)?.parse().ok()?;
        Some((n, seconds))
    })
}

impl ConsumeLog {
    pub fn new(process: &Process) -> Self {
        ConsumeLog {
            log: process.log().to_path_buf(),
            seen: Progress::default(),
        }
    }

    pub fn progress(&mut self) -> Progress {
        if self.seen.done_at.is_some() {
            return self.seen;
        }
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        if self.seen.first_at.is_none() && text.lines().any(|l| l == "first record") {
            self.seen.first_at = Some(Instant::now());
        }
        if let (Some(first), Some((n, seconds))) = (self.seen.first_at, consumed(&text)) {
            self.seen.count = n;
            self.seen.done_at = Some(first + Duration::from_secs_f64(seconds.max(0.0)));
        }
        self.seen
    }
}

/// Waits until `progress` reaches `expected` records from `process` (already started,
/// the receiver reset).
pub async fn measure(
    process: &mut Process,
    broker: &Broker,
    mut progress: impl FnMut() -> Progress,
    expected: u64,
    timeout: Duration,
) -> Result<Measured> {
    let deadline = Instant::now() + timeout;
    let poll = Duration::from_millis(2);
    let first_at = loop {
        if let Some(at) = progress().first_at {
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
    let beside_before = (broker.cpu_seconds()?, own_cpu_seconds());
    let (seen, complete) = loop {
        let p = progress();
        if p.done_at.is_some() {
            break (p, true);
        }
        if Instant::now() > deadline || process.alive().is_err() {
            break (p, false);
        }
        tokio::time::sleep(poll).await;
    };
    let cpu = process.cpu_seconds()? - cpu_before;
    let (broker_cpu, own_cpu) = (
        broker.cpu_seconds()? - beside_before.0,
        own_cpu_seconds() - beside_before.1,
    );
    let end = seen.done_at.unwrap_or_else(Instant::now);
    let delivered = seen.count.min(expected);
    let per_10k = |seconds: f64| seconds / delivered.saturating_sub(1).max(1) as f64 * 10_000.0;
    Ok(Measured {
        expected,
        delivered,
        seconds: end.duration_since(first_at).as_secs_f64(),
        cpu_per_10k: per_10k(cpu),
        peak_rss_mib: process.peak_rss_mib()?,
        complete,
        requests: (seen.requests > 0).then_some(seen.requests),
        refetched: None,
        beside: Some(Beside {
            broker: per_10k(broker_cpu),
            receiver: per_10k(own_cpu),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::{consumed, median, Measured};

    fn taking(seconds: f64) -> Measured {
        Measured {
            expected: 1001,
            delivered: 1001,
            seconds,
            cpu_per_10k: seconds,
            peak_rss_mib: 1.0,
            complete: true,
            requests: None,
            refetched: None,
            beside: None,
        }
    }

    #[test]
    fn a_repeated_row_is_its_run_of_median_rate() {
        let m = median(vec![taking(3.0), taking(1.0), taking(2.0)]);
        assert_eq!(m.seconds, 2.0);
        assert_eq!(m.cpu_per_10k, 2.0, "the figures of that one run");
        assert_eq!(median(vec![taking(2.0), taking(1.0)]).seconds, 1.0);
        assert_eq!(median(vec![taking(5.0)]).seconds, 5.0);
        let short = Measured {
            complete: false,
            ..taking(1.0)
        };
        let m = median(vec![taking(3.0), short, taking(2.0)]);
        assert_eq!(m.seconds, 2.0);
        assert!(!m.complete, "a run that missed deliveries fails the row");
    }

    #[test]
    fn the_consume_only_line_gives_the_count_and_its_own_seconds() {
        let log = "first record\nconsumed 2000 in 0.125000 s\n";
        assert_eq!(consumed(log), Some((2000, 0.125)));
        assert_eq!(consumed("first record\n"), None);
        assert_eq!(consumed("consumed 2000\n"), None);
    }
}
