//! Shaping one record into what is sent: the sink's filter decides whether it is sent at
//! all, its URL and header templates are filled from the record, forwarded record
//! headers are picked, and its transform makes the body.
//!
//! Done once per record before the first attempt: every attempt sends the same
//! request, and a record that cannot be shaped is refused at once with the reason its
//! dead letter carries (`template`, `filter`, `transform`): retrying cannot fix it. The
//! jq programs run where the sink's [`Evaluator`] says (worker processes in the
//! service); the rest is pure.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::evaluation::{Evaluator, Programs, Request, Verdict, Workers};
use super::record::Record;
use crate::connectors::sink::{carries_credentials, is_framing, Format, HeaderPattern, Tombstones};
use crate::connectors::template::{url_encode, Escape, Field, Template, UrlTemplate};
use crate::connectors::Sink;
use crate::kafka::headers::{self, EVENT_TYPE as EVENT_TYPE_HEADER};
use crate::telemetry::sink::SinkTelemetry;

/// A sink's shaping rules, built once.
pub struct Shaper {
    /// The URL when it has no placeholder.
    fixed_url: Option<reqwest::Url>,
    url: UrlTemplate,
    /// Each templated header, and whether its name says it carries a credential.
    headers: Vec<(HeaderName, Template, bool)>,
    forward: Vec<HeaderPattern>,
    programs: Programs,
    evaluator: Evaluator,
    telemetry: Arc<SinkTelemetry>,
    /// Some template reads the value as JSON (`{json./…}`).
    needs_json: bool,
    format: Format,
    /// `content_type`: the data's type when the record has none.
    content_type: HeaderValue,
    /// What a record with a null value becomes (`tombstones`).
    tombstones: Tombstones,
    /// Fired on shutdown: no jq worker is started or waited for any more.
    shutdown: CancellationToken,
}

/// What to send for one record.
pub struct Prepared<'a> {
    pub url: Cow<'a, reqwest::Url>,
    /// Forwarded record headers, then templated ones (later wins).
    pub headers: HeaderMap,
    /// `None`: the record's value as it is ([`Prepared::body`]), not cloned, so a batch
    /// that copies it into its body never makes the value count its shares.
    pub body: Option<Bytes>,
    /// Content-Type when it is not the record's (`transform`, structured CloudEvents).
    pub content_type: Option<HeaderValue>,
}

impl Prepared<'_> {
    /// The body to send for `record`, the record this request was prepared for.
    pub fn body<'r>(&'r self, record: &'r Record) -> &'r Bytes {
        self.body.as_ref().unwrap_or(&record.value)
    }

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `template`, `filter`, `transform` or `tombstone`.
    pub reason: &'static str,
    /// `missing-value`, `host-not-allowed`, `invalid-url`, `invalid-header`,
    /// `headers-too-large`, `not-json`,
    /// `jq-error`, `no-output`, `not-json-output`, `timeout`, `crashed`,
    /// `output-too-large`, `record-too-large` or `null-value`.
    pub error: &'static str,
    /// For a template, which part could not be filled and why, in the sink's words
    /// (`header X-Tenant: the record has no value for {header.x-tenant}`): what the
    /// dead letter says in place of an answer. Never a value taken from the record.
    pub detail: Option<String>,
}

impl Refused {
    /// Refused with no more to say than the class.
    pub fn new(reason: &'static str, error: &'static str) -> Self {
        Refused {
            reason,
            error,
            detail: None,
        }
    }
}

/// A dead letter's reason when a URL or header template cannot be rendered for its record.
pub const TEMPLATE: &str = "template";
/// A dead letter's reason when it is a tombstone and the sink's `tombstones` is
/// `dead-letter`.
pub const TOMBSTONE: &str = "tombstone";

impl From<crate::egress::batch::NotJson> for Refused {
    /// What a record that cannot be a batch item is dead-lettered with.
    fn from(_: crate::egress::batch::NotJson) -> Self {
        Refused::new(
            crate::egress::batch::NotJson::REASON,
            crate::egress::batch::NotJson::ERROR,
        )
    }
}

