//! [`Topic`]: a topic's name, interned for the life of the process.

/// A topic's name, interned: every `Topic` of one name is the same pointer, kept for the
/// life of the process. A record carries its topic by that pointer, so copying, comparing
/// and hashing one (the dispatcher does each per record) touches no reference count and
/// reads no name: a count shared by the poll thread and the dispatcher was written from
/// both cores for every record. What is kept is one copy of each name met, never freed:
/// the broker's topics as [`Topic::new`] takes them, and at most [`NAMES_FROM_RECORDS`]
/// names read from records' contents ([`Topic::from_record`]), at most 249 bytes each
/// (about 16 MiB at the very most).
#[derive(Clone, Copy)]
pub struct Topic(&'static str);

/// Names [`Topic::from_record`] interns at most: a record's header names any topic it
/// likes, and each new one would be kept for good. Far above the topics a cluster's
/// dead letters come from (a pattern sink reading thousands of tenants' topics fits).
pub const NAMES_FROM_RECORDS: usize = 65_536;

/// Why [`Topic::from_record`] gave no topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotTaken {
    /// Not a name Kafka allows.
    Illegal,
    /// A new name, and [`NAMES_FROM_RECORDS`] were taken from records already.
    TooMany,
}

/// Every interned name, and how many came from records.
#[derive(Default)]
struct Names {
    interned: std::collections::HashSet<&'static str>,
    from_records: usize,
}

impl Names {
    fn intern(&mut self, name: &str) -> &'static str {
        let interned: &'static str = Box::leak(name.into());
        self.interned.insert(interned);
        interned
    }

    /// See [`Topic::from_record`].
    fn intern_named_by_record(&mut self, name: &str) -> Result<&'static str, NotTaken> {
        if !crate::connectors::is_topic_name(name) {
            return Err(NotTaken::Illegal);
        }
        if let Some(interned) = self.interned.get(name) {
            return Ok(interned);
        }
        if self.from_records >= NAMES_FROM_RECORDS {
            return Err(NotTaken::TooMany);
        }
        self.from_records += 1;
        Ok(self.intern(name))
    }
}

fn names() -> std::sync::MutexGuard<'static, Names> {
    static NAMES: std::sync::LazyLock<std::sync::Mutex<Names>> =
        std::sync::LazyLock::new(Default::default);
    NAMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Topic {
    /// The interned topic of this name: a name the broker gave (an assignment, a fetched
    /// record, a commit), so one of a bounded set.
    pub fn new(name: &str) -> Self {
        let mut names = names();
        match names.interned.get(name) {
            Some(interned) => Topic(interned),
            None => Topic(names.intern(name)),
        }
    }

    /// The topic a record's contents name (a dead letter's origin): only a name Kafka
    /// allows, and a new one only while fewer than [`NAMES_FROM_RECORDS`] were taken so.
    pub fn from_record(name: &str) -> Result<Self, NotTaken> {
        names().intern_named_by_record(name).map(Topic)
    }
}

impl PartialEq for Topic {
    fn eq(&self, other: &Self) -> bool {
        // Interned: one name, one pointer.
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Topic {}

impl std::hash::Hash for Topic {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_usize(self.0.as_ptr() as usize);
    }
}

impl std::ops::Deref for Topic {
    type Target = str;

    fn deref(&self) -> &str {
        self.0
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.0, f)
    }
}

// Tests only: elsewhere a `Topic` is made by name, `Topic::new` for the broker's names and
// `Topic::from_record` for a record's, so no conversion interns a name unnoticed.
#[cfg(test)]
impl From<&str> for Topic {
    fn from(name: &str) -> Self {
        Topic::new(name)
    }
}

#[cfg(test)]
impl From<&String> for Topic {
    fn from(name: &String) -> Self {
        Topic::new(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::record::TopicPartition;

    #[test]
    fn a_topic_of_one_name_is_one_topic_and_reads_as_its_name() {
        use std::hash::BuildHasher;
        let name = String::from("orders.v1");
        let (a, b, c) = (
            Topic::new("orders.v1"),
            Topic::from(&name),
            Topic::new("orders.v2"),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        let h = std::collections::hash_map::RandomState::new();
        assert_eq!(h.hash_one(a), h.hash_one(b));
        assert_eq!(
            (a.to_string(), format!("{a:?}")),
            (name.clone(), format!("{name:?}"))
        );
        assert_eq!(&*a, "orders.v1");
        assert_eq!(Topic::from_record("orders.v1"), Ok(a));
        for illegal in ["", ".", "..", "orders/v1", "ordérs", &"o".repeat(250)] {
            assert_eq!(
                Topic::from_record(illegal),
                Err(NotTaken::Illegal),
                "{illegal:?}"
            );
        }
        let tp = |topic| TopicPartition {
            topic,
            partition: 3,
        };
        assert_eq!(tp(a), tp(b));
        assert_ne!(tp(a), tp(c));
    }

    #[test]
    fn records_name_new_topics_up_to_a_bound_and_known_ones_always() {
        let mut names = Names::default();
        let known = names.intern("orders");
        for i in 0..NAMES_FROM_RECORDS {
            assert!(names.intern_named_by_record(&format!("t{i}")).is_ok());
        }
        assert_eq!(
            names.intern_named_by_record("one-more"),
            Err(NotTaken::TooMany),
            "past the bound"
        );
        assert_eq!(
            names.intern_named_by_record("not/legal"),
            Err(NotTaken::Illegal)
        );
        assert_eq!(
            names.intern_named_by_record("t7"),
            Ok(names.intern_named_by_record("t7").unwrap())
        );
        assert!(std::ptr::eq(
            names.intern_named_by_record("orders").unwrap(),
            known
        ));
    }
}
