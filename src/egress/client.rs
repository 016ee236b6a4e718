//! The HTTP side of one sink: its pooled client (timeouts, TLS, no redirects) and one
//! attempt, a request carrying the sink's headers and credentials, the webhook id, the
//! Standard Webhooks signature and the trace context, answered with its [`Outcome`] and
//! the start of a failed response's body. Whether to attempt again is not decided here
//! (see `policy`).

use std::sync::Arc;
use std::time::SystemTime;

use axum::http::header::{CONTENT_LENGTH, HOST};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use bytes::{Bytes, BytesMut};

use super::outcome::{self, Outcome};
use super::record::Record;
use super::redact::Redact;
use super::request::Prepared;
use super::sign::Signer;
use super::token::TokenSource;
use super::{batch, dlq};
use crate::connectors::sink::Credentials;
use crate::connectors::status_policy::StatusPolicy;
use crate::connectors::Sink;
use crate::http::outbound;
use crate::kafka::envelope;
use crate::telemetry::sink::{RequestFailed, SinkTelemetry};
use crate::telemetry::trace;

/// Standard Webhooks header names, parsed once.
const WEBHOOK_ID: HeaderName = HeaderName::from_static(envelope::WEBHOOK_ID);
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static(envelope::WEBHOOK_TIMESTAMP);
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static(envelope::WEBHOOK_SIGNATURE);
const TRACEPARENT: HeaderName = HeaderName::from_static(trace::TRACEPARENT);

/// What every attempt of one sink shares.
pub struct Client {
    http: reqwest::Client,
    method: Method,
    /// Content-Type default and configured headers, built once.
    base_headers: HeaderMap,
    /// The sink's URL when it is fixed and plain HTTP, with its Host header.
    fixed_host: Option<(reqwest::Url, HeaderValue)>,
    signer: Option<Signer>,
    status: StatusPolicy,
    /// The sink's secrets, masked out of a failed answer before it is kept.
    redact: Redact,
    telemetry: Arc<SinkTelemetry>,
}

