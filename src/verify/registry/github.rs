//! GitHub webhooks: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
//!
//! Rule (GitHub Docs, "Validating webhook deliveries",
//! <https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries>):
//! the HMAC-SHA256 hex digest of the raw payload keyed with the webhook secret, prefixed
//! `sha256=`, compared in constant time. The legacy `X-Hub-Signature: sha1=<hex>` header
//! is accepted only with `allow_sha1 = true`, and only when the SHA-256 header is absent
//! (never as a fallback after a SHA-256 mismatch, which would be a downgrade). GitHub
//! signs no timestamp, so there is no replay window to check.

use crate::verify::crypto::{Algorithm, Key};
use crate::verify::generic::{GenericHmac, RecipeError};
use crate::verify::recipe::{Fill, Recipe, SignatureAt};

/// The SHA-256 signature header.
pub const SIGNATURE_256: &str = "X-Hub-Signature-256";
/// The legacy SHA-1 signature header.
pub const SIGNATURE_SHA1: &str = "X-Hub-Signature";

/// A `ping` event, the first delivery GitHub sends to a new hook.
pub const SAMPLE_BODY: &[u8] = br#"{"zen":"Keep it logically awesome.","hook_id":123456789,"hook":{"type":"Repository","id":123456789,"name":"web","active":true,"events":["push","pull_request"],"config":{"content_type":"json","insecure_ssl":"0","url":"https://hooks.example.com/github"}},"repository":{"id":1296269,"name":"Hello-World","full_name":"octocat/Hello-World","private":false},"sender":{"login":"octocat","id":1,"type":"User"}}"#;

/// `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
pub const RECIPE: Recipe = Recipe {
    name: "github",
    signatures: &[SignatureAt::sha256(SIGNATURE_256, "sha256=")],
    // The headers every real delivery carries, so a source keyed or routed on them
    // accepts a test delivery too.
    extra: &[
        ("X-GitHub-Event", Fill::Text("ping")),
        ("X-GitHub-Delivery", Fill::MessageId),
    ],
    sample_body: SAMPLE_BODY,
    ..Recipe::DEFAULTS
};

/// The legacy header, checked only when the SHA-256 one is absent and `allow_sha1` is on.
pub const LEGACY_SHA1: [SignatureAt; 1] = [SignatureAt {
    header: SIGNATURE_SHA1,
    prefix: "sha1=",
    algorithm: Algorithm::Sha1,
    sent: true,
}];

/// GitHub's verifier over `keys` (any may match); `allow_sha1` enables the legacy header.
pub fn build(keys: Vec<Key>, allow_sha1: bool) -> Result<GenericHmac, RecipeError> {
    let legacy: &[SignatureAt] = if allow_sha1 { &LEGACY_SHA1 } else { &[] };
    RECIPE.build(keys, None, legacy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{headers, keys, req, with_header, without_header};
    use crate::verify::VerifyError;

    fn github(secrets: &[&str]) -> GenericHmac {
        build(keys(secrets), false).unwrap()
    }

    #[test]
    fn github_docs_known_answer() {
        // GitHub Docs, "Testing the webhook payload validation".
        let h = headers(&[(
            SIGNATURE_256,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        let v = github(&["It's a Secret to Everybody"]);
        assert_eq!(v.verify(&req(&h, b"Hello, World!", 0)), Ok(()));
        let signed = v.sign(b"Hello, World!", "", 0).unwrap();
        assert_eq!(signed.get(SIGNATURE_256), h.get(SIGNATURE_256));
    }

    #[test]
    fn uppercase_hex_is_rejected_as_octokit_does() {
        // @octokit/webhooks-methods and githubkit compare the signature text.
        let h = headers(&[(
            SIGNATURE_256,
            "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17",
        )]);
        let v = github(&["It's a Secret to Everybody"]);
        assert!(v.verify(&req(&h, b"Hello, World!", 0)).is_err());
    }

    #[test]
    fn rotated_second_secret_is_valid() {
        let h = github(&["new"]).sign(b"{}", "", 0).unwrap();
        assert_eq!(github(&["old", "new"]).verify(&req(&h, b"{}", 0)), Ok(()));
    }

    #[test]
    fn rejects_tampering_wrong_secret_and_bad_headers() {
        let v = github(&["s3cret"]);
        let h = v.sign(b"{\"a\":1}", "", 0).unwrap();
        assert_eq!(
            v.verify(&req(&h, b"{\"a\":2}", 0)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            github(&["other"]).verify(&req(&h, b"{\"a\":1}", 0)),
            Err(VerifyError::Mismatch)
        );
        let other_body = v.sign(b"something else", "", 0).unwrap();
        assert_eq!(
            v.verify(&req(&other_body, b"{\"a\":1}", 0)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            v.verify(&req(&without_header(&h, SIGNATURE_256), b"{\"a\":1}", 0)),
            Err(VerifyError::MissingHeader(SIGNATURE_256))
        );
        for bad in [
            "sha256=",
            "sha256=xyz",
            "md5=abcd",
            "757107ea",
            "sha256= 7571",
        ] {
            let h = with_header(&h, SIGNATURE_256, bad);
            assert_eq!(
                v.verify(&req(&h, b"{\"a\":1}", 0)),
                Err(VerifyError::MalformedHeader(SIGNATURE_256)),
                "{bad}"
            );
        }
    }

    #[test]
    fn sha1_only_when_allowed_and_never_as_downgrade() {
        let legacy = build(keys(&["s"]), true).unwrap();
        let signed = legacy.sign(b"body", "", 0).unwrap();
        let sha1_only = without_header(&signed, SIGNATURE_256);
        assert_eq!(legacy.verify(&req(&sha1_only, b"body", 0)), Ok(()));
        // Default config: the SHA-1 header alone is not enough.
        assert_eq!(
            github(&["s"]).verify(&req(&sha1_only, b"body", 0)),
            Err(VerifyError::MissingHeader(SIGNATURE_256))
        );
        // A bad SHA-256 next to a good SHA-1 must fail.
        let bad256 = with_header(
            &signed,
            SIGNATURE_256,
            &format!("sha256={}", "0".repeat(64)),
        );
        assert_eq!(
            legacy.verify(&req(&bad256, b"body", 0)),
            Err(VerifyError::Mismatch)
        );
    }
}
