//! A sink's values checked into a [`SinkDefinition`] without touching the environment or
//! files: names, URL and header templates, jq programs, limits, the status policy. Errors
//! name the file and the key.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};

use crate::config::rate_limit::RateLimitConfig;
use crate::config::{ConfigError, SecretRef};
use crate::connectors::jq::Program;
use crate::connectors::status_policy::StatusPolicy;
use crate::connectors::template::{Template, UrlTemplate};
use crate::connectors::{is_topic_name, TOPIC_NAME_RULE};

use super::config::{
    AuthConfig, BatchConfig, BreakerConfig, Format, Ordering, RetryConfig, SignConfig, SinkConfig,
    TlsConfig, Tombstones,
};

/// A sink as its file defines it: every value checked, no secret resolved.
#[derive(Debug, Clone)]
pub struct SinkDefinition {
    pub file: String,
    pub name: Arc<str>,
    pub topics: Vec<String>,
    pub group_id: String,
    /// The destination URL, literal or with placeholders.
    pub url: UrlTemplate,
    pub method: Method,
    /// Extra request headers, their values still references or templates.
    pub header_refs: Vec<HeaderRef>,
    pub content_type: HeaderValue,
    /// Record headers forwarded: exact names and `prefix*` patterns, lowercase.
    pub forward_headers: Vec<HeaderPattern>,
    pub filter: Option<Arc<Program>>,
    pub transform: Option<Arc<Program>>,
    pub format: Format,
    pub timeout: Duration,
    pub concurrency: usize,
    pub ordering: Ordering,
    pub tombstones: Tombstones,
    pub buffer: usize,
    pub retry: RetryConfig,
    pub rate_limit: Option<RateLimitConfig>,
    pub dlq_topic: Option<String>,
    pub sign: Option<SignConfig>,
    pub breaker: BreakerConfig,
    /// Which non-2xx answers retry and which dead-letter.
    pub status: StatusPolicy,
    pub auth: Option<AuthConfig>,
    pub tls: Option<TlsConfig>,
    /// Several records per request; `None`: one request per record.
    pub batch: Option<BatchConfig>,
}

/// One configured request header: the name as written (for errors), parsed, and its
/// value: a secret reference, or a template (a literal with or without placeholders).
#[derive(Debug, Clone)]
pub struct HeaderRef {
    pub key: String,
    pub name: HeaderName,
    pub value: SecretRef,
    /// Set for a literal with placeholders: filled per record.
    pub template: Option<Template>,
}

/// A `forward_headers` entry: a record header name, or a prefix when it ends in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderPattern {
    Exact(String),
    Prefix(String),
}

/// Headers that frame or route the request itself (RFC 9110/9112): never copied from a
/// record nor configured. A record header `content-length: 2` would make the client
/// send 2 bytes of the body and the truncated record count as delivered; `host` would
/// pick another virtual host.
pub fn is_framing(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "host"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "upgrade"
            | "expect"
    ) || name.starts_with("proxy-")
}

impl HeaderPattern {
    fn parse(text: &str) -> Self {
        let lower = text.to_ascii_lowercase();
        match lower.strip_suffix('*') {
            Some(prefix) => HeaderPattern::Prefix(prefix.to_owned()),
            None => HeaderPattern::Exact(lower),
        }
    }

    /// Whether the record header `name` is forwarded.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            HeaderPattern::Exact(n) => name.eq_ignore_ascii_case(n),
            HeaderPattern::Prefix(p) => name
                .get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p)),
        }
    }
}

impl std::fmt::Display for HeaderPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderPattern::Exact(n) => f.write_str(n),
            HeaderPattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// Whether a request header of this name carries credentials, so that a value written
/// literally under it is a secret all the same: sent as sensitive, kept out of `Debug`,
/// masked in what dead letters show, and warned about by `check`. A value filled from a
/// record (a header template, a forwarded record header) under such a name is sent as
/// sensitive too (never indexed by HTTP/2's header compression, `Debug` hides it). Judged
/// by the name's words (split at `-` and `_`), so `X-Routing-Key` or `X-Author` stay plain
/// text.
pub fn carries_credentials(name: &str) -> bool {
    // `Proxy-*` headers are refused outright.
    const NAMES: [&str; 2] = ["authorization", "cookie"];
    const WORDS: [&str; 10] = [
        "token",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "credential",
        "credentials",
        "apikey",
        "jwt",
        "bearer",
    ];
    // `<word>-key`: an API, access or subscription key, not a tenant's or a route's.
    const KEY_AFTER: [&str; 9] = [
        "api",
        "access",
        "subscription",
        "private",
        "secret",
        "client",
        "app",
        "master",
        "auth",
    ];
    // Without allocating: it runs for every record header a sink forwards.
    let is = |word: &str, list: &[&str]| list.iter().any(|w| w.eq_ignore_ascii_case(word));
    if is(name, &NAMES) {
        return true;
    }
    let mut previous = "";
    for word in name.split(['-', '_']) {
        if is(word, &WORDS) || (word.eq_ignore_ascii_case("key") && is(previous, &KEY_AFTER)) {
            return true;
        }
        previous = word;
    }
    false
}

