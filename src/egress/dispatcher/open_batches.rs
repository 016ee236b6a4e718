//! The dispatcher's open batches: found by where their requests go, and taken in the
//! order they opened.
//!
//! A sink whose URL or headers have placeholders may hold thousands of open batches of a
//! few records each (one per rendered URL and partition). Finding a record's batch by a
//! hash of its place, and the next batch due at the front of a queue, keeps what each
//! record costs independent of how many are open. Every batch is due a fixed `max_wait`
//! after it opened, so the order they opened in is the order they fall due.

use std::collections::VecDeque;

use foldhash::{HashMap, HashMapExt};

/// A hash of where a batch's requests go (partition state, URL, headers). Two requests
/// that may share a batch have the same place; two with the same place need not be
/// alike (a hash collision), which the caller checks.
pub(super) type Place = u64;

/// Stale queue entries tolerated beyond twice the open batches before a sweep.
const SWEEP_SLACK: usize = 64;

/// Open batches of type `B`, at most one per [`Place`].
pub(super) struct OpenBatches<B> {
    slots: Vec<Slot<B>>,
    /// The slot of each place's batch.
    by_place: HashMap<Place, usize>,
    /// Every open batch's (place, serial) in opening order, and entries of batches taken
    /// out of turn (sealed when full, purged) until they reach the front or are swept.
    /// The front entry is always an open batch's.
    opened: VecDeque<(Place, u64)>,
    next_serial: u64,
}

struct Slot<B> {
    place: Place,
    serial: u64,
    batch: B,
}

impl<B> Default for OpenBatches<B> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            by_place: HashMap::new(),
            opened: VecDeque::new(),
            next_serial: 0,
        }
    }
}

impl<B> OpenBatches<B> {
    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The index of the batch open at `place`.
    pub(super) fn at(&self, place: Place) -> Option<usize> {
        self.by_place.get(&place).copied()
    }

    pub(super) fn get(&self, i: usize) -> &B {
        &self.slots[i].batch
    }

    pub(super) fn get_mut(&mut self, i: usize) -> &mut B {
        &mut self.slots[i].batch
    }

    /// Opens `batch` at `place`; returns its index, and the batch that was open there,
    /// taken out (a place holds one batch: the caller seals the one it displaced).
    pub(super) fn open(&mut self, place: Place, batch: B) -> (usize, Option<B>) {
        let displaced = self.at(place).map(|i| self.take(i));
        let (i, serial) = (self.slots.len(), self.next_serial);
        self.next_serial += 1;
        self.slots.push(Slot {
            place,
            serial,
            batch,
        });
        self.by_place.insert(place, i);
        self.opened.push_back((place, serial));
        (i, displaced)
    }

    /// The index of the batch that opened first: the first due, as long as every batch
    /// is due the same time after it opened (`Batching`: `max_wait` from `Open::new`).
    pub(super) fn first(&self) -> Option<usize> {
        let &(place, serial) = self.opened.front()?;
        self.index_of(place, serial)
    }

    /// Takes batch `i` out. Indices of other batches may change.
    pub(super) fn take(&mut self, i: usize) -> B {
        let slot = self.slots.swap_remove(i);
        self.by_place.remove(&slot.place);
        if let Some(moved) = self.slots.get(i) {
            self.by_place.insert(moved.place, i);
        }
        while let Some(&(place, serial)) = self.opened.front() {
            if self.index_of(place, serial).is_some() {
                break;
            }
            self.opened.pop_front();
        }
        // Batches that fill before their `max_wait` leave entries behind the front: swept
        // when they outnumber the open batches, so the queue stays within twice their
        // count at a cost spread over the takes that left them.
        if self.opened.len() > 2 * self.slots.len() + SWEEP_SLACK {
            let mut opened = std::mem::take(&mut self.opened);
            opened.retain(|&(place, serial)| self.index_of(place, serial).is_some());
            self.opened = opened;
        }
        slot.batch
    }

