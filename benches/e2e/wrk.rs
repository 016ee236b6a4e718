//! Running wrk (Debian's package) with `webhook.lua` and reading the one summary line the
//! script prints.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{BenchError, Result};

/// The script, carried in the binary: a build made in another checkout (a shared target
/// directory) must not point wrk at that checkout's path. Written beside the webhook's
/// body file (the run's temporary directory) for wrk to read.
const SCRIPT: &str = include_str!("webhook.lua");

/// How hard to push: wrk's threads, connections and duration.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub threads: u32,
    pub connections: u32,
    pub seconds: u64,
}

/// One wrk run, as the script summarised it.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub requests: u64,
    pub seconds: f64,
    /// Answers other than 2xx/3xx.
    pub non_2xx: u64,
    /// Connect, read, write errors and timeouts.
    pub socket_errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

impl Summary {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds.max(f64::EPSILON)
    }

    /// Requests that did not get a 2xx/3xx answer.
    pub fn failures(&self) -> u64 {
        self.non_2xx + self.socket_errors
    }
}

/// The request every run sends: a body file and its signature header value.
pub struct Webhook<'a> {
    pub body_file: &'a Path,
    pub signature: &'a str,
}

/// Runs wrk against `url`; with `delay_ms`, every connection waits that long between
/// requests (the fixed-rate mode).
pub async fn run(
    url: &str,
    load: Load,
    webhook: &Webhook<'_>,
    delay_ms: Option<f64>,
) -> Result<Summary> {
    let script = webhook.body_file.with_file_name("webhook.lua");
    std::fs::write(&script, SCRIPT)
        .map_err(BenchError::io(format!("writing {}", script.display())))?;
    let mut cmd = std::process::Command::new("wrk");
    crate::process::huge_pages_by_default(&mut cmd)
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.seconds))
        .args(["--timeout", "10s", "-s"])
        .arg(&script)
        .arg(url)
        .env("BENCH_BODY_FILE", webhook.body_file)
        .env("BENCH_SIGNATURE", webhook.signature)
        .env(
            "BENCH_DELAY_MS",
            delay_ms.map_or(String::new(), |d| format!("{d:.3}")),
        );
    let out = (tokio::process::Command::from(cmd).output().await)
        .map_err(BenchError::io("running wrk"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .and_then(parse)
        .ok_or_else(|| {
            BenchError::Tool(format!(
                "wrk printed no summary (exit {}): {}{}",
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        })
}

fn parse(line: &str) -> Option<Summary> {
    let fields: HashMap<&str, f64> = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect();
    let get = |k: &str| fields.get(k).copied();
    Some(Summary {
        requests: get("requests")? as u64,
        seconds: get("duration_us")? / 1e6,
        non_2xx: get("status_errors")? as u64,
        socket_errors: get("socket_errors")? as u64,
        p50_ms: get("p50_us")? / 1e3,
        p99_ms: get("p99_us")? / 1e3,
        p999_ms: get("p999_us")? / 1e3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_script_summary() {
        let s = parse("requests=1000 duration_us=2000000 status_errors=3 socket_errors=1 p50_us=1500 p99_us=4000 p999_us=9000").unwrap();
        assert_eq!(s.requests, 1000);
        assert_eq!(s.rate(), 500.0);
        assert_eq!(s.failures(), 4);
        assert_eq!(s.p99_ms, 4.0);
        assert!(parse("requests=1").is_none());
    }
}
