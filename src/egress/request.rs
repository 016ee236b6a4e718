//! Shaping one record into what is sent: the sink's filter decides whether it is sent at
//! all, its URL and header templates are filled from the record, forwarded record
//! headers are picked, and its transform makes the body.
//!
//! Pure and done once per record before the first attempt: every attempt sends the same
//! request, and a record that cannot be shaped is refused at once with the reason its
//! dead letter carries (`template`, `filter`, `transform`): retrying cannot fix it.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::record::Record;
use crate::connectors::jq::{self, Program, Val};
use crate::connectors::sink::{is_framing, Format, HeaderPattern};
use crate::connectors::template::{url_encode, Escape, Field, Template, UrlTemplate};
use crate::connectors::Sink;
use crate::kafka::headers::{self, EVENT_TYPE as EVENT_TYPE_HEADER};
use crate::telemetry::sink::{JqRunawayLimit, SinkTelemetry};

/// A sink's shaping rules, built once.
pub struct Shaper {
    /// The URL when it has no placeholder.
    fixed_url: Option<reqwest::Url>,
    url: UrlTemplate,
    headers: Vec<(HeaderName, Template)>,
    forward: Vec<HeaderPattern>,
    programs: Programs,
    /// Evaluations left running past their deadline, and the bound on them.
    runaways: Arc<Runaways>,
    /// Some template reads the value as JSON (`{json./…}`).
    needs_json: bool,
    format: Format,
    /// `content_type`: the data's type when the record has none.
    content_type: HeaderValue,
}

/// What to send for one record.
pub struct Prepared<'a> {
    pub url: Cow<'a, reqwest::Url>,
    /// Forwarded record headers, then templated ones (later wins).
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Content-Type when it is not the record's (`transform`, structured CloudEvents).
    pub content_type: Option<HeaderValue>,
}

impl Prepared<'_> {
    /// The same request owning its URL, to wait in a batch.
    pub fn into_owned(self) -> Prepared<'static> {
        Prepared {
            url: Cow::Owned(self.url.into_owned()),
            headers: self.headers,
            body: self.body,
            content_type: self.content_type,
        }
    }
}

/// Why a record cannot be shaped: the dead letter's reason and error class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// `template`, `filter` or `transform`.
    pub reason: &'static str,
    /// `missing-value`, `host-not-allowed`, `invalid-url`, `invalid-header`, `not-json`,
    /// `jq-error`, `no-output`, `not-json-output`, `timeout` or `runaway-limit`.
    pub error: &'static str,
}

impl Shaper {
    pub fn new(sink: &Sink, telemetry: Arc<SinkTelemetry>) -> Self {
        let needs_json = sink
            .url
            .fields()
            .chain(sink.header_templates.iter().flat_map(|(_, t)| t.fields()))
            .any(|f| matches!(f, Field::Json(_)));
        Shaper {
            fixed_url: sink.url.literal(),
            url: sink.url.clone(),
            headers: sink.header_templates.clone(),
            forward: sink.forward_headers.clone(),
            programs: Programs {
                filter: sink.filter.clone(),
                transform: sink.transform.clone(),
            },
            runaways: Arc::new(Runaways::new(telemetry, JQ_DEADLINE, MAX_RUNAWAYS)),
            needs_json,
            format: sink.format,
            content_type: sink.content_type.clone(),
        }
    }

    /// The same rules with another deadline and bound on runaways (tests: programs that
    /// end, but after a short deadline).
    #[cfg(test)]
    fn with_runaway_limits(mut self, deadline: Duration, limit: usize) -> Self {
        let telemetry = self.runaways.telemetry.clone();
        self.runaways = Arc::new(Runaways::new(telemetry, deadline, limit));
        self
    }

    /// Shaping runs no jq program, so [`Shaper::shape`] is quick enough for the
    /// dispatcher to call inline.
    pub fn is_inline(&self) -> bool {
        self.programs.filter.is_none() && self.programs.transform.is_none()
    }

