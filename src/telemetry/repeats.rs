//! How often one kind of report is written: the first at once, then at most one per
//! window, carrying how many like it were held back since the last one written. While a
//! broker is unreachable librdkafka reports its reconnection failures, with "all brokers
//! down" and the consumer's error for each, dozens of lines a second from each client;
//! while a dead-letter topic is missing, every record waiting on it fails its write on
//! each retry. One line per kind per window says the same.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// At most one report of a kind per this long, for every report hookbridge limits.
pub const EVERY: Duration = Duration::from_secs(30);

/// Kinds remembered at most: reports are keyed by error and broker, a handful in
/// practice; past this, kinds whose window has passed are forgotten.
const KINDS: usize = 256;

/// The reports written of each kind, for one client.
#[derive(Debug)]
pub struct Repeats {
    every: Duration,
    seen: HashMap<String, Seen>,
}

#[derive(Debug)]
struct Seen {
    written_at: Instant,
    held_back: u64,
}

impl Repeats {
    /// At most one report of a kind per `every`.
    pub fn new(every: Duration) -> Self {
        Repeats {
            every,
            seen: HashMap::new(),
        }
    }

    /// Whether a report of `kind` at `now` is written: `Some(n)` with the `n` reports of
    /// its kind held back since the last one written, `None` when this one is held back.
    pub fn admit(&mut self, kind: &str, now: Instant) -> Option<u64> {
        if let Some(seen) = self.seen.get_mut(kind) {
            if now.saturating_duration_since(seen.written_at) < self.every {
                seen.held_back += 1;
                return None;
            }
            let held_back = std::mem::take(&mut seen.held_back);
            seen.written_at = now;
            return Some(held_back);
        }
        if self.seen.len() >= KINDS {
            let every = self.every;
            (self.seen).retain(|_, s| now.saturating_duration_since(s.written_at) < every);
        }
        if self.seen.len() < KINDS {
            let seen = Seen {
                written_at: now,
                held_back: 0,
            };
            self.seen.insert(kind.to_owned(), seen);
        }
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(30);

    #[test]
    fn a_kind_is_written_once_per_window_with_the_count_held_back() {
        let (mut r, t0) = (Repeats::new(EVERY), Instant::now());
        assert_eq!(r.admit("down", t0), Some(0));
        assert_eq!(r.admit("down", t0 + Duration::from_millis(50)), None);
        assert_eq!(r.admit("down", t0 + EVERY - Duration::from_millis(1)), None);
        assert_eq!(r.admit("down", t0 + EVERY), Some(2));
        assert_eq!(r.admit("down", t0 + EVERY + Duration::from_secs(1)), None);
        // The window counts from the last one written.
        assert_eq!(
            r.admit("down", t0 + 2 * EVERY - Duration::from_secs(1)),
            None
        );
        assert_eq!(r.admit("down", t0 + 2 * EVERY), Some(2));
        assert_eq!(r.admit("down", t0 + 10 * EVERY), Some(0));
    }

    #[test]
    fn kinds_are_counted_apart() {
        let (mut r, t0) = (Repeats::new(EVERY), Instant::now());
        assert_eq!(r.admit("a", t0), Some(0));
        assert_eq!(r.admit("b", t0), Some(0));
        assert_eq!(r.admit("a", t0), None);
        assert_eq!(r.admit("b", t0 + EVERY), Some(0));
        assert_eq!(r.admit("a", t0 + EVERY), Some(1));
    }

    #[test]
    fn past_the_limit_of_kinds_new_ones_are_still_written() {
        let (mut r, t0) = (Repeats::new(EVERY), Instant::now());
        for k in 0..KINDS {
            assert_eq!(r.admit(&k.to_string(), t0), Some(0));
        }
        // Every kind is in its window: a new one is written, not remembered.
        assert_eq!(r.admit("new", t0), Some(0));
        assert_eq!(r.admit("new", t0), Some(0));
        assert_eq!(r.seen.len(), KINDS);
        // Once their windows have passed, old kinds make room.
        assert_eq!(r.admit("new", t0 + EVERY), Some(0));
        assert_eq!(r.admit("new", t0 + EVERY), None);
        assert_eq!(r.seen.len(), 1);
    }
}
