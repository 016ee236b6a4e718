//! `scripts/bench`: hookbridge against minimal programs that do the same job with nothing
//! else, in one run, under one load generator, on Tansu brokers, all on loopback: the
//! egress targets share one, and each ingress target gets a new one, so a target measured
//! late does not pay for the gigabytes the earlier ones left in the in-memory broker.
//!
//! Ingress (wrk, the same signed 1 KiB webhook on every request): (a) a plain axum 200
//! server, (b) axum → rdkafka answering after `acks=all` at several lingers, (c)
//! hookbridge verifying GitHub HMAC. Egress (records pre-produced once, delivered to one
//! counting receiver whose own ceiling is measured first): (d) rdkafka consumer →
//! reqwest, unordered, no commits, read in several ways; (f) consume-only; (e) hookbridge
//! sinks with `ordering` = key, none and partition, and key order with a filter and with a
//! transform; (g) hookbridge batching 100 records per JSON array; (h) (d) and hookbridge
//! over HTTP/2 with TLS. Each ratio is against the fastest minimal program of its job
//! (see `report.rs`). Sizes come from `BENCH_*` environment variables (see [`Settings`]).

mod broker;
// The test kit's connector builders: the connector files the benchmark runs.
#[path = "../../tests/it/support/connectors.rs"]
mod connectors;
mod egress;
mod egress_rows;
mod error;
mod hookbridge;
mod ingress;
mod process;
mod receiver;
mod report;
mod tls;
mod wrk;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use broker::Broker;
use error::{BenchError, Result};
use process::Process;
use report::{IngressRow, Report, Round};
use wrk::{Load, Webhook};

// The receiver shares this process: it allocates as hookbridge does, so it is not the
// slower side of any row (huge pages off too: see `process::without_huge_pages`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The topic every run of the bridge baseline produces to.
const BRIDGE_TOPIC: &str = "bench-ingress-baseline";

/// The lingers the bridge baseline runs at; the fastest is the ingress limit.
const BRIDGE_LINGERS_MS: [u32; 4] = [0, 1, 2, 5];

/// Every size of the run, each overridable by the environment variable named beside it.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `BENCH_SECONDS` (10): each saturating and fixed-rate wrk run.
    pub seconds: u64,
    /// `BENCH_WARMUP_SECONDS` (2): the wrk run before measuring each ingress target.
    pub warmup_seconds: u64,
    /// `BENCH_THREADS` (2) and `BENCH_CONNECTIONS` (64): wrk's.
    pub threads: u32,
    pub connections: u32,
    /// `BENCH_BODY_BYTES` (1024): webhook body and record value size.
    pub body_bytes: usize,
    /// `BENCH_RECORDS` (100000): records pre-produced for egress.
    pub records: u64,
    /// `BENCH_BATCHED_RECORDS` (5 × `BENCH_RECORDS`): records of the topic the batched
    /// rows and their limit, (f) and (g), read. Those move hundreds of thousands of
    /// records a second: on the others' topic a run would last well under a second, and
    /// its start (the first fetches, the first batches) would weigh in its rate.
    pub batched_records: u64,
    /// `BENCH_PARTITIONS` (8) and `BENCH_KEYS` (1000): of the egress topic.
    pub partitions: u32,
    pub keys: u64,
    /// `BENCH_CONCURRENCY` (64): requests in flight per egress target.
    pub concurrency: usize,
    /// `BENCH_EGRESS_TIMEOUT` (300): seconds one egress target may take.
    pub egress_timeout: u64,
    /// `BENCH_ONLY`: `ingress` or `egress` to run one side.
    pub ingress: bool,
    pub egress: bool,
    /// `BENCH_REPEAT` (1): runs of each target; an egress or ingress row is the run of
    /// median rate, a latency at half rate the run of median p99.
    pub repeat: usize,
    /// `BENCH_ROWS`: the rows to run, by name: ingress `a,b,c` (and `b-1` for the linger 1
    /// bridge alone), egress `receiver,d,f,e,jq,batcher,g,h,memory` (and `d-stream`,
    /// `e-key` for one row of (d) and (e); `h` brings `d`); all when unset. For iterating
    /// on one row: `BENCH_ONLY=egress BENCH_ROWS=f,g`.
    pub rows: Rows,
}