    /// What to send for `record`; `None` when the filter lets it through without a
    /// request (finished as `filtered`). Runs the jq programs on this thread, however
    /// long they take: see [`Shaper::shape_in_time`].
    pub fn shape<'a>(&'a self, record: &Record) -> Result<Option<Prepared<'a>>, Refused> {
        match self.programs.evaluate(record, &AtomicBool::new(false))? {
            None => Ok(None),
            Some(body) => self.fill(record, body).map(Some),
        }
    }

    /// [`Shaper::shape`] with the jq programs run on a thread of their own for at most
    /// [`JQ_DEADLINE`]: a program can loop or grow without bound (`[range(1e12)]`), and
    /// run inline it would hold up every partition the task serves, revokes and
    /// shutdown. Past the deadline the record is refused with `timeout` (the
    /// evaluation cannot be interrupted: its thread runs on to its end, detached, so it
    /// never delays the process exiting). A program that never ends would so take a
    /// thread, and a core, per record: with [`MAX_RUNAWAYS`] of them still running, the
    /// record is refused at once with `runaway-limit` until one ends. `None`: `cancel`
    /// fired first.
    pub async fn shape_in_time<'a>(
        &'a self,
        record: &Record,
        cancel: &CancellationToken,
    ) -> Option<Result<Option<Prepared<'a>>, Refused>> {
        if self.programs.filter.is_none() && self.programs.transform.is_none() {
            return Some(self.shape(record));
        }
        let runaways = &self.runaways;
        let refused = |error| {
            let first = self.programs.stage(&AtomicBool::new(false));
            Some(Err(Refused {
                reason: first,
                error,
            }))
        };
        // A slot for the evaluation's thread, held until that thread ends: runaways keep
        // theirs, so however many records time out at once, no more than `limit`
        // evaluations of the sink ever run. While this record waits, the evaluations
        // holding the slots may all run past their deadline and never end: looked at
        // again each deadline, so the record is then refused instead of waiting forever.
        // One acquisition for the whole wait, so the record keeps its place in line.
        let acquire = runaways.slots.clone().acquire_owned();
        tokio::pin!(acquire);
        let slot = loop {
            if runaways.at_limit() {
                return refused("runaway-limit");
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                slot = &mut acquire => break slot.ok()?,
                () = tokio::time::sleep(runaways.deadline) => {}
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let programs = self.programs.clone();
        let owned = record.clone();
        let filtered = Arc::new(AtomicBool::new(false));
        let stage = filtered.clone();
        let run = Arc::new(AtomicU8::new(RUNNING));
        let ending = Ending {
            run: run.clone(),
            runaways: runaways.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("hookbridge-jq".to_owned())
            .stack_size(JQ_STACK)
            .spawn(move || {
                let _slot = slot;
                let _ending = ending; // also when jaq panics
                let _ = tx.send(programs.evaluate(&owned, &stage));
            });
        if spawned.is_err() {
            // No thread to be had (the process is at its limit). Run on this task's
            // thread instead, the program could overflow its smaller stack and abort
            // the process, or loop and hold the sink: refused like a runaway.
            return refused("no-thread");
        }
        let due = tokio::time::Instant::now() + runaways.deadline;
        let evaluated = tokio::select! {
            _ = cancel.cancelled() => {
                // Given up on (revoke, shutdown): its thread runs on, holding its slot,
                // and counts as a runaway only if it is still running at its deadline. A
                // revoke gives up many quick evaluations at once; counted at once, they
                // would pass for runaways and refuse the records that come next.
                let (runaways, run) = (runaways.clone(), run.clone());
                tokio::spawn(async move {
                    tokio::time::sleep_until(due).await;
                    if run.load(Ordering::Acquire) == RUNNING {
                        runaways.detach(&run);
                    }
                });
                return None;
            }
            r = tokio::time::timeout(runaways.deadline, rx) => match r {
                Ok(Ok(r)) => r,
                // The thread ended without an answer: only a panic in jaq does that.
                Ok(Err(_)) => Err(Refused { reason: self.programs.stage(&filtered), error: "jq-error" }),
                Err(_) => {
                    runaways.detach(&run);
                    Err(Refused { reason: self.programs.stage(&filtered), error: "timeout" })
                }
            },
        };
        Some(match evaluated {
            Ok(None) => Ok(None),
            Ok(Some(body)) => self.fill(record, body).map(Some),
            Err(e) => Err(e),
        })
    }

    /// The request for a record the filter let through, with the transform's body.
    fn fill<'a>(&'a self, record: &Record, body: Option<Bytes>) -> Result<Prepared<'a>, Refused> {
        let json = if self.needs_json {
            serde_json::from_slice::<serde_json::Value>(&record.value).ok()
        } else {
            None
        };
        let fields = |f: &Field| field(record, json.as_ref(), f);
        let template = |error| Refused {
            reason: "template",
            error,
        };
        let url = match &self.fixed_url {
            Some(u) => Cow::Borrowed(u),
            None => Cow::Owned(self.url.fill(fields).map_err(|e| {
                use crate::connectors::template::UrlError;
                template(match e {
                    UrlError::Missing(_) => "missing-value",
                    UrlError::HostNotAllowed => "host-not-allowed",
                    UrlError::Invalid(_) | UrlError::DotSegment => "invalid-url",
                })
            })?),
        };
        let mut headers = HeaderMap::new();
        if !self.forward.is_empty() {
            for (k, v) in &record.headers {
                if !self.forward.iter().any(|p| p.matches(k)) || is_framing(k) {
                    continue;
                }
                // Kafka header names are free text: one that is not an HTTP header name
                // (or whose value is not a header value) is not sent.
                if let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_maybe_shared(v.clone()),
                ) {
                    headers.append(name, value);
                }
            }
        }
        let mut buf = Vec::new();
        for (name, t) in &self.headers {
            buf.clear();
            t.render(&mut buf, Escape::Raw, fields)
                .map_err(|_| template("missing-value"))?;
            let value = HeaderValue::from_bytes(&buf).map_err(|_| template("invalid-header"))?;
            headers.insert(name.clone(), value);
        }
        let content_type = body.is_some().then_some(APPLICATION_JSON);
        let body = body.unwrap_or_else(|| record.value.clone());
        let mut prepared = Prepared {
            url,
            headers,
            body,
            content_type,
        };
        if self.format != Format::Raw {
            self.cloudevent(record, &mut prepared);
        }
        Ok(prepared)
    }

    /// CloudEvents 1.0 HTTP binding. `id` is the webhook id (stable across redeliveries,
    /// so receivers deduplicate on it either way); `source` names the ingress source of
    /// the record when it has one, else its topic; `type` is the event type; `time` is
    /// when ingress received the webhook (omitted for records not from ingress).
    fn cloudevent(&self, record: &Record, prepared: &mut Prepared<'_>) {
        let id = record.webhook_id();
        let source = match record
            .header(headers::SOURCE)
            .and_then(|v| std::str::from_utf8(v).ok())
        {
            Some(s) => format!("/hookbridge/sources/{}", url_encode(s.as_bytes())),
            None => format!(
                "/hookbridge/topics/{}",
                url_encode(record.tp.topic.as_bytes())
            ),
        };
        // A type that is not UTF-8 text falls back to the default: the record is still
        // delivered, as the same kind as an untyped record. Any text is kept (binary
        // mode percent-encodes it).
        let kind = record
            .header(EVENT_TYPE_HEADER)
            .and_then(|v| std::str::from_utf8(v).ok())
            .filter(|t| !t.is_empty())
            .unwrap_or(DEFAULT_EVENT_TYPE);
        // Written anew: `time` must be RFC 3339, and the header is only read leniently.
        let time = record
            .header(headers::RECEIVED_AT)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .map(|t| humantime::format_rfc3339_millis(t).to_string());
        let time = time.as_deref();
        let data_type = prepared.content_type.clone().unwrap_or_else(|| {
            record
                .header(headers::CONTENT_TYPE)
                .and_then(|v| HeaderValue::from_maybe_shared(v.clone()).ok())
                .unwrap_or_else(|| self.content_type.clone())
        });
        match self.format {
            Format::Raw => {}
            Format::CloudeventsBinary => {
                let h = &mut prepared.headers;
                let mut put = |name: &'static str, v: &str| {
                    if let Ok(v) = HeaderValue::from_str(&ce_header_value(v)) {
                        h.insert(HeaderName::from_static(name), v);
                    }
                };
                put("ce-specversion", "1.0");
                put("ce-id", &id);
                put("ce-source", &source);
                put("ce-type", kind);
                if let Some(t) = time {
                    put("ce-time", t);
                }
            }
            Format::CloudeventsStructured => {
                let mut event = serde_json::Map::new();
                event.insert("specversion".into(), "1.0".into());
                event.insert("id".into(), id.into());
                event.insert("source".into(), source.into());
                event.insert("type".into(), kind.into());
                if let Some(t) = time {
                    event.insert("time".into(), t.into());
                }
                let data_type_text = data_type.to_str().unwrap_or("application/octet-stream");
                event.insert("datacontenttype".into(), data_type_text.into());
                let json_data = is_json(data_type_text)
                    .then(|| serde_json::from_slice::<serde_json::Value>(&prepared.body).ok())
                    .flatten();
                match json_data {
                    Some(v) => event.insert("data".into(), v),
                    None => {
                        use base64::Engine;
                        event.insert(
                            "data_base64".into(),
                            base64::engine::general_purpose::STANDARD
                                .encode(&prepared.body)
                                .into(),
                        )
                    }
                };
                prepared.body = Bytes::from(serde_json::Value::Object(event).to_string());
                prepared.content_type = Some(CLOUDEVENTS_JSON);
            }
        }
    }
}

