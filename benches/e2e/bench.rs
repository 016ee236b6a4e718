//! `scripts/bench`: hookbridge against minimal programs that do the same job with nothing
//! else, in one run, under one load generator, on one Tansu broker, all on loopback.
//!
//! Ingress (wrk, the same signed 1 KiB webhook on every request): (a) a plain axum 200
//! server, (b) axum → rdkafka answering after `acks=all`, (c) hookbridge verifying GitHub
//! HMAC. Egress (records pre-produced once, delivered to one counting receiver): (d)
//! rdkafka consumer → reqwest, unordered, no commits, (e) hookbridge sinks with
//! `ordering` = key, none and partition. Prints markdown tables with the hookbridge /
//! baseline ratios. Sizes come from `BENCH_*` environment variables (see [`Settings`]).

mod broker;
// The test kit's connector builders: the connector files the benchmark runs.
#[path = "../../tests/it/support/connectors.rs"]
mod connectors;
mod egress;
mod error;
mod hookbridge;
mod ingress;
mod process;
mod receiver;
mod report;
mod wrk;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use broker::Broker;
use error::{BenchError, Result};
use process::Process;
use receiver::Receiver;
use report::{EgressRow, IngressRow, Report};
use wrk::{Load, Webhook};

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
    fn from_env() -> std::result::Result<Self, String> {
        let only = std::env::var("BENCH_ONLY").unwrap_or_default();
        if !["", "ingress", "egress"].contains(&only.as_str()) {
            return Err(format!("BENCH_ONLY={only:?}: use ingress or egress"));
        }
        Ok(Settings {
            seconds: env_or("BENCH_SECONDS", 10)?.max(1),
            warmup_seconds: env_or("BENCH_WARMUP_SECONDS", 2)?.max(1),
            threads: env_or("BENCH_THREADS", 2)?.max(1),
            connections: env_or("BENCH_CONNECTIONS", 64)?.max(1),
            body_bytes: env_or("BENCH_BODY_BYTES", 1024)?,
            records: env_or("BENCH_RECORDS", 100_000)?.max(2),
            partitions: env_or("BENCH_PARTITIONS", 8)?.max(1),
            keys: env_or("BENCH_KEYS", 1000)?.max(1),
            concurrency: env_or("BENCH_CONCURRENCY", 64)?.max(1),
            egress_timeout: env_or("BENCH_EGRESS_TIMEOUT", 300)?,
            ingress: only != "egress",
            egress: only != "ingress",
        })
    }

    fn load(&self) -> Load {
        Load {
            threads: self.threads,
            connections: self.connections,
            seconds: self.seconds,
        }
    }
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

