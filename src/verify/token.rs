//! Shared-secret headers: the sender puts the secret itself in a header, so the only
//! check is that the header equals one of the configured values.
//!
//! `scheme = "token"` (any header, e.g. `X-Webhook-Token: <secret>`), `"bearer"`
//! (`Authorization: Bearer <secret>`) and `"basic"` (`Authorization: Basic
//! base64(<user:password>)`, the secret being `user:password`), and GitLab's
//! `X-Gitlab-Token`. Nothing authenticates the body and nothing stops a replay; use
//! them only where the sender offers nothing better. Both sides are hashed with SHA-256
//! before a constant-time comparison, so neither the content nor the length of a
//! configured value leaks through timing.

use base64::Engine as _;
use http::header::{HeaderName, AUTHORIZATION};
use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::crypto::{self, Key};
use super::{VerifyError, WebhookRequest};

/// Label for errors when the header name is configured (not `'static`).
const TOKEN_LABEL: &str = "(configured token header)";

/// A header that must equal one of several expected values.
#[derive(Debug, Clone)]
pub struct SharedToken {
    name: &'static str,
    header: HeaderName,
    label: &'static str,
    /// The full expected header values (`Bearer …`, `Basic …` included).
    expected: Vec<Key>,
}

impl SharedToken {
    /// `header: <secret>` for each secret.
    pub fn token(
        name: &'static str,
        header: HeaderName,
        label: Option<&'static str>,
        secrets: &[Key],
    ) -> Self {
        SharedToken {
            name,
            header,
            label: label.unwrap_or(TOKEN_LABEL),
            expected: secrets.to_vec(),
        }
    }

    /// `Authorization: Bearer <secret>`.
    pub fn bearer(secrets: &[Key]) -> Self {
        let expected = secrets
            .iter()
            .map(|s| Key::new([b"Bearer ".as_slice(), s.as_bytes()].concat()))
            .collect();
        SharedToken {
            name: "bearer",
            header: AUTHORIZATION,
            label: "Authorization",
            expected,
        }
    }

    /// `Authorization: Basic base64(<user:password>)`.
    pub fn basic(secrets: &[Key]) -> Self {
        let expected = secrets
            .iter()
            .map(|s| {
                let encoded = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
                Key::new(format!("Basic {encoded}").into_bytes())
            })
            .collect();
        SharedToken {
            name: "basic",
            header: AUTHORIZATION,
            label: "Authorization",
            expected,
        }
    }

    /// The scheme name as written in config.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Compares the header with every expected value, in constant time.
    pub fn verify(&self, req: &WebhookRequest<'_>) -> Result<(), VerifyError> {
        let value = req
            .headers
            .get(&self.header)
            .ok_or(VerifyError::MissingHeader(self.label))?;
        let sent = Sha256::digest(value.as_bytes());
        let mut matched = subtle::Choice::from(0);
        for key in &self.expected {
            let expected = Sha256::digest(key.as_bytes());
            matched |= subtle::ConstantTimeEq::ct_eq(sent.as_slice(), expected.as_slice());
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }

    /// The header with the first expected value; `None` if it is not valid HTTP.
    pub fn sign(&self) -> Option<HeaderMap> {
        let value = std::str::from_utf8(self.expected.first()?.as_bytes()).ok()?;
        let mut headers = HeaderMap::new();
        crypto::insert_header(&mut headers, self.header.as_str(), value)?;
        Some(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{headers, keys, req};

    #[test]
    fn token_bearer_and_basic() {
        let secrets = keys(&["old-value", "new-value"]);
        let token = SharedToken::token(
            "token",
            HeaderName::from_static("x-webhook-token"),
            None,
            &secrets,
        );
        let h = headers(&[("X-Webhook-Token", "new-value")]);
        assert_eq!(token.verify(&req(&h, b"{}", 0)), Ok(()));
        let h = headers(&[("X-Webhook-Token", "new-valu")]);
        assert_eq!(token.verify(&req(&h, b"{}", 0)), Err(VerifyError::Mismatch));
        assert_eq!(
            token.verify(&req(&HeaderMap::new(), b"{}", 0)),
            Err(VerifyError::MissingHeader(TOKEN_LABEL))
        );

        let bearer = SharedToken::bearer(&secrets);
        let h = headers(&[("Authorization", "Bearer old-value")]);
        assert_eq!(bearer.verify(&req(&h, b"", 0)), Ok(()));
        let h = headers(&[("Authorization", "old-value")]);
        assert_eq!(bearer.verify(&req(&h, b"", 0)), Err(VerifyError::Mismatch));
        assert_eq!(bearer.verify(&req(&bearer.sign().unwrap(), b"", 0)), Ok(()));

        let basic = SharedToken::basic(&keys(&["hook:s3cret"]));
        // base64("hook:s3cret")
        let h = headers(&[("Authorization", "Basic aG9vazpzM2NyZXQ=")]);
        assert_eq!(basic.verify(&req(&h, b"", 0)), Ok(()));
        let h = headers(&[("Authorization", "Basic aG9vazpvdGhlcg==")]);
        assert_eq!(basic.verify(&req(&h, b"", 0)), Err(VerifyError::Mismatch));
    }
}
