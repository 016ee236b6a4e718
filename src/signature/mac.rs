//! MAC primitives both directions use: keys whose `Debug` never shows them, HMAC
//! computed incrementally over pieces (so a body is never copied), fixed-size tags,
//! constant-time comparison, and hex/base64 signature decoding as strict as the
//! providers' SDKs.

use std::fmt;
use std::sync::Arc;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::{Choice, ConstantTimeEq};

/// Standard base64 exactly as providers send it: padded, canonical. The providers' own
/// SDKs compare the signature text (or decode it with padding required), so an unpadded
/// signature is rejected there and here alike.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Base64 with or without padding, for the generic scheme, which has no SDK to agree
/// with and whose senders disagree on padding.
const BASE64_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Signatures read from one list header. Senders list one per active secret (two while
/// rotating); the rest of a longer list is ignored unread.
pub const MAX_LISTED_SIGNATURES: usize = 16;

/// Largest MAC output we produce (SHA-512).
const MAX_TAG_LEN: usize = 64;

/// The hash function under an HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// HMAC-SHA1 (Twilio, GitHub's legacy header).
    Sha1,
    /// HMAC-SHA256 (almost everyone).
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl Algorithm {
    /// Length in bytes of this algorithm's MAC.
    pub fn output_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }
}

/// A MAC key. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct Key(Arc<[u8]>);

impl Key {
    /// Wraps raw key bytes.
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> Self {
        Self(bytes.into())
    }

    /// The key bytes, for the MAC.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A MAC output or a decoded signature: fixed capacity so neither computing nor
/// decoding one allocates.
#[derive(Clone, Copy)]
pub struct Tag {
    bytes: [u8; MAX_TAG_LEN],
    len: usize,
}

impl Tag {
    fn from_slice(bytes: &[u8]) -> Option<Self> {
        let mut tag = Tag {
            bytes: [0; MAX_TAG_LEN],
            len: bytes.len(),
        };
        tag.bytes.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(tag)
    }

    /// The tag's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    /// Decodes a lowercase hex signature of exactly `alg`'s output length. Every
    /// provider sends lowercase and its SDK compares the text, so uppercase is rejected.
    pub fn from_hex(text: &str, alg: Algorithm) -> Option<Self> {
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        Self::from_hex_any_case(text, alg)
    }

    /// As [`from_hex`](Self::from_hex), either case (the generic scheme).
    pub fn from_hex_any_case(text: &str, alg: Algorithm) -> Option<Self> {
        let len = alg.output_len();
        if text.len() != len * 2 {
            return None;
        }
        let mut tag = Tag {
            bytes: [0; MAX_TAG_LEN],
            len,
        };
        hex::decode_to_slice(text, tag.bytes.get_mut(..len)?).ok()?;
        Some(tag)
    }

    /// Decodes a padded standard-alphabet base64 signature of exactly `alg`'s length.
    pub fn from_base64(text: &str, alg: Algorithm) -> Option<Self> {
        Self::decode_base64(&BASE64, text, alg)
    }

    /// As [`from_base64`](Self::from_base64), padding optional (the generic scheme).
    pub fn from_base64_any_padding(text: &str, alg: Algorithm) -> Option<Self> {
        Self::decode_base64(&BASE64_ANY_PADDING, text, alg)
    }

    fn decode_base64(engine: &GeneralPurpose, text: &str, alg: Algorithm) -> Option<Self> {
        // One spare byte so an over-long signature fails the length check instead of
        // being silently truncated by the decoder.
        let mut buf = [0u8; MAX_TAG_LEN + 3];
        let n = engine.decode_slice(text, &mut buf).ok()?;
        if n != alg.output_len() {
            return None;
        }
        Tag::from_slice(buf.get(..n)?)
    }

    /// Lowercase hex, as providers that use hex send it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }

    /// Padded standard base64.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.as_bytes())
    }
}

impl fmt::Debug for Tag {
    // A tag is a signature, not a secret: showing it helps debugging mismatches.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({})", self.to_hex())
    }
}

/// HMAC of the concatenation of `parts`, fed piece by piece so no joined copy is made.
/// `None` only if the MAC refuses the key, which HMAC never does; callers treat it as
/// "no match" rather than panicking.
pub fn hmac(alg: Algorithm, key: &[u8], parts: &[&[u8]]) -> Option<Tag> {
    match alg {
        Algorithm::Sha1 => hmac_with::<Hmac<Sha1>>(key, parts),
        Algorithm::Sha256 => hmac_with::<Hmac<Sha256>>(key, parts),
        Algorithm::Sha512 => hmac_with::<Hmac<Sha512>>(key, parts),
    }
}

fn hmac_with<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Option<Tag> {
    let mut mac = <M as KeyInit>::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(part);
    }
    Tag::from_slice(&mac.finalize().into_bytes())
}

