//! The contiguous watermark of one partition: the offset to commit is the lowest record
//! received but not finished, or one past the highest received when all are finished.
//! It never passes an unfinished record, whatever order records finish in.

use std::collections::BTreeSet;
use std::ops::Range;

use super::finished::Snapshot;

/// Finished-prefix tracker for one partition.
#[derive(Debug, Default, Clone)]
pub struct Watermark {
    /// Received, not yet finished (delivered or dead-lettered with broker ack).
    unfinished: BTreeSet<i64>,
    /// One past the highest offset received.
    next: Option<i64>,
}

impl Watermark {
    /// A record was received and is now owed an outcome.
    pub fn track(&mut self, offset: i64) {
        self.unfinished.insert(offset);
        self.next = Some(self.next.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// The record at `offset` is finished. Unknown offsets are ignored.
    pub fn finish(&mut self, offset: i64) {
        self.unfinished.remove(&offset);
    }

    /// The offset to commit (the next one a restarted consumer must read), if any record
    /// has been seen. Offsets never received (compaction gaps, transaction markers) do
    /// not hold it back.
    pub fn committable(&self) -> Option<i64> {
        self.unfinished.first().copied().or(self.next)
    }

    /// The log was truncated at `from` (an unclean leader election): what was received
    /// at or above it is not in the log any more. Returns the unfinished offsets
    /// forgotten; the next record received at `from` or above is a new one.
    pub fn truncate(&mut self, from: i64) -> BTreeSet<i64> {
        let forgotten = self.unfinished.split_off(&from);
        if self.next.is_some_and(|n| n > from) {
            self.next = Some(from);
        }
        forgotten
    }

    /// One past the highest offset received.
    pub fn next(&self) -> Option<i64> {
        self.next
    }

    /// Records received and not finished.
    pub fn outstanding(&self) -> usize {
        self.unfinished.len()
    }

    /// The unfinished records from `base` (the committable offset) up to the highest
    /// received, as ranges: taken from this one state, so offset and map always agree.
    pub fn snapshot(&self, base: i64) -> Snapshot {
        let mut unfinished: Vec<Range<i64>> = Vec::new();
        for &o in self.unfinished.range(base..) {
            match unfinished.last_mut() {
                Some(r) if r.end == o => r.end = o + 1,
                _ => unfinished.push(o..o + 1),
            }
        }
        Snapshot {
            base,
            end: self.next.unwrap_or(base).max(base),
            unfinished,
            leader_epoch: -1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn holds_at_the_first_unfinished() {
        let mut w = Watermark::default();
        assert_eq!(w.committable(), None);
        for o in 10..15 {
            w.track(o);
        }
        w.finish(11);
        w.finish(12);
        assert_eq!(w.committable(), Some(10));
        w.finish(10);
        assert_eq!(w.committable(), Some(13));
        w.finish(13);
        w.finish(14);
        assert_eq!(w.committable(), Some(15));
    }

    #[test]
    fn gaps_in_offsets_do_not_block() {
        let mut w = Watermark::default();
        w.track(3);
        w.track(7);
        w.finish(3);
        assert_eq!(w.committable(), Some(7));
        w.finish(7);
        assert_eq!(w.committable(), Some(8));
    }

    #[test]
    fn a_snapshot_lists_the_unfinished_runs_from_its_base_and_no_leader_epoch() {
        let mut w = Watermark::default();
        assert_eq!(
            w.snapshot(4).end,
            4,
            "nothing seen: an empty map at the base"
        );
        for o in [2, 3, 4, 5, 6, 8, 9] {
            w.track(o);
        }
        for o in [2, 5, 9] {
            w.finish(o);
        }
        assert_eq!(
            w.snapshot(3),
            Snapshot {
                base: 3,
                end: 10,
                unfinished: vec![3..5, 6..7, 8..9],
                // The partition that owns the watermark knows the leader epoch; -1 is
                // "unknown", which a map trusts by offset alone.
                leader_epoch: -1,
            }
        );
        assert_eq!(w.outstanding(), 4);
    }

    proptest! {
        /// For any completion order (with some records never finishing), the committable
        /// offset never passes an unfinished record, and reaches the end once all finish.
        #[test]
        fn never_passes_an_unfinished_record(
            start in 0i64..1_000,
            gaps in proptest::collection::vec(1i64..4, 1..60),
            order in proptest::collection::vec(any::<prop::sample::Index>(), 0..80),
        ) {
            let offsets: Vec<i64> = gaps.iter().scan(start, |o, g| { let cur = *o; *o += g; Some(cur) }).collect();
            let mut w = Watermark::default();
            for &o in &offsets { w.track(o); }
            let mut pending = offsets.clone();
            for idx in order {
                if pending.is_empty() { break; }
                let o = pending.remove(idx.index(pending.len()));
                w.finish(o);
                let c = w.committable().unwrap();
                for &u in &pending { prop_assert!(c <= u, "committable {} passed unfinished {}", c, u); }
            }
            for o in pending.drain(..) { w.finish(o); }
            prop_assert_eq!(w.committable(), Some(offsets.last().unwrap() + 1));
            prop_assert_eq!(w.outstanding(), 0);
        }
    }
}
