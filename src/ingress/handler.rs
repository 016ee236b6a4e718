//! The webhook handler: route → endpoint check (no body) → method → client budget → body
//! budget → body (deadline, rate, size) → in-flight cap → handshake that carries no
//! secret → verify → source rate limit → handshake → key → produce and await the
//! acknowledgement (then the provider's own answer, if it needs one). Each step either passes the request on or decides the
//! reply; the record reaches Kafka only after `verify`, and only verified requests are
//! charged to a source's rate limit.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Extensions, HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::Semaphore;

use super::body::{self, BodyBudget, BodyError, BodyLimits};
use super::client_limit::UnverifiedLimit;
use super::replay::{Delivery, ReplayGuard};
use super::response::Reply;
use super::server::ClientAddr;
use super::share::{ShareLimits, Shares};
use crate::config::rate_limit::RateLimitConfig;
use crate::config::settings::HttpSettings;
use crate::connectors::Source;
use crate::kafka::envelope::IngressHeaders;
use crate::kafka::producer;
use crate::telemetry::source::{
    ProduceFailed, SourceTelemetry, WebhookAccepted, WebhookAnswered, WebhookRejected,
};
use crate::telemetry::trace;
use crate::telemetry::Metrics;
use crate::verify::url::UrlError;
use crate::verify::{Handshake, Verified, WebhookRequest};

/// What bounds the work and memory unauthenticated clients can cause.
#[derive(Debug, Clone)]
pub struct Protection {
    /// Requests past their body at once (verifying or waiting for the broker).
    pub max_in_flight: usize,
    /// Longest time a body may take to arrive.
    pub body_timeout: Duration,
    /// Bytes per second a body must keep up (0 = no rate check).
    pub min_body_rate: u64,
    /// Request body bytes held in memory by all requests together.
    pub max_body_bytes_in_flight: usize,
    /// Of those, held by the requests of one client address (IPv6: one /64).
    pub max_body_bytes_per_address: usize,
    /// Failed verifications allowed per client address.
    pub unverified_rate_limit: Option<RateLimitConfig>,
    /// Requests past their body at once from addresses over that budget …
    pub probation_slots: usize,
    /// … of which one address (IPv6: one /64) holds at most this many.
    pub probation_slots_per_address: usize,
}

impl Protection {
    pub fn from_settings(http: &HttpSettings) -> Self {
        Self {
            max_in_flight: http.max_in_flight,
            body_timeout: http.body_timeout.0,
            min_body_rate: http.min_body_rate.0,
            max_body_bytes_in_flight: usize::try_from(http.max_body_bytes_in_flight.0)
                .unwrap_or(usize::MAX),
            max_body_bytes_per_address: usize::try_from(http.max_body_bytes_per_address.0)
                .unwrap_or(usize::MAX),
            unverified_rate_limit: Some(http.unverified_rate_limit),
            probation_slots: http.probation_slots,
            probation_slots_per_address: http.probation_slots_per_address,
        }
    }
}

/// A served source, its telemetry handle and its replay guard.
struct Endpoint {
    source: Source,
    telemetry: SourceTelemetry,
    replay: Option<ReplayGuard>,
}

/// Everything the webhook listener needs, shared by all requests.
pub struct Ingress {
    sources: HashMap<String, Arc<Endpoint>>,
    producer: FutureProducer,
    produce_timeout: Duration,
    in_flight: Semaphore,
    /// Requests from addresses over their failure budget served at once, all such
    /// addresses together, a few per address. Such an address is not refused outright: a
    /// provider's shared sending address may be the one an attacker's failures spent, and
    /// its real deliveries must still get through; they just share a few slots, and one
    /// address's slow uploads cannot hold every slot.
    probation: Arc<Shares>,
    body_timeout: Duration,
    min_body_rate: u64,
    budget: BodyBudget,
    unverified: Option<UnverifiedLimit>,
}

