//! A consumed Kafka record, owned so it can outlive the poll that produced it. The value
//! is `Bytes`, so every retry reuses one buffer.

use std::sync::Arc;

use bytes::Bytes;
use rdkafka::message::{BorrowedMessage, Headers, Message};

/// One topic-partition, cheap to clone and hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

/// A record to deliver.
#[derive(Debug, Clone)]
pub struct Record {
    pub tp: TopicPartition,
    pub offset: i64,
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub headers: Vec<(String, Bytes)>,
    /// The partition's rewind count when this record was polled; records polled before
    /// the latest rewind are stale and ignored (see `dispatcher`).
    pub epoch: u64,
}

impl Record {
    /// Copies a polled message out of librdkafka's buffer. `topic` is interned by the caller.
    pub fn from_message(msg: &BorrowedMessage<'_>, topic: Arc<str>) -> Self {
        let headers = msg
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            h.value.map(Bytes::copy_from_slice).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Record {
            tp: TopicPartition {
                topic,
                partition: msg.partition(),
            },
            offset: msg.offset(),
            key: msg.key().map(Bytes::copy_from_slice),
            value: msg
                .payload()
                .map(Bytes::copy_from_slice)
                .unwrap_or_default(),
            headers,
            epoch: 0,
        }
    }

    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// `<topic>-<partition>-<offset>`: stable across redeliveries so receivers can dedupe.
    pub fn webhook_id(&self) -> String {
        format!("{}-{}-{}", self.tp.topic, self.tp.partition, self.offset)
    }
}
