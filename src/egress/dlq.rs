//! Dead-lettering: the original key, value and headers plus the `hookbridge-dlq-*`
//! envelope (`kafka::envelope`) that says why, produced with `acks=all`. Only the broker's
//! acknowledgement finishes the record; a failed write is retried and the offset stays
//! uncommitted meanwhile.
//!
//! A dead letter the producer or broker refuses for its size (the producer's
//! `message.max.bytes` follows the sources, not what sinks consume) would be refused on
//! every retry, holding its key forever. It is cut instead ([`Fit`]): the value halved
//! until it fits, then the original headers left out, then a key longer than
//! [`KEY_KEPT`] cut to its start, and marked with `hookbridge-dlq-truncated` (the original
//! value's size; `hookbridge-dlq-key-truncated`, the key's) so it is never redriven as if
//! whole.
//!
//! A size refusal of a batched write does not say the record is too large: the broker's
//! `max.message.bytes` applies to a whole batch, and librdkafka fails every record of a
//! refused batch. So a refused dead letter is first written again whole, alone (a
//! producer that sends one record per batch, [`Producers::alone`]); only a refusal of
//! the record alone cuts it ([`Way`]).

use std::time::{Duration, SystemTime};

use rdkafka::message::OwnedHeaders;
use rdkafka::producer::FutureRecord;

use super::record::Record;
use crate::kafka::envelope::{self, DeadLetterEnvelope, Origin};
use crate::kafka::producer::{self, Acked};

/// Every reason a dead letter can carry (`hookbridge-dlq-reason`), each owned where it is
/// decided: the delivery policy (`permanent`, `exhausted`), the shaping of the request (a
/// `template` that cannot be rendered, a `tombstone` the sink dead-letters, the program
/// that failed, `filter` or `transform`) and batching (`batch`: not a JSON item). What
/// `dlq list --reason` accepts.
pub const REASONS: [&str; 7] = [
    super::policy::PERMANENT,
    super::policy::EXHAUSTED,
    super::request::TEMPLATE,
    super::evaluation::frame::Stage::Filter.as_str(),
    super::evaluation::frame::Stage::Transform.as_str(),
    super::request::TOMBSTONE,
    super::batch::NotJson::REASON,
];

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

/// How much of the original record a dead letter carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Key, value and headers as consumed.
    Whole,
    /// The first `n` bytes of the value, the key and the original headers.
    Value(usize),
    /// Key and the dead-letter headers only: the original headers were too large too.
    EnvelopeOnly,
    /// The first [`KEY_KEPT`] bytes of the key and the dead-letter headers: the key alone
    /// was too large (a producer may write keys of megabytes).
    KeyCut,
}

/// How much of a key too large for the DLQ topic its dead letter keeps.
pub const KEY_KEPT: usize = 1024;

impl Fit {
    /// The next smaller cut after a size refusal; `None` when nothing is left to cut.
    pub fn smaller(self, value_len: usize, key_len: usize) -> Option<Fit> {
        match self {
            Fit::Whole if value_len > 0 => Some(Fit::Value(value_len / 2)),
            Fit::Value(n) if n > 0 => Some(Fit::Value(n / 2)),
            Fit::Whole | Fit::Value(_) => Some(Fit::EnvelopeOnly),
            Fit::EnvelopeOnly if key_len > KEY_KEPT => Some(Fit::KeyCut),
            Fit::EnvelopeOnly | Fit::KeyCut => None,
        }
    }

    fn is_cut(self) -> bool {
        self != Fit::Whole
    }
}

/// The producers dead letters are written with.
#[derive(Clone)]
pub struct Producers {
    /// The process's producer, batching dead letters with everything else it sends.
    pub batched: producer::Producer,
    /// The same settings, one record per batch: its size refusals are the record's own.
    pub alone: producer::Producer,
}

/// How the next write of a dead letter goes: how much of it, and whether alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Way {
    pub fit: Fit,
    pub alone: bool,
}

impl Way {
    /// The first write: whole, batched.
    pub const FIRST: Way = Way {
        fit: Fit::Whole,
        alone: false,
    };

    /// The next write after a size refusal: alone and as large first (the batch may
    /// have been too large, not the record), then cut smaller; `None` when nothing is
    /// left to cut.
    pub fn after_too_large(self, value_len: usize, key_len: usize) -> Option<Way> {
        if !self.alone {
            return Some(Way {
                fit: self.fit,
                alone: true,
            });
        }
        (self.fit.smaller(value_len, key_len)).map(|fit| Way { fit, alone: true })
    }

    fn producer(self, producers: &Producers) -> &producer::Producer {
        if self.alone {
            &producers.alone
        } else {
            &producers.batched
        }
    }
}

impl DeadLetter {
    /// The envelope for `record`, dead-lettered by `connector`.
    pub fn envelope(&self, record: &Record, connector: &str) -> DeadLetterEnvelope {
        // A reason missing from the list could never be listed by it: every test that
        // dead-letters a record checks it.
        debug_assert!(
            REASONS.contains(&self.reason),
            "dead-letter reason {:?} is not in dlq::REASONS",
            self.reason
        );
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
            truncated: None,
            key_truncated: None,
        }
    }
}

