//! Square webhooks: `x-square-hmacsha256-signature: base64(HMAC-SHA256(signature_key, notification_url + body))`.
//!
//! Rule (Square Developer docs, "Verify and Validate an Event Notification",
//! <https://developer.squareup.com/docs/webhooks/step3validate>): concatenate the
//! subscription's notification URL, exactly as configured in Square, and the raw body;
//! HMAC-SHA256 it with the subscription's signature key and base64-encode. The URL is
//! `WebhookRequest::url` (the HTTP handler's configured public URL when behind a proxy).
//! Square signs no timestamp, so there is no replay window to check; deduplicate on the
//! body's `event_id` downstream. The legacy HMAC-SHA1 `x-square-signature` header is not
//! supported.

use crate::verify::recipe::{Encoding, Recipe, SignatureAt};

/// The signature header.
pub const HEADER: &str = "x-square-hmacsha256-signature";

/// A `payment.created` event (trimmed).
pub const SAMPLE_BODY: &[u8] = br#"{"merchant_id":"6SSW7HV8K2ST5","type":"payment.created","event_id":"13b867cf-db3d-4b1c-90b6-2f32a9d78124","created_at":"2024-06-01T12:00:00.000Z","data":{"type":"payment","id":"KkAkhdMsgzn59SM8A89WgKwekxLZY","object":{"payment":{"id":"KkAkhdMsgzn59SM8A89WgKwekxLZY","amount_money":{"amount":100,"currency":"USD"},"status":"APPROVED","location_id":"S8GWD5R9QB376","order_id":"03O3USaPaAaFnI6kkwB1JxGgBsUZY"}}}}"#;

/// `x-square-hmacsha256-signature: <base64 HMAC-SHA256(key, notification URL + body)>`.
pub const RECIPE: Recipe = Recipe {
    name: "square",
    signatures: &[SignatureAt::sha256(HEADER, "")],
    encoding: Encoding::Base64,
    template: "{url}{body}",
    sample_body: SAMPLE_BODY,
    ..Recipe::DEFAULTS
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::generic::GenericHmac;
    use crate::verify::testutil::{headers, keys};
    use crate::verify::{VerifyError, WebhookRequest};
    use http::HeaderMap;

    const URL: &str = "https://example.com/webhook";

    fn square(secrets: &[&str]) -> GenericHmac {
        RECIPE.build(keys(secrets), None, &[]).unwrap()
    }

    fn req<'a>(headers: &'a HeaderMap, body: &'a [u8], url: &'a str) -> WebhookRequest<'a> {
        WebhookRequest {
            headers,
            body,
            url,
            now: 0,
        }
    }

    #[test]
    fn independently_computed_known_answer() {
        // Square publishes no vector. Computed with Python:
        // base64.b64encode(hmac.new(b"sig-key", b'https://example.com/webhook{"a":1}', sha256).digest())
        let h = headers(&[(HEADER, PY_SIGNATURE)]);
        assert_eq!(
            square(&["sig-key"]).verify(&req(&h, br#"{"a":1}"#, URL)),
            Ok(())
        );
        assert_eq!(square(&["sig-key"]).sign(br#"{"a":1}"#, URL, 0).unwrap(), h);
    }

    const PY_SIGNATURE: &str = "cwz1uOGMYa/oQ4qEs+1KuEiobrcJTcu3cDWqhiGS1Xw=";

    #[test]
    fn rotated_second_secret_is_valid() {
        let h = square(&["new"]).sign(b"{}", URL, 0).unwrap();
        assert_eq!(square(&["old", "new"]).verify(&req(&h, b"{}", URL)), Ok(()));
    }

    #[test]
    fn rejects_tampering_wrong_secret_url_missing_and_malformed() {
        let v = square(&["k"]);
        let h = v.sign(b"{\"a\":1}", URL, 0).unwrap();
        assert_eq!(
            v.verify(&req(&h, b"{\"a\":2}", URL)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            square(&["x"]).verify(&req(&h, b"{\"a\":1}", URL)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            v.verify(&req(&h, b"{\"a\":1}", "https://example.com/other")),
            Err(VerifyError::Mismatch)
        );
        let other = v.sign(b"other", URL, 0).unwrap();
        assert_eq!(
            v.verify(&req(&other, b"{\"a\":1}", URL)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            v.verify(&req(&HeaderMap::new(), b"", URL)),
            Err(VerifyError::MissingHeader(HEADER))
        );
        let bad = headers(&[(HEADER, "!!")]);
        assert_eq!(
            v.verify(&req(&bad, b"", URL)),
            Err(VerifyError::MalformedHeader(HEADER))
        );
    }
}
