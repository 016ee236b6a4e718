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
//!   waits in offset order. A batching sink may join the lane's next waiting records to
//!   the request its started record is in ([`Partition::take_next`]): they leave together
//!   in offset order, and nothing more of the lane starts until all of them finished.
//! * At `buffer` tracked records the partition pauses. Records already fetched when the
//!   pause is asked for keep arriving for a moment (the consumer polls ahead of the
//!   dispatcher): up to half of `buffer` more are held, so a pause normally costs no
//!   re-read. Past that, and for every record polled while the memory budget is spent,
//!   a record is not held but re-read from the first one dropped on resume (a rewind,
//!   stamped with a new epoch so the stale copies still arriving are ignored); once one
//!   record is dropped every later one is too, so nothing behind a dropped record is
//!   tracked before it. (librdkafka itself drops what it had prefetched for a paused
//!   partition and fetches it again on resume: that cost stays.) `buffer` and the process-wide memory budget (the dispatcher says
//!   when it is spent, and when it has room again) are the only pauses: the
//!   finished-offset map never pauses a partition. A map over its budget is cut at the end (the records past the cut read
//!   as unfinished, redelivered after a crash), so one key stuck in retry costs a longer
//!   map, not the partition.
//! * Records the commit metadata says were finished before (by this or another member)
//!   are finished at once, not delivered again.
//! * A record of a newer partition leader epoch below the highest offset seen means the
//!   log was truncated there (an unclean leader election) and its offsets reused: what
//!   was seen at or above it is forgotten, and the old records still delivering there
//!   finish without finishing the new record at their offset.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};

use foldhash::{HashMap, HashMapExt};

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

/// An ordering lane named by a keyed hash of its key: eight bytes to copy, hash and
/// compare per record, where the key itself is a shared buffer whose count goes up and
/// down at each copy (and whose first copy allocates). Two keys of one hash share a
/// lane: their records are kept in order together, which orders more than asked, and a
/// key stuck in retry holds the other. The hash is SipHash with keys drawn at random from
/// the OS (std's `RandomState`), a keyed function no producer can find a colliding pair
/// of keys for without them; the lookups keyed by a `LaneId` use a faster hasher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LaneId(u64);

impl LaneId {
    /// The one lane of a partition kept in order as a whole (`ordering = "partition"`).
    pub const PARTITION: LaneId = LaneId(0);

    /// The lane of records with this key.
    pub fn of(seed: &std::collections::hash_map::RandomState, key: &[u8]) -> Self {
        LaneId(seed.hash_one(key))
    }
}

/// What the dispatcher must do as a consequence of a call.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<T, L> {
    /// Start delivering this record now.
    Start {
        offset: i64,
        lane: Option<L>,
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
    /// Polled while paused and past what a pause holds: not held, re-read on resume.
    Dropped,
    /// A stale copy: polled before the latest rewind, so it is read again after it.
    Stale,
    /// The partition is being revoked.
    Ignored,
}

/// One assigned partition's state. `T` is the record payload the dispatcher carries
/// (tests use `()`), `L` what names an ordering lane (the dispatcher's [`LaneId`]; tests
/// use the key's bytes).
#[derive(Debug)]
pub struct Partition<T, L> {
    generation: u64,
    watermark: Watermark,
    /// A lane is present while records of it are in flight.
    lanes: HashMap<L, Lane<T>>,
    in_flight: usize,
    /// Paused because `buffer` records are tracked; resumes at half.
    buffer_full: bool,
    /// Paused because the process-wide memory budget was spent; resumes when the
    /// dispatcher says it has room again.
    memory_full: bool,
    /// First offset polled after the pause took effect, to re-read from on resume.
    dropped_from: Option<i64>,
    /// Records stamped with an older epoch were polled before the latest rewind.
    epoch: u64,
    revoked: bool,
    /// Records finished before this assignment, from the commit metadata.
    resumed: Option<FinishedMap>,
    /// Highest partition leader epoch of the records admitted; -1 while unknown.
    leader_epoch: i32,
    /// Finishes since the last commit snapshot: zero means the commit would not change.
    finished_since_commit: u64,
    last_commit: Option<i64>,
    /// Records tracked before the partition pauses.
    buffer: usize,
    /// Offsets whose old record (from before a log truncation) is still started or
    /// waiting in its lane, with how many: the next finish at such an offset is the old
    /// record's and does not finish the new record there.
    stale: HashMap<i64, u32>,
    /// Queues of lanes that emptied, kept to be the next new lanes' (see [`SPARE_LANES`]).
    spare: Vec<VecDeque<(i64, T)>>,
    /// False once the log was found to start over or be truncated: the consumer's
    /// position only ever rises, so it may still stand at the old log's end, past new
    /// records not yet read. Positions count for nothing until the next assignment.
    positions_trusted: bool,
}

