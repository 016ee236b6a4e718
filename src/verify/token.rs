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
    /// The authentication scheme before the credentials (`Bearer`, `Basic`), matched
    /// without regard to case as RFC 9110 §11.1 says; `None`: the value is the secret.
    scheme: Option<&'static str>,
    /// The expected header values, or credentials after the scheme.
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
            scheme: None,
            expected: secrets.to_vec(),
        }
    }

    /// `Authorization: Bearer <secret>`.
    pub fn bearer(secrets: &[Key]) -> Self {
        SharedToken {
            name: "bearer",
            header: AUTHORIZATION,
            label: "Authorization",
            scheme: Some("Bearer"),
            expected: secrets.to_vec(),
        }
    }

    /// `Authorization: Basic base64(<user:password>)`.
    pub fn basic(secrets: &[Key]) -> Self {
        let expected = secrets
            .iter()
            .map(|s| {
                let encoded = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
                Key::new(encoded.into_bytes())
            })
            .collect();
        SharedToken {
            name: "basic",
            header: AUTHORIZATION,
            label: "Authorization",
            scheme: Some("Basic"),
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
        let sent = match self.scheme {
            None => value.as_bytes(),
            Some(scheme) => credentials(value.as_bytes(), scheme).ok_or(VerifyError::Mismatch)?,
        };
        let sent = Sha256::digest(sent);
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
        let secret = std::str::from_utf8(self.expected.first()?.as_bytes()).ok()?;
        let value = match self.scheme {
            None => secret.to_owned(),
            Some(scheme) => format!("{scheme} {secret}"),
        };
        let mut headers = HeaderMap::new();
        crypto::insert_header(&mut headers, self.header.as_str(), &value)?;
        Some(headers)
    }
}

/// The credentials of `value` after `scheme` (any case) and the spaces that follow it;
/// `None` when it names another scheme.
fn credentials<'v>(value: &'v [u8], scheme: &str) -> Option<&'v [u8]> {
    let (named, rest) = value.split_at_checked(scheme.len())?;
    if !named.eq_ignore_ascii_case(scheme.as_bytes()) || rest.first() != Some(&b' ') {
        return None;
    }
    Some(rest.trim_ascii_start())
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
        // The scheme's name in any case, and any number of spaces after it (RFC 9110 §11).
        for sent in ["Bearer old-value", "bearer new-value", "BEARER  old-value"] {
            let h = headers(&[("Authorization", sent)]);
            assert_eq!(bearer.verify(&req(&h, b"", 0)), Ok(()), "{sent}");
        }
        for sent in [
            "old-value",
            "Bearerold-value",
            "Basic old-value",
            "Bearer old-valu",
        ] {
            let h = headers(&[("Authorization", sent)]);
            assert_eq!(
                bearer.verify(&req(&h, b"", 0)),
                Err(VerifyError::Mismatch),
                "{sent}"
            );
        }
        assert_eq!(bearer.verify(&req(&bearer.sign().unwrap(), b"", 0)), Ok(()));

        let basic = SharedToken::basic(&keys(&["hook:s3cret"]));
        // base64("hook:s3cret")
        for sent in ["Basic aG9vazpzM2NyZXQ=", "basic aG9vazpzM2NyZXQ="] {
            let h = headers(&[("Authorization", sent)]);
            assert_eq!(basic.verify(&req(&h, b"", 0)), Ok(()), "{sent}");
        }
        assert_eq!(basic.verify(&req(&basic.sign().unwrap(), b"", 0)), Ok(()));
        let h = headers(&[("Authorization", "Basic aG9vazpvdGhlcg==")]);
        assert_eq!(basic.verify(&req(&h, b"", 0)), Err(VerifyError::Mismatch));
    }
}
