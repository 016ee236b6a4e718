//! A source connector: one webhook path, verified with one provider scheme, produced to
//! one Kafka topic.
//!
//! Two phases: [`SourceConfig::validate`] checks the values into a [`SourceDefinition`]
//! without touching the environment or files; [`SourceDefinition::build`] resolves the
//! secrets into a [`Verifier`] and creates the rate limiter, giving a [`Source`].

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use governor::DefaultDirectRateLimiter;
use serde::Deserialize;

use super::key::KeyRule;
use super::template::{Escape, Field, Template};
use crate::config::rate_limit::RateLimitConfig;
use crate::config::units::{ByteSize, HumanDuration};
use crate::config::{ConfigError, SecretRef};
use crate::verify::{SignedUrl, Verifier, VerifyConfig};

/// The largest `max_body` a source may have.
pub const MAX_MAX_BODY: u64 = 64 << 20;

/// `[source]` in a connector file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Connector name: in metrics, logs and the `hookbridge-source` record header.
    pub name: String,
    /// URL path the provider POSTs to, e.g. `/webhooks/github`.
    pub path: String,
    /// Kafka topic the verified webhooks are produced to; `{event_type}` routes by the
    /// event type (with `topics_allowed`).
    pub topic: String,
    /// Topics a routed `topic` may produce to: names, or prefixes ending in `*`.
    #[serde(default)]
    pub topics_allowed: Vec<String>,
    /// Where the event type is: `"header:NAME"` or `"json:/pointer"`; written to the
    /// `hookbridge-event-type` record header.
    #[serde(default)]
    pub event_type: Option<String>,
    /// Accept CloudEvents (binary and structured mode) and answer the CloudEvents webhook
    /// abuse-protection handshake for these origins.
    #[serde(default)]
    pub cloudevents: Option<CloudEventsConfig>,
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

/// `cloudevents = { allowed_origins = ["eventgrid.azure.net"] }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudEventsConfig {
    /// Origins (`WebHook-Request-Origin`) allowed to deliver here; `"*"` allows any.
    pub allowed_origins: Vec<String>,
}

/// The answer to a CloudEvents abuse-protection request (`OPTIONS` with
/// `WebHook-Request-Origin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginCheck {
    /// Allowed: echo the origin in `WebHook-Allowed-Origin`.
    Allowed(HeaderValue),
    /// Not on `allowed_origins`: 403.
    Refused,
    /// No `WebHook-Request-Origin`: 400.
    Missing,
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
    /// The topic as written (a name, or a template with `{event_type}`).
    pub topic: String,
    /// Set when `topic` has a placeholder.
    pub routing: Option<Routing>,
    /// Where the event type is read: the configured rule, or a CloudEvent's `type`.
    pub event_type: Option<EventTypeRule>,
    pub cloudevents: Option<CloudEventsConfig>,
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
        // A request's path is matched as it arrives: without its query, and with
        // anything but visible ASCII percent-encoded, so such a path is never requested.
        if let Some(c) = (self.path.chars()).find(|c| !c.is_ascii_graphic() || "?#".contains(*c)) {
            return Err(err(
                "path",
                format!("{:?} holds {c:?}: a path is visible ASCII without '?' or '#' (write non-ASCII percent-encoded)", self.path),
            ));
        }
        if self.topic.trim().is_empty() {
            return Err(err("topic", "must not be empty".into()));
        }
        let key = KeyRule::parse(&self.key).map_err(|r| err("key", r))?;
        let event_type = match &self.event_type {
            None => self.cloudevents.as_ref().map(|_| EventTypeRule::CloudEvent),
            Some(t) => match KeyRule::parse(t).map_err(|r| err("event_type", r))? {
                KeyRule::None => None,
                rule => Some(EventTypeRule::Rule(rule)),
            },
        };
        if let Some(ce) = &self.cloudevents {
            if ce.allowed_origins.is_empty()
                || ce.allowed_origins.iter().any(|o| o.trim().is_empty())
            {
                return Err(err(
                    "cloudevents.allowed_origins",
                    "list the origins allowed to deliver (or \"*\")".into(),
                ));
            }
        }
        let routing = Routing::parse(&self.topic, &self.topics_allowed, event_type.is_some())
            .map_err(|(key, r)| err(key, r))?;
        let forward_headers = self
            .forward_headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let key = format!("forward_headers[{i}]");
                // `*` is a valid header-name character, so `x-*` named a header nobody
                // sends; a source names each header it copies (sinks take patterns).
                if h.contains('*') {
                    return Err(err(&key, format!("{h:?}: a source forwards the headers it names, not patterns; list each header")));
                }
                HeaderName::try_from(h.as_str())
                    .map_err(|_| err(&key, format!("{h:?} is not a valid header name")))
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
            // An event type is a record header, a metric label and a console entry.
            if matches!(&event_type, Some(EventTypeRule::Rule(KeyRule::Header(h))) if carries(h)) {
                return Err(err("event_type", why));
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
            routing,
            event_type,
            cloudevents: self.cloudevents,
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

/// How a source finds a webhook's event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventTypeRule {
    /// `event_type = "header:NAME" | "json:/pointer"`.
    Rule(KeyRule),
    /// A CloudEvent's `type`: the `ce-type` header (binary mode), or `/type` of an
    /// `application/cloudevents+json` body (structured mode).
    CloudEvent,
}

