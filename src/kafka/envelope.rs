//! The wire formats hookbridge puts into Kafka records, each written and read by one piece
//! of code: the headers of an ingested webhook record, the dead-letter envelope
//! (`hookbridge-dlq-*`, written by egress and read back by `dlq redrive`) and the names of
//! the Standard Webhooks headers of an outgoing request. The Kafka header names
//! themselves live in [`headers`].

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rdkafka::message::{Header, OwnedHeaders};

use super::headers::{self, dlq};

/// Outgoing request: `<topic>-<partition>-<offset>`, stable across redeliveries.
pub const WEBHOOK_ID: &str = "webhook-id";
/// Outgoing request: unix seconds the signature was made at.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Outgoing request: `v1,<base64>` Standard Webhooks signature.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// Largest slice of the destination's response body kept in a dead-letter record.
pub const RESPONSE_EXCERPT: usize = 1024;

/// Why a dead-letter record cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("header {0} is missing")]
    Missing(&'static str),
    #[error("header {0} is not valid")]
    Malformed(&'static str),
}

/// A record's place in Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The `hookbridge-dlq-*` headers of a dead-letter record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterEnvelope {
    /// The sink that dead-lettered the record.
    pub connector: String,
    /// Where the record was consumed from.
    pub origin: Origin,
    /// `permanent` (the status policy says so), `exhausted` (attempts or time used up),
    /// or why the record could not be shaped (`template`, `filter`, `transform`,
    /// `tombstone`, `batch`).
    pub reason: String,
    /// Last failure class (`4xx`, `5xx`, `timeout`, …).
    pub error: String,
    pub status: Option<u16>,
    pub attempts: u32,
    pub first_attempt: SystemTime,
    pub last_attempt: SystemTime,
    /// Start of the destination's response body; cut to [`RESPONSE_EXCERPT`] when written.
    pub response: Bytes,
    /// The original value's size when the dead letter had to be cut to fit the DLQ
    /// topic: such a record is evidence, not something to redrive.
    pub truncated: Option<u64>,
    /// The original key's size when the key had to be cut too.
    pub key_truncated: Option<u64>,
}

impl DeadLetterEnvelope {
    /// Whether the dead letter was cut to fit its topic (its value, headers or key):
    /// evidence, never redriven as if whole.
    pub fn is_cut(&self) -> bool {
        self.truncated.is_some() || self.key_truncated.is_some()
    }

    /// The dead-letter record's headers: the original ones (a null value stays null),
    /// minus dead-letter headers of an earlier round (a redriven record that fails again
    /// gets fresh ones), then ours.
    pub fn to_headers<'a>(
        &self,
        original: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    ) -> OwnedHeaders {
        let ours = self.header_values();
        let mut out = OwnedHeaders::new_with_capacity(ours.len() + 4);
        for (key, value) in original
            .into_iter()
            .filter(|(k, _)| !is_dead_letter_header(k))
        {
            out = out.insert(Header { key, value });
        }
        for (k, v) in &ours {
            out = out.insert(Header {
                key: k,
                value: Some(v.as_ref()),
            });
        }
        for (key, size) in [
            (dlq::TRUNCATED, self.truncated),
            (dlq::KEY_TRUNCATED, self.key_truncated),
        ] {
            if let Some(size) = size {
                out = out.insert(Header {
                    key,
                    value: Some(size.to_string().as_bytes()),
                });
            }
        }
        out
    }

    fn header_values(&self) -> [(&'static str, Bytes); 11] {
        let text = |s: String| Bytes::from(s.into_bytes());
        let excerpt = self
            .response
            .slice(..self.response.len().min(RESPONSE_EXCERPT));
        [
            (dlq::REASON, text(self.reason.clone())),
            (dlq::ERROR, text(self.error.clone())),
            (
                dlq::STATUS,
                text(self.status.map(|s| s.to_string()).unwrap_or_default()),
            ),
            (dlq::ATTEMPTS, text(self.attempts.to_string())),
            (dlq::FIRST_ATTEMPT, text(rfc3339(self.first_attempt))),
            (dlq::LAST_ATTEMPT, text(rfc3339(self.last_attempt))),
            (dlq::TOPIC, text(self.origin.topic.clone())),
            (dlq::PARTITION, text(self.origin.partition.to_string())),
            (dlq::OFFSET, text(self.origin.offset.to_string())),
            (dlq::CONNECTOR, text(self.connector.clone())),
            (dlq::RESPONSE, excerpt),
        ]
    }

    /// Reads the envelope back from a dead-letter record's headers. The connector and the
    /// origin are required: without them the record cannot be redriven correctly. The
    /// descriptive fields only inform the operator, so a missing one reads as empty.
    pub fn read(headers: &[(String, Bytes)]) -> Result<Self, EnvelopeError> {
        Ok(DeadLetterEnvelope {
            connector: connector(headers)?.to_owned(),
            origin: Origin {
                topic: required(headers, dlq::TOPIC)?.to_owned(),
                partition: not_negative(headers, dlq::PARTITION)?,
                offset: not_negative(headers, dlq::OFFSET)?,
            },
            reason: text(headers, dlq::REASON).unwrap_or_default().to_owned(),
            error: text(headers, dlq::ERROR).unwrap_or_default().to_owned(),
            status: text(headers, dlq::STATUS).and_then(|s| s.parse().ok()),
            attempts: text(headers, dlq::ATTEMPTS)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            first_attempt: time(headers, dlq::FIRST_ATTEMPT),
            last_attempt: time(headers, dlq::LAST_ATTEMPT),
            response: header(headers, dlq::RESPONSE).cloned().unwrap_or_default(),
            truncated: size(headers, dlq::TRUNCATED),
            key_truncated: size(headers, dlq::KEY_TRUNCATED),
        })
    }
}