/// The DLQ headers: the original ones (minus stale DLQ headers, and none with
/// [`Fit::EnvelopeOnly`]) then the envelope, marked when cut.
pub fn headers(record: &Record, dl: &DeadLetter, connector: &str, fit: Fit) -> OwnedHeaders {
    let mut envelope = dl.envelope(record, connector);
    if fit.is_cut() {
        envelope.truncated = Some(record.value.len() as u64);
    }
    if fit == Fit::KeyCut {
        envelope.key_truncated = record.key.as_ref().map(|k| k.len() as u64);
    }
    let kept = match fit {
        Fit::Whole | Fit::Value(_) => usize::MAX,
        Fit::EnvelopeOnly | Fit::KeyCut => 0,
    };
    envelope.to_headers(record.headers_as_produced().take(kept))
}

/// Writes the record, as much of it as `fit` keeps, to `topic` and waits for the
/// acknowledgement.
pub async fn write(
    producers: &Producers,
    topic: &str,
    record: &Record,
    dl: &DeadLetter,
    connector: &str,
    way: Way,
) -> Result<Acked, rdkafka::error::KafkaError> {
    let fit = way.fit;
    let value = match fit {
        Fit::Whole => record.value.as_ref(),
        Fit::Value(n) => &record.value[..n.min(record.value.len())],
        Fit::EnvelopeOnly | Fit::KeyCut => &[],
    };
    let mut fr: FutureRecord<'_, [u8], [u8]> =
        FutureRecord::to(topic).headers(headers(record, dl, connector, fit));
    // A tombstone stays one: redriven, it deletes its key as it was meant to.
    if !record.null_value {
        fr = fr.payload(value);
    }
    if let Some(k) = &record.key {
        fr = fr.key(match fit {
            Fit::KeyCut => &k[..k.len().min(KEY_KEPT)],
            _ => k.as_ref(),
        });
    }
    way.producer(producers)
        .send_acked(fr, Duration::from_secs(5))
        .await
}

/// Warns at start when the DLQ topic is missing (or its metadata cannot be read): every
/// record that needs it would wait, unfinished, until it exists. Only a warning: the
/// topic may be created after the sink starts.
pub fn warn_if_missing<C: rdkafka::ClientContext>(
    client: &rdkafka::client::Client<C>,
    connector: &str,
    topic: &str,
) {
    let problem = match client.fetch_metadata(Some(topic), Duration::from_secs(5)) {
        // Not an answer about the topic: the broker was not reached (it may be down at
        // start); readiness says so, and this is no reason to call the topic missing.
        Err(e) => {
            tracing::warn!(connector, dlq = topic, problem = %e,
                "dead-letter topic not checked: the broker did not answer; records to dead-letter wait unfinished until it exists");
            return;
        }
        Ok(md) => match md.topics().iter().find(|t| t.name() == topic) {
            None => Some("the broker does not know it".to_owned()),
            Some(t) => match t.error() {
                Some(e) => Some(rdkafka::error::RDKafkaErrorCode::from(e).to_string()),
                None if t.partitions().is_empty() => Some("it has no partitions".to_owned()),
                None => None,
            },
        },
    };
    if let Some(problem) = problem {
        tracing::warn!(connector, dlq = topic, problem = %problem,
            "dead-letter topic not found: records to dead-letter will wait unfinished (their partitions' commits hold) until it exists");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_dead_letter_is_cut_in_halves_then_to_its_envelope() {
        let mut fit = Fit::Whole;
        let mut seen = vec![fit];
        while let Some(next) = fit.smaller(1000, 10) {
            fit = next;
            seen.push(fit);
        }
        assert_eq!(seen[1], Fit::Value(500));
        assert_eq!(seen.last(), Some(&Fit::EnvelopeOnly));
        assert!(seen.len() < 15, "ends after a few halvings: {seen:?}");
        assert_eq!(Fit::Whole.smaller(0, 10), Some(Fit::EnvelopeOnly));
    }

    #[test]
    fn a_key_too_large_is_cut_last() {
        let cut = |key_len| Fit::EnvelopeOnly.smaller(10, key_len);
        assert_eq!(cut(KEY_KEPT + 1), Some(Fit::KeyCut));
        assert_eq!(
            cut(KEY_KEPT),
            None,
            "a key that short is not what is too large"
        );
        assert_eq!(Fit::KeyCut.smaller(10, 1 << 20), None);
    }

    #[test]
    fn a_size_refusal_of_a_batch_writes_the_record_again_whole_alone_before_cutting_it() {
        // A 2 KB dead letter refused together with its batch (the DLQ topic's limit
        // applies to the whole batch) is written again as it is, on its own.
        let next = Way::FIRST.after_too_large(2000, 10);
        assert_eq!(
            next,
            Some(Way {
                fit: Fit::Whole,
                alone: true
            }),
            "a record refused in a batch is not cut"
        );
        // Refused alone, the record itself is too large: now it is cut, and stays alone.
        let cut = next.and_then(|w| w.after_too_large(2000, 10));
        assert_eq!(
            cut,
            Some(Way {
                fit: Fit::Value(1000),
                alone: true
            })
        );
        let mut way = Way::FIRST;
        let mut writes = 1;
        while let Some(next) = way.after_too_large(2000, 10) {
            way = next;
            writes += 1;
        }
        assert_eq!(way.fit, Fit::EnvelopeOnly);
        assert!(writes < 20, "ends: {writes} writes");
    }
}