impl SourceDefinition {
    /// The webhook's event type, if it has one of at most [`MAX_EVENT_TYPE`] bytes. Read
    /// after verification: a `json:` rule or a structured CloudEvent parses the body.
    pub fn event_type_of(&self, headers: &HeaderMap, body: &[u8]) -> Option<Bytes> {
        let found = match self.event_type.as_ref()? {
            EventTypeRule::Rule(rule) => rule.extract(headers, body).ok().flatten(),
            // A structured event's attributes are in the body, which the signature
            // covers; a `ce-type` header next to it is not the event's and is ignored.
            EventTypeRule::CloudEvent if is_structured_cloudevent(headers) => {
                KeyRule::Json("/type".into())
                    .extract(headers, body)
                    .ok()
                    .flatten()
            }
            EventTypeRule::CloudEvent => headers
                .get("ce-type")
                .map(|v| Bytes::copy_from_slice(v.as_bytes())),
        };
        found.filter(|t| !t.is_empty() && t.len() <= MAX_EVENT_TYPE)
    }

    /// The abuse-protection answer for `headers`; `None` when the source does not accept
    /// CloudEvents.
    pub fn origin_check(&self, headers: &HeaderMap) -> Option<OriginCheck> {
        let ce = self.cloudevents.as_ref()?;
        let Some(origin) = headers.get("webhook-request-origin") else {
            return Some(OriginCheck::Missing);
        };
        let allowed = ce
            .allowed_origins
            .iter()
            .any(|o| o == "*" || origin.as_bytes().eq_ignore_ascii_case(o.as_bytes()));
        Some(if allowed {
            OriginCheck::Allowed(origin.clone())
        } else {
            OriginCheck::Refused
        })
    }
}

/// Whether the request is a structured-mode CloudEvent (`application/cloudevents+json`).
pub fn is_structured_cloudevent(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            // The media type whole (`…+jsonx` is another), parameters after `;` aside.
            let essence = ct.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("application/cloudevents+json")
        })
}

/// Longest event type kept: a longer one is treated as absent (a header value an
/// unauthenticated header could otherwise make arbitrarily large in every record).
pub const MAX_EVENT_TYPE: usize = 256;

/// Most distinct topics one source routes to in a process's life. The event type that
/// picks the topic is written by the sender; with `prefix*` in `topics_allowed` (and
/// topic auto-creation on the broker) it could otherwise create topics without end.
pub const MAX_ROUTED_TOPICS: usize = 256;

/// The topics of one source's routing: produced to, and routed to by webhooks not
/// produced yet (how many of each).
#[derive(Debug, Default)]
struct Routes {
    produced: std::collections::HashSet<String>,
    pending: std::collections::HashMap<String, usize>,
}

impl Routes {
    fn release(&mut self, topic: &str) {
        if let Some(n) = self.pending.get_mut(topic) {
            *n -= 1;
            if *n == 0 {
                self.pending.remove(topic);
            }
        }
    }
}

/// A webhook's routed topic. A new topic holds its place in the source's bound while
/// this lives; [`Route::produced`] makes it the source's for good.
#[derive(Debug)]
pub struct Route {
    topic: String,
    /// `Some` for a topic no webhook was produced to yet.
    pending: Option<Arc<std::sync::Mutex<Routes>>>,
}

