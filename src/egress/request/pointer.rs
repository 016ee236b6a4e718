//! A `{json./pointer}` placeholder's value, read from the record's JSON text without
//! building the document. A number renders as it is written: built into a
//! `serde_json::Value`, an id past 64 bits became a rounded float (`1.2345678901234568e22`,
//! a request to another resource), and one number past the float range anywhere in the
//! value (`1e400`) made the whole value unreadable, every placeholder missing.

use std::borrow::Cow;

use crate::connectors::key::pointed;

/// What the value at `pointer` (RFC 6901) in the record's `value` renders as: a string's
/// text (unescaped), a number or a boolean as written; `None` for null, an object, an
/// array, a pointer that leads nowhere, or a value that is not JSON. The walk is the
/// one a source's `json:` key takes.
pub fn scalar<'v>(value: &'v [u8], pointer: &str) -> Option<Cow<'v, [u8]>> {
    let text = pointed::at(value, pointer).ok()??.get();
    match text.as_bytes().first()? {
        // Borrowed unless it has escapes to read.
        b'"' => match serde_json::from_str::<&'v str>(text) {
            Ok(s) => Some(Cow::Borrowed(s.as_bytes())),
            Err(_) => Some(Cow::Owned(
                serde_json::from_str::<String>(text).ok()?.into_bytes(),
            )),
        },
        b't' | b'f' | b'-' | b'0'..=b'9' => Some(Cow::Borrowed(text.as_bytes())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(doc: &str, pointer: &str) -> Option<String> {
        scalar(doc.as_bytes(), pointer).map(|v| String::from_utf8(v.into_owned()).unwrap())
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
            assert_eq!(scalar(text, "/a"), None, "{text:?}");
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