impl Client {
    /// The client of `sink`, and its OAuth2 token source when `auth.oauth2` is set (the
    /// token requests share the client's pool and TLS settings).
    pub fn new(
        sink: &Sink,
        telemetry: Arc<SinkTelemetry>,
    ) -> Result<(Self, Option<TokenSource>), reqwest::Error> {
        let mut builder = outbound::builder(sink.timeout).pool_max_idle_per_host(sink.concurrency);
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
        if only_plain_http(sink) {
            builder = outbound::http1_only(builder);
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
        Ok((
            Client {
                http: client,
                method: sink.method.clone(),
                base_headers,
                fixed_host: fixed_host(sink),
                signer,
                status: sink.status.clone(),
                redact: Redact::of(sink),
                telemetry,
            },
            tokens,
        ))
    }

    /// One HTTP attempt: the outcome and, for failures, the start of the response body;
    /// for a 2xx, up to `answer_limit` bytes of its body (a batch's per-item answer).
    pub async fn send(
        &self,
        record: &Record,
        prepared: &Prepared<'_>,
        id: &str,
        authorization: Option<&HeaderValue>,
        answer_limit: usize,
    ) -> (Outcome, Bytes) {
        let mut headers = self.request_headers(record, prepared, id);
        if let Some(a) = authorization {
            headers.insert(axum::http::header::AUTHORIZATION, a.clone());
        }
        // Not through reqwest's builder, which copies every header into a map of its own.
        // Its one other service, turning a URL's `user:password@` into Basic credentials,
        // is done once when the sink is loaded: no URL sent here carries them
        // (`UrlTemplate`), and they are among the base headers.
        let mut request = reqwest::Request::new(self.method.clone(), prepared.url.as_ref().clone());
        *request.headers_mut() = headers;
        *request.body_mut() = Some(prepared.body(record).clone().into());
        match self.http.execute(request).await {
            Err(e) => {
                let outcome = outcome::from_error(&e);
                let error = causes(&e.without_url());
                RequestFailed {
                    result: outcome.label(),
                    error: &error,
                }
                .emit(&self.telemetry);
                (outcome, Bytes::new())
            }
            Ok(mut resp) => {
                let outcome =
                    self.status
                        .classify(resp.status(), resp.headers(), SystemTime::now());
                // Boxed: a body is read only for a failure or once per batch (its
                // answer), and every delivery's future would otherwise hold its space.
                let excerpt = if outcome != Outcome::Delivered {
                    let answer = Box::pin(read_up_to(&mut resp, KEEP_READ)).await;
                    // Kept in the dead letter and the console's recent failures.
                    self.keep(answer, authorization)
                } else if answer_limit > 0 {
                    let status = resp.status().as_u16();
                    match Box::pin(read_whole(&mut resp, answer_limit)).await {
                        Ok(answer) => answer,
                        // Longer than the limit, naming no `results` anywhere and not
                        // starting as an answer per item (an echo of the batch, the
                        // objects it created): a whole 2xx.
                        Err(Cut::TooLong {
                            start,
                            names_results: false,
                        }) if !batch::may_answer_per_item(&start) => start,
                        // Cut off (reset, timed out), or an answer per item too long to
                        // read: which items the receiver took cannot be known, so the
                        // batch is sent again, never taken as delivered whole. Only an
                        // answer read whole keeps its 2xx (the destination is up, see
                        // `Outcome::is_unread_2xx`); one cut off is a failure like any
                        // connection that broke.
                        Err(cut) => {
                            let (start, status) = match cut {
                                Cut::TooLong { start, .. } => (start, Some(status)),
                                Cut::Broken(start) => (start, None),
                            };
                            let outcome = Outcome::Retryable {
                                reason: CUT_ANSWER,
                                status,
                                retry_after: None,
                            };
                            return (outcome, self.keep(start, authorization));
                        }
                    }
                } else {
                    Bytes::new()
                };
                (outcome, excerpt)
            }
        }
    }

    /// The excerpt of a destination's answer that is kept (the dead letter's, the
    /// recent failures'), with the sink's credentials and those of the attempt
    /// (`authorization`) masked: masked over more than is kept, then cut, so a secret
    /// the excerpt's end would cut is masked whole, not left with its first characters.
    pub fn keep(&self, answer: Bytes, authorization: Option<&HeaderValue>) -> Bytes {
        (self.redact).excerpt(answer, authorization, dlq::RESPONSE_EXCERPT)
    }

    /// A body sent as the record holds it is still encoded as the webhook's was: the
    /// record's `content-encoding` goes with it, unless the sink configured its own. Any
    /// other body (a transform's output, a CloudEvents envelope) is not encoded, whatever
    /// a forwarded header says.
    fn content_encoding(&self, h: &mut HeaderMap, record: &Record, prepared: &Prepared<'_>) {
        use axum::http::header::CONTENT_ENCODING;
        if self.base_headers.contains_key(CONTENT_ENCODING) {
            return;
        }
        let sent_as_is = prepared.body.is_none() && !record.value.is_empty();
        let encoding = (record.header(crate::kafka::headers::CONTENT_ENCODING))
            .filter(|v| sent_as_is && !v.is_empty())
            .and_then(|v| HeaderValue::from_maybe_shared(v.clone()).ok());
        match encoding {
            Some(encoding) => h.insert(CONTENT_ENCODING, encoding),
            None => h.remove(CONTENT_ENCODING),
        };
    }

    /// Forwarded and templated headers, then the configured ones (so a record header can
    /// never replace the sink's credentials), then the content type; the webhook id,
    /// signature and trace context last, so nothing taken from a record can replace them.
    fn request_headers(&self, record: &Record, prepared: &Prepared<'_>, id: &str) -> HeaderMap {
        let mut h = prepared.headers.clone();
        h.reserve(self.base_headers.len() + 6);
        for (k, v) in &self.base_headers {
            h.insert(k.clone(), v.clone());
        }
        if let Some(ct) = &prepared.content_type {
            h.insert(axum::http::header::CONTENT_TYPE, ct.clone());
        } else if let Some(ct) = super::request::record_content_type(record) {
            h.insert(axum::http::header::CONTENT_TYPE, ct);
        }
        self.content_encoding(&mut h, record, prepared);
        if let Some((url, host)) = &self.fixed_host {
            if *prepared.url == *url && !h.contains_key(HOST) {
                h.insert(HOST, host.clone());
            }
        }
        if let Some(signer) = &self.signer {
            let ts = crate::clock::unix_secs();
            let sig = signer.sign(id, ts, prepared.body(record));
            h.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(ts));
            if let Ok(v) = HeaderValue::from_str(&sig) {
                h.insert(WEBHOOK_SIGNATURE, v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(id) {
            h.insert(WEBHOOK_ID, v);
        }
        // An empty body (a tombstone, an empty value) of a method that carries one still
        // says its length: hyper writes none for an empty body, and a server that
        // requires one on a POST answers 411, which the status policy takes for
        // permanent. A GET, HEAD or DELETE says none, as RFC 9110 asks.
        if prepared.body(record).is_empty()
            && matches!(self.method, Method::POST | Method::PUT | Method::PATCH)
        {
            h.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        let parent = record
            .header(crate::kafka::headers::TRACEPARENT)
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or("");
        if let Ok(v) = HeaderValue::from_bytes(trace::child_of(parent).as_bytes()) {
            h.insert(TRACEPARENT, v);
        }
        h
    }
}

/// True when every request of the sink's client is plain `http://`: its deliveries and,
/// with `auth.oauth2`, its token requests (they share the client).
fn only_plain_http(sink: &Sink) -> bool {
    let token_url_plain = match &sink.credentials {
        Some(Credentials::OAuth2 { token_url, .. }) => token_url.scheme() == "http",
        _ => true,
    };
    sink.url.is_plain_http() && token_url_plain
}

/// The Host header of a sink's URL when the URL has no placeholder and is plain HTTP,
/// with the URL. The HTTP/1 client writes the same value itself when a request has none,
/// but with `format!` on every request; given once here, it is cloned. Not for `https`:
/// ALPN may pick HTTP/2, where the authority travels as `:authority`.
fn fixed_host(sink: &Sink) -> Option<(reqwest::Url, HeaderValue)> {
    let url = sink.url.literal()?;
    if url.scheme() != "http" {
        return None;
    }
    let host = url.host_str()?;
    let value = match url.port() {
        Some(port) => HeaderValue::from_str(&format!("{host}:{port}")),
        None => HeaderValue::from_str(host),
    }
    .ok()?;
    Some((url, value))
}

/// An error and its causes, as one line: reqwest's own message says only that a request
/// failed (or `builder error`); the TLS library's reason (`certificate verify failed`,
/// `key values mismatch`) is among its causes.
pub(crate) fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// How much of a failed answer is read to keep its excerpt (see [`Redact::excerpt`]).
const KEEP_READ: usize = dlq::RESPONSE_EXCERPT + super::redact::MASK_PAST;

use super::outcome::CUT_ANSWER;

/// A body not read whole, with what was read of it.
enum Cut {
    /// Longer than the limit: its first `limit` bytes, and whether its top-level object
    /// names `results` (read on without being kept, to its end or until its reading
    /// failed: a serializer that sorts keys puts `results` after a long echo).
    TooLong { start: Bytes, names_results: bool },
    /// Its reading failed (the connection reset, the request's timeout) before the limit.
    Broken(Bytes),
}

/// A response's whole body, at most `limit` bytes.
async fn read_whole(resp: &mut reqwest::Response, limit: usize) -> Result<Bytes, Cut> {
    let mut buf = BytesMut::new();
    loop {
        match resp.chunk().await {
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(chunk)) if buf.len() + chunk.len() <= limit => buf.extend_from_slice(&chunk),
            Ok(Some(chunk)) => {
                let room = limit - buf.len();
                buf.extend_from_slice(&chunk[..room]);
                let start = buf.freeze();
                let mut scan = batch::TopLevelResults::default();
                scan.feed(&start);
                scan.feed(&chunk[room..]);
                // An answer that never ends is read until the request's timeout, which
                // ends it as cut off. One cut off before its end is not known to name no
                // `results` past where it was cut: broken, never a whole 2xx.
                while !scan.found() {
                    match resp.chunk().await {
                        Ok(Some(more)) => scan.feed(&more),
                        Ok(None) => break,
                        Err(_) => return Err(Cut::Broken(start)),
                    }
                }
                return Err(Cut::TooLong {
                    start,
                    names_results: scan.found(),
                });
            }
            Err(_) => return Err(Cut::Broken(buf.freeze())),
        }
    }
}

/// Up to `limit` bytes of a response's body.
async fn read_up_to(resp: &mut reqwest::Response, limit: usize) -> Bytes {
    let mut buf = BytesMut::new();
    while buf.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk[..chunk.len().min(limit - buf.len())]),
            _ => break,
        }
    }
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::Connectors;
    use crate::egress::record::TopicPartition;
    use crate::egress::request::Shaper;

