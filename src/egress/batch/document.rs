//! Whether bytes are one JSON document (RFC 8259), answered without building anything:
//! the check every value of a batching sink passes on the poll thread, so it is a
//! per-record cost at line rate.
//!
//! It accepts exactly what `serde_json::from_slice::<IgnoredAny>` accepts on text that
//! is UTF-8 throughout (tests compare the two on generated and mutated documents):
//! whitespace is space, tab, line feed and carriage return; a string holds no byte below
//! 0x20 and only the escapes `\" \\ \/ \b \f \n \r \t \uXXXX` (any four hex digits, a
//! lone surrogate included, as serde skips them); numbers have no leading zero, a digit
//! after `.` and after the exponent; nesting has no depth limit (an explicit stack, one
//! byte per level, no recursion). What makes it faster than serde's skip (which reads
//! eight bytes at a time): a string's plain run is searched sixteen bytes at a time
//! with wide compares (`special`), and an escape is read where it was found.

/// Whether `bytes` are one JSON document, with only whitespace around it. The caller
/// checks UTF-8 (this reads bytes; any byte of 0x80 and above passes inside strings).
pub fn is_one_document(bytes: &[u8]) -> bool {
    Scan { bytes, at: 0 }.document()
}

/// A position in the text being checked.
struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// An open container: its closing byte says which.
const OBJECT: u8 = b'}';
const ARRAY: u8 = b']';

impl Scan<'_> {
    fn document(mut self) -> bool {
        // Closing bytes of the containers the current value is inside, innermost last.
        let mut open: Vec<u8> = Vec::new();
        // Each round reads at least one byte (a value's first, or a comma), so the text's
        // length bounds the rounds: a bound that turns a slip in the reading (a position
        // not moved on) into a refusal, not a poll thread spinning for ever.
        'value: for _ in 0..=self.bytes.len() {
            let read = match self.after_whitespace() {
                Some(start @ (b'{' | b'[')) => {
                    let close = if start == b'{' { OBJECT } else { ARRAY };
                    self.at += 1;
                    if self.after_whitespace() == Some(close) {
                        self.at += 1;
                        true
                    } else {
                        open.push(close);
                        // An object's first member starts with its name.
                        if close == OBJECT && !self.member_name() {
                            return false;
                        }
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    self.at += 1;
                    self.string()
                }
                Some(b'-' | b'0'..=b'9') => self.number(),
                Some(b't') => self.word(b"true"),
                Some(b'f') => self.word(b"false"),
                Some(b'n') => self.word(b"null"),
                _ => false,
            };
            if !read {
                return false;
            }
            // A value is complete: the next one of its container, or the container's
            // end (which completes the container), or the document's end.
            loop {
                let Some(&close) = open.last() else {
                    return self.after_whitespace().is_none();
                };
                match self.after_whitespace() {
                    Some(b',') => {
                        self.at += 1;
                        if close == OBJECT && !self.member_name() {
                            return false;
                        }
                        continue 'value;
                    }
                    Some(b) if b == close => {
                        self.at += 1;
                        open.pop();
                    }
                    _ => return false,
                }
            }
        }
        false
    }

    /// The next byte that is not whitespace, left unread.
    fn after_whitespace(&mut self) -> Option<u8> {
        let blank = (self.bytes[self.at..].iter())
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .count();
        self.at += blank;
        self.peek()
    }

    /// An object member's name and the colon after it.
    fn member_name(&mut self) -> bool {
        if self.after_whitespace() != Some(b'"') {
            return false;
        }
        self.at += 1;
        if !self.string() || self.after_whitespace() != Some(b':') {
            return false;
        }
        self.at += 1;
        true
    }

    /// The rest of a string whose opening quote was read, up to its closing quote.
    fn string(&mut self) -> bool {
        // Each round reads at least the byte it stops at (bounded as `document` is).
        for _ in 0..=self.bytes.len() {
            let rest = &self.bytes[self.at..];
            let Some(stop) = special(rest) else {
                return false;
            };
            match rest[stop] {
                b'"' => {
                    self.at += stop + 1;
                    return true;
                }
                b'\\' => {}
                _ => return false,
            }
            let read = match rest.get(stop + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => 2,
                Some(b'u') => {
                    let hex = rest.get(stop + 2..stop + 6);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        return false;
                    }
                    6
                }
                _ => return false,
            };
            self.at += stop + read;
        }
        false
    }

    /// A number: `-`? (`0` | [1-9][0-9]*) (`.` [0-9]+)? ([eE] [+-]? [0-9]+)?
    fn number(&mut self) -> bool {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.at += 1;
                if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    return false;
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return false,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return false;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return false;
            }
        }
        true
    }

    /// Reads a run of digits; how many.
    fn digits(&mut self) -> usize {
        let run = self.bytes[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        self.at += run;
        run
    }

    /// `true`, `false` or `null`, spelled out.
    fn word(&mut self, word: &[u8]) -> bool {
        let whole = self.bytes[self.at..].starts_with(word);
        self.at += word.len();
        whole
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }
}