impl Shaper {
    /// The sink's rules, its programs evaluated in worker processes of this binary.
    pub fn new(sink: &Sink, telemetry: Arc<SinkTelemetry>) -> Self {
        let needs_json = sink
            .url
            .fields()
            .chain(sink.header_templates.iter().flat_map(|(_, t)| t.fields()))
            .any(|f| matches!(f, Field::Json(_)));
        let programs = Programs {
            filter: sink.filter.clone(),
            transform: sink.transform.clone(),
        };
        let evaluator = if programs.is_empty() {
            Evaluator::InProcess
        } else {
            Evaluator::Workers(Workers::new(
                Workers::this_program(),
                &programs,
                telemetry.clone(),
            ))
        };
        Shaper {
            fixed_url: sink.url.literal(),
            url: sink.url.clone(),
            headers: (sink.header_templates.iter())
                .map(|(name, t)| (name.clone(), t.clone(), carries_credentials(name.as_str())))
                .collect(),
            forward: sink.forward_headers.clone(),
            programs,
            evaluator,
            telemetry,
            needs_json,
            format: sink.format,
            content_type: sink.content_type.clone(),
            tombstones: sink.tombstones,
            shutdown: CancellationToken::new(),
        }
    }

    /// The same rules, with `shutdown` fired when the sink shuts down: from then on an
    /// evaluation that would wait for a jq worker to start is given up on (its record
    /// stays unfinished) instead of holding the drain up to its deadline.
    pub fn stopped_by(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The same rules with the programs run on the caller's thread: for where no
    /// worker binary exists (fuzzing, benchmarks, unit tests).
    pub fn in_process(mut self) -> Self {
        self.evaluator = Evaluator::InProcess;
        self
    }

    /// The same rules with workers started from `program` (a hookbridge binary) and
    /// given `deadline` per record: for tests, which do not run as that binary.
    pub fn with_workers(mut self, program: PathBuf, deadline: std::time::Duration) -> Self {
        if !self.programs.is_empty() {
            self.evaluator = Evaluator::Workers(
                Workers::new(program, &self.programs, self.telemetry.clone())
                    .with_deadline(deadline),
            );
        }
        self
    }

    /// The sink's workers, when its programs run in them.
    pub fn workers(&self) -> Option<&Workers> {
        match &self.evaluator {
            Evaluator::Workers(w) => Some(w),
            Evaluator::InProcess => None,
        }
    }

    /// Shaping runs no jq program, so [`Shaper::shape`] is quick enough for the
    /// dispatcher to call inline.
    pub fn is_inline(&self) -> bool {
        self.programs.is_empty()
    }

    /// What to send for `record`; `None` when the filter lets it through without a
    /// request (finished as `filtered`). Runs the jq programs on this thread, however
    /// long they take and whatever their stack: only for inline shaping
    /// ([`Shaper::is_inline`]) and where no worker exists. See [`Shaper::shape_in_time`].
    pub fn shape<'a>(&'a self, record: &Record) -> Result<Option<Prepared<'a>>, Refused> {
        if let Some(decided) = self.tombstone(record) {
            return decided;
        }
        if self.programs.is_empty() {
            return self.fill(record, None).map(Some);
        }
        let headers = record.headers.iter().map(|(k, v)| (k.as_str(), v.as_ref()));
        let request = Request {
            value: &record.value,
            key: record.key.as_deref(),
            headers: headers.collect(),
            topic: &record.tp.topic,
            event_type: record.header(EVENT_TYPE_HEADER).map(|v| v.as_ref()),
        };
        self.apply(record, self.programs.evaluate(&request, || {}))
    }

    /// [`Shaper::shape`] with the jq programs run by the sink's [`Evaluator`]: in a
    /// worker process, within the deadline, so a program that loops or overflows its
    /// stack costs its record (`timeout`, `crashed`) and never the sink. `None`:
    /// `cancel` fired first, or shutdown while a worker was to be started
    /// ([`Shaper::stopped_by`]).
    pub async fn shape_in_time<'a>(
        &'a self,
        record: &Record,
        cancel: &CancellationToken,
    ) -> Option<Result<Option<Prepared<'a>>, Refused>> {
        if let Some(decided) = self.tombstone(record) {
            return Some(decided);
        }
        match &self.evaluator {
            // Workers exist only for a sink with programs (`new`, `with_workers`).
            // Boxed: the wait for a worker is a large future, and every delivery of
            // every sink would carry its space (and copy it) when only these use it.
            Evaluator::Workers(workers) => {
                let verdict = Box::pin(workers.evaluate(record, cancel, &self.shutdown)).await?;
                Some(self.apply(record, verdict))
            }
            _ => Some(self.shape(record)),
        }
    }

    /// What a tombstone becomes by the sink's `tombstones`, before any program sees it;
    /// `None`: it is shaped as any record.
    fn tombstone<'a>(&self, record: &Record) -> Option<Result<Option<Prepared<'a>>, Refused>> {
        if !record.null_value {
            return None;
        }
        match self.tombstones {
            Tombstones::Deliver => None,
            Tombstones::Skip => Some(Ok(None)),
            Tombstones::DeadLetter => Some(Err(Refused::new(TOMBSTONE, "null-value"))),
        }
    }

    /// The request for a record, or why there is none, by the programs' verdict.
    fn apply<'a>(
        &'a self,
        record: &Record,
        verdict: Verdict,
    ) -> Result<Option<Prepared<'a>>, Refused> {
        match verdict {
            Verdict::Filtered => Ok(None),
            Verdict::Passed => self.fill(record, None).map(Some),
            Verdict::Transformed(body) => self.fill(record, Some(body)).map(Some),
            Verdict::Refused(stage, class) => Err(Refused::new(stage.as_str(), class.as_str())),
        }
    }

    /// The request for a record the filter let through, with the transform's body.
    fn fill<'a>(&'a self, record: &Record, body: Option<Bytes>) -> Result<Prepared<'a>, Refused> {
        let json = self.needs_json.then_some(&record.value[..]);
        let fields = |f: &Field| field(record, json, f);
        let template = |error, detail: String| Refused {
            reason: TEMPLATE,
            error,
            detail: Some(detail),
        };
        let url = match &self.fixed_url {
            Some(u) => Cow::Borrowed(u),
            None => Cow::Owned(self.url.fill(fields).map_err(|e| {
                use crate::connectors::template::UrlError;
                let error = match e {
                    UrlError::Missing(_) => "missing-value",
                    UrlError::HostNotAllowed => "host-not-allowed",
                    UrlError::Invalid(_)
                    | UrlError::DotSegment
                    | UrlError::Userinfo
                    | UrlError::TooLong => "invalid-url",
                };
                template(error, format!("url: {e}"))
            })?),
        };
        let mut headers = HeaderMap::new();
        // What the request takes from its record, counted as each header goes in: a
        // record of 25 000 tiny headers must be refused long before a header map that
        // large (which panics past 24 576 names) is built. A filled-in URL travels in
        // the same HTTP/2 header block (as `:path`).
        let mut taken = HeaderBytes::default();
        if self.fixed_url.is_none() {
            taken.add(":path".len(), url.as_str().len())?;
        }
        if !self.forward.is_empty() {
            for (k, v) in &record.headers {
                if !self.forward.iter().any(|p| p.matches(k)) || is_framing(k) {
                    continue;
                }
                // A CloudEvents sink writes the event's attributes itself: a record's
                // `ce-time: yesterday` or `ce-bad_name` would make an invalid event.
                if self.format != Format::Raw && is_ce_attribute(k) {
                    continue;
                }
                // Kafka header names are free text: one that is not an HTTP header name
                // (or whose value is not a header value) is not sent.
                if let (Ok(name), Ok(mut value)) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_maybe_shared(v.clone()),
                ) {
                    taken.add(name.as_str().len(), value.len())?;
                    value.set_sensitive(carries_credentials(name.as_str()));
                    headers.append(name, value);
                }
            }
        }
        let mut buf = Vec::new();
        for (name, t, credential) in &self.headers {
            buf.clear();
            t.render(&mut buf, Escape::Raw, fields)
                .map_err(|e| template("missing-value", format!("header {name}: {e}")))?;
            let mut value = HeaderValue::from_bytes(&buf).map_err(|_| {
                template(
                    "invalid-header",
                    format!("header {name}: the filled-in value is not a header value (a line break or control character)"),
                )
            })?;
            taken.add(name.as_str().len(), value.len())?;
            value.set_sensitive(*credential);
            headers.insert(name.clone(), value);
        }
        // Sent with a body as the record holds it (client.rs), counted whether or not
        // they end up sent.
        for name in [headers::CONTENT_TYPE, headers::CONTENT_ENCODING] {
            if let Some(v) = record.header(name) {
                taken.add(name.len(), v.len())?;
            }
        }
        let content_type = body.is_some().then_some(APPLICATION_JSON);
        let mut prepared = Prepared {
            url,
            headers,
            body,
            content_type,
        };
        if self.format != Format::Raw {
            self.cloudevent(record, &mut prepared);
            // The event's type and source come from the record too.
            for name in ["ce-type", "ce-source"] {
                if let Some(v) = prepared.headers.get(name) {
                    taken.add(name.len(), v.len())?;
                }
            }
        }
        Ok(prepared)
    }

    /// CloudEvents 1.0 HTTP binding. `id` is the webhook id (stable across redeliveries,
    /// so receivers deduplicate on it either way); `source` names the ingress source of
    /// the record when it has one, else its topic; `type` is the event type; `time` is
    /// when ingress received the webhook (omitted for records not from ingress).
    fn cloudevent(&self, record: &Record, prepared: &mut Prepared<'_>) {
        let id = record.webhook_id();
        let source = match (record.header(headers::SOURCE))
            .and_then(|v| std::str::from_utf8(v).ok())
            .filter(|s| !s.is_empty())
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
            .and_then(crate::clock::parse_rfc3339)
            .and_then(crate::clock::rfc3339_millis);
        let time = time.as_deref();
        let data_type = (prepared.content_type.clone())
            .or_else(|| record_content_type(record))
            .unwrap_or_else(|| self.content_type.clone());
        match self.format {
            Format::Raw => {}
            Format::CloudeventsBinary => {
                // In binary mode the Content-Type is the data's, and one that names a
                // CloudEvents format would turn the request into a structured event (or a
                // batch) the body's author wrote, id and source included: such data goes
                // as the JSON or bytes it is.
                if let Some(data_type) = binary_data_type(&data_type) {
                    prepared.content_type = Some(data_type);
                }
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
                let data = prepared.body(record);
                // JSON data goes in as written: numbers past 64 bits or with trailing
                // zeros, key order and escapes stay the producer's. What one JSON
                // document may hold of another is what a batch holds as an item: one
                // document, UTF-8 throughout.
                let json_data = is_json(data_type_text) && crate::egress::batch::can_be_item(data);
                if !json_data {
                    use base64::Engine;
                    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
                    event.insert("data_base64".into(), encoded.into());
                }
                let mut body = serde_json::Value::Object(event).to_string().into_bytes();
                if json_data {
                    body.pop(); // the object's closing brace
                    body.reserve(data.len() + 9);
                    body.extend_from_slice(b",\"data\":");
                    body.extend_from_slice(data);
                    body.push(b'}');
                }
                prepared.body = Some(Bytes::from(body));
                prepared.content_type = Some(CLOUDEVENTS_JSON);
            }
        }
    }
}

