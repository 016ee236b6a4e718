//! GitLab webhooks: `X-Gitlab-Token` must equal the configured secret token.
//!
//! Rule (GitLab Docs, "Webhooks — Validate payloads by using a secret token",
//! <https://docs.gitlab.com/user/project/integrations/webhooks/#validate-payloads-by-using-a-secret-token>):
//! GitLab sends the token itself in the header; there is no MAC and no timestamp, so
//! only the token is authenticated, not the body, and replays cannot be detected. Both
//! sides are hashed with SHA-256 before a constant-time comparison so that neither the
//! content nor the length of the configured token leaks through timing.
//!
//! Newer GitLab versions offer a "signing token" instead (GitLab Docs, "Webhooks —
//! Verify payloads with a signing token"): a `whsec_…` secret, and the Standard Webhooks
//! headers `webhook-id`, `webhook-timestamp` and `webhook-signature`, which authenticate
//! the body and carry a timestamp. A configured secret starting with `whsec_` is such a
//! signing token; a request carrying `webhook-signature` is checked against those only
//! (with the Standard Webhooks 5-minute window), any other against the plain tokens.

use http::header::HeaderName;
use http::HeaderMap;

use super::crypto::Key;
use super::standard::{self, StandardWebhooks};
use super::token::SharedToken;
use super::{VerifyError, WebhookRequest};

/// The token header.
pub const HEADER: &str = "X-Gitlab-Token";

/// A `Push Hook` payload (trimmed).
pub const SAMPLE_BODY: &[u8] = br#"{"object_kind":"push","event_name":"push","before":"95790bf891e76fee5e1747ab589903a6a1f80f22","after":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","ref":"refs/heads/main","checkout_sha":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","user_id":4,"user_name":"John Smith","user_username":"jsmith","project_id":15,"project":{"id":15,"name":"Diaspora","path_with_namespace":"mike/diaspora","default_branch":"main","web_url":"https://gitlab.example.com/mike/diaspora"},"commits":[{"id":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","message":"fixed readme","timestamp":"2024-06-01T12:00:00Z","author":{"name":"GitLab dev user","email":"gitlabdev@dv6700.(none)"}}],"total_commits_count":1}"#;

/// Verifies GitLab webhooks.
#[derive(Debug, Clone)]
pub struct Gitlab {
    token: SharedToken,
    /// The signing tokens (`whsec_…`), when any is configured.
    signing: Option<StandardWebhooks>,
    /// Whether the first configured secret is a signing token, so `send` signs with it.
    signs_first: bool,
}

impl Gitlab {
    /// A verifier over secret tokens `keys` and decoded signing tokens `signing_keys`;
    /// `signs_first` says which kind the first configured secret was.
    pub fn new(keys: Vec<Key>, signing_keys: Vec<Key>, signs_first: bool) -> Self {
        let signing = (!signing_keys.is_empty())
            .then(|| StandardWebhooks::new(signing_keys, standard::DEFAULT_TOLERANCE));
        let token = SharedToken::token(
            "gitlab",
            HeaderName::from_static("x-gitlab-token"),
            Some(HEADER),
            &keys,
        );
        Gitlab {
            token,
            signing,
            signs_first,
        }
    }

    /// A signed request is checked against the signing tokens, any other against the
    /// plain tokens.
    pub fn verify(&self, req: &WebhookRequest<'_>) -> Result<(), VerifyError> {
        if req
            .headers
            .contains_key(standard::WEBHOOK_HEADERS.signature)
        {
            return match &self.signing {
                Some(signing) => signing.verify(req),
                None => Err(VerifyError::Mismatch),
            };
        }
        self.token.verify(req)
    }

    /// As GitLab sends with the first configured secret: the Standard Webhooks headers
    /// for a signing token, else `X-Gitlab-Token: <token>` (`None` if the token is not a
    /// valid header value).
    pub fn sign(&self, body: &[u8], now: i64) -> Option<HeaderMap> {
        if self.signs_first {
            return self.signing.as_ref()?.sign(body, now);
        }
        self.token.sign()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{headers, keys, req};

    fn gitlab(secrets: &[&str]) -> Gitlab {
        Gitlab::new(keys(secrets), Vec::new(), false)
    }

    const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn signing(first: bool) -> Gitlab {
        let key = standard::decode_secret(WHSEC).unwrap();
        Gitlab::new(keys(&["plain-token"]), vec![key], first)
    }

    #[test]
    fn signing_token_verifies_standard_webhooks_headers() {
        let v = signing(true);
        let h = v.sign(b"{}", 1_700_000_000).unwrap();
        assert!(h.contains_key("webhook-signature"));
        assert_eq!(v.verify(&req(&h, b"{}", 1_700_000_000)), Ok(()));
        assert_eq!(
            v.verify(&req(&h, b"{\"x\":1}", 1_700_000_000)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            v.verify(&req(&h, b"{}", 1_700_000_000 + 301)),
            Err(VerifyError::StaleTimestamp)
        );
        // A signed request is never let through on the plain token alone.
        let mut both = h.clone();
        both.insert(HEADER, "plain-token".parse().unwrap());
        assert_eq!(
            v.verify(&req(&both, b"{\"x\":1}", 1_700_000_000)),
            Err(VerifyError::Mismatch)
        );
        // Plain tokens still work alongside, and no signing token means no signed hooks.
        let token = signing(false).sign(b"{}", 0).unwrap();
        assert_eq!(v.verify(&req(&token, b"{}", 0)), Ok(()));
        assert_eq!(
            gitlab(&["plain-token"]).verify(&req(&h, b"{}", 1_700_000_000)),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn token_equal_is_valid() {
        let h = headers(&[(HEADER, "glpat-tok3n")]);
        assert_eq!(gitlab(&["glpat-tok3n"]).verify(&req(&h, b"{}", 0)), Ok(()));
        assert_eq!(gitlab(&["glpat-tok3n"]).sign(b"", 0).unwrap(), h);
    }

    #[test]
    fn rotated_second_secret_is_valid() {
        let h = gitlab(&["new"]).sign(b"", 0).unwrap();
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
