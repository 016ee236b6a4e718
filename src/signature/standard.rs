//! Standard Webhooks (and Svix, which it is derived from) as both directions use it:
//! `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64> [v1,<base64> …]`.
//!
//! Rule (Standard Webhooks specification, "Verifying webhook authenticity",
//! <https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>):
//! the signed content is `"{id}.{timestamp}.{raw body}"`; the key is the base64 decoding
//! of the secret after its `whsec_` prefix; the signature header is a space-delimited list
//! of `<version>,<signature>` entries, `v1` an HMAC-SHA256 and `v1a` an Ed25519 signature.
//! Ingress verifies with [`verifies`], egress signs with [`signature`]: one definition of
//! the signed content and of the key.

use base64::Engine as _;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::ed25519::{self, PublicKey};
use super::mac::{self, Algorithm, Key, Tag, MAX_LISTED_SIGNATURES};

/// The Standard Webhooks header names: id, timestamp, signature.
pub const WEBHOOK_HEADERS: HeaderSet = HeaderSet {
    id: "webhook-id",
    timestamp: "webhook-timestamp",
    signature: "webhook-signature",
};
/// The Svix-branded header names.
pub const SVIX_HEADERS: HeaderSet = HeaderSet {
    id: "svix-id",
    timestamp: "svix-timestamp",
    signature: "svix-signature",
};

/// The three header names of one branding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderSet {
    /// Message id header.
    pub id: &'static str,
    /// Unix-seconds timestamp header.
    pub timestamp: &'static str,
    /// Signature list header.
    pub signature: &'static str,
}

/// The key bytes of a `whsec_<base64>` secret (or bare base64), possibly empty; `None`
/// if it is not base64. The reference libraries pad the secret before decoding, so an
/// unpadded one is valid too.
pub fn decode_key_bytes(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .ok()
}

/// Decodes a `whsec_<base64>` secret (or bare base64) into its key; `None` if it is not
/// base64 or decodes to nothing.
pub fn decode_secret(secret: &str) -> Option<Key> {
    decode_key_bytes(secret)
        .filter(|bytes| !bytes.is_empty())
        .map(Key::new)
}

/// Decodes a `whpk_<base64>` Ed25519 public key; `None` if it is not one.
pub fn decode_public_key(text: &str) -> Option<PublicKey> {
    let encoded = text.strip_prefix("whpk_")?;
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .ok()?;
    PublicKey::from_raw(&bytes)
}

/// The pieces of the signed content, `"{id}.{timestamp}.{body}"`, never joined.
fn signed<'a>(id: &'a str, timestamp: &'a str, body: &'a [u8]) -> [&'a [u8]; 5] {
    [id.as_bytes(), b".", timestamp.as_bytes(), b".", body]
}

/// The `webhook-signature` value `v1,<base64 HMAC-SHA256>` for one message; `None` only
/// if the MAC refuses the key, which HMAC never does.
pub fn signature(key: &Key, id: &str, timestamp: &str, body: &[u8]) -> Option<String> {
    SigningKey::new(key).map(|k| k.signature(id, timestamp, body))
}

/// A signing key with the HMAC keyed once: each signature starts from a copy of the
/// keyed state, so a sink signing every attempt does not derive the key's pads anew per
/// request. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SigningKey(Hmac<Sha256>);

impl SigningKey {
    /// `None` only if the MAC refuses the key, which HMAC never does.
    pub fn new(key: &Key) -> Option<Self> {
        <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes())
            .ok()
            .map(Self)
    }

    /// The `webhook-signature` value `v1,<base64 HMAC-SHA256>` of one message.
    pub fn signature(&self, id: &str, timestamp: &str, body: &[u8]) -> String {
        let mut mac = self.0.clone();
        for part in signed(id, timestamp, body) {
            mac.update(part);
        }
        let tag = mac.finalize().into_bytes();
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(tag)
        )
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// Outcome of parsing a signature list.
#[derive(Debug)]
pub enum SignatureList {
    /// No `<version>,<value>` entry at all: not this format.
    Malformed,
    /// The decodable `v1` (HMAC) and `v1a` (Ed25519) signatures, possibly none.
    Parsed(Vec<Tag>, Vec<[u8; 64]>),
}

/// Parses a space-delimited `v1,<base64>` list as the standardwebhooks libraries do:
/// split on single spaces, every entry exactly `<version>,<signature>` (anything else —
/// a doubled space, an entry without or with two commas — fails the whole header there,
/// so it is malformed here), entries of unknown versions skipped.
pub fn parse_signatures(value: &str) -> SignatureList {
    let mut tags = Vec::new();
    let mut asymmetric = Vec::new();
    for entry in value.split(' ') {
        let mut fields = entry.split(',');
        let (Some(version), Some(sig), None) = (fields.next(), fields.next(), fields.next()) else {
            return SignatureList::Malformed;
        };
        // A sender lists one signature per active key; a longer list is read no further,
        // so a stuffed header cannot multiply the work (each v1a entry is a signature
        // check over the whole body).
        if version == "v1" && tags.len() < MAX_LISTED_SIGNATURES {
            if let Some(tag) = Tag::from_base64(sig, Algorithm::Sha256) {
                tags.push(tag);
            }
        } else if version == "v1a" && asymmetric.len() < MAX_LISTED_SIGNATURES {
            let mut raw = [0u8; 64];
            if base64::engine::general_purpose::STANDARD.decode_slice(sig, &mut raw) == Ok(64) {
                asymmetric.push(raw);
            }
        }
    }
    SignatureList::Parsed(tags, asymmetric)
}

/// Whether any `v1` signature matches any key, or else any `v1a` one any public key
/// (Ed25519 is checked only when HMAC failed and public keys are configured).
pub fn verifies(
    keys: &[Key],
    public_keys: &[PublicKey],
    (id, timestamp, body): (&str, &str, &[u8]),
    tags: &[Tag],
    asymmetric: &[[u8; 64]],
) -> bool {
    let parts = signed(id, timestamp, body);
    mac::any_matches(keys, Algorithm::Sha256, &parts, tags)
        || (!public_keys.is_empty()
            && (asymmetric.iter()).any(|sig| ed25519::verify_any(public_keys, &parts, sig)))
}
