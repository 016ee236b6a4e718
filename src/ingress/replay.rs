//! An optional replay guard for sources whose provider signs no timestamp (GitHub,
//! Shopify, …): a captured request verifies forever, so a verified body identical to one
//! already acknowledged within `replay_window` is answered 2xx again without producing
//! it a second time. It is already in Kafka, so nothing is lost; a provider's own
//! redelivery of a delivered event is absorbed the same way.
//!
//! Best-effort: each replica remembers only what it acknowledged itself (a replay sent
//! to another replica behind the load balancer is produced again), at most
//! [`MAX_REMEMBERED`] bodies per source, by SHA-256 of the raw body. Memory is bounded
//! by that count, whatever the traffic.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Bodies remembered per source at most; the oldest are forgotten first.
pub const MAX_REMEMBERED: usize = 100_000;

/// The digest a body is remembered by.
pub type BodyDigest = [u8; 32];

/// Bodies acknowledged within the window, per source.
#[derive(Debug)]
pub struct ReplayGuard {
    window: Duration,
    state: Mutex<Remembered>,
}

#[derive(Debug, Default)]
struct Remembered {
    at: HashMap<BodyDigest, Instant>,
    /// In acknowledgement order, for expiry; an entry whose time no longer matches
    /// `at` was re-acknowledged later and is skipped.
    order: VecDeque<(BodyDigest, Instant)>,
}

impl ReplayGuard {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            state: Mutex::new(Remembered::default()),
        }
    }

    pub fn digest(body: &[u8]) -> BodyDigest {
        Sha256::digest(body).into()
    }

    /// Whether this body was acknowledged within the window.
    pub fn seen(&self, digest: &BodyDigest) -> bool {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.expire(&mut state, now);
        state.at.contains_key(digest)
    }

    /// Remembers a body that was just acknowledged.
    pub fn remember(&self, digest: BodyDigest) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.expire(&mut state, now);
        while state.at.len() >= MAX_REMEMBERED {
            let Some((old, at)) = state.order.pop_front() else {
                break;
            };
            if state.at.get(&old) == Some(&at) {
                state.at.remove(&old);
            }
        }
        state.at.insert(digest, now);
        state.order.push_back((digest, now));
    }

    fn expire(&self, state: &mut Remembered, now: Instant) {
        while let Some(&(digest, at)) = state.order.front() {
            if now.duration_since(at) < self.window {
                break;
            }
            state.order.pop_front();
            if state.at.get(&digest) == Some(&at) {
                state.at.remove(&digest);
            }
        }
    }

    /// Bodies remembered right now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().unwrap().at.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_seen_within_the_window_only() {
        let guard = ReplayGuard::new(Duration::from_millis(50));
        let a = ReplayGuard::digest(b"{\"id\":1}");
        let b = ReplayGuard::digest(b"{\"id\":2}");
        assert!(!guard.seen(&a));
        guard.remember(a);
        assert!(guard.seen(&a));
        assert!(!guard.seen(&b));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!guard.seen(&a), "forgotten after the window");
        assert_eq!(guard.len(), 0);
    }

    #[test]
    fn memory_is_bounded_by_the_count() {
        let guard = ReplayGuard::new(Duration::from_secs(3600));
        for i in 0..(MAX_REMEMBERED + 10) as u64 {
            guard.remember(ReplayGuard::digest(&i.to_be_bytes()));
        }
        assert_eq!(guard.len(), MAX_REMEMBERED);
        assert!(!guard.seen(&ReplayGuard::digest(&0u64.to_be_bytes())));
        let last = (MAX_REMEMBERED + 9) as u64;
        assert!(guard.seen(&ReplayGuard::digest(&last.to_be_bytes())));
    }
}
