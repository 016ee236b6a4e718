//! Mailgun webhooks: the signature is in the body, not a header — `signature.timestamp`,
//! `signature.token` and `signature.signature` of a JSON webhook, or the `timestamp`,
//! `token` and `signature` fields of a URL-encoded form (legacy webhooks, routes).
//!
//! Rule (Mailgun docs, "Securing webhooks", and the `mailgun` Python SDK 1.10.0,
//! `SecurityGuard.verify_webhook`): `signature` is the lowercase hex HMAC-SHA256 of the
//! timestamp text followed by the token, keyed with the account's HTTP webhook signing
//! key; the SDK refuses timestamps more than 15 minutes away in either direction (our
//! default was that; ours is 5 minutes). Mailgun signs **only timestamp and token, not
//! the body**: a captured signature would be valid with any body until it leaves the
//! window. So each verified token is remembered for the window with the body it came
//! with, and the same token with another body is refused (`replayed_token`); the same
//! body again (a retry) still verifies. The memory is bounded ([`MAX_TOKENS`] per
//! source, oldest forgotten first) and per replica: best-effort across replicas.
//!
//! The fields are read from the body before anything is verified, so parsing is
//! bounded: a JSON body is parsed once (it is within `max_body`), a form is scanned for
//! three fields.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::HeaderMap;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::crypto::{self, Algorithm, Key, Tag};
use super::{VerifyError, WebhookRequest};

/// hookbridge's window (the SDK's is 15 minutes): a shorter one keeps fewer tokens.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// Tokens remembered per source at most.
pub const MAX_TOKENS: usize = 100_000;
/// The field named in errors and metrics.
const FIELD: &str = "signature";

/// A `delivered` event with a placeholder signature (`send` fills it in).
pub const SAMPLE_BODY: &[u8] = br#"{"signature":{"timestamp":"0","token":"","signature":""},"event-data":{"event":"delivered","id":"CPgfbmQMTCKtHW6uIWtuVe","timestamp":1717243200.0,"recipient":"alice@example.com","message":{"headers":{"message-id":"20240601120000.1.ABCDEF@mg.example.com"}}}}"#;

/// Verifies Mailgun webhooks.
#[derive(Debug, Clone)]
pub struct Mailgun {
    keys: Vec<Key>,
    tolerance: Duration,
    seen: Arc<Mutex<Tokens>>,
}

/// Verified tokens within the window, with the SHA-256 of the body each came with.
#[derive(Debug, Default)]
struct Tokens {
    body: HashMap<String, [u8; 32]>,
    /// Tokens by signed timestamp, in the order they were first seen, for expiry.
    order: VecDeque<(i64, String)>,
}

impl Tokens {
    /// Remembers `token` with its body, first forgetting expired tokens and, past
    /// [`MAX_TOKENS`], the oldest.
    fn admit(&mut self, token: &str, ts: i64, body: [u8; 32], now: i64, window: i64) {
        while let Some((at, _)) = self.order.front() {
            let expired = *at < now.saturating_sub(window);
            if !expired && self.order.len() < MAX_TOKENS {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.body.remove(&old);
            }
        }
        if !self.body.contains_key(token) {
            self.body.insert(token.to_owned(), body);
            self.order.push_back((ts, token.to_owned()));
        }
    }
}

#[derive(Deserialize)]
struct Json<'a> {
    #[serde(borrow)]
    signature: Option<Fields<'a>>,
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow)]
    timestamp: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    token: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    signature: Option<std::borrow::Cow<'a, str>>,
}

/// Timestamp, token and signature, as sent.
type Signed = (String, String, String);

impl Mailgun {
    /// A verifier over webhook signing keys `keys`.
    pub fn new(keys: Vec<Key>, tolerance: Duration) -> Self {
        Mailgun {
            keys,
            tolerance,
            seen: Arc::default(),
        }
    }

    /// Finds the three fields, checks the window, then the HMAC of timestamp + token.
    pub fn verify(&self, req: &WebhookRequest<'_>) -> Result<(), VerifyError> {
        let (timestamp, token, signature) =
            fields(req.headers, req.body).ok_or(VerifyError::MalformedBody(FIELD))?;
        let ts = crypto::parse_unix(&timestamp).ok_or(VerifyError::MalformedBody(FIELD))?;
        crypto::check_tolerance(ts, req.now, self.tolerance)?;
        let tag = Tag::from_hex(&signature, Algorithm::Sha256)
            .ok_or(VerifyError::MalformedBody(FIELD))?;
        crypto::verify_any(
            &self.keys,
            Algorithm::Sha256,
            &[timestamp.as_bytes(), token.as_bytes()],
            &[tag],
        )?;
        // Only after the signature verified, so a forger cannot fill the memory.
        let digest: [u8; 32] = Sha256::digest(req.body).into();
        let window = i64::try_from(self.tolerance.as_secs()).unwrap_or(i64::MAX);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.body.get(&token).is_some_and(|b| *b != digest) {
            return Err(VerifyError::ReplayedToken);
        }
        seen.admit(&token, ts, digest, req.now, window);
        Ok(())
    }

