//! A source connector: one webhook path, verified with one provider scheme, produced to
//! one Kafka topic.
//!
//! Two phases: [`SourceConfig::validate`] checks the values into a [`SourceDefinition`]
//! without touching the environment or files; [`SourceDefinition::build`] resolves the
//! secrets into a [`Verifier`] and creates the rate limiter, giving a [`Source`].

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderName;
use governor::DefaultDirectRateLimiter;
use serde::Deserialize;

use super::key::KeyRule;
use crate::config::rate_limit::RateLimitConfig;
use crate::config::units::{ByteSize, HumanDuration};
use crate::config::{ConfigError, SecretRef};
use crate::verify::{SignedUrl, Verifier, VerifyConfig};

const MAX_MAX_BODY: u64 = 64 << 20;

/// `[source]` in a connector file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Connector name: in metrics, logs and the `hookbridge-source` record header.
    pub name: String,
    /// URL path the provider POSTs to, e.g. `/webhooks/github`.
    pub path: String,
    /// Kafka topic the verified webhooks are produced to.
    pub topic: String,
    /// Signature verification: `{ scheme = "github", secrets = ["${GITHUB_SECRET}"] }`.
    pub verify: VerifyConfig,
    /// Record key: `"header:NAME"`, `"json:/pointer"` or `"none"`.
    #[serde(default = "default_key")]
    pub key: String,
    /// HTTP headers copied into Kafka record headers (case-insensitive names).
    #[serde(default)]
    pub forward_headers: Vec<String>,
    /// Largest accepted body; larger requests get 413 (at most 64MiB).
    #[serde(default = "default_max_body")]
    pub max_body: ByteSize,
    /// Requests per second accepted for this source; more get 429 + Retry-After.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// `{ id = "header:X-GitHub-Delivery", window = "10m" }`: a verified request whose
    /// delivery id was acknowledged with the same body within `window` is answered 2xx
    /// without producing it again (per replica, best-effort): a replay guard for
    /// providers that sign no timestamp.
    #[serde(default)]
    pub replay_guard: Option<ReplayGuardConfig>,
}

/// `replay_guard` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayGuardConfig {
    /// Where the provider's delivery id is: `"header:NAME"` or `"json:/pointer"`.
    pub id: String,
    /// How long an acknowledged delivery is remembered (1s to 24h).
    pub window: HumanDuration,
}

/// The replay guard of a source: where its delivery id is, and for how long.
#[derive(Debug, Clone)]
pub struct ReplayGuardRule {
    pub id: KeyRule,
    pub window: Duration,
}

fn default_key() -> String {
    "none".to_owned()
}

const fn default_max_body() -> ByteSize {
    ByteSize(1 << 20)
}

/// A source as its file defines it: every value checked, no secret resolved.
#[derive(Debug)]
pub struct SourceDefinition {
    pub file: String,
    pub name: Arc<str>,
    pub path: String,
    pub topic: String,
    pub verify: VerifyConfig,
    pub key: KeyRule,
    pub forward_headers: Vec<HeaderName>,
    pub max_body: usize,
    pub rate_limit: Option<RateLimitConfig>,
    /// The replay guard, if any.
    pub replay_guard: Option<ReplayGuardRule>,
    /// Where the URL the provider signs (Twilio, Square, generic `{url}`) comes from:
    /// `verify.public_url` or `verify.trust_forwarded_from`.
    pub signed_url: SignedUrl,
}

/// A source ready to serve: its definition, the verifier holding the resolved secrets,
/// and its rate limiter. Reads through to the definition's fields.
#[derive(Debug)]
pub struct Source {
    definition: SourceDefinition,
    pub verifier: Verifier,
    pub limiter: Option<DefaultDirectRateLimiter>,
}

impl Deref for Source {
    type Target = SourceDefinition;

    fn deref(&self) -> &SourceDefinition {
        &self.definition
    }
}

impl SourceConfig {
    /// Every secret reference with its key, for `check`'s literal-secret warning.
    pub fn secret_refs(&self) -> Vec<(String, &SecretRef)> {
        self.verify
            .secret_refs()
            .into_iter()
            .map(|r| ("source.verify".to_owned(), r))
            .collect()
    }