/// Where a string's run of plain bytes ends: its first quote, backslash or control
/// character (below 0x20, which JSON allows only escaped).
///
/// Sixteen bytes at a time: on x86-64 with SSE2 (in the baseline of every x86-64 target
/// with std), three wide compares and a mask per block; elsewhere a fold the compiler
/// widens, then the block byte by byte. No call and no setup either way, so a short
/// member name costs what a byte loop does and a kilobyte of text a fraction of it.
fn special(run: &[u8]) -> Option<usize> {
    let mut start = 0;
    for block in run.chunks_exact(16) {
        let block: &[u8; 16] = block.try_into().expect("chunks of 16");
        if let Some(at) = special_in_block(block) {
            return Some(start + at);
        }
        start += 16;
    }
    (run[start..].iter())
        .position(|&b| stops(b))
        .map(|i| start + i)
}

fn stops(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// The first stop in a block, if any.
fn special_in_block(block: &[u8; 16]) -> Option<usize> {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    return special_in_block_sse2(block);
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    return special_in_block_portable(block);
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn special_in_block_sse2(block: &[u8; 16]) -> Option<usize> {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: compiled only where SSE2 is enabled (every x86-64 target with std has it);
    // the load reads the block's 16 bytes (unaligned loads allowed).
    let mask = unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Below 0x20: max(b, 0x1f) is 0x1f (unsigned).
        let below = _mm_set1_epi8(0x1f);
        let control = _mm_cmpeq_epi8(_mm_max_epu8(v, below), below);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    };
    (mask != 0).then(|| mask.trailing_zeros() as usize)
}

/// [`special_in_block`] without SSE2: a fold with no early exit, which the compiler
/// widens, then the block byte by byte.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn special_in_block_portable(block: &[u8; 16]) -> Option<usize> {
    let any = block.iter().fold(false, |any, &b| any | stops(b));
    if any {
        block.iter().position(|&b| stops(b))
    } else {
        None
    }
}
#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::de::IgnoredAny;

    use super::*;

    /// What the check must agree with: serde_json's own skip of one document.
    fn serde_says(bytes: &[u8]) -> bool {
        serde_json::from_slice::<IgnoredAny>(bytes).is_ok()
    }

    #[test]
    fn agrees_with_serde_json_on_the_grammar_edges() {
        let cases: &[&[u8]] = &[
            b"",
            b" ",
            b"0",
            b"-0",
            b"-",
            b"01",
            b"-01",
            b"1.",
            b"1.5",
            b".5",
            b"1e",
            b"1e+",
            b"1e+5",
            b"1E-5",
            b"1e5.0",
            b"0e0",
            b"00",
            b"1x",
            b"+1",
            b"1 2",
            b"2 ",
            b"true",
            b"tru",
            b"truee",
            b"false",
            b"fals",
            b"null",
            b"nul",
            b"nulll",
            b"True",
            b"\"\"",
            b"\"",
            b"\"a",
            b"\"a\"",
            b"\"a\" \"b\"",
            b"\"\\\"",
            b"\"\\\"\"",
            b"\"\\u12\"",
            b"\"\\u12g4\"",
            b"\"\\u12G4\"",
            b"\"\\uD800\"",
            b"\"\\uABCD\"",
            b"\"\\x\"",
            b"\"\\/\"",
            b"\"\\b\\f\\n\\r\\t\"",
            b"\"\t\"",
            b"\"\x1f\"",
            b"\"\x7f\"",
            b"\"\\",
            b"\"\\u",
            b"\"\\u1234",
            b"[]",
            b"[",
            b"]",
            b"[,]",
            b"[1,]",
            b"[1,,2]",
            b"[1 2]",
            b"[1,2]",
            b" [ 1 , 2 ] ",
            b"{}",
            b"{",
            b"}",
            b"{\"a\"}",
            b"{\"a\":}",
            b"{\"a\":1}",
            b"{\"a\":1,}",
            b"{\"a\" : 1 , \"b\" : [ ] }",
            b"{1:1}",
            b"{\"a\":1 \"b\":2}",
            b"{\"a\"::1}",
            b"[}",
            b"{]",
            b"[{]}",
            b"[{}]",
            b"{\"a\":[]}",
            b"[[[[]]]]",
            b"[[[[]]]",
            b"{,}",
            b"\n\t\r 1 \r\t\n",
            b"\x0c1",
            b"1\x0c",
            b"\xef\xbb\xbf1",
            b"nan",
            b"Infinity",
            b"-Infinity",
            b"[-]",
            b"[1e]",
            b"{\"a\":tru}",
            b"[true false]",
            b"[1}",
            b"{\"a\":1]",
            b"[[1]}",
            b"{\"a\":[1}}",
            b"\"\x01\x02\"",
            b"[\"\x01\x1f\"]",
            b"\"\\u00e9\\n\\\"\\\\\"",
        ];
        for case in cases {
            assert_eq!(
                is_one_document(case),
                serde_says(case),
                "{:?}",
                String::from_utf8_lossy(case)
            );
        }
    }

    /// Both ways of finding a block's first stop agree, at every position and for every
    /// byte value.
    #[test]
    fn a_block_s_first_stop_is_found_alike_with_and_without_sse2() {
        for byte in 0..=255u8 {
            for at in 0..16 {
                let mut block = [b'a'; 16];
                block[at] = byte;
                let want = stops(byte).then_some(at);
                assert_eq!(special_in_block(&block), want, "{byte:#x} at {at}");
                assert_eq!(special_in_block_portable(&block), want, "{byte:#x} at {at}");
                // A later stop does not hide an earlier one.
                block[15] = b'"';
                let first = if stops(byte) { at } else { 15 };
                assert_eq!(special_in_block(&block), Some(first));
                assert_eq!(special_in_block_portable(&block), Some(first));
            }
        }
    }

    #[test]
    fn a_string_s_end_is_found_past_whole_blocks() {
        for len in 0..70 {
            let text = format!("\"{}\"", "x".repeat(len));
            assert!(is_one_document(text.as_bytes()), "{len}");
            let control = format!("\"{}\x01{}\"", "x".repeat(len), "y".repeat(len % 17));
            assert!(!is_one_document(control.as_bytes()), "{len}");
            let escaped = format!("\"{}\\n{}\"", "x".repeat(len), "y".repeat(len % 19));
            assert!(is_one_document(escaped.as_bytes()), "{len}");
        }
    }

    #[test]
    fn nesting_has_no_depth_limit() {
        let deep = [b"[".repeat(100_000), b"]".repeat(100_000)].concat();
        assert!(is_one_document(&deep));
        assert!(serde_says(&deep));
        assert!(!is_one_document(&deep[..deep.len() - 1]));
    }

    /// JSON documents with whitespace in the places it may go.
    fn document() -> impl Strategy<Value = String> {
        let ws = prop::sample::select(vec!["", "", " ", "\n", "\t", "\r\n "]);
        let leaf = prop_oneof![
            Just("null".to_owned()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            ".{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            Just(r#""\u00e9\ud800\/\b""#.to_owned()),
        ];
        let leaf = (ws.clone(), leaf, ws.clone()).prop_map(|(a, v, b)| format!("{a}{v}{b}"));
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec((".{0,6}", inner), 0..6).prop_map(|members| {
                    let members: Vec<String> = (members.iter())
                        .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    /// One edit of a text: a byte deleted, replaced or inserted, from the bytes that
    /// matter to the grammar.
    fn edit() -> impl Strategy<Value = (u8, prop::sample::Index, u8)> {
        let byte =
            prop::sample::select(b"[]{}\":,\\/-+.0123456789eEtrufalsn \t\n\r\x00\x1fxu".to_vec());
        (0u8..3, any::<prop::sample::Index>(), byte)
    }

    fn apply(text: &str, edits: &[(u8, prop::sample::Index, u8)]) -> Vec<u8> {
        let mut bytes = text.as_bytes().to_vec();
        for (kind, at, byte) in edits {
            let at = at.index(bytes.len() + 1);
            match kind {
                0 if at < bytes.len() => {
                    bytes.remove(at);
                }
                1 if at < bytes.len() => bytes[at] = *byte,
                _ => bytes.insert(at, *byte),
            }
        }
        bytes
    }

    proptest! {
        #[test]
        fn every_generated_document_is_one(text in document()) {
            prop_assert!(serde_says(text.as_bytes()), "{text}");
            prop_assert!(is_one_document(text.as_bytes()), "{text}");
        }

        #[test]
        fn agrees_with_serde_json_on_edited_documents(
            text in document(),
            edits in prop::collection::vec(edit(), 1..4),
        ) {
            let bytes = apply(&text, &edits);
            prop_assert_eq!(
                is_one_document(&bytes),
                serde_says(&bytes),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }

        #[test]
        fn agrees_with_serde_json_on_token_soup(
            tokens in prop::collection::vec(
                prop::sample::select(vec![
                    "[", "]", "{", "}", "\"", "\\", ":", ",", "0", "1", "-", "+", ".", "e",
                    "true", "null", "false", " ", "\"a\"", "\\u00", "\\n", "é", "\u{1}",
                ]),
                0..24,
            )
        ) {
            let text = tokens.concat();
            prop_assert_eq!(is_one_document(text.as_bytes()), serde_says(text.as_bytes()), "{}", text);
        }
    }
}
