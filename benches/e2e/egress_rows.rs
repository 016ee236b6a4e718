//! The egress rows of `scripts/bench`: the receiver's own ceiling, the forwarder (d) read
//! in several ways, consume-only (f), hookbridge sinks (e) with each ordering and with jq,
//! batched (g), HTTP/2 over TLS (h), and hookbridge's memory with an idle and a stalled
//! destination. Which limit each row is compared with is set here (see `report.rs`).
//! The batched rows and their limit read a larger topic of their own, and repeated runs
//! go in rounds of every row ([`Bench::measure_rows`]).

use std::path::Path;
use std::time::Duration;

use crate::connectors::SinkToml;
use crate::error::{BenchError, Result};
use crate::process::{self, Process};
use crate::receiver::Receiver;
use crate::report::{self, EgressRow, Footprint, Report, Round};
use crate::tls::Pki;
use crate::wrk;
use crate::{egress, hookbridge, Bench};

/// How the forwarder baseline reads (`--poll`) and with which librdkafka properties; the
/// fastest is the egress limit (d).
const FORWARDERS: [(&str, &str, &[&str]); 3] = [
    ("StreamConsumer, librdkafka's fetch defaults", "stream", &[]),
    ("StreamConsumer, large fetches", "stream", LARGE_FETCHES),
    (
        "BaseConsumer poll thread, large fetches",
        "thread",
        LARGE_FETCHES,
    ),
];

/// Fetch settings for a consumer behind a backlog: fewer, larger fetch responses, and
/// enough queued to hold the whole default run (librdkafka's defaults are 1 B, 1 MiB per
/// partition, 100 000 messages and 64 MiB).
const LARGE_FETCHES: &[&str] = &[
    "fetch.min.bytes=1048576",
    "fetch.wait.max.ms=100",
    "max.partition.fetch.bytes=4194304",
    "queued.min.messages=1000000",
    "queued.max.messages.kbytes=262144",
];

/// A jq filter true for every benchmark record, and a transform that rebuilds it: the
/// rows then deliver every record and show what evaluating jq costs.
const FILTER: &str = ".n >= 0";
const TRANSFORM: &str = "{n: .n, pad: .pad}";

/// The batched rows' records per request.
const BATCH_RECORDS: usize = 100;

/// A topic the egress rows read, and the records it holds.
#[derive(Clone, Copy)]
struct Source<'a> {
    topic: &'a str,
    records: u64,
}

/// Where a forwarder baseline delivers: a receiver, and the CA to trust for HTTPS.
struct Destination<'a> {
    receiver: &'a Receiver,
    ca: Option<&'a Path>,
}

/// How one egress row is measured.
enum Target<'a> {
    /// The minimal program reading `from` and sending to `to` (consume-only without it),
    /// reading with `poll` and librdkafka `properties`, `batch` records per request.
    Baseline {
        from: Source<'a>,
        to: Option<&'a Destination<'a>>,
        poll: &'a str,
        properties: &'a [&'a str],
        batch: usize,
    },
    /// hookbridge running `sink`, delivering the `records` of its topic to `receiver`.
    Hookbridge {
        sink: SinkToml,
        receiver: &'a Receiver,
        records: u64,
    },
}

/// A row to measure: how it reads in the report, the name of its consumer group and log
/// directory, what runs, and the limit it competes to be or is compared with.
struct Planned<'a> {
    label: String,
    name: String,
    target: Target<'a>,
    role: Role,
}

