//! The records between a sink's poll thread and its dispatcher: polled, handed over, and
//! not yet taken in, bounded by their bytes. When the dispatcher falls behind (its
//! runtime busy with other sinks, a burst of finished deliveries to carry out), the poll
//! thread stops taking records from librdkafka's fetched queue, whose prefetch is bounded
//! (`queued.max.messages.kbytes`), instead of the channel between the two growing with
//! everything fetched meanwhile. A partition pauses only once the dispatcher has taken
//! its records in, so nothing else would stop that growth. The bound is [`LIMIT`] plus
//! the poll batch taken before it was reached; records that reach the consumer's own
//! queue (a partition whose forwarding librdkafka dropped, until it is forwarded again)
//! are served with that queue's events and not held back.
//!
//! The poll thread counts a batch's bytes as it hands it over ([`Handoff::handed`]), the
//! dispatcher the same records' bytes as it takes the batch in ([`Handoff::taken`]), both
//! with [`memory::record_bytes`](super::memory::record_bytes) and whatever becomes of
//! the records: while the dispatcher runs, the two counts cancel out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::Duration;

/// Bytes handed over and not yet taken in at which the poll thread stops taking
/// records: about a sink's default prefetch (`queued.max.messages.kbytes` = 16 384 kB)
/// again. That is about 57 poll batches of 256 records of 1 KiB (each counted with its
/// overhead); full batches of 64 KiB records fill it at once, and the dispatcher takes
/// each in at its next turn.
pub const LIMIT: u64 = 16 << 20;

/// See the module docs. Shared by one poll thread and one dispatcher.
#[derive(Debug)]
pub struct Handoff {
    bytes: AtomicU64,
    limit: u64,
    /// The poll thread, woken when the dispatcher makes room (see [`Handoff::poller`]).
    poller: OnceLock<Thread>,
}

impl Handoff {
    pub fn new(limit: u64) -> Self {
        Self {
            bytes: AtomicU64::new(0),
            limit,
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
    }

    /// The dispatcher took in records holding `bytes`: a poll thread waiting for room
    /// is woken when this made some.
    pub fn taken(&self, bytes: u64) {
        // Saturating: a count that wrapped below zero would read full for good.
        let before = self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some(b.saturating_sub(bytes))
            })
            .unwrap_or_else(|b| b);
        if before >= self.limit && before.saturating_sub(bytes) < self.limit {
            if let Some(poller) = self.poller.get() {
                poller.unpark();
            }
        }
    }

    /// Whether the poll thread must wait before taking more records.
    pub fn is_full(&self) -> bool {
        self.bytes.load(Ordering::Acquire) >= self.limit
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
        // A wake-up kept from a `taken` that made no room ends the first wait at once; a
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
        h.taken(10);
        assert!(h.is_full(), "still full: no room made yet");
        h.taken(50);
        let (room, waited) = poller.join().unwrap();
        assert!(room);
        assert!(
            waited < PATIENCE,
            "woken by the dispatcher, not by the timeout"
        );
    }
}