/// Constant-time equality (length is not secret: every signature has a public length).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Whether any candidate signature equals the MAC of `parts` under any key. Every
/// (key, candidate) pair is compared, without an early exit, so timing reveals neither
/// which secret nor which candidate matched.
pub fn any_matches(keys: &[Key], alg: Algorithm, parts: &[&[u8]], candidates: &[Tag]) -> bool {
    let mut matched = Choice::from(0);
    for key in keys {
        let Some(expected) = hmac(alg, key.as_bytes(), parts) else {
            continue;
        };
        for candidate in candidates {
            matched |= expected.as_bytes().ct_eq(candidate.as_bytes());
        }
    }
    bool::from(matched)
}

/// The index of the first key whose MAC of `parts` equals one of `candidates`, for
/// handshakes that must answer with the secret the sender actually used. One MAC per
/// key, whatever the number of candidates: a header stuffed with signatures costs a
/// comparison each, not a pass over the body each.
pub fn matching_key(
    keys: &[Key],
    alg: Algorithm,
    parts: &[&[u8]],
    candidates: &[Tag],
) -> Option<usize> {
    keys.iter().position(|key| {
        hmac(alg, key.as_bytes(), parts).is_some_and(|expected| {
            let mut matched = Choice::from(0);
            for candidate in candidates {
                matched |= expected.as_bytes().ct_eq(candidate.as_bytes());
            }
            bool::from(matched)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_over_pieces_equals_hmac_over_whole() {
        let whole = hmac(Algorithm::Sha256, b"k", &[b"hello world"]).unwrap();
        let pieces = hmac(Algorithm::Sha256, b"k", &[b"hello", b" ", b"world"]).unwrap();
        assert!(ct_eq(whole.as_bytes(), pieces.as_bytes()));
    }

    #[test]
    fn rfc4231_case_2_sha256_and_sha512() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let data: &[u8] = b"what do ya want for nothing?";
        let t256 = hmac(Algorithm::Sha256, b"Jefe", &[data]).unwrap();
        assert_eq!(
            t256.to_hex(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let t512 = hmac(Algorithm::Sha512, b"Jefe", &[data]).unwrap();
        assert_eq!(
            t512.to_hex(),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
    }

    #[test]
    fn rfc2202_case_2_sha1() {
        let t = hmac(Algorithm::Sha1, b"Jefe", &[b"what do ya want for nothing?"]).unwrap();
        assert_eq!(t.to_hex(), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn decoders_reject_wrong_lengths_and_garbage() {
        assert!(Tag::from_hex("abcd", Algorithm::Sha256).is_none());
        assert!(Tag::from_hex(&"zz".repeat(32), Algorithm::Sha256).is_none());
        assert!(Tag::from_hex(&"ab".repeat(32), Algorithm::Sha256).is_some());
        assert!(Tag::from_hex(&"AB".repeat(32), Algorithm::Sha256).is_none());
        assert!(Tag::from_hex_any_case(&"AB".repeat(32), Algorithm::Sha256).is_some());
        assert!(Tag::from_base64("not base64!", Algorithm::Sha256).is_none());
        assert!(Tag::from_base64(&BASE64.encode([0u8; 31]), Algorithm::Sha256).is_none());
        assert!(Tag::from_base64(&BASE64.encode([0u8; 200]), Algorithm::Sha256).is_none());
        let unpadded = BASE64.encode([7u8; 32]).trim_end_matches('=').to_owned();
        assert!(Tag::from_base64(&unpadded, Algorithm::Sha256).is_none());
        assert!(Tag::from_base64_any_padding(&unpadded, Algorithm::Sha256).is_some());
        assert!(Tag::from_base64(&BASE64.encode([7u8; 32]), Algorithm::Sha256).is_some());
    }

    #[test]
    fn any_key_and_any_candidate_match() {
        let keys = [Key::new(&b"old"[..]), Key::new(&b"new"[..])];
        let good = hmac(Algorithm::Sha256, b"new", &[b"body"]).unwrap();
        let bad = hmac(Algorithm::Sha256, b"other", &[b"body"]).unwrap();
        assert!(any_matches(
            &keys,
            Algorithm::Sha256,
            &[b"body"],
            &[bad, good]
        ));
        assert!(!any_matches(&keys, Algorithm::Sha256, &[b"body"], &[bad]));
        assert!(!any_matches(&keys, Algorithm::Sha256, &[b"body"], &[]));
        assert_eq!(
            matching_key(
                &keys,
                Algorithm::Sha256,
                &[b"body"],
                std::slice::from_ref(&good)
            ),
            Some(1)
        );
    }

    #[test]
    fn key_debug_is_redacted() {
        assert_eq!(format!("{:?}", Key::new(&b"hunter2"[..])), "<redacted>");
    }
}
