//! Standard Webhooks signing of outgoing requests: `webhook-signature: v1,<base64
//! HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` with the key decoded from `whsec_…`,
//! both as [`crate::signature::standard`] defines them for ingress too.

use crate::config::Secret;
use crate::signature::mac::Key;
use crate::signature::standard::{self, SigningKey};

/// A ready signing key (decoded and keyed once per sink, not per request).
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl Signer {
    /// From a `whsec_<base64>` secret (the prefix is optional). `None` if not base64.
    pub fn new(secret: &Secret) -> Option<Self> {
        let key = standard::decode_key_bytes(secret.expose())?;
        SigningKey::new(&Key::new(key)).map(|key| Self { key })
    }

    /// The `webhook-signature` header value.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        self.key.signature(id, &timestamp.to_string(), body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_with_the_standardwebhooks_crate() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let signer = Signer::new(&Secret::new(secret)).unwrap();
        let ts = crate::clock::unix_secs();
        let body = br#"{"type":"order.created"}"#;
        let sig = signer.sign("orders-0-42", ts, body);
        let wh = standardwebhooks::Webhook::new(secret).unwrap();
        let mut h = axum::http::HeaderMap::new();
        h.insert("webhook-id", "orders-0-42".parse().unwrap());
        h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        wh.verify(body, &h).unwrap();
    }
}
