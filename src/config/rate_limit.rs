//! The `rate_limit = { per_second = N, burst = M }` table: sources, sinks and the
//! webhook listener's unverified-request budget share it.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;

/// A token bucket: `per_second` sustained, `burst` at once (default: one second's worth).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub per_second: NonZeroU32,
    pub burst: Option<NonZeroU32>,
}

impl RateLimitConfig {
    pub fn limiter(&self) -> DefaultDirectRateLimiter {
        let quota =
            Quota::per_second(self.per_second).allow_burst(self.burst.unwrap_or(self.per_second));
        RateLimiter::direct(quota)
    }
}
