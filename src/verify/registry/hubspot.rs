//! HubSpot webhooks, signature v3: `X-HubSpot-Signature-v3: <base64 HMAC-SHA256(client
//! secret, "POST" + URL + body + timestamp)>` with `X-HubSpot-Request-Timestamp` in
//! milliseconds.
//!
//! Rule (HubSpot Developer Docs, "Validating requests — Validate requests using the v3
//! request signature"; `hubspot-api-client`'s `Signature.get_signature`): the signed
//! content is the method, the full request URL, the raw body and the timestamp header's
//! text; requests older than five minutes are refused. HubSpot signs the URL it calls,
//! so a source needs `public_url` or `trust_forwarded_from`. The library refuses only
//! old timestamps; hookbridge also refuses ones more than five minutes ahead.

use std::time::Duration;

use crate::verify::recipe::{Encoding, Recipe, SignatureAt};

/// The signature header.
pub const SIGNATURE: &str = "X-HubSpot-Signature-v3";
/// The timestamp header (Unix milliseconds).
pub const TIMESTAMP: &str = "X-HubSpot-Request-Timestamp";
/// HubSpot's window.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// A batch with one `contact.creation` event.
pub const SAMPLE_BODY: &[u8] = br#"[{"eventId":100,"subscriptionId":1234,"portalId":62515,"appId":54321,"occurredAt":1717243200000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeFlag":"CREATED","changeSource":"CRM"}]"#;

/// Webhooks are always POSTed, so the method in the signed content is constant.
pub const RECIPE: Recipe = Recipe {
    name: "hubspot",
    signatures: &[SignatureAt::sha256(SIGNATURE, "")],
    encoding: Encoding::Base64,
    template: "POST{url}{body}{timestamp}",
    timestamp_header: Some(TIMESTAMP),
    timestamp_millis: true,
    default_tolerance: DEFAULT_TOLERANCE,
    sample_body: SAMPLE_BODY,
    ..Recipe::DEFAULTS
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{headers, keys};
    use crate::verify::{VerifyError, WebhookRequest};

    const URL: &str = "https://hooks.example.com/hubspot?portal=1";
    const NOW: i64 = 1_717_243_200;

    fn req<'a>(h: &'a http::HeaderMap, body: &'a [u8], now: i64) -> WebhookRequest<'a> {
        WebhookRequest {
            headers: h,
            body,
            url: URL,
            now,
        }
    }

    #[test]
    fn independently_computed_known_answer() {
        // Python: base64(hmac.new(b"hs-secret", b"POST" + URL + b"[]" + b"1717243200000",
        // sha256).digest())
        let v = RECIPE.build(keys(&["hs-secret"]), None, &[]).unwrap();
        let signed = v.sign(b"[]", URL, NOW).unwrap();
        assert_eq!(signed.get(TIMESTAMP).unwrap(), "1717243200000");
        assert_eq!(
            signed.get(SIGNATURE).unwrap(),
            "SUumuz4MwAg5jjy8tO4x9P0JjjgCUBbOExyhQatpXf4="
        );
        assert_eq!(v.verify(&req(&signed, b"[]", NOW)), Ok(()));
    }

    #[test]
    fn millisecond_window_and_tampering() {
        let v = RECIPE.build(keys(&["hs-secret"]), None, &[]).unwrap();
        let h = v.sign(b"[]", URL, NOW).unwrap();
        assert_eq!(
            v.verify(&req(&h, b"[]", NOW + 301)),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(v.verify(&req(&h, b"[]", NOW + 299)), Ok(()));
        assert_eq!(v.verify(&req(&h, b"[1]", NOW)), Err(VerifyError::Mismatch));
        let seconds = headers(&[
            (SIGNATURE, h.get(SIGNATURE).unwrap().to_str().unwrap()),
            (TIMESTAMP, "1717243200"),
        ]);
        assert_eq!(
            v.verify(&req(&seconds, b"[]", NOW)),
            Err(VerifyError::StaleTimestamp)
        );
    }
}