impl SinkConfig {
    /// Checks every value; touches no environment or file. Errors name `file` and the key.
    pub fn validate(self, file: &str) -> Result<SinkDefinition, ConfigError> {
        let err = |key: &str, reason: String| ConfigError::new(file, format!("sink.{key}"), reason);
        if self.name.trim().is_empty() {
            return Err(err("name", "must not be empty".into()));
        }
        if self.topics.is_empty() || self.topics.iter().any(|t| t.trim().is_empty()) {
            return Err(err("topics", "list at least one non-empty topic".into()));
        }
        // `^…` is a pattern: librdkafka subscribes to every topic its regex matches.
        let named = |t: &str| t.starts_with('^') || is_topic_name(t);
        if let Some((i, t)) = (self.topics.iter().enumerate()).find(|(_, t)| !named(t)) {
            return Err(err(
                &format!("topics[{i}]"),
                format!("{t:?} {TOPIC_NAME_RULE}"),
            ));
        }
        if let Some(h) = self.allowed_hosts.iter().find(|h| !is_allowed_host(h)) {
            return Err(err(
                "allowed_hosts",
                format!("{h:?} is not a host name (`name` or `name:port`)"),
            ));
        }
        // The URL itself is not repeated: it may carry credentials.
        let url = UrlTemplate::parse(self.url.as_written(), &self.allowed_hosts)
            .map_err(|e| err("url", e))?;
        let method = Method::from_bytes(self.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| err("method", format!("{:?} is not an HTTP method", self.method)))?;
        let header_refs = self
            .headers
            .into_iter()
            .map(|(k, v)| {
                let name = HeaderName::try_from(k.as_str())
                    .map_err(|_| err(&format!("headers.{k}"), "not a valid header name".into()))?;
                if is_framing(name.as_str()) {
                    return Err(err(
                        &format!("headers.{k}"),
                        "a framing or hop-by-hop header is set by the HTTP client, not here".into(),
                    ));
                }
                let template = match &v {
                    SecretRef::Literal(text) => {
                        let t = Template::parse(text.expose())
                            .map_err(|e| err(&format!("headers.{k}"), e))?;
                        t.as_literal().is_none().then_some(t)
                    }
                    _ => None,
                };
                Ok(HeaderRef {
                    key: k,
                    name,
                    value: v,
                    template,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let content_type = HeaderValue::from_str(&self.content_type)
            .map_err(|_| err("content_type", "not a valid header value".into()))?;
        if self.timeout.0.is_zero() {
            return Err(err("timeout", "must be greater than zero".into()));
        }
        if !(1..=10_000).contains(&self.concurrency) {
            return Err(err("concurrency", "must be between 1 and 10000".into()));
        }
        if self.buffer == 0 {
            return Err(err("buffer", "must be at least 1".into()));
        }
        if self.retry.initial.0.is_zero() || self.retry.initial > self.retry.max {
            return Err(err(
                "retry.initial",
                "must be greater than zero and at most retry.max".into(),
            ));
        }
        if self.tombstones == Tombstones::DeadLetter && self.dlq.is_none() {
            return Err(err(
                "tombstones",
                "\"dead-letter\" needs a dead-letter topic (`dlq`)".into(),
            ));
        }
        let dlq_topic = match self.dlq {
            Some(d) if d.topic.trim().is_empty() => {
                return Err(err("dlq.topic", "must not be empty".into()))
            }
            Some(d) if !is_topic_name(&d.topic) => {
                return Err(err("dlq.topic", format!("{:?} {TOPIC_NAME_RULE}", d.topic)))
            }
            Some(d) if self.topics.contains(&d.topic) => {
                return Err(err(
                    "dlq.topic",
                    "must differ from the consumed topics".into(),
                ))
            }
            Some(d) => Some(d.topic),
            None => None,
        };
        let program = |key: &str, code: Option<String>| {
            code.map(|c| Program::compile(&c).map(Arc::new).map_err(|e| err(key, e)))
                .transpose()
        };
        let filter = program("filter", self.filter)?;
        let transform = program("transform", self.transform)?;
        let status = self
            .status
            .policy()
            .map_err(|(key, e)| err(&format!("status.{key}"), e.to_string()))?;
        let authorization_header = header_refs
            .iter()
            .any(|h| h.name == axum::http::header::AUTHORIZATION);
        if url.userinfo().is_some() && (self.auth.is_some() || authorization_header) {
            return Err(err(
                "url",
                "the URL carries a user (and password) and `auth` or `headers.Authorization` is also set; keep one".into(),
            ));
        }
        if let Some(auth) = &self.auth {
            if authorization_header {
                return Err(err(
                    "auth",
                    "both `auth` and `headers.Authorization` are set; keep one".into(),
                ));
            }
            match auth {
                AuthConfig::Basic(b) if b.user.contains(':') => {
                    return Err(err("auth.basic.user", "must not contain `:`".into()))
                }
                AuthConfig::Oauth2(o) => {
                    let u = url::Url::parse(o.token_url.as_written())
                        .map_err(|e| err("auth.oauth2.token_url", format!("not a URL: {e}")))?;
                    if !matches!(u.scheme(), "http" | "https") {
                        return Err(err(
                            "auth.oauth2.token_url",
                            "must be an http:// or https:// URL".into(),
                        ));
                    }
                    // The client authenticates with `client_id` and `client_secret`; a
                    // user and password in the URL would be sent as a second
                    // `Authorization` header.
                    if !u.username().is_empty() || u.password().is_some() {
                        return Err(err(
                            "auth.oauth2.token_url",
                            "must not carry a user or password; client_id and client_secret authenticate".into(),
                        ));
                    }
                    if o.client_id.is_empty() {
                        return Err(err("auth.oauth2.client_id", "must not be empty".into()));
                    }
                }
                _ => {}
            }
        }
        if let Some(tls) = &self.tls {
            if tls.cert.is_some() != tls.key.is_some() {
                return Err(err(
                    "tls",
                    "`cert` and `key` go together: set both for mTLS, or neither".into(),
                ));
            }
        }
        if let Some(b) = &self.batch {
            validate_batch(b, self.format).map_err(|(key, reason)| err(key, reason))?;
        }
        let group_id = self
            .group_id
            .unwrap_or_else(|| format!("hookbridge-{}", self.name));
        Ok(SinkDefinition {
            file: file.to_owned(),
            name: self.name.into(),
            topics: self.topics,
            group_id,
            url,
            method,
            header_refs,
            content_type,
            forward_headers: self
                .forward_headers
                .iter()
                .map(|h| HeaderPattern::parse(h))
                .collect(),
            filter,
            transform,
            format: self.format,
            timeout: self.timeout.0,
            concurrency: self.concurrency,
            ordering: self.ordering,
            tombstones: self.tombstones,
            buffer: self.buffer,
            retry: self.retry,
            rate_limit: self.rate_limit,
            dlq_topic,
            sign: self.sign,
            breaker: self.breaker,
            status,
            auth: self.auth,
            tls: self.tls,
            batch: self.batch,
        })
    }
}

/// The `batch` limits, and the formats a batch cannot carry: a batch is one JSON body of
/// items, so a format that puts a record's attributes in request headers
/// (`cloudevents-binary`) or makes each record its own typed document
/// (`cloudevents-structured`) has no place for them.
fn validate_batch(b: &BatchConfig, format: Format) -> Result<(), (&'static str, String)> {
    if !(1..=10_000).contains(&b.max_records) {
        return Err(("batch.max_records", "must be between 1 and 10000".into()));
    }
    if !((1 << 10)..=(64 << 20)).contains(&b.max_bytes.0) {
        return Err(("batch.max_bytes", "must be between 1KiB and 64MiB".into()));
    }
    if b.max_wait.0 > Duration::from_secs(60) {
        return Err(("batch.max_wait", "must be at most 60s".into()));
    }
    if format != Format::Raw {
        return Err((
            "batch",
            format!(
                "cannot batch `format = \"{}\"`: a batch body holds the records' bodies as JSON items; use `format = \"raw\"` (or `items = \"envelope\"` for per-record attributes)",
                format.name()
            ),
        ));
    }
    Ok(())
}

/// Whether an `allowed_hosts` entry is `name`, `name:port`, `[v6]` or `[v6]:port`, with
/// a port of 1 to 65535: an entry with a port that does not parse would never match.
fn is_allowed_host(h: &str) -> bool {
    if h.is_empty() || h.contains(['/', '@', '?', '#', '{', '}', ' ']) {
        return false;
    }
    if h.ends_with(']') {
        return h.starts_with('[');
    }
    match h.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) && !host.ends_with(':')
        }
        None => true,
    }
}
