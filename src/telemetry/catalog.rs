//! The event catalog of each source, kept in memory for the operator console: which event
//! types its webhooks carried (read by the source's `event_type` rule), how many of each
//! reached Kafka, and when each was first and last seen.
//!
//! Per process and since it started: the types are whatever senders put in a header or a
//! body, so the catalog is capped at [`MAX_TYPES`] types per source; webhooks of any
//! further type count in one "other" bucket, and a sender inventing types cannot grow the
//! process's memory. Nothing is evicted (a type once seen keeps its count), and nothing
//! grows past that either: each name is at most the 256 bytes the source's rule keeps
//! (`connectors::source::MAX_EVENT_TYPE`; a longer one counts as untyped), and the counts
//! are fixed-size, so a source's catalog stays within about [`MAX_TYPES`] × 400 bytes
//! however long the process runs.
//! The catalog also bounds the `event_type` label of `hookbridge_ingress_accepted_total`:
//! it decides which bucket a webhook is counted in ([`Bucket`]), and only the first
//! [`MAX_LABELLED_TYPES`] types seen get a series of their own.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Distinct event types kept per source; past it, new types count as "other".
pub const MAX_TYPES: usize = 1000;

/// Of those, the first ones seen that get a metric series of their own: every replica
/// and every restart admits its own, so the metric's cap is kept well below the
/// catalog's (the console shows all of them; Prometheus keeps every series it ever saw).
pub const MAX_LABELLED_TYPES: usize = 100;

/// How often one kind of webhook was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub count: u64,
    pub first: SystemTime,
    pub last: SystemTime,
}

impl Seen {
    fn new(now: SystemTime) -> Seen {
        Seen {
            count: 1,
            first: now,
            last: now,
        }
    }

    fn again(&mut self, now: SystemTime) {
        self.count += 1;
        self.last = now;
    }
}

fn bump(slot: &mut Option<Seen>, now: SystemTime) {
    match slot {
        Some(s) => s.again(now),
        None => *slot = Some(Seen::new(now)),
    }
}

/// What one source's catalog holds now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Each type (as received; not yet escaped), the most frequent first.
    pub types: Vec<(String, Seen)>,
    /// Webhooks of types past the cap.
    pub other: Option<Seen>,
    /// Webhooks in which the rule found no event type.
    pub untyped: Option<Seen>,
}

#[derive(Debug, Default)]
struct Types {
    /// Each type with its rank: how many types were seen before it.
    types: HashMap<String, (Seen, usize)>,
    other: Option<Seen>,
    untyped: Option<Seen>,
}

/// Where a webhook was counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bucket<'a> {
    /// Under its own type (as received, read lossily as UTF-8), with whether it is
    /// among the first [`MAX_LABELLED_TYPES`] seen (a metric series of its own).
    Type(Cow<'a, str>, bool),
    /// A type past the cap.
    Other,
    /// The rule found no event type.
    Untyped,
}

/// One source's catalog.
#[derive(Debug, Default)]
pub struct SourceCatalog(Mutex<Types>);

impl SourceCatalog {
    /// A webhook of `event_type` (`None`: the rule found none) reached Kafka; the bucket it
    /// was counted in.
    pub fn seen<'a>(&self, event_type: Option<&'a [u8]>) -> Bucket<'a> {
        self.seen_at(event_type, SystemTime::now())
    }

    fn seen_at<'a>(&self, event_type: Option<&'a [u8]>, now: SystemTime) -> Bucket<'a> {
        // A poisoned lock only means a panic elsewhere mid-update; the counts still serve.
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(raw) = event_type else {
            bump(&mut t.untyped, now);
            return Bucket::Untyped;
        };
        // Valid UTF-8 is looked up without a copy; only a new type allocates.
        let name: Cow<'a, str> = String::from_utf8_lossy(raw);
        let rank = if let Some((s, rank)) = t.types.get_mut(name.as_ref()) {
            s.again(now);
            *rank
        } else if t.types.len() < MAX_TYPES {
            let rank = t.types.len();
            t.types
                .insert(name.clone().into_owned(), (Seen::new(now), rank));
            rank
        } else {
            bump(&mut t.other, now);
            return Bucket::Other;
        };
        Bucket::Type(name, rank < MAX_LABELLED_TYPES)
    }

    pub fn snapshot(&self) -> Snapshot {
        let t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut types: Vec<(String, Seen)> =
            t.types.iter().map(|(k, v)| (k.clone(), v.0)).collect();
        types.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(&b.0)));
        Snapshot {
            types,
            other: t.other,
            untyped: t.untyped,
        }
    }
}