    fn sink(extra: &str) -> Sink {
        sink_to("http://h/", extra)
    }

    fn sink_to(url: &str, extra: &str) -> Sink {
        let mut out = Connectors::default();
        let text = format!("[sink]\nname = \"s\"\ntopics = [\"t\"]\nurl = \"{url}\"\n{extra}\n");
        crate::connectors::load_file("s.toml", &text, &mut out).expect("valid sink");
        out.sinks.remove(0)
    }

    fn record(value: &[u8], encoding: &[u8]) -> Record {
        Record {
            tp: TopicPartition {
                topic: "t".into(),
                partition: 0,
            },
            offset: 1,
            key: None,
            value: Bytes::copy_from_slice(value),
            null_value: false,
            headers: vec![("content-encoding".into(), Bytes::copy_from_slice(encoding))],
            epoch: 0,
            leader_epoch: -1,
            checked_item: None,
            null_headers: Vec::new(),
        }
    }

    /// The Content-Encoding a request carries for a record whose header says `gzip`.
    fn sent(extra: &str, value: &[u8], encoding: &[u8]) -> Option<String> {
        let sink = sink(extra);
        let metrics = Arc::new(crate::telemetry::Metrics::new());
        let telemetry = Arc::new(SinkTelemetry::new("s".into(), metrics));
        let (client, _) = Client::new(&sink, telemetry.clone()).expect("a client");
        let shaper = Shaper::new(&sink, telemetry).in_process();
        let record = record(value, encoding);
        let prepared = shaper.shape(&record).expect("shaped").expect("a request");
        let h = client.request_headers(&record, &prepared, "t-0-1");
        let encoding = h.get(axum::http::header::CONTENT_ENCODING)?;
        Some(encoding.to_str().unwrap().to_owned())
    }