impl Route {
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The webhook was produced to the topic (acknowledged by Kafka). Its pending count
    /// goes whole (other webhooks still in flight to it release nothing then), so the
    /// topic is never counted twice.
    pub fn produced(mut self) {
        if let Some(routes) = self.pending.take() {
            let mut routes = routes.lock().unwrap_or_else(|p| p.into_inner());
            routes.pending.remove(&self.topic);
            routes.produced.insert(self.topic.clone());
        }
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        if let Some(routes) = self.pending.take() {
            (routes.lock().unwrap_or_else(|p| p.into_inner())).release(&self.topic);
        }
    }
}

/// `topic = "github.{event_type}"` with `topics_allowed = ["github.push", "github.issue*"]`.
#[derive(Debug, Clone)]
pub struct Routing {
    template: Template,
    allowed: Vec<String>,
    /// Topics webhooks were produced to, and those of webhooks routed but not produced
    /// yet: see [`Routing::topic`].
    routes: Arc<std::sync::Mutex<Routes>>,
}

/// Why a webhook has no topic: answered 400, nothing produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("the webhook has no event type to route by")]
    NoEventType,
    #[error("the event type routes to a topic that is not in topics_allowed")]
    NotAllowed,
    #[error("the source already routes to as many topics as it may")]
    TooManyTopics,
}

impl Routing {
    /// `None` for a topic without placeholder. Errors are (key, reason).
    fn parse(
        topic: &str,
        allowed: &[String],
        has_event_type: bool,
    ) -> Result<Option<Routing>, (&'static str, String)> {
        let template = Template::parse(topic).map_err(|r| ("topic", r))?;
        if let Some(f) = template.fields().find(|f| **f != Field::EventType) {
            return Err((
                "topic",
                format!("only {{event_type}} may route a topic, not {{{f}}}"),
            ));
        }
        if let Some(name) = template.as_literal() {
            if !super::is_topic_name(name) {
                return Err(("topic", format!("{name:?} {}", super::TOPIC_NAME_RULE)));
            }
            if !allowed.is_empty() {
                return Err((
                    "topics_allowed",
                    "only applies to a topic with {event_type}".into(),
                ));
            }
            return Ok(None);
        }
        if !has_event_type {
            return Err(("topic", "{event_type} needs `event_type`".into()));
        }
        if allowed.is_empty() || allowed.iter().any(|a| a.trim_end_matches('*').is_empty()) {
            return Err((
                "topics_allowed",
                "list the topics (or `prefix*`) a routed topic may be; a webhook routed elsewhere is refused".into(),
            ));
        }
        Ok(Some(Routing {
            template,
            allowed: allowed.to_vec(),
            routes: Default::default(),
        }))
    }

    /// The topic for a webhook with this event type. A topic no webhook was produced to
    /// is refused once produced and pending topics come to [`MAX_ROUTED_TOPICS`].
    pub fn topic(&self, event_type: Option<&[u8]>) -> Result<Route, RouteError> {
        let event_type = event_type.ok_or(RouteError::NoEventType)?;
        let mut out = Vec::new();
        self.template
            .render(&mut out, Escape::Raw, |_| Some(event_type.into()))
            .map_err(|_| RouteError::NoEventType)?;
        // Only Kafka's topic characters: nothing a sender writes can name another kind
        // of thing, and the allow-list compares plain names.
        let topic = String::from_utf8(out)
            .ok()
            .filter(|t| crate::connectors::is_topic_name(t))
            .ok_or(RouteError::NotAllowed)?;
        let allowed = self.allowed.iter().any(|a| match a.strip_suffix('*') {
            Some(prefix) => topic.starts_with(prefix),
            None => *a == topic,
        });
        if !allowed {
            return Err(RouteError::NotAllowed);
        }
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        if routes.produced.contains(&topic) {
            return Ok(Route {
                topic,
                pending: None,
            });
        }
        // A new topic counts from the moment a webhook is routed to it, so webhooks
        // routed at once cannot pass the bound together; it is the source's for good
        // only once a webhook was produced to it (one answered as a replay, or whose
        // produce failed, takes nothing: a captured request resent with other event
        // types cannot use the bound up).
        let taken = routes.produced.len() + routes.pending.len();
        if !routes.pending.contains_key(&topic) && taken >= MAX_ROUTED_TOPICS {
            return Err(RouteError::TooManyTopics);
        }
        *routes.pending.entry(topic.clone()).or_default() += 1;
        Ok(Route {
            topic,
            pending: Some(self.routes.clone()),
        })
    }

