//! A per-sink circuit breaker. After `failures` consecutive retryable failures the
//! destination is considered down: deliveries wait (their attempt counters do not run,
//! so nothing floods the DLQ), buffers fill and partitions pause. After `cooldown` one
//! probe goes through; its success closes the breaker, its failure re-opens it.
//!
//! A probe that fails says nothing about the record: it is not counted against the
//! record's attempts, and the next probe goes to another waiting record. Only when the
//! same record is the one left to probe again does its failure count, so a record the
//! destination keeps refusing is still dead-lettered in the end instead of holding its
//! lane forever.
//!
//! Closed is the common case and costs two atomic loads per attempt; the lock is taken
//! only on state changes. Waiting deliveries sleep until the cooldown ends or until the
//! probe reports, so wakeups follow state changes, not the number of waiters.

use std::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::IntGauge;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

/// What [`Breaker::admit`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The breaker is closed: a normal attempt.
    Attempt,
    /// The breaker was open: this attempt probes the destination. `counts` when this
    /// record also failed the previous probe and no other record was waiting to probe.
    Probe { counts: bool },
    /// Cancelled while waiting.
    Cancelled,
}

/// Which record is asking: the breaker remembers who failed the last probe.
pub type RecordKey = (crate::egress::record::Topic, i32, i64);

struct Shared {
    state: State,
    last_failed_probe: Option<RecordKey>,
}

/// Shared by every delivery of one sink.
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    /// Mirrors `state` for the lock-free closed path.
    code: AtomicU8,
    failures: AtomicU32,
    /// Deliveries waiting for admission while the breaker is not closed.
    waiting: AtomicUsize,
    shared: Mutex<Shared>,
    /// Fired on every state change.
    changed: Notify,
    gauge: IntGauge,
    connector: std::sync::Arc<str>,
}

