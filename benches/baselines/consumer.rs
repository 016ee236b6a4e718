//! Baselines (d) and (f) of `scripts/bench`: the smallest Kafka → webhook forwarder, and
//! with no `--url` the smallest consumer (reads every record, does nothing else).
//!
//! The forwarder POSTs every record's value with reqwest, `--in-flight` at once, in no
//! particular order, and never commits or retries: the egress limit hookbridge's sinks
//! (which keep order, commit a watermark and retry) are compared with. Consume-only is the
//! ceiling of batched egress, where requests no longer cost per record.
//!
//! How it reads is a flag, so the benchmark can run several and take the fastest:
//! `--poll stream` is rdkafka's `StreamConsumer` polled on the runtime (a waker per empty
//! queue); `--poll thread` is a `BaseConsumer` blocking in `poll` on its own thread and
//! handing records to the runtime through a bounded channel (no waker, one hop).
//! `--property k=v` passes any librdkafka property (fetch sizes, queue depths). Rust
//! allocations go through mimalloc, as hookbridge's do.
//!
//! With `--batch N` the forwarder is the smallest batcher (the limit of batched egress
//! among programs that deliver): every N values, as they come, joined into one JSON array
//! body `[v1,v2,…]` (values are trusted to be JSON, nothing is checked) and POSTed. Only
//! whole batches are sent: a last short batch waits for more (the benchmark counts the
//! whole batches of its records).
//!
//! `baseline-consumer --brokers 127.0.0.1:9092 --topic T --group G [--url http://…]
//! [--in-flight 64] [--batch 100] [--poll stream|thread] [--property fetch.min.bytes=1048576]
//! [--ca FILE] [--expect N]`

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use futures::{Stream, StreamExt};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, ValueEnum)]
enum Poll {
    Stream,
    Thread,
}

#[derive(Parser)]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(long, env = "BASELINE_BROKERS")]
    brokers: String,
    /// Topic to read from the beginning.
    #[arg(long, env = "BASELINE_TOPIC")]
    topic: String,
    /// Consumer group (a new one reads from the earliest offset).
    #[arg(long, env = "BASELINE_GROUP")]
    group: String,
    /// Where every record is POSTed; without it, records are only read and counted.
    #[arg(long, env = "BASELINE_URL")]
    url: Option<String>,
    /// Requests in flight at once.
    #[arg(long, env = "BASELINE_IN_FLIGHT", default_value_t = 64)]
    in_flight: usize,
    /// Values per request, joined into a JSON array (1: each value is the body).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// How records are read (see the module doc).
    #[arg(long, value_enum, default_value_t = Poll::Stream)]
    poll: Poll,
    /// A librdkafka property `key=value`; repeatable.
    #[arg(long = "property", value_parser = property)]
    properties: Vec<(String, String)>,
    /// A PEM CA to trust for an `https://` URL besides the system roots.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// Consume-only: prints `consumed N in S s` once this many records were read.
    #[arg(long, default_value_t = u64::MAX)]
    expect: u64,
}

fn property(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

fn config(args: &Args) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &args.brokers)
        .set("group.id", &args.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // A new group's first assignment takes ~3 s instead of ~23 s on the test broker.
        .set("session.timeout.ms", "6000");
    for (k, v) in &args.properties {
        cfg.set(k, v);
    }
    cfg
}

type Values = std::pin::Pin<Box<dyn Stream<Item = Bytes>>>;

