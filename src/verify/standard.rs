//! Standard Webhooks (and Svix, which it is derived from): `webhook-id`,
//! `webhook-timestamp` and `webhook-signature: v1,<base64> [v1,<base64> …]`, or the same
//! three headers with the `svix-` prefix.
//!
//! Rule (Standard Webhooks specification, "Verifying webhook authenticity",
//! <https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>;
//! Svix, "Verifying Webhooks Manually",
//! <https://docs.svix.com/receiving/verifying-payloads/how-manual>): the signed content is
//! `"{id}.{timestamp}.{raw body}"`; the key is the base64 decoding of the secret after its
//! `whsec_` prefix; the signature header is a space-delimited list of
//! `<version>,<base64 HMAC-SHA256>` entries, of which only `v1` is symmetric (others,
//! such as the asymmetric `v1a`, are ignored). Any `v1` matching any secret is valid.
//! Timestamps more than five minutes away in either direction are rejected, as the
//! reference libraries do.

use std::time::Duration;

use http::HeaderMap;

use super::crypto::{self, Key};
use super::{VerifyError, WebhookRequest};
use crate::signature::ed25519::PublicKey;
use crate::signature::standard::{self as sw, SignatureList};
pub use crate::signature::standard::{
    decode_public_key, decode_secret, parse_signatures, HeaderSet, SVIX_HEADERS, WEBHOOK_HEADERS,
};

/// The tolerance the specification's reference libraries use.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// A `type`/`timestamp`/`data` payload, the shape the specification recommends.
pub const SAMPLE_BODY: &[u8] = br#"{"type":"invoice.paid","timestamp":"2024-06-01T12:00:00Z","data":{"id":"inv_2fB1XhT1nJc8","customer_id":"cus_8Hq2Lw","amount":1999,"currency":"USD"}}"#;

/// Verifies Standard Webhooks / Svix messages.
#[derive(Debug, Clone)]
pub struct StandardWebhooks {
    keys: Vec<Key>,
    /// `v1a` (Ed25519) public keys, from `whpk_…` entries.
    public_keys: Vec<PublicKey>,
    tolerance: Duration,
}

impl StandardWebhooks {
    /// A verifier over already-decoded keys (see [`decode_secret`]).
    pub fn new(keys: Vec<Key>, tolerance: Duration) -> Self {
        StandardWebhooks {
            keys,
            public_keys: Vec::new(),
            tolerance,
        }
    }

    /// Also accepts `v1a` signatures by these public keys.
    pub fn with_public_keys(mut self, public_keys: Vec<PublicKey>) -> Self {
        self.public_keys = public_keys;
        self
    }

    /// The header set the sender used: `webhook-*` when present, else `svix-*`.
    fn header_set(headers: &HeaderMap) -> HeaderSet {
        if !headers.contains_key(WEBHOOK_HEADERS.signature)
            && headers.contains_key(SVIX_HEADERS.signature)
        {
            SVIX_HEADERS
        } else {
            WEBHOOK_HEADERS
        }
    }

    /// Checks the timestamp window, then every `v1` signature against every key.
    pub fn verify(&self, req: &WebhookRequest<'_>) -> Result<(), VerifyError> {
        let names = Self::header_set(req.headers);
        let id = crypto::header_str(req.headers, names.id)?;
        let ts_text = crypto::header_str(req.headers, names.timestamp)?;
        let signature = crypto::header_str(req.headers, names.signature)?;
        let ts =
            crypto::parse_unix(ts_text).ok_or(VerifyError::MalformedHeader(names.timestamp))?;
        let SignatureList::Parsed(tags, asymmetric) = parse_signatures(signature) else {
            return Err(VerifyError::MalformedHeader(names.signature));
        };
        crypto::check_tolerance(ts, req.now, self.tolerance)?;
        let message = (id, ts_text, req.body);
        if sw::verifies(&self.keys, &self.public_keys, message, &tags, &asymmetric) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }

    /// The three `webhook-*` headers, signed with the first key and a fresh message id.
    pub fn sign(&self, body: &[u8], now: i64) -> Option<HeaderMap> {
        self.sign_with_id(&crypto::message_id(now), body, now)
    }