impl Ingress {
    pub fn new(
        sources: impl IntoIterator<Item = Source>,
        producer: FutureProducer,
        produce_timeout: Duration,
        protection: &Protection,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            sources: sources
                .into_iter()
                .map(|source| {
                    let telemetry = SourceTelemetry::new(source.name.clone(), metrics.clone());
                    let path = source.path.clone();
                    let replay = (source.replay_guard.as_ref()).map(|g| ReplayGuard::new(g.window));
                    let endpoint = Endpoint {
                        source,
                        telemetry,
                        replay,
                    };
                    (path, Arc::new(endpoint))
                })
                .collect(),
            producer,
            produce_timeout,
            in_flight: Semaphore::new(protection.max_in_flight.max(1)),
            probation: Shares::new(ShareLimits::new(
                protection.probation_slots.max(1),
                protection.probation_slots_per_address.max(1),
            )),
            body_timeout: protection.body_timeout,
            min_body_rate: protection.min_body_rate,
            budget: BodyBudget::new(
                protection.max_body_bytes_in_flight,
                protection.max_body_bytes_per_address,
            ),
            unverified: protection
                .unverified_rate_limit
                .as_ref()
                .map(UnverifiedLimit::new),
        }
    }

    /// Names of the sources served, for the startup log.
    pub fn paths(&self) -> impl Iterator<Item = (&str, &str)> {
        self.sources
            .iter()
            .map(|(p, e)| (p.as_str(), e.source.name.as_ref()))
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
    extensions: Extensions,
    body: Body,
) -> Response {
    let Some(endpoint) = ing.sources.get(uri.path()).cloned() else {
        return Reply::NotFound.into_response();
    };
    let client = client_ip(&extensions);
    let request = Incoming {
        method: &method,
        uri: &uri,
        headers: &headers,
        client,
    };
    let reply = receive(&ing, &endpoint, request, body).await;
    WebhookAnswered {
        status: reply.status(),
    }
    .emit(&endpoint.telemetry);
    reply.into_response()
}

/// The parts of a request the steps below look at.
#[derive(Clone, Copy)]
struct Incoming<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    client: IpAddr,
}

/// The client's address; requests that did not come through the listener (router tests)
/// share the unspecified address.
fn client_ip(extensions: &Extensions) -> IpAddr {
    extensions
        .get::<ClientAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.0.ip())
}

async fn receive(ing: &Ingress, endpoint: &Endpoint, req: Incoming<'_>, body: Body) -> Reply {
    let source = &endpoint.source;
    // A provider checking the endpoint (Meta's hub.challenge, Graph's validationToken):
    // answered here, before any body is read.
    if let Some(h) = source.verifier.subscription(req.method, req.uri.query()) {
        return unverified_handshake(ing, req.client, h);
    }
    if req.method == Method::OPTIONS {
        // The CloudEvents webhook abuse-protection handshake: the sender asks whether
        // this endpoint accepts its deliveries. No body, nothing produced.
        if let Some(check) = source.origin_check(req.headers) {
            return Reply::OriginCheck(check);
        }
    }
    if req.method != Method::POST {
        return Reply::MethodNotAllowed;
    }
    // The reservation lives until the reply: the body's memory is counted while held.
    let Some(mut reservation) = ing.budget.start(req.client) else {
        return Reply::Unavailable("too many request bytes in flight");
    };
    let limits = BodyLimits {
        max_body: source.max_body,
        deadline: ing.body_timeout,
        min_rate: ing.min_body_rate,
    };
    let body = match body::read(body, content_length(req.headers), limits, &mut reservation).await {
        Ok(b) => b,
        Err(e) => {
            // A body over max_body, or cut off as too slow, is charged like a failed
            // signature: an address that keeps stalling bodies goes on probation, where
            // it holds at most a couple of slots. One slow body from a bad link costs
            // one unit of a budget of many; a provider sharing a stalling address still
            // gets its probation share.
            if matches!(
                e,
                BodyError::TooLarge(_) | BodyError::TooSlow | BodyError::Deadline
            ) {
                if let Some(u) = ing.unverified.as_ref() {
                    u.failed(req.client);
                }
            }
            return body_reply(e);
        }
    };
    // Probation is decided once the body is in: a slot held during a slow upload would
    // let one address (or everyone behind one proxy) keep every over-budget delivery out.
    let _probation = match ing.unverified.as_ref().and_then(|u| u.blocked(req.client)) {
        None => None,
        Some(wait) => match ing.probation.take(req.client) {
            Ok(slot) => Some(slot),
            Err(_) => return Reply::RateLimited(wait),
        },
    };
    let Ok(_permit) = ing.in_flight.try_acquire() else {
        return Reply::Unavailable("too many requests in flight");
    };
    if let Some(h) = source.verifier.open_handshake(req.headers, &body) {
        return unverified_handshake(ing, req.client, h);
    }
    let url = match signed_url(source, req.uri, req.headers, Some(req.client)) {
        Ok(url) => url,
        Err(e) => {
            tracing::info!(source = %source.name, reason = %e, client = %req.client, "webhook rejected: no trusted signed URL");
            return Reply::Unauthorized("invalid signature");
        }
    };
    let request = WebhookRequest {
        headers: req.headers,
        body: &body,
        url: &url,
        now: unix_now(),
    };
    let verified = match verify(ing, endpoint, req.client, &request) {
        Ok(verified) => verified,
        Err(reply) => return reply,
    };
    if let Some(limiter) = &source.limiter {
        if let Err(not_until) = limiter.check() {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            return Reply::RateLimited(wait);
        }
    }
    if let Some(h) = source.verifier.handshake(&verified) {
        if h.status == 400 {
            let reason = String::from_utf8_lossy(&h.body);
            tracing::warn!(source = %source.name, %reason, "signed request refused: the source's scheme cannot handle it");
        }
        return Reply::Handshake(h);
    }
    let key = match source.key.extract(req.headers, &body) {
        Ok(k) => k,
        Err(e) => return Reply::BadRequest(format!("cannot extract record key: {e}")),
    };
    // After verification, like the key: a `json:` rule reads a signed body.
    let event_type = source.event_type_of(req.headers, &body);
    let routed = match &source.routing {
        None => None,
        Some(r) => match r.topic(event_type.as_deref()) {
            Ok(topic) => Some(topic),
            Err(e) => {
                tracing::info!(source = %source.name, reason = %e, "webhook refused: no allowed topic");
                return Reply::BadRequest(format!("cannot route the webhook: {e}"));
            }
        },
    };
    let record = Routed {
        topic: routed.as_deref().unwrap_or(&source.topic),
        key: key.as_deref(),
        event_type: event_type.as_deref(),
    };
    let acknowledgement = source.verifier.acknowledgement(&verified);
    // The delivery the replay guard knows this request by: its provider's id and body.
    // Without an id it is not guarded (produced as usual).
    let delivery = (source.replay_guard.as_ref())
        .and_then(|g| g.id.extract(req.headers, &body).ok().flatten())
        .map(|id| Delivery::new(&id, &body));
    let replayed =
        (endpoint.replay.as_ref().zip(delivery.as_ref())).is_some_and(|(g, d)| g.seen(d));
    let reply = if replayed {
        // This id with this body was acknowledged within the window, so it is in Kafka
        // already: answered, not produced again.
        tracing::debug!(source = %source.name, "replayed delivery answered without producing it again");
        Reply::Accepted
    } else {
        produce(ing, endpoint, req.headers, record, verified).await
    };
    match reply {
        Reply::Accepted => {
            if let (Some(guard), Some(delivery)) = (&endpoint.replay, delivery) {
                guard.remember(delivery);
            }
            // The provider's own answer, only once the record is in Kafka.
            acknowledgement.map_or(Reply::Accepted, Reply::Handshake)
        }
        other => other,
    }
}