/// How long a sink's filter and transform together may take on one record.
pub const JQ_DEADLINE: Duration = Duration::from_secs(1);

/// Evaluations of a sink's programs running at once, each on a thread of its own; one
/// left running past [`JQ_DEADLINE`] keeps its thread (and, looping, a core) until it
/// ends, because jaq cannot be interrupted: with this many such runaways, the sink
/// refuses records at once rather than wait for one to end.
pub const MAX_RUNAWAYS: usize = 4;

/// Stack of an evaluation's thread. jaq runs nested values and calls on the native
/// stack, and an overflow aborts the process; definitions that call themselves are
/// refused (`connectors::jq`), and this leaves room for deep values a program builds.
/// Reserved, not used: only the pages an evaluation touches take memory.
const JQ_STACK: usize = 64 << 20;

/// States of one evaluation's thread: still running, ended, or given up on (past its
/// deadline, or its record revoked) and counted as a runaway until it ends.
const RUNNING: u8 = 0;
const DONE: u8 = 1;
const DETACHED: u8 = 2;

/// Marks an evaluation's thread ended when it ends, however (a panic in jaq included),
/// so a runaway is never counted after its thread is gone.
struct Ending {
    run: Arc<AtomicU8>,
    runaways: Arc<Runaways>,
}

impl Drop for Ending {
    fn drop(&mut self) {
        if self.run.swap(DONE, Ordering::AcqRel) == DETACHED {
            self.runaways.ended();
        }
    }
}

