//! Baseline (b) of `scripts/bench`: the smallest honest webhook → Kafka bridge. axum reads
//! the body, produces it unchanged and answers 200 only after the broker acknowledged it,
//! 503 otherwise. No verification, no key, no headers, no limits: the produce-path ceiling
//! hookbridge's ingress is compared with.
//!
//! The producer comes from `hookbridge::kafka::producer::build`, the function hookbridge's
//! own ingress uses, so `acks=all`, idempotence, linger and timeouts stay identical by
//! construction when hookbridge's producer settings are tuned.
//!
//! `baseline-bridge --listen 127.0.0.1:PORT --brokers 127.0.0.1:9092 --topic T`

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
}

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
    cfg.set("bootstrap.servers", &args.brokers);
    let producer = hookbridge::kafka::producer::build(cfg, PRODUCE_TIMEOUT)?;
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