/// Where a verified webhook goes, and what it is keyed and typed by.
struct Routed<'a> {
    topic: &'a str,
    key: Option<&'a [u8]>,
    event_type: Option<&'a [u8]>,
}

/// A handshake answered before any signature is checked; a refused one (a wrong topic,
/// a malformed validation) is charged to the client's address like a failed signature,
/// so it cannot be used to probe for free.
fn unverified_handshake(ing: &Ingress, client: IpAddr, h: Handshake) -> Reply {
    if h.status >= 400 {
        if let Some(wait) = ing.unverified.as_ref().and_then(|u| u.failed(client)) {
            return Reply::RateLimited(wait);
        }
    }
    Reply::Handshake(h)
}

/// Checks the signature; a failure is charged to the client's address.
fn verify<'a>(
    ing: &Ingress,
    endpoint: &Endpoint,
    client: IpAddr,
    request: &WebhookRequest<'a>,
) -> Result<Verified<'a>, Reply> {
    let e = match endpoint.source.verifier.verify(request) {
        Ok(verified) => return Ok(verified),
        Err(e) => e,
    };
    WebhookRejected {
        reason: e.reason(),
        client,
    }
    .emit(&endpoint.telemetry);
    if let Some(wait) = ing.unverified.as_ref().and_then(|u| u.failed(client)) {
        return Err(Reply::RateLimited(wait));
    }
    Err(Reply::Unauthorized("invalid signature"))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn body_reply(e: BodyError) -> Reply {
    match e {
        BodyError::TooLarge(limit) => Reply::PayloadTooLarge(limit),
        BodyError::Deadline | BodyError::TooSlow => Reply::RequestTimeout,
        BodyError::OverBudget => Reply::Unavailable("too many request bytes in flight"),
        BodyError::Broken => Reply::BadRequest("could not read the request body".into()),
    }
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
            headers
                .iter()
                .filter(|(name, _)| {
                    source.cloudevents.is_some()
                        && name.as_str().starts_with("ce-")
                        && !crate::connectors::source::is_structured_cloudevent(headers)
                })
                .map(|(name, value)| (name.as_str(), value.as_bytes())),
        );
    IngressHeaders {
        source: &source.name,
        received_at: SystemTime::now(),
        traceparent: &trace::traceparent(headers),
        content_type: headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
    }
    .build(forwarded)
}

