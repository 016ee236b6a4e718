//! Providers' published verification keys (Google's JWKS, AWS SNS's signing
//! certificates), fetched over HTTP and cached for every source of the process.
//!
//! Asked only after a scheme's cheap checks passed (`Verifier::key_source`), and bounded
//! so that no sender can make hookbridge fetch per request: one fetch at a time per URL
//! (the others wait for its result: single flight), a document read up to
//! [`MAX_DOCUMENT`] within a deadline, a good set kept for [`KEEP`], a failure remembered
//! for [`FAILURE_TTL`] (no refetch meanwhile), a bounded number of URLs, and a
//! process-wide rate of fetches. A good set that can no longer be refreshed is still used
//! for [`MAX_STALE`], so a key server's outage does not stop deliveries signed with keys
//! already known; when no usable set is known the request is answered 503, which the
//! provider retries — never 2xx, and never 401 for a signature nobody could check. Only
//! a key server's 4xx (the URL names no key) makes it a failed signature.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::connectors::template::redacted_url;
use crate::http::outbound;
use crate::verify::keys::{KeySet, KeySource, MAX_DOCUMENT};

/// How long a fetched key set is used before it is fetched again.
pub const KEEP: Duration = Duration::from_secs(3600);
/// How long a set may be used past [`KEEP`] while its URL fails.
pub const MAX_STALE: Duration = Duration::from_secs(24 * 3600);
/// How long a failed fetch is remembered before that URL is tried again.
pub const FAILURE_TTL: Duration = Duration::from_secs(30);
/// A set is fetched again for a key it lacks (a provider's rotation) at most this often.
pub const REFRESH_FOR_UNKNOWN_KEY: Duration = Duration::from_secs(60);
/// Deadline of one fetch, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Fetches the process makes: one a second on average, ten at once (sources starting).
const FETCH_RATE: Quota =
    Quota::per_second(NonZeroU32::MIN).allow_burst(NonZeroU32::new(10).unwrap());
/// Most URLs remembered (an SNS certificate per region and rotation, a JWKS per source).
const MAX_URLS: usize = 64;

/// Why no key set can be had now. The request is answered 503: the provider retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key server did not answer in time or failed")]
    Unreachable,
    /// The key server answered that there is no such document (a 4xx): the URL names
    /// no key, so no signature can verify with it — a forged `SigningCertURL` on an
    /// allowed host, not an outage.
    #[error("the key server has no such document")]
    NotFound,
    #[error("the key server answered with something other than keys")]
    Invalid,
    #[error("too many key fetches: try again later")]
    Busy,
}

/// What the cache knows of one URL.
#[derive(Default)]
struct Known {
    /// The last good set and when it was fetched.
    good: Option<(Instant, Arc<KeySet>)>,
    /// The last failure, if it is newer than the good set.
    failed: Option<(Instant, KeyError)>,
}

/// One URL's state; its async lock is what makes concurrent requests share one fetch.
#[derive(Default)]
struct Entry {
    known: tokio::sync::Mutex<Known>,
}

/// The process's key sets, shared by all sources.
pub struct KeyCache {
    client: reqwest::Client,
    entries: Mutex<HashMap<KeySource, Arc<Entry>>>,
    fetches: DefaultDirectRateLimiter,
}

impl Default for KeyCache {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyCache {
    /// An empty cache.
    pub fn new() -> Self {
        // Built from a fixed configuration, which only a broken TLS backend refuses; a
        // client of reqwest's defaults would follow redirects past the host checks.
        let client = (outbound::builder(FETCH_TIMEOUT).build())
            .expect("the key fetch client has a fixed configuration");
        KeyCache {
            client,
            entries: Mutex::new(HashMap::new()),
            fetches: RateLimiter::direct(FETCH_RATE),
        }
    }

    /// The set at `source`, fetched when none younger than `max_age` (at most [`KEEP`])
    /// is known and no failure is fresh.
    pub async fn get(
        &self,
        source: &KeySource,
        max_age: Duration,
    ) -> Result<Arc<KeySet>, KeyError> {
        let entry = self.entry(source)?;
        let mut known = entry.known.lock().await;
        let now = Instant::now();
        let max_age = max_age.min(KEEP);
        let usable = |known: &Known, age: Duration| {
            (known.good.as_ref())
                .filter(|(at, _)| now.duration_since(*at) < age)
                .map(|(_, set)| set.clone())
        };
        if let Some(set) = usable(&known, max_age) {
            return Ok(set);
        }
        if let Some((at, e)) = known.failed {
            if now.duration_since(at) < FAILURE_TTL {
                return usable(&known, MAX_STALE).ok_or(e);
            }
        }
        if self.fetches.check().is_err() {
            return usable(&known, MAX_STALE).ok_or(KeyError::Busy);
        }
        match self.fetch(source).await {
            Ok(set) => {
                let set = Arc::new(set);
                *known = Known {
                    good: Some((Instant::now(), set.clone())),
                    failed: None,
                };
                Ok(set)
            }
            Err(e) => {
                let url = redacted_url(source.url.as_str());
                tracing::warn!(%url, reason = %e, "fetching verification keys failed");
                known.failed = Some((Instant::now(), e));
                usable(&known, MAX_STALE).ok_or(e)
            }
        }
    }

