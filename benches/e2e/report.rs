//! The run's result as markdown tables, ratios taken against the baseline that does the
//! same job: (b) for ingress, (d) for egress.

use std::fmt::Write;

use crate::error::Result;
use crate::{egress, ingress, Settings};

/// One target's line: what was measured, or why it could not be.
pub struct Row<T> {
    label: String,
    result: std::result::Result<T, String>,
}

impl<T> Row<T> {
    pub fn new(label: &str, result: Result<T>) -> Self {
        Row {
            label: label.to_string(),
            result: result.map_err(|e| e.to_string()),
        }
    }
}

pub type IngressRow = Row<ingress::Measured>;
pub type EgressRow = Row<egress::Measured>;

/// Table rows: the label, then `cells(measured, baseline)`, or the failure.
fn rows<T>(
    rows: &[Row<T>],
    baseline: usize,
    cells: impl Fn(&T, Option<&T>) -> Vec<String>,
) -> Vec<Vec<String>> {
    let base = rows.get(baseline).and_then(|r| r.result.as_ref().ok());
    rows.iter()
        .map(|row| {
            let mut line = vec![row.label.clone()];
            match &row.result {
                Ok(m) => line.extend(cells(m, base)),
                Err(e) => line.push(format!("failed: {e}")),
            }
            line
        })
        .collect()
}

pub struct Report {
    settings: Settings,
    commit: String,
    cores: usize,
    load_average: String,
    pub ingress: Vec<IngressRow>,
    pub egress: Vec<EgressRow>,
    /// (what was measured, peak RSS in MiB).
    pub memory: Vec<(String, Result<f64>)>,
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
            memory: Vec::new(),
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
            || self.memory.iter().any(|(_, r)| r.is_err())
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
        if !self.memory.is_empty() {
            let _ = writeln!(out, "\n### Memory (peak RSS, VmHWM)\n");
            let lines: Vec<Vec<String>> = self
                .memory
                .iter()
                .map(|(label, r)| {
                    vec![
                        label.clone(),
                        match r {
                            Ok(mib) => format!("{mib:.1}"),
                            Err(e) => format!("failed: {e}"),
                        },
                    ]
                })
                .collect();
            table(&mut out, &["hookbridge", "peak RSS MiB"], &lines);
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
        let lines = rows(&self.ingress, INGRESS_BASELINE, |m, base| {
            vec![
                format!("{:.0}", m.max.rate()),
                format!("{:.2}", m.max.p50_ms),
                format!("{:.2}", m.max.p99_ms),
                format!("{:.2}", m.max.p999_ms),
                m.max.failures().to_string(),
                format!("{:.3}", m.cpu_per_10k),
                format!("{:.1}", m.peak_rss_mib),
                ratio(m.max.rate(), base.map(|b| b.max.rate())),
                ratio(m.cpu_per_10k, base.map(|b| b.cpu_per_10k)),
            ]
        });
        table(
            out,
            &[
                "target",
                "req/s",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "failed requests",
                "CPU s / 10k",
                "peak RSS MiB",
                "req/s vs (b)",
                "CPU vs (b)",
            ],
            &lines,
        );
        let halves: Vec<Vec<String>> = self
            .ingress
            .iter()
            .filter_map(|r| Some((&r.label, r.result.as_ref().ok()?.half.as_ref()?)))
            .map(|(label, h)| {
                vec![
                    label.clone(),
                    format!("{:.0}", h.target),
                    format!("{:.0}", h.run.rate()),
                    format!("{:.2}", h.run.p50_ms),
                    format!("{:.2}", h.run.p99_ms),
                    format!("{:.2}", h.run.p999_ms),
                    h.run.failures().to_string(),
                ]
            })
            .collect();
        if halves.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\n### Ingress latency at half of each target's maximum rate (wrk, each connection paced by the script's delay())\n"
        );
        table(
            out,
            &[
                "target",
                "asked req/s",
                "achieved req/s",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "failed requests",
            ],
            &halves,
        );
        let _ = writeln!(out);
    }

    fn egress_table(&self, out: &mut String) {
        let records = self.settings.records;
        let lines = rows(&self.egress, EGRESS_BASELINE, |m, base| {
            vec![
                format!("{:.0}", m.rate()),
                if m.complete {
                    m.delivered.to_string()
                } else {
                    format!("{} of {records} (timed out)", m.delivered)
                },
                format!("{:.2}", m.seconds),
                format!("{:.3}", m.cpu_per_10k),
                format!("{:.1}", m.peak_rss_mib),
                ratio(m.rate(), base.map(egress::Measured::rate)),
                ratio(m.cpu_per_10k, base.map(|b| b.cpu_per_10k)),
            ]
        });
        table(
            out,
            &[
                "target",
                "deliveries/s",
                "delivered",
                "seconds",
                "CPU s / 10k",
                "peak RSS MiB",
                "deliveries/s vs (d)",
                "CPU vs (d)",
            ],
            &lines,
        );
    }
}

/// A markdown table; short rows are padded with empty cells.
fn table(out: &mut String, columns: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", columns.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(columns.len()));
    for row in rows {
        let mut cells = row.clone();
        cells.resize(columns.len(), String::new());
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_rows_are_padded_and_ratios_need_a_baseline() {
        let mut out = String::new();
        table(
            &mut out,
            &["target", "req/s", "CPU"],
            &[vec!["(c)".into(), "failed: exited".into()]],
        );
        assert_eq!(
            out,
            "| target | req/s | CPU |\n|---|---|---|\n| (c) | failed: exited |  |\n"
        );
        assert_eq!(ratio(8.0, Some(10.0)), "0.80×");
        assert_eq!(ratio(8.0, Some(0.0)), "-");
        assert_eq!(ratio(8.0, None), "-");
    }
}
