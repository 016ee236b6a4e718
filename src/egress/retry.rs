//! Backoff between attempts: exponential with full jitter, or exactly what the
//! destination asked for in `Retry-After` (capped by the policy's maximum). Pure: the
//! jitter is a random number the caller rolls.

use std::time::Duration;

use crate::connectors::sink::RetryConfig;

/// How long to wait after the `failures`-th failed attempt (1-based). `roll` is a
/// uniformly random number that places the wait in its window.
pub fn backoff(
    policy: &RetryConfig,
    failures: u32,
    retry_after: Option<Duration>,
    roll: u64,
) -> Duration {
    let max = policy.max.0;
    if let Some(wait) = retry_after.filter(|_| policy.honor_retry_after) {
        return wait.min(max);
    }
    let exp = failures.saturating_sub(1).min(32);
    let ceiling = policy
        .initial
        .0
        .saturating_mul(1u32 << exp.min(31))
        .min(max);
    // Full jitter: spreads a crowd of retries over the whole window (AWS architecture blog).
    let window = ceiling.as_nanos().min(u128::from(u64::MAX)) + 1;
    Duration::from_nanos((u128::from(roll) % window) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::HumanDuration;

    fn policy() -> RetryConfig {
        RetryConfig {
            initial: HumanDuration(Duration::from_millis(100)),
            max: HumanDuration(Duration::from_secs(2)),
            ..RetryConfig::default()
        }
    }

    #[test]
    fn grows_within_the_cap() {
        let p = policy();
        for failures in 1..50 {
            let d = backoff(&p, failures, None, rand::random());
            let ceiling = Duration::from_millis(100)
                .saturating_mul(1 << (failures - 1).min(31))
                .min(Duration::from_secs(2));
            assert!(d <= ceiling, "{failures}: {d:?} > {ceiling:?}");
            // The roll reaches both ends of the window.
            assert_eq!(
                backoff(&p, failures, None, ceiling.as_nanos() as u64),
                ceiling
            );
            assert_eq!(backoff(&p, failures, None, 0), Duration::ZERO);
        }
    }

    #[test]
    fn honours_and_caps_retry_after() {
        let mut p = policy();
        assert_eq!(
            backoff(&p, 1, Some(Duration::from_secs(1)), 0),
            Duration::from_secs(1)
        );
        assert_eq!(
            backoff(&p, 1, Some(Duration::from_secs(60)), 0),
            Duration::from_secs(2)
        );
        p.honor_retry_after = false;
        assert!(
            backoff(&p, 1, Some(Duration::from_secs(1)), u64::MAX) <= Duration::from_millis(100)
        );
    }
}