async fn produce(
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
        producer::send_acked(&ing.producer, record, ing.produce_timeout),
    )
    .await;
    match sent {
        Ok(Ok(_acked)) => {
            if let Some(routing) = &source.routing {
                routing.produced(topic);
            }
            WebhookAccepted {
                produce_seconds: started.elapsed().as_secs_f64(),
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
    //! The router without a socket: every reply decided before the producer is reached.
    //! The producer points at a closed port and is never asked to send.

    use std::num::NonZeroU32;

    use axum::http::{Request, StatusCode};
    use rdkafka::ClientConfig;
    use tower::ServiceExt;

    use super::*;
    use crate::connectors::{self, Connectors};

    const SECRET: &str = "router-test-secret";

    fn ingress() -> Router {
        let mut out = Connectors::default();
        connectors::load_file(
            "gh.toml",
            &format!(
                "[source]\nname = \"gh\"\npath = \"/gh\"\ntopic = \"t\"\nmax_body = \"1KiB\"\nverify = {{ scheme = \"github\", secrets = [\"{SECRET}\"] }}\n"
            ),
            &mut out,
        )
        .unwrap();
        connectors::load_file(
            "wa.toml",
            "[source]\nname = \"wa\"\npath = \"/wa\"\ntopic = \"t\"\nverify = { scheme = \"meta\", secret = \"app\", verify_token = \"tok\" }\n",
            &mut out,
        )
        .unwrap();
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .create()
            .unwrap();
        let protection = Protection {
            max_in_flight: 8,
            body_timeout: Duration::from_secs(5),
            min_body_rate: 1024,
            max_body_bytes_in_flight: 1 << 20,
            max_body_bytes_per_address: 1 << 20,
            unverified_rate_limit: Some(RateLimitConfig {
                per_second: NonZeroU32::new(1).unwrap(),
                burst: NonZeroU32::new(2),
            }),
            probation_slots: 8,
            probation_slots_per_address: 2,
        };
        let ing = Ingress::new(
            out.sources,
            producer,
            Duration::from_secs(1),
            &protection,
            Arc::new(Metrics::new()),
        );
        app(Arc::new(ing))
    }

    async fn send(
        app: &Router,
        method: &str,
        path: &str,
        body: &'static str,
        sig: &str,
    ) -> Response {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("x-hub-signature-256", sig)
            .body(Body::from(body))
            .unwrap();
        app.clone().oneshot(req).await.unwrap()
    }

    #[tokio::test]
    async fn replies_decided_before_the_producer() {
        let app = ingress();
        assert_eq!(
            send(&app, "POST", "/nope", "{}", "").await.status(),
            StatusCode::NOT_FOUND
        );
        let r = send(&app, "GET", "/gh", "", "").await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        let big: &'static str = Box::leak("x".repeat(2048).into_boxed_str());
        let r = send(&app, "POST", "/gh", big, "").await;
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let r = send(&app, "POST", "/gh", "{}", "sha256=00").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn failed_signatures_spend_the_address_budget_then_get_429() {
        let app = ingress();
        // Burst 2: two failures are 401, the third goes over and is 429 …
        for _ in 0..2 {
            let r = send(&app, "POST", "/gh", "{}", "sha256=00").await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
        let r = send(&app, "POST", "/gh", "{}", "sha256=00").await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(r.headers().contains_key(header::RETRY_AFTER));
        // … yet a correctly signed request from that address (a provider's shared
        // sending address an attacker spent) is still verified, not refused: it gets past
        // the signature to the producer, which here has no broker (503).
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(b"{}");
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let r = send(&app, "POST", "/gh", "{}", &sig).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn oversized_bodies_spend_the_address_budget_too() {
        let app = ingress();
        let big: &'static str = Box::leak("x".repeat(2048).into_boxed_str());
        for _ in 0..2 {
            let r = send(&app, "POST", "/gh", big, "sha256=00").await;
            assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        }
        // The budget (burst 2) is spent: the next failure is over it.
        let r = send(&app, "POST", "/gh", "{}", "sha256=00").await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }

    #[tokio::test]
    async fn meta_subscription_gets_its_challenge_and_a_wrong_token_403() {
        let app = ingress();
        let ok = send(
            &app,
            "GET",
            "/wa?hub.mode=subscribe&hub.verify_token=tok&hub.challenge=1158201444",
            "",
            "",
        )
        .await;
        assert_eq!(ok.status(), StatusCode::OK);
        let body = axum::body::to_bytes(ok.into_body(), 1024).await.unwrap();
        assert_eq!(body.as_ref(), b"1158201444");
        let wrong = send(
            &app,
            "GET",
            "/wa?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1",
            "",
            "",
        )
        .await;
        assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
        // Any other GET is still refused, and GitHub sources have no subscription.
        assert_eq!(
            send(&app, "GET", "/wa", "", "").await.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            send(
                &app,
                "GET",
                "/gh?hub.mode=subscribe&hub.verify_token=tok&hub.challenge=1",
                "",
                ""
            )
            .await
            .status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