/// Where the release binaries are: this example lives in `target/release/examples`.
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
        Ok(Binaries {
            hookbridge: release.join("hookbridge"),
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

    async fn ingress_target(
        &self,
        mut process: Process,
        url: &str,
        half_rate: bool,
    ) -> Result<ingress::Measured> {
        let warmup = Load {
            seconds: self.settings.warmup_seconds,
            ..self.settings.load()
        };
        let webhook = self.webhook();
        ingress::measure(
            &mut process,
            url,
            self.settings.load(),
            warmup,
            &webhook,
            half_rate,
        )
        .await
    }

    /// Starts the baseline example `name` listening on a free port (plus `args`) and
    /// measures it.
    async fn baseline_server(
        &self,
        name: &str,
        args: &[&str],
        half_rate: bool,
    ) -> Result<ingress::Measured> {
        let addr = process::free_addr()?;
        let listen = addr.to_string();
        let mut all_args = vec!["--listen", listen.as_str()];
        all_args.extend_from_slice(args);
        let mut p = Process::start(name, &self.bin.example(name), &all_args, &[], &self.dir)?;
        p.wait_port(addr, ingress::START_TIMEOUT).await?;
        self.ingress_target(p, &format!("http://{addr}/"), half_rate)
            .await
    }

    async fn plain(&self) -> Result<ingress::Measured> {
        self.baseline_server("baseline-http200", &[], false).await
    }

    async fn bridge(&self) -> Result<ingress::Measured> {
        let topic = "bench-ingress-baseline";
        self.broker.create_topic(topic, self.settings.partitions)?;
        let brokers = self.broker.addr();
        let args = ["--brokers", brokers.as_str(), "--topic", topic];
        self.baseline_server("baseline-bridge", &args, true).await
    }

    async fn hookbridge_ingress(&self) -> Result<ingress::Measured> {
        let topic = "bench-ingress-hookbridge";
        self.broker.create_topic(topic, self.settings.partitions)?;
        let dir = self.dir.join("hookbridge-ingress");
        let hb = hookbridge::start(
            &self.bin.hookbridge,
            &dir,
            "hookbridge-ingress",
            &self.broker.addr(),
            &hookbridge::github_source(topic),
            &self.secret,
        )
        .await?;
        let url = format!("http://{}{}", hb.webhooks, hookbridge::SOURCE_PATH);
        self.ingress_target(hb.process, &url, true).await
    }

    async fn run_ingress(&self, report: &mut Report) {
        report.ingress.push(IngressRow::new(
            "(a) plain 200 server (axum)",
            self.plain().await,
        ));
        report.ingress.push(IngressRow::new(
            "(b) axum → rdkafka, 200 after ack",
            self.bridge().await,
        ));
        report.ingress.push(IngressRow::new(
            "(c) hookbridge, GitHub HMAC verified",
            self.hookbridge_ingress().await,
        ));
    }

    async fn egress_baseline(&self, topic: &str, receiver: &Receiver) -> Result<egress::Measured> {
        receiver.reset(self.settings.records);
        let concurrency = self.settings.concurrency.to_string();
        let mut p = Process::start(
            "baseline-consumer",
            &self.bin.example("baseline-consumer"),
            &[
                "--brokers",
                &self.broker.addr(),
                "--topic",
                topic,
                "--group",
                "bench-baseline",
                "--url",
                &receiver.url,
                "--in-flight",
                &concurrency,
            ],
            &[],
            &self.dir,
        )?;
        self.egress_measure(&mut p, receiver).await
    }

    async fn egress_hookbridge(
        &self,
        topic: &str,
        receiver: &Receiver,
        ordering: &str,
    ) -> Result<egress::Measured> {
        receiver.reset(self.settings.records);
        let name = format!("hookbridge-{ordering}");
        let sink = hookbridge::sink(
            &name,
            topic,
            &receiver.url,
            self.settings.concurrency,
            ordering,
        );
        let mut hb = hookbridge::start(
            &self.bin.hookbridge,
            &self.dir.join(&name),
            &name,
            &self.broker.addr(),
            &sink,
            &self.secret,
        )
        .await?;
        self.egress_measure(&mut hb.process, receiver).await
    }

    async fn egress_measure(
        &self,
        p: &mut Process,
        receiver: &Receiver,
    ) -> Result<egress::Measured> {
        let timeout = Duration::from_secs(self.settings.egress_timeout);
        egress::measure(p, receiver, self.settings.records, timeout).await
    }

    /// Peak RSS of a hookbridge sink started on `topic` towards `url`, after `settle`.
    async fn sink_rss(&self, name: &str, topic: &str, url: &str, settle: Duration) -> Result<f64> {
        let sink = hookbridge::sink(name, topic, url, self.settings.concurrency, "key");
        let hb = hookbridge::start(
            &self.bin.hookbridge,
            &self.dir.join(name),
            name,
            &self.broker.addr(),
            &sink,
            &self.secret,
        )
        .await?;
        tokio::time::sleep(settle).await;
        hb.process.peak_rss_mib()
    }

    /// Memory: idle (a sink on an empty topic), and a destination that accepts
    /// connections but never answers while the full backlog waits.
    async fn run_memory(&self, report: &mut Report, backlog_topic: &str, receiver: &Receiver) {
        let idle_topic = "bench-idle";
        let idle = match self
            .broker
            .create_topic(idle_topic, self.settings.partitions)
        {
            Ok(()) => {
                self.sink_rss(
                    "hookbridge-idle",
                    idle_topic,
                    &receiver.url,
                    Duration::from_secs(5),
                )
                .await
            }
            Err(e) => Err(e),
        };
        report
            .memory
            .push(("hookbridge idle, one sink, no traffic".into(), idle));
        let stalled = match blackhole().await {
            Ok(url) => {
                self.sink_rss(
                    "hookbridge-stalled",
                    backlog_topic,
                    &url,
                    Duration::from_secs(20),
                )
                .await
            }
            Err(e) => Err(e),
        };
        report.memory.push((
            format!(
                "hookbridge, destination never answers, {} records waiting",
                self.settings.records
            ),
            stalled,
        ));
    }

    async fn run_egress(&self, report: &mut Report) -> Result<()> {
        let topic = "bench-egress";
        self.broker.create_topic(topic, self.settings.partitions)?;
        let records = egress::Records {
            count: self.settings.records,
            bytes: self.settings.body_bytes,
            keys: self.settings.keys,
        };
        eprintln!("filling {topic} with {} records …", records.count);
        egress::fill(&self.broker.addr(), topic, records).await?;
        let receiver = Receiver::start(process::free_addr()?).await?;
        report.egress.push(EgressRow::new(
            "(d) rdkafka → reqwest, no order, no commits",
            self.egress_baseline(topic, &receiver).await,
        ));
        for ordering in ["key", "none", "partition"] {
            let label = format!("(e) hookbridge, ordering = \"{ordering}\"");
            let measured = self.egress_hookbridge(topic, &receiver, ordering).await;
            report.egress.push(EgressRow::new(&label, measured));
        }
        self.run_memory(report, topic, &receiver).await;
        Ok(())
    }
}

/// A destination that accepts connections and never answers; returns its URL.
async fn blackhole() -> Result<String> {
    let listener = tokio::net::TcpListener::bind(process::free_addr()?)
        .await
        .map_err(BenchError::io("binding the stalled destination"))?;
    let addr = listener
        .local_addr()
        .map_err(BenchError::io("reading the stalled destination's address"))?;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    Ok(format!("http://{addr}/"))
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
    let broker = Broker::start(&bin.tansu, dir).await?;
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
    if settings.ingress {
        bench.run_ingress(&mut report).await;
    }
    if settings.egress {
        if let Err(e) = bench.run_egress(&mut report).await {
            report.failures.push(e.to_string());
        }
    }
    Ok(report)
}

#[tokio::main]
async fn main() -> ExitCode {
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
    use super::json_of_size;

    #[test]
    fn webhook_bodies_have_the_asked_size_and_are_json() {
        let body = json_of_size("{\"n\":7,\"pad\":\"", 1024);
        assert_eq!(body.len(), 1024);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["n"], 7);
    }
}
