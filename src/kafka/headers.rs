//! Every Kafka record header name hookbridge writes or reads, in one place: the headers
//! ingress adds to a webhook's record, the ones sinks read back from it, and the
//! dead-letter envelope (`hookbridge-dlq-*`) that egress writes and `dlq redrive`,
//! `dlq list`/`show` and the console read. Code elsewhere names a header only through
//! these constants; tests may spell them out on purpose, to pin the wire format.

/// Source connector that received the webhook.
pub const SOURCE: &str = "hookbridge-source";
/// RFC 3339 time the webhook was received.
pub const RECEIVED_AT: &str = "hookbridge-received-at";
/// The webhook's Content-Type, reused as the outgoing Content-Type by sinks.
pub const CONTENT_TYPE: &str = "content-type";
/// The webhook's Content-Encoding (`gzip`, …): the record holds the body as it came,
/// encoded, and a sink that sends it unchanged sends this with it.
pub const CONTENT_ENCODING: &str = "content-encoding";
/// The webhook's event type (a source's `event_type`): read by sink filters, URL
/// templates and CloudEvents.
pub const EVENT_TYPE: &str = "hookbridge-event-type";
/// W3C trace context, carried from the incoming webhook to the outgoing POST: the W3C
/// header's own name, which the trace context module owns.
pub const TRACEPARENT: &str = crate::telemetry::trace::TRACEPARENT;
/// Prefix of the dead-letter headers: how those of an earlier round are recognised and
/// stripped (in any case) before a record is dead-lettered again.
pub const DLQ_PREFIX: &str = "hookbridge-dlq-";

/// Names of the dead-letter headers. Each starts with [`DLQ_PREFIX`](super::DLQ_PREFIX).
pub mod dlq {
    /// `permanent`, `exhausted`, or why the record could not be shaped (`template`,
    /// `filter`, `transform`, `tombstone`, `batch`).
    pub const REASON: &str = "hookbridge-dlq-reason";
    /// Last failure class (`4xx`, `5xx`, `timeout`, …).
    pub const ERROR: &str = "hookbridge-dlq-error";
    /// Last HTTP status; empty when there was none.
    pub const STATUS: &str = "hookbridge-dlq-status";
    /// How many HTTP attempts were made.
    pub const ATTEMPTS: &str = "hookbridge-dlq-attempts";
    /// RFC 3339 time of the first attempt.
    pub const FIRST_ATTEMPT: &str = "hookbridge-dlq-first-attempt";
    /// RFC 3339 time of the last attempt.
    pub const LAST_ATTEMPT: &str = "hookbridge-dlq-last-attempt";
    /// The topic the record was consumed from.
    pub const TOPIC: &str = "hookbridge-dlq-topic";
    /// The partition the record was consumed from.
    pub const PARTITION: &str = "hookbridge-dlq-partition";
    /// The record's offset in its partition.
    pub const OFFSET: &str = "hookbridge-dlq-offset";
    /// The sink that dead-lettered it: a DLQ topic may be shared by several sinks.
    pub const CONNECTOR: &str = "hookbridge-dlq-connector";
    /// The start of the destination's answer.
    pub const RESPONSE: &str = "hookbridge-dlq-response";
    /// Present only when the record was cut to fit the DLQ topic: the original value's
    /// size in bytes (the value kept is its start; original headers may be left out).
    pub const TRUNCATED: &str = "hookbridge-dlq-truncated";
    /// Present only when the key was cut to fit too: the original key's size in bytes
    /// (the key kept is its start).
    pub const KEY_TRUNCATED: &str = "hookbridge-dlq-key-truncated";

    /// Every dead-letter header always written, in the order they are written.
    #[cfg(test)]
    pub const ALL: [&str; 11] = [
        REASON,
        ERROR,
        STATUS,
        ATTEMPTS,
        FIRST_ATTEMPT,
        LAST_ATTEMPT,
        TOPIC,
        PARTITION,
        OFFSET,
        CONNECTOR,
        RESPONSE,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dead_letter_header_has_the_prefix() {
        for name in dlq::ALL
            .iter()
            .chain([&dlq::TRUNCATED, &dlq::KEY_TRUNCATED])
        {
            assert!(name.starts_with(DLQ_PREFIX), "{name}");
        }
        for name in [SOURCE, RECEIVED_AT, CONTENT_TYPE, EVENT_TYPE, TRACEPARENT] {
            assert!(!name.starts_with(DLQ_PREFIX), "{name} would be stripped");
        }
    }
}
