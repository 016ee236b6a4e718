//! The run's result as markdown tables. Each ratio is taken against a limit: the fastest
//! of the minimal programs that do the same job (the bridge at several lingers, the
//! forwarder with several ways of reading, consume-only), named under its table, so a
//! ratio is never flattered by a baseline slower than it could be.

use std::fmt::Write;

use crate::error::Result;
use crate::{egress, ingress, wrk, Settings};

/// One target's line: what was measured, or why it could not be.
pub struct Row<T> {
    label: String,
    result: std::result::Result<T, String>,
    /// A minimal program competing to be the limit of this name; the fastest one is.
    limit_of: Option<&'static str>,
    /// The limit this row's ratios are taken against.
    against: Option<&'static str>,
    /// Each round's run, in round order, when the rows were measured in rounds.
    rounds: Vec<Round>,
}

/// One round's run of a row measured in rounds: what its ratios are taken of.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    rate: f64,
    cpu_per_10k: f64,
}

impl Round {
    /// The rate and CPU of one run.
    pub fn of<T: Rated>(run: &T) -> Self {
        Round {
            rate: run.rate(),
            cpu_per_10k: run.cpu_per_10k(),
        }
    }
}

impl<T> Row<T> {
    pub fn new(label: &str, result: Result<T>) -> Self {
        Row {
            label: label.to_string(),
            result: result.map_err(|e| e.to_string()),
            limit_of: None,
            against: None,
            rounds: Vec::new(),
        }
    }

    /// Every round's run of a row measured in rounds, in round order. Against a limit
    /// measured in the same rounds, its ratios are then the median of the rounds'
    /// ratios (each round's run against the limit's run in that round), with their
    /// range: runs minutes apart on a shared machine differ by more than most of what
    /// the ratios are read for, and a round's runs share its minute.
    pub fn in_rounds(mut self, rounds: Vec<Round>) -> Self {
        self.rounds = rounds;
        self
    }

    /// A candidate for the limit `name` (and compared with it).
    pub fn limit_of(mut self, name: &'static str) -> Self {
        self.limit_of = Some(name);
        self.against = Some(name);
        self
    }

    /// Ratios against the limit `name`.
    pub fn against(mut self, name: &'static str) -> Self {
        self.against = Some(name);
        self
    }

    pub fn measured_mut(&mut self) -> Option<&mut T> {
        self.result.as_mut().ok()
    }
}

pub type IngressRow = Row<ingress::Measured>;
pub type EgressRow = Row<egress::Measured>;

/// What a limit is chosen by and a ratio taken of.
pub trait Rated {
    fn rate(&self) -> f64;
    fn cpu_per_10k(&self) -> f64;
}

impl Rated for ingress::Measured {
    fn rate(&self) -> f64 {
        self.max.rate()
    }
    fn cpu_per_10k(&self) -> f64 {
        self.cpu_per_10k
    }
}

impl Rated for egress::Measured {
    fn rate(&self) -> f64 {
        egress::Measured::rate(self)
    }
    fn cpu_per_10k(&self) -> f64 {
        self.cpu_per_10k
    }
}

/// One run's figures on stderr as it ends, so a repeated row's spread shows beside the
/// median the table reports.
/// With `beside`, also what the broker and the receiver spent on the same records.
pub fn progress(
    name: &str,
    run: Option<usize>,
    rate: f64,
    cpu_per_10k: f64,
    beside: Option<egress::Beside>,
) {
    let run = run.map_or_else(String::new, |i| format!(" run {}", i + 1));
    let beside = beside.map_or_else(String::new, |b| {
        format!(" (broker {:.3}, receiver {:.3})", b.broker, b.receiver)
    });
    eprintln!("{name}{run}: {rate:.0}/s, CPU {cpu_per_10k:.3} s/10k{beside}");
}

/// Index of the fastest measured candidate for the limit `name`.
pub fn fastest<T: Rated>(rows: &[Row<T>], name: &str) -> Option<usize> {
    rows.iter()
        .enumerate()
        .filter(|(_, r)| r.limit_of == Some(name))
        .filter_map(|(i, r)| Some((i, r.result.as_ref().ok()?.rate())))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// Table rows: the label, then `cells(measured, its ratios to its limit)`, or the failure.
fn rows<T: Rated>(
    rows: &[Row<T>],
    cells: impl Fn(&T, [String; 2]) -> Vec<String>,
) -> Vec<Vec<String>> {
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let base = row.against.and_then(|name| fastest(rows, name));
            let mut line = vec![row.label.clone()];
            match &row.result {
                Ok(m) => line.extend(cells(m, row_ratios(i, rows, base))),
                Err(e) => line.push(format!("failed: {e}")),
            }
            line
        })
        .collect()
}

