//! The records between a sink's poll thread and its dispatcher: polled, handed over, and
//! not yet taken in, bounded by their bytes and by their poll batches. When the
//! dispatcher falls behind (its runtime busy with other sinks, a burst of finished
//! deliveries to carry out), the poll thread stops taking records from librdkafka's
//! fetched queue, whose prefetch is bounded (`queued.max.messages.kbytes`), instead of
//! the channel between the two growing with everything fetched meanwhile. A partition
//! pauses only once the dispatcher has taken its records in, so nothing else would stop
//! that growth. The bound is [`LIMIT`] bytes or [`BATCHES`] poll batches, plus the poll
//! batch taken before it was reached; records that reach the consumer's own queue (a
//! partition whose forwarding librdkafka dropped, until it is forwarded again) are
//! served with that queue's events and not held back.
//!
//! The poll thread counts a batch's bytes as it hands it over ([`Handoff::handed`]), the
//! dispatcher the same records' bytes as it takes the batch in ([`Handoff::taken`]), both
//! with [`memory::record_bytes`](super::memory::record_bytes) and whatever becomes of
//! the records: while the dispatcher runs, the two counts cancel out. Each call is one
//! poll batch, counted too.
//!
//! The poll thread also waits while the dispatcher holds it back ([`Handoff::hold`]):
//! while more records are started and waiting for a delivery slot than the destination
//! can take for a while ([`ReadyBacklog`]), the destination is the bottleneck and more
//! records would only wait too. Without that, a sink whose destination is slower than
//! Kafka (the usual case) would take records in until a partition reached its `buffer`
//! and paused, and each pause makes librdkafka drop what it had prefetched for the
//! partition and fetch it again on resume. Held back, the records stay in librdkafka's
//! bounded prefetch and are read once. The batch bound keeps what arrives after the hold
//! to [`BATCHES`] poll batches (the hold is set before the batch that reaches it counts
//! as taken in, so taking that batch in wakes no one): the poll thread outpaces the
//! dispatcher, and with 16 MiB of 1 KiB records in hand a held-back sink would still
//! fill its partitions. A partition still pauses on its own at `buffer`: a key stuck in
//! retry fills its lane, not the ready records, so it never holds the other partitions
//! back. A sink with `batch` places its ready records in batches at once and is not
//! held back: its partitions pause at `buffer`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::Duration;

/// Bytes handed over and not yet taken in at which the poll thread stops taking
/// records: about a sink's default prefetch (`queued.max.messages.kbytes` = 16 384 kB)
/// again. That is about 57 poll batches of 256 records of 1 KiB (each counted with its
/// overhead); full batches of 64 KiB records fill it at once, and the dispatcher takes
/// each in at its next turn.
pub const LIMIT: u64 = 16 << 20;

/// Poll batches handed over and not yet taken in at which the poll thread stops taking
/// records: two turns of the dispatcher, which takes up to four batches a turn.
pub const BATCHES: u64 = 8;

/// See the module docs. Shared by one poll thread and one dispatcher.
#[derive(Debug)]
pub struct Handoff {
    bytes: AtomicU64,
    limit: u64,
    /// Poll batches handed over and not taken in.
    batches: AtomicU64,
    /// The dispatcher has enough records ready to start: take nothing more for now.
    held: AtomicBool,
    /// The poll thread, woken when the dispatcher makes room (see [`Handoff::poller`]).
    poller: OnceLock<Thread>,
}

impl Handoff {
    pub fn new(limit: u64) -> Self {
        Self {
            bytes: AtomicU64::new(0),
            limit,
            batches: AtomicU64::new(0),
            held: AtomicBool::new(false),
            poller: OnceLock::new(),
        }
    }

    /// Called by the poll thread before it hands anything over: the dispatcher's
    /// [`Handoff::taken`] then always finds the thread to wake (the registration comes
    /// before every `handed`, which comes before the `taken` that reads it).
    pub fn poller(&self) {
        self.poller.get_or_init(std::thread::current);
    }

    /// The poll thread hands over records holding `bytes`.
    pub fn handed(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        self.batches.fetch_add(1, Ordering::AcqRel);
    }

    /// The dispatcher took in a batch of records holding `bytes`: a poll thread waiting
    /// for room is woken when this made some.
    pub fn taken(&self, bytes: u64) {
        let bytes_before = saturating_sub(&self.bytes, bytes);
        let batches_before = saturating_sub(&self.batches, 1);
        let was_full = bytes_before >= self.limit || batches_before >= BATCHES;
        if was_full && !self.is_full() {
            self.wake();
        }
    }

