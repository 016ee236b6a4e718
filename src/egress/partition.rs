//! The pure state machine of one assigned partition: which records may start, which wait
//! behind their lane, when the partition must pause or resume, and what may be committed.
//! No tokio, rdkafka or metrics in here: every decision is a returned [`Step`], so the
//! rules are unit- and property-tested on their own and the dispatcher only carries them
//! out.
//!
//! The rules:
//! * A record is *tracked* from admission until it is *finished* (delivered, or
//!   dead-lettered with the broker's ack). The commit is the contiguous watermark:
//!   never past a tracked, unfinished record.
//! * One record in flight per lane (a key, or the whole partition); the rest of the lane
//!   waits in offset order.
//! * At `buffer` tracked records the partition pauses; records polled after the pause
//!   took effect are not held but re-read from the first of them on resume (a rewind,
//!   stamped with a new epoch so the stale copies still arriving are ignored).
//! * Records the commit metadata says were finished before (by this or another member)
//!   are finished at once, not delivered again.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::finished::{self, Encoded, FinishedMap, Snapshot};
use super::watermark::Watermark;

/// Where to re-read a partition from after records were dropped while it was paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewind {
    pub offset: i64,
    pub epoch: u64,
}

/// A strictly increasing counter shared by every partition of a sink: generations and
/// rewind epochs are drawn from it, so they only grow, even across revoke and reassignment.
#[derive(Debug, Default)]
pub struct Sequence(u64);

impl Sequence {
    pub fn advance(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// What the dispatcher must do as a consequence of a call.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<T> {
    /// Start delivering this record now.
    Start {
        offset: i64,
        lane: Option<Bytes>,
        item: T,
    },
    /// Stop fetching the partition.
    Pause,
    /// Fetch again, first seeking back to the rewind when records were dropped.
    Resume(Option<Rewind>),
}

/// How [`Partition::admit`] handled a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Tracked: started or waiting behind its lane.
    Tracked,
    /// Finished before (per the commit metadata): counted as finished, not delivered.
    Skipped,
    /// Polled after the pause took effect: not held, re-read on resume.
    Dropped,
    /// A stale copy (polled before the latest rewind) or the partition is being revoked.
    Ignored,
}

/// Why the partition is paused; it resumes when no reason is left.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct PauseReasons {
    buffer_full: bool,
    map_full: bool,
}

impl PauseReasons {
    fn any(self) -> bool {
        self.buffer_full || self.map_full
    }
}

/// One assigned partition's state. `T` is the record payload the dispatcher carries
/// (tests use `()`).
#[derive(Debug)]
pub struct Partition<T> {
    generation: u64,
    watermark: Watermark,
    /// A lane is present while its head is in flight; the queue holds what waits behind it.
    lanes: HashMap<Bytes, VecDeque<(i64, T)>>,
    in_flight: usize,
    pause: PauseReasons,
    /// First offset polled after the pause took effect, to re-read from on resume.
    dropped_from: Option<i64>,
    /// Records stamped with an older epoch were polled before the latest rewind.
    epoch: u64,
    revoked: bool,
    /// Records finished before this assignment, from the commit metadata.
    resumed: Option<FinishedMap>,
    /// Finishes since the last commit snapshot: zero means the commit would not change.
    finished_since_commit: u64,
    last_commit: Option<i64>,
    /// Records tracked before the partition pauses.
    buffer: usize,
}

