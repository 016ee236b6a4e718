//! Zoom webhooks: `x-zm-signature: v0=<hex HMAC-SHA256(secret_token, "v0:{ts}:{body}")>`
//! with `ts` from `x-zm-request-timestamp` (Unix seconds).
//!
//! Rule (Zoom Developer docs, "Using webhooks — Verify webhook events" and "Validate
//! your webhook endpoint", <https://developers.zoom.us/docs/api/webhooks/#verify-webhook-events>):
//! the message is `v0:{x-zm-request-timestamp}:{raw body}`, HMAC-SHA256 with the app's
//! secret token, hex, prefixed `v0=`. Zoom does not state a replay window; we apply the
//! common five minutes (`tolerance`). The `endpoint.url_validation` event (sent when the
//! endpoint is added and every 72 hours) is answered with
//! `{"plainToken": …, "encryptedToken": hex HMAC-SHA256(secret_token, plainToken)}`,
//! using the secret token that verified the request.

use std::time::Duration;

use http::HeaderMap;
use serde::Deserialize;

use super::crypto::{self, Algorithm, Key, Tag};
use super::{Handshake, VerifyError, WebhookRequest};

/// The signature header.
pub const SIGNATURE: &str = "x-zm-signature";
/// The timestamp header.
pub const TIMESTAMP: &str = "x-zm-request-timestamp";
/// Default tolerance.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// A `meeting.started` event.
pub const SAMPLE_BODY: &[u8] = br#"{"event":"meeting.started","event_ts":1717243200000,"payload":{"account_id":"D8cJuqWVQ623CI4Q8yQK0Q","object":{"id":"85746065432","uuid":"4444AAAiAAAAAiAiAiiAii==","host_id":"z8yCxjabcdEFGHfp8uQ","topic":"Weekly sync","type":2,"start_time":"2024-06-01T12:00:00Z","timezone":"America/Los_Angeles","duration":30}}}"#;

/// Verifies Zoom events and answers URL validation.
#[derive(Debug, Clone)]
pub struct Zoom {
    keys: Vec<Key>,
    tolerance: Duration,
}

#[derive(Deserialize)]
struct Event {
    event: Option<String>,
    payload: Option<ValidationPayload>,
}

#[derive(Deserialize)]
struct ValidationPayload {
    #[serde(rename = "plainToken")]
    plain_token: Option<String>,
}

impl Zoom {
    /// A verifier over secret tokens `keys`.
    pub fn new(keys: Vec<Key>, tolerance: Duration) -> Self {
        Zoom { keys, tolerance }
    }