/// A set of rows, named as in the report. Ingress: `a`, `b` (the bridge at every linger),
/// `c`; and for a close comparison of hookbridge with its limit in many rounds, `b-1`
/// (only the bridge at linger.ms 1, the fastest in every recorded run). Egress:
/// `receiver` (its ceiling), `d`, `f`, `e` (the three orderings), `jq` (the filter and
/// transform rows), `batcher` (the minimal batching forwarders of (g)), `g` (hookbridge
/// batching), `h`, `memory`; and for a close comparison of key order with its limit in
/// many short rounds, `d-stream` (only the first (d) forwarder, the fastest in every
/// recorded run) and `e-key` (only key order).
#[derive(Debug, Clone, Copy)]
pub struct Rows(u16);

impl Rows {
    const NAMES: [&'static str; 15] = [
        "a", "b", "b-1", "c", "receiver", "d", "d-stream", "f", "e", "e-key", "jq", "batcher", "g",
        "h", "memory",
    ];

    fn parse(list: &str) -> std::result::Result<Self, String> {
        if list.trim().is_empty() {
            return Ok(Rows(u16::MAX));
        }
        let mut set = 0;
        for name in list.split(',').map(str::trim) {
            set |= Self::bit(name).ok_or_else(|| {
                format!(
                    "BENCH_ROWS: no row {name:?}; rows are {}",
                    Self::NAMES.join(",")
                )
            })?;
        }
        // The HTTP/2 forwarder reads the way the fastest (d) row did: without (d), (h)
        // would compare hookbridge with a reader that may be slower than it could be.
        if set & Self::bit("h").unwrap_or(0) != 0 {
            set |= Self::bit("d").unwrap_or(0);
        }
        Ok(Rows(set))
    }

    /// The bit of the row named `name`, if there is such a row.
    fn bit(name: &str) -> Option<u16> {
        Self::NAMES.iter().position(|n| *n == name).map(|i| 1 << i)
    }

    /// The ingress rows' names; every other row is egress.
    const INGRESS: [&'static str; 4] = ["a", "b", "b-1", "c"];

    /// Whether any ingress row runs.
    pub fn any_ingress(self) -> bool {
        Self::INGRESS.iter().any(|n| self.has(n))
    }

    /// Whether any egress row runs.
    pub fn any_egress(self) -> bool {
        (Self::NAMES.iter())
            .filter(|n| !Self::INGRESS.contains(n))
            .any(|n| self.has(n))
    }

    /// Whether the row named `name` (one of [`Rows::NAMES`]) runs.
    pub fn has(self, name: &str) -> bool {
        Self::bit(name).is_some_and(|bit| self.0 & bit != 0)
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> std::result::Result<T, String> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a valid number")),
        Err(_) => Ok(default),
    }
}

impl Settings {
    /// A table heading's note on repeated runs: which run of each row it shows, by
    /// `what` (rate, p99); empty for a single run.
    pub fn repeated(&self, what: &str) -> String {
        Self::median_of(what, self.repeat)
    }

    /// The same note for `runs` runs of each row.
    pub fn median_of(what: &str, runs: usize) -> String {
        match runs {
            0 | 1 => String::new(),
            n => format!("; each row the run of median {what} of {n}"),
        }
    }

    fn from_env() -> std::result::Result<Self, String> {
        let only = std::env::var("BENCH_ONLY").unwrap_or_default();
        if !["", "ingress", "egress"].contains(&only.as_str()) {
            return Err(format!("BENCH_ONLY={only:?}: use ingress or egress"));
        }
        let records = env_or("BENCH_RECORDS", 100_000)?.max(2);
        Ok(Settings {
            seconds: env_or("BENCH_SECONDS", 10)?.max(1),
            warmup_seconds: env_or("BENCH_WARMUP_SECONDS", 2)?.max(1),
            threads: env_or("BENCH_THREADS", 2)?.max(1),
            connections: env_or("BENCH_CONNECTIONS", 64)?.max(1),
            body_bytes: env_or("BENCH_BODY_BYTES", 1024)?,
            records,
            batched_records: env_or("BENCH_BATCHED_RECORDS", records.saturating_mul(5))?.max(2),
            partitions: env_or("BENCH_PARTITIONS", 8)?.max(1),
            keys: env_or("BENCH_KEYS", 1000)?.max(1),
            concurrency: env_or("BENCH_CONCURRENCY", 64)?.max(1),
            egress_timeout: env_or("BENCH_EGRESS_TIMEOUT", 300)?,
            ingress: only != "egress",
            egress: only != "ingress",
            repeat: env_or("BENCH_REPEAT", 1)?.max(1),
            rows: Rows::parse(&std::env::var("BENCH_ROWS").unwrap_or_default())?,
        })
    }

