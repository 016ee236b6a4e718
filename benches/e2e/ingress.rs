//! One ingress target under wrk: a warm-up and the saturating run (req/s, latency, CPU per
//! 10k webhooks, the process's peak RSS); or, in a new run of the same target, a warm-up
//! and the fixed-rate run at half the rate the saturating one measured. With
//! `BENCH_REPEAT`, the saturating run is made once per round, each on a new process (see
//! `run_ingress`), and the one reported is the run of median rate; the fixed-rate run is
//! repeated in its process (at most three times), and the one reported is the run of
//! median p99. Either way with the failed requests of all its runs.

use std::time::Duration;

use crate::error::Result;
use crate::process::Process;
use crate::wrk::{self, Load, Summary, Webhook};

/// Seconds of the pacing calibration run before the fixed-rate run.
const CALIBRATION_SECONDS: u64 = 4;

pub struct Measured {
    pub max: Summary,
    pub cpu_per_10k: f64,
    pub peak_rss_mib: f64,
    pub half: Option<HalfRate>,
}

/// The fixed-rate run: what rate was asked for and what wrk saw.
pub struct HalfRate {
    pub target: f64,
    pub run: Summary,
}

pub async fn measure(
    process: &mut Process,
    url: &str,
    load: Load,
    warmup: Load,
    webhook: &Webhook<'_>,
) -> Result<Measured> {
    // Connections, producer metadata and allocator pools are set up before measuring.
    wrk::run(url, warmup, webhook, None).await?;
    process.alive()?;
    let cpu_before = process.cpu_seconds()?;
    let max = wrk::run(url, load, webhook, None).await?;
    let cpu = process.cpu_seconds()? - cpu_before;
    process.alive()?;
    Ok(Measured {
        max,
        cpu_per_10k: cpu / max.requests.max(1) as f64 * 10_000.0,
        peak_rss_mib: process.peak_rss_mib()?,
        half: None,
    })
}

/// The saturating run of median rate (the faster of the two middle ones for an even
/// count), with the failed requests of every run: a run left out of the median still
/// fails the row. `runs` is not empty.
pub fn median(runs: Vec<Measured>) -> Measured {
    let failures = failures_of(runs.iter().map(|m| &m.max));
    let mut m = crate::median_by(runs, |m| m.max.rate());
    (m.max.non_2xx, m.max.socket_errors) = failures;
    m
}

/// The fixed-rate run alone, at `target` req/s after a warm-up: for a target whose maximum
/// was measured by an earlier run of the same program (on a broker of its own, as every
/// ingress run is).
pub async fn at_rate(
    process: &mut Process,
    url: &str,
    load: Load,
    warmup: Load,
    webhook: &Webhook<'_>,
    target: f64,
    repeat: usize,
) -> Result<HalfRate> {
    wrk::run(url, warmup, webhook, None).await?;
    process.alive()?;
    let half = fixed_rates(url, load, webhook, target, repeat).await?;
    process.alive()?;
    Ok(half)
}

/// The most fixed-rate runs made in one process: each adds its records to the one broker,
/// and many repeats are asked for the saturating ratios, not for this latency.
pub const MAX_FIXED_RATE_RUNS: usize = 3;

/// `repeat` fixed-rate runs at `target` (at most [`MAX_FIXED_RATE_RUNS`]): the run of
/// median p99.
async fn fixed_rates(
    url: &str,
    load: Load,
    webhook: &Webhook<'_>,
    target: f64,
    repeat: usize,
) -> Result<HalfRate> {
    let repeat = repeat.clamp(1, MAX_FIXED_RATE_RUNS);
    let mut runs = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        runs.push(fixed_rate(url, load, webhook, target).await?);
    }
    let failures = failures_of(runs.iter().map(|r| &r.run));
    let mut half = crate::median_by(runs, |r| r.run.p99_ms);
    (half.run.non_2xx, half.run.socket_errors) = failures;
    Ok(half)
}

/// The failed requests of every run, so a run left out of the median still fails the
/// row: (answers other than 2xx/3xx, socket errors).
fn failures_of<'a>(runs: impl Iterator<Item = &'a Summary>) -> (u64, u64) {
    runs.fold((0, 0), |(n, e), r| (n + r.non_2xx, e + r.socket_errors))
}

/// wrk is closed-loop: each connection waits `delay` after every answer. The rate is
/// then connections / (delay + time per request), so a short calibration run measures
/// the time per request at this load and the delay is shortened by it.
async fn fixed_rate(url: &str, load: Load, webhook: &Webhook<'_>, target: f64) -> Result<HalfRate> {
    let connections = f64::from(load.connections);
    let cycle_ms = connections * 1000.0 / target.max(1.0);
    let calibration = Load {
        seconds: CALIBRATION_SECONDS.min(load.seconds),
        ..load
    };
    let probe = wrk::run(url, calibration, webhook, Some(cycle_ms)).await?;
    let per_request_ms = (connections * 1000.0 / probe.rate().max(1.0) - cycle_ms).max(0.0);
    let delay = (cycle_ms - per_request_ms).max(0.0);
    let run = wrk::run(url, load, webhook, Some(delay)).await?;
    Ok(HalfRate { target, run })
}

/// How long to give a process to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::{failures_of, median, Measured, Summary};

    /// A saturating run's summary with these counts.
    fn summary(requests: u64, non_2xx: u64, socket_errors: u64) -> Summary {
        Summary {
            requests,
            seconds: 1.0,
            non_2xx,
            socket_errors,
            p50_ms: 1.0,
            p99_ms: 2.0,
            p999_ms: 3.0,
        }
    }

    #[test]
    fn the_run_of_median_rate_is_reported_with_every_run_s_failures() {
        let run = |requests, non_2xx, socket_errors| Measured {
            max: summary(requests, non_2xx, socket_errors),
            cpu_per_10k: requests as f64,
            peak_rss_mib: 1.0,
            half: None,
        };
        let m = median(vec![run(300, 0, 0), run(100, 1, 0), run(200, 0, 4)]);
        assert_eq!(m.max.requests, 200);
        assert_eq!(m.cpu_per_10k, 200.0);
        assert_eq!((m.max.non_2xx, m.max.socket_errors), (1, 4));
    }

    #[test]
    fn the_failures_of_every_run_are_counted() {
        let runs = [summary(100, 0, 0), summary(100, 2, 0), summary(100, 0, 5)];
        assert_eq!(failures_of(runs.iter()), (2, 5));
    }
}
