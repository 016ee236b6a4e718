//! A sink connector: Kafka topics consumed by one group and POSTed to one HTTP
//! destination with its own retry policy, rate limit, signing and dead-letter topic.
//!
//! Two phases: [`SinkConfig::validate`] checks the values into a [`SinkDefinition`]
//! without touching the environment or files; [`SinkDefinition::build`] resolves the
//! secrets (header values, the signing key) into a [`Sink`].

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;

use super::jq::Program;
use super::status_policy::{self, StatusMatch, StatusPolicy};
use super::template::{Template, UrlTemplate};
use crate::config::rate_limit::RateLimitConfig;
use crate::config::units::HumanDuration;
use crate::config::{ConfigError, Secret, SecretRef};

/// `[sink]` in a connector file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Connector name: in metrics, logs, DLQ headers and the default group id.
    pub name: String,
    /// Topics consumed.
    pub topics: Vec<String>,
    /// Consumer group (default `hookbridge-<name>`).
    #[serde(default)]
    pub group_id: Option<String>,
    /// Destination URL; placeholders (`{key}`, `{header.NAME}`, …) in path and query.
    pub url: String,
    /// Hosts (`name` or `name:port`) a URL with placeholders in its host may reach.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// HTTP method.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra request headers; a value is a `${ENV}` / `file:` reference (a secret, e.g. an
    /// API key) or a text with placeholders (`{header.x-tenant}`).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, SecretRef>,
    /// Content-Type when the record carries no `content-type` header.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Record headers sent along as HTTP headers: names, or patterns ending in `*`.
    #[serde(default, alias = "forward_record_headers")]
    pub forward_headers: Vec<String>,
    /// jq program over the record: `false`, `null` or no output finishes the record
    /// without a request.
    #[serde(default)]
    pub filter: Option<String>,
    /// jq program whose output (JSON) is the request body.
    #[serde(default)]
    pub transform: Option<String>,
    /// `raw` (default), `cloudevents-binary` or `cloudevents-structured`.
    #[serde(default)]
    pub format: Format,
    /// Per-attempt timeout.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Requests in flight at once for this sink.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// `key` (default): per-key order; `partition`: one at a time per partition; `none`.
    #[serde(default)]
    pub ordering: Ordering,
    /// Records held per partition before it is paused.
    #[serde(default = "default_buffer")]
    pub buffer: usize,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    pub dlq: Option<DlqConfig>,
    #[serde(default)]
    pub sign: Option<SignConfig>,
    #[serde(default)]
    pub breaker: BreakerConfig,
    #[serde(default)]
    pub status: StatusConfig,
    /// How requests authenticate: a bearer token, basic credentials or OAuth2 client
    /// credentials.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Private CA and client certificate (mTLS) for an `https://` destination.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// `auth = { bearer = "${TOKEN}" }`, `{ basic = { user, password } }` or
/// `{ oauth2 = { token_url, client_id, client_secret, scopes, audience } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthConfig {
    /// `Authorization: Bearer <token>`.
    Bearer(SecretRef),
    /// `Authorization: Basic base64(user:password)`.
    Basic(BasicAuthConfig),
    /// Client credentials grant; the token is cached until shortly before it expires.
    Oauth2(OAuth2Config),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    pub user: String,
    pub password: SecretRef,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// The authorization server's token endpoint.
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretRef,
    /// Scopes requested (sent space-separated).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `audience` parameter (Auth0 and others), when the server wants one.
    #[serde(default)]
    pub audience: Option<String>,
    /// How the client authenticates to the token endpoint: `basic` (HTTP Basic, what
    /// RFC 6749 requires servers to support) or `body` (`client_id` and
    /// `client_secret` form fields).
    #[serde(default)]
    pub client_auth: ClientAuth,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    #[default]
    Basic,
    Body,
}

/// `tls = { ca = "/etc/hb/ca.pem", cert = "/etc/hb/client.pem", key = "/etc/hb/client.key" }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of CA certificates trusted besides the system roots.
    #[serde(default)]
    pub ca: Option<std::path::PathBuf>,
    /// PEM client certificate (chain) presented to the destination.
    #[serde(default)]
    pub cert: Option<std::path::PathBuf>,
    /// PEM PKCS#8 private key of `cert`.
    #[serde(default)]
    pub key: Option<std::path::PathBuf>,
}

