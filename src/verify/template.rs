//! The signed-content template of the HMAC engine: `{body}`, `{timestamp}`, `{url}` and
//! `{header:Name}` placeholders between literal text, `{{` and `}}` for literal braces.
//! Parsed once when the config is built (malformed templates are rejected then), and
//! turned into the byte pieces to MAC by one function, [`Template::pieces`], for
//! verifying and for `send` alike. `{body}` must appear exactly once, or the body would
//! not be authenticated.

use std::fmt;

use http::header::HeaderName;
use http::HeaderMap;

use super::VerifyError;

/// Label for errors: a header named in a template is not `'static`.
pub(super) const TEMPLATE_LABEL: &str = "(header named in template)";

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal bytes.
    Literal(String),
    /// The raw body.
    Body,
    /// The timestamp header's value, as sent.
    Timestamp,
    /// The request URL.
    Url,
    /// A request header's raw value.
    Header(HeaderName),
}

/// A signed-content template, parsed once at build time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Why a template was rejected. Shown in `check` output: it quotes template text, never
/// secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{` without a matching `}`.
    #[error("unclosed '{{' at byte {0}")]
    Unclosed(usize),
    /// `}` that neither closes a placeholder nor is doubled.
    #[error("unmatched '}}' at byte {0} (write '}}}}' for a literal brace)")]
    Unmatched(usize),
    /// A placeholder we do not know.
    #[error(
        "unknown placeholder {{{0}}}; use {{body}}, {{timestamp}}, {{url}} or {{header:Name}}"
    )]
    UnknownPlaceholder(String),
    /// `{header:…}` with an invalid header name.
    #[error("{{header:{0}}} is not a valid HTTP header name")]
    BadHeaderName(String),
    /// `{body}` missing or repeated.
    #[error("must contain {{body}} exactly once")]
    BodyCount,
}

impl Template {
    /// Parses `text`; see the module docs for the syntax.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(pos) = rest.find(['{', '}']) {
            let (before, tail) = rest
                .split_at_checked(pos)
                .ok_or(TemplateError::Unclosed(offset))?;
            literal.push_str(before);
            let at = offset + pos;
            if let Some(after) = tail.strip_prefix("{{") {
                literal.push('{');
                (rest, offset) = (after, at + 2);
            } else if let Some(after) = tail.strip_prefix("}}") {
                literal.push('}');
                (rest, offset) = (after, at + 2);
            } else if let Some(inner) = tail.strip_prefix('{') {
                let (name, after) = inner.split_once('}').ok_or(TemplateError::Unclosed(at))?;
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Self::placeholder(name)?);
                (rest, offset) = (after, at + name.len() + 2);
            } else {
                return Err(TemplateError::Unmatched(at));
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if parts.iter().filter(|p| **p == Part::Body).count() != 1 {
            return Err(TemplateError::BodyCount);
        }
        Ok(Template { parts })
    }

    fn placeholder(name: &str) -> Result<Part, TemplateError> {
        match name {
            "body" => Ok(Part::Body),
            "timestamp" => Ok(Part::Timestamp),
            "url" => Ok(Part::Url),
            _ => match name.strip_prefix("header:") {
                Some(header) => HeaderName::from_bytes(header.trim().as_bytes())
                    .map(Part::Header)
                    .map_err(|_| TemplateError::BadHeaderName(header.to_owned())),
                None => Err(TemplateError::UnknownPlaceholder(name.to_owned())),
            },
        }
    }

    /// Whether the template uses `{timestamp}`.
    pub fn uses_timestamp(&self) -> bool {
        self.parts.contains(&Part::Timestamp)
    }

    /// Whether the template uses `{url}`.
    pub fn uses_url(&self) -> bool {
        self.parts.contains(&Part::Url)
    }

    /// The headers named by `{header:…}` placeholders.
    pub fn headers(&self) -> impl Iterator<Item = &HeaderName> {
        self.parts.iter().filter_map(|p| match p {
            Part::Header(name) => Some(name),
            _ => None,
        })
    }

    /// The byte pieces to MAC, in order, borrowing the body and header values: the one
    /// function that builds the signed content, for verifying and for `send` alike.
    pub fn pieces<'a>(
        &'a self,
        body: &'a [u8],
        timestamp: &'a [u8],
        url: &'a str,
        headers: &'a HeaderMap,
    ) -> Result<Vec<&'a [u8]>, VerifyError> {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Literal(text) => Ok(text.as_bytes()),
                Part::Body => Ok(body),
                Part::Timestamp => Ok(timestamp),
                Part::Url => Ok(url.as_bytes()),
                Part::Header(name) => headers
                    .get(name)
                    .map(|v| v.as_bytes())
                    .ok_or(VerifyError::MissingHeader(TEMPLATE_LABEL)),
            })
            .collect()
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(text) => f.write_str(&text.replace('{', "{{").replace('}', "}}"))?,
                Part::Body => f.write_str("{body}")?,
                Part::Timestamp => f.write_str("{timestamp}")?,
                Part::Url => f.write_str("{url}")?,
                Part::Header(name) => write!(f, "{{header:{name}}}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(s: &str) -> HeaderName {
        HeaderName::from_bytes(s.as_bytes()).unwrap()
    }

    #[test]
    fn template_parsing() {
        let t = Template::parse("a{{b}}{timestamp}.{header:X-Id}{url}{body}").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Literal("a{b}".into()),
                Part::Timestamp,
                Part::Literal(".".into()),
                Part::Header(name("x-id")),
                Part::Url,
                Part::Body,
            ]
        );
        assert_eq!(t.to_string(), "a{{b}}{timestamp}.{header:x-id}{url}{body}");
        assert_eq!(Template::parse(&t.to_string()).unwrap(), t);
        assert!(t.uses_timestamp());
        assert_eq!(Template::parse("{body"), Err(TemplateError::Unclosed(0)));
        assert_eq!(
            Template::parse("x}{body}"),
            Err(TemplateError::Unmatched(1))
        );
        assert_eq!(
            Template::parse("{bdy}"),
            Err(TemplateError::UnknownPlaceholder("bdy".into()))
        );
        assert_eq!(
            Template::parse("{header:bad name}{body}"),
            Err(TemplateError::BadHeaderName("bad name".into()))
        );
        assert_eq!(
            Template::parse("{timestamp}"),
            Err(TemplateError::BodyCount)
        );
        assert_eq!(
            Template::parse("{body}{body}"),
            Err(TemplateError::BodyCount)
        );
        assert_eq!(
            Template::parse("é{{{body}}}ü").unwrap().to_string(),
            "é{{{body}}}ü"
        );
    }

    proptest! {
        #[test]
        fn template_parser_never_panics(s in ".*") {
            let _ = Template::parse(&s);
        }

        #[test]
        fn template_parser_never_panics_on_braces(s in "[{}a-z:ü -]{0,40}") {
            if let Ok(t) = Template::parse(&s) {
                // Whatever parses, prints back to an equivalent template.
                prop_assert_eq!(Template::parse(&t.to_string()), Ok(t));
            }
        }
    }
}
