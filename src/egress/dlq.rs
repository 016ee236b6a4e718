//! Dead-lettering: the original key, value and headers plus `hookbridge-dlq-*` headers
//! that say why, produced with `acks=all`. Only the broker's acknowledgement finishes
//! the record; a failed write is retried and the offset stays uncommitted meanwhile.

use std::time::{Duration, SystemTime};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::record::Record;
use crate::kafka::producer::{self, Acked};

/// Largest slice of the destination's response body kept in the DLQ record.
pub const RESPONSE_EXCERPT: usize = 1024;

/// Why and how a record is dead-lettered.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// `permanent` (non-retryable status) or `exhausted` (attempts or time used up).
    pub reason: &'static str,
    pub status: Option<u16>,
    /// Last failure class (e.g. `5xx`, `timeout`, `4xx`).
    pub error: &'static str,
    pub attempts: u32,
    pub first_attempt: SystemTime,
    pub last_attempt: SystemTime,
    pub response: bytes::Bytes,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The DLQ headers: the original ones (minus stale DLQ headers) then ours.
pub fn headers(record: &Record, dl: &DeadLetter, connector: &str) -> OwnedHeaders {
    let ours: [(&str, String); 10] = [
        ("hookbridge-dlq-reason", dl.reason.to_owned()),
        ("hookbridge-dlq-error", dl.error.to_owned()),
        (
            "hookbridge-dlq-status",
            dl.status.map(|s| s.to_string()).unwrap_or_default(),
        ),
        ("hookbridge-dlq-attempts", dl.attempts.to_string()),
        ("hookbridge-dlq-first-attempt", rfc3339(dl.first_attempt)),
        ("hookbridge-dlq-last-attempt", rfc3339(dl.last_attempt)),
        ("hookbridge-dlq-topic", record.tp.topic.to_string()),
        ("hookbridge-dlq-partition", record.tp.partition.to_string()),
        ("hookbridge-dlq-offset", record.offset.to_string()),
        ("hookbridge-dlq-connector", connector.to_owned()),
    ];
    let mut out = OwnedHeaders::new_with_capacity(record.headers.len() + ours.len() + 1);
    for (k, v) in &record.headers {
        if !k.starts_with(crate::kafka::headers::DLQ_PREFIX) {
            out = out.insert(Header {
                key: k.as_str(),
                value: Some(v.as_ref()),
            });
        }
    }
    for (k, v) in &ours {
        out = out.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    let excerpt = &dl.response[..dl.response.len().min(RESPONSE_EXCERPT)];
    out.insert(Header {
        key: "hookbridge-dlq-response",
        value: Some(excerpt),
    })
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