    fn load(&self) -> Load {
        Load {
            threads: self.threads,
            connections: self.connections,
            seconds: self.seconds,
        }
    }

    /// Each target's runs: `None` for the only one, else the run's number (an egress run's
    /// consumer group, and every run's logs, carry it).
    fn runs(&self) -> Vec<Option<usize>> {
        match self.repeat {
            1 => vec![None],
            n => (0..n).map(Some).collect(),
        }
    }

    /// The run before a measured one: the same load, shorter.
    fn warmup(&self) -> Load {
        Load {
            seconds: self.warmup_seconds,
            ..self.load()
        }
    }
}

/// Each of `targets` targets (by index) once per round (`runs`: one entry per round), in
/// order, so the machine's drift over the minutes of a run weighs on a row and its limit
/// alike; a target whose run fails is not run again. Each target's runs, or its failure.
pub async fn in_rounds<M, Fut>(
    targets: usize,
    runs: &[Option<usize>],
    mut once: impl FnMut(usize, Option<usize>) -> Fut,
) -> Vec<Result<Vec<M>>>
where
    Fut: std::future::Future<Output = Result<M>>,
{
    let mut results: Vec<Result<Vec<M>>> = (0..targets).map(|_| Ok(Vec::new())).collect();
    for &run in runs {
        for (target, result) in results.iter_mut().enumerate() {
            let Ok(done) = result else { continue };
            match once(target, run).await {
                Ok(m) => done.push(m),
                Err(e) => *result = Err(e),
            }
        }
    }
    results
}

/// The run whose `key` is the median (the larger of the two middle ones for an even
/// count); `runs` is not empty.
pub fn median_by<T>(mut runs: Vec<T>, key: impl Fn(&T) -> f64) -> T {
    runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let middle = runs.len() / 2;
    runs.swap_remove(middle)
}

/// A JSON object of exactly `bytes` bytes (when `bytes` allows): `prefix`, padding, `"}`.
pub fn json_of_size(prefix: &str, bytes: usize) -> Vec<u8> {
    let pad = bytes.saturating_sub(prefix.len() + 2);
    let mut v = Vec::with_capacity(prefix.len() + pad + 2);
    v.extend_from_slice(prefix.as_bytes());
    v.resize(prefix.len() + pad, b'x');
    v.extend_from_slice(b"\"}");
    v
}

/// Where the release binaries are: this example lives in `target/release/examples`;
/// `BENCH_HOOKBRIDGE_BIN` names another hookbridge binary to measure (`scripts/bench-ab`
/// alternates two builds).
struct Binaries {
    hookbridge: PathBuf,
    examples: PathBuf,
    tansu: PathBuf,
}

impl Binaries {
    fn locate() -> std::result::Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
        let examples = exe.parent().ok_or("no examples directory")?.to_path_buf();
        let release = examples.parent().ok_or("no release directory")?;
        let tansu = std::env::var("TANSU_BIN")
            .map_err(|_| "TANSU_BIN is not set (scripts/bench sets it)".to_string())?;
        let hookbridge = std::env::var_os("BENCH_HOOKBRIDGE_BIN")
            .filter(|p| !p.is_empty())
            .map_or_else(|| release.join("hookbridge"), PathBuf::from);
        Ok(Binaries {
            hookbridge,
            examples,
            tansu: PathBuf::from(tansu),
        })
    }

    fn example(&self, name: &str) -> PathBuf {
        self.examples.join(name)
    }
}

/// Everything a run shares.
struct Bench {
    settings: Settings,
    bin: Binaries,
    dir: PathBuf,
    /// The egress targets' broker (each ingress target starts its own).
    broker: Broker,
    body_file: PathBuf,
    signature: String,
    secret: String,
}

