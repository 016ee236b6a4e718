//! OAuth2 client credentials for a sink: one access token shared by every delivery,
//! fetched when first needed, reused until shortly before it expires, and fetched again
//! at once when the destination answers 401 to it.
//!
//! A token endpoint that fails is retried with backoff while the deliveries wait: the
//! records are not at fault, so no attempt is spent and nothing is dead-lettered for it.
//! Failures are counted and logged by class only; the secret, the tokens and the
//! endpoint's answers are never logged.

use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::config::Secret;
use crate::connectors::sink::ClientAuth;
use crate::telemetry::sink::{SinkTelemetry, TokenFetchFailed};

/// Refresh this long before the token expires (at most half its lifetime), so a token
/// never expires in flight.
const EARLY: Duration = Duration::from_secs(30);
/// The shortest a token is reused, whatever its `expires_in` says: an endpoint answering
/// `expires_in: 0` (or 1) would otherwise be asked for a token before every delivery,
/// each delivery waiting on it. A token the destination no longer takes is answered 401,
/// which drops it at once ([`TokenSource::refused`]).
const MIN_REUSE: Duration = Duration::from_secs(1);
/// Backoff between failed token requests.
const FIRST_WAIT: Duration = Duration::from_millis(200);
const MAX_WAIT: Duration = Duration::from_secs(30);

/// One sink's token source.
pub struct TokenSource {
    client: reqwest::Client,
    token_url: reqwest::Url,
    client_id: String,
    client_secret: Secret,
    scopes: Vec<String>,
    audience: Option<String>,
    client_auth: ClientAuth,
    /// The current token as an `Authorization` value, and when to stop using it.
    current: std::sync::Mutex<Option<(HeaderValue, Option<Instant>)>>,
    /// Held while fetching: concurrent deliveries wait for one request, not one each.
    fetching: tokio::sync::Mutex<()>,
}

/// The longest a token is used without asking for a new one, whatever its
/// `expires_in` says.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    /// Seconds, as a number or (some providers) a string of digits; anything else is
    /// read as absent.
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// How long a token answered with `expires_in` may be used, at most [`MAX_LIFETIME`].
fn lifetime(expires_in: &serde_json::Value) -> Option<Duration> {
    let seconds = match expires_in {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        seconds.min(MAX_LIFETIME.as_secs_f64()),
    ))
}

/// How long after it arrived a token of `lifetime` is used: until [`EARLY`] before it
/// expires (at most half its lifetime), and at least [`MIN_REUSE`].
fn reuse_for(lifetime: Duration) -> Duration {
    lifetime
        .saturating_sub(EARLY.min(lifetime / 2))
        .max(MIN_REUSE)
}

/// Why a token request failed, as a class (never the answer's body).
fn failure_class(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    }
}