pub use super::evaluation::pool::JQ_DEADLINE;

/// `ce-type` of a record without a `hookbridge-event-type` header.
pub const DEFAULT_EVENT_TYPE: &str = "hookbridge.record";
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
const CLOUDEVENTS_JSON: HeaderValue =
    HeaderValue::from_static("application/cloudevents+json; charset=utf-8");

/// Whether a header name is a CloudEvents attribute of the HTTP binding (`ce-…`).
fn is_ce_attribute(name: &str) -> bool {
    name.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("ce-"))
}

/// The Content-Type binary mode sends for data of `data_type` when that type names a
/// CloudEvents format (`application/cloudevents…`), which in binary mode would say the
/// request is a structured event or a batch (HTTP binding 3.1): `application/json` for
/// a JSON one, else `application/octet-stream`. `None`: `data_type` goes as it is.
fn binary_data_type(data_type: &HeaderValue) -> Option<HeaderValue> {
    let essence = data_type
        .as_bytes()
        .split(|b| *b == b';')
        .next()?
        .trim_ascii();
    let prefix = b"application/cloudevents";
    let names_cloudevents =
        essence.len() >= prefix.len() && essence[..prefix.len()].eq_ignore_ascii_case(prefix);
    if !names_cloudevents {
        return None;
    }
    let json = essence.len() >= 5 && essence[essence.len() - 5..].eq_ignore_ascii_case(b"+json");
    Some(if json {
        APPLICATION_JSON
    } else {
        HeaderValue::from_static("application/octet-stream")
    })
}

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

