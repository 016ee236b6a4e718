//! A per-sink circuit breaker. After `failures` consecutive retryable failures the
//! destination is considered down: deliveries wait (their attempt counters do not run,
//! so nothing floods the DLQ), buffers fill and partitions pause. After `cooldown` one
//! probe goes through; its success closes the breaker, its failure re-opens it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::IntGauge;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// What [`Breaker::admit`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The breaker is closed: a normal attempt.
    Attempt,
    /// The breaker was open: this attempt probes the destination. Its failure says the
    /// destination is still down, not that the record is bad, so it is not counted
    /// against the record's attempts.
    Probe,
    /// Cancelled while waiting.
    Cancelled,
}

/// Shared by every delivery of one sink.
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
    gauge: IntGauge,
}

impl Breaker {
    /// `threshold = 0` disables the breaker.
    pub fn new(threshold: u32, cooldown: Duration, gauge: IntGauge) -> Self {
        gauge.set(0);
        Self {
            threshold,
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
            gauge,
        }
    }

    fn set(&self, state: &mut State, next: State, connector: &str) {
        let code = match next {
            State::Closed { .. } => 0,
            State::Open { .. } => 1,
            State::HalfOpen => 2,
        };
        if std::mem::discriminant(state) != std::mem::discriminant(&next) {
            tracing::warn!(
                connector,
                state = ["closed", "open", "half-open"][code as usize],
                "circuit breaker changed state"
            );
        }
        *state = next;
        self.gauge.set(code);
    }

    /// Waits until an attempt may be made.
    pub async fn admit(&self, cancel: &CancellationToken, connector: &str) -> Admission {
        loop {
            let wait = {
                let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                match *state {
                    State::Closed { .. } => return Admission::Attempt,
                    State::Open { until } if Instant::now() >= until => {
                        self.set(&mut state, State::HalfOpen, connector);
                        return Admission::Probe;
                    }
                    State::Open { until } => until - Instant::now(),
                    // One probe is out; everyone else checks back shortly.
                    State::HalfOpen => Duration::from_millis(100),
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return Admission::Cancelled,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The probe was abandoned before it could report: let the next delivery probe.
    pub fn release_probe(&self, connector: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if *state == State::HalfOpen {
            self.set(
                &mut state,
                State::Open {
                    until: Instant::now(),
                },
                connector,
            );
        }
    }

    /// Reports an attempt's result: `Some(true)` success, `Some(false)` retryable failure,
    /// `None` for results that say nothing about the destination's health.
    pub fn record(&self, healthy: Option<bool>, connector: &str) {
        if self.threshold == 0 {
            return;
        }
        let Some(ok) = healthy else { return };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let next = match (*state, ok) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 >= self.threshold => State::Open {
                until: Instant::now() + self.cooldown,
            },
            (State::Closed { failures }, false) => State::Closed {
                failures: failures + 1,
            },
            (State::HalfOpen, false) => State::Open {
                until: Instant::now() + self.cooldown,
            },
            (open @ State::Open { .. }, false) => open,
        };
        self.set(&mut state, next, connector);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_after_threshold_and_closes_on_probe_success() {
        let g = IntGauge::new("g", "g").unwrap();
        let b = Breaker::new(3, Duration::from_millis(50), g.clone());
        let cancel = CancellationToken::new();
        for _ in 0..3 {
            assert_eq!(b.admit(&cancel, "t").await, Admission::Attempt);
            b.record(Some(false), "t");
        }
        assert_eq!(g.get(), 1);
        let started = Instant::now();
        assert_eq!(b.admit(&cancel, "t").await, Admission::Probe);
        assert!(started.elapsed() >= Duration::from_millis(40));
        assert_eq!(g.get(), 2);
        b.record(Some(true), "t");
        assert_eq!(g.get(), 0);
    }

    #[tokio::test]
    async fn cancel_interrupts_the_wait() {
        let b = Breaker::new(1, Duration::from_secs(60), IntGauge::new("g", "g").unwrap());
        b.record(Some(false), "t");
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert_eq!(b.admit(&cancel, "t").await, Admission::Cancelled);
    }

    #[tokio::test]
    async fn an_abandoned_probe_lets_the_next_delivery_probe() {
        let b = Breaker::new(
            1,
            Duration::from_millis(10),
            IntGauge::new("g", "g").unwrap(),
        );
        b.record(Some(false), "t");
        let cancel = CancellationToken::new();
        assert_eq!(b.admit(&cancel, "t").await, Admission::Probe);
        b.release_probe("t");
        let second = tokio::time::timeout(Duration::from_secs(1), b.admit(&cancel, "t")).await;
        assert_eq!(
            second.ok(),
            Some(Admission::Probe),
            "the breaker did not stay half-open"
        );
    }
}