impl Bench {
    fn webhook(&self) -> Webhook<'_> {
        Webhook {
            body_file: &self.body_file,
            signature: &self.signature,
        }
    }

    async fn ingress_target(&self, mut process: Process, url: &str) -> Result<ingress::Measured> {
        let warmup = self.settings.warmup();
        let webhook = self.webhook();
        ingress::measure(&mut process, url, self.settings.load(), warmup, &webhook).await
    }

    /// Starts the baseline example `name` listening on a free port (plus `args`), logging
    /// as `log`; returns it with its URL.
    async fn start_server(
        &self,
        name: &str,
        log: &str,
        args: &[&str],
    ) -> Result<(Process, String)> {
        let addr = process::free_addr()?;
        let listen = addr.to_string();
        let mut all_args = vec!["--listen", listen.as_str()];
        all_args.extend_from_slice(args);
        let mut p = Process::start(log, &self.bin.example(name), &all_args, &[], &self.dir)?;
        p.wait_port(addr, ingress::START_TIMEOUT).await?;
        Ok((p, format!("http://{addr}/")))
    }

    /// One run of `target`, started anew (on a new broker, for one that produces), its
    /// logs named with `run`.
    async fn ingress_once(
        &self,
        target: IngressTarget,
        run: Option<usize>,
    ) -> Result<ingress::Measured> {
        let named = |name: &str| run.map_or_else(|| name.to_string(), |i| format!("{name}-{i}"));
        match target {
            IngressTarget::Plain => {
                let (p, url) =
                    (self.start_server("baseline-http200", &named("baseline-http200"), &[]))
                        .await?;
                self.ingress_target(p, &url).await
            }
            IngressTarget::Bridge(linger_ms) => {
                let name = named(&format!("bridge-{linger_ms}"));
                let broker = self
                    .ingress_broker(&format!("tansu-{name}"), BRIDGE_TOPIC)
                    .await?;
                let (p, url) = self.start_bridge(&broker, &name, linger_ms).await?;
                self.ingress_target(p, &url).await
            }
            IngressTarget::Hookbridge => {
                let (_broker, hb, url) =
                    (self.start_hookbridge_ingress(&named("hookbridge-ingress"))).await?;
                self.ingress_target(hb.process, &url).await
            }
        }
    }

    /// A new broker for one ingress target, with `topic` created, logging as `name`.
    async fn ingress_broker(&self, name: &str, topic: &str) -> Result<Broker> {
        let broker = Broker::start(&self.bin.tansu, name, &self.dir).await?;
        broker.create_topic(topic, self.settings.partitions)?;
        Ok(broker)
    }

    /// The bridge baseline at `linger_ms`, producing to [`BRIDGE_TOPIC`] on `broker`,
    /// logging as `log`.
    async fn start_bridge(
        &self,
        broker: &Broker,
        log: &str,
        linger_ms: u32,
    ) -> Result<(Process, String)> {
        let (brokers, linger) = (broker.addr(), linger_ms.to_string());
        let args = [
            "--brokers",
            &brokers,
            "--topic",
            BRIDGE_TOPIC,
            "--linger-ms",
            &linger,
        ];
        self.start_server("baseline-bridge", log, &args).await
    }

    /// The limit's latency at half its maximum, in a new run of the same bridge.
    async fn bridge_at_half(&self, linger_ms: u32, max: f64) -> Result<ingress::HalfRate> {
        let name = format!("bridge-{linger_ms}-half");
        let broker = self
            .ingress_broker(&format!("tansu-{name}"), BRIDGE_TOPIC)
            .await?;
        let (mut p, url) = self.start_bridge(&broker, &name, linger_ms).await?;
        self.at_half(&mut p, &url, max).await
    }

    /// A new run of a target whose maximum was `max`, at half that rate.
    async fn at_half(&self, p: &mut Process, url: &str, max: f64) -> Result<ingress::HalfRate> {
        let warmup = self.settings.warmup();
        let webhook = self.webhook();
        ingress::at_rate(
            p,
            url,
            self.settings.load(),
            warmup,
            &webhook,
            max / 2.0,
            self.settings.repeat,
        )
        .await
    }

    /// hookbridge verifying GitHub webhooks on a new broker, its files in the directory
    /// `run`; returns the broker with it, to be dropped after the measurement.
    async fn start_hookbridge_ingress(
        &self,
        run: &str,
    ) -> Result<(Broker, hookbridge::Hookbridge, String)> {
        let topic = "bench-ingress-hookbridge";
        let broker = self.ingress_broker(&format!("tansu-{run}"), topic).await?;
        let dir = self.dir.join(run);
        let hb = hookbridge::start(
            &self.bin.hookbridge,
            &dir,
            "hookbridge-ingress",
            &broker.addr(),
            &hookbridge::github_source(topic),
            &self.secret,
        )
        .await?;
        let url = format!("http://{}{}", hb.webhooks, hookbridge::SOURCE_PATH);
        Ok((broker, hb, url))
    }

    /// hookbridge's latency at half its maximum, in a new run on a new broker, as the
    /// limit's is measured.
    async fn hookbridge_at_half(&self, max: f64) -> Result<ingress::HalfRate> {
        let (_broker, mut hb, url) = self
            .start_hookbridge_ingress("hookbridge-ingress-half")
            .await?;
        self.at_half(&mut hb.process, &url, max).await
    }

    /// The ingress targets the rows name, in report order.
    fn ingress_targets(&self) -> Vec<IngressTarget> {
        let rows = self.settings.rows;
        let mut targets = Vec::new();
        if rows.has("a") {
            targets.push(IngressTarget::Plain);
        }
        for linger in BRIDGE_LINGERS_MS {
            if rows.has("b") || (rows.has("b-1") && linger == 1) {
                targets.push(IngressTarget::Bridge(linger));
            }
        }
        if rows.has("c") {
            targets.push(IngressTarget::Hookbridge);
        }
        targets
    }

    /// Every ingress target once per round, each run on a new process (and broker), so
    /// the machine's drift over the minutes of a run weighs on hookbridge and its limit
    /// alike: the ratios are then taken round by round. Then the latency at half rate of
    /// the limit and of hookbridge. A target whose run fails is not run again.
    async fn run_ingress(&self, report: &mut Report) {
        let targets = self.ingress_targets();
        let targets = &targets;
        let results = in_rounds(targets.len(), &self.settings.runs(), |i, run| async move {
            let m = self.ingress_once(targets[i], run).await?;
            report::progress(&targets[i].label(), run, m.max.rate(), m.cpu_per_10k, None);
            Ok(m)
        })
        .await;
        let first = report.ingress.len();
        for (target, result) in targets.iter().zip(results) {
            let rounds = (result.iter().flatten()).map(Round::of).collect();
            let row =
                IngressRow::new(&target.label(), result.map(ingress::median)).in_rounds(rounds);
            report.ingress.push(match target {
                IngressTarget::Plain => row,
                IngressTarget::Bridge(_) => row.limit_of("(b)"),
                IngressTarget::Hookbridge => row.against("(b)"),
            });
        }
        // Latency at half rate is asked of the limit only: more fixed-rate runs of the
        // slower lingers would say nothing the fastest one does not.
        if let Some(i) = report::fastest(&report.ingress, "(b)") {
            if let IngressTarget::Bridge(linger) = targets[i - first] {
                self.half_rate(report, i, "(b) at half rate", |max| {
                    self.bridge_at_half(linger, max)
                })
                .await;
            }
        }
        if let Some(i) = targets
            .iter()
            .position(|t| matches!(t, IngressTarget::Hookbridge))
        {
            (self.half_rate(report, first + i, "(c) hookbridge at half rate", |max| {
                self.hookbridge_at_half(max)
            }))
            .await;
        }
    }

    /// The half-rate run of the measured row `i`, by `at_half(its maximum rate)`.
    async fn half_rate<'s, F>(
        &'s self,
        report: &mut Report,
        i: usize,
        what: &str,
        at_half: impl FnOnce(f64) -> F,
    ) where
        F: std::future::Future<Output = Result<ingress::HalfRate>> + 's,
    {
        let Some(m) = report.ingress[i].measured_mut() else {
            return;
        };
        match at_half(m.max.rate()).await {
            Ok(half) => m.half = Some(half),
            Err(e) => report.failures.push(format!("{what}: {e}")),
        }
    }
}