/// A cut size header: present but unreadable still means cut (0), never mistaken for a
/// whole record.
fn size(headers: &[(String, Bytes)], name: &str) -> Option<u64> {
    header(headers, name).map(|_| {
        text(headers, name)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    })
}

/// The sink that dead-lettered a record (`hookbridge-dlq-connector`).
pub fn connector(headers: &[(String, Bytes)]) -> Result<&str, EnvelopeError> {
    required(headers, dlq::CONNECTOR)
}

/// The headers the record had before it was dead-lettered. Dead-letter headers are
/// matched in any case, as they are read: a producer's `Hookbridge-DLQ-Truncated` must
/// not pass for ours.
pub fn original_headers(headers: &[(String, Bytes)]) -> Vec<(String, Bytes)> {
    (headers.iter())
        .filter(|(k, _)| !is_dead_letter_header(k))
        .cloned()
        .collect()
}

/// Whether a header name is a dead-letter header's, in any case.
pub fn is_dead_letter_header(name: &str) -> bool {
    let prefix = headers::DLQ_PREFIX;
    (name.get(..prefix.len())).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

fn header<'a>(headers: &'a [(String, Bytes)], name: &str) -> Option<&'a Bytes> {
    headers
        .iter()
        .rev() // the last one wins, as when a header is set twice
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn text<'a>(headers: &'a [(String, Bytes)], name: &str) -> Option<&'a str> {
    header(headers, name).and_then(|v| std::str::from_utf8(v).ok())
}

fn required<'a>(
    headers: &'a [(String, Bytes)],
    name: &'static str,
) -> Result<&'a str, EnvelopeError> {
    let value = header(headers, name).ok_or(EnvelopeError::Missing(name))?;
    std::str::from_utf8(value)
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or(EnvelopeError::Malformed(name))
}

fn parsed<T: std::str::FromStr>(
    headers: &[(String, Bytes)],
    name: &'static str,
) -> Result<T, EnvelopeError> {
    required(headers, name)?
        .parse()
        .map_err(|_| EnvelopeError::Malformed(name))
}

/// A partition or an offset: a number below zero names no record (a forged or broken
/// envelope), so it is malformed like one that is not a number.
fn not_negative<T: std::str::FromStr + PartialOrd + Default>(
    headers: &[(String, Bytes)],
    name: &'static str,
) -> Result<T, EnvelopeError> {
    let n: T = parsed(headers, name)?;
    if n >= T::default() {
        Ok(n)
    } else {
        Err(EnvelopeError::Malformed(name))
    }
}

