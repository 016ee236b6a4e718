//! The run's result as markdown tables, ratios taken against the baseline that does the
//! same job: (b) for ingress, (d) for egress.

use std::fmt::Write;

use crate::error::Result;
use crate::{egress, ingress, Settings};

pub struct IngressRow {
    label: String,
    result: std::result::Result<ingress::Measured, String>,
}

impl IngressRow {
    pub fn new(label: &str, result: Result<ingress::Measured>) -> Self {
        IngressRow {
            label: label.to_string(),
            result: result.map_err(|e| e.to_string()),
        }
    }
}

pub struct EgressRow {
    label: String,
    result: std::result::Result<egress::Measured, String>,
}

impl EgressRow {
    pub fn new(label: &str, result: Result<egress::Measured>) -> Self {
        EgressRow {
            label: label.to_string(),
            result: result.map_err(|e| e.to_string()),
        }
    }
}

pub struct Report {
    settings: Settings,
    commit: String,
    cores: usize,
    load_average: String,
    pub ingress: Vec<IngressRow>,
    pub egress: Vec<EgressRow>,
    pub failures: Vec<String>,
}

/// Row index of each side's baseline in the order the run adds them.
const INGRESS_BASELINE: usize = 1;
const EGRESS_BASELINE: usize = 0;

fn ratio(value: f64, baseline: Option<f64>) -> String {
    match baseline {
        Some(b) if b > 0.0 => format!("{:.2}×", value / b),
        _ => "-".to_string(),
    }
}

impl Report {
    pub fn new(settings: Settings) -> Self {
        Report {
            settings,
            commit: std::env::var("BENCH_COMMIT").unwrap_or_else(|_| "unknown".into()),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
            ingress: Vec::new(),
            egress: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// A target failed, missed deliveries or got answers other than 2xx.
    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
            || self.ingress.iter().any(|r| match &r.result {
                Ok(m) => {
                    m.max.failures() > 0 || m.half.as_ref().is_some_and(|h| h.run.failures() > 0)
                }
                Err(_) => true,
            })
            || self
                .egress
                .iter()
                .any(|r| r.result.as_ref().map_or(true, |m| !m.complete))
    }

    pub fn markdown(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n## hookbridge bench\n\ncommit {}, {} cores, load average at start {}\n",
            self.commit, self.cores, self.load_average,
        );
        if !self.ingress.is_empty() {
            self.ingress_tables(&mut out);
        }
        if !self.egress.is_empty() {
            let _ = writeln!(
                out,
                "### Egress: {} records × {} B, {} partitions, {} keys, {} in flight, one counting receiver; timed from its first delivery to its last\n",
                s.records, s.body_bytes, s.partitions, s.keys, s.concurrency
            );
            self.egress_table(&mut out);
        }
        for f in &self.failures {
            let _ = writeln!(out, "\nfailed: {f}");
        }
        out
    }

    fn ingress_tables(&self, out: &mut String) {
        let s = &self.settings;
        let _ = writeln!(
            out,
            "### Ingress: wrk -t{} -c{} -d{}s, the same {} B JSON webhook with its GitHub signature on every request\n",
            s.threads, s.connections, s.seconds, s.body_bytes
        );
        let _ = writeln!(out, "| target | req/s | p50 ms | p99 ms | p99.9 ms | failed requests | CPU s / 10k | peak RSS MiB | req/s vs (b) | CPU vs (b) |");
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
        let base = self
            .ingress
            .get(INGRESS_BASELINE)
            .and_then(|r| r.result.as_ref().ok());
        for row in &self.ingress {
            match &row.result {
                Ok(m) => {
                    let _ = writeln!(
                        out,
                        "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.3} | {:.1} | {} | {} |",
                        row.label,
                        m.max.rate(),
                        m.max.p50_ms,
                        m.max.p99_ms,
                        m.max.p999_ms,
                        m.max.failures(),
                        m.cpu_per_10k,
                        m.peak_rss_mib,
                        ratio(m.max.rate(), base.map(|b| b.max.rate())),
                        ratio(m.cpu_per_10k, base.map(|b| b.cpu_per_10k)),
                    );
                }
                Err(e) => {
                    let _ = writeln!(out, "| {} | failed: {e} | | | | | | | | |", row.label);
                }
            }
        }
        let halves: Vec<_> = self
            .ingress
            .iter()
            .filter_map(|r| Some((&r.label, r.result.as_ref().ok()?.half.as_ref()?)))
            .collect();
        if halves.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\n### Ingress latency at half of each target's maximum rate (wrk, each connection paced by the script's delay())\n"
        );
        let _ = writeln!(out, "| target | asked req/s | achieved req/s | p50 ms | p99 ms | p99.9 ms | failed requests |");
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for (label, h) in halves {
            let _ = writeln!(
                out,
                "| {label} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
                h.target,
                h.run.rate(),
                h.run.p50_ms,
                h.run.p99_ms,
                h.run.p999_ms,
                h.run.failures()
            );
        }
        let _ = writeln!(out);
    }

    fn egress_table(&self, out: &mut String) {
        let _ = writeln!(out, "| target | deliveries/s | delivered | seconds | CPU s / 10k | peak RSS MiB | deliveries/s vs (d) | CPU vs (d) |");
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        let base = self
            .egress
            .get(EGRESS_BASELINE)
            .and_then(|r| r.result.as_ref().ok());
        for row in &self.egress {
            match &row.result {
                Ok(m) => {
                    let delivered = if m.complete {
                        m.delivered.to_string()
                    } else {
                        format!("{} of {} (timed out)", m.delivered, self.settings.records)
                    };
                    let _ = writeln!(
                        out,
                        "| {} | {:.0} | {delivered} | {:.2} | {:.3} | {:.1} | {} | {} |",
                        row.label,
                        m.rate(),
                        m.seconds,
                        m.cpu_per_10k,
                        m.peak_rss_mib,
                        ratio(m.rate(), base.map(egress::Measured::rate)),
                        ratio(m.cpu_per_10k, base.map(|b| b.cpu_per_10k)),
                    );
                }
                Err(e) => {
                    let _ = writeln!(out, "| {} | failed: {e} | | | | | | |", row.label);
                }
            }
        }
    }
}
