//! The webhook handler: route → endpoint check (no body) → method → client budget → body
//! budget → body (deadline, rate, size) → in-flight cap → handshake that carries no
//! secret → the provider's published keys, for the schemes that fetch theirs (after the
//! scheme's cheap checks; [`keys`](super::keys)) → verify → source rate limit → control
//! message (SNS confirmations) or handshake → key → produce and await the
//! acknowledgement (then the provider's own answer, if it needs one). Each step either
//! passes the request on or decides the reply; the record reaches Kafka only after
//! `verify`, and only verified requests are charged to a source's rate limit. The last
//! step, the record and its acknowledged production, is [`produce`](mod@produce).

mod produce;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::extract::State;
use axum::http::{header, Extensions, HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::Semaphore;

use super::body::{self, BodyBudget, BodyError, BodyLimits};
use super::client_limit::UnverifiedLimit;
use super::keys::{KeyCache, KeyError, REFRESH_FOR_UNKNOWN_KEY};
use super::replay::{Delivery, ReplayGuard};
use super::response::Reply;
use crate::config::rate_limit::RateLimitConfig;
use crate::config::settings::HttpSettings;
use crate::connectors::Source;
use crate::http::server::ClientAddr;
use crate::http::share::ShareLimits;
use crate::http::shares::Shares;
use crate::kafka::producer::Producer;
use crate::telemetry::source::{SourceTelemetry, WebhookAnswered, WebhookRejected};
use crate::telemetry::Metrics;
use crate::verify::sns::Confirmation;
use crate::verify::url::UrlError;
use crate::verify::{Handshake, Verified, VerifyError, WebhookRequest};
use produce::produce;

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
    producer: Producer,
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
    /// Providers' published verification keys, for every source.
    keys: KeyCache,
}

