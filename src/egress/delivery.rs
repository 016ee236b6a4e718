//! Delivering one record: attempts with backoff until the destination takes it (2xx) or
//! it is dead-lettered with the broker's acknowledgement. Cancellation (revoke,
//! shutdown) abandons the record unfinished, so its offset is never committed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::{Bytes, BytesMut};
use governor::DefaultDirectRateLimiter;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::breaker::{Admission, Breaker, RecordKey};
use super::dlq::{self, DeadLetter};
use super::outcome::{self, Outcome};
use super::record::Record;
use super::request::{Prepared, Refused, Shaper};
use super::retry;
use super::sign::Signer;
use super::token::TokenSource;
use crate::connectors::sink::Credentials;
use crate::connectors::Sink;
use crate::kafka::{envelope, producer};
use crate::telemetry::sink::{
    AttemptEnded, DeadLetterFailed, DeadLettered, RecordFinished, RetryScheduled, SinkTelemetry,
    UndeliverableWithoutDlq,
};
use crate::telemetry::trace;

/// Standard Webhooks header names, parsed once.
const WEBHOOK_ID: HeaderName = HeaderName::from_static(envelope::WEBHOOK_ID);
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static(envelope::WEBHOOK_TIMESTAMP);
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static(envelope::WEBHOOK_SIGNATURE);
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// What ends a delivery early: `cancel` (revoke, shutdown) stops it at its next wait;
/// `abort` (the drain deadline passed) also cuts off an attempt in progress.
#[derive(Clone, Copy)]
pub struct Stop<'a> {
    pub cancel: &'a CancellationToken,
    pub abort: &'a CancellationToken,
}

/// Failed probes of one record that do not count against its attempts before one does.
const FREE_PROBES: u32 = 3;

/// How a record's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The destination answered 2xx.
    Delivered,
    /// Written to the DLQ and acknowledged.
    DeadLettered,
    /// The sink's filter let it through without a request.
    Filtered,
    /// Stopped by revoke or shutdown: not finished, the offset must not move past it.
    Abandoned,
}

/// Everything the deliveries of one sink share.
pub struct Destination {
    pub sink: Sink,
    /// One pooled client per sink.
    client: reqwest::Client,
    /// Filter, URL and header templates, transform.
    shaper: Shaper,
    /// OAuth2 client credentials, when `auth.oauth2` is set.
    tokens: Option<TokenSource>,
    /// Content-Type default and configured headers, built once.
    base_headers: HeaderMap,
    signer: Option<Signer>,
    limiter: Option<DefaultDirectRateLimiter>,
    permits: Semaphore,
    breaker: Breaker,
    producers: dlq::Producers,
    telemetry: Arc<SinkTelemetry>,
    /// Fired on shutdown: a failed attempt is not retried (the record stays unfinished
    /// and is delivered after the restart).
    no_retry: CancellationToken,
    /// Deliveries started by the dispatcher that have not reached their first attempt.
    fresh: AtomicUsize,
    /// Signalled whenever one of them does (or gives up).
    fresh_left: Notify,
}

/// A dispatcher's right to start one delivery: at most `concurrency` started deliveries
/// wait for their first attempt at a time. Records beyond that stay plain data in the
/// dispatcher's queue instead of futures parked on the semaphore, so memory and wakeups
/// follow the work in progress, not the backlog. Returned when the first attempt starts.
pub struct Ticket(Arc<Destination>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fresh.fetch_sub(1, Ordering::AcqRel);
        self.0.fresh_left.notify_one();
    }
}