fn default_method() -> String {
    "POST".to_owned()
}

fn default_content_type() -> String {
    "application/json".to_owned()
}

const fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

const fn default_concurrency() -> usize {
    64
}

/// Deep enough that a fast destination never waits for the partition to be fetched
/// again after a pause (a pause drops what librdkafka had already prefetched, and the
/// resume re-reads it): 5000 records of 1 KiB in 8 partitions is about 40 MiB.
const fn default_buffer() -> usize {
    5000
}

/// `status = { retry = [401, 403, 404, 408, 425, 429, "5xx"], dead_letter = ["3xx", "4xx"] }`:
/// which non-2xx answers are retried and which dead-letter the record at once. A list
/// that is set replaces its default; see [`StatusPolicy`] for how a status is matched.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    /// Statuses retried with backoff (default `[401, 403, 404, 408, 425, 429, "5xx"]`).
    #[serde(default)]
    pub retry: Option<Vec<StatusEntry>>,
    /// Statuses dead-lettered at once (default `["3xx", "4xx"]`).
    #[serde(default)]
    pub dead_letter: Option<Vec<StatusEntry>>,
}

/// A status code (`404`) or a class (`"4xx"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusEntry {
    Code(u16),
    Class(String),
}

impl StatusConfig {
    /// The policy; errors name the list (`retry`, `dead_letter`) and the entry.
    fn policy(&self) -> Result<StatusPolicy, (&'static str, status_policy::PolicyError)> {
        let list = |key: &'static str, entries: &Option<Vec<StatusEntry>>| {
            entries
                .as_ref()
                .map(|es| {
                    es.iter()
                        .map(|e| match e {
                            StatusEntry::Code(c) => StatusMatch::code(*c),
                            StatusEntry::Class(c) => StatusMatch::class(c),
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| (key, e))
                })
                .transpose()
        };
        StatusPolicy::from_lists(
            list("retry", &self.retry)?,
            list("dead_letter", &self.dead_letter)?,
        )
        .map_err(|e| ("retry", e))
    }
}

/// How the request carries the record: as is, or as a CloudEvent (HTTP binding 1.0).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    #[default]
    Raw,
    /// The body as is; the event's attributes in `ce-*` headers.
    CloudeventsBinary,
    /// One `application/cloudevents+json` document with the body as `data`.
    CloudeventsStructured,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::CloudeventsBinary => "cloudevents-binary",
            Format::CloudeventsStructured => "cloudevents-structured",
        }
    }
}

/// Which records must be delivered in order.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    #[default]
    Key,
    Partition,
    None,
}

/// `retry = { max_attempts = 12, initial = "500ms", max = "5m", honor_retry_after = true }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts before dead-lettering (0 = unlimited).
    pub max_attempts: u32,
    /// Give up (dead-letter) once this much time passed since the first attempt.
    pub max_elapsed: Option<HumanDuration>,
    /// First backoff.
    pub initial: HumanDuration,
    /// Backoff ceiling, also the cap on a destination's `Retry-After`.
    pub max: HumanDuration,
    /// Wait as long as the destination's `Retry-After` says (capped by `max`).
    pub honor_retry_after: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 12,
            max_elapsed: None,
            initial: HumanDuration(Duration::from_millis(500)),
            max: HumanDuration(Duration::from_secs(300)),
            honor_retry_after: true,
        }
    }
}

/// `dlq = { topic = "orders.dlq" }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DlqConfig {
    pub topic: String,
}

/// `sign = { scheme = "standard-webhooks", secret = "${WHSEC}" }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignConfig {
    pub scheme: SignScheme,
    pub secret: SecretRef,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SignScheme {
    StandardWebhooks,
}

/// `breaker = { failures = 20, cooldown = "30s" }`: after `failures` consecutive retryable
/// failures the sink pauses its partitions; after `cooldown` one probe is let through.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive retryable failures that open the breaker (0 = never).
    pub failures: u32,
    pub cooldown: HumanDuration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 20,
            cooldown: HumanDuration(Duration::from_secs(30)),
        }
    }
}

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

