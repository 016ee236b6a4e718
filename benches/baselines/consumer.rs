//! Baseline (d) of `scripts/bench`: the smallest Kafka → webhook forwarder. An rdkafka
//! stream consumer POSTs every record's value with reqwest, a fixed number in flight, in
//! no particular order, and never commits or retries. It is the egress ceiling hookbridge's
//! sinks (which keep order, commit a watermark and retry) are compared with.
//!
//! `baseline-consumer --brokers 127.0.0.1:9092 --topic T --group G --url http://… --in-flight 64`

use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;

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
    /// Where every record is POSTed.
    #[arg(long, env = "BASELINE_URL")]
    url: String,
    /// Requests in flight at once.
    #[arg(long, env = "BASELINE_IN_FLIGHT", default_value_t = 64)]
    in_flight: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", &args.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // A new group's first assignment takes ~3 s instead of ~23 s on the test broker.
        .set("session.timeout.ms", "6000")
        .create()?;
    consumer.subscribe(&[&args.topic])?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.in_flight)
        .timeout(Duration::from_secs(10))
        .build()?;
    consumer
        .stream()
        .map(|message| {
            // The value is copied out so the request does not borrow librdkafka's buffer,
            // as any forwarder that keeps records in flight must.
            let body = match &message {
                Ok(m) => Ok(Bytes::copy_from_slice(m.payload().unwrap_or_default())),
                Err(e) => Err(e.to_string()),
            };
            let request = client
                .post(&args.url)
                .header("content-type", "application/json");
            async move {
                match body {
                    Ok(body) => request
                        .body(body)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                }
            }
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
