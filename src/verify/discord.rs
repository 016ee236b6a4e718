//! Discord interactions: `X-Signature-Ed25519: <hex Ed25519 signature of timestamp +
//! body>` and `X-Signature-Timestamp`, checked against the application's public key.
//!
//! Rule (Discord Developer Docs, "Interactions — Receiving and Responding, Security and
//! Authorization"): verify the signature of the timestamp header's text followed by the
//! raw body with the app's public key; answer a `PING` (`{"type":1}`) with
//! `{"type":1}`. Discord states no replay window; hookbridge applies one anyway
//! (`tolerance`, default 5 minutes, both ways) since the timestamp is signed — a
//! deliberate, stricter difference. Discord signs with a private key only it holds, so
//! `hookbridge send` cannot sign for this scheme.

use std::time::Duration;

use http::HeaderMap;
use serde::Deserialize;

use super::crypto;
use super::ed25519::{self, PublicKey};
use super::{Handshake, VerifyError, WebhookRequest};

/// The signature header.
pub const SIGNATURE: &str = "X-Signature-Ed25519";
/// The timestamp header.
pub const TIMESTAMP: &str = "X-Signature-Timestamp";
/// hookbridge's replay window for Discord.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// An `APPLICATION_COMMAND` interaction (trimmed).
pub const SAMPLE_BODY: &[u8] = br#"{"type":2,"id":"1234567890","application_id":"987654321","token":"interaction-token","data":{"name":"hello","type":1}}"#;

/// Verifies Discord interactions and answers `PING`.
#[derive(Debug, Clone)]
pub struct Discord {
    keys: Vec<PublicKey>,
    tolerance: Duration,
}

#[derive(Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: Option<u64>,
}

impl Discord {
    /// A verifier over application public keys `keys`.
    pub fn new(keys: Vec<PublicKey>, tolerance: Duration) -> Self {
        Discord { keys, tolerance }
    }

    /// Checks the timestamp window, then the signature of timestamp + body.
    pub fn verify(&self, req: &WebhookRequest<'_>) -> Result<(), VerifyError> {
        let ts_text = crypto::header_str(req.headers, TIMESTAMP)?;
        let signature = crypto::header_str(req.headers, SIGNATURE)?;
        let ts = crypto::parse_unix(ts_text).ok_or(VerifyError::MalformedHeader(TIMESTAMP))?;
        let signature = ed25519::signature_from_hex(signature)
            .ok_or(VerifyError::MalformedHeader(SIGNATURE))?;
        crypto::check_tolerance(ts, req.now, self.tolerance)?;
        if ed25519::verify_any(&self.keys, &[ts_text.as_bytes(), req.body], &signature) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }

    /// `PING` → `{"type":1}`.
    pub fn handshake(&self, req: &WebhookRequest<'_>) -> Option<Handshake> {
        let interaction: Interaction = serde_json::from_slice(req.body).ok()?;
        (interaction.kind == Some(1)).then(|| Handshake::json(&serde_json::json!({ "type": 1 })))?
    }

    /// The headers for `body` signed with the private key `seed` at `now` (tests).
    pub fn sign_with(seed: &[u8; 32], body: &[u8], now: i64) -> Option<HeaderMap> {
        let ts = now.to_string();
        let signature = ed25519::sign(seed, &[ts.as_bytes(), body])?;
        let mut headers = HeaderMap::new();
        crypto::insert_header(&mut headers, TIMESTAMP, &ts)?;
        crypto::insert_header(&mut headers, SIGNATURE, &hex::encode(signature))?;
        Some(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{req, with_header, without_header};

    const NOW: i64 = 1_717_243_200;
    const SEED: [u8; 32] = [7u8; 32];
    const OTHER_SEED: [u8; 32] = [9u8; 32];

    fn public(seed: &[u8; 32]) -> PublicKey {
        let key = openssl::pkey::PKey::private_key_from_raw_bytes(seed, openssl::pkey::Id::ED25519)
            .unwrap();
        PublicKey::from_hex(&hex::encode(key.raw_public_key().unwrap())).unwrap()
    }

    fn discord(seeds: &[&[u8; 32]]) -> Discord {
        Discord::new(seeds.iter().map(|s| public(s)).collect(), DEFAULT_TOLERANCE)
    }

    #[test]
    fn signed_interactions_verify_with_any_key() {
        let h = Discord::sign_with(&SEED, SAMPLE_BODY, NOW).unwrap();
        assert_eq!(discord(&[&SEED]).verify(&req(&h, SAMPLE_BODY, NOW)), Ok(()));
        assert_eq!(
            discord(&[&OTHER_SEED, &SEED]).verify(&req(&h, SAMPLE_BODY, NOW)),
            Ok(())
        );
        assert_eq!(
            discord(&[&OTHER_SEED]).verify(&req(&h, SAMPLE_BODY, NOW)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            discord(&[&SEED]).verify(&req(&h, b"{\"type\":3}", NOW)),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn stale_missing_and_malformed() {
        let v = discord(&[&SEED]);
        let old = Discord::sign_with(&SEED, b"{}", NOW - 301).unwrap();
        assert_eq!(
            v.verify(&req(&old, b"{}", NOW)),
            Err(VerifyError::StaleTimestamp)
        );
        let h = Discord::sign_with(&SEED, b"{}", NOW).unwrap();
        assert_eq!(
            v.verify(&req(&without_header(&h, SIGNATURE), b"{}", NOW)),
            Err(VerifyError::MissingHeader(SIGNATURE))
        );
        let upper = h.get(SIGNATURE).unwrap().to_str().unwrap().to_owned() + "00";
        assert_eq!(
            v.verify(&req(&with_header(&h, SIGNATURE, &upper), b"{}", NOW)),
            Err(VerifyError::MalformedHeader(SIGNATURE))
        );
    }

    #[test]
    fn ping_is_answered() {
        let v = discord(&[&SEED]);
        let h = Discord::sign_with(&SEED, b"{\"type\":1}", NOW).unwrap();
        let r = req(&h, b"{\"type\":1}", NOW);
        assert_eq!(v.verify(&r), Ok(()));
        let answer = v.handshake(&r).unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(&answer.body[..], b"{\"type\":1}");
        assert_eq!(v.handshake(&req(&h, SAMPLE_BODY, NOW)), None);
    }
}