    /// A JSON webhook body signed with the first key at `now`: `body`'s own `signature`
    /// object is replaced (used by `send` and tests). No headers are needed.
    pub fn sign_body(&self, body: &[u8], now: i64) -> Option<Vec<u8>> {
        let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let timestamp = now.to_string();
        let token = crypto::message_id(now);
        let tag = crypto::hmac(
            Algorithm::Sha256,
            self.keys.first()?.as_bytes(),
            &[timestamp.as_bytes(), token.as_bytes()],
        )?;
        value.as_object_mut()?.insert(
            FIELD.to_owned(),
            serde_json::json!({ "timestamp": timestamp, "token": token, "signature": tag.to_hex() }),
        );
        serde_json::to_vec(&value).ok()
    }
}

/// The signature fields of a URL-encoded form, else of a JSON body.
fn fields(headers: &HeaderMap, body: &[u8]) -> Option<Signed> {
    let form = (headers.get(http::header::CONTENT_TYPE))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        let (mut timestamp, mut token, mut signature) = (None, None, None);
        for (k, v) in form_urlencoded::parse(body) {
            let slot = match k.as_ref() {
                "timestamp" => &mut timestamp,
                "token" => &mut token,
                "signature" => &mut signature,
                _ => continue,
            };
            if slot.is_some() {
                return None; // repeated: ambiguous
            }
            *slot = Some(v.into_owned());
        }
        return Some((timestamp?, token?, signature?));
    }
    let json: Json<'_> = serde_json::from_slice(body).ok()?;
    let f = json.signature?;
    Some((
        f.timestamp?.into_owned(),
        f.token?.into_owned(),
        f.signature?.into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{headers, keys, req};

    const NOW: i64 = 1_717_243_200;

    fn mailgun(secrets: &[&str]) -> Mailgun {
        Mailgun::new(keys(secrets), DEFAULT_TOLERANCE)
    }

    #[test]
    fn independently_computed_known_answer() {
        // Computed with Python's hmac:
        // hmac.new(b"mg-signing-key", b"1717243200" b"tok-123", sha256).hexdigest()
        let body = format!(
            r#"{{"signature":{{"timestamp":"1717243200","token":"tok-123","signature":"{KNOWN}"}},"event-data":{{"event":"opened"}}}}"#
        );
        let none = HeaderMap::new();
        let v = mailgun(&["other", "mg-signing-key"]);
        assert_eq!(v.verify(&req(&none, body.as_bytes(), NOW)), Ok(()));
        assert_eq!(
            v.verify(&req(&none, body.as_bytes(), NOW + 301)),
            Err(VerifyError::StaleTimestamp)
        );
        let form = format!("timestamp=1717243200&token=tok-123&signature={KNOWN}&body-plain=hi");
        let h = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        let v = mailgun(&["other", "mg-signing-key"]);
        assert_eq!(v.verify(&req(&h, form.as_bytes(), NOW)), Ok(()));
        let twice = format!("{form}&token=tok-456");
        assert_eq!(
            v.verify(&req(&h, twice.as_bytes(), NOW)),
            Err(VerifyError::MalformedBody(FIELD))
        );
        let tampered = body.replace("tok-123", "tok-124");
        assert_eq!(
            v.verify(&req(&none, tampered.as_bytes(), NOW)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            v.verify(&req(&none, b"{}", NOW)),
            Err(VerifyError::MalformedBody(FIELD))
        );
    }

    #[test]
    fn signed_bodies_verify() {
        let v = mailgun(&["mg-signing-key"]);
        let body = v.sign_body(SAMPLE_BODY, NOW).unwrap();
        assert_eq!(v.verify(&req(&HeaderMap::new(), &body, NOW)), Ok(()));
    }

    #[test]
    fn a_signature_is_accepted_with_one_body_only() {
        let v = mailgun(&["mg-signing-key"]);
        let none = HeaderMap::new();
        let first = v.sign_body(SAMPLE_BODY, NOW).unwrap();
        let text = String::from_utf8(first.clone()).unwrap();
        let forged = text.replace("alice@example.com", "mallory@example.com");
        assert_eq!(v.verify(&req(&none, &first, NOW)), Ok(()));
        // The same delivery again (a retry) still verifies.
        assert_eq!(v.verify(&req(&none, &first, NOW + 1)), Ok(()));
        assert_eq!(
            v.verify(&req(&none, forged.as_bytes(), NOW + 2)),
            Err(VerifyError::ReplayedToken)
        );
        // A clone (every request of the source) shares the memory.
        assert_eq!(
            v.clone().verify(&req(&none, forged.as_bytes(), NOW + 2)),
            Err(VerifyError::ReplayedToken)
        );
    }

    const KNOWN: &str = "d8f3da3b65d486b1f6597329a1cecb6c40dead3ac863ff34ce2967c351d66812";
}
