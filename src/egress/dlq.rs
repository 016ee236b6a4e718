//! Dead-lettering: the original key, value and headers plus the `hookbridge-dlq-*`
//! envelope (`kafka::envelope`) that says why, produced with `acks=all`. Only the broker's
//! acknowledgement finishes the record; a failed write is retried and the offset stays
//! uncommitted meanwhile.

use std::time::{Duration, SystemTime};

use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::record::Record;
use crate::kafka::envelope::{self, DeadLetterEnvelope, Origin};
use crate::kafka::producer::{self, Acked};

/// Largest slice of the destination's response body kept in the DLQ record.
pub const RESPONSE_EXCERPT: usize = envelope::RESPONSE_EXCERPT;

/// Why and how a record is dead-lettered.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// `permanent` (the status policy says so) or `exhausted` (attempts or time used up).
    pub reason: &'static str,
    pub status: Option<u16>,
    /// Last failure class (e.g. `5xx`, `timeout`, `4xx`).
    pub error: &'static str,
    pub attempts: u32,
    pub first_attempt: SystemTime,
    pub last_attempt: SystemTime,
    pub response: bytes::Bytes,
}

impl DeadLetter {
    /// The envelope for `record`, dead-lettered by `connector`.
    pub fn envelope(&self, record: &Record, connector: &str) -> DeadLetterEnvelope {
        DeadLetterEnvelope {
            connector: connector.to_owned(),
            origin: Origin {
                topic: record.tp.topic.to_string(),
                partition: record.tp.partition,
                offset: record.offset,
            },
            reason: self.reason.to_owned(),
            error: self.error.to_owned(),
            status: self.status,
            attempts: self.attempts,
            first_attempt: self.first_attempt,
            last_attempt: self.last_attempt,
            response: self.response.clone(),
        }
    }
}

/// The DLQ headers: the original ones (minus stale DLQ headers) then the envelope.
pub fn headers(record: &Record, dl: &DeadLetter, connector: &str) -> OwnedHeaders {
    dl.envelope(record, connector).to_headers(&record.headers)
}

/// Writes the record to `topic` and waits for the acknowledgement.
pub async fn write(
    producer: &FutureProducer,
    topic: &str,
    record: &Record,
    dl: &DeadLetter,
    connector: &str,
) -> Result<Acked, rdkafka::error::KafkaError> {
    let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
        .payload(record.value.as_ref())
        .headers(headers(record, dl, connector));
    if let Some(k) = &record.key {
        fr = fr.key(k.as_ref());
    }
    producer::send_acked(producer, fr, Duration::from_secs(5)).await
}
