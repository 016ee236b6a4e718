//! Shaping one record into what is sent: the sink's filter decides whether it is sent at
//! all, its URL and header templates are filled from the record, forwarded record
//! headers are picked, and its transform makes the body.
//!
//! Pure and done once per record before the first attempt: every attempt sends the same
//! request, and a record that cannot be shaped is refused at once with the reason its
//! dead letter carries (`template`, `filter`, `transform`): retrying cannot fix it.

use std::borrow::Cow;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;

use super::record::Record;
use crate::connectors::jq::{self, Program, Val};
use crate::connectors::sink::HeaderPattern;
use crate::connectors::template::{Escape, Field, Template, UrlTemplate, EVENT_TYPE_HEADER};
use crate::connectors::Sink;

/// A sink's shaping rules, built once.
pub struct Shaper {
    /// The URL when it has no placeholder.
    fixed_url: Option<reqwest::Url>,
    url: UrlTemplate,
    headers: Vec<(HeaderName, Template)>,
    forward: Vec<HeaderPattern>,
    filter: Option<std::sync::Arc<Program>>,
    transform: Option<std::sync::Arc<Program>>,
    /// Some template reads the value as JSON (`{json./…}`).
    needs_json: bool,
}

/// What to send for one record.
pub struct Prepared<'a> {
    pub url: Cow<'a, reqwest::Url>,
    /// Forwarded record headers, then templated ones (later wins).
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The body was made by `transform`: it is JSON whatever the record's content type.
    pub transformed: bool,
}

/// Why a record cannot be shaped: the dead letter's reason and error class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// `template`, `filter` or `transform`.
    pub reason: &'static str,
    /// `missing-value`, `host-not-allowed`, `invalid-url`, `invalid-header`, `not-json`,
    /// `jq-error` or `no-output`.
    pub error: &'static str,
}

impl Shaper {
    pub fn new(sink: &Sink) -> Self {
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
            filter: sink.filter.clone(),
            transform: sink.transform.clone(),
            needs_json,
        }
    }

    /// What to send for `record`; `None` when the filter lets it through without a
    /// request (finished as `filtered`).
    pub fn shape<'a>(&'a self, record: &Record) -> Result<Option<Prepared<'a>>, Refused> {
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
                    UrlError::Invalid(_) => "invalid-url",
                })
            })?),
        };
        let mut headers = HeaderMap::new();
        if !self.forward.is_empty() {
            for (k, v) in &record.headers {
                if !self.forward.iter().any(|p| p.matches(k)) {
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
        let (body, transformed) = match &self.transform {
            None => (record.value.clone(), false),
            Some(t) => {
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
                (Bytes::from(jq::to_json(&out)), true)
            }
        };
        Ok(Some(Prepared {
            url,
            headers,
            body,
            transformed,
        }))
    }
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