impl<T> Partition<T> {
    /// A freshly assigned partition. `resumed` is what the commit metadata says was
    /// already finished at or above the committed offset.
    pub fn new(generation: u64, buffer: usize, resumed: Option<FinishedMap>) -> Self {
        Self {
            generation,
            watermark: Watermark::default(),
            lanes: HashMap::new(),
            in_flight: 0,
            pause: PauseReasons::default(),
            dropped_from: None,
            epoch: 0,
            revoked: false,
            resumed,
            finished_since_commit: 0,
            last_commit: None,
            buffer: buffer.max(1),
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Records tracked and not finished.
    pub fn outstanding(&self) -> usize {
        self.watermark.outstanding()
    }

    pub fn is_paused(&self) -> bool {
        self.pause.any()
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked
    }

    /// A polled record arrives. `lane` is its ordering lane (`None`: no order to keep).
    pub fn admit(
        &mut self,
        offset: i64,
        epoch: u64,
        lane: Option<Bytes>,
        item: T,
        out: &mut Vec<Step<T>>,
    ) -> Admitted {
        if self.revoked || epoch < self.epoch {
            // Never tracked, so the watermark cannot pass it.
            return Admitted::Ignored;
        }
        if self.pause.any() {
            self.dropped_from = Some(self.dropped_from.map_or(offset, |d| d.min(offset)));
            return Admitted::Dropped;
        }
        self.watermark.track(offset);
        if self.resumed.as_ref().is_some_and(|m| m.is_finished(offset)) {
            // Its lane's earlier records were finished before it (per-lane order), so
            // skipping it cannot reorder anything.
            self.watermark.finish(offset);
            self.finished_since_commit += 1;
            return Admitted::Skipped;
        }
        if self.watermark.outstanding() >= self.buffer && !self.pause.buffer_full {
            self.set_pause(|p| p.buffer_full = true, out);
        }
        match lane {
            Some(lane) => match self.lanes.get_mut(&lane) {
                Some(waiting) => waiting.push_back((offset, item)),
                None => {
                    self.lanes.insert(lane.clone(), VecDeque::new());
                    self.start(offset, Some(lane), item, out);
                }
            },
            None => self.start(offset, None, item, out),
        }
        Admitted::Tracked
    }

    fn start(&mut self, offset: i64, lane: Option<Bytes>, item: T, out: &mut Vec<Step<T>>) {
        self.in_flight += 1;
        out.push(Step::Start { offset, lane, item });
    }

    /// A record was delivered or dead-lettered with the broker's ack. Starts the next
    /// record of its lane and resumes the partition when the buffer has room again.
    pub fn finish(
        &mut self,
        offset: i64,
        lane: Option<Bytes>,
        seq: &mut Sequence,
        out: &mut Vec<Step<T>>,
    ) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.watermark.finish(offset);
        self.finished_since_commit += 1;
        if self.revoked {
            return; // no resume, no rewind, nothing new started
        }
        if self.pause.buffer_full && self.watermark.outstanding() <= self.buffer / 2 {
            self.set_pause(|p| p.buffer_full = false, out);
            self.rewind_if_resumed(seq, out);
        }
        let Some(lane) = lane else { return };
        let next = match self.lanes.get_mut(&lane) {
            Some(waiting) => waiting.pop_front(),
            None => None,
        };
        match next {
            Some((offset, item)) => self.start(offset, Some(lane), item, out),
            None => {
                self.lanes.remove(&lane);
            }
        }
    }

    /// A delivery stopped without finishing (revoke, shutdown). Nothing of its lane may
    /// overtake it: the lane stays occupied, so its waiting and later records stay
    /// unfinished too (the watermark holds at the abandoned record anyway).
    pub fn abandon(&mut self, lane: Option<Bytes>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(waiting) = lane.and_then(|l| self.lanes.get_mut(&l)) {
            waiting.clear();
        }
    }

    /// The partition is being handed to another member: start nothing more. Waiting
    /// records are forgotten unfinished, so the watermark stays below them.
    pub fn revoke(&mut self) {
        self.revoked = true;
        self.lanes.clear();
    }

    /// The commit metadata grew close to its budget: pause until it shrinks, so the map
    /// never outgrows what the broker stores (and the commit never stalls on it). With
    /// nothing outstanding there is nothing whose finishing could shrink it: never pause.
    pub fn set_map_full(&mut self, full: bool, seq: &mut Sequence, out: &mut Vec<Step<T>>) {
        let full = full && self.watermark.outstanding() > 0;
        if self.revoked || self.pause.map_full == full {
            return;
        }
        self.set_pause(|p| p.map_full = full, out);
        if !full {
            self.rewind_if_resumed(seq, out);
        }
    }

    fn set_pause(&mut self, change: impl FnOnce(&mut PauseReasons), out: &mut Vec<Step<T>>) {
        let before = self.pause.any();
        change(&mut self.pause);
        if !before && self.pause.any() {
            out.push(Step::Pause);
        }
    }

    /// After the last pause reason cleared: resume, re-reading dropped records.
    fn rewind_if_resumed(&mut self, seq: &mut Sequence, out: &mut Vec<Step<T>>) {
        if self.pause.any() {
            return;
        }
        let rewind = self.dropped_from.take().map(|offset| {
            self.epoch = seq.advance();
            Rewind {
                offset,
                epoch: self.epoch,
            }
        });
        out.push(Step::Resume(rewind));
    }

    /// The commit position and the finished records above it, from one state, when it
    /// differs from the last one taken (or `force`).
    pub fn commit_snapshot(&mut self, force: bool) -> Option<Snapshot> {
        let offset = self.watermark.committable()?;
        if !force && self.finished_since_commit == 0 && self.last_commit == Some(offset) {
            return None;
        }
        self.finished_since_commit = 0;
        self.last_commit = Some(offset);
        if self.resumed.as_ref().is_some_and(|m| offset >= m.end()) {
            self.resumed = None; // every record it covered has been seen again
        }
        Some(self.snapshot(offset))
    }

    /// The periodic commit: position and encoded map within `budget`, and back-pressure
    /// on the map's size (pause above three quarters of the budget, resume below half).
    /// What an earlier owner's map knew beyond this member's reach is cut rather than
    /// paused for: a paused partition cannot re-read those records, so the pause would
    /// never end. Cutting it only means those records are redelivered after a crash.
    pub fn commit(
        &mut self,
        force: bool,
        budget: usize,
        seq: &mut Sequence,
        out: &mut Vec<Step<T>>,
    ) -> Option<(Snapshot, Encoded)> {
        let mut snap = self.commit_snapshot(force)?;
        let mut encoded = finished::encode(&snap, budget);
        let high = budget / 4 * 3;
        if encoded.full_len > high && self.resumed.take().is_some() {
            snap = self.snapshot(snap.base);
            encoded = finished::encode(&snap, budget);
        }
        if encoded.full_len > high {
            self.set_map_full(true, seq, out);
        } else if encoded.full_len < budget / 2 {
            self.set_map_full(false, seq, out);
        }
        Some((snap, encoded))
    }

    fn snapshot(&self, offset: i64) -> Snapshot {
        let mut snap = self.watermark.snapshot(offset);
        if let Some(earlier) = &self.resumed {
            snap.extend_with(earlier);
        }
        snap
    }

    /// The final position when the partition is given up (drain done or timed out).
    pub fn final_snapshot(&self) -> Option<Snapshot> {
        let offset = self.watermark.committable()?;
        Some(self.snapshot(offset))
    }
}

#[cfg(test)]
mod tests;