    /// As [`sign`](Self::sign) with a given message id.
    pub fn sign_with_id(&self, id: &str, body: &[u8], now: i64) -> Option<HeaderMap> {
        let key = self.keys.first()?;
        let ts = now.to_string();
        let signature = sw::signature(key, id, &ts, body)?;
        let mut headers = HeaderMap::new();
        crypto::insert_header(&mut headers, WEBHOOK_HEADERS.id, id)?;
        crypto::insert_header(&mut headers, WEBHOOK_HEADERS.timestamp, &ts)?;
        crypto::insert_header(&mut headers, WEBHOOK_HEADERS.signature, &signature)?;
        Some(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::ed25519;
    use base64::Engine as _;

    #[test]
    fn v1a_ed25519_signatures_verify_with_whpk_keys() {
        use base64::engine::general_purpose::STANDARD;
        let seed = [5u8; 32];
        let private =
            openssl::pkey::PKey::private_key_from_raw_bytes(&seed, openssl::pkey::Id::ED25519)
                .unwrap();
        let whpk = format!(
            "whpk_{}",
            STANDARD.encode(private.raw_public_key().unwrap())
        );
        let v = StandardWebhooks::new(Vec::new(), DEFAULT_TOLERANCE)
            .with_public_keys(vec![decode_public_key(&whpk).unwrap()]);
        let (id, ts, body) = ("msg_1", "1717243200", b"{\"a\":1}".as_slice());
        let sig = ed25519::sign(&seed, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]).unwrap();
        let signature = format!(
            "v1,{} v1a,{}",
            STANDARD.encode([0u8; 32]),
            STANDARD.encode(&sig)
        );
        let h = headers(&[
            ("webhook-id", id),
            ("webhook-timestamp", ts),
            ("webhook-signature", &signature),
        ]);
        assert_eq!(v.verify(&req(&h, body, 1_717_243_200)), Ok(()));
        assert_eq!(
            v.verify(&req(&h, b"{\"a\":2}", 1_717_243_200)),
            Err(VerifyError::Mismatch)
        );
        assert!(decode_public_key("whpk_AAAA").is_none());
        assert!(decode_public_key("whsec_AAAA").is_none());
    }
    use crate::verify::testutil::{headers, req, with_header, without_header};
    use proptest::prelude::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// The test vector from the reference implementation's test suite.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const MSG_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1_649_367_553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn verifier(secrets: &[&str]) -> StandardWebhooks {
        let keys = secrets.iter().map(|s| decode_secret(s).unwrap()).collect();
        StandardWebhooks::new(keys, DEFAULT_TOLERANCE)
    }

    fn real_now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn reference_headers(prefix: &str, id: &str, ts: i64, signature: &str) -> HeaderMap {
        headers(&[
            (&format!("{prefix}-id"), id),
            (&format!("{prefix}-timestamp"), &ts.to_string()),
            (&format!("{prefix}-signature"), signature),
        ])
    }

    #[test]
    fn reference_known_answer() {
        let v = verifier(&[SECRET]);
        let h = reference_headers("webhook", MSG_ID, TS, SIGNATURE);
        assert_eq!(v.verify(&req(&h, BODY, TS)), Ok(()));
        assert_eq!(v.sign_with_id(MSG_ID, BODY, TS).unwrap(), h);
    }

    #[test]
    fn svix_branded_headers() {
        let h = reference_headers("svix", MSG_ID, TS, SIGNATURE);
        assert_eq!(verifier(&[SECRET]).verify(&req(&h, BODY, TS)), Ok(()));
    }

    #[test]
    fn secret_without_prefix_is_base64() {
        let bare = SECRET.trim_start_matches("whsec_");
        let h = reference_headers("webhook", MSG_ID, TS, SIGNATURE);
        assert_eq!(verifier(&[bare]).verify(&req(&h, BODY, TS)), Ok(()));
        assert!(decode_secret("whsec_not base64!").is_none());
        assert!(decode_secret("whsec_").is_none());
    }

