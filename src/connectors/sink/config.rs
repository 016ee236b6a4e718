//! `[sink]` as written in a connector file: the serde types, every field documented (it
//! is the user's reference), unknown keys refused, defaults named. Checking the values is
//! [`super::definition`]'s job.

use std::time::Duration;

use serde::Deserialize;

use crate::config::rate_limit::RateLimitConfig;
use crate::config::units::{ByteSize, HumanDuration};
use crate::config::SecretRef;
use crate::connectors::status_policy::{self, StatusMatch, StatusPolicy};
use crate::connectors::template::redacted_url;

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
    pub url: UrlText,
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
    /// What a record with a null value (a tombstone) becomes.
    #[serde(default)]
    pub tombstones: Tombstones,
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
    /// Several records per request (off when not set).
    #[serde(default)]
    pub batch: Option<BatchConfig>,
}

/// `batch = { max_records = 100, max_bytes = "1MiB", max_wait = "50ms", format = "json-array", items = "data" }`:
/// records sent together, each a JSON item of one body.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most records per request (1..=10000).
    pub max_records: usize,
    /// Largest body (1KiB..=64MiB); a single record larger than it goes alone.
    pub max_bytes: ByteSize,
    /// Longest a batch waits for more records after its first joined (at most 60s).
    pub max_wait: HumanDuration,
    /// `json-array` (`[item,…]`) or `ndjson` (one item per line).
    pub format: BatchFormat,
    /// `data`: each item is the record's body; `envelope`: wrapped with its
    /// `webhook_id`, topic, partition and offset.
    pub items: BatchItems,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_records: 100,
            max_bytes: ByteSize(1 << 20),
            max_wait: HumanDuration(Duration::from_millis(50)),
            format: BatchFormat::JsonArray,
            items: BatchItems::Data,
        }
    }
}

/// How a batch's body is laid out.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BatchFormat {
    #[default]
    JsonArray,
    Ndjson,
}

/// What one item of a batch is.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BatchItems {
    #[default]
    Data,
    Envelope,
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
    pub token_url: UrlText,
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
    pub(super) fn policy(
        &self,
    ) -> Result<StatusPolicy, (&'static str, status_policy::PolicyError)> {
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

/// What a tombstone (a record whose value is null: on a compacted topic it deletes its
/// key) becomes.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Tombstones {
    /// Shaped and POSTed as any record, with an empty body.
    #[default]
    Deliver,
    /// Finished without a request, as a filter drops a record.
    Skip,
    /// Dead-lettered at once (reason `tombstone`, error `null-value`).
    DeadLetter,
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

/// A URL as written in a connector file. It may carry a password (`user:password@`) or
/// a secret-looking query value: its `Debug` shows it redacted, and the text itself only
/// through [`UrlText::as_written`], so every raw use can be found.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct UrlText(String);

impl UrlText {
    /// The URL exactly as written, user and password included: for parsing it.
    pub fn as_written(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for UrlText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A URL with a user or password, or written without `//`, is shown as the URL
        // parser reads it (it finds a user and password after `http:` with any number
        // of slashes, tabs dropped), which the redaction then reads rightly; otherwise as
        // written, placeholders unescaped. Text the parser cannot read is shown only when
        // it has no `@` to hide a password behind.
        let shown = match url::Url::parse(&self.0) {
            Ok(u) if !u.username().is_empty() || u.password().is_some() => redacted_url(u.as_str()),
            Ok(u) if !self.0.contains("://") => redacted_url(u.as_str()),
            Err(_) if self.0.contains('@') => "[not a URL; not shown]".to_owned(),
            _ => redacted_url(&self.0),
        };
        std::fmt::Debug::fmt(&shown, f)
    }
}

impl SinkConfig {
    /// Every secret reference with its key, for `check`'s literal-secret warning: the
    /// `sign` and `auth` secrets, and the `headers` whose names carry credentials (other
    /// header values are plain text).
    pub fn secret_refs(&self) -> Vec<(String, &SecretRef)> {
        let headers = (self.headers.iter())
            .filter(|(name, _)| super::definition::carries_credentials(name))
            .map(|(name, value)| (format!("sink.headers.{name}"), value));
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
            .chain(headers)
            .collect()
    }
}