    /// On the dispatcher: holds the poll thread back (`true`), or lets it take records
    /// again (`false`, waking it when the bytes leave room too). See [`ReadyBacklog`].
    pub fn hold(&self, held: bool) {
        let was = self.held.swap(held, Ordering::AcqRel);
        if was && !held && !self.is_full() {
            self.wake();
        }
    }

    fn wake(&self) {
        if let Some(poller) = self.poller.get() {
            poller.unpark();
        }
    }

    /// Whether the poll thread must wait before taking more records: the dispatcher
    /// holds it back, or has not taken in enough of what it was handed.
    pub fn is_full(&self) -> bool {
        self.held.load(Ordering::Acquire)
            || self.bytes.load(Ordering::Acquire) >= self.limit
            || self.batches.load(Ordering::Acquire) >= BATCHES
    }

    /// Bytes handed over and not taken in.
    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }

    /// On the poll thread (after [`Handoff::poller`]): waits until the dispatcher makes
    /// room, or `at_most` (the poll thread serves rebalances and other events between
    /// waits). An unpark that comes before the park makes it return at once. True when
    /// there is room now.
    pub fn wait_for_room(&self, at_most: Duration) -> bool {
        if self.is_full() {
            std::thread::park_timeout(at_most);
        }
        !self.is_full()
    }
}

/// Takes `n` from `count`, stopping at zero (a count that wrapped below zero would read
/// full for good); the count before.
fn saturating_sub(count: &AtomicU64, n: u64) -> u64 {
    count
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
            Some(c.saturating_sub(n))
        })
        .unwrap_or_else(|c| c)
}

/// When the dispatcher holds its poll thread back, counted in the records it started
/// that wait for a ticket (`concurrency` more hold tickets and wait for a request slot,
/// and `concurrency` are in flight): once two rounds of the sink's concurrency wait for
/// a ticket, until no more than one round does. Two rounds of requests waiting take far
/// longer than the poll thread needs to wake and hand over what librdkafka has
/// prefetched, so the destination never waits for records; the round between the marks
/// keeps a sink that takes records steadily from waking its poll thread for every
/// record. Records waiting behind their lane (a key with a request in flight) are not
/// started and do not count: a key stuck in retry never holds the poll thread back.
#[derive(Debug, Clone, Copy)]
pub struct ReadyBacklog {
    /// Records waiting at which the poll thread is let go again.
    low: usize,
    /// Records waiting at which the poll thread is held back.
    high: usize,
    held: bool,
}

impl ReadyBacklog {
    /// The marks of a sink with `concurrency` requests in flight at most.
    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            low: concurrency,
            high: concurrency.saturating_mul(2),
            held: false,
        }
    }

    /// With `ready` records waiting: `Some(held)` when the poll thread is to be held back
    /// (`true`) or let go (`false`) now, `None` when that stays as it was.
    pub fn update(&mut self, ready: usize) -> Option<bool> {
        let held = if self.held {
            ready > self.low
        } else {
            ready >= self.high
        };
        (held != self.held).then(|| {
            self.held = held;
            held
        })
    }
}