impl Breaker {
    /// `threshold = 0` disables the breaker.
    pub fn new(
        threshold: u32,
        cooldown: Duration,
        gauge: IntGauge,
        connector: std::sync::Arc<str>,
    ) -> Self {
        gauge.set(0);
        Self {
            threshold,
            cooldown,
            code: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            waiting: AtomicUsize::new(0),
            shared: Mutex::new(Shared {
                state: State::Closed,
                last_failed_probe: None,
            }),
            changed: Notify::new(),
            gauge,
            connector,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, state: &mut State, next: State) {
        let code = match next {
            State::Closed => CLOSED,
            State::Open { .. } => OPEN,
            State::HalfOpen => HALF_OPEN,
        };
        if std::mem::discriminant(state) != std::mem::discriminant(&next) {
            tracing::warn!(
                connector = %self.connector,
                state = ["closed", "open", "half-open"][code as usize],
                "circuit breaker changed state"
            );
        }
        *state = next;
        self.code.store(code, Ordering::Release);
        self.gauge.set(i64::from(code));
        self.changed.notify_waiters();
    }

    /// Waits until an attempt for `record` may be made.
    pub async fn admit(&self, cancel: &CancellationToken, record: &RecordKey) -> Admission {
        if self.code.load(Ordering::Acquire) == CLOSED {
            return Admission::Attempt;
        }
        // Boxed: every delivery's future holds this one's space, and only deliveries
        // that meet an open breaker wait in it.
        Box::pin(self.wait_for_admission(cancel, record)).await
    }

    /// [`Breaker::admit`] past its fast path: waits for the breaker to close, or for
    /// its turn to probe.
    async fn wait_for_admission(
        &self,
        cancel: &CancellationToken,
        record: &RecordKey,
    ) -> Admission {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(self);
        loop {
            // Registered before the state is read, so a change in between is not missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let wait = {
                let mut shared = self.lock();
                match shared.state {
                    State::Closed => return Admission::Attempt,
                    State::Open { until } if Instant::now() >= until => {
                        let repeat = shared.last_failed_probe.as_ref() == Some(record);
                        if repeat && self.waiting.load(Ordering::Acquire) > 1 {
                            // Another record takes this probe.
                            None
                        } else {
                            self.set(&mut shared.state, State::HalfOpen);
                            return Admission::Probe { counts: repeat };
                        }
                    }
                    State::Open { until } => Some(until - Instant::now()),
                    // One probe is out; its report wakes everyone.
                    State::HalfOpen => None,
                }
            };
            let sleep = async {
                match wait {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return Admission::Cancelled,
                _ = &mut changed => {}
                _ = sleep => {}
            }
        }
    }

    /// The probe was abandoned before it could report: let the next delivery probe.
    pub fn release_probe(&self) {
        let mut shared = self.lock();
        if shared.state == State::HalfOpen {
            self.set(
                &mut shared.state,
                State::Open {
                    until: Instant::now(),
                },
            );
        }
    }

    /// The destination answered (any status): it is reachable.
    pub fn healthy(&self) {
        if self.threshold == 0 {
            return;
        }
        if self.code.load(Ordering::Acquire) == CLOSED && self.failures.load(Ordering::Relaxed) == 0
        {
            return;
        }
        self.failures.store(0, Ordering::Relaxed);
        let mut shared = self.lock();
        shared.last_failed_probe = None;
        if shared.state != State::Closed {
            self.set(&mut shared.state, State::Closed);
        }
    }

    /// A retryable failure (5xx, 429, timeout, connect error); `probe` names the record
    /// when the attempt was the probe.
    pub fn failed(&self, probe: Option<&RecordKey>) {
        if self.threshold == 0 {
            return;
        }
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let code = self.code.load(Ordering::Acquire);
        if code == CLOSED && failures < self.threshold && probe.is_none() {
            return;
        }
        let mut shared = self.lock();
        if let Some(record) = probe {
            shared.last_failed_probe = Some(*record);
        }
        match shared.state {
            State::Closed if failures >= self.threshold => self.open(&mut shared.state),
            State::HalfOpen => self.open(&mut shared.state),
            _ => {}
        }
    }

    fn open(&self, state: &mut State) {
        self.set(
            state,
            State::Open {
                until: Instant::now() + self.cooldown,
            },
        );
    }
}

/// Counts a delivery waiting for admission; a leaving waiter may let a deferred one probe.
struct Waiting<'a>(&'a Breaker);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(offset: i64) -> RecordKey {
        ("t".into(), 0, offset)
    }

    fn breaker(threshold: u32, cooldown: Duration) -> (Breaker, IntGauge) {
        let g = IntGauge::new("g", "g").unwrap();
        (Breaker::new(threshold, cooldown, g.clone(), "t".into()), g)
    }

    #[tokio::test]
    async fn opens_after_threshold_and_closes_on_probe_success() {
        let (b, g) = breaker(3, Duration::from_millis(50));
        let cancel = CancellationToken::new();
        for _ in 0..3 {
            assert_eq!(b.admit(&cancel, &key(1)).await, Admission::Attempt);
            b.failed(None);
        }
        assert_eq!(g.get(), 1);
        let started = Instant::now();
        assert_eq!(
            b.admit(&cancel, &key(1)).await,
            Admission::Probe { counts: false }
        );
        assert!(started.elapsed() >= Duration::from_millis(40));
        assert_eq!(g.get(), 2);
        b.healthy();
        assert_eq!(g.get(), 0);
    }

    #[tokio::test]
    async fn cancel_interrupts_the_wait() {
        let (b, _) = breaker(1, Duration::from_secs(60));
        b.failed(None);
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert_eq!(b.admit(&cancel, &key(1)).await, Admission::Cancelled);
    }

    #[tokio::test]
    async fn an_abandoned_probe_lets_the_next_delivery_probe() {
        let (b, _) = breaker(1, Duration::from_millis(10));
        b.failed(None);
        let cancel = CancellationToken::new();
        assert_eq!(
            b.admit(&cancel, &key(1)).await,
            Admission::Probe { counts: false }
        );
        b.release_probe();
        let second = tokio::time::timeout(Duration::from_secs(1), b.admit(&cancel, &key(1))).await;
        assert_eq!(
            second.ok(),
            Some(Admission::Probe { counts: false }),
            "the breaker did not stay half-open"
        );
    }

    #[tokio::test]
    async fn waiters_behind_a_probe_go_as_soon_as_it_succeeds() {
        let (b, _) = breaker(1, Duration::from_millis(10));
        b.failed(None);
        let b = std::sync::Arc::new(b);
        let cancel = CancellationToken::new();
        assert_eq!(
            b.admit(&cancel, &key(1)).await,
            Admission::Probe { counts: false }
        );
        let waiter = {
            let (b, cancel) = (b.clone(), cancel.clone());
            tokio::spawn(async move { b.admit(&cancel, &key(1)).await })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(
            !waiter.is_finished(),
            "a waiter went while the probe was out"
        );
        b.healthy();
        let admitted = tokio::time::timeout(Duration::from_millis(500), waiter).await;
        assert_eq!(admitted.ok().and_then(|r| r.ok()), Some(Admission::Attempt));
    }

    #[tokio::test]
    async fn a_failed_probe_reopens_for_a_full_cooldown() {
        let (b, g) = breaker(1, Duration::from_millis(200));
        b.failed(None);
        b.release_probe(); // not half-open: no effect
        assert_eq!(g.get(), 1);
        let cancel = CancellationToken::new();
        let too_early =
            tokio::time::timeout(Duration::from_millis(50), b.admit(&cancel, &key(1))).await;
        assert!(too_early.is_err());
    }

    #[tokio::test]
    async fn the_same_record_failing_probe_after_probe_alone_spends_its_attempts() {
        let (b, _) = breaker(1, Duration::from_millis(10));
        let cancel = CancellationToken::new();
        b.failed(None);
        assert_eq!(
            b.admit(&cancel, &key(1)).await,
            Admission::Probe { counts: false }
        );
        b.failed(Some(&key(1)));
        assert_eq!(
            b.admit(&cancel, &key(1)).await,
            Admission::Probe { counts: true }
        );
    }

    #[tokio::test]
    async fn after_a_failed_probe_another_waiting_record_probes_next() {
        let (b, _) = breaker(1, Duration::from_millis(50));
        let b = std::sync::Arc::new(b);
        let cancel = CancellationToken::new();
        b.failed(None);
        assert_eq!(
            b.admit(&cancel, &key(1)).await,
            Admission::Probe { counts: false }
        );
        b.failed(Some(&key(1)));
        let other = {
            let (b, cancel) = (b.clone(), cancel.clone());
            tokio::spawn(async move { b.admit(&cancel, &key(2)).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let same = {
            let (b, cancel) = (b.clone(), cancel.clone());
            tokio::spawn(async move { b.admit(&cancel, &key(1)).await })
        };
        let other = tokio::time::timeout(Duration::from_secs(1), other).await;
        assert_eq!(
            other.ok().and_then(|r| r.ok()),
            Some(Admission::Probe { counts: false })
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !same.is_finished(),
            "the record that failed the last probe went again"
        );
        b.healthy();
        let same = tokio::time::timeout(Duration::from_secs(1), same).await;
        assert_eq!(same.ok().and_then(|r| r.ok()), Some(Admission::Attempt));
    }
}