    /// The entry for `source`, made room for when the map is full by forgetting one no
    /// request is using and that holds no usable set. URLs come from requests (an SNS
    /// message names its certificate's), so anyone can ask for new ones: forgetting a
    /// good set to make room for them would let a stream of forged URLs keep a real
    /// provider's keys out of the cache. A new URL waits instead (503).
    fn entry(&self, source: &KeySource) -> Result<Arc<Entry>, KeyError> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.get(source) {
            return Ok(entry.clone());
        }
        if entries.len() >= MAX_URLS {
            let now = Instant::now();
            let idle = (entries.iter())
                .find(|(_, e)| {
                    Arc::strong_count(e) == 1
                        && e.known.try_lock().is_ok_and(|k| {
                            (k.good.as_ref())
                                .is_none_or(|(at, _)| now.duration_since(*at) >= MAX_STALE)
                        })
                })
                .map(|(k, _)| k.clone())
                .ok_or(KeyError::Busy)?;
            entries.remove(&idle);
        }
        let entry = Arc::new(Entry::default());
        entries.insert(source.clone(), entry.clone());
        Ok(entry)
    }

    /// One GET: a 200 whose body, read up to [`MAX_DOCUMENT`], parses in the source's
    /// format.
    async fn fetch(&self, source: &KeySource) -> Result<KeySet, KeyError> {
        let document = get_limited(&self.client, source.url.clone()).await?;
        KeySet::parse(source.format, &document).map_err(|_| KeyError::Invalid)
    }

    /// A GET of a URL a verified request asks to be visited (SNS's `SubscribeURL`), with
    /// a key fetch's deadline and size cap; succeeds on a 2xx.
    pub async fn visit(&self, url: url::Url) -> Result<(), KeyError> {
        get_limited(&self.client, url).await.map(|_| ())
    }
}

