//! The producer: `acks=all` and idempotent, so a delivery report means the record is in
//! every in-sync replica and a librdkafka-internal retry never duplicates or reorders it.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

/// Builds the acknowledged producer. `delivery_timeout` bounds how long librdkafka keeps
/// trying one record; ingress answers 503 when it expires. A property the user set in
/// `kafka.properties` wins over these defaults.
pub fn build(
    mut cfg: ClientConfig,
    delivery_timeout: Duration,
) -> Result<FutureProducer, KafkaError> {
    let ms = delivery_timeout.as_millis().max(1).to_string();
    let defaults = [
        ("acks", "all"),
        ("enable.idempotence", "true"),
        ("message.timeout.ms", ms.as_str()),
        // A short linger batches concurrent webhooks into one request; each sender still
        // waits for its own record's acknowledgement, so batching never weakens the promise.
        ("linger.ms", "2"),
        ("socket.connection.setup.timeout.ms", "3000"),
    ];
    for (k, v) in defaults {
        if cfg.get(k).is_none() {
            cfg.set(k, v);
        }
    }
    if cfg.get("acks").is_some_and(|a| a != "all" && a != "-1") {
        tracing::warn!("kafka.properties sets acks other than all: a 2xx no longer means every in-sync replica has the record");
    }
    cfg.create()
}

/// Where a produced record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    pub partition: i32,
    pub offset: i64,
}

/// Sends one record and waits for the broker's acknowledgement.
pub async fn send_acked<K: rdkafka::message::ToBytes + ?Sized>(
    producer: &FutureProducer,
    record: FutureRecord<'_, K, [u8]>,
    queue_timeout: Duration,
) -> Result<Acked, KafkaError> {
    match producer.send(record, queue_timeout).await {
        Ok(delivery) => Ok(Acked {
            partition: delivery.partition,
            offset: delivery.offset,
        }),
        Err((e, _)) => Err(e),
    }
}