impl TokenSource {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: reqwest::Client,
        token_url: reqwest::Url,
        client_id: String,
        client_secret: Secret,
        scopes: Vec<String>,
        audience: Option<String>,
        client_auth: ClientAuth,
    ) -> Self {
        TokenSource {
            client,
            token_url,
            client_id,
            client_secret,
            scopes,
            audience,
            client_auth,
            current: std::sync::Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self) -> Option<HeaderValue> {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        match &*current {
            Some((v, until)) if until.is_none_or(|u| Instant::now() < u) => Some(v.clone()),
            _ => None,
        }
    }

    /// The `Authorization` value to send; waits (retrying the token endpoint) until there
    /// is one. `None` when `cancel` fired first.
    pub async fn authorization(
        &self,
        cancel: &CancellationToken,
        telemetry: &SinkTelemetry,
    ) -> Option<HeaderValue> {
        if let Some(v) = self.cached() {
            return Some(v);
        }
        // Boxed: every attempt's future holds this one's space, and only the attempts
        // that find no valid token wait in it.
        Box::pin(self.fetch_authorization(cancel, telemetry)).await
    }

    /// Fetches a token, one fetch at a time, retrying the endpoint with backoff.
    async fn fetch_authorization(
        &self,
        cancel: &CancellationToken,
        telemetry: &SinkTelemetry,
    ) -> Option<HeaderValue> {
        let _fetching = tokio::select! {
            g = self.fetching.lock() => g,
            _ = cancel.cancelled() => return None,
        };
        // Someone else may have fetched it while this one waited.
        if let Some(v) = self.cached() {
            return Some(v);
        }
        let mut wait = FIRST_WAIT;
        loop {
            match self.fetch().await {
                Ok((v, lifetime)) => {
                    let until = lifetime.and_then(|l| Instant::now().checked_add(reuse_for(l)));
                    *self.current.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((v.clone(), until));
                    return Some(v);
                }
                Err(class) => TokenFetchFailed { class, wait }.emit(telemetry),
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(MAX_WAIT);
        }
    }

    /// The destination refused `used` (401): stop using it, unless a newer token already
    /// replaced it.
    pub fn refused(&self, used: &HeaderValue) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|(v, _)| v == used) {
            *current = None;
        }
    }

    async fn fetch(&self) -> Result<(HeaderValue, Option<Duration>), &'static str> {
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        let scope = self.scopes.join(" ");
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        if let Some(a) = &self.audience {
            form.push(("audience", a));
        }
        let mut request = self.client.post(self.token_url.clone());
        match self.client_auth {
            ClientAuth::Basic => {
                // RFC 6749 2.3.1: both parts form-urlencoded before the Basic encoding.
                let enc =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                request = request
                    .basic_auth(enc(&self.client_id), Some(enc(self.client_secret.expose())));
            }
            ClientAuth::Body => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", self.client_secret.expose()));
            }
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = request
            .header(
                axum::http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(axum::http::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| failure_class(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(if status.is_server_error() {
                "5xx"
            } else if status == 429 {
                "429"
            } else {
                "4xx"
            });
        }
        let bytes = answer(response).await?;
        let token: TokenResponse =
            serde_json::from_slice(&bytes).map_err(|_| "invalid-response")?;
        // An empty token would be sent as `Bearer ` and refused by the destination, or
        // worse, taken by a lenient one.
        if token.access_token.trim().is_empty() {
            return Err("invalid-response");
        }
        let mut value = HeaderValue::try_from(format!("Bearer {}", token.access_token))
            .map_err(|_| "invalid-response")?;
        value.set_sensitive(true);
        Ok((value, token.expires_in.as_ref().and_then(lifetime)))
    }
}

/// The most of a token endpoint's answer that is read: a token response is a few hundred
/// bytes (a JWT access token a few KiB), and one endpoint must not be able to fill the
/// process's memory with a single answer.
const MAX_ANSWER: usize = 64 * 1024;

