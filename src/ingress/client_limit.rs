//! A per-client-address budget for requests that fail verification. Unsigned or wrongly
//! signed floods are answered 429 from their own address's budget, so they can neither
//! spend a source's rate limit (which only verified requests are charged) nor starve the
//! provider's real deliveries. Verified requests never spend this budget.
//!
//! Memory is bounded: addresses whose budget is full again are forgotten periodically,
//! IPv6 clients are keyed by their /64 (one host usually owns a whole /64), and the set of
//! blocked addresses has a fixed cap.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::rate_limit::RateLimitConfig;
use crate::http::share::address_key as client_key;

/// Most addresses remembered as blocked at once; beyond it a failing address is still
/// answered 429 by the limiter, just not refused before its body is read.
const MAX_BLOCKED: usize = 65_536;
/// Forget addresses with a full budget after this many failures (and on a size check).
const PRUNE_EVERY: u64 = 4096;
/// Addresses tracked by the limiter before a prune is forced.
const MAX_TRACKED: usize = 100_000;

/// The budget of failed verifications per client address.
pub struct UnverifiedLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses over budget, and until when: checked before a request's body is read.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    failures: AtomicU64,
}

impl UnverifiedLimit {
    pub fn new(config: &RateLimitConfig) -> Self {
        let quota = Quota::per_second(config.per_second)
            .allow_burst(config.burst.unwrap_or(config.per_second));
        Self {
            limiter: RateLimiter::keyed(quota),
            blocked: Mutex::new(HashMap::new()),
            failures: AtomicU64::new(0),
        }
    }

    /// How long `client` must wait, when its failures have used up its budget.
    pub fn blocked(&self, client: IpAddr) -> Option<Duration> {
        let key = client_key(client);
        let now = Instant::now();
        let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        match blocked.get(&key) {
            Some(until) if *until > now => Some(*until - now),
            Some(_) => {
                blocked.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Charges one failed verification to `client`; returns the wait when this failure
    /// went over the budget.
    pub fn failed(&self, client: IpAddr) -> Option<Duration> {
        let key = client_key(client);
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n % PRUNE_EVERY == 0 || self.limiter.len() > MAX_TRACKED {
            self.prune();
        }
        let not_until = self.limiter.check_key(&key).err()?;
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        self.block(key, wait);
        Some(wait)
    }

    /// Forgets addresses whose budget has refilled: they behave exactly like new ones.
    fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    fn block(&self, key: IpAddr, wait: Duration) {
        let now = Instant::now();
        let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        if blocked.len() >= MAX_BLOCKED {
            blocked.retain(|_, until| *until > now);
            if blocked.len() >= MAX_BLOCKED {
                return;
            }
        }
        blocked.insert(key, now + wait);
    }

    /// Addresses currently tracked.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn limit(per_second: u32, burst: u32) -> UnverifiedLimit {
        UnverifiedLimit::new(&RateLimitConfig {
            per_second: NonZeroU32::new(per_second).unwrap(),
            burst: NonZeroU32::new(burst),
        })
    }

    #[test]
    fn failures_block_only_their_own_address() {
        let l = limit(1, 3);
        let attacker: IpAddr = "10.0.0.1".parse().unwrap();
        let sender: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(l.failed(attacker), None);
        }
        assert!(l.blocked(attacker).is_none(), "budget not yet exceeded");
        let wait = l.failed(attacker).expect("over budget");
        assert!(wait <= Duration::from_secs(1));
        assert!(l.blocked(attacker).is_some());
        assert!(l.blocked(sender).is_none());
    }

    #[test]
    fn many_addresses_stay_bounded() {
        let l = limit(1000, 1000);
        for i in 0..1000u32 {
            l.failed(IpAddr::V4(i.into()));
        }
        assert_eq!(l.tracked(), 1000);
        // Each address failed once and refills within a millisecond; pruning forgets them.
        std::thread::sleep(Duration::from_millis(20));
        l.prune();
        assert_eq!(l.tracked(), 0);
    }
}
