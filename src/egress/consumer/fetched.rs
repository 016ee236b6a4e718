//! The queue a sink's records are taken from, many at a time. librdkafka puts each
//! assigned partition's fetched records on a queue of the partition, which it forwards
//! to the consumer's queue by default; there every record is one event, taken with a
//! lock, four clock reads and an allocation of its own. Here each partition is forwarded
//! to a queue of the sink's instead, read in batches ([`FetchedQueue::take`]); the
//! consumer's queue keeps the rest (rebalances, commit results, errors, logs and
//! statistics), which the poll thread serves before each batch. An event arriving there
//! while the poll thread waits for records wakes it at once.
//!
//! librdkafka clears a partition's forwarding whenever it stops fetching it (revoke, lost
//! assignment) and, once an application forwarded it, never forwards it to the consumer's
//! queue again: a partition not forwarded here would keep its records to itself, and its
//! sink would stall. librdkafka starts the fetchers of a new assignment only once those
//! of the last one stopped; each partition is forwarded before it is assigned and again
//! once the assignment is applied, and every partition held is forwarded again every
//! [`REFORWARD`] ([`FetchedQueue::forward`] is idempotent), so a forwarding lost in a
//! way not foreseen costs a pause, not the partition. A record that reaches the
//! consumer's queue regardless (its partition was fetched before it was first forwarded
//! here) is taken from there, before any record here: until the consumer's queue was
//! found empty after a partition's first forwarding, no fetched record is taken while
//! that queue holds anything ([`FetchedQueue::records_may_wait_there`]).

use std::collections::HashSet;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::bindings as rdsys;

use crate::egress::record::{topic_name, TopicPartition};

/// How often every held partition is forwarded again.
pub const REFORWARD: Duration = Duration::from_secs(5);

/// A queue of the sink's own, created on its consumer. The poll thread owns it; it is
/// dropped before the consumer is (the sink's context holds it weakly).
pub struct FetchedQueue {
    queue: *mut rdsys::rd_kafka_queue_t,
    /// The consumer's own queue: watched so an event there wakes a wait here.
    consumer_queue: *mut rdsys::rd_kafka_queue_t,
    client: *mut rdsys::rd_kafka_t,
    /// Every partition forwarded here so far. Once forwarded by the application, a
    /// partition's records never go to the consumer's queue again (librdkafka keeps them
    /// on the partition's own queue while the forwarding is lost), so only a first
    /// forwarding can leave records of it behind there.
    forwarded: Mutex<HashSet<TopicPartition>>,
    /// Set by a partition's first forwarding once librdkafka may have been fetching it
    /// (its forwarding before assignment failed), cleared when the consumer's queue is
    /// next found empty: until then a record of that partition may wait there, ahead
    /// of the ones fetched here after it.
    behind: AtomicBool,
}

// SAFETY: librdkafka queues and clients are thread-safe handles; `FetchedQueue` only
// passes them to librdkafka calls.
unsafe impl Send for FetchedQueue {}
// SAFETY: as above: every use is a librdkafka call that locks what it touches.
unsafe impl Sync for FetchedQueue {}

/// Called by librdkafka, with the consumer's queue locked, when an event is put on it
/// while it was empty: ends the poll thread's wait for records.
unsafe extern "C" fn wake(_client: *mut rdsys::rd_kafka_t, fetched: *mut std::ffi::c_void) {
    rdsys::rd_kafka_queue_yield(fetched.cast());
}

impl FetchedQueue {
    /// A new queue on the consumer `client`; `None` when it has no consumer queue.
    ///
    /// # Safety
    /// `client` is a live consumer handle that outlives the queue.
    pub unsafe fn new(client: *mut rdsys::rd_kafka_t) -> Option<Self> {
        let consumer_queue = rdsys::rd_kafka_queue_get_consumer(client);
        if consumer_queue.is_null() {
            return None;
        }
        let queue = rdsys::rd_kafka_queue_new(client);
        if queue.is_null() {
            rdsys::rd_kafka_queue_destroy(consumer_queue);
            return None;
        }
        rdsys::rd_kafka_queue_cb_event_enable(consumer_queue, Some(wake), queue.cast());
        Some(Self {
            queue,
            consumer_queue,
            client,
            forwarded: Mutex::default(),
            behind: AtomicBool::new(false),
        })
    }

    /// Whether the consumer's own queue holds nothing. Found empty, it holds no record
    /// fetched before a partition was first forwarded here any more.
    pub fn consumer_queue_is_empty(&self) -> bool {
        // SAFETY: live until drop.
        let empty = unsafe { rdsys::rd_kafka_queue_length(self.consumer_queue) == 0 };
        if empty {
            self.behind.store(false, Ordering::Relaxed);
        }
        empty
    }

    /// Whether a record fetched before its partition was first forwarded here may still
    /// wait on the consumer's queue: records taken here before it would overtake it, and
    /// the watermark would pass a record the dispatcher has not seen.
    pub fn records_may_wait_there(&self) -> bool {
        self.behind.load(Ordering::Relaxed)
    }