fn time(headers: &[(String, Bytes)], name: &str) -> SystemTime {
    text(headers, name)
        .and_then(|s| humantime::parse_rfc3339(s).ok())
        .unwrap_or(UNIX_EPOCH)
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// What hookbridge adds to the record of an ingested webhook.
#[derive(Debug, Clone, Copy)]
pub struct IngressHeaders<'a> {
    /// The source connector's name (`hookbridge-source`).
    pub source: &'a str,
    pub received_at: SystemTime,
    /// W3C trace context to carry to the outgoing POST.
    pub traceparent: &'a str,
    /// The webhook's Content-Type, which sinks reuse for the outgoing request.
    pub content_type: Option<&'a [u8]>,
    /// The webhook's Content-Encoding, which says how the body kept in the record is
    /// encoded; sinks send it with the body when they send it unchanged.
    pub content_encoding: Option<&'a [u8]>,
}

impl IngressHeaders<'_> {
    /// The record headers: the forwarded HTTP headers (name, value) in the order given,
    /// then hookbridge's own.
    pub fn build<'f>(
        &self,
        forwarded: impl IntoIterator<Item = (&'f str, &'f [u8])>,
    ) -> OwnedHeaders {
        let mut out = OwnedHeaders::new();
        for (key, value) in forwarded {
            out = out.insert(Header {
                key,
                value: Some(value),
            });
        }
        let received_at = rfc3339(self.received_at);
        out = out
            .insert(Header {
                key: headers::SOURCE,
                value: Some(self.source.as_bytes()),
            })
            .insert(Header {
                key: headers::RECEIVED_AT,
                value: Some(received_at.as_bytes()),
            })
            .insert(Header {
                key: headers::TRACEPARENT,
                value: Some(self.traceparent.as_bytes()),
            });
        if let Some(ct) = self.content_type {
            out = out.insert(Header {
                key: headers::CONTENT_TYPE,
                value: Some(ct),
            });
        }
        if let Some(ce) = self.content_encoding {
            out = out.insert(Header {
                key: headers::CONTENT_ENCODING,
                value: Some(ce),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rdkafka::message::Headers;

    use super::*;

    /// Written headers as a consumer reads them back.
    fn owned_pairs(hs: &OwnedHeaders) -> Vec<(String, Bytes)> {
        hs.iter()
            .map(|h| {
                (
                    h.key.to_owned(),
                    h.value.map(Bytes::copy_from_slice).unwrap_or_default(),
                )
            })
            .collect()
    }

    fn envelope() -> DeadLetterEnvelope {
        let at = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        DeadLetterEnvelope {
            connector: "orders".into(),
            origin: Origin {
                topic: "orders.v1".into(),
                partition: 3,
                offset: 42,
            },
            reason: "permanent".into(),
            error: "4xx".into(),
            status: Some(422),
            attempts: 2,
            first_attempt: at(1_764_600_000_123),
            last_attempt: at(1_764_600_001_456),
            response: Bytes::from_static(b"{\"error\":\"bad sku\"}"),
            truncated: None,
            key_truncated: None,
        }
    }

    /// A dead letter is cut when either its value or its key was.
    #[test]
    fn a_dead_letter_is_cut_by_either_mark() {
        let mut e = envelope();
        assert!(!e.is_cut());
        e.key_truncated = Some(4096);
        assert!(e.is_cut());
        e.key_truncated = None;
        e.truncated = Some(0);
        assert!(e.is_cut());
    }

    #[test]
    fn a_cut_dead_letter_says_so_and_reads_back() {
        let mut e = envelope();
        e.truncated = Some(3_000_000);
        e.key_truncated = Some(1 << 20);
        let pairs = owned_pairs(&e.to_headers(written(&original())));
        assert_eq!(DeadLetterEnvelope::read(&pairs), Ok(e));
        assert!(original_headers(&pairs)
            .iter()
            .all(|(k, _)| k != dlq::TRUNCATED));
    }

    /// Headers as a record carries them, for writing (none null).
    fn written(hs: &[(String, Bytes)]) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        hs.iter().map(|(k, v)| (k.as_str(), Some(v.as_ref())))
    }

    fn original() -> Vec<(String, Bytes)> {
        vec![
            (
                "content-type".into(),
                Bytes::from_static(b"application/json"),
            ),
            (dlq::REASON.into(), Bytes::from_static(b"stale round")),
            ("x-trace".into(), Bytes::from_static(b"abc")),
        ]
    }

    #[test]
    fn an_original_header_spelled_like_a_dead_letter_header_in_any_case_is_dropped() {
        // A producer cannot forge the cut marker (or any envelope field) by writing it
        // in another case: it is read case-insensitively, so it is stripped so too.
        let mut original = original();
        original.push(("Hookbridge-DLQ-Truncated".into(), Bytes::from_static(b"1")));
        original.push((
            "HOOKBRIDGE-DLQ-REASON".into(),
            Bytes::from_static(b"forged"),
        ));
        let pairs = owned_pairs(&envelope().to_headers(written(&original)));
        assert_eq!(DeadLetterEnvelope::read(&pairs), Ok(envelope()));
        assert_eq!(DeadLetterEnvelope::read(&pairs).unwrap().truncated, None);
        assert!(original_headers(&pairs)
            .iter()
            .all(|(k, _)| !k.to_ascii_lowercase().starts_with(headers::DLQ_PREFIX)));
    }

    #[test]
    fn dead_letter_headers_round_trip() {
        let written = envelope().to_headers(written(&original()));
        let pairs = owned_pairs(&written);
        assert_eq!(DeadLetterEnvelope::read(&pairs), Ok(envelope()));
        assert_eq!(
            original_headers(&pairs),
            vec![
                (
                    "content-type".to_owned(),
                    Bytes::from_static(b"application/json")
                ),
                ("x-trace".to_owned(), Bytes::from_static(b"abc")),
            ],
            "original headers kept in order, the earlier round's dlq header dropped"
        );
        assert_eq!(connector(&pairs), Ok("orders"));
    }

    #[test]
    fn no_status_and_long_response_round_trip() {
        let mut e = envelope();
        e.status = None;
        e.response = Bytes::from(vec![b'x'; RESPONSE_EXCERPT * 3]);
        let read = DeadLetterEnvelope::read(&owned_pairs(&e.to_headers([]))).unwrap();
        assert_eq!(read.status, None);
        assert_eq!(read.response.len(), RESPONSE_EXCERPT);
    }

    #[test]
    fn every_dlq_header_has_the_prefix_and_is_written() {
        let pairs = owned_pairs(&envelope().to_headers([]));
        let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, dlq::ALL);
        assert!(dlq::ALL.iter().all(|n| n.starts_with(headers::DLQ_PREFIX)));
    }

    #[test]
    fn reading_needs_connector_and_origin() {
        let pairs = owned_pairs(&envelope().to_headers([]));
        for name in [dlq::CONNECTOR, dlq::TOPIC, dlq::PARTITION, dlq::OFFSET] {
            let without: Vec<_> = pairs.iter().filter(|(k, _)| k != name).cloned().collect();
            assert_eq!(
                DeadLetterEnvelope::read(&without),
                Err(EnvelopeError::Missing(name))
            );
        }
        for (name, value) in [
            (dlq::OFFSET, &b"forty-two"[..]),
            (dlq::OFFSET, b"-5"),
            (dlq::PARTITION, b"-1"),
            (dlq::PARTITION, b"99999999999"),
        ] {
            let mut bad = pairs.clone();
            bad.push((name.into(), Bytes::from_static(value)));
            assert_eq!(
                DeadLetterEnvelope::read(&bad),
                Err(EnvelopeError::Malformed(name)),
                "{name} = {value:?}"
            );
        }
        assert_eq!(
            DeadLetterEnvelope::read(&original()),
            Err(EnvelopeError::Missing(dlq::CONNECTOR)),
            "a record that was never dead-lettered by hookbridge"
        );
    }

    #[test]
    fn ingress_headers_carry_what_sinks_read() {
        let at = UNIX_EPOCH + Duration::from_millis(1_764_600_000_000);
        let built = IngressHeaders {
            source: "github",
            received_at: at,
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            content_type: Some(b"application/json"),
            content_encoding: Some(b"gzip"),
        }
        .build([("X-GitHub-Event", &b"push"[..])]);
        let pairs = owned_pairs(&built);
        let get = |n: &str| header(&pairs, n).map(|v| v.as_ref().to_vec());
        assert_eq!(pairs[0].0, "X-GitHub-Event");
        assert_eq!(get(headers::SOURCE), Some(b"github".to_vec()));
        assert_eq!(
            get(headers::RECEIVED_AT),
            Some(b"2025-12-01T14:40:00.000Z".to_vec())
        );
        assert_eq!(
            get(headers::CONTENT_TYPE),
            Some(b"application/json".to_vec())
        );
        assert!(get(headers::TRACEPARENT).is_some());
        assert_eq!(get(headers::CONTENT_ENCODING), Some(b"gzip".to_vec()));
    }
}