/// Emptied lane queues kept per partition, each of at most [`SPARE_CAPACITY`] records:
/// a busy lane empties and starts again many times a second (a batch takes everything
/// waiting in it), and a fresh queue grows by reallocating as its records arrive. They
/// are dropped whenever the partition has no lane in flight, so an idle partition keeps
/// none (a busy one at most 16 × 64 × the size of a waiting record, about 144 KiB).
const SPARE_LANES: usize = 16;
const SPARE_CAPACITY: usize = 64;

/// One ordering lane while records of it are in flight.
#[derive(Debug)]
struct Lane<T> {
    /// Records of the lane started and not yet ended: one, or several joined into one
    /// batch by [`Partition::take_next`].
    started: u32,
    /// What waits behind them, in offset order.
    waiting: VecDeque<(i64, T)>,
    /// A record of the lane stopped without finishing: the lane is never released, so
    /// nothing of it overtakes that record.
    abandoned: bool,
}

impl<T> Lane<T> {
    /// A lane with one record started, queueing in `waiting` (empty).
    fn started(waiting: VecDeque<(i64, T)>) -> Self {
        debug_assert!(waiting.is_empty(), "a spare lane queue holds records");
        Self {
            started: 1,
            waiting,
            abandoned: false,
        }
    }
}

impl<T, L: Hash + Eq + Clone> Partition<T, L> {
    /// A freshly assigned partition. `resumed` is what the commit metadata says was
    /// already finished at or above the committed offset.
    pub fn new(generation: u64, buffer: usize, resumed: Option<FinishedMap>) -> Self {
        Self {
            generation,
            watermark: Watermark::default(),
            lanes: HashMap::new(),
            in_flight: 0,
            buffer_full: false,
            memory_full: false,
            dropped_from: None,
            epoch: 0,
            revoked: false,
            resumed,
            leader_epoch: -1,
            finished_since_commit: 0,
            last_commit: None,
            buffer: buffer.max(1),
            stale: HashMap::new(),
            spare: Vec::new(),
            positions_trusted: true,
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
        self.buffer_full || self.memory_full
    }

    /// Paused (among other reasons, maybe) for the memory budget.
    pub fn is_memory_paused(&self) -> bool {
        self.memory_full
    }

    /// The process-wide memory budget is spent: pause until [`Partition::memory_freed`],
    /// or until every record it holds is finished.
    /// A partition with nothing outstanding holds no memory, so it never pauses for it.
    pub fn memory_spent(&mut self, out: &mut Vec<Step<T, L>>) {
        if self.revoked || self.memory_full || self.watermark.outstanding() == 0 {
            return;
        }
        if !self.is_paused() {
            out.push(Step::Pause);
        }
        self.memory_full = true;
    }

    /// The memory budget has room again.
    pub fn memory_freed(&mut self, seq: &mut Sequence, out: &mut Vec<Step<T, L>>) {
        if !self.memory_full || self.revoked {
            return;
        }
        self.memory_full = false;
        if !self.buffer_full {
            self.resume(seq, out);
        }
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked
    }

    /// A polled record arrives. `lane` is its ordering lane (`None`: no order to keep).
    /// Its partition leader epoch is unknown (see [`Partition::admit_from_leader`]).
    pub fn admit(
        &mut self,
        offset: i64,
        epoch: u64,
        lane: Option<L>,
        item: T,
        out: &mut Vec<Step<T, L>>,
    ) -> Admitted {
        self.admit_from_leader(offset, epoch, -1, lane, item, out)
    }

    /// [`Partition::admit`] for a record written under partition leader epoch
    /// `leader_epoch` (-1: unknown). A record of a newer epoch than an earlier owner's
    /// map knew means an unclean leader election reused offsets: the map is dropped and
    /// everything from there is delivered.
    pub fn admit_from_leader(
        &mut self,
        offset: i64,
        epoch: u64,
        leader_epoch: i32,
        lane: Option<L>,
        item: T,
        out: &mut Vec<Step<T, L>>,
    ) -> Admitted {
        // Neither is tracked, so the watermark cannot pass them.
        if self.revoked {
            return Admitted::Ignored;
        }
        if epoch < self.epoch {
            return Admitted::Stale;
        }
        if self.must_drop() {
            self.dropped_from = Some(self.dropped_from.map_or(offset, |d| d.min(offset)));
            return Admitted::Dropped;
        }
        if self.leader_epoch >= 0
            && leader_epoch > self.leader_epoch
            && self.watermark.next().is_some_and(|n| offset < n)
        {
            self.truncated(offset);
        }
        if self.starts_over(offset) {
            // What was received is all finished: nothing is forgotten, the commit only
            // comes back down to the new records (at worst some are delivered twice).
            self.truncated(offset);
            self.leader_epoch = -1;
        }
        // Below an earlier owner's map: the position was reset under it (the topic made
        // again); the map speaks of the old log's records.
        if self.resumed.as_ref().is_some_and(|m| offset < m.base()) {
            self.resumed = None;
        }
        self.watermark.track(offset);
        self.leader_epoch = self.leader_epoch.max(leader_epoch);
        if self
            .resumed
            .as_ref()
            .is_some_and(|m| m.rewritten(leader_epoch))
        {
            self.resumed = None;
        }
        if self.resumed.as_ref().is_some_and(|m| m.is_finished(offset)) {
            // Its lane's earlier records were finished before it (per-lane order), so
            // skipping it cannot reorder anything.
            self.watermark.finish(offset);
            self.finished_since_commit += 1;
            return Admitted::Skipped;
        }
        if self.watermark.outstanding() >= self.buffer && !self.buffer_full {
            if !self.is_paused() {
                out.push(Step::Pause);
            }
            self.buffer_full = true;
        }
        match lane {
            Some(lane) => match self.lanes.get_mut(&lane) {
                Some(running) => running.waiting.push_back((offset, item)),
                None => {
                    let waiting = self.spare.pop().unwrap_or_default();
                    self.lanes.insert(lane.clone(), Lane::started(waiting));
                    self.start(offset, Some(lane), item, out);
                }
            },
            None => self.start(offset, None, item, out),
        }
        Admitted::Tracked
    }

    /// The consumer's position reached `to` under flow epoch `epoch`, and every record
    /// below it was received (the poll thread reads the position after handing over all
    /// it took). A transaction's commit or abort marker, and aborted records, are never
    /// received: without this the commit would stay below the last marker, and a topic
    /// written by transactions would never show zero lag. Only while nothing is
    /// unfinished, the position is not from before the latest rewind, the partition is
    /// not being revoked, and its log never started over in this assignment (see
    /// `positions_trusted`). (A dropped record is never the last thing owed: records are
    /// dropped only while some are unfinished, and the last of them to finish asks for
    /// the rewind, whose new epoch makes earlier positions stale.) True when the offset
    /// to commit moved.
    pub fn passed(&mut self, to: i64, epoch: u64) -> bool {
        if self.revoked || epoch < self.epoch || !self.positions_trusted {
            return false;
        }
        // Moved, the offset differs from the last commit's: the next snapshot is taken.
        self.watermark.pass(to)
    }

    /// Whether a record at `offset` says the log starts over below what was finished:
    /// the topic was deleted and created again, or the log cut and the consumer's
    /// position reset. Left alone, the commit would stay at the old log's end, and a
    /// restart would resume past new records never delivered.
    ///
    /// Only while every record received is finished. A record can also arrive below
    /// unfinished ones of the same log (the poll thread takes fetched records ahead of
    /// one held in the consumer's own queue under a flood of events); forgetting those
    /// would let the commit pass them, so such a record is tracked below them, as
    /// before. The cost is a known gap: a log that starts over under unfinished records
    /// (a topic made again while its destination is down) is not recognised, an old
    /// record and a new one at the same offset share one entry, and the commit can pass
    /// new records not yet received. Only a reset the consumer reports
    /// (`auto.offset.reset=error` puts one on the partition's queue) tells the two apart.
    fn starts_over(&self, offset: i64) -> bool {
        self.watermark.outstanding() == 0
            && self.watermark.committable().is_some_and(|c| offset < c)
    }

    /// Whether a record polled now is dropped (re-read on resume) rather than tracked.
    /// After a buffer pause, the records fetched before it took effect are held up to
    /// `buffer + buffer / 2`; a memory pause holds nothing more. Once one record was
    /// dropped, every later one is too: the watermark must never see a record tracked
    /// above one that was not.
    fn must_drop(&self) -> bool {
        self.dropped_from.is_some()
            || self.memory_full
            || (self.buffer_full && self.watermark.outstanding() >= self.hold_limit())
    }

    /// Records tracked at most while paused for `buffer`.
    fn hold_limit(&self) -> usize {
        self.buffer + self.buffer / 2
    }

    /// The log was truncated at `from` and new records written from there: nothing seen
    /// at or above it may be finished, skipped or mapped for the new records. The old
    /// records still started or waiting there run on (their lanes keep their order), but
    /// their outcomes count for nothing.
    fn truncated(&mut self, from: i64) {
        self.resumed = None;
        self.positions_trusted = false;
        for offset in self.watermark.truncate(from) {
            *self.stale.entry(offset).or_default() += 1;
        }
    }

    /// One old record at `offset` (from before a truncation) ended; false when none.
    fn forget_stale(&mut self, offset: i64) -> bool {
        let Some(n) = self.stale.get_mut(&offset) else {
            return false;
        };
        *n -= 1;
        if *n == 0 {
            self.stale.remove(&offset);
        }
        true
    }

    /// Keeps an emptied lane's queue (a lane is removed only once nothing waits in it)
    /// for a new lane, within [`SPARE_LANES`] and [`SPARE_CAPACITY`].
    fn keep_spare(&mut self, waiting: VecDeque<(i64, T)>) {
        let capacity = waiting.capacity();
        if self.spare.len() < SPARE_LANES && capacity > 0 && capacity <= SPARE_CAPACITY {
            self.spare.push(waiting);
        }
    }

    fn start(&mut self, offset: i64, lane: Option<L>, item: T, out: &mut Vec<Step<T, L>>) {
        self.in_flight += 1;
        out.push(Step::Start { offset, lane, item });
    }

    /// A record was delivered or dead-lettered with the broker's ack. Starts the next
    /// record of its lane and resumes the partition when the buffer has room again.
    pub fn finish(
        &mut self,
        offset: i64,
        lane: Option<L>,
        seq: &mut Sequence,
        out: &mut Vec<Step<T, L>>,
    ) {
        self.in_flight = self.in_flight.saturating_sub(1);
        // An old record from before a truncation does not finish the new one at its offset.
        if !self.forget_stale(offset) {
            self.watermark.finish(offset);
            self.finished_since_commit += 1;
        }
        if self.revoked {
            return; // no resume, no rewind, nothing new started
        }
        if self.buffer_full && self.watermark.outstanding() <= self.buffer / 2 {
            self.buffer_full = false;
            if !self.memory_full {
                self.resume(seq, out);
            }
        }
        // Holding nothing, it takes records again even while the budget is spent: a
        // partition whose key is stuck holding most of it must not stop every other.
        if self.memory_full && self.watermark.outstanding() == 0 {
            self.memory_freed(seq, out);
        }
        let Some(lane) = lane else { return };
        let Some(running) = self.lanes.get_mut(&lane) else {
            return;
        };
        running.started = running.started.saturating_sub(1);
        if running.started > 0 || running.abandoned {
            return; // the rest of its batch is still in flight, or the lane is held
        }
        match running.waiting.pop_front() {
            Some((offset, item)) => {
                running.started = 1;
                self.start(offset, Some(lane), item, out);
            }
            None => {
                if let Some(emptied) = self.lanes.remove(&lane) {
                    self.keep_spare(emptied.waiting);
                }
                // Nothing in flight: an idle partition holds no spare queues.
                if self.lanes.is_empty() {
                    self.spare = Vec::new();
                }
            }
        }
    }

    /// The offset and payload of the record that waits first in `lane`, if the lane has
    /// records started and may take more into their batch (see [`Partition::take_next`]).
    pub fn peek_next(&self, lane: &L) -> Option<(i64, &T)> {
        if self.revoked {
            return None;
        }
        let running = self
            .lanes
            .get(lane)
            .filter(|l| !l.abandoned && l.started > 0)?;
        running
            .waiting
            .front()
            .map(|(offset, item)| (*offset, item))
    }

    /// Joins the record that waits first in `lane` to the batch the lane's started
    /// records are in, and returns it; it is in flight from now on. The caller sends it
    /// in the same request, after them: the lane's order holds, and its next record
    /// starts only once every record of the batch has finished.
    pub fn take_next(&mut self, lane: &L) -> Option<(i64, T)> {
        self.peek_next(lane)?;
        let running = self.lanes.get_mut(lane)?;
        let next = running.waiting.pop_front()?;
        running.started += 1;
        self.in_flight += 1;
        Some(next)
    }

    /// A delivery stopped without finishing (revoke, shutdown). Nothing of its lane may
    /// overtake it: the lane stays occupied, so its waiting and later records stay
    /// unfinished too (the watermark holds at the abandoned record anyway).
    pub fn abandon(&mut self, offset: i64, lane: Option<L>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        // An old record from before a truncation that ends here will not finish: the new
        // record at its offset must not wait for it.
        self.forget_stale(offset);
        if let Some(running) = lane.and_then(|l| self.lanes.get_mut(&l)) {
            running.started = running.started.saturating_sub(1);
            running.abandoned = true;
            running.waiting.clear();
        }
    }

    /// The partition is being handed to another member: start nothing more. Waiting
    /// records are forgotten unfinished, so the watermark stays below them.
    pub fn revoke(&mut self) {
        self.revoked = true;
        self.lanes.clear();
    }

    /// Resumes fetching, re-reading the records dropped while paused.
    fn resume(&mut self, seq: &mut Sequence, out: &mut Vec<Step<T, L>>) {
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

    /// The periodic commit: position and the map encoded within `budget`. A map over
    /// budget is cut, never paused for: pausing would stop the whole partition behind
    /// one stuck key. An earlier owner's map is kept whole (it was written within the
    /// budget); what it knows past this member's reach is what the cut drops first.
    pub fn commit(&mut self, force: bool, budget: usize) -> Option<(Snapshot, Encoded)> {
        let snap = self.commit_snapshot(force)?;
        let encoded = finished::encode(&snap, budget);
        Some((snap, encoded))
    }

    fn snapshot(&self, offset: i64) -> Snapshot {
        let mut snap = self.watermark.snapshot(offset);
        snap.leader_epoch = self.leader_epoch;
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