impl Ingress {
    pub fn new(
        sources: impl IntoIterator<Item = Source>,
        producer: Producer,
        produce_timeout: Duration,
        protection: &Protection,
        metrics: Arc<Metrics>,
    ) -> Self {
        let sources: Vec<Source> = sources.into_iter().collect();
        let largest_body = (sources.iter()).map(|s| s.max_body).max().unwrap_or(0);
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
                largest_body,
            ),
            unverified: protection
                .unverified_rate_limit
                .as_ref()
                .map(UnverifiedLimit::new),
            keys: KeyCache::new(),
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

/// Takes the request whole: the `Method`, `Uri`, `HeaderMap` and `Extensions` extractors
/// each clone theirs, a copy of every header per webhook.
async fn handle(State(ing): State<Arc<Ingress>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Some(endpoint) = ing.sources.get(parts.uri.path()).cloned() else {
        return Reply::NotFound.into_response();
    };
    let request = Incoming {
        method: &parts.method,
        uri: &parts.uri,
        headers: &parts.headers,
        client: client_ip(&parts.extensions),
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

/// Whether a request's `Transfer-Encoding` is none or `chunked` once: the HTTP server
/// takes any list that ends in `chunked` as chunked (`gzip, chunked`) and hands over the
/// body still gzipped, or, for `chunked, chunked`, still in its inner chunks. Empty list
/// elements do not count (RFC 9110 5.6.1).
fn only_chunked(headers: &HeaderMap) -> bool {
    let mut codings = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty());
    match (codings.next(), codings.next()) {
        (None, _) => true,
        (Some(only), None) => only.eq_ignore_ascii_case(b"chunked"),
        (Some(_), Some(_)) => false,
    }
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
    if !only_chunked(req.headers) {
        return Reply::TransferCodingNotImplemented;
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
            // A body over max_body, cut off as too slow, or abandoned by its client
            // after it was slow, is charged like a failed signature: an address that
            // keeps stalling bodies goes on probation, where it holds at most a couple
            // of slots. One slow body from a bad link costs one unit of a budget of
            // many; a provider sharing a stalling address still gets its probation share.
            if matches!(
                e,
                BodyError::TooLarge(_)
                    | BodyError::TooSlow
                    | BodyError::Deadline
                    | BodyError::Abandoned
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
        now: crate::clock::unix_secs(),
    };
    let verified = match verify(ing, endpoint, req.client, &request).await {
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
    if let Some(c) = source.verifier.confirmation(&verified) {
        return confirm(ing, source, c).await;
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
        topic: routed.as_ref().map_or(&source.topic, |r| r.topic()),
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
            if let Some(route) = routed.filter(|_| !replayed) {
                route.produced();
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

/// Checks the signature, with the provider's published keys for the schemes that fetch
/// theirs; a failure is charged to the client's address. No key set to be had is 503:
/// nobody could check the signature, and the provider retries.
async fn verify<'a>(
    ing: &Ingress,
    endpoint: &Endpoint,
    client: IpAddr,
    request: &WebhookRequest<'a>,
) -> Result<Verified<'a>, Reply> {
    let verifier = &endpoint.source.verifier;
    let result = match verifier.key_source(request) {
        Err(e) => Err(e),
        Ok(None) => verifier.verify(request),
        Ok(Some(source)) => {
            let keys = ing.keys.get(&source, super::keys::KEEP).await;
            let mut result =
                (keys.as_deref().map_err(|e| *e)).map(|k| verifier.verify_with(request, Some(k)));
            // A key the set lacks may be one the provider has just published.
            if let Ok(Err(VerifyError::UnknownKey)) = result {
                let keys = ing.keys.get(&source, REFRESH_FOR_UNKNOWN_KEY).await;
                result = (keys.as_deref().map_err(|e| *e))
                    .map(|k| verifier.verify_with(request, Some(k)));
            }
            match result {
                Ok(verdict) => verdict,
                // The URL the request names has no key behind it: a forged one.
                Err(KeyError::NotFound) => Err(VerifyError::UnknownKey),
                Err(e) => return Err(keys_unavailable(endpoint, e)),
            }
        }
    };
    let e = match result {
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

/// A verified SNS subscription or unsubscription confirmation: never produced. The
/// subscription is confirmed by visiting its URL only when the source says so; otherwise
/// the operator is told the URL. A confirmation that fails is 503, so SNS sends it again.
async fn confirm(ing: &Ingress, source: &Source, c: Confirmation) -> Reply {
    let answered = || {
        Reply::Handshake(Handshake {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: bytes::Bytes::from_static(b"received"),
        })
    };
    if !c.visit {
        // The URL (its token included) is for the operator to subscribe with; an
        // unsubscription's would subscribe again if opened, so it is not shown.
        if c.kind == crate::verify::sns::SUBSCRIBE {
            tracing::warn!(source = %source.name, kind = c.kind, topic = %c.topic, url = %c.url, "SNS control message answered and not produced; to subscribe, open the URL (or set confirm_subscriptions = true)");
        } else {
            tracing::warn!(source = %source.name, kind = c.kind, topic = %c.topic, "SNS control message answered and not produced");
        }
        return answered();
    }
    match ing.keys.visit(c.url).await {
        Ok(()) => {
            tracing::info!(source = %source.name, topic = %c.topic, "SNS subscription confirmed");
            answered()
        }
        Err(e) => {
            tracing::warn!(source = %source.name, topic = %c.topic, reason = %e, "SNS subscription confirmation failed; answered 503 so that SNS sends it again");
            Reply::Unavailable("subscription confirmation failed")
        }
    }
}

/// No key set to check a signature with.
fn keys_unavailable(endpoint: &Endpoint, e: KeyError) -> Reply {
    tracing::warn!(source = %endpoint.source.name, reason = %e, "webhook answered 503: the provider's verification keys are unavailable");
    Reply::Unavailable("verification keys unavailable")
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
        BodyError::Deadline | BodyError::TooSlow | BodyError::Abandoned => Reply::RequestTimeout,
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

#[cfg(test)]
mod tests;