/// The endpoint's answer, read up to [`MAX_ANSWER`]; one longer is `too-large`.
async fn answer(mut response: reqwest::Response) -> Result<Vec<u8>, &'static str> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER as u64)
    {
        return Err("too-large");
    }
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failure_class(&e))? {
        if out.len() + chunk.len() > MAX_ANSWER {
            return Err("too-large");
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::StreamExt;

    use super::*;
    use crate::telemetry::Metrics;

    /// A token endpoint answering every request with `expires_in` as given.
    async fn endpoint(expires_in: &'static str) -> reqwest::Url {
        counted_endpoint(expires_in, Arc::default()).await
    }

    /// [`endpoint`], counting the requests it answers in `asked`.
    async fn counted_endpoint(
        expires_in: &'static str,
        asked: Arc<std::sync::atomic::AtomicUsize>,
    ) -> reqwest::Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(move || async move {
                asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                format!(
                    r#"{{"access_token":"tok","token_type":"Bearer","expires_in":{expires_in}}}"#
                )
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        url.parse().unwrap()
    }

    /// An answer past [`MAX_ANSWER`] is refused as it streams in, with or without a
    /// Content-Length, and never read whole; one within it gives its token.
    #[tokio::test]
    async fn a_token_answer_past_its_limit_is_refused_unread() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: reqwest::Url = format!("http://{}/", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let token = |len: usize| format!(r#"{{"access_token":"{}"}}"#, "t".repeat(len));
        let app = axum::Router::new()
            .route(
                "/fits",
                axum::routing::post(move || async move { token(60_000) }),
            )
            .route(
                "/sized",
                axum::routing::post(move || async move { token(70_000) }),
            )
            .route(
                "/empty",
                axum::routing::post(|| async { r#"{"access_token":" ","token_type":"Bearer"}"# }),
            )
            .route(
                "/endless",
                axum::routing::post(|| async {
                    let chunk = bytes::Bytes::from(vec![b' '; 16 * 1024]);
                    let endless = futures::stream::repeat(chunk).map(Ok::<_, std::io::Error>);
                    axum::body::Body::from_stream(endless)
                }),
            );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let source = |path: &str| {
            TokenSource::new(
                reqwest::Client::new(),
                url.join(path).unwrap(),
                "id".into(),
                Secret::new("secret"),
                vec![],
                None,
                ClientAuth::Basic,
            )
        };
        let (v, _) = source("fits")
            .fetch()
            .await
            .expect("a token within the limit");
        assert_eq!(v.len(), "Bearer ".len() + 60_000);
        for path in ["sized", "endless"] {
            let fetched = tokio::time::timeout(Duration::from_secs(10), source(path).fetch())
                .await
                .unwrap_or_else(|_| panic!("{path}: read to its end"));
            assert_eq!(fetched.err(), Some("too-large"), "{path}");
        }
        // An empty token is no token.
        assert_eq!(
            source("empty").fetch().await.err(),
            Some("invalid-response")
        );
    }

    #[test]
    fn a_token_is_reused_until_shortly_before_it_expires_and_at_least_a_second() {
        let s = Duration::from_secs;
        assert_eq!(reuse_for(s(3600)), s(3570), "30 s early");
        assert_eq!(reuse_for(s(40)), s(20), "at most half its lifetime early");
        assert_eq!(reuse_for(s(3)), Duration::from_millis(1500));
        assert_eq!(reuse_for(s(1)), MIN_REUSE);
        assert_eq!(reuse_for(Duration::ZERO), MIN_REUSE);
        assert_eq!(reuse_for(MAX_LIFETIME), MAX_LIFETIME - EARLY);
    }

    /// A token answered as expiring at once is reused for deliveries in the same second:
    /// the endpoint is not asked once per delivery.
    #[tokio::test]
    async fn a_token_expiring_at_once_is_not_fetched_for_every_delivery() {
        let telemetry = SinkTelemetry::new(Arc::from("s"), Arc::new(Metrics::new()));
        let cancel = CancellationToken::new();
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let source = TokenSource::new(
            reqwest::Client::new(),
            counted_endpoint("0", asked.clone()).await,
            "id".into(),
            Secret::new("secret"),
            vec![],
            None,
            ClientAuth::Basic,
        );
        let started = Instant::now();
        for _ in 0..20 {
            let got = source.authorization(&cancel, &telemetry).await;
            assert_eq!(got.unwrap(), "Bearer tok");
        }
        let asked = asked.load(std::sync::atomic::Ordering::SeqCst);
        // A slow machine may cross a second between the first and the last.
        let seconds = started.elapsed().as_secs() as usize;
        assert!(
            asked <= 1 + seconds,
            "{asked} token requests for 20 deliveries in {seconds} s"
        );
    }

    #[tokio::test]
    async fn any_expires_in_gives_a_token_without_panicking() {
        let telemetry = SinkTelemetry::new(Arc::from("s"), Arc::new(Metrics::new()));
        let cancel = CancellationToken::new();
        for expires_in in [
            "18446744073709551615",
            "1e300",
            "\"3599\"",
            "\" 60 \"",
            "3599.5",
            "-5",
            "null",
            "\"soon\"",
            "{}",
        ] {
            let source = TokenSource::new(
                reqwest::Client::new(),
                endpoint(expires_in).await,
                "id".into(),
                Secret::new("secret"),
                vec![],
                None,
                ClientAuth::Basic,
            );
            let got = tokio::time::timeout(
                Duration::from_secs(5),
                source.authorization(&cancel, &telemetry),
            )
            .await
            .unwrap_or_else(|_| panic!("no token for expires_in {expires_in}"));
            assert_eq!(got.unwrap(), "Bearer tok", "{expires_in}");
        }
        assert_eq!(
            lifetime(&serde_json::json!("3599")),
            Some(Duration::from_secs(3599))
        );
        assert_eq!(lifetime(&serde_json::json!(u64::MAX)), Some(MAX_LIFETIME));
        assert_eq!(lifetime(&serde_json::json!(-1)), None);
    }
}
