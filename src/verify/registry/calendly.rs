//! Calendly webhooks: `Calendly-Webhook-Signature: t=<unix>,v1=<hex>`.
//!
//! Rule (Calendly Developer docs, "Webhook signatures"): split the header on `,` and
//! each item on `=`; `t` is the Unix-seconds timestamp and `v1` the lowercase hex
//! HMAC-SHA256 of `"{t}.{raw body}"` keyed with the webhook signing key. Calendly's own
//! example refuses timestamps older than 3 minutes; hookbridge does so in both
//! directions (`tolerance`). Calendly publishes no verification library, so the tests
//! are known answers computed independently.

use std::time::Duration;

use crate::verify::recipe::{KeyedList, Recipe, SignatureAt};

/// The signature header.
pub const HEADER: &str = "Calendly-Webhook-Signature";
/// The tolerance of Calendly's example.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(180);

/// An `invitee.created` event (trimmed).
pub const SAMPLE_BODY: &[u8] = br#"{"created_at":"2024-06-01T12:00:00.000000Z","created_by":"https://api.calendly.com/users/AAAAAAAAAAAAAAAA","event":"invitee.created","payload":{"email":"test@example.com","name":"John Doe","status":"active","uri":"https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2/invitees/AAAAAAAAAAAAAAAA"}}"#;

/// `Calendly-Webhook-Signature: t=<ts>,v1=<hex HMAC-SHA256(key, "{ts}.{body}")>`.
pub const RECIPE: Recipe = Recipe {
    name: "calendly",
    signatures: &[SignatureAt::sha256(HEADER, "")],
    template: "{timestamp}.{body}",
    list: Some(KeyedList {
        separator: ",",
        timestamp_key: "t",
        signature_key: "v1",
    }),
    default_tolerance: DEFAULT_TOLERANCE,
    sample_body: SAMPLE_BODY,
    ..Recipe::DEFAULTS
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{headers, keys, req};
    use crate::verify::VerifyError;

    const NOW: i64 = 1_717_000_000;

    #[test]
    fn independently_computed_known_answer() {
        // Computed with Python's hmac:
        // hmac.new(b"calendly_key", b'1717000000.{"event":"invitee.created"}', sha256).hexdigest()
        let value = format!("t=1717000000,v1={}", KNOWN);
        let body = br#"{"event":"invitee.created"}"#;
        let v = RECIPE.build(keys(&["calendly_key"]), None, &[]).unwrap();
        let h = headers(&[(HEADER, &value)]);
        assert_eq!(v.verify(&req(&h, body, NOW)), Ok(()));
        assert_eq!(
            v.sign(body, "", NOW).unwrap().get(HEADER).unwrap(),
            value.as_str()
        );
        assert_eq!(
            v.verify(&req(&h, body, NOW + 181)),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(v.verify(&req(&h, b"{}", NOW)), Err(VerifyError::Mismatch));
    }

    const KNOWN: &str = "1ea65271e4de357a3f66e5945b6a3546f90edd445ab1cfc469044ea9ae5a9317";
}
