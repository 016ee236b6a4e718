//! Bytes taken from a record made printable: a record can hold terminal escape sequences,
//! invisible direction overrides or invalid UTF-8, and every operator command and console
//! page that shows one escapes it here first.

use std::fmt::Write as _;

use bytes::Bytes;

/// Whether line breaks and tabs survive escaping (a body preview) or are escaped too (a
/// one-line field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    Kept,
    Escaped,
}

/// The first `cap` bytes of `bytes` as printable text: control characters, invisible
/// direction overrides and bytes that are not UTF-8 are written as `\n`, `\u{202e}`,
/// `\xff`. `true` when the text was cut.
pub fn escape(bytes: &Bytes, cap: usize, lines: Lines) -> (String, bool) {
    let cut = bytes.len() > cap;
    let shown = &bytes[..bytes.len().min(cap)];
    let mut out = String::with_capacity(shown.len());
    for chunk in shown.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(&mut out, c, lines);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    (out, cut)
}

/// A text field (header name, topic) escaped the same way.
pub fn escape_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_char(&mut out, c, Lines::Escaped);
    }
    out
}

fn push_char(out: &mut String, c: char, lines: Lines) {
    let invisible = matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}');
    match c {
        '\n' | '\t' if lines == Lines::Kept => out.push(c),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_control() || invisible => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_printable_bytes_are_escaped() {
        let raw = Bytes::from_static(b"ok \x1b[31mred\x07\n\xff\xfe end \xe2\x80\xae");
        let (one_line, cut) = escape(&raw, usize::MAX, Lines::Escaped);
        assert!(!cut);
        assert_eq!(
            one_line,
            "ok \\u{1b}[31mred\\u{7}\\n\\xff\\xfe end \\u{202e}"
        );
        let (kept, _) = escape(&raw, usize::MAX, Lines::Kept);
        assert!(kept.contains("red\\u{7}\n\\xff"), "{kept}");
        assert_eq!(escape_str("héllo\u{0}"), "héllo\\u{0}");
    }

    #[test]
    fn the_preview_is_capped() {
        let raw = Bytes::from(vec![b'a'; 10_000]);
        let (text, cut) = escape(&raw, 4096, Lines::Kept);
        assert!(cut);
        assert_eq!(text.len(), 4096);
        // A multi-byte character cut at the cap shows as its bytes, never panics.
        let (text, cut) = escape(&Bytes::from("aé".as_bytes().to_vec()), 2, Lines::Kept);
        assert!(cut);
        assert_eq!(text, "a\\xc3");
    }
}
