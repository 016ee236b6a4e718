//! Kafka record header names hookbridge writes and reads.

/// Source connector that received the webhook.
pub const SOURCE: &str = "hookbridge-source";
/// RFC 3339 time the webhook was received.
pub const RECEIVED_AT: &str = "hookbridge-received-at";
/// The webhook's Content-Type, reused as the outgoing Content-Type by sinks.
pub const CONTENT_TYPE: &str = "content-type";
/// The webhook's event type (a source's `event_type`): read by sink filters, URL
/// templates and CloudEvents.
pub const EVENT_TYPE: &str = "hookbridge-event-type";
/// W3C trace context, carried from the incoming webhook to the outgoing POST.
pub const TRACEPARENT: &str = "traceparent";
/// Prefix of the dead-letter headers.
pub const DLQ_PREFIX: &str = "hookbridge-dlq-";
