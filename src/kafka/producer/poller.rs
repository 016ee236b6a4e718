//! The thread that serves the producer's delivery reports, asleep while there are none.
//!
//! rust-rdkafka's own poll thread (behind `FutureProducer`) calls `poll(100 ms)` in a loop,
//! and that poll truncates what is left of its deadline to whole milliseconds: librdkafka
//! returns up to a millisecond early, and the rest of each 100 ms is spent calling it
//! with a zero timeout. That is about 1% of a core per producer, idle or not (measured:
//! 0.09 CPU s per 10 s for one idle producer, nearly all in `clock_gettime`). This thread
//! instead sleeps until librdkafka reports that the queue went from empty to non-empty
//! (its queue event callback), then serves what is queued without waiting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::producer::{BaseProducer, Producer as _, ProducerContext};

/// How long the thread sleeps at most without a wake-up: only a backstop, since every
/// report that arrives on an empty queue wakes it at once.
const BACKSTOP: Duration = Duration::from_millis(100);

/// Serves `producer`'s reports on a thread of its own until dropped.
pub struct Poller {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    pub fn start<C: ProducerContext + 'static>(
        producer: Arc<BaseProducer<C>>,
    ) -> std::io::Result<Self> {
        Self::with_backstop(producer, BACKSTOP)
    }

    /// With another backstop: a test makes it an hour, so a missed wake-up shows as a
    /// report that never comes instead of one that comes late.
    pub(super) fn with_backstop<C: ProducerContext + 'static>(
        producer: Arc<BaseProducer<C>>,
        backstop: Duration,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("kafka-producer".into())
            .spawn(move || serve(&producer, &stopping, backstop))?;
        Ok(Poller {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// The thread: serves every queued event without waiting, then sleeps until woken (or
/// the backstop). An event that arrives after the queue was found empty finds it empty
/// too, so its wake-up comes, and one that arrives while it is served is served in the
/// same round: the thread never sleeps with an event queued.
/// A panic while serving one event (a bug in a callback: none is expected) is logged and
/// the thread serves on: were it to end, no send would be answered again.
fn serve<C: ProducerContext>(producer: &BaseProducer<C>, stop: &AtomicBool, backstop: Duration) {
    let queue = MainQueue::of(producer);
    loop {
        while queue.len() > 0 {
            let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                producer.poll(Duration::ZERO);
            }));
            if served.is_err() {
                tracing::error!("serving a Kafka producer event panicked; the producer serves on");
            }
        }
        if stop.load(Ordering::Acquire) {
            return;
        }
        std::thread::park_timeout(backstop);
    }
}

/// A handle on the producer's main queue (where its delivery reports arrive) that wakes
/// this thread whenever the queue goes from empty to non-empty.
struct MainQueue {
    queue: *mut rdsys::rd_kafka_queue_t,
    /// The thread to wake, owned here and handed to librdkafka as the callback's opaque.
    waker: *mut Thread,
}

impl MainQueue {
    fn of<C: ProducerContext>(producer: &BaseProducer<C>) -> Self {
        let waker = Box::into_raw(Box::new(std::thread::current()));
        // SAFETY: the client pointer is live for as long as `producer`, which outlives this
        // handle (dropped at the end of `serve`). The callback's opaque stays valid until
        // the callback is turned off in `drop`.
        let queue = unsafe {
            let queue = rdsys::rd_kafka_queue_get_main(producer.client().native_ptr());
            rdsys::rd_kafka_queue_cb_event_enable(queue, Some(wake), waker.cast());
            queue
        };
        MainQueue { queue, waker }
    }

    fn len(&self) -> usize {
        // SAFETY: `queue` is a live handle until `drop`.
        unsafe { rdsys::rd_kafka_queue_length(self.queue) }
    }
}

impl Drop for MainQueue {
    fn drop(&mut self) {
        // SAFETY: librdkafka takes the queue's lock to turn the callback off, and calls the
        // callback only under that lock, so no call is running or can start once this
        // returns: the waker can be freed, then the handle released.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(self.queue, None, std::ptr::null_mut());
            drop(Box::from_raw(self.waker));
            rdsys::rd_kafka_queue_destroy(self.queue);
        }
    }
}

/// librdkafka's queue event callback: runs on one of its threads, under the queue's lock,
/// so it only unparks the poll thread.
unsafe extern "C" fn wake(_: *mut rdsys::rd_kafka_t, opaque: *mut std::ffi::c_void) {
    // SAFETY: `opaque` is the `Thread` boxed in `MainQueue::of`, freed only after the
    // callback was turned off.
    let thread = unsafe { &*opaque.cast::<Thread>() };
    thread.unpark();
}

#[cfg(test)]
mod tests {
    use std::os::unix::thread::JoinHandleExt;

    use rdkafka::producer::DefaultProducerContext;
    use rdkafka::ClientConfig;

    use super::*;

    /// CPU time the thread behind `handle` has used so far.
    fn cpu_time(handle: &JoinHandle<()>) -> Duration {
        let mut clock: libc::clockid_t = 0;
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: the thread is alive (joined only when the poller is dropped), and both
        // out-pointers are valid.
        unsafe {
            assert_eq!(
                libc::pthread_getcpuclockid(handle.as_pthread_t(), &mut clock),
                0
            );
            assert_eq!(libc::clock_gettime(clock, &mut ts), 0);
        }
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    #[test]
    fn an_idle_producer_s_poll_thread_sleeps() {
        let producer: BaseProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .create()
            .unwrap();
        let poller = Poller::start(Arc::new(producer)).unwrap();
        let thread = poller.thread.as_ref().unwrap();
        let before = cpu_time(thread);
        // A window to measure in, not a wait for something to happen: rust-rdkafka's
        // poll loop spends about 10 ms of CPU per second here.
        std::thread::sleep(Duration::from_secs(2));
        let spent = cpu_time(thread) - before;
        assert!(
            spent < Duration::from_millis(4),
            "the poll thread used {spent:?} of CPU in 2 s with nothing to serve"
        );
        drop(poller);
    }
}
