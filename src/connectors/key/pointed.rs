//! The value a JSON pointer (RFC 6901) names in a body, read as the body wrote it: only
//! the objects and arrays on the way to it are walked, nothing else of the document is
//! decoded. A whole-document parse into `serde_json::Value` turned every number into a
//! 64-bit integer or a float (ids past 64 bits lost digits, so distinct events shared a
//! key), and refused a body for a string it never needed (a lone `\ud800` elsewhere).

use std::fmt;

use bytes::Bytes;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::KeyError;

/// The raw JSON text at `pointer` in `body`; `None` when nothing is there. The body must
/// be one JSON document (`NotJson` otherwise).
pub fn at<'a>(body: &'a [u8], pointer: &str) -> Result<Option<&'a RawValue>, KeyError> {
    let mut current: &'a RawValue = serde_json::from_slice(body).map_err(|_| KeyError::NotJson)?;
    if pointer.is_empty() {
        return Ok(Some(current));
    }
    // A pointer is "" (the whole document) or "/"-separated reference tokens.
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        let mut de = serde_json::Deserializer::from_str(current.get());
        match de.deserialize_any(Step(&token)) {
            Ok(Some(next)) => current = next,
            Ok(None) => return Ok(None),
            Err(_) => return Err(KeyError::NotJson),
        }
    }
    Ok(Some(current))
}

/// A key's bytes from the raw value it names: a string decoded, a number or boolean as
/// written, an object or array as written without its whitespace; `None` for `null`.
pub fn key_text(raw: &RawValue) -> Result<Option<Bytes>, KeyError> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(text)
            .map(|s| Some(Bytes::from(s)))
            .map_err(|_| KeyError::NotJson),
        Some(b'{' | b'[') => Ok(Some(Bytes::from(compact(text)))),
        _ if text == "null" => Ok(None),
        _ => Ok(Some(Bytes::copy_from_slice(text.as_bytes()))),
    }
}

/// Valid JSON text without the whitespace between its tokens: members in the order and
/// numbers in the form written (a parse and print would round numbers past 64 bits).
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

/// One reference token applied to an object (its member of that name; the last one when
/// a name repeats, as a whole-document parse reads it) or an array (its element at that
/// index: digits without a leading zero); anything else has nothing there.
struct Step<'t>(&'t str);

impl<'de> Visitor<'de> for Step<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(named) = map.next_key_seed(IsName(self.0))? {
            if named {
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let index = array_index(self.0);
        let mut found = None;
        let mut i = 0usize;
        loop {
            if Some(i) == index {
                match seq.next_element::<&'de RawValue>()? {
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

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// An array index as RFC 6901 writes one: `0`, or digits not starting with `0`.
fn array_index(token: &str) -> Option<usize> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    (digits && (token == "0" || !token.starts_with('0')))
        .then(|| token.parse().ok())
        .flatten()
}

/// Whether an object member's name is the token, compared without keeping the name.
struct IsName<'t>(&'t str);

impl<'de> DeserializeSeed<'de> for IsName<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for IsName<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(body: &str, pointer: &str) -> Result<Option<Bytes>, KeyError> {
        match at(body.as_bytes(), pointer)? {
            Some(raw) => key_text(raw),
            None => Ok(None),
        }
    }

    #[test]
    fn numbers_keep_the_digits_the_body_wrote() {
        let body = r#"{"a":123456789012345678901234567890,"b":123456789012345678901234567891,"c":1e2,"d":-0,"e":42,"f":true}"#;
        let cases = [
            ("/a", "123456789012345678901234567890"),
            ("/b", "123456789012345678901234567891"),
            ("/c", "1e2"),
            ("/d", "-0"),
            ("/e", "42"),
            ("/f", "true"),
        ];
        for (pointer, want) in cases {
            assert_eq!(key(body, pointer), Ok(Some(Bytes::from(want))), "{pointer}");
        }
    }

    #[test]
    fn only_the_path_is_decoded() {
        // A lone surrogate elsewhere, or nesting deeper than a full parse allows, does
        // not refuse the key; the document must still be JSON.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let body = format!(r#"{{"x":"\ud800","deep":{deep},"id":"evt_1"}}"#);
        assert_eq!(key(&body, "/id"), Ok(Some(Bytes::from("evt_1"))));
        assert_eq!(key(r#"{"id":"a""#, "/id"), Err(KeyError::NotJson));
        assert_eq!(key(r#"{"id":"a"} x"#, "/id"), Err(KeyError::NotJson));
        assert_eq!(key(r#"{"id":"\ud800"}"#, "/id"), Err(KeyError::NotJson));
    }

    #[test]
    fn pointers_walk_objects_and_arrays_as_rfc_6901_says() {
        let body = r#"{"data":{"object":{"id":"in_1"}},"list":[{"id":"x"},{"id":"y"}],
            "a/b":"slash","m~n":"tilde","":"empty","dup":"first","dup":"last",
            "esc\"aped":"named","obj":{"k": [1, 2]},"n":null,
            "nested": { "n" : 123456789012345678901234567890, "s": "a b\" c", "e": 1e2 }}"#;
        let cases = [
            ("/data/object/id", Some("in_1")),
            ("/list/1/id", Some("y")),
            ("/list/01/id", None),
            ("/list/2/id", None),
            ("/list/-", None),
            ("/a~1b", Some("slash")),
            ("/m~0n", Some("tilde")),
            ("/", Some("empty")),
            ("/dup", Some("last")),
            ("/esc\"aped", Some("named")),
            ("/obj", Some(r#"{"k":[1,2]}"#)),
            (
                "/nested",
                Some(r#"{"n":123456789012345678901234567890,"s":"a b\" c","e":1e2}"#),
            ),
            ("/data/object/id/deeper", None),
            ("/missing", None),
            ("/n", None),
        ];
        for (pointer, want) in cases {
            assert_eq!(key(body, pointer), Ok(want.map(Bytes::from)), "{pointer}");
        }
    }

    proptest! {
        /// On documents a whole-document parse reads, the pointer finds what it finds,
        /// for strings exactly the same key.
        #[test]
        fn agrees_with_a_whole_document_parse(
            doc in proptest::collection::btree_map("[a-c]{1,2}", prop_oneof![
                "[a-z0-9 ]{0,8}".prop_map(serde_json::Value::from),
                (0u32..1000).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-c]", "[a-z]{0,3}", 0..3)
                    .prop_map(|m| serde_json::json!(m)),
            ], 0..6),
            pointer in "(/[a-c]{1,2}){1,2}",
        ) {
            let text = serde_json::to_string(&doc).unwrap();
            let whole: serde_json::Value = serde_json::from_str(&text).unwrap();
            let want = match whole.pointer(&pointer) {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(Bytes::from(s.clone())),
                Some(other) => Some(Bytes::from(other.to_string())),
            };
            prop_assert_eq!(key(&text, &pointer), Ok(want));
        }
    }
}
