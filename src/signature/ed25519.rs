//! Ed25519 signatures (Discord interactions, Standard Webhooks `v1a`),
//! verified with OpenSSL, which hookbridge already links for TLS.
//!
//! Ed25519 signs the whole message at once (no streaming), so the signed pieces are
//! joined into one buffer before verifying: the one copy of the body a verifier makes.

use openssl::pkey::{Id, PKey, Private, Public};
use openssl::sign::{Signer, Verifier};

/// An Ed25519 public key. Not a secret: `Debug` shows it.
#[derive(Clone)]
pub struct PublicKey(PKey<Public>);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let raw = self.0.raw_public_key().unwrap_or_default();
        write!(f, "PublicKey({})", hex::encode(raw))
    }
}

impl PublicKey {
    /// From its 32 raw bytes written as hex (Discord's "public key").
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut raw = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut raw).ok()?;
        Self::from_raw(&raw)
    }

    /// From its 32 raw bytes.
    pub fn from_raw(raw: &[u8]) -> Option<Self> {
        if raw.len() != 32 {
            return None;
        }
        PKey::public_key_from_raw_bytes(raw, Id::ED25519)
            .ok()
            .map(PublicKey)
    }
}

/// A signature of exactly 64 bytes, from hex; `None` otherwise.
pub fn signature_from_hex(text: &str) -> Option<[u8; 64]> {
    let mut sig = [0u8; 64];
    hex::decode_to_slice(text, &mut sig).ok()?;
    Some(sig)
}

/// Whether any key signed the concatenation of `parts`.
pub fn verify_any(keys: &[PublicKey], parts: &[&[u8]], signature: &[u8; 64]) -> bool {
    let message = parts.concat();
    keys.iter().any(|key| {
        Verifier::new_without_digest(&key.0)
            .and_then(|mut v| v.verify_oneshot(signature, &message))
            .unwrap_or(false)
    })
}

/// Signs with a private key given by its 32-byte seed (tests and `send` only).
pub fn sign(seed: &[u8; 32], parts: &[&[u8]]) -> Option<Vec<u8>> {
    let key: PKey<Private> = PKey::private_key_from_raw_bytes(seed, Id::ED25519).ok()?;
    Signer::new_without_digest(&key)
        .and_then(|mut s| s.sign_oneshot_to_vec(&parts.concat()))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8032, section 7.1, TEST 2 (one-byte message 0x72).
    const SEED: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
    const PUBLIC: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
    const SIGNATURE: &str = "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00";

    #[test]
    fn rfc8032_known_answer() {
        let key = PublicKey::from_hex(PUBLIC).unwrap();
        let sig = signature_from_hex(SIGNATURE).unwrap();
        assert!(verify_any(std::slice::from_ref(&key), &[b"\x72"], &sig));
        assert!(!verify_any(&[key], &[b"\x73"], &sig));
        let mut seed = [0u8; 32];
        hex::decode_to_slice(SEED, &mut seed).unwrap();
        assert_eq!(hex::encode(sign(&seed, &[b"\x72"]).unwrap()), SIGNATURE);
    }

    #[test]
    fn malformed_keys_and_signatures_are_refused() {
        assert!(PublicKey::from_hex("zz").is_none());
        assert!(PublicKey::from_hex(&"00".repeat(31)).is_none());
        assert!(signature_from_hex(&"00".repeat(63)).is_none());
        assert!(signature_from_hex("not hex").is_none());
    }
}