/// A sink ready to run: its definition with the secrets resolved. Reads through to the
/// definition's fields.
#[derive(Debug, Clone)]
pub struct Sink {
    definition: SinkDefinition,
    /// Extra request headers with a fixed value; a value from a reference is marked
    /// sensitive.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Extra request headers filled in per record.
    pub header_templates: Vec<(HeaderName, Template)>,
    /// Standard Webhooks signing key (the whole `whsec_…` string; the signer decodes it).
    pub signing_key: Option<Secret>,
    /// How requests authenticate, secrets resolved.
    pub credentials: Option<Credentials>,
    /// PEM contents of the `tls` files.
    pub tls_files: TlsFiles,
}

/// A sink's resolved `auth`.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A fixed `Authorization` value (bearer or basic), marked sensitive.
    Header(HeaderValue),
    OAuth2 {
        token_url: url::Url,
        client_id: String,
        client_secret: Secret,
        scopes: Vec<String>,
        audience: Option<String>,
        client_auth: ClientAuth,
    },
}

/// The `tls` files, read.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub ca: Option<Vec<u8>>,
    /// Certificate and key PEM, both or neither.
    pub identity: Option<(Vec<u8>, Secret)>,
}

impl Deref for Sink {
    type Target = SinkDefinition;

    fn deref(&self) -> &SinkDefinition {
        &self.definition
    }
}

impl SinkConfig {
    /// Every secret reference with its key, for `check`'s literal-secret warning. Plain
    /// header values are not secrets; only a `sign` secret is.
    pub fn secret_refs(&self) -> Vec<(String, &SecretRef)> {
        let auth = self.auth.iter().map(|a| match a {
            AuthConfig::Bearer(r) => ("sink.auth.bearer".to_owned(), r),
            AuthConfig::Basic(b) => ("sink.auth.basic.password".to_owned(), &b.password),
            AuthConfig::Oauth2(o) => (
                "sink.auth.oauth2.client_secret".to_owned(),
                &o.client_secret,
            ),
        });
        self.sign
            .iter()
            .map(|s| ("sink.sign.secret".to_owned(), &s.secret))
            .chain(auth)
            .collect()
    }

