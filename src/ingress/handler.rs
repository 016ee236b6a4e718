//! The webhook handler: route → method → capacity → rate limit → body limit → verify →
//! handshake → key → produce and await the acknowledgement. Each step either passes the
//! request on or decides the reply; the record reaches Kafka only after `verify`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use bytes::Bytes;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::Semaphore;

use super::response::Reply;
use super::trace;
use crate::connectors::Source;
use crate::kafka::{headers as kh, producer};
use crate::telemetry::Metrics;
use crate::verify::url::UrlError;
use crate::verify::{Verified, WebhookRequest};

/// Everything the webhook listener needs, shared by all requests.
pub struct Ingress {
    sources: HashMap<String, Arc<Source>>,
    producer: FutureProducer,
    produce_timeout: Duration,
    in_flight: Semaphore,
    metrics: Arc<Metrics>,
}

impl Ingress {
    pub fn new(
        sources: impl IntoIterator<Item = Source>,
        producer: FutureProducer,
        produce_timeout: Duration,
        max_in_flight: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            sources: sources
                .into_iter()
                .map(|s| (s.path.clone(), Arc::new(s)))
                .collect(),
            producer,
            produce_timeout,
            in_flight: Semaphore::new(max_in_flight.max(1)),
            metrics,
        }
    }

    /// Names of the sources served, for the startup log.
    pub fn paths(&self) -> impl Iterator<Item = (&str, &str)> {
        self.sources
            .iter()
            .map(|(p, s)| (p.as_str(), s.name.as_ref()))
    }
}

/// The webhook router: every path goes through [`handle`], which looks the source up.
pub fn app(ingress: Arc<Ingress>) -> Router {
    Router::new().fallback(handle).with_state(ingress)
}

async fn handle(
    State(ing): State<Arc<Ingress>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Body,
) -> Response {
    let Some(source) = ing.sources.get(uri.path()).cloned() else {
        return Reply::NotFound.into_response();
    };
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    let reply = receive(&ing, &source, &method, (&uri, peer), &headers, body).await;
    ing.metrics
        .ingress_requests
        .with_label_values(&[&source.name, reply.status().as_str()])
        .inc();
    reply.into_response()
}

async fn receive(
    ing: &Ingress,
    source: &Source,
    method: &Method,
    (uri, peer): (&Uri, Option<IpAddr>),
    headers: &HeaderMap,
    body: Body,
) -> Reply {
    if method != Method::POST {
        return Reply::MethodNotAllowed;
    }
    let Ok(_permit) = ing.in_flight.try_acquire() else {
        return Reply::Unavailable("too many requests in flight");
    };
    if let Some(limiter) = &source.limiter {
        if let Err(not_until) = limiter.check() {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            return Reply::RateLimited(wait);
        }
    }
    let body = match read_body(headers, body, source.max_body).await {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    let url = match signed_url(source, uri, headers, peer) {
        Ok(url) => url,
        Err(e) => {
            tracing::info!(source = %source.name, reason = %e, "webhook rejected: no trusted signed URL");
            return Reply::Unauthorized("invalid signature");
        }
    };
    let request = WebhookRequest {
        headers,
        body: &body,
        url: &url,
        now: unix_now(),
    };
    let verified = match source.verifier.verify(&request) {
        Ok(verified) => verified,
        Err(e) => {
            ing.metrics
                .signature_failures
                .with_label_values(&[&source.name, e.reason()])
                .inc();
            tracing::info!(source = %source.name, reason = e.reason(), "webhook signature rejected");
            return Reply::Unauthorized("invalid signature");
        }
    };
    if let Some(h) = source.verifier.handshake(&request) {
        return Reply::Handshake(h);
    }
    let key = match source.key.extract(headers, &body) {
        Ok(k) => k,
        Err(e) => return Reply::BadRequest(format!("cannot extract record key: {e}")),
    };
    produce(ing, source, headers, key.as_deref(), verified).await
}

/// Reads the body, stopping as soon as it exceeds `limit` (it is never fully buffered).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Reply> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Reply::PayloadTooLarge(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            Reply::PayloadTooLarge(limit)
        } else {
            Reply::BadRequest("could not read the request body".into())
        }
    })
}

/// The URL the sender signed, as the source's `verify` table says to find it.
fn signed_url(
    source: &Source,
    uri: &Uri,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Result<String, UrlError> {
    (source.signed_url).resolve(uri.path(), uri.query(), headers, peer)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Record headers: the forwarded HTTP headers, then hookbridge's own.
fn record_headers(source: &Source, headers: &HeaderMap) -> OwnedHeaders {
    let mut out = OwnedHeaders::new_with_capacity(source.forward_headers.len() + 4);
    for name in &source.forward_headers {
        for value in headers.get_all(name) {
            out = out.insert(Header {
                key: name.as_str(),
                value: Some(value.as_bytes()),
            });
        }
    }
    let received_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let tp = trace::traceparent(headers);
    out = out
        .insert(Header {
            key: kh::SOURCE,
            value: Some(source.name.as_bytes()),
        })
        .insert(Header {
            key: kh::RECEIVED_AT,
            value: Some(received_at.as_bytes()),
        })
        .insert(Header {
            key: kh::TRACEPARENT,
            value: Some(tp.as_bytes()),
        });
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        out = out.insert(Header {
            key: kh::CONTENT_TYPE,
            value: Some(ct.as_bytes()),
        });
    }
    out
}

async fn produce(
    ing: &Ingress,
    source: &Source,
    headers: &HeaderMap,
    key: Option<&[u8]>,
    verified: Verified<'_>,
) -> Reply {
    let body = verified.body();
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&source.topic)
        .payload(body)
        .headers(record_headers(source, headers));
    if let Some(k) = key {
        record = record.key(k);
    }
    let started = Instant::now();
    // librdkafka gives up on the record after `message.timeout.ms` (= produce_timeout);
    // the outer timeout is a backstop so the sender is answered within the deadline even
    // if the queue itself is stuck. A timed-out record may still land later: the sender
    // got a 503, retries, and the record is duplicated rather than lost.
    let sent = tokio::time::timeout(
        ing.produce_timeout + Duration::from_millis(500),
        producer::send_acked(&ing.producer, record, ing.produce_timeout),
    )
    .await;
    match sent {
        Ok(Ok(_acked)) => {
            ing.metrics
                .produce_latency
                .with_label_values(&[&source.name])
                .observe(started.elapsed().as_secs_f64());
            Reply::Accepted
        }
        Ok(Err(e)) if producer::is_too_large(&e) => {
            tracing::error!(source = %source.name, topic = %source.topic, bytes = body.len(), error = %e, "Kafka refused the webhook as too large: raise the broker's message.max.bytes and the topic's max.message.bytes (see `hookbridge check`), or lower max_body");
            Reply::RecordTooLarge
        }
        Ok(Err(e)) => {
            tracing::warn!(source = %source.name, topic = %source.topic, error = %e, "Kafka did not acknowledge the webhook");
            Reply::Unavailable("Kafka did not acknowledge the record; retry later")
        }
        Err(_) => {
            tracing::warn!(source = %source.name, topic = %source.topic, "Kafka acknowledgement timed out");
            Reply::Unavailable("Kafka did not acknowledge the record in time; retry later")
        }
    }
}