/// A sink's evaluations still running after it stopped waiting for them.
struct Runaways {
    /// One permit per evaluation thread that may run, held until the thread ends.
    slots: Arc<tokio::sync::Semaphore>,
    running: AtomicUsize,
    deadline: Duration,
    limit: usize,
    /// The limit was reached and logged; cleared once a runaway ends, so each time it
    /// is reached is logged once.
    logged: AtomicBool,
    telemetry: Arc<SinkTelemetry>,
}

impl Runaways {
    fn new(telemetry: Arc<SinkTelemetry>, deadline: Duration, limit: usize) -> Self {
        Runaways {
            slots: Arc::new(tokio::sync::Semaphore::new(limit.max(1))),
            running: AtomicUsize::new(0),
            deadline,
            limit,
            logged: AtomicBool::new(false),
            telemetry,
        }
    }

    /// Whether no evaluation may start; logs the first time it is so.
    fn at_limit(&self) -> bool {
        let at = self.running.load(Ordering::Acquire) >= self.limit;
        if at && !self.logged.swap(true, Ordering::AcqRel) {
            JqRunawayLimit { limit: self.limit }.emit(&self.telemetry);
        }
        at
    }

    /// The sink stops waiting for the evaluation whose thread state is `run`: counted
    /// until its thread ends (at once, if it just did).
    fn detach(&self, run: &AtomicU8) {
        // Counted before it is marked, so the thread's `ended` never comes first.
        self.running.fetch_add(1, Ordering::AcqRel);
        self.telemetry.jq_runaways.inc();
        if run.swap(DETACHED, Ordering::AcqRel) == DONE {
            self.ended();
        }
    }

    /// A detached evaluation's thread ended.
    fn ended(&self) {
        let left = self.running.fetch_sub(1, Ordering::AcqRel) - 1;
        self.telemetry.jq_runaways.dec();
        if left < self.limit {
            self.logged.store(false, Ordering::Release);
        }
    }
}

