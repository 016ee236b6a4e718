//! Stripe webhooks: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…][,v0=…]`.
//!
//! Rule (Stripe Docs, "Verify webhook signatures manually",
//! <https://docs.stripe.com/webhooks#verify-manually>): split the header on `,` and each
//! item on `=`; `t` is the timestamp and every `v1` is a signature (other schemes such
//! as `v0` are ignored). The expected signature is the hex HMAC-SHA256 of
//! `"{t}.{raw body}"` keyed with the endpoint's whole signing secret (`whsec_…`, used as
//! text, not decoded). Any `v1` matching any configured secret is valid — Stripe sends
//! one per active secret while a secret is being rolled. Stripe's libraries reject
//! timestamps more than 5 minutes away by default; so do we (`tolerance`).

use std::time::Duration;

use crate::verify::recipe::{KeyedList, Recipe, SignatureAt};

/// The signature header.
pub const HEADER: &str = "Stripe-Signature";
/// Stripe's default tolerance.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// A `payment_intent.succeeded` event.
pub const SAMPLE_BODY: &[u8] = br#"{"id":"evt_3PqXyZ2eZvKYlo2C0abc1234","object":"event","api_version":"2024-06-20","created":1717000000,"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"type":"payment_intent.succeeded","data":{"object":{"id":"pi_3PqXyZ2eZvKYlo2C0def5678","object":"payment_intent","amount":2000,"amount_received":2000,"currency":"usd","status":"succeeded","customer":null,"metadata":{"order_id":"6735"}}}}"#;

/// The keyed list in the signature header.
const LIST: KeyedList = KeyedList {
    separator: ",",
    timestamp_key: "t",
    signature_key: "v1",
};

/// `Stripe-Signature: t=<ts>,v1=<hex HMAC-SHA256(whsec_… string, "{ts}.{body}")>[,v1=…]`.
pub const RECIPE: Recipe = Recipe {
    name: "stripe",
    signatures: &[SignatureAt::sha256(HEADER, "")],
    template: "{timestamp}.{body}",
    list: Some(LIST),
    default_tolerance: DEFAULT_TOLERANCE,
    sample_body: SAMPLE_BODY,
    ..Recipe::DEFAULTS
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::crypto::Algorithm;
    use crate::verify::generic::GenericHmac;
    use crate::verify::testutil::{headers, keys, req, with_header, without_header};
    use crate::verify::VerifyError;
    use proptest::prelude::*;

    const NOW: i64 = 1_717_000_000;

    fn stripe(secrets: &[&str]) -> GenericHmac {
        RECIPE
            .build(keys(secrets), Some(DEFAULT_TOLERANCE), &[])
            .unwrap()
    }

    #[test]
    fn independently_computed_known_answer() {
        // Stripe publishes no test vector; this one was computed with Python's hmac:
        // hmac.new(b"whsec_test_secret", b'1717000000.{"id":"evt_1"}', sha256).hexdigest()
        let expected =
            "t=1717000000,v1=fb31d13c3916142ae20b63df36c31ba9c9c013567f642289d1b87880360f5922";
        let v = stripe(&["whsec_test_secret"]);
        let h = headers(&[(HEADER, expected)]);
        assert_eq!(v.verify(&req(&h, br#"{"id":"evt_1"}"#, NOW)), Ok(()));
        let signed = v.sign(br#"{"id":"evt_1"}"#, "", NOW).unwrap();
        assert_eq!(signed.get(HEADER).unwrap(), expected);
    }

    #[test]
    fn rotated_second_secret_is_valid() {
        let h = stripe(&["whsec_new"]).sign(b"{}", "", NOW).unwrap();
        assert_eq!(
            stripe(&["whsec_old", "whsec_new"]).verify(&req(&h, b"{}", NOW)),
            Ok(())
        );
    }

    #[test]
    fn any_of_several_v1_signatures_is_valid_and_v0_is_ignored() {
        let good = stripe(&["whsec_a"]).sign(b"{}", "", NOW).unwrap();
        let good_v1 = good
            .get(HEADER)
            .unwrap()
            .to_str()
            .unwrap()
            .split("v1=")
            .nth(1)
            .unwrap()
            .to_owned();
        let value = format!(
            "t={NOW},v1={},v1={good_v1},v0={}",
            "ab".repeat(32),
            "cd".repeat(32)
        );
        let h = headers(&[(HEADER, &value)]);
        assert_eq!(stripe(&["whsec_a"]).verify(&req(&h, b"{}", NOW)), Ok(()));
        // Only a v0 (test-mode scheme) with the right value: still not accepted.
        let v0_only = headers(&[(HEADER, &format!("t={NOW},v0={good_v1}"))]);
        assert_eq!(
            stripe(&["whsec_a"]).verify(&req(&v0_only, b"{}", NOW)),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn rejects_tampering_wrong_secret_missing_and_malformed() {
        let v = stripe(&["whsec_a"]);
        let h = v.sign(b"{\"amount\":1}", "", NOW).unwrap();
        assert_eq!(
            v.verify(&req(&h, b"{\"amount\":9}", NOW)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            stripe(&["whsec_b"]).verify(&req(&h, b"{\"amount\":1}", NOW)),
            Err(VerifyError::Mismatch)
        );
        let other = v.sign(b"other", "", NOW).unwrap();
        assert_eq!(
            v.verify(&req(&other, b"{\"amount\":1}", NOW)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            v.verify(&req(&without_header(&h, HEADER), b"", NOW)),
            Err(VerifyError::MissingHeader(HEADER))
        );
        for bad in [
            "garbage",
            "v1=abcd",
            "t=abc,v1=00",
            "t=1,t=2,v1=00",
            "t=-5,v1=00",
            "t=",
        ] {
            let h = with_header(&h, HEADER, bad);
            assert_eq!(
                v.verify(&req(&h, b"", NOW)),
                Err(VerifyError::MalformedHeader(HEADER)),
                "{bad}"
            );
        }
    }

    #[test]
    fn timestamp_outside_tolerance_either_way() {
        let v = stripe(&["whsec_a"]);
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
        let edge = v.sign(b"{}", "", NOW - 300).unwrap();
        assert_eq!(v.verify(&req(&edge, b"{}", NOW)), Ok(()));
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in ".*") {
            let _ = LIST.parse(&s, Algorithm::Sha256);
        }

        #[test]
        fn parser_never_panics_on_near_valid(t in "[0-9]{0,20}", sig in "[0-9a-fA-F=,]{0,80}") {
            let _ = LIST.parse(&format!("t={t},v1={sig}"), Algorithm::Sha256);
        }
    }
}