    /// Forwards the fetched records of each of `partitions` here. `fetching`: librdkafka
    /// may have fetched them already (false only before they are assigned).
    pub fn forward<'a>(
        &self,
        partitions: impl IntoIterator<Item = &'a TopicPartition>,
        fetching: bool,
    ) {
        let mut forwarded = self.forwarded.lock().unwrap_or_else(|p| p.into_inner());
        for tp in partitions {
            let Ok(topic) = CString::new(tp.topic.as_bytes()) else {
                continue;
            };
            // Set before forwarding: the consumer's queue may be found empty only after.
            if fetching && !forwarded.contains(tp) {
                self.behind.store(true, Ordering::Relaxed);
            }
            // SAFETY: `client` is live (see `new`); the partition's queue handle is
            // released right after forwarding, which keeps the forwarding in place.
            unsafe {
                let partition =
                    rdsys::rd_kafka_queue_get_partition(self.client, topic.as_ptr(), tp.partition);
                if partition.is_null() {
                    continue;
                }
                rdsys::rd_kafka_queue_forward(partition, self.queue);
                rdsys::rd_kafka_queue_destroy(partition);
            }
            forwarded.insert(tp.clone());
        }
    }

    /// Takes fetched messages into `taken` (emptied first), as many as it has room
    /// for, waiting up to `wait` for the first.
    pub fn take(&self, taken: &mut Taken, wait: Duration) {
        taken.messages.clear();
        let raw = &mut taken.raw;
        // Waiting for a full batch would hold the first record back until the wait ends:
        // wait for one, then take what else is there. A wake-up from the consumer's
        // queue, given since that queue was last found empty, ends the first call (a
        // call that finds nothing uses it up, so none goes before); one given after it
        // is used up by the second, and that queue is served next anyway.
        let wait_ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        let mut n = self.take_raw(&mut raw[..1], wait_ms);
        if n > 0 {
            n += self.take_raw(&mut raw[n..], 0);
        }
        (taken.messages).extend(raw[..n].iter().map(|&m| Fetched(m)));
    }

    /// Tells librdkafka the application polled, taking nothing: while the poll thread
    /// waits for the dispatcher to make room, the group's `max.poll.interval.ms` must not
    /// run out (only librdkafka's consume calls count, and the consumer's own queue is
    /// polled only when it holds something).
    pub fn polled_without_taking(&self) {
        let mut none: [*mut rdsys::rd_kafka_message_t; 0] = [];
        // SAFETY: `queue` is live until drop; with room for no message and no wait,
        // librdkafka only notes the poll and writes nothing.
        unsafe { rdsys::rd_kafka_consume_batch_queue(self.queue, 0, none.as_mut_ptr(), 0) };
    }

    fn take_raw(&self, into: &mut [*mut rdsys::rd_kafka_message_t], wait_ms: i32) -> usize {
        if into.is_empty() {
            return 0;
        }
        // SAFETY: `queue` is live until drop; librdkafka writes at most `into.len()`
        // message pointers into `into`.
        let n = unsafe {
            rdsys::rd_kafka_consume_batch_queue(self.queue, wait_ms, into.as_mut_ptr(), into.len())
        };
        usize::try_from(n).unwrap_or(0).min(into.len())
    }
}

impl Drop for FetchedQueue {
    fn drop(&mut self) {
        // SAFETY: each handle is destroyed once. The wake-up is switched off first, under
        // the consumer queue's lock, so it never runs on the queue destroyed after it.
        // Partitions still forwarded here hold their own reference to the queue.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(self.consumer_queue, None, std::ptr::null_mut());
            rdsys::rd_kafka_queue_destroy(self.consumer_queue);
            rdsys::rd_kafka_queue_destroy(self.queue);
        }
    }
}

/// Messages taken from a [`FetchedQueue`] in one go, and room for the next batch.
pub struct Taken {
    raw: Vec<*mut rdsys::rd_kafka_message_t>,
    pub messages: Vec<Fetched>,
}

impl Taken {
    /// Room for up to `max` messages at a time (at least one).
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            raw: vec![std::ptr::null_mut(); max],
            messages: Vec::with_capacity(max),
        }
    }
}

/// A message taken from a [`FetchedQueue`], destroyed when dropped.
pub struct Fetched(*mut rdsys::rd_kafka_message_t);

// SAFETY: a message librdkafka handed out is owned by its holder until destroyed.
unsafe impl Send for Fetched {}

impl Fetched {
    /// The message; live until `self` drops.
    pub fn ptr(&self) -> *mut rdsys::rd_kafka_message_t {
        self.0
    }

    /// Its error code (`NO_ERROR` for a record).
    pub fn error(&self) -> rdsys::rd_kafka_resp_err_t {
        // SAFETY: live until drop.
        unsafe { (*self.0).err }
    }

    /// Its partition.
    pub fn partition(&self) -> i32 {
        // SAFETY: live until drop.
        unsafe { (*self.0).partition }
    }

    /// Its offset (the offset an error is about, when it is about one).
    pub fn offset(&self) -> i64 {
        // SAFETY: live until drop.
        unsafe { (*self.0).offset }
    }

    /// Its topic's name ("" when it has none, as some errors do not).
    pub fn topic(&self) -> &[u8] {
        // SAFETY: live until drop.
        unsafe { topic_name(self.0) }
    }
}

impl Drop for Fetched {
    fn drop(&mut self) {
        // SAFETY: handed out by `rd_kafka_consume_batch_queue`, destroyed once.
        unsafe { rdsys::rd_kafka_message_destroy(self.0) }
    }
}