enum Role {
    LimitOf(&'static str),
    Against(&'static str),
}

impl Bench {
    /// Measures `rows` in rounds: each round runs every row once, in order, and a row is
    /// its run of median rate. A limit and the rows compared with it are then measured
    /// across the same stretch of time, so the machine's drift over the minutes of a run
    /// (other work, the broker's memory, thermal state) weighs on both alike, not on
    /// whichever ran last. A row whose run fails is not run again.
    async fn measure_rows(&self, rows: Vec<Planned<'_>>) -> Vec<EgressRow> {
        let planned = &rows;
        let results = crate::in_rounds(rows.len(), &self.settings.runs(), |i, run| async move {
            let m = self.run_once(&planned[i], run).await?;
            crate::report::progress(&planned[i].name, run, m.rate(), m.cpu_per_10k, m.beside);
            Ok(m)
        })
        .await;
        (rows.into_iter().zip(results))
            .map(|(row, result)| {
                let rounds = (result.iter().flatten()).map(Round::of).collect();
                let measured =
                    EgressRow::new(&row.label, result.map(egress::median)).in_rounds(rounds);
                match row.role {
                    Role::LimitOf(name) => measured.limit_of(name),
                    Role::Against(name) => measured.against(name),
                }
            })
            .collect()
    }

    /// One run of `row` (`run`: its number when repeated); each run reads its topic from
    /// the start, in a consumer group of its own.
    async fn run_once(&self, row: &Planned<'_>, run: Option<usize>) -> Result<egress::Measured> {
        let name = run.map_or_else(|| row.name.clone(), |i| format!("{}-{i}", row.name));
        match &row.target {
            Target::Baseline {
                from,
                to,
                poll,
                properties,
                batch,
            } => (self.egress_baseline(&name, *from, *to, poll, properties, *batch)).await,
            Target::Hookbridge {
                sink,
                receiver,
                records,
            } => {
                let sink = if run.is_some() {
                    sink.clone().group_id(&name)
                } else {
                    sink.clone()
                };
                (self.egress_hookbridge(&row.name, &name, sink, receiver, *records)).await
            }
        }
    }

    /// One run of the forwarder baseline (`to` a receiver) or, without one, consume-only,
    /// in consumer group `group`; with `batch` > 1 the forwarder sends JSON arrays of that
    /// many records.
    async fn egress_baseline(
        &self,
        group: &str,
        from: Source<'_>,
        to: Option<&Destination<'_>>,
        poll: &str,
        properties: &[&str],
        batch: usize,
    ) -> Result<egress::Measured> {
        // A batcher sends only whole batches: the records past the last one are not counted.
        let batch = batch.max(1);
        let expected = from.records / batch as u64 * batch as u64;
        if expected == 0 {
            return Err(BenchError::Tool(format!(
                "{group}: fewer records than one batch of {batch}"
            )));
        }
        let (brokers, records) = (self.broker.addr(), expected.to_string());
        let (concurrency, batch) = (self.settings.concurrency.to_string(), batch.to_string());
        let mut args = vec![
            "--brokers",
            &brokers,
            "--topic",
            from.topic,
            "--in-flight",
            &concurrency,
            "--poll",
            poll,
            "--expect",
            &records,
            "--batch",
            &batch,
            "--group",
            group,
        ];
        for p in properties {
            args.extend(["--property", p]);
        }
        let ca = to
            .and_then(|d| d.ca)
            .map(|p| p.to_string_lossy().into_owned());
        if let Some(d) = to {
            args.extend(["--url", &d.receiver.url]);
        }
        if let Some(ca) = &ca {
            args.extend(["--ca", ca]);
        }
        let exe = self.bin.example("baseline-consumer");
        let timeout = Duration::from_secs(self.settings.egress_timeout);
        if let Some(d) = to {
            d.receiver.reset(expected);
        }
        let mut p = Process::start(group, &exe, &args, &[], &self.dir)?;
        match to {
            Some(d) => {
                let progress = || d.receiver.progress();
                egress::measure(&mut p, &self.broker, progress, expected, timeout).await
            }
            None => {
                let mut log = egress::ConsumeLog::new(&p);
                egress::measure(&mut p, &self.broker, || log.progress(), expected, timeout).await
            }
        }
    }

    /// One run of `sink` (the connector named `name`, its files in directory `dir`)
    /// delivering the `records` of its topic to `receiver`.
    async fn egress_hookbridge(
        &self,
        name: &str,
        dir: &str,
        sink: SinkToml,
        receiver: &Receiver,
        records: u64,
    ) -> Result<egress::Measured> {
        receiver.reset(records);
        let mut hb = hookbridge::start(
            &self.bin.hookbridge,
            &self.dir.join(dir),
            name,
            &self.broker.addr(),
            &sink.render(),
            &self.secret,
        )
        .await?;
        let timeout = Duration::from_secs(self.settings.egress_timeout);
        let progress = || receiver.progress();
        let mut m =
            egress::measure(&mut hb.process, &self.broker, progress, records, timeout).await?;
        m.refetched = hb.refetched(name).await;
        Ok(m)
    }

    /// A key-ordered hookbridge sink named `name` towards `receiver`.
    fn sink(&self, name: &str, topic: &str, receiver: &Receiver, ordering: &str) -> SinkToml {
        hookbridge::sink(
            name,
            topic,
            &receiver.url,
            self.settings.concurrency,
            ordering,
        )
    }

    /// wrk straight at the receiver, after a warm-up: its own ceiling.
    async fn receiver_ceiling(&self, receiver: &Receiver) -> Result<wrk::Summary> {
        receiver.reset(u64::MAX);
        let warmup = self.settings.warmup();
        wrk::run(&receiver.url, warmup, &self.webhook(), None).await?;
        wrk::run(&receiver.url, self.settings.load(), &self.webhook(), None).await
    }

    /// Peak RSS of a hookbridge sink started on `topic` towards `url` after `settle`, and
    /// the CPU it used during `settle` (ms per second).
    async fn sink_footprint(
        &self,
        name: &str,
        topic: &str,
        url: &str,
        settle: Duration,
    ) -> Result<Footprint> {
        let sink = hookbridge::sink(name, topic, url, self.settings.concurrency, "key").render();
        let hb = hookbridge::start(
            &self.bin.hookbridge,
            &self.dir.join(name),
            name,
            &self.broker.addr(),
            &sink,
            &self.secret,
        )
        .await?;
        let cpu = hb.process.cpu_seconds()?;
        tokio::time::sleep(settle).await;
        let cpu = hb.process.cpu_seconds()? - cpu;
        Ok(Footprint {
            peak_rss_mib: hb.process.peak_rss_mib()?,
            cpu_ms_per_s: cpu * 1000.0 / settle.as_secs_f64(),
        })
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
                self.sink_footprint(
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
                self.sink_footprint(
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

    /// Creates `source`'s topic and fills it with its records.
    async fn fill(&self, source: Source<'_>) -> Result<()> {
        self.broker
            .create_topic(source.topic, self.settings.partitions)?;
        let records = egress::Records {
            count: source.records,
            bytes: self.settings.body_bytes,
            keys: self.settings.keys,
        };
        eprintln!("filling {} with {} records …", source.topic, records.count);
        egress::fill(&self.broker.addr(), source.topic, records).await
    }

    pub(crate) async fn run_egress(&self, report: &mut Report) -> Result<()> {
        let rows = self.settings.rows;
        let main = Source {
            topic: "bench-egress",
            records: self.settings.records,
        };
        let topic = main.topic;
        self.fill(main).await?;
        let batched = Source {
            topic: "bench-egress-batched",
            records: self.settings.batched_records,
        };
        if rows.has("f") || rows.has("batcher") || rows.has("g") {
            self.fill(batched).await?;
        }
        let receiver = Receiver::start(process::free_addr()?).await?;
        if rows.has("receiver") {
            report.receiver.push((
                "HTTP/1.1, axum, counting records".into(),
                self.receiver_ceiling(&receiver).await,
            ));
        }
        let plain = Destination {
            receiver: &receiver,
            ca: None,
        };
        let mut planned = Vec::new();
        let forwarders = if rows.has("d") {
            &FORWARDERS[..]
        } else if rows.has("d-stream") {
            &FORWARDERS[..1]
        } else {
            &[]
        };
        for (i, &(how, poll, properties)) in forwarders.iter().enumerate() {
            planned.push(Planned {
                label: format!("(d) rdkafka → reqwest, no order, no commits; {how}"),
                name: format!("baseline-forward-{i}"),
                target: Target::Baseline {
                    from: main,
                    to: Some(&plain),
                    poll,
                    properties,
                    batch: 1,
                },
                role: Role::LimitOf("(d)"),
            });
        }
        let consume_only: &[&str] = if rows.has("f") {
            &["thread", "stream"]
        } else {
            &[]
        };
        for &poll in consume_only {
            planned.push(Planned {
                label: format!("(f) rdkafka consume-only, {poll} poll, large fetches"),
                name: format!("baseline-consume-{poll}"),
                target: Target::Baseline {
                    from: batched,
                    to: None,
                    poll,
                    properties: LARGE_FETCHES,
                    batch: 1,
                },
                role: Role::LimitOf("(f)"),
            });
        }
        let orderings: &[&str] = if rows.has("e") {
            &["key", "none", "partition"]
        } else if rows.has("e-key") {
            &["key"]
        } else {
            &[]
        };
        for ordering in orderings {
            let name = format!("hookbridge-{ordering}");
            planned.push(Planned {
                label: format!("(e) hookbridge, ordering = \"{ordering}\""),
                target: Target::Hookbridge {
                    sink: self.sink(&name, topic, &receiver, ordering),
                    receiver: &receiver,
                    records: main.records,
                },
                name,
                role: Role::Against("(d)"),
            });
        }
        let shaped = [
            (
                "filter",
                "(e) hookbridge, key order, jq filter (true for every record)",
            ),
            ("transform", "(e) hookbridge, key order, jq transform"),
        ];
        for (what, label) in shaped.into_iter().filter(|_| rows.has("jq")) {
            let name = format!("hookbridge-{what}");
            let sink = self.sink(&name, topic, &receiver, "key");
            let sink = match what {
                "filter" => sink.filter(FILTER),
                _ => sink.transform(TRANSFORM),
            };
            planned.push(Planned {
                label: label.to_owned(),
                name,
                target: Target::Hookbridge {
                    sink,
                    receiver: &receiver,
                    records: main.records,
                },
                role: Role::Against("(d)"),
            });
        }
        let batchers = if rows.has("batcher") {
            &FORWARDERS[..]
        } else {
            &[]
        };
        for (i, &(how, poll, properties)) in batchers.iter().enumerate() {
            planned.push(Planned {
                label: format!(
                    "(g) rdkafka → JSON array of {BATCH_RECORDS} → reqwest, no order, no commits; {how}"
                ),
                name: format!("baseline-batch-{i}"),
                target: Target::Baseline {
                    from: batched,
                    to: Some(&plain),
                    poll,
                    properties,
                    batch: BATCH_RECORDS,
                },
                role: Role::Against("(f)"),
            });
        }
        if rows.has("g") {
            let name = "hookbridge-batch";
            let batch = format!("{{ max_records = {BATCH_RECORDS}, format = \"json-array\" }}");
            planned.push(Planned {
                label: format!(
                    "(g) hookbridge, key order, batches of {BATCH_RECORDS} as a JSON array"
                ),
                name: name.to_owned(),
                target: Target::Hookbridge {
                    sink: (self.sink(name, batched.topic, &receiver, "key")).set("batch", &batch),
                    receiver: &receiver,
                    records: batched.records,
                },
                role: Role::Against("(f)"),
            });
        }
        let first = report.egress.len();
        let measured = self.measure_rows(planned).await;
        report.egress.extend(measured);
        let limit = report::fastest(&report.egress, "(d)").map(|i| FORWARDERS[i - first]);
        if rows.has("h") {
            if let Err(e) = self.run_http2(report, main, limit).await {
                report.failures.push(format!("HTTP/2 rows: {e}"));
            }
        }
        if rows.has("memory") {
            self.run_memory(report, topic, &receiver).await;
        }
        Ok(())
    }

    /// (h): the fastest forwarder `limit` and a key-ordered hookbridge sink, both to an
    /// HTTPS receiver that speaks only HTTP/2.
    async fn run_http2(
        &self,
        report: &mut Report,
        from: Source<'_>,
        limit: Option<(&str, &str, &[&str])>,
    ) -> Result<()> {
        let pki = Pki::make(&self.dir.join("pki"))?;
        let ca = pki.ca();
        let receiver = Receiver::start_h2(process::free_addr()?, &pki).await?;
        let h2 = Destination {
            receiver: &receiver,
            ca: Some(&ca),
        };
        let (how, poll, properties) = limit.unwrap_or(FORWARDERS[0]);
        let name = "hookbridge-h2";
        let ca = ca.to_string_lossy();
        let planned = vec![
            Planned {
                label: format!("(h) rdkafka → reqwest, HTTP/2 over TLS; {how}"),
                name: "baseline-forward-h2".into(),
                target: Target::Baseline {
                    from,
                    to: Some(&h2),
                    poll,
                    properties,
                    batch: 1,
                },
                role: Role::LimitOf("(h)"),
            },
            Planned {
                label: "(h) hookbridge, key order, HTTP/2 over TLS".into(),
                name: name.into(),
                target: Target::Hookbridge {
                    sink: (self.sink(name, from.topic, &receiver, "key")).tls(&[("ca", &ca)]),
                    receiver: &receiver,
                    records: from.records,
                },
                role: Role::Against("(h)"),
            },
        ];
        let measured = self.measure_rows(planned).await;
        report.egress.extend(measured);
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