    /// Checks every value; touches no environment or file. Errors name `file` and the key.
    pub fn validate(self, file: &str) -> Result<SinkDefinition, ConfigError> {
        let err = |key: &str, reason: String| ConfigError::new(file, format!("sink.{key}"), reason);
        if self.name.trim().is_empty() {
            return Err(err("name", "must not be empty".into()));
        }
        if self.topics.is_empty() || self.topics.iter().any(|t| t.trim().is_empty()) {
            return Err(err("topics", "list at least one non-empty topic".into()));
        }
        if let Some(h) = self
            .allowed_hosts
            .iter()
            .find(|h| h.is_empty() || h.contains(['/', '@', '?', '#', '{', '}', ' ']))
        {
            return Err(err(
                "allowed_hosts",
                format!("{h:?} is not a host name (`name` or `name:port`)"),
            ));
        }
        // The URL itself is not repeated: it may carry credentials.
        let url = UrlTemplate::parse(&self.url, &self.allowed_hosts).map_err(|e| err("url", e))?;
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
        let dlq_topic = match self.dlq {
            Some(d) if d.topic.trim().is_empty() => {
                return Err(err("dlq.topic", "must not be empty".into()))
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
        if let Some(auth) = &self.auth {
            if header_refs
                .iter()
                .any(|h| h.name == axum::http::header::AUTHORIZATION)
            {
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
                    let u = url::Url::parse(&o.token_url)
                        .map_err(|e| err("auth.oauth2.token_url", format!("not a URL: {e}")))?;
                    if !matches!(u.scheme(), "http" | "https") {
                        return Err(err(
                            "auth.oauth2.token_url",
                            "must be an http:// or https:// URL".into(),
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
            buffer: self.buffer,
            retry: self.retry,
            rate_limit: self.rate_limit,
            dlq_topic,
            sign: self.sign,
            breaker: self.breaker,
            status,
            auth: self.auth,
            tls: self.tls,
        })
    }
}

impl SinkDefinition {
    /// Resolves the secrets: header values and the signing key. Errors name the file and
    /// the key, never the value.
    pub fn build(self) -> Result<Sink, ConfigError> {
        let file = self.file.as_str();
        let err = |key: &str, reason: String| ConfigError::new(file, format!("sink.{key}"), reason);
        let header_templates = self
            .header_refs
            .iter()
            .filter_map(|h| Some((h.name.clone(), h.template.clone()?)))
            .collect();
        let headers = self
            .header_refs
            .iter()
            .filter(|h| h.template.is_none())
            .map(|h| {
                let key = format!("headers.{}", h.key);
                let value = h.value.resolve().map_err(|e| err(&key, e.to_string()))?;
                let mut value = HeaderValue::from_str(&literal_braces(value.expose(), &h.value))
                    .map_err(|_| err(&key, "value is not a valid header value".into()))?;
                value.set_sensitive(!matches!(h.value, SecretRef::Literal(_)));
                Ok((h.name.clone(), value))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let signing_key = match &self.sign {
            None => None,
            Some(s) => match s.scheme {
                SignScheme::StandardWebhooks => {
                    Some(standard_webhooks_key(&s.secret).map_err(|r| err("sign.secret", r))?)
                }
            },
        };
        let credentials = self
            .auth
            .as_ref()
            .map(|a| credentials(a).map_err(|(key, r)| err(key, r)))
            .transpose()?;
        let tls_files = match &self.tls {
            None => TlsFiles::default(),
            Some(t) => {
                let read = |key: &str, path: &Option<std::path::PathBuf>| {
                    path.as_ref()
                        .map(|p| {
                            std::fs::read(p)
                                .map_err(|e| err(key, format!("cannot read {}: {e}", p.display())))
                        })
                        .transpose()
                };
                let ca = read("tls.ca", &t.ca)?;
                let cert = read("tls.cert", &t.cert)?;
                let key = read("tls.key", &t.key)?;
                if let Some(ca) = &ca {
                    openssl::x509::X509::stack_from_pem(ca)
                        .ok()
                        .filter(|c| !c.is_empty())
                        .ok_or_else(|| err("tls.ca", "no PEM certificate in the file".into()))?;
                }
                let identity = match (cert, key) {
                    (Some(cert), Some(key)) => {
                        openssl::x509::X509::from_pem(&cert)
                            .map_err(|_| err("tls.cert", "not a PEM certificate".into()))?;
                        let key = String::from_utf8(key)
                            .ok()
                            .filter(|k| k.contains("-----BEGIN PRIVATE KEY-----"))
                            .ok_or_else(|| {
                                err(
                                    "tls.key",
                                    "must be a PEM PKCS#8 key (BEGIN PRIVATE KEY); convert with `openssl pkcs8 -topk8 -nocrypt`".into(),
                                )
                            })?;
                        Some((cert, Secret::new(key)))
                    }
                    _ => None,
                };
                TlsFiles { ca, identity }
            }
        };
        Ok(Sink {
            definition: self,
            headers,
            header_templates,
            credentials,
            tls_files,
            signing_key,
        })
    }
}

/// Resolves `auth`; errors name the key below `sink.` and never the value.
fn credentials(auth: &AuthConfig) -> Result<Credentials, (&'static str, String)> {
    use base64::Engine;
    let sensitive = |v: String, key: &'static str| {
        let mut v = HeaderValue::try_from(v)
            .map_err(|_| (key, "value is not a valid header value".to_owned()))?;
        v.set_sensitive(true);
        Ok(Credentials::Header(v))
    };
    match auth {
        AuthConfig::Bearer(r) => {
            let t = r.resolve().map_err(|e| ("auth.bearer", e.to_string()))?;
            sensitive(format!("Bearer {}", t.expose()), "auth.bearer")
        }
        AuthConfig::Basic(b) => {
            let p = b
                .password
                .resolve()
                .map_err(|e| ("auth.basic.password", e.to_string()))?;
            let pair = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                b.user,
                p.expose()
            ));
            sensitive(format!("Basic {pair}"), "auth.basic.password")
        }
        AuthConfig::Oauth2(o) => Ok(Credentials::OAuth2 {
            token_url: url::Url::parse(&o.token_url)
                .map_err(|e| ("auth.oauth2.token_url", format!("not a URL: {e}")))?,
            client_id: o.client_id.clone(),
            client_secret: o
                .client_secret
                .resolve()
                .map_err(|e| ("auth.oauth2.client_secret", e.to_string()))?,
            scopes: o.scopes.clone(),
            audience: o.audience.clone(),
            client_auth: o.client_auth,
        }),
    }
}

/// A literal header value with `{{`/`}}` escapes but no placeholder, as sent.
fn literal_braces(value: &str, r: &SecretRef) -> String {
    match r {
        SecretRef::Literal(_) => Template::parse(value)
            .ok()
            .and_then(|t| t.as_literal().map(str::to_owned))
            .unwrap_or_else(|| value.to_owned()),
        _ => value.to_owned(),
    }
}

/// Checks a `whsec_…` secret decodes; keeps the whole string (the signer decodes it).
fn standard_webhooks_key(secret: &SecretRef) -> Result<Secret, String> {
    use base64::Engine;
    let s = secret.resolve().map_err(|e| e.to_string())?;
    let b64 = s.expose().strip_prefix("whsec_").unwrap_or(s.expose());
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "must be a Standard Webhooks secret: whsec_ followed by base64".to_owned())?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::status_policy::Action;

    fn sink(extra: &str) -> Result<Sink, ConfigError> {
        let text = format!(
            "name = \"orders\"\ntopics = [\"orders\"]\nurl = \"http://127.0.0.1:9/hook\"\n{extra}"
        );
        let cfg: SinkConfig = toml::from_str(&text).expect("parses");
        cfg.validate("orders.toml")?.build()
    }

    #[test]
    fn default_status_policy_retries_auth_and_not_found() {
        let s = sink("").unwrap();
        assert_eq!(s.status, StatusPolicy::default());
        for code in [401, 403, 404, 429, 503] {
            assert_eq!(s.status.action(code), Action::Retry, "{code}");
        }
        for code in [400, 410, 422, 301] {
            assert_eq!(s.status.action(code), Action::DeadLetter, "{code}");
        }
    }

    #[test]
    fn status_lists_replace_their_defaults() {
        let s = sink("status = { retry = [\"5xx\", 429], dead_letter = [\"4xx\", 503] }").unwrap();
        assert_eq!(s.status.action(401), Action::DeadLetter);
        assert_eq!(s.status.action(503), Action::DeadLetter);
        assert_eq!(s.status.action(502), Action::Retry);
        let only_retry = sink("status = { retry = [\"4xx\", \"5xx\"] }").unwrap();
        assert_eq!(only_retry.status.action(400), Action::Retry);
        assert_eq!(only_retry.status.action(301), Action::DeadLetter);
    }

    #[test]
    fn bearer_and_basic_send_a_sensitive_authorization_header() {
        for (extra, want) in [
            ("auth = { bearer = \"tok\" }", "Bearer tok"),
            (
                "auth = { basic = { user = \"u\", password = \"p\" } }",
                "Basic dTpw",
            ),
        ] {
            let s = sink(extra).unwrap();
            let Some(Credentials::Header(v)) = &s.credentials else {
                panic!("{extra}: {:?}", s.credentials);
            };
            assert_eq!(v.to_str().unwrap(), want);
            assert!(v.is_sensitive());
        }
        for (extra, key) in [
            (
                "auth = { bearer = \"t\" }\nheaders = { Authorization = \"x\" }",
                "sink.auth",
            ),
            (
                "auth = { oauth2 = { token_url = \"ftp://x\", client_id = \"c\", client_secret = \"s\" } }",
                "sink.auth.oauth2.token_url",
            ),
            ("tls = { cert = \"/nonexistent\" }", "sink.tls"),
            ("tls = { ca = \"/nonexistent/ca.pem\" }", "sink.tls.ca"),
        ] {
            let e = sink(extra).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{extra}: {e}");
        }
    }

    #[test]
    fn bad_status_entries_name_the_key() {
        for (extra, key) in [
            ("status = { retry = [200] }", "sink.status.retry"),
            (
                "status = { dead_letter = [\"6xx\"] }",
                "sink.status.dead_letter",
            ),
            (
                "status = { retry = [404], dead_letter = [404] }",
                "sink.status.retry",
            ),
            (
                "headers = { Content-Length = \"{header.n}\" }",
                "sink.headers.Content-Length",
            ),
            ("headers = { host = \"x\" }", "sink.headers.host"),
            (
                "headers = { Transfer-Encoding = \"chunked\" }",
                "sink.headers.Transfer-Encoding",
            ),
        ] {
            let e = sink(extra).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{extra}: {e}");
        }
        let text =
            "name = \"o\"\ntopics = [\"o\"]\nurl = \"http://x/\"\nstatus = { retries = [500] }";
        assert!(
            toml::from_str::<SinkConfig>(text).is_err(),
            "unknown keys are errors"
        );
    }
}