/// The most bytes of headers a request may take from its record (a filled-in URL,
/// forwarded headers, filled-in templates, its content type and encoding, a
/// CloudEvent's type and source),
/// each counted as HTTP/2 counts it: name, value and 32 bytes. A server answers a
/// larger request with 431 over HTTP/1.1, but over HTTP/2 one such header block can
/// break the connection every other record's request shares: the record is refused
/// before it is sent instead.
pub const MAX_RECORD_HEADER_BYTES: usize = 32 << 10;

/// The header bytes a request took from its record so far ([`MAX_RECORD_HEADER_BYTES`]).
#[derive(Default)]
struct HeaderBytes(usize);

impl HeaderBytes {
    /// One more header; refused once they come to more than the limit.
    fn add(&mut self, name: usize, value: usize) -> Result<(), Refused> {
        self.0 = self.0.saturating_add(name + value + 32);
        if self.0 > MAX_RECORD_HEADER_BYTES {
            return Err(Refused {
                reason: TEMPLATE,
                error: "headers-too-large",
                detail: Some(format!(
                    "the URL and headers taken from the record come to over {} KiB",
                    MAX_RECORD_HEADER_BYTES >> 10
                )),
            });
        }
        Ok(())
    }
}

/// The record's own `content-type` header, when it is a usable header value (an empty
/// one is none: the sink's `content_type` applies).
pub(super) fn record_content_type(record: &Record) -> Option<HeaderValue> {
    (record.header(headers::CONTENT_TYPE))
        .filter(|v| !v.trim_ascii().is_empty())
        .and_then(|v| HeaderValue::from_maybe_shared(v.clone()).ok())
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

/// A placeholder's value for `record` (`json`: its value, when a placeholder reads it as
/// JSON); `None` when the record has none.
fn field<'r>(record: &'r Record, json: Option<&'r [u8]>, f: &Field) -> Option<Cow<'r, [u8]>> {
    let bytes = |b: &'r Bytes| Cow::Borrowed(b.as_ref());
    match f {
        Field::Topic => Some(Cow::Borrowed(record.tp.topic.as_bytes())),
        Field::Partition => Some(Cow::Owned(record.tp.partition.to_string().into_bytes())),
        Field::Offset => Some(Cow::Owned(record.offset.to_string().into_bytes())),
        Field::Key => record.key.as_ref().map(bytes),
        Field::Header(name) => record.header(name).map(bytes),
        Field::EventType => record.header(EVENT_TYPE_HEADER).map(bytes),
        Field::Json(path) => pointer::scalar(json?, path),
    }
    // An empty value would make `/tenants//orders`: treated as missing.
    .filter(|v| !v.is_empty())
}

mod pointer;
#[cfg(test)]
mod tests;
