//! Paddle Billing webhooks: `Paddle-Signature: ts=<unix>;h1=<hex>[;h1=<hex>…]`.
//!
//! Rule (Paddle Developer docs, "Verify webhook signatures",
//! <https://developer.paddle.com/webhooks/signature-verification>): split the header on
//! `;` and each item on `=`; `ts` is the timestamp and `h1` the signature — several
//! `h1` values appear while a secret is being rotated. The expected signature is the hex
//! HMAC-SHA256 of `"{ts}:{raw body}"` keyed with the notification destination's secret
//! key (`pdl_ntfset_…`, used as text). Paddle's SDKs reject timestamps more than five
//! seconds away by default; we use the same default, which assumes NTP-synchronised
//! clocks (raise `tolerance` if yours drift). Paddle Classic's `p_signature` (RSA over a
//! PHP-serialized form) is a different product and not supported.

use std::time::Duration;

use crate::verify::recipe::{KeyedList, Recipe, SignatureAt};

/// The signature header.
pub const HEADER: &str = "Paddle-Signature";
/// Paddle's SDK default tolerance.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5);

/// A `transaction.completed` notification (trimmed).
pub const SAMPLE_BODY: &[u8] = br#"{"event_id":"evt_01hv8x2acma2gz4jx7tzhng9f5","event_type":"transaction.completed","occurred_at":"2024-06-01T12:00:00.000000Z","notification_id":"ntf_01hv8x2af3qe0ja6gbmgsszsq7","data":{"id":"txn_01hv8wptq8987qeep44cyrewp9","status":"completed","customer_id":"ctm_01hv8wt8nffez4p2t6typn4a5j","currency_code":"USD","details":{"totals":{"subtotal":"2400","tax":"0","total":"2400"}}}}"#;

/// The keyed list in the signature header.
const LIST: KeyedList = KeyedList {
    separator: ";",
    timestamp_key: "ts",
    signature_key: "h1",
};

/// `Paddle-Signature: ts=<ts>;h1=<hex HMAC-SHA256(secret, "{ts}:{body}")>`.
pub const RECIPE: Recipe = Recipe {
    name: "paddle",
    signatures: &[SignatureAt::sha256(HEADER, "")],
    template: "{timestamp}:{body}",
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

    const NOW: i64 = 1_671_552_777;

    fn paddle(secrets: &[&str]) -> GenericHmac {
        RECIPE
            .build(keys(secrets), Some(DEFAULT_TOLERANCE), &[])
            .unwrap()
    }

    #[test]
    fn independently_computed_known_answer() {
        // Paddle publishes no complete vector. Computed with Python:
        // hmac.new(b"pdl_ntfset_test", b'1671552777:{"event_id":"evt_1"}', sha256).hexdigest()
        let expected = format!("ts=1671552777;h1={PY_H1}");
        let v = paddle(&["pdl_ntfset_test"]);
        let h = headers(&[(HEADER, &expected)]);
        assert_eq!(v.verify(&req(&h, br#"{"event_id":"evt_1"}"#, NOW)), Ok(()));
        assert_eq!(v.sign(br#"{"event_id":"evt_1"}"#, "", NOW).unwrap(), h);
    }

    const PY_H1: &str = "9a62cc502557c2fe7a0d0a6a9d5bd0ae459e6c77d367478d8e845c6450c71b9d";

    #[test]
    fn rotated_second_secret_is_valid() {
        let h = paddle(&["new"]).sign(b"{}", "", NOW).unwrap();
        assert_eq!(paddle(&["old", "new"]).verify(&req(&h, b"{}", NOW)), Ok(()));
    }

    #[test]
    fn any_of_several_h1_signatures_is_valid() {
        let good = paddle(&["a"]).sign(b"{}", "", NOW).unwrap();
        let good = good.get(HEADER).unwrap().to_str().unwrap().to_owned();
        let h1 = good.split("h1=").nth(1).unwrap();
        let value = format!("ts={NOW};h1={};h1={h1};h2=zz", "0".repeat(64));
        let h = headers(&[(HEADER, &value)]);
        assert_eq!(paddle(&["a"]).verify(&req(&h, b"{}", NOW)), Ok(()));
    }

    #[test]
    fn rejects_tampering_wrong_secret_missing_and_malformed() {
        let v = paddle(&["a"]);
        let h = v.sign(b"{\"x\":1}", "", NOW).unwrap();
        assert_eq!(
            v.verify(&req(&h, b"{\"x\":2}", NOW)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            paddle(&["b"]).verify(&req(&h, b"{\"x\":1}", NOW)),
            Err(VerifyError::Mismatch)
        );
        let other = v.sign(b"other", "", NOW).unwrap();
        assert_eq!(
            v.verify(&req(&other, b"{\"x\":1}", NOW)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            v.verify(&req(&without_header(&h, HEADER), b"", NOW)),
            Err(VerifyError::MissingHeader(HEADER))
        );
        for bad in [
            "garbage",
            "h1=00",
            "ts=x;h1=00",
            "ts=1;ts=1;h1=00",
            "ts=1,h1=00",
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
        let v = paddle(&["a"]);
        let old = v.sign(b"{}", "", NOW - 6).unwrap();
        assert_eq!(
            v.verify(&req(&old, b"{}", NOW)),
            Err(VerifyError::StaleTimestamp)
        );
        let future = v.sign(b"{}", "", NOW + 6).unwrap();
        assert_eq!(
            v.verify(&req(&future, b"{}", NOW)),
            Err(VerifyError::StaleTimestamp)
        );
        let edge = v.sign(b"{}", "", NOW - 5).unwrap();
        assert_eq!(v.verify(&req(&edge, b"{}", NOW)), Ok(()));
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in ".*") {
            let _ = LIST.parse(&s, Algorithm::Sha256);
        }

        #[test]
        fn parser_never_panics_on_near_valid(ts in "[0-9]{0,20}", sig in "[0-9a-fA-F=;]{0,80}") {
            let _ = LIST.parse(&format!("ts={ts};h1={sig}"), Algorithm::Sha256);
        }
    }
}