/// Every source's catalog, by source name.
#[derive(Debug, Default)]
pub struct EventCatalog(Mutex<HashMap<Arc<str>, Arc<SourceCatalog>>>);

impl EventCatalog {
    /// The catalog of `source`, created on first use.
    pub fn of(&self, source: &Arc<str>) -> Arc<SourceCatalog> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(source.clone()).or_default().clone()
    }

    /// Empty for a source that saw no webhook.
    pub fn snapshot(&self, source: &str) -> Snapshot {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.get(source).map(|c| c.snapshot()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn types_are_counted_with_first_and_last_seen() {
        let all = EventCatalog::default();
        let c = all.of(&Arc::from("github"));
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let t1 = t0 + Duration::from_secs(5);
        c.seen_at(Some(b"push"), t0);
        c.seen_at(Some(b"issues"), t0);
        c.seen_at(Some(b"push"), t1);
        c.seen_at(None, t1);
        c.seen_at(Some(b"\xffbad"), t1);
        let s = all.snapshot("github");
        assert_eq!(s.types[0].0, "push", "the most frequent first");
        assert_eq!(
            s.types[0].1,
            Seen {
                count: 2,
                first: t0,
                last: t1
            }
        );
        assert_eq!(s.types.len(), 3);
        assert!(s.types.iter().any(|(k, _)| k == "\u{fffd}bad"));
        assert_eq!(s.untyped.map(|u| u.count), Some(1));
        assert_eq!(s.other, None);
        assert_eq!(all.snapshot("stripe"), Snapshot::default());
    }

    /// Over a long life with senders inventing types, the catalog holds no more names,
    /// and no larger table, than once it first filled up; every webhook is still counted.
    #[test]
    fn the_catalog_stays_bounded_however_many_types_arrive() {
        let c = SourceCatalog::default();
        let now = SystemTime::now();
        let name = |n: usize| format!("{n:0>256}");
        for n in 0..MAX_TYPES {
            c.seen_at(Some(name(n).as_bytes()), now);
        }
        let (table, bytes) = {
            let t = c.0.lock().expect("lock");
            (
                t.types.capacity(),
                t.types.keys().map(String::len).sum::<usize>(),
            )
        };
        for round in 1..20 {
            for n in 0..MAX_TYPES {
                c.seen_at(Some(name(round * MAX_TYPES + n).as_bytes()), now);
                c.seen_at(Some(name(n).as_bytes()), now);
            }
        }
        let t = c.0.lock().expect("lock");
        assert_eq!(t.types.len(), MAX_TYPES);
        assert_eq!(t.types.capacity(), table, "the table did not grow");
        let now_bytes: usize = t.types.keys().map(String::len).sum();
        assert_eq!((now_bytes, bytes), (MAX_TYPES * 256, MAX_TYPES * 256));
        assert_eq!(t.other.map(|o| o.count), Some(19 * MAX_TYPES as u64));
        assert!(t.types.values().all(|s| s.0.count == 20), "counts stay");
    }

    #[test]
    fn types_past_the_cap_count_as_other() {
        let c = SourceCatalog::default();
        let now = SystemTime::now();
        for n in 0..(MAX_TYPES + 50) {
            let t = format!("type-{n}");
            let bucket = c.seen_at(Some(t.as_bytes()), now);
            let want = if n < MAX_TYPES {
                Bucket::Type(t.as_str().into(), n < MAX_LABELLED_TYPES)
            } else {
                Bucket::Other
            };
            assert_eq!(bucket, want);
        }
        assert_eq!(
            c.seen_at(Some(b"type-0"), now),
            Bucket::Type("type-0".into(), true)
        );
        assert_eq!(c.seen_at(None, now), Bucket::Untyped);
        let s = c.snapshot();
        assert_eq!(s.types.len(), MAX_TYPES);
        assert_eq!(s.other.map(|o| o.count), Some(50));
        assert_eq!(
            s.types[0],
            (
                "type-0".to_owned(),
                Seen {
                    count: 2,
                    first: now,
                    last: now
                }
            )
        );
    }
}
