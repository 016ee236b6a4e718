//! Twitch EventSub webhooks: `Twitch-Eventsub-Message-Signature: sha256=<hex HMAC-SHA256(secret, id + timestamp + body)>`.
//!
//! Rule (Twitch Developers, "Handling webhook events — Verifying the event message",
//! <https://dev.twitch.tv/docs/eventsub/handling-webhook-events/#verifying-the-event-message>):
//! concatenate the `Twitch-Eventsub-Message-Id` header, the
//! `Twitch-Eventsub-Message-Timestamp` header (RFC 3339, as sent) and the raw body, with
//! no separator; HMAC-SHA256 with the subscription's secret; hex; prefix `sha256=`.
//! Twitch asks receivers to reject messages whose timestamp is older than 10 minutes
//! (default `tolerance`, applied in both directions). A
//! `Twitch-Eventsub-Message-Type: webhook_callback_verification` message is answered
//! with its `challenge` as `text/plain` and a 200.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use serde::Deserialize;

use super::crypto::{self, Algorithm, Key, Tag};
use super::{Handshake, VerifyError, WebhookRequest};

/// The message id header.
pub const MESSAGE_ID: &str = "Twitch-Eventsub-Message-Id";
/// The RFC 3339 timestamp header.
pub const MESSAGE_TIMESTAMP: &str = "Twitch-Eventsub-Message-Timestamp";
/// The signature header.
pub const MESSAGE_SIGNATURE: &str = "Twitch-Eventsub-Message-Signature";
/// The message type header (`notification`, `webhook_callback_verification`, `revocation`).
pub const MESSAGE_TYPE: &str = "Twitch-Eventsub-Message-Type";
/// Twitch's replay window.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(600);

/// A `channel.follow` notification.
pub const SAMPLE_BODY: &[u8] = br#"{"subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","type":"channel.follow","version":"2","status":"enabled","cost":0,"condition":{"broadcaster_user_id":"1337","moderator_user_id":"1337"},"transport":{"method":"webhook","callback":"https://example.com/webhooks/callback"},"created_at":"2024-06-01T12:00:00.634234626Z"},"event":{"user_id":"1234","user_login":"cool_user","user_name":"Cool_User","broadcaster_user_id":"1337","broadcaster_user_login":"cooler_user","broadcaster_user_name":"Cooler_User","followed_at":"2024-06-01T12:00:01.634234626Z"}}"#;

/// Verifies EventSub messages and answers the callback verification.
#[derive(Debug, Clone)]
pub struct Twitch {
    keys: Vec<Key>,
    tolerance: Duration,
}

#[derive(Deserialize)]
struct Challenge {
    challenge: Option<String>,
}

/// Unix seconds of an RFC 3339 timestamp (UTC, any fractional precision, 1970–9999;
/// anything else is not a timestamp Twitch would send).
fn parse_rfc3339(text: &str) -> Option<i64> {
    let time = humantime::parse_rfc3339_weak(text).ok()?;
    i64::try_from(time.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()
}

/// `now` as RFC 3339 with nanoseconds, as Twitch formats it.
fn format_rfc3339(now: i64) -> String {
    let time = if now >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(now.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(now.unsigned_abs()))
    };
    humantime::format_rfc3339_nanos(time.unwrap_or(SystemTime::UNIX_EPOCH)).to_string()
}

impl Twitch {
    /// A verifier over subscription secrets `keys`.
    pub fn new(keys: Vec<Key>, tolerance: Duration) -> Self {
        Twitch { keys, tolerance }
    }