    /// The Host header of a request to `url` as the sink builds it (`None`: left to the
    /// HTTP client).
    fn host_given(url: &str) -> Option<String> {
        let sink = sink_to(url, "");
        let metrics = Arc::new(crate::telemetry::Metrics::new());
        let telemetry = Arc::new(SinkTelemetry::new("s".into(), metrics));
        let (client, _) = Client::new(&sink, telemetry.clone()).expect("a client");
        let shaper = Shaper::new(&sink, telemetry).in_process();
        let record = record(b"{}", b"");
        let prepared = shaper.shape(&record).expect("shaped").expect("a request");
        let h = client.request_headers(&record, &prepared, "t-0-1");
        Some(h.get(HOST)?.to_str().unwrap().to_owned())
    }

    /// A fixed plain-HTTP URL's Host is given with the request, as the HTTP/1 client
    /// would write it: the port only when it is not the scheme's, the host as the URL
    /// normalises it. A templated URL, or `https` (which may be HTTP/2), is left alone.
    #[test]
    fn a_fixed_http_url_s_host_header_is_built_once_as_the_client_writes_it() {
        assert_eq!(host_given("http://h:8080/x").as_deref(), Some("h:8080"));
        assert_eq!(
            host_given("http://Orders.Internal/x").as_deref(),
            Some("orders.internal")
        );
        assert_eq!(host_given("http://h:80/").as_deref(), Some("h"));
        assert_eq!(host_given("http://[::1]:9/").as_deref(), Some("[::1]:9"));
        assert_eq!(
            host_given("http://127.0.0.1:9/").as_deref(),
            Some("127.0.0.1:9")
        );
        assert_eq!(host_given("https://h/"), None);
        assert_eq!(host_given("http://h/{topic}"), None);
    }