/// An ingress target; each run starts it anew.
#[derive(Debug, Clone, Copy)]
enum IngressTarget {
    Plain,
    /// The bridge baseline at this linger.ms.
    Bridge(u32),
    Hookbridge,
}

impl IngressTarget {
    fn label(self) -> String {
        match self {
            IngressTarget::Plain => "(a) plain 200 server (axum)".into(),
            IngressTarget::Bridge(linger) => {
                format!("(b) axum → rdkafka, 200 after ack, linger.ms = {linger}")
            }
            IngressTarget::Hookbridge => "(c) hookbridge, GitHub HMAC verified".into(),
        }
    }
}

fn prepare(settings: Settings, dir: &Path) -> Result<(PathBuf, String, String)> {
    let body = json_of_size("{\"action\":\"bench\",\"pad\":\"", settings.body_bytes);
    let body_file = dir.join("webhook.json");
    std::fs::write(&body_file, &body).map_err(BenchError::io("writing the webhook body"))?;
    let secret = format!("bench-{}", std::process::id());
    let tag = ::hookbridge::verify::crypto::hmac(
        ::hookbridge::verify::crypto::Algorithm::Sha256,
        secret.as_bytes(),
        &[&body],
    )
    .ok_or_else(|| BenchError::Tool("signing the webhook failed".into()))?;
    Ok((body_file, format!("sha256={}", tag.to_hex()), secret))
}