/// Rate and CPU ratios of row `i` to row `base`: round by round when both were measured
/// in the same rounds, else of the runs reported.
fn row_ratios<T: Rated>(i: usize, rows: &[Row<T>], base: Option<usize>) -> [String; 2] {
    let Some(b) = base else {
        return ["-".into(), "-".into()];
    };
    let (row, limit) = (&rows[i], &rows[b]);
    if i != b && row.rounds.len() > 1 && row.rounds.len() == limit.rounds.len() {
        let pairs = || row.rounds.iter().zip(&limit.rounds);
        return [
            round_ratios(pairs().map(|(r, l)| (r.rate, l.rate))),
            round_ratios(pairs().map(|(r, l)| (r.cpu_per_10k, l.cpu_per_10k))),
        ];
    }
    let (Ok(m), Ok(l)) = (&row.result, &limit.result) else {
        return ["-".into(), "-".into()];
    };
    ratios(m, Some(l))
}

/// `0.87× (0.81–0.93)`: the median of the rounds' ratios `value / base` (the greater
/// middle one for an even count, as a row's run of median rate is), and their range.
fn round_ratios(pairs: impl Iterator<Item = (f64, f64)>) -> String {
    let each: Vec<f64> = pairs
        .filter(|(_, b)| *b > 0.0)
        .map(|(v, b)| v / b)
        .collect();
    let (Some(low), Some(high)) = (
        each.iter().copied().min_by(f64::total_cmp),
        each.iter().copied().max_by(f64::total_cmp),
    ) else {
        return "-".into();
    };
    let median = crate::median_by(each, |r| *r);
    format!("{median:.2}× ({low:.2}–{high:.2})")
}

/// One line per limit under a table: which candidate was the fastest.
fn limits<T: Rated>(out: &mut String, rows: &[Row<T>]) {
    let mut names: Vec<&str> = Vec::new();
    for name in rows.iter().filter_map(|r| r.limit_of) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    for name in names {
        let chosen = fastest(rows, name).map_or("none measured", |i| rows[i].label.as_str());
        let _ = writeln!(out, "\nlimit {name}: the fastest of its rows, {chosen}");
    }
}

/// Ratio `value / base` of a measured row and its limit.
fn ratios<T: Rated>(m: &T, base: Option<&T>) -> [String; 2] {
    [
        ratio(m.rate(), base.map(Rated::rate)),
        ratio(m.cpu_per_10k(), base.map(Rated::cpu_per_10k)),
    ]
}

pub struct Report {
    settings: Settings,
    commit: String,
    cores: usize,
    load_average: String,
    pub ingress: Vec<IngressRow>,
    /// wrk straight at the egress receiver: its own ceiling.
    pub receiver: Vec<(String, Result<wrk::Summary>)>,
    pub egress: Vec<EgressRow>,
    /// (what was measured, its peak RSS and CPU).
    pub memory: Vec<(String, Result<Footprint>)>,
    pub failures: Vec<String>,
}

