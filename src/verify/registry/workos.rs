//! WorkOS webhooks: `WorkOS-Signature: t=<unix ms>, v1=<hex>`.
//!
//! Rule (the `workos` Python SDK 10.6.0, `webhooks/_verification.py`, `verify_header`):
//! the header is the timestamp item and the signature item joined by `", "` (comma and
//! one space); the timestamp counts milliseconds; the signature is the lowercase hex
//! HMAC-SHA256 of `"{t}.{raw body}"` with the endpoint's secret as text. The SDK
//! refuses timestamps more than 180 seconds away in either direction; so do we
//! (`tolerance`). Deliberately stricter: the SDK takes whatever precedes `=` on trust
//! (`x=…, zz=…` reads as `t` and `v1`); hookbridge requires the `t` and `v1` keys.

use std::time::Duration;

use crate::verify::recipe::{KeyedList, Recipe, SignatureAt};

/// The signature header.
pub const HEADER: &str = "WorkOS-Signature";
/// The SDK's default tolerance.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(180);

/// A `dsync.user.created` event (trimmed).
pub const SAMPLE_BODY: &[u8] = br#"{"id":"event_01HZ1ABCDEF0123456789ABCDE","event":"dsync.user.created","data":{"id":"directory_user_01E1X1B89NH8Z3SDFJR4H7RGX7","directory_id":"directory_01ECAZ4NV9QMV47GW873HDCX74","email":"marcelina@example.com","state":"active"},"created_at":"2024-06-01T12:00:00.000Z"}"#;

/// `WorkOS-Signature: t=<ms>, v1=<hex HMAC-SHA256(secret, "{t}.{body}")>`.
pub const RECIPE: Recipe = Recipe {
    name: "workos",
    signatures: &[SignatureAt::sha256(HEADER, "")],
    template: "{timestamp}.{body}",
    list: Some(KeyedList {
        separator: ", ",
        timestamp_key: "t",
        signature_key: "v1",
    }),
    timestamp_millis: true,
    default_tolerance: DEFAULT_TOLERANCE,
    sample_body: SAMPLE_BODY,
    ..Recipe::DEFAULTS
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::generic::GenericHmac;
    use crate::verify::testutil::{headers, keys, req};
    use crate::verify::VerifyError;

    const NOW: i64 = 1_717_000_000;

    fn workos(secrets: &[&str]) -> GenericHmac {
        RECIPE
            .build(keys(secrets), Some(DEFAULT_TOLERANCE), &[])
            .unwrap()
    }

    #[test]
    fn independently_computed_known_answer() {
        // Computed with Python's hmac:
        // hmac.new(b"wos_secret", b'1717000000123.{"id":"event_1"}', sha256).hexdigest()
        let value =
            "t=1717000000123, v1=1d99c488eee4111eb84f4f0c16729be933bf075d3c447dd4acb5f9a5ba300311";
        let body = br#"{"id":"event_1"}"#;
        let v = workos(&["wos_secret"]);
        let h = headers(&[(HEADER, value)]);
        assert_eq!(v.verify(&req(&h, body, NOW)), Ok(()));
        let signed = v.sign(body, "", NOW).unwrap();
        let text = signed.get(HEADER).unwrap().to_str().unwrap();
        assert!(text.starts_with("t=1717000000000, v1="), "{text}");
    }

    #[test]
    fn the_window_is_in_milliseconds_and_the_items_need_their_keys() {
        let v = workos(&["wos_secret"]);
        let body = b"{}";
        let h = v.sign(body, "", NOW - 181).unwrap();
        assert_eq!(
            v.verify(&req(&h, body, NOW)),
            Err(VerifyError::StaleTimestamp)
        );
        let h = v.sign(body, "", NOW - 179).unwrap();
        assert_eq!(v.verify(&req(&h, body, NOW)), Ok(()));
        // Without the space WorkOS writes, there is no v1 item.
        let tight = h.get(HEADER).unwrap().to_str().unwrap().replace(", ", ",");
        let tight = headers(&[(HEADER, &tight)]);
        assert!(v.verify(&req(&tight, body, NOW)).is_err());
    }
}
