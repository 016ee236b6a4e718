//! The producer: `acks=all` and idempotent, so a delivery report means the record is in
//! every in-sync replica and a librdkafka-internal retry never duplicates or reorders it.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

/// Builds the acknowledged producer. `delivery_timeout` bounds how long librdkafka keeps
/// trying one record; ingress answers 503 when it expires.
pub fn build(
    mut cfg: ClientConfig,
    delivery_timeout: Duration,
) -> Result<FutureProducer, KafkaError> {
    let ms = delivery_timeout.as_millis().max(1).to_string();
    cfg.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", &ms)
        // A short linger batches concurrent webhooks into one request; each sender still
        // waits for its own record's acknowledgement, so batching never weakens the promise.
        .set("linger.ms", "2")
        .set("socket.connection.setup.timeout.ms", "3000");
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