/// A hookbridge left running without traffic to deliver (idle, or its destination never
/// answering): its peak RSS, and the CPU it used meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Footprint {
    pub peak_rss_mib: f64,
    /// CPU milliseconds per second of the window, all threads: 10 is 1% of a core.
    pub cpu_ms_per_s: f64,
}

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
            receiver: Vec::new(),
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
            || self
                .receiver
                .iter()
                .any(|(_, r)| r.as_ref().map_or(true, |s| s.failures() > 0))
    }

    pub fn markdown(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n## hookbridge bench\n\ncommit {}, {} cores, load average at start {}\n",
            self.commit, self.cores, self.load_average,
        );
        if let Ok(extra) = std::env::var(crate::hookbridge::PROPERTIES_ENV) {
            let _ = writeln!(out, "hookbridge with `[kafka.properties]` {extra}\n");
        }
        if let Some(buffer) = crate::hookbridge::sink_buffer() {
            let _ = writeln!(out, "hookbridge sinks with `buffer = {buffer}`\n");
        }
        if !self.ingress.is_empty() {
            self.ingress_tables(&mut out);
        }
        if !self.receiver.is_empty() {
            self.receiver_table(&mut out);
        }
        if !self.egress.is_empty() {
            let batched = if ["f", "batcher", "g"].iter().any(|r| s.rows.has(r)) {
                format!(
                    " ({} for the batched rows and their limit, (f) and (g))",
                    s.batched_records
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "### Egress: {} records × {} B{}, {} partitions, {} keys, {} in flight, one counting receiver; timed from its first record to its last{}{}\n",
                s.records, s.body_bytes, batched, s.partitions, s.keys, s.concurrency,
                s.repeated("rate"),
                if s.repeat > 1 {
                    ", in rounds; a ratio is the median of its rounds' ratios (each run against the limit's run of its round), with their range"
                } else {
                    ""
                },
            );
            self.egress_table(&mut out);
        }
        if !self.memory.is_empty() {
            let _ = writeln!(
                out,
                "\n### Memory (peak RSS, VmHWM) and CPU while waiting (ms per second: 10 is 1% of a core)\n"
            );
            let lines: Vec<Vec<String>> = self
                .memory
                .iter()
                .map(|(label, r)| match r {
                    Ok(f) => vec![
                        label.clone(),
                        format!("{:.1}", f.peak_rss_mib),
                        format!("{:.2}", f.cpu_ms_per_s),
                    ],
                    Err(e) => vec![label.clone(), format!("failed: {e}"), "-".into()],
                })
                .collect();
            table(
                &mut out,
                &["hookbridge", "peak RSS MiB", "CPU ms/s"],
                &lines,
            );
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
            "### Ingress: wrk -t{} -c{} -d{}s, the same {} B JSON webhook with its GitHub signature on every request{}{}\n",
            s.threads, s.connections, s.seconds, s.body_bytes,
            s.repeated("rate"),
            if s.repeat > 1 {
                ", in rounds, each run a new process; a ratio is the median of its rounds' ratios (each run against the limit's run of its round), with their range"
            } else {
                ""
            }
        );
        let lines = rows(&self.ingress, |m, [rate, cpu]| {
            vec![
                format!("{:.0}", m.max.rate()),
                format!("{:.2}", m.max.p50_ms),
                format!("{:.2}", m.max.p99_ms),
                format!("{:.2}", m.max.p999_ms),
                m.max.failures().to_string(),
                format!("{:.3}", m.cpu_per_10k),
                format!("{:.1}", m.peak_rss_mib),
                rate,
                cpu,
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
                "req/s vs limit",
                "CPU vs limit",
            ],
            &lines,
        );
        limits(out, &self.ingress);
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
            "\n### Ingress latency at half of each target's maximum rate (wrk, each connection paced by the script's delay()){}\n",
            Settings::median_of(
                "p99",
                self.settings.repeat.min(ingress::MAX_FIXED_RATE_RUNS)
            )
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

    fn receiver_table(&self, out: &mut String) {
        let s = &self.settings;
        let _ = writeln!(
            out,
            "### Egress receiver ceiling: wrk -t{} -c{} -d{}s POSTing {} B straight to it; egress rows far below this were not held back by the receiver\n",
            s.threads, s.connections, s.seconds, s.body_bytes
        );
        let lines: Vec<Vec<String>> = self
            .receiver
            .iter()
            .map(|(label, r)| match r {
                Ok(w) => vec![
                    label.clone(),
                    format!("{:.0}", w.rate()),
                    format!("{:.2}", w.p50_ms),
                    format!("{:.2}", w.p99_ms),
                    w.failures().to_string(),
                ],
                Err(e) => vec![label.clone(), format!("failed: {e}")],
            })
            .collect();
        table(
            out,
            &["receiver", "req/s", "p50 ms", "p99 ms", "failed requests"],
            &lines,
        );
        let _ = writeln!(out);
    }

    fn egress_table(&self, out: &mut String) {
        let lines = rows(&self.egress, |m, [rate, cpu]| {
            vec![
                format!("{:.0}", m.rate()),
                if m.complete {
                    m.delivered.to_string()
                } else {
                    format!("{} of {} (timed out)", m.delivered, m.expected)
                },
                m.requests.map_or("-".into(), |r| r.to_string()),
                format!("{:.2}", m.seconds),
                format!("{:.3}", m.cpu_per_10k),
                m.beside.map_or("-".into(), |b| format!("{:.3}", b.broker)),
                m.beside
                    .map_or("-".into(), |b| format!("{:.3}", b.receiver)),
                format!("{:.1}", m.peak_rss_mib),
                m.refetched.map_or("-".into(), |r| format!("{r:.0}")),
                rate,
                cpu,
            ]
        });
        table(
            out,
            &[
                "target",
                "records/s",
                "records",
                "requests",
                "seconds",
                "CPU s / 10k",
                "broker CPU s / 10k",
                "receiver CPU s / 10k",
                "peak RSS MiB",
                "records re-read",
                "records/s vs limit",
                "CPU vs limit",
            ],
            &lines,
        );
        limits(out, &self.egress);
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

    fn delivered(seconds: f64) -> Result<egress::Measured> {
        Ok(egress::Measured {
            expected: 1001,
            delivered: 1001,
            seconds,
            cpu_per_10k: 1.0,
            peak_rss_mib: 10.0,
            complete: true,
            requests: Some(1001),
            refetched: None,
            beside: None,
        })
    }

    #[test]
    fn ratios_are_taken_against_the_fastest_candidate_of_the_limit() {
        let egress = vec![
            EgressRow::new("slow", delivered(2.0)).limit_of("(d)"),
            EgressRow::new("fast", delivered(1.0)).limit_of("(d)"),
            EgressRow::new("broken", Err(crate::error::BenchError::Tool("x".into())))
                .limit_of("(d)"),
            EgressRow::new("measured", delivered(4.0)).against("(d)"),
            EgressRow::new("alone", delivered(4.0)).against("(f)"),
        ];
        assert_eq!(fastest(&egress, "(d)"), Some(1));
        assert_eq!(fastest(&egress, "(f)"), None);
        let lines = rows(&egress, |_, ratios| ratios.to_vec());
        assert_eq!(lines[0][1], "0.50×");
        assert_eq!(lines[1][1], "1.00×");
        assert_eq!(lines[3][1], "0.25×");
        assert_eq!(lines[4][1], "-");
        let mut out = String::new();
        limits(&mut out, &egress);
        assert_eq!(out, "\nlimit (d): the fastest of its rows, fast\n");
    }

    fn rounds(rates: &[f64]) -> Vec<Round> {
        (rates.iter())
            .map(|&rate| Round {
                rate,
                cpu_per_10k: 100.0 / rate,
            })
            .collect()
    }

    #[test]
    fn rows_measured_in_the_same_rounds_are_compared_round_by_round() {
        // The limit's slow second round is the row's slow round too: round by round the
        // row keeps 0.9 of the limit, where its median run against the limit's is 0.64.
        let egress = vec![
            EgressRow::new("limit", delivered(1.0))
                .limit_of("(d)")
                .in_rounds(rounds(&[100.0, 50.0, 110.0])),
            EgressRow::new("row", delivered(1.0))
                .against("(d)")
                .in_rounds(rounds(&[90.0, 45.0, 70.4])),
            EgressRow::new("one round", delivered(2.0))
                .against("(d)")
                .in_rounds(rounds(&[45.0])),
            EgressRow::new("two rounds", delivered(2.0))
                .against("(d)")
                .in_rounds(rounds(&[80.0, 45.0])),
        ];
        let lines = rows(&egress, |_, ratios| ratios.to_vec());
        assert_eq!(lines[0][1], "1.00×", "the limit against itself");
        assert_eq!(lines[1][1], "0.90× (0.64–0.90)");
        assert_eq!(
            lines[1][2], "1.11× (1.11–1.56)",
            "CPU per record, round by round"
        );
        // Rounds that do not pair with the limit's: the reported runs are compared.
        assert_eq!(lines[2][1], "0.50×");
        assert_eq!(lines[3][1], "0.50×");
    }

    #[test]
    fn round_ratios_take_the_greater_middle_and_skip_an_empty_base() {
        assert_eq!(
            round_ratios([(8.0, 10.0), (9.0, 10.0)].into_iter()),
            "0.90× (0.80–0.90)"
        );
        assert_eq!(round_ratios([(8.0, 0.0)].into_iter()), "-");
        assert_eq!(round_ratios(std::iter::empty()), "-");
    }
}