    /// Takes out every batch `which` picks, in opening order.
    pub(super) fn take_where(&mut self, mut which: impl FnMut(&B) -> bool) -> Vec<B> {
        let picked: Vec<(Place, u64)> = (self.opened.iter().copied())
            .filter(|&(place, serial)| {
                self.index_of(place, serial)
                    .is_some_and(|i| which(&self.slots[i].batch))
            })
            .collect();
        let mut out = Vec::with_capacity(picked.len());
        for (place, serial) in picked {
            if let Some(i) = self.index_of(place, serial) {
                out.push(self.take(i));
            }
        }
        out
    }

    /// Where the batch opened as `serial` at `place` is, while it is open.
    fn index_of(&self, place: Place, serial: u64) -> Option<usize> {
        self.at(place).filter(|&i| self.slots[i].serial == serial)
    }
}

#[cfg(test)]
mod tests {
    use super::OpenBatches;

    fn opened(places: &[u64]) -> OpenBatches<u64> {
        let mut b = OpenBatches::default();
        for &p in places {
            assert_eq!(b.open(p, p * 10).1, None);
        }
        b
    }

    /// The batches in the order `first` gives them, each taken.
    fn in_due_order(b: &mut OpenBatches<u64>) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(i) = b.first() {
            out.push(b.take(i));
        }
        assert!(b.is_empty());
        out
    }

    #[test]
    fn a_batch_is_found_at_its_place_after_others_moved() {
        let mut b = opened(&[1, 2, 3, 4]);
        let two = b.at(2).unwrap();
        assert_eq!(b.take(two), 20);
        for p in [1, 3, 4] {
            assert_eq!(*b.get(b.at(p).unwrap()), p * 10);
        }
        assert_eq!(b.at(2), None);
        *b.get_mut(b.at(4).unwrap()) += 1;
        assert_eq!(*b.get(b.at(4).unwrap()), 41);
    }

    #[test]
    fn batches_fall_due_in_the_order_they_opened_whatever_was_taken_before() {
        let mut b = opened(&[5, 1, 4, 2, 3]);
        // Taken out of turn (full): the first, and one in the middle.
        let i = b.at(5).unwrap();
        b.take(i);
        let i = b.at(4).unwrap();
        b.take(i);
        assert_eq!(in_due_order(&mut b), [10, 20, 30]);
    }

    #[test]
    fn a_place_opened_again_falls_due_as_the_new_batch_not_the_old() {
        let mut b = opened(&[1, 2]);
        let i = b.at(1).unwrap();
        b.take(i); // sealed when full, then the place opens again after 2
        b.open(1, 11);
        assert_eq!(b.get(b.first().unwrap()), &20);
        assert_eq!(in_due_order(&mut b), [20, 11]);
        // Taken out of turn behind the front, its entry stays queued: the batch opened
        // there again later is still due after the ones between.
        let mut b = opened(&[0, 1, 2]);
        let i = b.at(1).unwrap();
        b.take(i);
        b.open(1, 11);
        assert_eq!(in_due_order(&mut b), [0, 20, 11]);
    }

    #[test]
    fn opening_an_occupied_place_hands_back_the_batch_that_was_there() {
        let mut b = opened(&[1, 2]);
        let (i, displaced) = b.open(1, 11);
        assert_eq!(displaced, Some(10));
        assert_eq!((b.at(1), b.get(i)), (Some(i), &11));
        assert_eq!(in_due_order(&mut b), [20, 11]);
        assert!(!opened(&[1]).is_empty());
    }

    #[test]
    fn the_queue_of_a_place_filled_and_reopened_forever_is_swept_at_its_bound() {
        let mut b = opened(&[1]); // never due while 2 fills and reopens
        let mut longest = 0;
        for round in 0..10_000 {
            b.open(2, round);
            let i = b.at(2).unwrap();
            b.take(i);
            longest = longest.max(b.opened.len());
        }
        // Stale entries are kept up to twice the open batches (one) plus the slack, and
        // swept at one more.
        assert_eq!(longest, 2 + super::SWEEP_SLACK);
        assert_eq!(in_due_order(&mut b), [10]);
    }

    #[test]
    fn taking_some_leaves_the_rest_in_opening_order() {
        let mut b = opened(&[1, 2, 3, 4, 5, 6]);
        let even = b.take_where(|v| v % 20 == 0);
        assert_eq!(even, [20, 40, 60]);
        assert_eq!(in_due_order(&mut b), [10, 30, 50]);
    }
}