impl Destination {
    pub fn new(
        sink: Sink,
        producers: dlq::Producers,
        telemetry: Arc<SinkTelemetry>,
    ) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(sink.timeout)
            .connect_timeout(sink.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(sink.concurrency)
            .user_agent(concat!("hookbridge/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &sink.tls_files.ca {
            for cert in reqwest::Certificate::from_pem_bundle(ca)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some((cert, key)) = &sink.tls_files.identity {
            builder = builder.identity(reqwest::Identity::from_pkcs8_pem(
                cert,
                key.expose().as_bytes(),
            )?);
        }
        let client = builder.build()?;
        let mut base_headers = HeaderMap::new();
        base_headers.insert(axum::http::header::CONTENT_TYPE, sink.content_type.clone());
        for (k, v) in &sink.headers {
            base_headers.insert(k.clone(), v.clone());
        }
        let tokens = match &sink.credentials {
            None => None,
            Some(Credentials::Header(v)) => {
                base_headers.insert(axum::http::header::AUTHORIZATION, v.clone());
                None
            }
            Some(Credentials::OAuth2 {
                token_url,
                client_id,
                client_secret,
                scopes,
                audience,
                client_auth,
            }) => Some(TokenSource::new(
                client.clone(),
                token_url.clone(),
                client_id.clone(),
                client_secret.clone(),
                scopes.clone(),
                audience.clone(),
                *client_auth,
            )),
        };
        let signer = sink.signing_key.as_ref().and_then(Signer::new);
        let breaker = Breaker::new(
            sink.breaker.failures,
            sink.breaker.cooldown.0,
            telemetry.breaker.clone(),
            telemetry.name.clone(),
        );
        Ok(Self {
            fresh: AtomicUsize::new(0),
            fresh_left: Notify::new(),
            no_retry: CancellationToken::new(),
            limiter: sink.rate_limit.map(|r| r.limiter()),
            permits: Semaphore::new(sink.concurrency),
            client,
            shaper: Shaper::new(&sink),
            tokens,
            base_headers,
            signer,
            breaker,
            producers,
            telemetry,
            sink,
        })
    }

    /// From now on, failed attempts end the delivery as abandoned instead of waiting
    /// to retry (graceful shutdown).
    pub fn stop_retrying(&self) {
        self.no_retry.cancel();
    }

    /// A ticket to start one more delivery, when fewer than `concurrency` are waiting
    /// for their first attempt.
    pub fn ticket(self: &Arc<Self>) -> Option<Ticket> {
        let mut n = self.fresh.load(Ordering::Acquire);
        loop {
            if n >= self.sink.concurrency {
                return None;
            }
            match self
                .fresh
                .compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(Ticket(self.clone())),
                Err(now) => n = now,
            }
        }
    }

    /// Resolves when a ticket may be free again.
    pub async fn ticket_returned(&self) {
        self.fresh_left.notified().await
    }

    pub fn telemetry(&self) -> &Arc<SinkTelemetry> {
        &self.telemetry
    }

    fn name(&self) -> &str {
        &self.sink.name
    }

    /// Delivers `record`, retrying as the policy says. Returns only when the record is
    /// finished or `cancel` fired.
    /// With a `ticket`, it is handed back when the first attempt starts. `cancel` stops
    /// waiting and retrying; `abort` also cuts off an attempt in progress.
    pub async fn deliver(&self, record: &Record, stop: Stop<'_>, ticket: Option<Ticket>) -> Finish {
        let Some(shaped) = self.shaper.shape_in_time(record, stop.cancel).await else {
            return Finish::Abandoned;
        };
        let finish = match shaped {
            Ok(Some(request)) => self.attempts(record, &request, stop, ticket).await,
            Ok(None) => Finish::Filtered,
            Err(refused) => {
                drop(ticket);
                self.refuse(record, refused, stop.cancel).await
            }
        };
        match finish {
            Finish::Delivered => RecordFinished::Delivered.emit(&self.telemetry),
            Finish::DeadLettered => RecordFinished::DeadLettered.emit(&self.telemetry),
            Finish::Filtered => RecordFinished::Filtered.emit(&self.telemetry),
            Finish::Abandoned => {}
        }
        finish
    }

    /// A record that cannot be shaped is dead-lettered at once: no attempt could fix it,
    /// and it is never sent anywhere else. Without a DLQ it is not dropped either: it
    /// holds its lane like any undeliverable record, until revoke or shutdown.
    async fn refuse(
        &self,
        record: &Record,
        refused: Refused,
        cancel: &CancellationToken,
    ) -> Finish {
        let id = record.webhook_id();
        if self.sink.dlq_topic.is_some() {
            let now = SystemTime::now();
            let dl = DeadLetter {
                reason: refused.reason,
                status: None,
                error: refused.error,
                attempts: 0,
                first_attempt: now,
                last_attempt: now,
                response: Bytes::new(),
            };
            return self.dead_letter(record, &id, &dl, cancel).await;
        }
        loop {
            UndeliverableWithoutDlq {
                id: &id,
                error: refused.error,
                attempts: 0,
            }
            .emit(&self.telemetry);
            tokio::select! {
                _ = cancel.cancelled() => return Finish::Abandoned,
                _ = self.no_retry.cancelled() => return Finish::Abandoned,
                _ = tokio::time::sleep(self.sink.retry.max.0) => {}
            }
        }
    }

    async fn attempts(
        &self,
        record: &Record,
        request: &Prepared<'_>,
        stop: Stop<'_>,
        mut ticket: Option<Ticket>,
    ) -> Finish {
        let cancel = stop.cancel;
        let id = record.webhook_id();
        let key: RecordKey = (record.tp.topic.clone(), record.tp.partition, record.offset);
        let mut first_attempt = None;
        // Time spent attempting and backing off: waiting for the breaker, a concurrency
        // permit or a rate-limit token is not the record's fault and does not count
        // against `retry.max_elapsed`, nor does a probe that failed without counting.
        let mut spent = Duration::ZERO;
        let mut attempts = 0u32;
        // Failed probes of this record that did not count: every third one does, so
        // records taking turns at probing a destination that refuses them all are still
        // dead-lettered in the end (an outage only slows their attempts down).
        let mut free_probes = 0u32;
        // A 401 to an OAuth2 token is answered with one fresh token and an immediate
        // retry that does not count; a second 401 follows the status policy.
        let mut refreshed = false;
        loop {
            if cancel.is_cancelled() {
                return Finish::Abandoned;
            }
            // Waiting for a token is not the record's fault: no attempt is spent on it.
            let authorization = match &self.tokens {
                None => None,
                Some(tokens) => tokio::select! {
                    biased;
                    a = tokens.authorization(cancel, &self.telemetry) => match a {
                        Some(a) => Some(a),
                        None => return Finish::Abandoned,
                    },
                    _ = self.no_retry.cancelled() => return Finish::Abandoned,
                },
            };
            // On shutdown a record still waiting for the breaker gives up at once (it is
            // delivered after the restart); one that may go now still gets its attempt.
            let admission = tokio::select! {
                biased;
                a = self.breaker.admit(cancel, &key) => a,
                _ = self.no_retry.cancelled() => Admission::Cancelled,
            };
            if admission == Admission::Cancelled {
                return Finish::Abandoned;
            }
            let Some(permit) = self.slot(cancel).await else {
                if matches!(admission, Admission::Probe { .. }) {
                    // Nobody else may probe while this one is out: hand the turn back.
                    self.breaker.release_probe();
                }
                return Finish::Abandoned;
            };
            attempts += 1;
            first_attempt.get_or_insert_with(SystemTime::now);
            drop(ticket.take());
            let started = Instant::now();
            self.telemetry.in_flight.inc();
            // A revoked partition's attempt is cut off at the drain deadline: the new
            // owner delivers the record again, and a late answer here must not land
            // after that owner's later records of the same key.
            let attempted = tokio::select! {
                biased;
                r = self.attempt(record, request, &id, authorization.as_ref()) => Some(r),
                _ = stop.abort.cancelled() => None,
            };
            self.telemetry.in_flight.dec();
            let Some((outcome, response)) = attempted else {
                if matches!(admission, Admission::Probe { .. }) {
                    self.breaker.release_probe();
                }
                return Finish::Abandoned;
            };
            drop(permit);
            let took = started.elapsed();
            AttemptEnded {
                result: outcome.label(),
                seconds: started.elapsed().as_secs_f64(),
            }
            .emit(&self.telemetry);
            if let (Some(tokens), Some(used)) = (&self.tokens, &authorization) {
                if outcome.status() == Some(401) && !refreshed {
                    refreshed = true;
                    tokens.refused(used);
                    attempts -= 1;
                    // An answer: the destination is reachable (and a probe is over).
                    self.breaker.healthy();
                    continue;
                }
            }

            let mut free = false;
            let (error, retry_after, permanent) = match &outcome {
                Outcome::Delivered => {
                    self.breaker.healthy();
                    return Finish::Delivered;
                }
                Outcome::Retryable {
                    reason,
                    retry_after,
                    ..
                } => {
                    match admission {
                        // A probe that could not even connect says nothing about this
                        // record (hosts never come from a record): the destination is
                        // down, and a record waiting alone through an outage must not
                        // be dead-lettered for it.
                        Admission::Probe { .. } if *reason == "connect" => {
                            self.breaker.failed(Some(&key));
                            attempts -= 1;
                            free = true;
                        }
                        Admission::Probe { counts: false } if free_probes + 1 < FREE_PROBES => {
                            // The destination is still down; the record is not at fault.
                            self.breaker.failed(Some(&key));
                            free_probes += 1;
                            attempts -= 1;
                            free = true;
                        }
                        Admission::Probe { counts: false } => {
                            self.breaker.failed(Some(&key));
                            free_probes = 0;
                            spent += took;
                        }
                        Admission::Probe { counts: true } => {
                            self.breaker.failed(Some(&key));
                            spent += took;
                        }
                        _ => {
                            self.breaker.failed(None);
                            spent += took;
                        }
                    }
                    (*reason, *retry_after, false)
                }
                Outcome::Permanent { reason, .. } => {
                    // An answer, even a refusal, means the destination is reachable.
                    self.breaker.healthy();
                    spent += took;
                    (*reason, None, true)
                }
            };
            let exhausted = permanent || self.exhausted(attempts, spent);
            if exhausted && self.sink.dlq_topic.is_some() {
                let dl = DeadLetter {
                    reason: if permanent { "permanent" } else { "exhausted" },
                    status: outcome.status(),
                    error,
                    attempts,
                    first_attempt: first_attempt.unwrap_or_else(SystemTime::now),
                    last_attempt: SystemTime::now(),
                    response,
                };
                return self.dead_letter(record, &id, &dl, cancel).await;
            }
            let wait = if exhausted {
                // No DLQ: never drop, never skip. Keep trying at the slowest pace; only
                // this key (or partition) waits.
                UndeliverableWithoutDlq {
                    id: &id,
                    error,
                    attempts,
                }
                .emit(&self.telemetry);
                self.sink.retry.max.0
            } else {
                retry::backoff(&self.sink.retry, attempts, retry_after)
            };
            if self.no_retry.is_cancelled() {
                return Finish::Abandoned;
            }
            RetryScheduled {
                id: &id,
                error,
                answer: outcome.status().map(|st| (st, &response[..])),
                attempts,
                wait,
            }
            .emit(&self.telemetry);
            tokio::select! {
                _ = cancel.cancelled() => return Finish::Abandoned,
                _ = self.no_retry.cancelled() => return Finish::Abandoned,
                _ = tokio::time::sleep(wait) => {}
            }
            if !free {
                spent += wait;
            }
        }
    }

    /// Waits for a concurrency permit, then a rate-limit token, so at most `concurrency`
    /// deliveries ever wait on the limiter and a burst never exceeds it; `None` when
    /// cancelled.
    async fn slot(&self, cancel: &CancellationToken) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return None,
            p = self.permits.acquire() => p.ok()?,
        };
        if let Some(limiter) = &self.limiter {
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = limiter.until_ready() => {}
            }
        }
        Some(permit)
    }

    fn exhausted(&self, attempts: u32, spent: Duration) -> bool {
        let retry = &self.sink.retry;
        (retry.max_attempts > 0 && attempts >= retry.max_attempts)
            || retry.max_elapsed.is_some_and(|m| spent >= m.0)
    }

    /// One HTTP attempt: the outcome and, for failures, the start of the response body.
    async fn attempt(
        &self,
        record: &Record,
        prepared: &Prepared<'_>,
        id: &str,
        authorization: Option<&HeaderValue>,
    ) -> (Outcome, Bytes) {
        let mut headers = self.request_headers(record, prepared, id);
        if let Some(a) = authorization {
            headers.insert(axum::http::header::AUTHORIZATION, a.clone());
        }
        let request = self
            .client
            .request(self.sink.method.clone(), prepared.url.as_ref().clone())
            .headers(headers)
            .body(prepared.body.clone());
        match request.send().await {
            Err(e) => (outcome::from_error(&e), Bytes::new()),
            Ok(mut resp) => {
                let outcome =
                    self.sink
                        .status
                        .classify(resp.status(), resp.headers(), SystemTime::now());
                let excerpt = if outcome == Outcome::Delivered {
                    Bytes::new()
                } else {
                    read_excerpt(&mut resp).await
                };
                (outcome, excerpt)
            }
        }
    }

    /// Forwarded and templated headers, then the configured ones (so a record header can
    /// never replace the sink's credentials), then the content type; the webhook id,
    /// signature and trace context last, so nothing taken from a record can replace them.
    fn request_headers(&self, record: &Record, prepared: &Prepared<'_>, id: &str) -> HeaderMap {
        let mut h = prepared.headers.clone();
        h.reserve(self.base_headers.len() + 5);
        for (k, v) in &self.base_headers {
            h.insert(k.clone(), v.clone());
        }
        if let Some(ct) = &prepared.content_type {
            h.insert(axum::http::header::CONTENT_TYPE, ct.clone());
        } else if let Some(ct) = record
            .header(crate::kafka::headers::CONTENT_TYPE)
            .and_then(|v| HeaderValue::from_maybe_shared(v.clone()).ok())
        {
            h.insert(axum::http::header::CONTENT_TYPE, ct);
        }
        if let Some(signer) = &self.signer {
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let sig = signer.sign(id, ts, &prepared.body);
            h.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(ts));
            if let Ok(v) = HeaderValue::from_str(&sig) {
                h.insert(WEBHOOK_SIGNATURE, v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(id) {
            h.insert(WEBHOOK_ID, v);
        }
        let parent = record
            .header(crate::kafka::headers::TRACEPARENT)
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or("");
        if let Ok(v) = HeaderValue::from_str(&trace::child_of(parent)) {
            h.insert(TRACEPARENT, v);
        }
        h
    }

    /// Writes to the DLQ until the broker acknowledges (or cancellation). A dead letter
    /// refused for its size is written again alone, then cut (see `dlq`); any other
    /// failure is retried with backoff, the record unfinished meanwhile.
    async fn dead_letter(
        &self,
        record: &Record,
        id: &str,
        dl: &DeadLetter,
        cancel: &CancellationToken,
    ) -> Finish {
        let Some(topic) = &self.sink.dlq_topic else {
            return Finish::Abandoned;
        };
        let mut wait = Duration::from_millis(500);
        let mut way = dlq::Way::FIRST;
        loop {
            let fit = way.fit;
            let error = match dlq::write(&self.producers, topic, record, dl, self.name(), way).await
            {
                Ok(_) => {
                    DeadLettered {
                        id,
                        reason: dl.reason,
                        status: dl.status,
                        response: &dl.response,
                        attempts: dl.attempts,
                        dlq: topic,
                        cut: (fit != dlq::Fit::Whole).then_some(&fit as &dyn std::fmt::Debug),
                    }
                    .emit(&self.telemetry);
                    return Finish::DeadLettered;
                }
                Err(e) => e,
            };
            let next = producer::is_too_large(&error)
                .then(|| way.after_too_large(record.value.len()))
                .flatten();
            DeadLetterFailed {
                id,
                dlq: topic,
                error: &error,
                class: producer::failure_class(&error),
                cut_next: next.is_some_and(|n| n.fit != fit),
            }
            .emit(&self.telemetry);
            if let Some(next) = next {
                way = next;
                continue;
            }
            tokio::select! {
                _ = cancel.cancelled() => return Finish::Abandoned,
                _ = self.no_retry.cancelled() => return Finish::Abandoned,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }
}

/// Up to [`dlq::RESPONSE_EXCERPT`] bytes of a failed response's body.
async fn read_excerpt(resp: &mut reqwest::Response) -> Bytes {
    let mut buf = BytesMut::new();
    while buf.len() < dlq::RESPONSE_EXCERPT {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                buf.extend_from_slice(&chunk[..chunk.len().min(dlq::RESPONSE_EXCERPT - buf.len())])
            }
            _ => break,
        }
    }
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::connectors::{load_file, Connectors};
    use crate::egress::record::TopicPartition;
    use crate::telemetry::Metrics;

    /// Without a DLQ, a record that ran out of attempts is never dropped and never
    /// reported finished (so never committed): it keeps being attempted, at the maximum
    /// backoff, until its partition is given up.
    #[tokio::test]
    async fn out_of_attempts_without_a_dlq_retries_at_the_maximum_backoff_and_never_finishes() {
        let arrivals = Arc::new(Mutex::new(Vec::<Instant>::new()));
        let seen = arrivals.clone();
        let app = axum::Router::new().fallback(move || {
            seen.lock().unwrap().push(Instant::now());
            async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let text = format!(
            "[sink]\nname = \"orders\"\ntopics = [\"orders\"]\nurl = \"{url}\"\ntimeout = \"5s\"\n\
             retry = {{ max_attempts = 2, initial = \"10ms\", max = \"300ms\" }}\n\
             breaker = {{ failures = 0 }}\n"
        );
        let mut c = Connectors::default();
        load_file("orders.toml", &text, &mut c).unwrap();
        let sink = c.sinks.remove(0);
        assert!(sink.dlq_topic.is_none());
        // Created offline: a dead-letter write would fail, and none may be tried.
        let offline = || {
            rdkafka::ClientConfig::new()
                .set("bootstrap.servers", "127.0.0.1:1")
                .create()
                .unwrap()
        };
        let producer = crate::egress::dlq::Producers {
            batched: offline(),
            alone: offline(),
        };
        let telemetry = Arc::new(SinkTelemetry::new(
            "orders".into(),
            Arc::new(Metrics::new()),
        ));
        let destination = Destination::new(sink, producer, telemetry).unwrap();
        let record = Record {
            tp: TopicPartition {
                topic: "orders".into(),
                partition: 0,
            },
            offset: 7,
            key: None,
            value: Bytes::from_static(b"{}"),
            headers: Vec::new(),
            epoch: 0,
            leader_epoch: -1,
        };
        let (cancel, abort) = (CancellationToken::new(), CancellationToken::new());
        let stop = Stop {
            cancel: &cancel,
            abort: &abort,
        };
        let deliver = destination.deliver(&record, stop, None);
        tokio::pin!(deliver);
        // Five attempts: two within the policy, three past it.
        let watch = async {
            while arrivals.lock().unwrap().len() < 5 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            finish = &mut deliver => panic!("ended without being delivered: {finish:?}"),
            () = watch => {}
        }
        let at = arrivals.lock().unwrap().clone();
        for (i, gap) in at.windows(2).map(|w| w[1] - w[0]).enumerate().skip(1) {
            // The sleep before each attempt past the second is exactly `retry.max`.
            assert!(
                gap >= Duration::from_millis(290),
                "attempt {} came {gap:?} after the one before",
                i + 2
            );
        }
        cancel.cancel();
        assert_eq!(deliver.await, Finish::Abandoned, "given up, not finished");
    }
}
