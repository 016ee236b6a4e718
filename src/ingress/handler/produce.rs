//! The last step of a verified webhook: the Kafka record it becomes (its body, key and
//! headers: the forwarded ones, the event type, hookbridge's own) and its production,
//! awaited until the broker acknowledged it with `acks=all`; the reply follows from that
//! acknowledgement alone.

use std::borrow::Cow;
use std::time::{Duration, Instant, SystemTime};

use axum::http::{header, HeaderMap};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::FutureRecord;

use super::{Endpoint, Ingress, Routed};
use crate::connectors::Source;
use crate::ingress::response::Reply;
use crate::kafka::envelope::IngressHeaders;
use crate::kafka::producer;
use crate::telemetry::source::{ProduceFailed, WebhookAccepted};
use crate::telemetry::trace;
use crate::verify::Verified;

/// Every value of a list-valued header in order, as one value joined by ", " (RFC 9110
/// §5.3): a body encoded twice may name its codings in two `Content-Encoding` lines, and
/// the first alone would say how to decode it wrongly.
fn joined<'h>(headers: &'h HeaderMap, name: header::HeaderName) -> Option<Cow<'h, [u8]>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?.as_bytes();
    let Some(second) = values.next() else {
        return Some(Cow::Borrowed(first));
    };
    let mut all = first.to_vec();
    for v in std::iter::once(second).chain(values) {
        all.extend_from_slice(b", ");
        all.extend_from_slice(v.as_bytes());
    }
    Some(Cow::Owned(all))
}

/// Record headers: the forwarded HTTP headers and the event type, then hookbridge's own.
fn record_headers(source: &Source, headers: &HeaderMap, event_type: Option<&[u8]>) -> OwnedHeaders {
    let forwarded = source
        .forward_headers
        .iter()
        .flat_map(|name| {
            headers
                .get_all(name)
                .iter()
                .map(move |value| (name.as_str(), value.as_bytes()))
        })
        .chain(event_type.map(|t| (crate::kafka::headers::EVENT_TYPE, t)))
        // A binary-mode CloudEvent's attributes are its `ce-*` headers: kept with it. A
        // structured one's are in its body: `ce-*` headers beside it are not its own.
        .chain(
            (source.cloudevents.is_some()
                && !crate::connectors::source::is_structured_cloudevent(headers))
            .then(|| headers.iter())
            .into_iter()
            .flatten()
            .filter(|(name, _)| name.as_str().starts_with("ce-"))
            .map(|(name, value)| (name.as_str(), value.as_bytes())),
        );
    let content_encoding = joined(headers, header::CONTENT_ENCODING);
    IngressHeaders {
        source: &source.name,
        received_at: SystemTime::now(),
        traceparent: &trace::traceparent(headers),
        content_type: headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
        content_encoding: content_encoding.as_deref(),
    }
    .build(forwarded)
}

pub(super) async fn produce(
    ing: &Ingress,
    endpoint: &Endpoint,
    headers: &HeaderMap,
    routed: Routed<'_>,
    verified: Verified<'_>,
) -> Reply {
    let body = verified.body();
    let (source, telemetry) = (&endpoint.source, &endpoint.telemetry);
    let topic = routed.topic;
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
        .payload(body)
        .headers(record_headers(source, headers, routed.event_type));
    if let Some(k) = routed.key {
        record = record.key(k);
    }
    let started = Instant::now();
    // librdkafka gives up on the record after `message.timeout.ms` (= produce_timeout);
    // the outer timeout is a backstop so the sender is answered within the deadline even
    // if the queue itself is stuck. A timed-out record may still land later: the sender
    // got a 503, retries, and the record is duplicated rather than lost.
    let sent = tokio::time::timeout(
        ing.produce_timeout + Duration::from_millis(500),
        ing.producer.send_acked(record, ing.produce_timeout),
    )
    .await;
    match sent {
        Ok(Ok(_acked)) => {
            WebhookAccepted {
                produce_seconds: started.elapsed().as_secs_f64(),
                event_type: routed.event_type,
                typed: source.event_type.is_some(),
            }
            .emit(telemetry);
            Reply::Accepted
        }
        Ok(Err(e)) if producer::is_too_large(&e) => {
            tracing::error!(source = %source.name, topic = %topic, bytes = body.len(), error = %e, "Kafka refused the webhook as too large: raise the broker's message.max.bytes and the topic's max.message.bytes (see `hookbridge check`), or lower max_body");
            Reply::RecordTooLarge
        }
        Ok(Err(e)) => {
            ProduceFailed::Refused { topic, error: &e }.emit(telemetry);
            Reply::Unavailable("Kafka did not acknowledge the record; retry later")
        }
        Err(_) => {
            ProduceFailed::TimedOut { topic }.emit(telemetry);
            Reply::Unavailable("Kafka did not acknowledge the record in time; retry later")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_header_in_several_lines_is_kept_whole_in_order() {
        let mut h = HeaderMap::new();
        assert_eq!(joined(&h, header::CONTENT_ENCODING), None);
        h.append(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        assert_eq!(
            joined(&h, header::CONTENT_ENCODING).as_deref(),
            Some(&b"gzip"[..])
        );
        h.append(header::CONTENT_ENCODING, "br".parse().unwrap());
        h.append(header::CONTENT_ENCODING, "zstd".parse().unwrap());
        assert_eq!(
            joined(&h, header::CONTENT_ENCODING).as_deref(),
            Some(&b"gzip, br, zstd"[..])
        );
    }
}