    /// The timestamp text, number and the `v0` tag, or why they are unusable.
    fn parse<'a>(req: &WebhookRequest<'a>) -> Result<(&'a str, i64, Tag), VerifyError> {
        let ts_text = crypto::header_str(req.headers, TIMESTAMP)?;
        let signature = crypto::header_str(req.headers, SIGNATURE)?;
        let ts = crypto::parse_unix(ts_text).ok_or(VerifyError::MalformedHeader(TIMESTAMP))?;
        let tag = signature
            .strip_prefix("v0=")
            .and_then(|hex| Tag::from_hex(hex, Algorithm::Sha256))
            .ok_or(VerifyError::MalformedHeader(SIGNATURE))?;
        Ok((ts_text, ts, tag))
    }

    /// Checks the timestamp window, then the `v0` signature.
    pub fn verify(&self, req: &WebhookRequest<'_>) -> Result<(), VerifyError> {
        let (ts_text, ts, tag) = Self::parse(req)?;
        crypto::check_tolerance(ts, req.now, self.tolerance)?;
        let parts: [&[u8]; 4] = [b"v0:", ts_text.as_bytes(), b":", req.body];
        crypto::verify_any(&self.keys, Algorithm::Sha256, &parts, &[tag])
    }

    /// `endpoint.url_validation` → `{"plainToken", "encryptedToken"}` as JSON.
    pub fn handshake(&self, req: &WebhookRequest<'_>) -> Option<Handshake> {
        let event: Event = serde_json::from_slice(req.body).ok()?;
        if event.event.as_deref() != Some("endpoint.url_validation") {
            return None;
        }
        let Some(plain) = event.payload.and_then(|p| p.plain_token) else {
            return Some(Handshake::bad_request(
                "endpoint.url_validation without plainToken",
            ));
        };
        // Answer with the secret that signed this request, so validation works mid-rotation.
        let key = Self::parse(req)
            .ok()
            .and_then(|(ts_text, _, tag)| {
                let parts: [&[u8]; 4] = [b"v0:", ts_text.as_bytes(), b":", req.body];
                crypto::matching_key(&self.keys, Algorithm::Sha256, &parts, &tag)
            })
            .and_then(|i| self.keys.get(i))
            .or_else(|| self.keys.first())?;
        let encrypted = crypto::hmac(Algorithm::Sha256, key.as_bytes(), &[plain.as_bytes()])?;
        Handshake::json(&serde_json::json!({
            "plainToken": plain,
            "encryptedToken": encrypted.to_hex(),
        }))
    }

    /// The two headers Zoom sends, signed with the first secret token.
    pub fn sign(&self, body: &[u8], now: i64) -> Option<HeaderMap> {
        let key = self.keys.first()?;
        let ts = now.to_string();
        let parts: [&[u8]; 4] = [b"v0:", ts.as_bytes(), b":", body];
        let tag = crypto::hmac(Algorithm::Sha256, key.as_bytes(), &parts)?;
        let mut headers = HeaderMap::new();
        crypto::insert_header(&mut headers, TIMESTAMP, &ts)?;
        crypto::insert_header(&mut headers, SIGNATURE, &format!("v0={}", tag.to_hex()))?;
        Some(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{headers, keys, req, with_header, without_header};

    const NOW: i64 = 1_658_940_994;

    fn zoom(secrets: &[&str]) -> Zoom {
        Zoom::new(keys(secrets), DEFAULT_TOLERANCE)
    }

    #[test]
    fn independently_computed_known_answer() {
        // Zoom publishes no vector. Computed with Python:
        // "v0=" + hmac.new(b"zoom-secret", b'v0:1658940994:{"event":"x"}', sha256).hexdigest()
        let h = headers(&[(TIMESTAMP, "1658940994"), (SIGNATURE, PY_SIGNATURE)]);
        assert_eq!(
            zoom(&["zoom-secret"]).verify(&req(&h, br#"{"event":"x"}"#, NOW)),
            Ok(())
        );
        assert_eq!(
            zoom(&["zoom-secret"])
                .sign(br#"{"event":"x"}"#, NOW)
                .unwrap(),
            h
        );
    }

    const PY_SIGNATURE: &str =
        "v0=0df1ee93974e9fe65e18f55c0235d6df03a54a0b7693c897f2d3178e07e7672b";

    #[test]
    fn rotated_second_secret_is_valid() {
        let h = zoom(&["new"]).sign(b"{}", NOW).unwrap();
        assert_eq!(zoom(&["old", "new"]).verify(&req(&h, b"{}", NOW)), Ok(()));
    }

    #[test]
    fn rejects_tampering_wrong_secret_missing_and_malformed() {
        let v = zoom(&["s"]);
        let h = v.sign(b"{\"a\":1}", NOW).unwrap();
        assert_eq!(
            v.verify(&req(&h, b"{\"a\":2}", NOW)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            zoom(&["x"]).verify(&req(&h, b"{\"a\":1}", NOW)),
            Err(VerifyError::Mismatch)
        );
        let other = v.sign(b"other", NOW).unwrap();
        assert_eq!(
            v.verify(&req(&other, b"{\"a\":1}", NOW)),
            Err(VerifyError::Mismatch)
        );
        for name in [SIGNATURE, TIMESTAMP] {
            assert_eq!(
                v.verify(&req(&without_header(&h, name), b"{\"a\":1}", NOW)),
                Err(VerifyError::MissingHeader(name))
            );
        }
        let bad = with_header(&h, SIGNATURE, "v0=nothex");
        assert_eq!(
            v.verify(&req(&bad, b"{\"a\":1}", NOW)),
            Err(VerifyError::MalformedHeader(SIGNATURE))
        );
        let bad = with_header(&h, TIMESTAMP, "1.5");
        assert_eq!(
            v.verify(&req(&bad, b"{\"a\":1}", NOW)),
            Err(VerifyError::MalformedHeader(TIMESTAMP))
        );
    }

    #[test]
    fn timestamp_outside_tolerance_either_way() {
        let v = zoom(&["s"]);
        let old = v.sign(b"{}", NOW - 301).unwrap();
        assert_eq!(
            v.verify(&req(&old, b"{}", NOW)),
            Err(VerifyError::StaleTimestamp)
        );
        let future = v.sign(b"{}", NOW + 301).unwrap();
        assert_eq!(
            v.verify(&req(&future, b"{}", NOW)),
            Err(VerifyError::StaleTimestamp)
        );
    }

    #[test]
    fn url_validation_handshake_uses_the_matching_secret() {
        let body = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
        for signer in ["old", "new"] {
            let v = zoom(&["old", "new"]);
            let h = zoom(&[signer]).sign(body, NOW).unwrap();
            let r = req(&h, body, NOW);
            assert_eq!(v.verify(&r), Ok(()));
            let hs = v.handshake(&r).unwrap();
            assert_eq!(hs.status, 200);
            assert_eq!(hs.content_type, "application/json");
            let json: serde_json::Value = serde_json::from_slice(&hs.body).unwrap();
            let expected = crypto::hmac(
                Algorithm::Sha256,
                signer.as_bytes(),
                &[b"qgg8vlvZRS6UYooatFL8Aw"],
            )
            .unwrap();
            assert_eq!(json["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
            assert_eq!(json["encryptedToken"], expected.to_hex());
        }
    }

    #[test]
    fn ordinary_events_and_incomplete_validations() {
        let v = zoom(&["s"]);
        let h = v.sign(SAMPLE_BODY, NOW).unwrap();
        assert_eq!(v.handshake(&req(&h, SAMPLE_BODY, NOW)), None);
        let incomplete = br#"{"event":"endpoint.url_validation","payload":{}}"#;
        assert_eq!(v.handshake(&req(&h, incomplete, NOW)).unwrap().status, 400);
    }
}
