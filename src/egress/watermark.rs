//! The contiguous watermark of one partition: the offset to commit is the lowest record
//! received but not finished, or one past the highest received when all are finished.
//! It never passes an unfinished record, whatever order records finish in.

use std::collections::VecDeque;
use std::ops::Range;

use super::finished::Snapshot;

/// Finished-prefix tracker for one partition.
///
/// The offsets received, ascending, each marked finished or not. Records arrive in
/// offset order, so receiving one is a push at the back; the finished ones at the front
/// leave at once, so the front is the lowest unfinished. Finishing one is a binary
/// search in one contiguous list: no tree node is allocated or freed per record.
/// Finished ones behind an unfinished one wait for it, and are swept out once they
/// outnumber the unfinished (a record stuck for hours must not hold every later one).
#[derive(Debug, Default, Clone)]
pub struct Watermark {
    /// Received offsets, ascending, with whether each is finished (delivered or
    /// dead-lettered with broker ack); the front is unfinished whenever there is one.
    received: VecDeque<(i64, bool)>,
    /// How many of `received` are unfinished.
    unfinished: usize,
    /// One past the highest offset received.
    next: Option<i64>,
}

/// Finished offsets kept behind an unfinished one before they are swept out, at least.
const SWEEP_FLOOR: usize = 64;

