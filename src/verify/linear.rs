//! Linear webhooks: `Linear-Signature: <hex HMAC-SHA256(secret, body)>`, with the body's
//! `webhookTimestamp` (Unix milliseconds) within one minute of now.
//!
//! Rule (Linear Developers, "Webhooks — Securing webhooks",
//! <https://linear.app/developers/webhooks#securing-webhooks>, and the `LinearWebhooks`
//! helper in `@linear/sdk`): the hex HMAC-SHA256 of the raw body keyed with the webhook's
//! signing secret, no prefix. The timestamp is not a header but the `webhookTimestamp`
//! field inside the signed JSON body; the SDK rejects it when it is more than 60 seconds
//! from local time in either direction (default `tolerance`). The SDK skips the check
//! when the field is absent; we reject such a body (`MalformedBody`) so that replay
//! protection cannot be silently lost. The body is parsed only after the signature
//! has been verified.

use std::time::Duration;

use http::HeaderMap;
use serde::Deserialize;

use super::crypto::{self, Algorithm, Key, Tag};
use super::{VerifyError, WebhookRequest};

/// The signature header.
pub const HEADER: &str = "Linear-Signature";
/// The body field carrying the signed timestamp.
pub const TIMESTAMP_FIELD: &str = "webhookTimestamp";
/// The SDK's tolerance.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(60);

/// An `Issue` create event with a fixed `webhookTimestamp` (see [`sample_body_at`]).
pub const SAMPLE_BODY: &[u8] = br#"{"action":"create","type":"Issue","createdAt":"2024-06-01T12:00:00.000Z","organizationId":"b5fe3a35-6bd8-4b17-bc5c-8a3e9b2b4a01","url":"https://linear.app/acme/issue/ENG-123/fix-login","webhookId":"000042e3-d123-4980-b49f-8e140eef9329","webhookTimestamp":1717243200000,"data":{"id":"9cfb482a-81e3-4154-b5b9-2c805e70a02d","identifier":"ENG-123","title":"Fix login","priority":2,"teamId":"72b2a2dc-6f4f-4423-9d34-24b5bd10634a"},"actor":{"id":"aacdca22-6266-4c0a-ab3c-8fa70a26765c","name":"Jane Doe","type":"user"}}"#;

/// [`SAMPLE_BODY`] with `webhookTimestamp` set to `now`, so it verifies when sent.
pub fn sample_body_at(now: i64) -> bytes::Bytes {
    let text = String::from_utf8_lossy(SAMPLE_BODY).replace(
        "\"webhookTimestamp\":1717243200000",
        &format!("\"webhookTimestamp\":{}", now.saturating_mul(1000)),
    );
    bytes::Bytes::from(text)
}

/// Verifies Linear webhooks.
#[derive(Debug, Clone)]
pub struct Linear {
    keys: Vec<Key>,
    tolerance: Duration,
}

/// The one body field we read; serde skips everything else without copying it.
#[derive(Deserialize)]
struct Stamp {
    #[serde(rename = "webhookTimestamp")]
    timestamp: Option<i64>,
}

impl Linear {
    /// A verifier over signing secrets `keys`.
    pub fn new(keys: Vec<Key>, tolerance: Duration) -> Self {
        Linear { keys, tolerance }
    }

    /// Checks the signature, then the body's `webhookTimestamp` window.
    pub fn verify(&self, req: &WebhookRequest<'_>) -> Result<(), VerifyError> {
        let value = crypto::header_str(req.headers, HEADER)?;
        let tag =
            Tag::from_hex(value, Algorithm::Sha256).ok_or(VerifyError::MalformedHeader(HEADER))?;
        crypto::verify_any(&self.keys, Algorithm::Sha256, &[req.body], &[tag])?;
        let stamp = serde_json::from_slice::<Stamp>(req.body)
            .ok()
            .and_then(|s| s.timestamp)
            .ok_or(VerifyError::MalformedBody(TIMESTAMP_FIELD))?;
        crypto::check_tolerance_ms(stamp, req.now, self.tolerance)
    }