    /// The Host a receiver reads for a fixed URL (given by the sink) is the one the
    /// HTTP/1 client writes itself for the same URL when templated (none given), however
    /// the host is spelt, so giving it changes nothing on the wire.
    #[tokio::test]
    async fn the_host_given_is_the_one_the_client_would_have_written() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (v4, v6) = (
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            tokio::net::TcpListener::bind("[::1]:0").await.ok(),
        );
        let port = v4.local_addr().unwrap().port();
        let mut hosts = vec![format!("127.0.0.1:{port}"), format!("LocalHost:{port}")];
        let mut listeners = vec![v4];
        if let Some(v6) = v6 {
            hosts.push(format!("[::1]:{}", v6.local_addr().unwrap().port()));
            listeners.push(v6);
        }
        // Every Host line read, in order of arrival.
        let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<String>();
        for listener in listeners {
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move {
                while let Ok((mut conn, _)) = listener.accept().await {
                    let mut request = vec![0u8; 64 << 10];
                    let n = conn.read(&mut request).await.unwrap_or(0);
                    let text = String::from_utf8_lossy(&request[..n]).into_owned();
                    let host = (text.lines())
                        .filter_map(|l| l.split_once(": "))
                        .filter(|(name, _)| name.eq_ignore_ascii_case("host"))
                        .map(|(_, value)| value.to_owned())
                        .collect::<Vec<_>>()
                        .join(",");
                    let _ = seen_tx.send(host);
                    let answer =
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                    let _ = conn.write_all(answer).await;
                }
            });
        }
        let metrics = Arc::new(crate::telemetry::Metrics::new());
        let telemetry = Arc::new(SinkTelemetry::new("s".into(), metrics));
        let record = record(b"{}", b"");
        for host in hosts {
            let mut read = Vec::new();
            // Fixed: the sink gives Host. Templated: the client writes it.
            for path in ["/hook", "/{topic}"] {
                let sink = sink_to(&format!("http://{host}{path}"), "");
                let (client, _) = Client::new(&sink, telemetry.clone()).expect("a client");
                let shaper = Shaper::new(&sink, telemetry.clone()).in_process();
                let prepared = shaper.shape(&record).expect("shaped").expect("a request");
                let given = client.request_headers(&record, &prepared, "t-0-1");
                assert_eq!(given.contains_key(HOST), path == "/hook", "{host}{path}");
                let (outcome, _) = client.send(&record, &prepared, "t-0-1", None, 0).await;
                assert_eq!(outcome, Outcome::Delivered, "{host}{path}");
                read.push(seen.recv().await.expect("a request read"));
            }
            assert!(
                !read[1].is_empty() && !read[1].contains(','),
                "one Host: {read:?}"
            );
            assert_eq!(read[0], read[1], "{host}");
        }
    }

    /// A server answering every connection with `answer` (raw bytes), then closing it.
    async fn raw_server(answer: &'static [u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = vec![0u8; 64 << 10];
                    let _ = conn.read(&mut request).await;
                    let _ = conn.write_all(answer).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        url
    }

    /// The head of the one request `client` sends for `record` (its URL made the
    /// address of a server that captures it and answers 200).
    async fn head_sent(client: &Client, shaper: &Shaper, record: &Record) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).await.unwrap();
                assert!(n > 0, "the request ended before its head");
                head.extend_from_slice(&buf[..n]);
            }
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
            conn.write_all(answer).await.unwrap();
            String::from_utf8_lossy(&head).to_ascii_lowercase()
        });
        let mut prepared = shaper.shape(record).expect("shaped").expect("a request");
        prepared.url = std::borrow::Cow::Owned(url.parse().unwrap());
        let (outcome, _) = client.send(record, &prepared, "t-0-1", None, 0).await;
        assert_eq!(outcome, Outcome::Delivered);
        server.await.unwrap()
    }

    /// A POST with an empty body (a tombstone, an empty value) says `content-length: 0`,
    /// as servers that require a length on a POST want; others say theirs.
    #[tokio::test]
    async fn an_empty_body_is_sent_with_a_content_length_of_zero() {
        let post = sink("");
        let metrics = Arc::new(crate::telemetry::Metrics::new());
        let telemetry = Arc::new(SinkTelemetry::new("s".into(), metrics));
        let (client, _) = Client::new(&post, telemetry.clone()).expect("a client");
        let shaper = Shaper::new(&post, telemetry).in_process();
        let head = head_sent(&client, &shaper, &record(b"", b"")).await;
        assert!(head.contains("\r\ncontent-length: 0\r\n"), "{head}");
        let mut tombstone = record(b"", b"");
        tombstone.null_value = true;
        let head = head_sent(&client, &shaper, &tombstone).await;
        assert!(head.contains("\r\ncontent-length: 0\r\n"), "{head}");
        let head = head_sent(&client, &shaper, &record(b"{}", b"")).await;
        assert!(head.contains("\r\ncontent-length: 2\r\n"), "{head}");
        assert_eq!(head.matches("content-length").count(), 1, "{head}");
        // A GET says no length for its empty body.
        let get = sink("method = \"get\"");
        let metrics = Arc::new(crate::telemetry::Metrics::new());
        let telemetry = Arc::new(SinkTelemetry::new("s".into(), metrics));
        let (client, _) = Client::new(&get, telemetry.clone()).expect("a client");
        let shaper = Shaper::new(&get, telemetry).in_process();
        let head = head_sent(&client, &shaper, &record(b"", b"")).await;
        assert!(head.starts_with("get "), "{head}");
        assert!(!head.contains("content-length"), "{head}");
    }

    /// A batch's 2xx answer read whole is delivered; one cut off before its end, or
    /// longer than the limit, is a failed attempt (whether it answered per item cannot
    /// be known), never a delivery.
    #[tokio::test]
    async fn a_batch_answer_that_cannot_be_read_whole_is_not_a_delivery() {
        let cases: [(&'static [u8], bool); 7] = [
            (b"HTTP/1.1 207 Multi-Status\r\ncontent-length: 2\r\n\r\n{}", true),
            (
                b"HTTP/1.1 207 Multi-Status\r\ncontent-length: 100\r\n\r\n{\"results\":[",
                false,
            ),
            // Longer than the limit: delivered unless it starts as an answer per item.
            (b"HTTP/1.1 200 OK\r\ncontent-length: 40\r\n\r\n0123456789012345678901234567890123456789", true),
            (b"HTTP/1.1 207 Multi-Status\r\ncontent-length: 40\r\n\r\n{\"results\":[{\"status\":200},{\"status\":2}]}", false),
            // An echo past the limit whose items have results of their own: whole.
            (b"HTTP/1.1 200 OK\r\ncontent-length: 52\r\n\r\n{\"items\":[{\"x\":\"xxxxxxxxxxxxxxxxxxxxxx\",\"results\":1}]}", true),
            // `results` only past the limit (keys sorted after a long echo).
            (b"HTTP/1.1 207 Multi-Status\r\ncontent-length: 60\r\n\r\n{\"items\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxx\",\"results\":[{\"status\":500}]}", false),
            // Longer than the limit and cut off before its end: `results` may have
            // come past the cut.
            (b"HTTP/1.1 207 Multi-Status\r\ncontent-length: 100\r\n\r\n{\"echo\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", false),
        ];
        for (answer, delivered) in cases {
            let url = raw_server(answer).await;
            let sink = sink("");
            let metrics = Arc::new(crate::telemetry::Metrics::new());
            let telemetry = Arc::new(SinkTelemetry::new("s".into(), metrics));
            let (client, _) = Client::new(&sink, telemetry.clone()).expect("a client");
            let shaper = Shaper::new(&sink, telemetry).in_process();
            let record = record(b"{}", b"");
            let mut prepared = shaper.shape(&record).expect("shaped").expect("a request");
            prepared.url = std::borrow::Cow::Owned(url.parse().unwrap());
            let (outcome, _) = client.send(&record, &prepared, "t-0-1", None, 32).await;
            let text = String::from_utf8_lossy(answer);
            if delivered {
                assert_eq!(outcome, Outcome::Delivered, "{text}");
            } else {
                assert_eq!(outcome.label(), CUT_ANSWER, "{text}");
            }
        }
    }

    /// The value sent as it is keeps its encoding; any other body drops one, even one
    /// forwarded; a configured Content-Encoding wins; an empty one or an empty body has
    /// none.
    #[test]
    fn a_record_s_content_encoding_goes_only_with_its_value_as_it_is() {
        let gz = b"\x1f\x8b".as_slice();
        assert_eq!(sent("", gz, b"gzip").as_deref(), Some("gzip"));
        let forwarded = "forward_headers = [\"*\"]";
        assert_eq!(sent(forwarded, gz, b"gzip").as_deref(), Some("gzip"));
        let structured = "forward_headers = [\"*\"]\nformat = \"cloudevents-structured\"";
        assert_eq!(sent(structured, gz, b"gzip"), None);
        let configured = "headers = { Content-Encoding = \"br\" }";
        assert_eq!(sent(configured, gz, b"gzip").as_deref(), Some("br"));
        assert_eq!(sent("", gz, b""), None);
        assert_eq!(sent(forwarded, b"", b"gzip"), None);
    }
}