    /// Checks every value; touches no environment or file. Errors name `file` and the key.
    pub fn validate(self, file: &str) -> Result<SourceDefinition, ConfigError> {
        let err = |key: &str, reason: String| source_error(file, key, reason);
        if self.name.trim().is_empty() {
            return Err(err("name", "must not be empty".into()));
        }
        if !self.path.starts_with('/') {
            return Err(err("path", format!("{:?} must start with '/'", self.path)));
        }
        if self.topic.trim().is_empty() {
            return Err(err("topic", "must not be empty".into()));
        }
        let key = KeyRule::parse(&self.key).map_err(|r| err("key", r))?;
        let forward_headers = self
            .forward_headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                HeaderName::try_from(h.as_str()).map_err(|_| {
                    err(
                        &format!("forward_headers[{i}]"),
                        format!("{h:?} is not a valid header name"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(secret) = self.verify.secret_header() {
            let carries = |h: &HeaderName| h.as_str().eq_ignore_ascii_case(secret);
            let why = format!(
                "{secret} carries the source's secret token: it would be copied into Kafka"
            );
            if let Some(i) = forward_headers.iter().position(carries) {
                return Err(err(&format!("forward_headers[{i}]"), why));
            }
            if matches!(&key, KeyRule::Header(h) if carries(h)) {
                return Err(err("key", why));
            }
        }
        let max_body = self.max_body.0;
        if max_body == 0 || max_body > MAX_MAX_BODY {
            return Err(err("max_body", "must be between 1B and 64MiB".into()));
        }
        let replay_guard = match self.replay_guard {
            None => None,
            Some(g) => {
                let id = KeyRule::parse(&g.id).map_err(|r| err("replay_guard.id", r))?;
                if matches!(id, KeyRule::None) {
                    return Err(err(
                        "replay_guard.id",
                        "must name the provider's delivery id (\"header:NAME\" or \"json:/pointer\"), never the body alone".into(),
                    ));
                }
                let window = g.window.0;
                if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&window) {
                    return Err(err(
                        "replay_guard.window",
                        "must be between 1s and 24h".into(),
                    ));
                }
                Some(ReplayGuardRule { id, window })
            }
        };
        let signed_url = (self.verify.signed_url())
            .map_err(|(key, reason)| err(&format!("verify.{key}"), reason))?;
        Ok(SourceDefinition {
            file: file.to_owned(),
            name: self.name.into(),
            path: self.path,
            topic: self.topic,
            verify: self.verify,
            key,
            forward_headers,
            max_body: max_body as usize,
            rate_limit: self.rate_limit,
            replay_guard,
            signed_url,
        })
    }
}

/// Room for what a record carries besides the body and the copied request headers:
/// hookbridge's own headers (source, received-at, traceparent, content-type) and the
/// record batch framing.
const RECORD_OVERHEAD: usize = 4 << 10;

impl SourceDefinition {
    /// The largest Kafka record this source can produce: the body, plus the request
    /// headers it copies (bounded by `http.max_header_bytes`; a header key may repeat a
    /// forwarded header), plus a key taken from the body, plus hookbridge's own headers
    /// and framing.
    pub fn largest_record(&self, max_header_bytes: usize) -> usize {
        let key = match self.key {
            KeyRule::Json(_) => self.max_body,
            KeyRule::Header(_) => max_header_bytes,
            KeyRule::None => 0,
        };
        self.max_body + max_header_bytes + key + RECORD_OVERHEAD
    }

    /// Resolves the verification secrets and creates the rate limiter. Errors name the
    /// file and the key, never a secret.
    pub fn build(self) -> Result<Source, ConfigError> {
        let verifier = self
            .verify
            .build()
            .map_err(|(key, reason)| source_error(&self.file, &format!("verify.{key}"), reason))?;
        Ok(Source {
            limiter: self.rate_limit.map(|r| r.limiter()),
            verifier,
            definition: self,
        })
    }
}

fn source_error(file: &str, key: &str, reason: String) -> ConfigError {
    ConfigError::new(file, format!("source.{key}"), reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(verify: &str, extra: &str) -> Result<SourceDefinition, ConfigError> {
        let text = format!(
            "name = \"s\"\npath = \"/s\"\ntopic = \"t\"\nverify = {{ {verify} }}\n{extra}\n"
        );
        let config: SourceConfig = toml::from_str(&text).unwrap();
        config.validate("s.toml")
    }

    #[test]
    fn the_header_carrying_a_token_secret_is_never_forwarded_or_a_key() {
        let token = r#"scheme = "token", secret = "t", header = "X-Webhook-Token""#;
        let cases = [
            (
                token,
                r#"forward_headers = ["X-Event", "x-webhook-token"]"#,
                "source.forward_headers[1]",
            ),
            (token, r#"key = "header:X-Webhook-Token""#, "source.key"),
            (
                r#"scheme = "bearer", secret = "t""#,
                r#"forward_headers = ["Authorization"]"#,
                "source.forward_headers[0]",
            ),
            (
                r#"scheme = "basic", secret = "u:p""#,
                r#"key = "header:authorization""#,
                "source.key",
            ),
            (
                r#"scheme = "gitlab", secret = "t""#,
                r#"forward_headers = ["X-Gitlab-Token"]"#,
                "source.forward_headers[0]",
            ),
        ];
        for (verify, extra, key) in cases {
            let e = validate(verify, extra).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{extra}");
            assert!(e.reason.contains("secret"), "{e}");
        }
        // Other headers, and signature headers (which carry a MAC, not the secret), pass.
        assert!(validate(token, r#"forward_headers = ["X-Event"]"#).is_ok());
        let github = r#"scheme = "github", secret = "s""#;
        assert!(validate(github, r#"forward_headers = ["X-Hub-Signature-256"]"#).is_ok());
    }
}