async fn run(settings: Settings, bin: Binaries, dir: &Path) -> Result<Report> {
    let (body_file, signature, secret) = prepare(settings, dir)?;
    let broker = Broker::start(&bin.tansu, "tansu", dir).await?;
    let bench = Bench {
        settings,
        bin,
        dir: dir.to_path_buf(),
        broker,
        body_file,
        signature,
        secret,
    };
    let mut report = Report::new(settings);
    // A side none of whose rows is named does not run (nor fill its topics).
    if settings.ingress && settings.rows.any_ingress() {
        bench.run_ingress(&mut report).await;
    }
    if settings.egress && settings.rows.any_egress() {
        if let Err(e) = bench.run_egress(&mut report).await {
            report.failures.push(e.to_string());
        }
    }
    Ok(report)
}

fn main() -> ExitCode {
    process::without_huge_pages();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(bench_main()),
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bench_main() -> ExitCode {
    let (settings, bin) = match Settings::from_env().and_then(|s| Ok((s, Binaries::locate()?))) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    let tmp = match tempfile::Builder::new()
        .prefix("hookbridge-bench-")
        .tempdir()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bench: creating a temp dir: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = run(settings, bin, tmp.path()).await;
    let failed = result.as_ref().map_or(true, Report::failed);
    match result {
        Ok(report) => print!("{}", report.markdown()),
        Err(e) => eprintln!("bench: {e}"),
    }
    if !failed {
        return ExitCode::SUCCESS;
    }
    // The process logs are the first thing to read when a row failed.
    eprintln!("bench: logs kept in {}", tmp.keep().display());
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::{json_of_size, median_by, Rows};

    #[test]
    fn the_median_run_is_chosen_by_its_key_whole() {
        // (p99 ms, run number): the run is kept whole, not its key alone.
        let runs = vec![(9.0, 0), (3.0, 1), (5.0, 2), (1.0, 3), (7.0, 4)];
        assert_eq!(median_by(runs, |r| r.0), (5.0, 2));
        assert_eq!(median_by(vec![(2.0, 0), (1.0, 1)], |r| r.0), (2.0, 0));
        assert_eq!(median_by(vec![(4.0, 0)], |r| r.0), (4.0, 0));
    }

    #[test]
    fn rows_are_chosen_by_name_and_h_brings_d() {
        let all = Rows::parse("").unwrap();
        assert!(Rows::NAMES.iter().all(|n| all.has(n)));
        let some = Rows::parse("f, g").unwrap();
        assert!(some.has("f") && some.has("g") && !some.has("d") && !some.has("batcher"));
        let h = Rows::parse("h").unwrap();
        assert!(h.has("h") && h.has("d") && !h.has("e"));
        let ingress = Rows::parse("b-1,c").unwrap();
        assert!(ingress.has("b-1") && ingress.has("c") && !ingress.has("b") && !ingress.has("a"));
        assert!(ingress.any_ingress() && !ingress.any_egress());
        assert!(!some.any_ingress() && some.any_egress());
        assert!(all.any_ingress() && all.any_egress());
        let pair = Rows::parse("d-stream,e-key").unwrap();
        assert!(pair.has("d-stream") && pair.has("e-key") && !pair.has("d") && !pair.has("e"));
        assert!(Rows::parse("f,x").unwrap_err().contains("\"x\""));
    }

    #[test]
    fn webhook_bodies_have_the_asked_size_and_are_json() {
        let body = json_of_size("{\"n\":7,\"pad\":\"", 1024);
        assert_eq!(body.len(), 1024);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["n"], 7);
    }
}
