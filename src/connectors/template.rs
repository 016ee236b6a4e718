//! Record templates of a sink: `{topic}`, `{partition}`, `{offset}`, `{key}`,
//! `{header.NAME}`, `{json./pointer}` and `{event_type}` in the URL and in header values.
//!
//! Parsed once per sink at validation (an unknown placeholder is a config error naming
//! the key); filled per record by the delivery path, which supplies the values. A URL
//! template keeps scheme, host and port literal unless the sink lists `allowed_hosts`:
//! records of ingress sources are written by third parties, and a host taken from them
//! would let any sender point deliveries anywhere (SSRF); that rule is [`url_template`]'s.

mod url_template;

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

pub(crate) use url_template::redacted as redacted_url;
pub use url_template::{UrlError, UrlTemplate};

/// One value a placeholder names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Topic,
    Partition,
    Offset,
    Key,
    /// A record header, matched case-insensitively.
    Header(String),
    /// An RFC 6901 pointer into the record value parsed as JSON.
    Json(String),
    /// The webhook's event type: the `hookbridge-event-type` record header in a sink,
    /// the source's `event_type` in a source's `topic`.
    EventType,
}

impl Field {
    fn parse(name: &str) -> Result<Field, String> {
        Ok(match name {
            "topic" => Field::Topic,
            "partition" => Field::Partition,
            "offset" => Field::Offset,
            "key" => Field::Key,
            "event_type" => Field::EventType,
            _ => {
                if let Some(h) = name.strip_prefix("header.") {
                    if h.is_empty() {
                        return Err("`{header.}` needs a header name".into());
                    }
                    Field::Header(h.to_owned())
                } else if let Some(p) = name.strip_prefix("json.") {
                    if !(p.is_empty() || p.starts_with('/')) {
                        return Err(format!(
                            "`{{json.{p}}}`: a JSON pointer starts with `/`, e.g. `{{json./tenant}}`"
                        ));
                    }
                    Field::Json(p.to_owned())
                } else {
                    return Err(format!(
                        "unknown placeholder `{{{name}}}`; use topic, partition, offset, key, event_type, header.NAME or json./pointer"
                    ));
                }
            }
        })
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Field::Topic => f.write_str("topic"),
            Field::Partition => f.write_str("partition"),
            Field::Offset => f.write_str("offset"),
            Field::Key => f.write_str("key"),
            Field::Header(h) => write!(f, "header.{h}"),
            Field::Json(p) => write!(f, "json.{p}"),
            Field::EventType => f.write_str("event_type"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Field),
}

/// How a filled-in value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Percent-encoded: a value never adds a path segment, query parameter or fragment.
    Url,
    /// As is (header values; the caller checks the result is a valid header value).
    Raw,
}

/// Everything but RFC 3986 unreserved characters is encoded, `/`, `?`, `&`, `=` and `#`
/// included.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `value` as it is written into a URL: everything but unreserved characters encoded.
pub fn url_encode(value: &[u8]) -> String {
    percent_encoding::percent_encode(value, VALUE).to_string()
}

/// A text with placeholders. `{{` and `}}` write a literal brace.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// The placeholders, and only the length of the text between them: a template's text
/// can hold a credential (`sk-live-{header.tenant}`), and `Debug` reaches logs.
impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Template(")?;
        for part in &self.parts {
            match part {
                Part::Text(t) => write!(f, "<{} chars>", t.chars().count())?,
                Part::Field(field) => write!(f, "{{{field}}}")?,
            }
        }
        f.write_str(")")
    }
}

/// A placeholder the record has no value for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the record has no value for `{{{0}}}`")]
pub struct Missing(pub Field);

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            lit.push_str(&rest[..i]);
            let tail = &rest[i..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                lit.push_str(&tail[..1]);
                rest = &tail[2..];
                continue;
            }
            if tail.starts_with('}') {
                return Err("unmatched `}` (write `}}` for a literal brace)".into());
            }
            let end = tail
                .find('}')
                .ok_or("unclosed `{` (write `{{` for a literal brace)")?;
            if !lit.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut lit)));
            }
            parts.push(Part::Field(Field::parse(&tail[1..end])?));
            rest = &tail[end + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Template { parts })
    }

    /// The text when there is no placeholder.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(f) => Some(f),
            Part::Text(_) => None,
        })
    }

    /// Appends the filled-in text to `out`. `value` gives a field's bytes, `None` when
    /// the record has none.
    pub fn render<'r>(
        &self,
        out: &mut Vec<u8>,
        escape: Escape,
        mut value: impl FnMut(&Field) -> Option<Cow<'r, [u8]>>,
    ) -> Result<(), Missing> {
        for part in &self.parts {
            match part {
                Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                Part::Field(f) => {
                    let v = value(f).ok_or_else(|| Missing(f.clone()))?;
                    match escape {
                        Escape::Raw => out.extend_from_slice(&v),
                        Escape::Url => {
                            for s in percent_encoding::percent_encode(&v, VALUE) {
                                out.extend_from_slice(s.as_bytes());
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
