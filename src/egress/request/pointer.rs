//! A `{json./pointer}` placeholder's value, read from the record's JSON text without
//! building the document. A number renders as it is written: built into a
//! `serde_json::Value`, an id past 64 bits became a rounded float (`1.2345678901234568e22`,
//! a request to another resource), and one number past the float range anywhere in the
//! value (`1e400`) made the whole value unreadable, every placeholder missing.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The record's value when it is JSON (checked whole, once), for [`scalar`].
pub fn document(value: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(value).ok()?;
    serde_json::from_str::<&RawValue>(text).ok()?;
    Some(text)
}

/// What the value at `pointer` (RFC 6901) in `doc` renders as: a string's text
/// (unescaped), a number or a boolean as written; `None` for null, an object, an array,
/// or a pointer that leads nowhere.
pub fn scalar<'d>(doc: &'d str, pointer: &str) -> Option<Cow<'d, [u8]>> {
    let mut at: &'d str = doc.trim();
    if !pointer.is_empty() {
        for token in pointer.strip_prefix('/')?.split('/') {
            let token = unescape(token);
            let mut de = serde_json::Deserializer::from_str(at);
            at = Pick(&token).deserialize(&mut de).ok()??.get();
        }
    }
    match at.as_bytes().first()? {
        // Borrowed unless it has escapes to read.
        b'"' => match serde_json::from_str::<&'d str>(at) {
            Ok(s) => Some(Cow::Borrowed(s.as_bytes())),
            Err(_) => Some(Cow::Owned(
                serde_json::from_str::<String>(at).ok()?.into_bytes(),
            )),
        },
        b't' | b'f' | b'-' | b'0'..=b'9' => Some(Cow::Borrowed(at.as_bytes())),
        _ => None,
    }
}

/// A reference token with `~1` and `~0` read back as `/` and `~`.
fn unescape(token: &str) -> Cow<'_, str> {
    if token.contains('~') {
        Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(token)
    }
}

/// Picks one member of an object (the last of that name, as a parsed document keeps)
/// or one element of an array, as its text; every other value is skipped unread.
struct Pick<'t>(&'t str);

impl<'de> DeserializeSeed<'de> for Pick<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Pick<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object or an array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(Key(key)) = map.next_key()? {
            if key == self.0 {
                found = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // An index is decimal digits without a leading zero (RFC 6901).
        let index = (self.0 == "0" || !self.0.starts_with('0'))
            .then(|| {
                self.0
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| self.0.parse().ok())
            })
            .flatten()
            .flatten();
        let mut found = None;
        let mut i: usize = 0;
        loop {
            if Some(i) == index {
                match seq.next_element()? {
                    Some(v) => found = Some(v),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(found)
    }
}

/// An object's member name, borrowed from the text when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(doc: &str, pointer: &str) -> Option<String> {
        let doc = document(doc.as_bytes())?;
        scalar(doc, pointer).map(|v| String::from_utf8(v.into_owned()).unwrap())
    }

    #[test]
    fn numbers_render_as_written() {
        let doc = r#"{"id":12345678901234567890123,"neg":-9223372036854775809,"big":1e400,"f":1.50,"n":7}"#;
        assert_eq!(at(doc, "/id").as_deref(), Some("12345678901234567890123"));
        assert_eq!(at(doc, "/neg").as_deref(), Some("-9223372036854775809"));
        assert_eq!(at(doc, "/big").as_deref(), Some("1e400"));
        assert_eq!(at(doc, "/f").as_deref(), Some("1.50"));
        assert_eq!(at(doc, "/n").as_deref(), Some("7"));
    }

    #[test]
    fn a_number_no_float_holds_elsewhere_leaves_the_other_fields_readable() {
        let doc = r#"{"id":"ok","kind":"k","x":1e400}"#;
        assert_eq!(at(doc, "/id").as_deref(), Some("ok"));
        assert_eq!(at(doc, "/kind").as_deref(), Some("k"));
    }

    #[test]
    fn pointers_walk_objects_and_arrays_as_rfc_6901_says() {
        let doc =
            r#"{"a/b":{"m~n":[10,{"x":"y\n\u00e9"}]},"t":true,"z":null,"o":{},"dup":1,"dup":2}"#;
        assert_eq!(at(doc, "/a~1b/m~0n/0").as_deref(), Some("10"));
        assert_eq!(at(doc, "/a~1b/m~0n/1/x").as_deref(), Some("y\né"));
        assert_eq!(at(doc, "/t").as_deref(), Some("true"));
        assert_eq!(
            at(doc, "/dup").as_deref(),
            Some("2"),
            "the last, as a document keeps"
        );
        for missing in [
            "/z",
            "/o",
            "/a~1b",
            "/nope",
            "/a~1b/m~0n/2",
            "/a~1b/m~0n/01",
            "/t/x",
            "x",
        ] {
            assert_eq!(at(doc, missing), None, "{missing}");
        }
        assert_eq!(at("[1,2]", "/1").as_deref(), Some("2"));
        assert_eq!(at("\"whole\"", "").as_deref(), Some("whole"));
    }

    #[test]
    fn a_value_that_is_not_json_has_no_fields() {
        for text in [&b"{\"a\":1"[..], b"{\"a\":1} x", b"\xff", b""] {
            assert_eq!(document(text), None, "{text:?}");
        }
    }

    #[test]
    fn ordinary_documents_read_as_a_parsed_document_reads_them() {
        let doc =
            r#"{"order":{"id":"o-1","total":12.5,"lines":[{"sku":"A","qty":2}],"paid":false}}"#;
        let parsed: serde_json::Value = serde_json::from_str(doc).unwrap();
        for p in [
            "/order/id",
            "/order/total",
            "/order/lines/0/sku",
            "/order/lines/0/qty",
            "/order/paid",
        ] {
            let want = match parsed.pointer(p).unwrap() {
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            assert_eq!(at(doc, p), Some(want), "{p}");
        }
    }
}