/// A sink's filter and transform, shared with the threads that run them.
#[derive(Clone)]
struct Programs {
    filter: Option<Arc<Program>>,
    transform: Option<Arc<Program>>,
}

impl Programs {
    /// Runs the filter, then the transform: `None` when filtered out, else the
    /// transform's body (`None`: no transform). `filtered` is set once the filter is
    /// done, so a timeout names the program that ran over.
    fn evaluate(
        &self,
        record: &Record,
        filtered: &AtomicBool,
    ) -> Result<Option<Option<Bytes>>, Refused> {
        let mut input = None;
        if let Some(filter) = &self.filter {
            let refused = |error| Refused {
                reason: "filter",
                error,
            };
            let value = jq_input(record).map_err(|_| refused("not-json"))?;
            let result = filter
                .run(value.clone(), jq_vars(record))
                .map_err(|_| refused("jq-error"))?;
            if !jq::passes(&result) {
                return Ok(None);
            }
            input = Some(value);
        }
        filtered.store(true, Ordering::Release);
        let Some(t) = &self.transform else {
            return Ok(Some(None));
        };
        let refused = |error| Refused {
            reason: "transform",
            error,
        };
        let value = match input {
            Some(v) => v,
            None => jq_input(record).map_err(|_| refused("not-json"))?,
        };
        let out = t
            .run(value, jq_vars(record))
            .map_err(|_| refused("jq-error"))?
            .ok_or(refused("no-output"))?;
        let body = jq::to_json(&out).ok_or(refused("not-json-output"))?;
        Ok(Some(Some(Bytes::from(body))))
    }

    /// The program running (or that last ran) on a record.
    fn stage(&self, filtered: &AtomicBool) -> &'static str {
        if self.filter.is_some() && !filtered.load(Ordering::Acquire) {
            "filter"
        } else {
            "transform"
        }
    }
}

/// `ce-type` of a record without a `hookbridge-event-type` header.
pub const DEFAULT_EVENT_TYPE: &str = "hookbridge.record";
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
const CLOUDEVENTS_JSON: HeaderValue =
    HeaderValue::from_static("application/cloudevents+json; charset=utf-8");

/// A CloudEvents attribute as an HTTP binding header value (3.1.3.2): printable ASCII
/// as is, except `"` and `%`; every other byte of its UTF-8 percent-encoded.
fn ce_header_value(v: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'"' && b != b'%' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `application/json`, `text/json` or any `+json` type.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

fn jq_input(record: &Record) -> Result<Val, jq::Error> {
    jq::parse(&record.value)
}

/// `$key`, `$headers`, `$topic`, `$event_type` (absent: `null`).
fn jq_vars(record: &Record) -> [Val; 4] {
    [
        record.key.as_deref().map_or(Val::Null, jq::string),
        jq::object(record.headers.iter().map(|(k, v)| (k.as_str(), v.as_ref()))),
        jq::string(record.tp.topic.as_bytes()),
        record
            .header(EVENT_TYPE_HEADER)
            .map_or(Val::Null, |v| jq::string(v)),
    ]
}

/// A placeholder's value for `record`; `None` when the record has none.
fn field<'r>(
    record: &'r Record,
    json: Option<&'r serde_json::Value>,
    f: &Field,
) -> Option<Cow<'r, [u8]>> {
    let bytes = |b: &'r Bytes| Cow::Borrowed(b.as_ref());
    match f {
        Field::Topic => Some(Cow::Borrowed(record.tp.topic.as_bytes())),
        Field::Partition => Some(Cow::Owned(record.tp.partition.to_string().into_bytes())),
        Field::Offset => Some(Cow::Owned(record.offset.to_string().into_bytes())),
        Field::Key => record.key.as_ref().map(bytes),
        Field::Header(name) => record.header(name).map(bytes),
        Field::EventType => record.header(EVENT_TYPE_HEADER).map(bytes),
        Field::Json(pointer) => match json?.pointer(pointer)? {
            serde_json::Value::String(s) => Some(Cow::Borrowed(s.as_bytes())),
            v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => {
                Some(Cow::Owned(v.to_string().into_bytes()))
            }
            _ => None,
        },
    }
    // An empty value would make `/tenants//orders`: treated as missing.
    .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests;
