//! One stream of reports limited per kind ([`Repeats`]), shared by the threads that
//! write it: a client's librdkafka reports, a sink's failed dead-letter writes, its
//! requests that got no answer.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use super::repeats::{Repeats, EVERY};

/// How much of a report's text tells its kind: an error a remote party words (h2's
/// GOAWAY data) can vary past it, and each kind is remembered.
const KIND_CHARS: usize = 160;

/// Reports of one stream, each kind written at most once per [`EVERY`].
#[derive(Debug)]
pub struct Reports(Mutex<Repeats>);

impl Default for Reports {
    fn default() -> Self {
        Reports(Mutex::new(Repeats::new(EVERY)))
    }
}

impl Reports {
    /// Whether a report of `kind` is written now: `Some` with how many like it were held
    /// back since the last one written.
    pub fn admit(&self, kind: &str) -> Option<u64> {
        let end = (0..=kind.len().min(KIND_CHARS))
            .rev()
            .find(|&i| kind.is_char_boundary(i));
        let kind = &kind[..end.unwrap_or(0)];
        let mut repeats = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        repeats.admit(kind, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts alike in their first characters are one kind; the cut never splits a
    /// character.
    #[test]
    fn a_kind_is_its_text_s_start() {
        let r = Reports::default();
        let start = "é".repeat(KIND_CHARS);
        assert_eq!(r.admit(&format!("{start} one")), Some(0));
        assert_eq!(r.admit(&format!("{start} two")), None, "the same kind");
        assert_eq!(r.admit("another"), Some(0));
    }
}
