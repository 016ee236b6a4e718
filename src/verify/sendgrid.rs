//! SendGrid Event Webhook: `X-Twilio-Email-Event-Webhook-Signature: <base64 DER ECDSA
//! P-256 / SHA-256 signature of timestamp + body>` and
//! `X-Twilio-Email-Event-Webhook-Timestamp`, checked against the verification key shown
//! in SendGrid's settings (base64 DER SubjectPublicKeyInfo).
//!
//! Rule (Twilio SendGrid Docs, "Getting Started with the Event Webhook Security
//! Features"): verify the signature of the timestamp header's text followed by the raw
//! body. SendGrid states no replay window and retries failed batches for hours, so none
//! is applied unless `tolerance` is set. Only SendGrid holds the private key, so
//! `hookbridge send` cannot sign for this scheme.

use std::time::Duration;

use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::sign::Verifier;

use super::crypto;
use super::{VerifyError, WebhookRequest};

/// The signature header.
pub const SIGNATURE: &str = "X-Twilio-Email-Event-Webhook-Signature";
/// The timestamp header.
pub const TIMESTAMP: &str = "X-Twilio-Email-Event-Webhook-Timestamp";

/// A batch of two events.
pub const SAMPLE_BODY: &[u8] = br#"[{"email":"example@test.com","timestamp":1717243200,"event":"processed","sg_event_id":"sg_1","sg_message_id":"msg_1"},{"email":"example@test.com","timestamp":1717243201,"event":"delivered","sg_event_id":"sg_2","sg_message_id":"msg_1"}]"#;

/// An ECDSA P-256 verification key.
#[derive(Clone)]
pub struct VerificationKey(PKey<Public>);

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerificationKey(EC P-256)")
    }
}

impl VerificationKey {
    /// From base64 of the DER SubjectPublicKeyInfo, as SendGrid shows it; `None` if it
    /// is not an EC key.
    pub fn from_base64(text: &str) -> Option<Self> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()?;
        let key = PKey::public_key_from_der(&der).ok()?;
        key.ec_key().ok()?;
        Some(VerificationKey(key))
    }
}

/// Verifies SendGrid Event Webhook batches.
#[derive(Debug, Clone)]
pub struct Sendgrid {
    keys: Vec<VerificationKey>,
    tolerance: Option<Duration>,
}

impl Sendgrid {
    /// A verifier over `keys`, with an optional replay window.
    pub fn new(keys: Vec<VerificationKey>, tolerance: Option<Duration>) -> Self {
        Sendgrid { keys, tolerance }
    }

    /// Checks the window (if set), then the signature of timestamp + body, streamed.
    pub fn verify(&self, req: &WebhookRequest<'_>) -> Result<(), VerifyError> {
        let ts_text = crypto::header_str(req.headers, TIMESTAMP)?;
        let signature = crypto::header_str(req.headers, SIGNATURE)?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|_| VerifyError::MalformedHeader(SIGNATURE))?;
        if let Some(tolerance) = self.tolerance {
            let ts = crypto::parse_unix(ts_text).ok_or(VerifyError::MalformedHeader(TIMESTAMP))?;
            crypto::check_tolerance(ts, req.now, tolerance)?;
        }
        let signed_by = |key: &VerificationKey| {
            Verifier::new(MessageDigest::sha256(), &key.0)
                .and_then(|mut v| {
                    v.update(ts_text.as_bytes())?;
                    v.update(req.body)?;
                    v.verify(&signature)
                })
                .unwrap_or(false)
        };
        if self.keys.iter().any(signed_by) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{headers, req};
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::pkey::Private;
    use openssl::sign::Signer;

    const NOW: i64 = 1_717_243_200;

    fn key_pair() -> (PKey<Private>, String) {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let private = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let der = private.public_key_to_der().unwrap();
        (
            private,
            base64::engine::general_purpose::STANDARD.encode(der),
        )
    }

    fn signed(private: &PKey<Private>, ts: &str, body: &[u8]) -> http::HeaderMap {
        let mut signer = Signer::new(MessageDigest::sha256(), private).unwrap();
        signer.update(ts.as_bytes()).unwrap();
        signer.update(body).unwrap();
        let sig = base64::engine::general_purpose::STANDARD.encode(signer.sign_to_vec().unwrap());
        headers(&[(SIGNATURE, &sig), (TIMESTAMP, ts)])
    }

    #[test]
    fn signed_batches_verify_with_any_key() {
        let (private, public) = key_pair();
        let (_, other) = key_pair();
        let keys = |list: &[&str]| {
            list.iter()
                .map(|k| VerificationKey::from_base64(k).unwrap())
                .collect::<Vec<_>>()
        };
        let h = signed(&private, "1717243200", SAMPLE_BODY);
        let v = Sendgrid::new(keys(&[&other, &public]), None);
        assert_eq!(v.verify(&req(&h, SAMPLE_BODY, NOW)), Ok(()));
        assert_eq!(v.verify(&req(&h, b"[]", NOW)), Err(VerifyError::Mismatch));
        assert_eq!(
            Sendgrid::new(keys(&[&other]), None).verify(&req(&h, SAMPLE_BODY, NOW)),
            Err(VerifyError::Mismatch)
        );
        // No window unless configured; with one, old batches are refused.
        assert_eq!(v.verify(&req(&h, SAMPLE_BODY, NOW + 86_400)), Ok(()));
        let windowed = Sendgrid::new(keys(&[&public]), Some(Duration::from_secs(300)));
        assert_eq!(
            windowed.verify(&req(&h, SAMPLE_BODY, NOW + 301)),
            Err(VerifyError::StaleTimestamp)
        );
    }

    #[test]
    fn malformed_keys_and_signatures() {
        assert!(VerificationKey::from_base64("not base64!").is_none());
        assert!(VerificationKey::from_base64("AAAA").is_none());
        let (_, public) = key_pair();
        let v = Sendgrid::new(vec![VerificationKey::from_base64(&public).unwrap()], None);
        let h = headers(&[(SIGNATURE, "###"), (TIMESTAMP, "1")]);
        assert_eq!(
            v.verify(&req(&h, b"[]", NOW)),
            Err(VerifyError::MalformedHeader(SIGNATURE))
        );
        let h = headers(&[(SIGNATURE, "AAAA"), (TIMESTAMP, "1")]);
        assert_eq!(v.verify(&req(&h, b"[]", NOW)), Err(VerifyError::Mismatch));
    }
}