impl Watermark {
    /// A record was received and is now owed an outcome.
    pub fn track(&mut self, offset: i64) {
        match self.received.back() {
            Some(&(last, _)) if offset <= last => match self.position(offset) {
                Ok(i) => {
                    if std::mem::replace(&mut self.received[i].1, false) {
                        self.unfinished += 1;
                    }
                }
                Err(i) => {
                    self.received.insert(i, (offset, false));
                    self.unfinished += 1;
                }
            },
            _ => {
                self.received.push_back((offset, false));
                self.unfinished += 1;
            }
        }
        self.next = Some(self.next.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// The record at `offset` is finished. Unknown offsets are ignored.
    pub fn finish(&mut self, offset: i64) {
        let Ok(i) = self.position(offset) else {
            return;
        };
        if std::mem::replace(&mut self.received[i].1, true) {
            return;
        }
        self.unfinished -= 1;
        while self.received.front().is_some_and(|&(_, finished)| finished) {
            self.received.pop_front();
        }
        self.sweep();
    }

    /// Drops the finished offsets once they outnumber the unfinished ones they wait
    /// behind, and gives back room a burst left: what is kept, capacity included, stays
    /// proportional to what is owed.
    fn sweep(&mut self) {
        if self.received.len() > SWEEP_FLOOR.max(2 * self.unfinished) {
            self.received.retain(|&(_, finished)| !finished);
        }
        let len = self.received.len().max(SWEEP_FLOOR);
        if self.received.capacity() > 16 * len {
            self.received.shrink_to(2 * len);
        }
    }

    /// Where `offset` is in `received` (`Err`: where it would go). Offsets there are
    /// distinct and ascending, so one is at most `offset - front` places in, and exactly
    /// there while the partition has no gaps (no compaction, transaction markers or
    /// sweep): that place is tried first, and a search runs only when it holds another.
    fn position(&self, offset: i64) -> Result<usize, usize> {
        let guess = (self.received.front())
            .and_then(|&(front, _)| offset.checked_sub(front))
            .and_then(|d| usize::try_from(d).ok());
        if let Some(i) = guess {
            if self.received.get(i).is_some_and(|&(o, _)| o == offset) {
                return Ok(i);
            }
        }
        self.received.binary_search_by_key(&offset, |&(o, _)| o)
    }

    /// The offset to commit (the next one a restarted consumer must read), if any record
    /// has been seen. Offsets never received (compaction gaps, transaction markers) do
    /// not hold it back.
    pub fn committable(&self) -> Option<i64> {
        self.received.front().map(|&(o, _)| o).or(self.next)
    }

    /// The log was truncated at `from` (an unclean leader election): what was received
    /// at or above it is not in the log any more. Returns the unfinished offsets
    /// forgotten, ascending; the next record received at `from` or above is a new one.
    pub fn truncate(&mut self, from: i64) -> Vec<i64> {
        let at = self.received.partition_point(|&(o, _)| o < from);
        let forgotten: Vec<i64> = (self.received.drain(at..))
            .filter(|&(_, finished)| !finished)
            .map(|(o, _)| o)
            .collect();
        self.unfinished -= forgotten.len();
        self.sweep();
        if self.next.is_some_and(|n| n > from) {
            self.next = Some(from);
        }
        forgotten
    }

    /// The consumer read up to `to` and every record below it was received: what it
    /// skipped was not records (transaction markers, aborted records). With nothing
    /// unfinished, the offset to commit moves up to `to`; otherwise nothing changes.
    /// True when it moved.
    pub fn pass(&mut self, to: i64) -> bool {
        if self.unfinished > 0 || self.committable().is_some_and(|c| c >= to) {
            return false;
        }
        self.received.clear();
        self.next = Some(to);
        true
    }

    /// One past the highest offset received.
    pub fn next(&self) -> Option<i64> {
        self.next
    }

    /// Records received and not finished.
    pub fn outstanding(&self) -> usize {
        self.unfinished
    }

    /// The unfinished records from `base` (the committable offset) up to the highest
    /// received, as ranges: taken from this one state, so offset and map always agree.
    pub fn snapshot(&self, base: i64) -> Snapshot {
        let mut unfinished: Vec<Range<i64>> = Vec::new();
        let from = self.received.partition_point(|&(o, _)| o < base);
        for &(o, _) in self
            .received
            .range(from..)
            .filter(|(_, finished)| !finished)
        {
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

    /// A watermark that received offsets `0..n`, none finished.
    fn tracking(n: i64) -> Watermark {
        let mut w = Watermark::default();
        for o in 0..n {
            w.track(o);
        }
        w
    }

    #[test]
    fn passes_to_a_position_only_with_nothing_unfinished() {
        let mut w = Watermark::default();
        assert!(w.pass(3));
        assert_eq!(w.committable(), Some(3));
        w.track(3);
        w.track(4);
        assert!(!w.pass(6));
        w.finish(4);
        assert!(!w.pass(6));
        assert_eq!(w.committable(), Some(3));
        w.finish(3);
        assert!(!w.pass(5), "already there");
        assert!(w.pass(6));
        assert_eq!(
            (w.committable(), w.next(), w.outstanding()),
            (Some(6), Some(6), 0)
        );
        w.track(6);
        assert_eq!(w.committable(), Some(6));
    }

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

    /// A burst gives its room back once it finished: a partition that once held
    /// thousands of records in flight does not keep room for them while idle.
    #[test]
    fn room_a_burst_took_is_given_back_when_it_finished() {
        let mut w = tracking(15_000);
        for o in (1..15_000).chain([0]) {
            w.finish(o);
        }
        assert_eq!((w.outstanding(), w.received.len()), (0, 0));
        // Some room is kept for the records to come: no reallocation at the next few.
        let room = w.received.capacity();
        assert!(
            (2 * SWEEP_FLOOR..=16 * SWEEP_FLOOR).contains(&room),
            "{room}"
        );
    }

    /// Finished offsets wait behind an unfinished one without a sweep until they
    /// outnumber what is unfinished (a sweep per finish would cost the whole list each
    /// time), and no longer: a record stuck while thousands after it finish holds a few.
    #[test]
    fn finished_offsets_are_swept_once_they_outnumber_the_unfinished() {
        let mut w = tracking(1_000);
        for o in 1..=400 {
            w.finish(o);
        }
        assert_eq!(
            w.received.len(),
            1_000,
            "400 finished behind 600 unfinished"
        );
        let mut w = tracking(128);
        for o in 1..=64 {
            w.finish(o);
        }
        assert_eq!(
            w.received.len(),
            128,
            "as many finished as unfinished: kept"
        );
        w.finish(65);
        assert_eq!(w.received.len(), 63, "one more finished: swept");
        for o in 128..10_000 {
            w.track(o);
            w.finish(o);
        }
        assert_eq!(w.committable(), Some(0));
        assert!(w.received.len() <= SWEEP_FLOOR + 63, "{}", w.received.len());
    }

    /// Room is given back in one step, to twice what is kept, when it is more than
    /// sixteen times that: a burst finished in order leaves room for a few records
    /// more, and up to sixteen times the floor is kept as it is.
    #[test]
    fn room_is_given_back_to_twice_what_is_kept() {
        let mut w = tracking(15_000);
        for o in 0..14_000 {
            w.finish(o);
        }
        let (room, kept) = (w.received.capacity(), w.received.len());
        assert!((2 * kept..16 * kept).contains(&room), "{room} for {kept}");
        for o in 14_000..15_000 {
            w.finish(o);
        }
        let room = w.received.capacity();
        assert!(room >= 2 * SWEEP_FLOOR, "{room}");
        let mut w = tracking(1_000);
        let room = w.received.capacity();
        assert!((1_000..=16 * SWEEP_FLOOR).contains(&room), "{room}");
        for o in 0..1_000 {
            w.finish(o);
        }
        assert_eq!(
            w.received.capacity(),
            room,
            "within sixteen times the floor: kept"
        );
    }

    /// A partition that settles at fewer records in flight after a burst keeps its room
    /// while that number is within sixteenfold: room is not given back and taken again
    /// as the number moves.
    #[test]
    fn room_is_kept_while_the_records_in_flight_stay_within_sixteenfold() {
        let mut w = tracking(1_000);
        for o in 0..900 {
            w.finish(o);
        }
        let room = w.received.capacity();
        assert!(room >= 1_000, "{room}");
        for o in 1_000..20_000 {
            w.track(o);
            w.finish(o - 100);
            assert_eq!(w.received.capacity(), room, "at {o}");
        }
    }

    /// One step of a partition's life, for the model test.
    #[derive(Debug, Clone)]
    enum Op {
        Track(i64),
        Finish(i64),
        Truncate(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0i64..200).prop_map(Op::Track),
            6 => (0i64..200).prop_map(Op::Finish),
            1 => (0i64..200).prop_map(Op::Truncate),
        ]
    }

    proptest! {
        /// Whatever arrives in whatever order (duplicates, offsets below ones received,
        /// truncations), the watermark answers as the set of unfinished offsets it
        /// stands for: its committable offset, count, truncations and maps.
        #[test]
        fn answers_as_the_set_of_unfinished_offsets(
            ops in proptest::collection::vec(op(), 0..400),
            ascending in proptest::collection::vec(1i64..3, 0..300),
        ) {
            // Mostly in order, as records arrive, then anything.
            let in_order = ascending.iter().scan(0i64, |o, g| { *o += g; Some(Op::Track(*o)) });
            let finishes = ascending.iter().scan(0i64, |o, g| { *o += g; Some(Op::Finish(*o)) }).skip(1).step_by(2);
            let mut w = Watermark::default();
            let mut unfinished = std::collections::BTreeSet::new();
            let mut next: Option<i64> = None;
            for op in in_order.chain(finishes).chain(ops) {
                match op {
                    Op::Track(o) => {
                        w.track(o);
                        unfinished.insert(o);
                        next = Some(next.map_or(o + 1, |n| n.max(o + 1)));
                    }
                    Op::Finish(o) => {
                        w.finish(o);
                        unfinished.remove(&o);
                    }
                    Op::Truncate(from) => {
                        let forgotten: Vec<i64> = unfinished.split_off(&from).into_iter().collect();
                        if next.is_some_and(|n| n > from) {
                            next = Some(from);
                        }
                        prop_assert_eq!(w.truncate(from), forgotten);
                    }
                }
                prop_assert_eq!(w.committable(), unfinished.first().copied().or(next));
                prop_assert_eq!(w.outstanding(), unfinished.len());
                prop_assert_eq!(w.next(), next);
                // Finished offsets kept behind unfinished ones stay proportional to those.
                let kept_finished = w.received.len() - unfinished.len();
                prop_assert!(kept_finished <= SWEEP_FLOOR.max(unfinished.len()));
                prop_assert!(w.received.capacity() <= 16 * SWEEP_FLOOR.max(w.received.len()) + 1);
            }
            if let Some(base) = w.committable() {
                let snap = w.snapshot(base);
                let listed: Vec<i64> = snap.unfinished.iter().flat_map(|r| r.clone()).collect();
                let want: Vec<i64> = unfinished.range(base..).copied().collect();
                prop_assert_eq!(listed, want);
            }
        }
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
