//! Wall-clock time as Kafka and the webhook wire formats count it: seconds or
//! milliseconds since the Unix epoch. Written once here so every layer converts the same
//! way; a clock set before 1970 reads as the epoch, never as an error or a panic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch now (signature timestamps).
pub fn unix_secs() -> i64 {
    secs_of(SystemTime::now())
}

/// Milliseconds since the Unix epoch now (Kafka timestamps).
pub fn unix_millis() -> i64 {
    millis_of(SystemTime::now())
}

/// Seconds since the Unix epoch at `t`; 0 before it.
fn secs_of(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Milliseconds since the Unix epoch at `t`; 0 before it.
pub fn millis_of(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The time `ms` milliseconds after the Unix epoch; the epoch for a negative `ms`.
pub fn at_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip_and_clamp_before_the_epoch() {
        let t = at_millis(1_764_600_000_123);
        assert_eq!(millis_of(t), 1_764_600_000_123);
        assert_eq!(secs_of(t), 1_764_600_000);
        assert_eq!(at_millis(-5), UNIX_EPOCH);
        assert_eq!(millis_of(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(secs_of(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert!(unix_millis() / 1000 >= unix_secs() - 1);
    }
}
