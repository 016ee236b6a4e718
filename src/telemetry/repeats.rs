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
/// practice; past this, kinds whose window has passed are forgotten, and while all of
/// them are in their window every further kind shares one window (a destination that
/// varies its error text must not get a line per request).
const KINDS: usize = 256;

/// The reports written of each kind, for one client.
#[derive(Debug)]
pub struct Repeats {
    every: Duration,
    seen: HashMap<String, Seen>,
    /// The window shared by kinds that found no room.
    unremembered: Option<Seen>,
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
            unremembered: None,
        }
    }

    /// Whether a report of `kind` at `now` is written: `Some(n)` with the `n` reports of
    /// its kind held back since the last one written, `None` when this one is held back.
    /// A kind that finds no room counts in one window shared by all such kinds, its `n`
    /// being the reports of any of them held back.
    pub fn admit(&mut self, kind: &str, now: Instant) -> Option<u64> {
        let every = self.every;
        if let Some(seen) = self.seen.get_mut(kind) {
            return seen.admit(now, every);
        }
        if self.seen.len() >= KINDS {
            (self.seen).retain(|_, s| now.saturating_duration_since(s.written_at) < every);
        }
        if self.seen.len() >= KINDS {
            return match &mut self.unremembered {
                Some(shared) => shared.admit(now, every),
                None => {
                    self.unremembered = Some(Seen::written(now));
                    Some(0)
                }
            };
        }
        self.seen.insert(kind.to_owned(), Seen::written(now));
        Some(0)
    }
}

impl Seen {
    fn written(now: Instant) -> Self {
        Seen {
            written_at: now,
            held_back: 0,
        }
    }

    /// One more report of this window's kind at `now`.
    fn admit(&mut self, now: Instant, every: Duration) -> Option<u64> {
        if now.saturating_duration_since(self.written_at) < every {
            self.held_back += 1;
            return None;
        }
        self.written_at = now;
        Some(std::mem::take(&mut self.held_back))
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
    fn past_the_limit_of_kinds_new_ones_share_one_window() {
        let (mut r, t0) = (Repeats::new(EVERY), Instant::now());
        for k in 0..KINDS {
            assert_eq!(r.admit(&k.to_string(), t0), Some(0));
        }
        // Every kind is in its window: the first new one is written, not remembered,
        // and every further new kind is held back with it, whatever its text.
        assert_eq!(r.admit("new", t0), Some(0));
        assert_eq!(r.admit("new", t0), None);
        for k in 0..1000 {
            assert_eq!(r.admit(&format!("varied {k}"), t0), None, "{k}");
        }
        assert_eq!(r.seen.len(), KINDS);
        // Once their windows have passed, old kinds make room.
        assert_eq!(r.admit("new", t0 + EVERY), Some(0));
        assert_eq!(r.admit("new", t0 + EVERY), None);
        assert_eq!(r.seen.len(), 1);
        // The shared window, next used once its time is up, tells what it held back.
        for k in 0..KINDS {
            r.admit(&format!("again {k}"), t0 + 2 * EVERY);
        }
        assert_eq!(r.admit("another", t0 + 2 * EVERY), Some(1001));
    }
}