impl Default for Handoff {
    fn default() -> Self {
        Self::new(LIMIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    /// How long a test waits for what should happen at once. A test that hung past it
    /// instead would read as a timeout, not a failure.
    const PATIENCE: Duration = Duration::from_secs(10);

    #[test]
    fn full_at_the_limit_and_room_again_below_it() {
        let h = Handoff::new(100);
        h.handed(99);
        assert!(!h.is_full());
        h.handed(1);
        assert!(h.is_full(), "full at the limit");
        h.taken(1);
        assert!(!h.is_full());
        h.taken(99);
        assert_eq!(h.bytes(), 0);
        assert!(h.wait_for_room(PATIENCE), "room: no wait");
    }

    #[test]
    fn full_at_the_batch_bound_whatever_their_bytes() {
        let h = Handoff::new(u64::MAX);
        for _ in 0..BATCHES - 1 {
            h.handed(1);
        }
        assert!(!h.is_full());
        h.handed(0);
        assert!(h.is_full(), "full at {BATCHES} batches");
        h.taken(1);
        assert!(!h.is_full());
    }

    #[test]
    fn held_back_reads_full_until_let_go() {
        let h = Handoff::new(100);
        h.hold(true);
        assert!(h.is_full(), "held back with nothing handed over");
        h.hold(true);
        assert!(h.is_full());
        h.hold(false);
        assert!(!h.is_full());
        h.handed(100);
        h.hold(true);
        h.hold(false);
        assert!(h.is_full(), "let go, still full by its bytes");
    }

    #[test]
    fn the_ready_backlog_holds_at_two_rounds_of_concurrency_and_lets_go_at_one() {
        let mut b = ReadyBacklog::new(64);
        assert_eq!((b.low, b.high), (64, 128));
        assert_eq!(b.update(127), None);
        assert_eq!(b.update(128), Some(true));
        assert_eq!(b.update(500), None, "still held");
        assert_eq!(b.update(65), None, "held down to the low mark");
        assert_eq!(b.update(64), Some(false));
        assert_eq!(b.update(127), None, "let go up to the high mark");
        assert_eq!(b.update(0), None);
        let one = ReadyBacklog::new(0);
        assert_eq!((one.low, one.high), (1, 2), "a concurrency of at least one");
    }

    #[test]
    fn taking_in_more_than_was_counted_never_reads_full() {
        let h = Handoff::new(100);
        h.handed(10);
        h.taken(30);
        assert_eq!(h.bytes(), 0);
        assert!(!h.is_full());
    }

    #[test]
    fn the_default_bound_is_a_default_prefetch_of_16_mib() {
        let h = Handoff::default();
        h.handed((16 << 20) - 1);
        assert!(!h.is_full());
        h.handed(1);
        assert!(h.is_full(), "full at queued.max.messages.kbytes' default");
    }

    #[test]
    fn the_poll_thread_is_woken_only_when_the_dispatcher_makes_room() {
        // The poll thread is this one: a wake-up given while it is not waiting is kept,
        // and would end its next wait at once.
        std::thread::park_timeout(Duration::ZERO); // one kept from before is used up
        let h = Handoff::new(100);
        h.poller();
        h.handed(50);
        h.taken(10); // was not full: no room made
        h.handed(160);
        h.taken(10); // 200 → 190: still full
        h.taken(90); // 190 → 100: full at exactly the limit
        assert!(h.is_full());
        not_woken(&h);
    }

    #[test]
    fn holding_back_or_letting_go_while_still_full_wakes_no_one() {
        std::thread::park_timeout(Duration::ZERO); // one kept from before is used up
        let h = Handoff::new(100);
        h.poller();
        h.handed(100);
        h.hold(true);
        h.hold(true); // held already
        h.hold(false); // let go, still full by its bytes
        assert!(h.is_full());
        not_woken(&h);
    }

    /// The poll thread (this one) waits on the full `h` for 200 ms without being woken.
    fn not_woken(h: &Handoff) {
        // A wake-up kept from a call that made no room ends the first wait at once; a
        // park may also end early for no reason, so waits go on until the time is up.
        let (wait, began) = (Duration::from_millis(200), Instant::now());
        assert!(!h.wait_for_room(wait), "no room was made");
        let first = began.elapsed();
        assert!(
            first >= Duration::from_millis(1),
            "woken after {first:?} though no room was made"
        );
        while began.elapsed() < wait {
            assert!(!h.wait_for_room(wait - began.elapsed()), "no room was made");
        }
    }

    /// Whether thread `tid` of this process is asleep (parked).
    fn asleep(tid: i32) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"));
        stat.ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('S')))
            .unwrap_or(false)
    }

    #[test]
    fn a_waiting_poll_thread_is_woken_when_the_dispatcher_makes_room() {
        let h = Arc::new(Handoff::new(100));
        h.handed(150);
        woken_by(h, |h| {
            h.taken(10);
            assert!(h.is_full(), "still full: no room made yet");
            h.taken(50);
        });
    }

    #[test]
    fn a_poll_thread_held_back_is_woken_when_the_dispatcher_lets_it_go() {
        let h = Arc::new(Handoff::new(100));
        h.hold(true);
        woken_by(h, |h| h.hold(false));
    }

    /// A poll thread waits on the full `h` until `make_room` (run once it is parked)
    /// wakes it, well before its wait's timeout.
    fn woken_by(h: Arc<Handoff>, make_room: impl FnOnce(&Handoff)) {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let poller = {
            let h = h.clone();
            std::thread::spawn(move || {
                h.poller();
                // SAFETY: gettid has no preconditions.
                let _ = tid_tx.send(unsafe { libc::gettid() });
                let (began, mut room) = (Instant::now(), false);
                while !room && began.elapsed() < PATIENCE {
                    room = h.wait_for_room(PATIENCE);
                }
                (room, began.elapsed())
            })
        };
        let tid = tid_rx.recv().unwrap();
        // Parked: the wake-up must come from `taken`.
        let began = Instant::now();
        while !asleep(tid) && !poller.is_finished() && began.elapsed() < PATIENCE {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(asleep(tid), "a full handoff parks the poll thread");
        make_room(&h);
        let (room, waited) = poller.join().unwrap();
        assert!(room);
        assert!(
            waited < PATIENCE,
            "woken by the dispatcher, not by the timeout"
        );
    }
}