    /// Checks the timestamp window, then the signature over id + timestamp + body.
    pub fn verify(&self, req: &WebhookRequest<'_>) -> Result<(), VerifyError> {
        let id = crypto::header_str(req.headers, MESSAGE_ID)?;
        let ts_text = crypto::header_str(req.headers, MESSAGE_TIMESTAMP)?;
        let signature = crypto::header_str(req.headers, MESSAGE_SIGNATURE)?;
        let ts = parse_rfc3339(ts_text).ok_or(VerifyError::MalformedHeader(MESSAGE_TIMESTAMP))?;
        let tag = signature
            .strip_prefix("sha256=")
            .and_then(|hex| Tag::from_hex(hex, Algorithm::Sha256))
            .ok_or(VerifyError::MalformedHeader(MESSAGE_SIGNATURE))?;
        crypto::check_tolerance(ts, req.now, self.tolerance)?;
        let parts: [&[u8]; 3] = [id.as_bytes(), ts_text.as_bytes(), req.body];
        crypto::verify_any(&self.keys, Algorithm::Sha256, &parts, &[tag])
    }

    /// `webhook_callback_verification` → 200 with the challenge as text.
    pub fn handshake(&self, req: &WebhookRequest<'_>) -> Option<Handshake> {
        let kind = req.headers.get(MESSAGE_TYPE)?.to_str().ok()?;
        if kind.trim() != "webhook_callback_verification" {
            return None;
        }
        let challenge = serde_json::from_slice::<Challenge>(req.body)
            .ok()
            .and_then(|c| c.challenge);
        Some(match challenge {
            Some(challenge) => Handshake::text(challenge),
            None => Handshake::bad_request("webhook_callback_verification without challenge"),
        })
    }

    /// The headers Twitch sends for a `notification`, signed with the first secret.
    pub fn sign(&self, body: &[u8], now: i64) -> Option<HeaderMap> {
        self.sign_message(body, now, "notification")
    }

