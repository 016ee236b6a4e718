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

/// An RFC 3339 time: with `Z`, a numeric offset (`+02:00`, which humantime does not read)
/// or no zone at all (read as UTC). The offset is looked for first: after a fraction of
/// a second humantime stops reading and takes `12:00:00.5+02:00` for 12:00:00.5 UTC.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    // RFC 3339 allows `t` and `z` in lower case; humantime reads only upper.
    let upper;
    let text = if text.bytes().any(|b| b == b't' || b == b'z') {
        upper = text.to_ascii_uppercase();
        upper.as_str()
    } else {
        text
    };
    let zone_at = text.len().checked_sub(6);
    let has_offset = zone_at
        .and_then(|at| text.get(at..))
        .is_some_and(|z| z.starts_with(['+', '-']) && z.as_bytes()[3] == b':');
    if !has_offset {
        return humantime::parse_rfc3339_weak(text).ok();
    }
    let (local, zone) = text.split_at_checked(zone_at?)?;
    let (sign, hh_mm) = zone.split_at_checked(1)?;
    let (hh, mm) = hh_mm.split_once(':')?;
    let digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(hh) || !digits(mm) {
        return None;
    }
    let (hours, minutes) = (hh.parse::<u64>().ok()?, mm.parse::<u64>().ok()?);
    if hours > 23 || minutes > 59 {
        return None;
    }
    let offset = Duration::from_secs(hours * 3600 + minutes * 60);
    let at_local = humantime::parse_rfc3339_weak(local).ok()?;
    // The local time is UTC plus the offset.
    match sign {
        "+" => at_local.checked_sub(offset),
        "-" => at_local.checked_add(offset),
        _ => None,
    }
}

/// The last instant RFC 3339 text holds, 9999-12-31T23:59:59Z (and the formatter
/// panics past it, as before the epoch).
const LAST_WRITABLE: Duration = Duration::from_secs(253_402_300_799);

/// `t` as RFC 3339 with milliseconds (`2026-12-04T17:00:00.000Z`); `None` before 1970 or
/// past 9999, which a time read from a record may be.
pub fn rfc3339_millis(t: SystemTime) -> Option<String> {
    let since = t.duration_since(UNIX_EPOCH).ok()?;
    (since.as_secs() <= LAST_WRITABLE.as_secs())
        .then(|| humantime::format_rfc3339_millis(t).to_string())
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

    #[test]
    fn only_times_rfc3339_can_hold_are_written() {
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(
            rfc3339_millis(at(0)).as_deref(),
            Some("1970-01-01T00:00:00.000Z")
        );
        assert_eq!(
            rfc3339_millis(at(253_402_300_799) + Duration::from_millis(999)).as_deref(),
            Some("9999-12-31T23:59:59.999Z")
        );
        assert_eq!(rfc3339_millis(at(253_402_300_800)), None);
        assert_eq!(rfc3339_millis(UNIX_EPOCH - Duration::from_secs(60)), None);
    }
}
