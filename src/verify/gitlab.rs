//! GitLab webhooks: `X-Gitlab-Token` must equal the configured secret token.
//!
//! Rule (GitLab Docs, "Webhooks — Validate payloads by using a secret token",
//! <https://docs.gitlab.com/user/project/integrations/webhooks/#validate-payloads-by-using-a-secret-token>):
//! GitLab sends the token itself in the header; there is no MAC and no timestamp, so
//! only the token is authenticated, not the body, and replays cannot be detected. Both
//! sides are hashed with SHA-256 before a constant-time comparison so that neither the
//! content nor the length of the configured token leaks through timing.
//! (Newer GitLab versions add an optional HMAC "signing token" in the Standard Webhooks
//! format; such hooks can be verified with `scheme = "standard-webhooks"` instead.)

use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::crypto::{self, Key};
use super::{VerifyError, WebhookRequest};

/// The token header.
pub const HEADER: &str = "X-Gitlab-Token";

/// A `Push Hook` payload (trimmed).
pub const SAMPLE_BODY: &[u8] = br#"{"object_kind":"push","event_name":"push","before":"95790bf891e76fee5e1747ab589903a6a1f80f22","after":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","ref":"refs/heads/main","checkout_sha":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","user_id":4,"user_name":"John Smith","user_username":"jsmith","project_id":15,"project":{"id":15,"name":"Diaspora","path_with_namespace":"mike/diaspora","default_branch":"main","web_url":"https://gitlab.example.com/mike/diaspora"},"commits":[{"id":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","message":"fixed readme","timestamp":"2024-06-01T12:00:00Z","author":{"name":"GitLab dev user","email":"gitlabdev@dv6700.(none)"}}],"total_commits_count":1}"#;

/// Verifies GitLab webhooks.
#[derive(Debug, Clone)]
pub struct Gitlab {
    keys: Vec<Key>,
}

impl Gitlab {
    /// A verifier over secret tokens `keys`.
    pub fn new(keys: Vec<Key>) -> Self {
        Gitlab { keys }
    }

    /// Compares the token header with every configured token.
    pub fn verify(&self, req: &WebhookRequest<'_>) -> Result<(), VerifyError> {
        let header = req
            .headers
            .get(HEADER)
            .ok_or(VerifyError::MissingHeader(HEADER))?;
        let sent = Sha256::digest(header.as_bytes());
        let mut matched = subtle::Choice::from(0);
        for key in &self.keys {
            let expected = Sha256::digest(key.as_bytes());
            matched |= subtle::ConstantTimeEq::ct_eq(sent.as_slice(), expected.as_slice());
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }

    /// `X-Gitlab-Token: <first token>`; `None` if the token is not a valid header value.
    pub fn sign(&self) -> Option<HeaderMap> {
        let token = std::str::from_utf8(self.keys.first()?.as_bytes()).ok()?;
        let mut headers = HeaderMap::new();
        crypto::insert_header(&mut headers, HEADER, token)?;
        Some(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{headers, keys, req};

    fn gitlab(secrets: &[&str]) -> Gitlab {
        Gitlab::new(keys(secrets))
    }

    #[test]
    fn token_equal_is_valid() {
        let h = headers(&[(HEADER, "glpat-tok3n")]);
        assert_eq!(gitlab(&["glpat-tok3n"]).verify(&req(&h, b"{}", 0)), Ok(()));
        assert_eq!(gitlab(&["glpat-tok3n"]).sign().unwrap(), h);
    }

    #[test]
    fn rotated_second_secret_is_valid() {
        let h = gitlab(&["new"]).sign().unwrap();
        assert_eq!(gitlab(&["old", "new"]).verify(&req(&h, b"{}", 0)), Ok(()));
    }

    #[test]
    fn rejects_wrong_prefix_suffix_empty_and_missing() {
        let v = gitlab(&["token"]);
        for bad in ["tok", "token ", "tokenx", "TOKEN", ""] {
            let h = headers(&[(HEADER, bad)]);
            assert_eq!(
                v.verify(&req(&h, b"", 0)),
                Err(VerifyError::Mismatch),
                "{bad:?}"
            );
        }
        assert_eq!(
            v.verify(&req(&HeaderMap::new(), b"", 0)),
            Err(VerifyError::MissingHeader(HEADER))
        );
    }

    #[test]
    fn request_debug_does_not_show_the_token() {
        let h = headers(&[(HEADER, "glpat-hunter2")]);
        assert!(!format!("{:?}", req(&h, b"", 0)).contains("hunter2"));
    }

    #[test]
    fn non_ascii_header_bytes_do_not_panic() {
        let mut h = HeaderMap::new();
        h.insert(HEADER, http::HeaderValue::from_bytes(b"\xfftoken").unwrap());
        assert_eq!(
            gitlab(&["token"]).verify(&req(&h, b"", 0)),
            Err(VerifyError::Mismatch)
        );
    }
}
