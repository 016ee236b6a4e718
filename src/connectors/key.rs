//! The Kafka record key of an incoming webhook: taken from a header, from a JSON pointer
//! into the body, or absent.

use axum::http::{HeaderMap, HeaderName};
use bytes::Bytes;

/// How a source derives the record key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRule {
    /// No key: the producer spreads records over partitions.
    None,
    /// The value of this request header (e.g. `X-GitHub-Delivery`).
    Header(HeaderName),
    /// The value at this JSON pointer in the body (e.g. `/data/object/id`). Strings are
    /// used as is; numbers and `true`/`false` as the body wrote them (`1e2` stays
    /// `1e2`, an id past 64 bits keeps every digit); objects and arrays as written
    /// without their whitespace.
    Json(String),
}

/// The configured key is not in this request: answered 400, nothing produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("header {0} is missing")]
    MissingHeader(HeaderName),
    #[error("body is not valid JSON")]
    NotJson,
    #[error("JSON pointer {0} matches nothing in the body")]
    MissingPointer(String),
}

impl KeyRule {
    /// Parses `"none"`, `"header:NAME"` or `"json:/pointer"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "none" {
            return Ok(KeyRule::None);
        }
        if let Some(name) = text.strip_prefix("header:") {
            return HeaderName::try_from(name.trim())
                .map(KeyRule::Header)
                .map_err(|_| format!("{name:?} is not a valid header name"));
        }
        if let Some(pointer) = text.strip_prefix("json:") {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return Err(format!(
                    "JSON pointer {pointer:?} must start with '/' (RFC 6901)"
                ));
            }
            return Ok(KeyRule::Json(pointer.to_owned()));
        }
        Err(format!(
            "{text:?} is not a key rule; use \"none\", \"header:NAME\" or \"json:/pointer\""
        ))
    }

    /// Extracts the key. Only a `json:` rule parses the body, and only after verification.
    pub fn extract(&self, headers: &HeaderMap, body: &[u8]) -> Result<Option<Bytes>, KeyError> {
        match self {
            KeyRule::None => Ok(None),
            KeyRule::Header(name) => headers
                .get(name)
                .map(|v| Some(Bytes::copy_from_slice(v.as_bytes())))
                .ok_or_else(|| KeyError::MissingHeader(name.clone())),
            KeyRule::Json(pointer) => {
                let missing = || KeyError::MissingPointer(pointer.clone());
                let raw = pointed::at(body, pointer)?.ok_or_else(missing)?;
                pointed::key_text(raw)?.map(Some).ok_or_else(missing)
            }
        }
    }
}

pub mod pointed;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules() {
        assert_eq!(KeyRule::parse("none"), Ok(KeyRule::None));
        assert!(matches!(
            KeyRule::parse("header:X-GitHub-Delivery"),
            Ok(KeyRule::Header(_))
        ));
        assert_eq!(
            KeyRule::parse("json:/a/b"),
            Ok(KeyRule::Json("/a/b".into()))
        );
        assert!(KeyRule::parse("json:a").is_err());
        assert!(KeyRule::parse("header:bad header").is_err());
        assert!(KeyRule::parse("body").is_err());
    }

    #[test]
    fn extracts_from_json() {
        let rule = KeyRule::parse("json:/data/id").unwrap();
        let h = HeaderMap::new();
        assert_eq!(
            rule.extract(&h, br#"{"data":{"id":"evt_1"}}"#),
            Ok(Some(Bytes::from("evt_1")))
        );
        assert_eq!(
            rule.extract(&h, br#"{"data":{"id":42}}"#),
            Ok(Some(Bytes::from("42")))
        );
        assert_eq!(
            rule.extract(&h, br#"{"data":{}}"#),
            Err(KeyError::MissingPointer("/data/id".into()))
        );
        assert_eq!(rule.extract(&h, b"not json"), Err(KeyError::NotJson));
    }

    #[test]
    fn extracts_from_header() {
        let rule = KeyRule::parse("header:x-id").unwrap();
        let mut h = HeaderMap::new();
        assert!(rule.extract(&h, b"").is_err());
        h.insert("x-id", "abc".parse().unwrap());
        assert_eq!(rule.extract(&h, b""), Ok(Some(Bytes::from("abc"))));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(rule in ".*", body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            if let Ok(r) = KeyRule::parse(&rule) {
                let _ = r.extract(&HeaderMap::new(), &body);
            }
        }
    }
}
