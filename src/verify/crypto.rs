//! What every verifier shares above the MAC primitives of [`crate::signature`]: header
//! access that never panics, Unix timestamps and the tolerance check applied in both
//! directions, keyed signature lists, and the verdicts as [`VerifyError`]s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

use super::VerifyError;
use crate::config::secret::Secret;
pub use crate::signature::mac::{
    any_matches, ct_eq, hmac, matching_key, Algorithm, Key, Tag, MAX_LISTED_SIGNATURES,
};

/// The secret's text used as the key bytes, which is what nearly every provider does.
pub fn secret_key(secret: &Secret) -> Key {
    Key::new(secret.expose().as_bytes())
}

/// Succeeds if any candidate signature equals the MAC of `parts` under any key, in
/// constant time (see [`any_matches`]).
pub fn verify_any(
    keys: &[Key],
    alg: Algorithm,
    parts: &[&[u8]],
    candidates: &[Tag],
) -> Result<(), VerifyError> {
    if any_matches(keys, alg, parts, candidates) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// A header's value as trimmed text. Missing → `MissingHeader`; not visible ASCII →
/// `MalformedHeader`.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, VerifyError> {
    let value = headers.get(name).ok_or(VerifyError::MissingHeader(name))?;
    value
        .to_str()
        .map(str::trim)
        .map_err(|_| VerifyError::MalformedHeader(name))
}

/// Parses a Unix timestamp written as plain decimal digits (no sign, no spaces).
pub fn parse_unix(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Replay protection: the signed timestamp (seconds) must be within `tolerance` of `now`
/// in either direction — too old is a replay, too new is a forged or skewed clock.
pub fn check_tolerance(timestamp: i64, now: i64, tolerance: Duration) -> Result<(), VerifyError> {
    if now.abs_diff(timestamp) > tolerance.as_secs() {
        Err(VerifyError::StaleTimestamp)
    } else {
        Ok(())
    }
}

/// As [`check_tolerance`], for a timestamp in milliseconds.
pub fn check_tolerance_ms(
    timestamp_ms: i64,
    now: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let tolerance_ms = u64::try_from(tolerance.as_millis()).unwrap_or(u64::MAX);
    if now.saturating_mul(1000).abs_diff(timestamp_ms) > tolerance_ms {
        Err(VerifyError::StaleTimestamp)
    } else {
        Ok(())
    }
}

/// A signature header of the form `<ts_key>=<unix seconds><sep><sig_key>=<hex><sep>…`
/// (Stripe, Paddle), parsed.
#[derive(Debug, Clone)]
pub struct TimestampedSignatures<'a> {
    /// The timestamp exactly as sent, because that text is what was signed.
    pub timestamp_text: &'a str,
    /// The timestamp as a number, for the tolerance check.
    pub timestamp: i64,
    /// Every well-formed signature with the expected key; there may be several while the
    /// sender rotates secrets. Undecodable ones are skipped: they cannot match anyway.
    pub signatures: Vec<Tag>,
}

/// Parses a `ts_key=…<sep>sig_key=…` list. `None` when the timestamp is missing,
/// repeated or not a Unix timestamp; unknown keys and items without `=` are ignored
/// (providers add new schemes over time). Items are not trimmed: the SDKs split on the
/// separator and compare keys exactly, so `t=1, v1=…` carries no `v1` for them either.
pub fn parse_timestamped_signatures<'a>(
    value: &'a str,
    sep: &str,
    ts_key: &str,
    sig_key: &str,
    alg: Algorithm,
) -> Option<TimestampedSignatures<'a>> {
    let mut timestamp: Option<(&'a str, i64)> = None;
    let mut signatures = Vec::new();
    for item in value.split(sep) {
        let Some((key, val)) = item.split_once('=') else {
            continue;
        };
        if key == ts_key {
            if timestamp.is_some() {
                return None;
            }
            timestamp = Some((val, parse_unix(val)?));
        } else if key == sig_key && signatures.len() < MAX_LISTED_SIGNATURES {
            if let Some(tag) = Tag::from_hex(val, alg) {
                signatures.push(tag);
            }
        }
    }
    let (timestamp_text, timestamp) = timestamp?;
    Some(TimestampedSignatures {
        timestamp_text,
        timestamp,
        signatures,
    })
}

/// Adds a header when signing; `None` if the name or value is not valid HTTP.
pub fn insert_header(headers: &mut HeaderMap, name: &str, value: &str) -> Option<()> {
    let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
    let value = HeaderValue::from_str(value).ok()?;
    headers.insert(name, value);
    Some(())
}

/// A message id for `sign`: unique per process and call, so repeated `hookbridge send`
/// runs are not deduplicated downstream.
pub fn message_id(now: i64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("msg_{now:x}{:x}{n:x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stuffed_signature_list_is_read_no_further_than_the_cap() {
        let many = std::iter::once("t=1700000000".to_owned())
            .chain((0..200).map(|i| format!("v1={i:064x}")))
            .collect::<Vec<_>>()
            .join(",");
        let parsed =
            parse_timestamped_signatures(&many, ",", "t", "v1", Algorithm::Sha256).unwrap();
        assert_eq!(parsed.signatures.len(), MAX_LISTED_SIGNATURES);
    }

    #[test]
    fn verify_any_accepts_any_key_and_any_candidate() {
        let keys = [Key::new(&b"old"[..]), Key::new(&b"new"[..])];
        let good = hmac(Algorithm::Sha256, b"new", &[b"body"]).unwrap();
        let bad = hmac(Algorithm::Sha256, b"other", &[b"body"]).unwrap();
        assert!(verify_any(&keys, Algorithm::Sha256, &[b"body"], &[bad, good]).is_ok());
        assert_eq!(
            verify_any(&keys, Algorithm::Sha256, &[b"body"], &[bad]),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_any(&keys, Algorithm::Sha256, &[b"body"], &[]),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn tolerance_is_checked_both_ways() {
        let t = Duration::from_secs(300);
        assert!(check_tolerance(1000, 1300, t).is_ok());
        assert!(check_tolerance(1300, 1000, t).is_ok());
        assert_eq!(
            check_tolerance(1000, 1301, t),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(
            check_tolerance(1301, 1000, t),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(
            check_tolerance(i64::MIN, i64::MAX, t),
            Err(VerifyError::StaleTimestamp)
        );
        assert!(check_tolerance_ms(1_000_000, 1000, Duration::from_secs(1)).is_ok());
        assert_eq!(
            check_tolerance_ms(1_001_001, 1000, Duration::from_secs(1)),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(
            check_tolerance_ms(i64::MIN, i64::MAX, t),
            Err(VerifyError::StaleTimestamp)
        );
    }

    #[test]
    fn parse_unix_accepts_only_digits() {
        assert_eq!(parse_unix("1531420618"), Some(1_531_420_618));
        for bad in ["", "-1", "+1", " 1", "1.5", "abc", "99999999999999999999"] {
            assert_eq!(parse_unix(bad), None, "{bad:?}");
        }
    }
}