    /// As [`sign`](Self::sign), with a given message type.
    pub fn sign_message(&self, body: &[u8], now: i64, message_type: &str) -> Option<HeaderMap> {
        let key = self.keys.first()?;
        let id = crypto::message_id(now);
        let ts = format_rfc3339(now);
        let tag = crypto::hmac(
            Algorithm::Sha256,
            key.as_bytes(),
            &[id.as_bytes(), ts.as_bytes(), body],
        )?;
        let mut headers = HeaderMap::new();
        crypto::insert_header(&mut headers, MESSAGE_ID, &id)?;
        crypto::insert_header(&mut headers, MESSAGE_TIMESTAMP, &ts)?;
        crypto::insert_header(
            &mut headers,
            MESSAGE_SIGNATURE,
            &format!("sha256={}", tag.to_hex()),
        )?;
        crypto::insert_header(&mut headers, MESSAGE_TYPE, message_type)?;
        crypto::insert_header(&mut headers, "Twitch-Eventsub-Message-Retry", "0")?;
        Some(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{headers, keys, req, with_header, without_header};

    const NOW: i64 = 1_717_243_200; // 2024-06-01T12:00:00Z

    fn twitch(secrets: &[&str]) -> Twitch {
        Twitch::new(keys(secrets), DEFAULT_TOLERANCE)
    }

    #[test]
    fn independently_computed_known_answer() {
        // Twitch publishes no vector. Computed with Python:
        // "sha256=" + hmac.new(b"twitch-secret",
        //   b'e76c6bd4-55c9-4987-8304-da1588d8988b2024-06-01T12:00:00.123456789Z{"a":1}', sha256).hexdigest()
        let h = headers(&[
            (MESSAGE_ID, "e76c6bd4-55c9-4987-8304-da1588d8988b"),
            (MESSAGE_TIMESTAMP, "2024-06-01T12:00:00.123456789Z"),
            (MESSAGE_SIGNATURE, PY_SIGNATURE),
        ]);
        assert_eq!(
            twitch(&["twitch-secret"]).verify(&req(&h, br#"{"a":1}"#, NOW)),
            Ok(())
        );
    }

    const PY_SIGNATURE: &str =
        "sha256=b78f3b81f9d1612289d621c0cdd5f84bdf6c37f8bde8126623e1c56b21212b1c";

    #[test]
    fn rfc3339_parsing_and_formatting() {
        assert_eq!(parse_rfc3339("2024-06-01T12:00:00Z"), Some(NOW));
        assert_eq!(parse_rfc3339("2024-06-01T12:00:00.634234626Z"), Some(NOW));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:00Z"), None);
        assert_eq!(parse_rfc3339("2024-06-01T12:00:00+02:00"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(format_rfc3339(NOW), "2024-06-01T12:00:00.000000000Z");
        assert_eq!(parse_rfc3339(&format_rfc3339(NOW)), Some(NOW));
    }

    #[test]
    fn rotated_second_secret_is_valid() {
        let h = twitch(&["new-secret"]).sign(b"{}", NOW).unwrap();
        assert_eq!(
            twitch(&["old-secret", "new-secret"]).verify(&req(&h, b"{}", NOW)),
            Ok(())
        );
    }

    #[test]
    fn rejects_tampering_wrong_secret_missing_and_malformed() {
        let v = twitch(&["s"]);
        let h = v.sign(b"{\"a\":1}", NOW).unwrap();
        assert_eq!(
            v.verify(&req(&h, b"{\"a\":2}", NOW)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            twitch(&["x"]).verify(&req(&h, b"{\"a\":1}", NOW)),
            Err(VerifyError::Mismatch)
        );
        let other_body = v.sign(b"other", NOW).unwrap();
        assert_eq!(
            v.verify(&req(&other_body, b"{\"a\":1}", NOW)),
            Err(VerifyError::Mismatch)
        );
        let other_id = with_header(&h, MESSAGE_ID, "another-id");
        assert_eq!(
            v.verify(&req(&other_id, b"{\"a\":1}", NOW)),
            Err(VerifyError::Mismatch)
        );
        for name in [MESSAGE_ID, MESSAGE_TIMESTAMP, MESSAGE_SIGNATURE] {
            assert_eq!(
                v.verify(&req(&without_header(&h, name), b"{\"a\":1}", NOW)),
                Err(VerifyError::MissingHeader(name))
            );
        }
        let bad = with_header(&h, MESSAGE_SIGNATURE, "sha1=00");
        assert_eq!(
            v.verify(&req(&bad, b"", NOW)),
            Err(VerifyError::MalformedHeader(MESSAGE_SIGNATURE))
        );
        let bad = with_header(&h, MESSAGE_TIMESTAMP, "1717243200");
        assert_eq!(
            v.verify(&req(&bad, b"", NOW)),
            Err(VerifyError::MalformedHeader(MESSAGE_TIMESTAMP))
        );
    }

    #[test]
    fn timestamp_outside_tolerance_either_way() {
        let v = twitch(&["s"]);
        let old = v.sign(b"{}", NOW - 601).unwrap();
        assert_eq!(
            v.verify(&req(&old, b"{}", NOW)),
            Err(VerifyError::StaleTimestamp)
        );
        let future = v.sign(b"{}", NOW + 601).unwrap();
        assert_eq!(
            v.verify(&req(&future, b"{}", NOW)),
            Err(VerifyError::StaleTimestamp)
        );
        let edge = v.sign(b"{}", NOW - 600).unwrap();
        assert_eq!(v.verify(&req(&edge, b"{}", NOW)), Ok(()));
    }

    #[test]
    fn callback_verification_handshake() {
        let v = twitch(&["s"]);
        let body = br#"{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","status":"webhook_callback_verification_pending","type":"channel.follow","version":"2"}}"#;
        let h = v
            .sign_message(body, NOW, "webhook_callback_verification")
            .unwrap();
        let r = req(&h, body, NOW);
        assert_eq!(v.verify(&r), Ok(()));
        let hs = v.handshake(&r).unwrap();
        assert_eq!(
            (hs.status, &hs.body[..]),
            (200, &b"pogchamp-kappa-360noscope-vohiyo"[..])
        );
        assert!(hs.content_type.starts_with("text/plain"));
        // Notifications and revocations are ordinary messages.
        let n = v.sign(body, NOW).unwrap();
        assert_eq!(v.handshake(&req(&n, body, NOW)), None);
        let missing = v
            .sign_message(b"{}", NOW, "webhook_callback_verification")
            .unwrap();
        assert_eq!(v.handshake(&req(&missing, b"{}", NOW)).unwrap().status, 400);
    }
}
