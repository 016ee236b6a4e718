//! The queue a sink's records are taken from, many at a time. librdkafka puts each
//! assigned partition's fetched records on a queue of the partition, which it forwards
//! to the consumer's queue by default; there every record is one event, taken with a
//! lock, three clock reads and an allocation of its own (about a tenth of a batching
//! sink's CPU). Here each partition is forwarded to a queue of the sink's instead, read
//! in batches ([`FetchedQueue::take`]); the consumer's queue keeps the rest: rebalances,
//! commit results, errors and statistics, which the poll thread serves between batches.
//!
//! librdkafka clears a partition's forwarding whenever it stops fetching it (revoke, lost
//! assignment) and, once an application forwarded it, never forwards it to the consumer's
//! queue again: a partition not forwarded here would keep its records to itself, and its
//! sink would stall. So each partition is forwarded before it is assigned, again once the
//! assignment is applied, and every partition held is forwarded again every
//! [`REFORWARD`] ([`FetchedQueue::forward`] is idempotent). A record that reaches the
//! consumer's queue regardless is taken from there like any other.

use std::ffi::CString;
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::TopicPartitionList;

/// How often every held partition is forwarded again.
pub const REFORWARD: Duration = Duration::from_secs(1);

/// A queue of the sink's own, created on its consumer, destroyed on drop (before the
/// consumer is: the poll thread owns it).
pub struct FetchedQueue {
    queue: *mut rdsys::rd_kafka_queue_t,
    client: *mut rdsys::rd_kafka_t,
}

// SAFETY: librdkafka queues and clients are thread-safe handles; `FetchedQueue` only
// passes them to librdkafka calls.
unsafe impl Send for FetchedQueue {}
// SAFETY: as above: every use is a librdkafka call that locks what it touches.
unsafe impl Sync for FetchedQueue {}

impl FetchedQueue {
    /// A new queue on the client `client`.
    ///
    /// # Safety
    /// `client` is a live consumer handle that outlives the queue.
    pub unsafe fn new(client: *mut rdsys::rd_kafka_t) -> Option<Self> {
        let queue = rdsys::rd_kafka_queue_new(client);
        (!queue.is_null()).then_some(Self { queue, client })
    }

    /// Forwards the fetched records of every partition of `tpl` here.
    pub fn forward(&self, tpl: &TopicPartitionList) {
        for e in tpl.elements() {
            let Ok(topic) = CString::new(e.topic()) else {
                continue;
            };
            // SAFETY: `client` is live (see `new`); the partition's queue handle is
            // released right after forwarding, which keeps the forwarding in place.
            unsafe {
                let partition =
                    rdsys::rd_kafka_queue_get_partition(self.client, topic.as_ptr(), e.partition());
                if partition.is_null() {
                    continue;
                }
                rdsys::rd_kafka_queue_forward(partition, self.queue);
                rdsys::rd_kafka_queue_destroy(partition);
            }
        }
    }

    /// Takes fetched messages into `taken` (emptied first), as many as it has room
    /// for: those already here at once, else waits up to `wait` for the first.
    pub fn take(&self, taken: &mut Taken, wait: Duration) {
        taken.messages.clear();
        let raw = &mut taken.raw;
        // Waiting for a full batch would hold the first record back until the wait
        // ends: wait for one, then take what else is there.
        let mut n = self.take_raw(raw, 0);
        if n == 0 {
            let wait_ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
            n = self.take_raw(&mut raw[..1], wait_ms);
            if n > 0 {
                n += self.take_raw(&mut raw[n..], 0);
            }
        }
        (taken.messages).extend(raw[..n].iter().map(|&m| Fetched(m)));
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
        // SAFETY: created by `rd_kafka_queue_new`, destroyed once. Partitions still
        // forwarded here hold their own reference to it.
        unsafe { rdsys::rd_kafka_queue_destroy(self.queue) }
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

    /// Its topic's name ("" when it has none, as some errors do not).
    pub fn topic(&self) -> &str {
        // SAFETY: live until drop; the topic handle and its name live as long as the
        // message holds it.
        unsafe {
            let rkt = (*self.0).rkt;
            if rkt.is_null() {
                return "";
            }
            let name = rdsys::rd_kafka_topic_name(rkt);
            if name.is_null() {
                return "";
            }
            std::ffi::CStr::from_ptr(name).to_str().unwrap_or("")
        }
    }
}

impl Drop for Fetched {
    fn drop(&mut self) {
        // SAFETY: handed out by `rd_kafka_consume_batch_queue`, destroyed once.
        unsafe { rdsys::rd_kafka_message_destroy(self.0) }
    }
}
