//! Baseline (b) of `scripts/bench`: the smallest honest webhook → Kafka bridge. axum reads
//! the body, produces it unchanged and answers 200 only after the broker acknowledged it,
//! 503 otherwise. No verification, no key, no headers, no limits: the produce-path ceiling
//! hookbridge's ingress is compared with.
//!
//! The producer keeps hookbridge's promise (`acks=all`, idempotence) but has batching
//! settings of its own (`--linger-ms`, `--batch-num-messages`, `--batch-size`), so
//! `scripts/bench` can run it at several lingers and take the fastest as the limit rather
//! than a copy of whatever hookbridge's defaults are. Rust allocations go through mimalloc,
//! as hookbridge's do: the limit does not pay for an allocator hookbridge does not use.
//!
//! `baseline-bridge --listen 127.0.0.1:PORT --brokers 127.0.0.1:9092 --topic T --linger-ms 1`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Router;
use clap::Parser;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

#[derive(Parser)]
struct Args {
    /// Address to accept webhooks on.
    #[arg(long, env = "BASELINE_LISTEN")]
    listen: SocketAddr,
    /// Kafka bootstrap servers.
    #[arg(long, env = "BASELINE_BROKERS")]
    brokers: String,
    /// Topic every webhook is produced to.
    #[arg(long, env = "BASELINE_TOPIC")]
    topic: String,
    /// `linger.ms`: how long the producer waits to fill a batch.
    #[arg(long, env = "BASELINE_LINGER_MS", default_value_t = 5)]
    linger_ms: u32,
    /// `batch.num.messages`; librdkafka's default when not given.
    #[arg(long, env = "BASELINE_BATCH_NUM_MESSAGES")]
    batch_num_messages: Option<u32>,
    /// `batch.size` in bytes; librdkafka's default when not given.
    #[arg(long, env = "BASELINE_BATCH_SIZE")]
    batch_size: Option<u32>,
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// hookbridge's default `kafka.produce_timeout`, so both give up on a record at the same time.
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(5);

struct Bridge {
    producer: FutureProducer,
    topic: String,
}

async fn accept(State(bridge): State<Arc<Bridge>>, body: Bytes) -> StatusCode {
    let record = FutureRecord::<(), [u8]>::to(&bridge.topic).payload(&body);
    match bridge.producer.send(record, PRODUCE_TIMEOUT).await {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &args.brokers)
        // The promise every row keeps: a 200 means every in-sync replica has the record,
        // and librdkafka's own retries neither duplicate nor reorder it.
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set(
            "message.timeout.ms",
            PRODUCE_TIMEOUT.as_millis().to_string(),
        )
        .set("linger.ms", args.linger_ms.to_string());
    if let Some(n) = args.batch_num_messages {
        cfg.set("batch.num.messages", n.to_string());
    }
    if let Some(n) = args.batch_size {
        cfg.set("batch.size", n.to_string());
    }
    let producer: FutureProducer = cfg.create()?;
    let bridge = Arc::new(Bridge {
        producer,
        topic: args.topic,
    });
    let app = Router::new().fallback(post(accept)).with_state(bridge);
    // TCP_NODELAY as hookbridge's listener sets it, so both answer without Nagle's delay.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    axum::serve(listener, app).await?;
    Ok(())
}