    /// `Linear-Signature: <hex>` with the first secret. The body must already carry a
    /// current `webhookTimestamp` to verify.
    pub fn sign(&self, body: &[u8]) -> Option<HeaderMap> {
        let tag = crypto::hmac(Algorithm::Sha256, self.keys.first()?.as_bytes(), &[body])?;
        let mut headers = HeaderMap::new();
        crypto::insert_header(&mut headers, HEADER, &tag.to_hex())?;
        Some(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{headers, keys, req, with_header, without_header};

    const NOW: i64 = 1_717_243_200;

    fn linear(secrets: &[&str]) -> Linear {
        Linear::new(keys(secrets), DEFAULT_TOLERANCE)
    }

    fn body_at(ms: i64) -> Vec<u8> {
        format!(
            r#"{{"action":"update","type":"Issue","webhookTimestamp":{ms},"data":{{"id":"x"}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn independently_computed_known_answer() {
        // Linear publishes no vector. Computed with Python:
        // hmac.new(b"lin_wh_secret", b'{"webhookTimestamp":1717243200000}', sha256).hexdigest()
        let body = br#"{"webhookTimestamp":1717243200000}"#;
        let h = headers(&[(HEADER, PY_SIGNATURE)]);
        assert_eq!(
            linear(&["lin_wh_secret"]).verify(&req(&h, body, NOW)),
            Ok(())
        );
        assert_eq!(linear(&["lin_wh_secret"]).sign(body).unwrap(), h);
    }

    const PY_SIGNATURE: &str = "83d793f764566d3a3d03e369e84eb2e0a8196d6bf4734ac66c859b28376f7171";

    #[test]
    fn sample_body_at_now_verifies() {
        let v = linear(&["s"]);
        let body = sample_body_at(NOW + 1000);
        let h = v.sign(&body).unwrap();
        assert_eq!(v.verify(&req(&h, &body, NOW + 1000)), Ok(()));
        assert_eq!(&sample_body_at(1_717_243_200)[..], SAMPLE_BODY);
    }

    #[test]
    fn rotated_second_secret_is_valid() {
        let body = body_at(NOW * 1000);
        let h = linear(&["new"]).sign(&body).unwrap();
        assert_eq!(linear(&["old", "new"]).verify(&req(&h, &body, NOW)), Ok(()));
    }

    #[test]
    fn rejects_tampering_wrong_secret_missing_and_malformed() {
        let v = linear(&["s"]);
        let body = body_at(NOW * 1000);
        let h = v.sign(&body).unwrap();
        let tampered = body_at(NOW * 1000 + 1);
        assert_eq!(
            v.verify(&req(&h, &tampered, NOW)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            linear(&["x"]).verify(&req(&h, &body, NOW)),
            Err(VerifyError::Mismatch)
        );
        let other_body = v.sign(&body_at(NOW * 1000 - 5)).unwrap();
        assert_eq!(
            v.verify(&req(&other_body, &body, NOW)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            v.verify(&req(&without_header(&h, HEADER), &body, NOW)),
            Err(VerifyError::MissingHeader(HEADER))
        );
        for bad in ["sha256=00", "xyz", ""] {
            let h = with_header(&h, HEADER, bad);
            assert_eq!(
                v.verify(&req(&h, &body, NOW)),
                Err(VerifyError::MalformedHeader(HEADER)),
                "{bad}"
            );
        }
    }

    #[test]
    fn signed_body_without_usable_timestamp_is_rejected() {
        let v = linear(&["s"]);
        for body in [
            &br#"{"action":"create"}"#[..],
            b"not json",
            br#"{"webhookTimestamp":"soon"}"#,
        ] {
            let h = v.sign(body).unwrap();
            assert_eq!(
                v.verify(&req(&h, body, NOW)),
                Err(VerifyError::MalformedBody(TIMESTAMP_FIELD))
            );
        }
    }

    #[test]
    fn timestamp_outside_tolerance_either_way() {
        let v = linear(&["s"]);
        for (ms, ok) in [
            (-60_001, false),
            (60_001, false),
            (-60_000, true),
            (59_999, true),
        ] {
            let body = body_at(NOW * 1000 + ms);
            let h = v.sign(&body).unwrap();
            let expected = if ok {
                Ok(())
            } else {
                Err(VerifyError::StaleTimestamp)
            };
            assert_eq!(v.verify(&req(&h, &body, NOW)), expected, "{ms}");
        }
    }
}