    pub fn allowed(&self) -> &[String] {
        &self.allowed
    }
}

fn source_error(file: &str, key: &str, reason: String) -> ConfigError {
    ConfigError::new(file, format!("source.{key}"), reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::Connectors;

    fn validate(verify: &str, extra: &str) -> Result<SourceDefinition, ConfigError> {
        let text = format!(
            "name = \"s\"\npath = \"/s\"\ntopic = \"t\"\nverify = {{ {verify} }}\n{extra}\n"
        );
        let config: SourceConfig = toml::from_str(&text).unwrap();
        config.validate("s.toml")
    }

    #[test]
    fn the_header_carrying_a_token_secret_is_never_forwarded_a_key_or_an_event_type() {
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
            (
                token,
                r#"event_type = "header:X-Webhook-Token""#,
                "source.event_type",
            ),
            (
                r#"scheme = "bearer", secret = "t""#,
                r#"event_type = "header:Authorization""#,
                "source.event_type",
            ),
        ];
        for (verify, extra, key) in cases {
            let e = validate(verify, extra).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{extra}");
            assert!(e.reason.contains("secret"), "{e}");
        }
        // Other headers, and signature headers (which carry a MAC, not the secret), pass.
        assert!(validate(token, r#"forward_headers = ["X-Event"]"#).is_ok());
        assert!(validate(token, r#"event_type = "header:X-Event""#).is_ok());
        let github = r#"scheme = "github", secret = "s""#;
        assert!(validate(github, r#"forward_headers = ["X-Hub-Signature-256"]"#).is_ok());
    }

    /// `*` is a valid header-name character: `x-*` would name a header nobody sends, so a
    /// source refuses it (sinks take `prefix*` patterns; a source names what it copies).
    #[test]
    fn a_source_forwards_named_headers_not_patterns() {
        let github = r#"scheme = "github", secret = "s""#;
        for list in [r#"["X-*"]"#, r#"["X-GitHub-Event", "*"]"#] {
            let e = validate(github, &format!("forward_headers = {list}")).unwrap_err();
            assert!(
                e.key
                    .as_deref()
                    .is_some_and(|k| k.starts_with("source.forward_headers[")),
                "{e}"
            );
            assert!(e.reason.contains("list each header"), "{e}");
        }
        assert!(validate(github, r#"forward_headers = ["X-GitHub-Event"]"#).is_ok());
    }

    /// A path that no request can match, or a topic Kafka refuses, is refused at load.
    #[test]
    fn a_source_s_path_can_be_requested_and_its_topic_named_in_kafka() {
        let source = |path: &str, topic: &str| {
            let text = format!("name = \"s\"\npath = {path:?}\ntopic = {topic:?}\nverify = {{ scheme = \"none\" }}\n");
            let config: SourceConfig = toml::from_str(&text).unwrap();
            config.validate("s.toml")
        };
        for (path, topic, key) in [
            ("/webhooks/q?x=1", "t", "source.path"),
            ("/p x", "t", "source.path"),
            ("/a#b", "t", "source.path"),
            ("/caf\u{e9}", "t", "source.path"),
            ("/p", "bad topic!", "source.topic"),
            ("/p", "..", "source.topic"),
        ] {
            let Err(e) = source(path, topic) else {
                panic!("{path} {topic} refused")
            };
            assert_eq!(e.key.as_deref(), Some(key), "{path} {topic}: {e}");
        }
        assert!(source("/hooks/caf%C3%A9-1_2.x~", "a.b_c-1").is_ok());
    }

    #[test]
    fn a_source_routes_to_a_bounded_number_of_topics() {
        let r = Routing::parse("t.{event_type}", &["t.*".to_owned()], true)
            .unwrap()
            .unwrap();
        let refused =
            |r: &Routing, e: &[u8]| matches!(r.topic(Some(e)), Err(RouteError::TooManyTopics));
        // Webhooks routed at the same time, none produced yet: they hold their places.
        let held: Vec<Route> = (0..MAX_ROUTED_TOPICS)
            .map(|i| r.topic(Some(format!("e{i}").as_bytes())).unwrap())
            .collect();
        assert!(refused(&r, b"new"), "pending ones count");
        assert_eq!(
            r.topic(Some(b"e7")).unwrap().topic(),
            "t.e7",
            "a pending one goes on"
        );
        // One answered as a replay or whose produce failed takes nothing for good.
        drop(held);
        let again: Vec<Route> = (0..MAX_ROUTED_TOPICS)
            .map(|i| r.topic(Some(format!("x{i}").as_bytes())).unwrap())
            .collect();
        drop(again);
        for i in 0..MAX_ROUTED_TOPICS {
            r.topic(Some(format!("e{i}").as_bytes()))
                .unwrap()
                .produced();
        }
        assert!(refused(&r, b"new"));
        assert_eq!(
            r.topic(Some(b"e7")).unwrap().topic(),
            "t.e7",
            "produced ones go on for good"
        );
        // A topic produced to while another webhook to it is in flight counts once.
        let r = Routing::parse("t.{event_type}", &["t.*".to_owned()], true)
            .unwrap()
            .unwrap();
        let (first, second) = (r.topic(Some(b"t")).unwrap(), r.topic(Some(b"t")).unwrap());
        first.produced();
        let rest: Vec<Route> = (1..MAX_ROUTED_TOPICS)
            .map(|i| {
                r.topic(Some(format!("n{i}").as_bytes()))
                    .expect("room for the rest")
            })
            .collect();
        assert!(refused(&r, b"one-more"));
        drop((second, rest));
    }

    /// The event type goes into every record's headers and each source's event catalog
    /// (which keeps up to 1,000 names): a longer one than [`MAX_EVENT_TYPE`] is absent.
    #[test]
    fn an_event_type_longer_than_the_cap_is_absent() {
        let mut out = Connectors::default();
        let text = r#"[source]
name = "gh"
path = "/gh"
topic = "t"
event_type = "header:X-Event"
verify = { scheme = "token", secret = "s", header = "X-Token" }
"#;
        crate::connectors::load_file("gh.toml", text, &mut out).expect("valid source");
        let source = &out.sources[0];
        let mut headers = HeaderMap::new();
        let longest = "e".repeat(MAX_EVENT_TYPE);
        headers.insert("x-event", HeaderValue::from_str(&longest).expect("value"));
        assert_eq!(
            source.event_type_of(&headers, b"").as_deref(),
            Some(longest.as_bytes())
        );
        let over = "e".repeat(MAX_EVENT_TYPE + 1);
        headers.insert("x-event", HeaderValue::from_str(&over).expect("value"));
        assert_eq!(source.event_type_of(&headers, b""), None);
    }

    #[test]
    fn a_structured_cloudevent_takes_its_type_from_the_body_only() {
        let mut out = Connectors::default();
        let text = r#"[source]
name = "grid"
path = "/events"
topic = "t.{event_type}"
topics_allowed = ["t.order.*"]
cloudevents = { allowed_origins = ["*"] }
verify = { scheme = "token", secret = "s", header = "X-Token" }
"#;
        crate::connectors::load_file("grid.toml", text, &mut out).expect("valid source");
        let source = &out.sources[0];
        let mut headers = HeaderMap::new();
        headers.insert("ce-type", HeaderValue::from_static("order.forged"));
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/cloudevents+json"),
        );
        let body = br#"{"specversion":"1.0","type":"order.created","id":"1","source":"/x"}"#;
        assert_eq!(
            source.event_type_of(&headers, body).as_deref(),
            Some(&b"order.created"[..])
        );
        assert_eq!(source.event_type_of(&headers, b"{}"), None);
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        assert_eq!(
            source.event_type_of(&headers, body).as_deref(),
            Some(&b"order.forged"[..]),
            "binary mode: the header is the attribute"
        );
        for ct in [
            "Application/CloudEvents+JSON; charset=utf-8",
            " application/cloudevents+json",
        ] {
            let mut h = HeaderMap::new();
            h.insert("content-type", HeaderValue::from_str(ct).unwrap());
            assert!(is_structured_cloudevent(&h), "{ct}");
        }
        for ct in [
            "application/cloudevents+jsonx",
            "application/cloudevents-batch+json",
        ] {
            let mut h = HeaderMap::new();
            h.insert("content-type", HeaderValue::from_str(ct).unwrap());
            assert!(!is_structured_cloudevent(&h), "{ct}");
        }
    }
}
