//! An optional replay guard for sources whose provider signs no timestamp (GitHub,
//! Shopify, …): a captured request verifies forever. With `replay_guard`, a verified
//! request carrying a delivery id (e.g. `X-GitHub-Delivery`) already acknowledged within
//! the window **with the same body** is answered 2xx again without producing it a
//! second time: it is in Kafka already (an id is remembered only once its record was
//! acknowledged by the broker), and a provider's own redelivery of a delivered event is
//! absorbed the same way.
//!
//! Keyed on the provider's delivery id, never on the body alone: two distinct events
//! may have identical bodies, and answering the second without producing it would lose
//! it. The same id with another body is produced too — only a true replay (same id, same
//! body) is absorbed. A request without the id is produced as usual.
//!
//! Best-effort: each replica remembers only what it acknowledged itself (a replay sent
//! to another replica behind the load balancer is produced again), and a replayer who
//! can change an unsigned id header gets past it. At most [`MAX_REMEMBERED`] ids per
//! source, by SHA-256 of the id, so memory is bounded whatever the traffic.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// Delivery ids remembered per source at most; the oldest are forgotten first.
pub const MAX_REMEMBERED: usize = 100_000;

/// A SHA-256 digest (of a delivery id, or of a body).
pub type Digest = [u8; 32];

/// What identifies one delivery: its id and the body it came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    id: Digest,
    body: Digest,
}

impl Delivery {
    pub fn new(id: &[u8], body: &[u8]) -> Self {
        Self {
            id: Sha256::digest(id).into(),
            body: Sha256::digest(body).into(),
        }
    }
}

/// Deliveries acknowledged within the window, per source.
#[derive(Debug)]
pub struct ReplayGuard {
    window: Duration,
    state: Mutex<Remembered>,
}

#[derive(Debug, Default)]
struct Remembered {
    /// By id: the body it was acknowledged with, and when.
    at: HashMap<Digest, (Digest, Instant)>,
    /// In acknowledgement order, for expiry; an entry whose time no longer matches
    /// `at` was re-acknowledged later and is skipped.
    order: VecDeque<(Digest, Instant)>,
}

impl ReplayGuard {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            state: Mutex::new(Remembered::default()),
        }
    }

    /// Whether this delivery (same id, same body) was acknowledged within the window.
    pub fn seen(&self, delivery: &Delivery) -> bool {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.expire(&mut state, now);
        state
            .at
            .get(&delivery.id)
            .is_some_and(|(body, _)| *body == delivery.body)
    }

    /// Remembers a delivery that was just acknowledged.
    pub fn remember(&self, delivery: Delivery) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.expire(&mut state, now);
        while state.at.len() >= MAX_REMEMBERED {
            let Some((old, at)) = state.order.pop_front() else {
                break;
            };
            if state.at.get(&old).is_some_and(|(_, t)| *t == at) {
                state.at.remove(&old);
            }
        }
        state.at.insert(delivery.id, (delivery.body, now));
        state.order.push_back((delivery.id, now));
    }

    fn expire(&self, state: &mut Remembered, now: Instant) {
        while let Some(&(id, at)) = state.order.front() {
            if now.duration_since(at) < self.window {
                break;
            }
            state.order.pop_front();
            if state.at.get(&id).is_some_and(|(_, t)| *t == at) {
                state.at.remove(&id);
            }
        }
    }

    /// Ids remembered right now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().unwrap().at.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_id_with_the_same_body_within_the_window_is_a_replay() {
        let guard = ReplayGuard::new(Duration::from_millis(50));
        let first = Delivery::new(b"id-1", b"{\"n\":1}");
        assert!(!guard.seen(&first));
        guard.remember(first);
        assert!(guard.seen(&Delivery::new(b"id-1", b"{\"n\":1}")));
        // Identical bodies of distinct deliveries are distinct events.
        assert!(!guard.seen(&Delivery::new(b"id-2", b"{\"n\":1}")));
        // The same id with another body is not a replay either.
        assert!(!guard.seen(&Delivery::new(b"id-1", b"{\"n\":2}")));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!guard.seen(&first), "forgotten after the window");
        assert_eq!(guard.len(), 0);
    }

    #[test]
    fn memory_is_bounded_by_the_count() {
        let guard = ReplayGuard::new(Duration::from_secs(3600));
        let delivery = |i: usize| Delivery::new(&i.to_be_bytes(), b"{}");
        for i in 0..MAX_REMEMBERED + 10 {
            guard.remember(delivery(i));
        }
        assert_eq!(guard.len(), MAX_REMEMBERED);
        assert!(!guard.seen(&delivery(0)));
        assert!(guard.seen(&delivery(MAX_REMEMBERED + 9)));
    }
}
