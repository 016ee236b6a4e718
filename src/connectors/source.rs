//! A source connector: one webhook path, verified with one provider scheme, produced to
//! one Kafka topic.

use std::sync::Arc;

use axum::http::HeaderName;
use governor::DefaultDirectRateLimiter;
use serde::Deserialize;

use super::key::KeyRule;
use crate::config::rate_limit::RateLimitConfig;
use crate::config::units::ByteSize;
use crate::config::{ConfigError, SecretRef};
use crate::verify::{Verifier, VerifyConfig};

const DEFAULT_MAX_BODY: u64 = 1 << 20;
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
    /// Record key: `"header:NAME"`, `"json:/pointer"` or `"none"` (default).
    #[serde(default)]
    pub key: Option<String>,
    /// HTTP headers copied into Kafka record headers (case-insensitive names).
    #[serde(default)]
    pub forward_headers: Vec<String>,
    /// Largest accepted body; larger requests get 413 (default 1MiB, at most 64MiB).
    #[serde(default)]
    pub max_body: Option<ByteSize>,
    /// Requests per second accepted for this source; more get 429 + Retry-After.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
}

/// A validated source, ready to serve.
#[derive(Debug)]
pub struct Source {
    pub file: String,
    pub name: Arc<str>,
    pub path: String,
    pub topic: String,
    pub verifier: Verifier,
    pub key: KeyRule,
    pub forward_headers: Vec<HeaderName>,
    pub max_body: usize,
    pub limiter: Option<DefaultDirectRateLimiter>,
    pub rate_limit: Option<RateLimitConfig>,
    /// The URL the provider signs (Twilio, Square, generic `{url}`) when hookbridge is
    /// behind a proxy that rewrites scheme, host or path; from `verify.public_url`.
    pub public_url: Option<String>,
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

    /// Checks every value and resolves secrets. Errors name `file` and the key.
    pub fn validate(self, file: &str) -> Result<Source, ConfigError> {
        let err =
            |key: &str, reason: String| ConfigError::new(file, format!("source.{key}"), reason);
        if self.name.trim().is_empty() {
            return Err(err("name", "must not be empty".into()));
        }
        if !self.path.starts_with('/') {
            return Err(err("path", format!("{:?} must start with '/'", self.path)));
        }
        if self.topic.trim().is_empty() {
            return Err(err("topic", "must not be empty".into()));
        }
        let key = match &self.key {
            None => KeyRule::None,
            Some(text) => KeyRule::parse(text).map_err(|r| err("key", r))?,
        };
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
        let max_body = self.max_body.map_or(DEFAULT_MAX_BODY, |b| b.0);
        if max_body == 0 || max_body > MAX_MAX_BODY {
            return Err(err("max_body", "must be between 1B and 64MiB".into()));
        }
        let verifier = self
            .verify
            .build()
            .map_err(|(key, reason)| err(&format!("verify.{key}"), reason))?;
        Ok(Source {
            file: file.to_owned(),
            name: self.name.into(),
            path: self.path,
            topic: self.topic,
            verifier,
            key,
            forward_headers,
            max_body: max_body as usize,
            limiter: self.rate_limit.map(|r| r.limiter()),
            rate_limit: self.rate_limit,
            public_url: self.verify.public_url().map(str::to_owned),
        })
    }
}
