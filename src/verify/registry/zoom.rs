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

use serde::Deserialize;

use crate::verify::crypto::{self, Algorithm, Key};
use crate::verify::recipe::{self, Recipe, SignatureAt};
use crate::verify::{Handshake, WebhookRequest};

/// The signature header.
pub const SIGNATURE: &str = "x-zm-signature";
/// The timestamp header.
pub const TIMESTAMP: &str = "x-zm-request-timestamp";
/// Default tolerance.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// A `meeting.started` event.
pub const SAMPLE_BODY: &[u8] = br#"{"event":"meeting.started","event_ts":1717243200000,"payload":{"account_id":"D8cJuqWVQ623CI4Q8yQK0Q","object":{"id":"85746065432","uuid":"4444AAAiAAAAAiAiAiiAii==","host_id":"z8yCxjabcdEFGHfp8uQ","topic":"Weekly sync","type":2,"start_time":"2024-06-01T12:00:00Z","timezone":"America/Los_Angeles","duration":30}}}"#;

/// `x-zm-signature: v0=<hex HMAC-SHA256(secret token, "v0:{ts}:{body}")>`.
pub const RECIPE: Recipe = recipe::v0(
    "zoom",
    &[SignatureAt::sha256(SIGNATURE, "v0=")],
    TIMESTAMP,
    handshake,
    SAMPLE_BODY,
);

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

/// `endpoint.url_validation` → `{"plainToken", "encryptedToken"}` as JSON, answered with
/// the secret that signed the request, so validation works mid-rotation.
fn handshake(key: &Key, req: &WebhookRequest<'_>) -> Option<Handshake> {
    let event: Event = serde_json::from_slice(req.body).ok()?;
    if event.event.as_deref() != Some("endpoint.url_validation") {
        return None;
    }
    let Some(plain) = event.payload.and_then(|p| p.plain_token) else {
        return Some(Handshake::bad_request(
            "endpoint.url_validation without plainToken",
        ));
    };
    let encrypted = crypto::hmac(Algorithm::Sha256, key.as_bytes(), &[plain.as_bytes()])?;
    Handshake::json(&serde_json::json!({
        "plainToken": plain,
        "encryptedToken": encrypted.to_hex(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::crypto::Algorithm;
    use crate::verify::generic::GenericHmac;
    use crate::verify::testutil::{headers, keys, req, with_header, without_header};
    use crate::verify::VerifyError;

    const NOW: i64 = 1_658_940_994;

    fn zoom(secrets: &[&str]) -> GenericHmac {
        RECIPE
            .build(keys(secrets), Some(DEFAULT_TOLERANCE), &[])
            .unwrap()
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
                .sign(br#"{"event":"x"}"#, "", NOW)
                .unwrap(),
            h
        );
    }

    const PY_SIGNATURE: &str =
        "v0=0df1ee93974e9fe65e18f55c0235d6df03a54a0b7693c897f2d3178e07e7672b";

    #[test]
    fn rotated_second_secret_is_valid() {
        let h = zoom(&["new"]).sign(b"{}", "", NOW).unwrap();
        assert_eq!(zoom(&["old", "new"]).verify(&req(&h, b"{}", NOW)), Ok(()));
    }

    #[test]
    fn rejects_tampering_wrong_secret_missing_and_malformed() {
        let v = zoom(&["s"]);
        let h = v.sign(b"{\"a\":1}", "", NOW).unwrap();
        assert_eq!(
            v.verify(&req(&h, b"{\"a\":2}", NOW)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            zoom(&["x"]).verify(&req(&h, b"{\"a\":1}", NOW)),
            Err(VerifyError::Mismatch)
        );
        let other = v.sign(b"other", "", NOW).unwrap();
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
        let old = v.sign(b"{}", "", NOW - 301).unwrap();
        assert_eq!(
            v.verify(&req(&old, b"{}", NOW)),
            Err(VerifyError::StaleTimestamp)
        );
        let future = v.sign(b"{}", "", NOW + 301).unwrap();
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
            let h = zoom(&[signer]).sign(body, "", NOW).unwrap();
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
        let h = v.sign(SAMPLE_BODY, "", NOW).unwrap();
        assert_eq!(v.handshake(&req(&h, SAMPLE_BODY, NOW)), None);
        let incomplete = br#"{"event":"endpoint.url_validation","payload":{}}"#;
        assert_eq!(v.handshake(&req(&h, incomplete, NOW)).unwrap().status, 400);
    }
}
