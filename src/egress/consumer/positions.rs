//! When the consumer's position in a partition may be reported to the dispatcher. The
//! position is one past the last message taken from it: a record, a transaction's
//! commit or abort marker (never handed out), or an error about an offset (a batch this
//! build cannot read, a corrupt one) — librdkafka moves the position past the offset an
//! error names just as past a record. Past an error, the position says nothing of what
//! was read, so it is not reported until a record at or above that offset was taken.

use foldhash::HashMap;

use crate::egress::record::TopicPartition;

/// Partitions whose last message taken about an offset was an error, with that offset.
/// Empty nearly always: a record costs one check of that.
#[derive(Debug, Default)]
pub(super) struct PastErrors {
    at: HashMap<TopicPartition, i64>,
}

impl PastErrors {
    /// An error about `offset` of `tp` was taken.
    pub(super) fn error(&mut self, tp: TopicPartition, offset: i64) {
        let at = self.at.entry(tp).or_insert(offset);
        *at = (*at).max(offset);
    }

    /// A record at `offset` of `tp` was taken.
    pub(super) fn record(&mut self, tp: &TopicPartition, offset: i64) {
        if !self.at.is_empty() && self.at.get(tp).is_some_and(|&at| offset >= at) {
            self.at.remove(tp);
        }
    }

    /// Whether `tp`'s position may be past an error rather than a record.
    pub(super) fn hides(&self, tp: &TopicPartition) -> bool {
        self.at.contains_key(tp)
    }
}