/// Record values, copied out so a request does not borrow librdkafka's buffer, as any
/// forwarder that keeps records in flight must. Consume errors are printed and skipped.
fn values(args: &Args) -> Result<Values, Box<dyn std::error::Error>> {
    let cfg = config(args);
    match args.poll {
        Poll::Stream => {
            let consumer: StreamConsumer = cfg.create()?;
            consumer.subscribe(&[&args.topic])?;
            let stream = futures::stream::unfold(consumer, |c| async move {
                let value = match c.recv().await {
                    Ok(m) => Some(Bytes::copy_from_slice(m.payload().unwrap_or_default())),
                    Err(e) => {
                        eprintln!("baseline-consumer: {e}");
                        None
                    }
                };
                Some((value, c))
            });
            Ok(Box::pin(stream.filter_map(std::future::ready)))
        }
        Poll::Thread => {
            let consumer: BaseConsumer = cfg.create()?;
            consumer.subscribe(&[&args.topic])?;
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(args.in_flight.max(1) * 16);
            std::thread::spawn(move || loop {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        let value = Bytes::copy_from_slice(m.payload().unwrap_or_default());
                        if tx.blocking_send(value).is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) => eprintln!("baseline-consumer: {e}"),
                    None => {}
                }
            });
            Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|v| (v, rx))
            })))
        }
    }
}

fn report_first() -> Instant {
    println!("first record");
    Instant::now()
}

fn report_done(n: u64, started: Instant) {
    println!("consumed {n} in {:.6} s", started.elapsed().as_secs_f64());
}

/// Consume-only with `--poll thread`: the poll loop counts on this thread, with no
/// channel, the least a consumer can do.
fn consume_polling(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let consumer: BaseConsumer = config(args).create()?;
    consumer.subscribe(&[&args.topic])?;
    let mut first: Option<Instant> = None;
    let mut n = 0u64;
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let started = *first.get_or_insert_with(report_first);
                std::hint::black_box(m.payload().map_or(0, <[u8]>::len));
                n += 1;
                if n == args.expect {
                    report_done(n, started);
                }
            }
            Some(Err(e)) => eprintln!("baseline-consumer: {e}"),
            None => {}
        }
    }
}

/// Consume-only with `--poll stream`: reads and counts; the clock starts at the first record.
async fn consume_only(records: impl Stream<Item = Bytes>, expect: u64) {
    let mut records = std::pin::pin!(records);
    let mut first: Option<Instant> = None;
    let mut n = 0u64;
    while let Some(value) = records.next().await {
        let started = *first.get_or_insert_with(report_first);
        std::hint::black_box(value.len());
        n += 1;
        if n == expect {
            report_done(n, started);
        }
    }
}

async fn forward(
    records: impl Stream<Item = Bytes> + 'static,
    url: &str,
    args: &Args,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.in_flight)
        .timeout(Duration::from_secs(10));
    if let Some(ca) = &args.ca {
        client = client.add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca)?)?);
    }
    let client = client.build()?;
    // Parsed once and the header given typed, as a program tuned for the job would: the
    // limit pays for no parse a minimal program need not make per request.
    let url = reqwest::Url::parse(url)?;
    let json = reqwest::header::HeaderValue::from_static("application/json");
    let records: Values = match args.batch {
        0 | 1 => Box::pin(records),
        n => Box::pin(records.chunks(n).map(|values| json_array(&values))),
    };
    records
        .map(|body| {
            client
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, json.clone())
                .body(body)
                .send()
        })
        .buffer_unordered(args.in_flight)
        .for_each(|result| async move {
            if let Err(e) = result {
                eprintln!("baseline-consumer: {e}");
            }
        })
        .await;
    Ok(())
}

/// `[v1,v2,…]`: one copy of every value into one body.
fn json_array(values: &[Bytes]) -> Bytes {
    let len = values.iter().map(|v| v.len() + 1).sum::<usize>() + 1;
    let mut body = bytes::BytesMut::with_capacity(len);
    for (i, v) in values.iter().enumerate() {
        body.extend_from_slice(if i == 0 { b"[" } else { b"," });
        body.extend_from_slice(v);
    }
    body.extend_from_slice(b"]");
    body.freeze()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.url.is_none() && matches!(args.poll, Poll::Thread) {
        return consume_polling(&args);
    }
    let records = values(&args)?;
    match &args.url {
        Some(url) => forward(records, url, &args).await,
        None => {
            consume_only(records, args.expect).await;
            Ok(())
        }
    }
}