/// The body of a 2xx answer to a GET of `url`, at most [`MAX_DOCUMENT`] bytes.
async fn get_limited(client: &reqwest::Client, url: url::Url) -> Result<Vec<u8>, KeyError> {
    let mut resp = (client.get(url).send().await).map_err(|_| KeyError::Unreachable)?;
    // Only "there is nothing here" is a verdict on the URL (a forged one); a throttled
    // or refused fetch (429, 403, 408, …) says nothing about the signature: 503.
    if matches!(resp.status().as_u16(), 404 | 410) {
        return Err(KeyError::NotFound);
    }
    if !resp.status().is_success() {
        return Err(KeyError::Unreachable);
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT as u64)
    {
        return Err(KeyError::Invalid);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|_| KeyError::Unreachable)? {
        if body.len() + chunk.len() > MAX_DOCUMENT {
            return Err(KeyError::Invalid);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::routing::get;
    use axum::Router;
    use base64::Engine as _;

    use super::*;
    use crate::verify::keys::KeyFormat;

    /// A JWKS of one fresh RSA key.
    fn jwks() -> String {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        serde_json::json!({"keys": [{"kty": "RSA", "kid": "k", "n": b64.encode(rsa.n().to_vec()), "e": "AQAB"}]})
            .to_string()
    }

    /// A loopback key server: `/jwks` (slow, so requests overlap), `/huge`, `/missing`;
    /// returns its base URL and its count of requests.
    async fn key_server() -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let doc = jwks();
        let counted = |hits: Arc<AtomicUsize>, body: String, status: u16| {
            move || {
                let hits = hits.clone();
                let body = body.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    (axum::http::StatusCode::from_u16(status).unwrap(), body)
                }
            }
        };
        let app = Router::new()
            .route("/jwks", get(counted(hits.clone(), doc, 200)))
            .route(
                "/huge",
                get(counted(hits.clone(), " ".repeat(MAX_DOCUMENT + 1), 200)),
            )
            .route("/missing", get(counted(hits.clone(), String::new(), 404)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), hits)
    }

    fn source(url: &str) -> KeySource {
        KeySource {
            url: url::Url::parse(url).unwrap(),
            format: KeyFormat::Jwks,
        }
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_fetch_and_failures_are_remembered() {
        let (base, hits) = key_server().await;
        let cache = Arc::new(KeyCache::new());
        let jwks = source(&format!("{base}/jwks"));
        let waiting: Vec<_> = (0..20)
            .map(|_| {
                let (cache, jwks) = (cache.clone(), jwks.clone());
                tokio::spawn(async move { cache.get(&jwks, KEEP).await })
            })
            .collect();
        for w in waiting {
            assert!(w.await.unwrap().is_ok());
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1, "one fetch for 20 requests");
        // A set younger than the age asked for is not fetched again.
        assert!(cache.get(&jwks, REFRESH_FOR_UNKNOWN_KEY).await.is_ok());
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // A failure is fetched once, then remembered.
        let missing = source(&format!("{base}/missing"));
        for _ in 0..5 {
            assert_eq!(
                cache.get(&missing, KEEP).await.unwrap_err(),
                KeyError::NotFound
            );
        }
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        let huge = source(&format!("{base}/huge"));
        assert_eq!(cache.get(&huge, KEEP).await.unwrap_err(), KeyError::Invalid);
        // Nothing listens: unreachable, not a verdict on any signature.
        let closed = source("http://127.0.0.1:9/jwks");
        assert_eq!(
            cache.get(&closed, KEEP).await.unwrap_err(),
            KeyError::Unreachable
        );
    }

    /// Log lines written while `work` runs on this thread.
    async fn logged<F: std::future::Future>(work: F) -> String {
        let captured = crate::telemetry::captured::Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        work.await;
        drop(guard);
        captured.text()
    }

    #[tokio::test]
    async fn a_failed_fetch_logs_its_url_without_secrets() {
        let cache = KeyCache::new();
        let closed = source("http://keys:hunter2@127.0.0.1:9/jwks?token=s3cret-value");
        let text = logged(async {
            assert_eq!(
                cache.get(&closed, KEEP).await.unwrap_err(),
                KeyError::Unreachable
            );
        })
        .await;
        assert!(text.contains("fetching verification keys failed"), "{text}");
        assert!(text.contains("127.0.0.1:9/jwks"), "{text}");
        assert!(
            !text.contains("hunter2") && !text.contains("s3cret"),
            "{text}"
        );
    }

    /// A full cache makes room only by forgetting URLs without a usable set: forged URLs
    /// named by requests never push a provider's keys out.
    #[tokio::test]
    async fn forged_urls_filling_the_cache_never_push_a_good_set_out() {
        let (base, _) = key_server().await;
        let cache = KeyCache::new();
        let jwks = source(&format!("{base}/jwks"));
        let good = cache.get(&jwks, KEEP).await.expect("fetched");
        for n in 0..(2 * MAX_URLS) {
            let forged = source(&format!("{base}/missing?n={n}"));
            let _ = cache.get(&forged, KEEP).await;
        }
        let again = cache.get(&jwks, KEEP).await.expect("still cached");
        assert!(Arc::ptr_eq(&good, &again));
    }

    #[tokio::test]
    async fn a_set_is_refetched_when_older_than_asked_and_kept_while_its_server_fails() {
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let hits = Arc::new(AtomicUsize::new(0));
        let (flag, count, doc) = (up.clone(), hits.clone(), jwks());
        let app = Router::new().route(
            "/jwks",
            get(move || {
                let (flag, count, doc) = (flag.clone(), count.clone(), doc.clone());
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    if flag.load(Ordering::SeqCst) {
                        (axum::http::StatusCode::OK, doc)
                    } else {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new())
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let cache = KeyCache::new();
        let jwks = source(&format!("http://{addr}/jwks"));
        let first = cache.get(&jwks, KEEP).await.unwrap();
        // Asked for a younger set (a kid the set lacks): fetched again.
        let second = cache.get(&jwks, Duration::ZERO).await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert!(!Arc::ptr_eq(&first, &second));
        // The server fails: the last good set is still used, and the failure remembered.
        up.store(false, Ordering::SeqCst);
        let stale = cache.get(&jwks, Duration::ZERO).await.unwrap();
        assert!(Arc::ptr_eq(&stale, &second));
        assert!(cache.get(&jwks, Duration::ZERO).await.is_ok());
        assert_eq!(
            hits.load(Ordering::SeqCst),
            3,
            "the failure is not retried at once"
        );
    }
}