    #[test]
    fn cross_check_with_reference_crate() {
        let now = real_now();
        let reference = standardwebhooks::Webhook::new(SECRET).unwrap();
        // Reference signs, we verify.
        let sig = reference.sign(MSG_ID, now, BODY).unwrap();
        let h = reference_headers("webhook", MSG_ID, now, &sig);
        assert_eq!(verifier(&[SECRET]).verify(&req(&h, BODY, now)), Ok(()));
        // We sign, reference verifies.
        let ours = verifier(&[SECRET]).sign(BODY, now).unwrap();
        assert!(reference.verify(BODY, &ours).is_ok());
        // And the reference rejects what we would reject.
        assert!(reference.verify(b"{}", &ours).is_err());
    }

    #[test]
    fn rotated_second_secret_is_valid() {
        let new = "whsec_bmV3LXNlY3JldC1rZXktbWF0ZXJpYWw=";
        let h = verifier(&[new]).sign(BODY, TS).unwrap();
        assert_eq!(verifier(&[SECRET, new]).verify(&req(&h, BODY, TS)), Ok(()));
    }

    #[test]
    fn any_of_several_signatures_is_valid_and_other_versions_are_ignored() {
        let list = format!(
            "v1a,{} v1,{} {SIGNATURE} v2,abc",
            "A".repeat(86),
            "B".repeat(43) + "="
        );
        let h = reference_headers("webhook", MSG_ID, TS, &list);
        assert_eq!(verifier(&[SECRET]).verify(&req(&h, BODY, TS)), Ok(()));
        // The right signature under an unknown version is not accepted.
        let wrong_version = SIGNATURE.replacen("v1,", "v2,", 1);
        let h = reference_headers("webhook", MSG_ID, TS, &wrong_version);
        assert_eq!(
            verifier(&[SECRET]).verify(&req(&h, BODY, TS)),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn rejects_tampering_wrong_secret_missing_and_malformed() {
        let v = verifier(&[SECRET]);
        let h = reference_headers("webhook", MSG_ID, TS, SIGNATURE);
        assert_eq!(v.verify(&req(&h, b"{}", TS)), Err(VerifyError::Mismatch));
        let other = verifier(&["whsec_b3RoZXI="]);
        assert_eq!(other.verify(&req(&h, BODY, TS)), Err(VerifyError::Mismatch));
        let other_id = with_header(&h, "webhook-id", "msg_other");
        assert_eq!(
            v.verify(&req(&other_id, BODY, TS)),
            Err(VerifyError::Mismatch)
        );
        let other_body = v.sign(b"other", TS).unwrap();
        let swapped = with_header(
            &h,
            "webhook-signature",
            other_body
                .get("webhook-signature")
                .unwrap()
                .to_str()
                .unwrap(),
        );
        assert_eq!(
            v.verify(&req(&swapped, BODY, TS)),
            Err(VerifyError::Mismatch)
        );
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            let missing = without_header(&h, name);
            assert_eq!(
                v.verify(&req(&missing, BODY, TS)),
                Err(VerifyError::MissingHeader(name)),
                "{name}"
            );
        }
        let bad_ts = with_header(&h, "webhook-timestamp", "soon");
        assert_eq!(
            v.verify(&req(&bad_ts, BODY, TS)),
            Err(VerifyError::MalformedHeader("webhook-timestamp"))
        );
        let bad_sig = with_header(&h, "webhook-signature", "garbage");
        assert_eq!(
            v.verify(&req(&bad_sig, BODY, TS)),
            Err(VerifyError::MalformedHeader("webhook-signature"))
        );
    }

    #[test]
    fn timestamp_outside_tolerance_either_way() {
        let v = verifier(&[SECRET]);
        let h = reference_headers("webhook", MSG_ID, TS, SIGNATURE);
        assert_eq!(
            v.verify(&req(&h, BODY, TS + 301)),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(
            v.verify(&req(&h, BODY, TS - 301)),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(v.verify(&req(&h, BODY, TS + 300)), Ok(()));
    }

    proptest! {
        #[test]
        fn signature_parser_never_panics(s in ".*") {
            let _ = parse_signatures(&s);
        }

        #[test]
        fn signature_parser_never_panics_on_near_valid(s in "(v1[a-z]?,[A-Za-z0-9+/=]{0,60} ?){0,4}") {
            let _ = parse_signatures(&s);
        }

        #[test]
        fn secret_decoder_never_panics(s in ".*") {
            let _ = decode_secret(&s);
        }
    }
}
