//! Google Cloud Pub/Sub push subscriptions with authentication: `Authorization: Bearer
//! <JWT>`, an OIDC ID token Google signs (RS256) for the subscription's service account.
//!
//! Rule (Google Cloud docs, "Authenticate push subscriptions", and google-auth's
//! `id_token.verify_oauth2_token`): the token's signature verifies with the key named by
//! its `kid` in Google's JWKS (`https://www.googleapis.com/oauth2/v3/certs`); `iss` is
//! `accounts.google.com` or `https://accounts.google.com`; `aud` is the audience set on
//! the subscription; the token is current (`iat`, `exp`, and `nbf` when present, each
//! with `tolerance` of clock leeway); and, when `email` is configured, the `email` claim
//! is that service account and `email_verified` is `true`. The token signs nothing of the
//! body: it proves the request comes from the subscription, and the body is produced
//! as Google sent it.
//!
//! Every claim is checked before the key set is asked for ([`GooglePubSub::key_source`]),
//! so a forged token costs no fetch; the signature is checked last, against the fetched
//! set ([`GooglePubSub::verify`]).

use std::time::Duration;

use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use serde::Deserialize;

use super::keys::{KeyFormat, KeySet, KeySource};
use super::{crypto, VerifyError, WebhookRequest};

/// The header carrying the token.
pub const HEADER: &str = "Authorization";
/// Google's JWKS for the tokens it signs.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// Clock leeway on `iat`, `nbf` and `exp`.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(60);
/// The issuers Google's ID tokens carry.
const ISSUERS: [&str; 2] = ["accounts.google.com", "https://accounts.google.com"];
/// Longest token read: Google's are about 1 KiB.
const MAX_TOKEN: usize = 8 << 10;

/// A push message (trimmed).
pub const SAMPLE_BODY: &[u8] = br#"{"message":{"attributes":{"key":"value"},"data":"SGVsbG8gQ2xvdWQgUHViL1N1YiEgSGVyZSBpcyBteSBtZXNzYWdlIQ==","messageId":"2070443601311540","message_id":"2070443601311540","publishTime":"2021-02-26T19:13:55.749Z","publish_time":"2021-02-26T19:13:55.749Z"},"subscription":"projects/myproject/subscriptions/mysubscription"}"#;

/// Verifies Pub/Sub push requests.
#[derive(Debug, Clone)]
pub struct GooglePubSub {
    audience: String,
    keys: KeySource,
    email: Option<String>,
    tolerance: Duration,
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Audience>,
    iat: Option<f64>,
    exp: Option<f64>,
    nbf: Option<f64>,
    email: Option<String>,
    email_verified: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// A token split and its JSON read; nothing verified yet.
struct Token<'a> {
    signed: &'a str,
    signature: Vec<u8>,
    kid: String,
    claims: Claims,
}

impl GooglePubSub {
    /// A verifier for tokens meant for `audience`, whose keys are at `jwks_url`.
    pub fn new(
        audience: String,
        jwks_url: url::Url,
        email: Option<String>,
        tolerance: Duration,
    ) -> Self {
        GooglePubSub {
            audience,
            keys: KeySource {
                url: jwks_url,
                format: KeyFormat::Jwks,
            },
            email,
            tolerance,
        }
    }

    /// The configured audience, JWKS URL and service account, for `check`.
    /// A query on the audience URL is not shown: it may carry a token of its own.
    pub fn summary(&self) -> String {
        let email = self.email.as_deref().unwrap_or("any");
        let audience = match self.audience.split_once('?') {
            Some((before, _)) => format!("{before}?…"),
            None => self.audience.clone(),
        };
        format!(
            "audience {audience}   jwks_url {}   email {email}",
            self.keys.url
        )
    }

    /// Checks everything but the signature, then names the key set to fetch.
    pub fn key_source(&self, req: &WebhookRequest<'_>) -> Result<KeySource, VerifyError> {
        self.token(req)?;
        Ok(self.keys.clone())
    }

    /// The whole check, the signature against `keys` (the set at `jwks_url`).
    pub fn verify(&self, req: &WebhookRequest<'_>, keys: &KeySet) -> Result<(), VerifyError> {
        let token = self.token(req)?;
        let key = keys.by_kid(&token.kid).ok_or(VerifyError::UnknownKey)?;
        let valid = Verifier::new(MessageDigest::sha256(), key)
            .and_then(|mut v| {
                v.update(token.signed.as_bytes())?;
                v.verify(&token.signature)
            })
            .unwrap_or(false);
        if valid {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }

    /// The token, its form and every claim checked.
    fn token<'a>(&self, req: &WebhookRequest<'a>) -> Result<Token<'a>, VerifyError> {
        let token = parse(req)?;
        let c = &token.claims;
        if !c.iss.as_deref().is_some_and(|iss| ISSUERS.contains(&iss)) {
            return Err(VerifyError::Claim("iss"));
        }
        let audience_ok = match &c.aud {
            Some(Audience::One(aud)) => *aud == self.audience,
            Some(Audience::Many(list)) => list.contains(&self.audience),
            None => false,
        };
        if !audience_ok {
            return Err(VerifyError::Claim("aud"));
        }
        let leeway = self.tolerance.as_secs_f64();
        let now = req.now as f64;
        let (iat, exp) = (
            c.iat.ok_or(VerifyError::Claim("iat"))?,
            c.exp.ok_or(VerifyError::Claim("exp"))?,
        );
        if iat > now + leeway || c.nbf.is_some_and(|nbf| nbf > now + leeway) {
            return Err(VerifyError::StaleTimestamp);
        }
        if exp + leeway <= now {
            return Err(VerifyError::StaleTimestamp);
        }
        if let Some(email) = &self.email {
            if c.email.as_deref() != Some(email.as_str()) {
                return Err(VerifyError::Claim("email"));
            }
            if c.email_verified != Some(serde_json::Value::Bool(true)) {
                return Err(VerifyError::Claim("email_verified"));
            }
        }
        Ok(token)
    }
}

/// `Authorization: Bearer <header>.<claims>.<signature>`, each part base64url without
/// padding; the header must name RS256 and a `kid`.
fn parse<'a>(req: &WebhookRequest<'a>) -> Result<Token<'a>, VerifyError> {
    let malformed = VerifyError::MalformedHeader(HEADER);
    let value = crypto::header_str(req.headers, HEADER)?;
    let (kind, token) = value.split_once(' ').ok_or(malformed)?;
    if !kind.eq_ignore_ascii_case("bearer") || token.len() > MAX_TOKEN {
        return Err(malformed);
    }
    let token = token.trim_start();
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed);
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let decode = |part: &str| b64.decode(part).map_err(|_| malformed);
    let header: Header = serde_json::from_slice(&decode(header)?).map_err(|_| malformed)?;
    if header.alg.as_deref() != Some("RS256") {
        return Err(malformed);
    }
    let kid = header.kid.filter(|k| !k.is_empty()).ok_or(malformed)?;
    let claims: Claims = serde_json::from_slice(&decode(claims)?).map_err(|_| malformed)?;
    let signed_len = token.len() - signature.len() - 1;
    Ok(Token {
        signed: &token[..signed_len],
        signature: decode(signature)?,
        kid,
        claims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{headers, req};
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::sign::Signer;

    const NOW: i64 = 1_717_243_200;
    const AUDIENCE: &str = "https://hooks.example.com/pubsub";
    const EMAIL: &str = "push@project.iam.gserviceaccount.com";

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn key_pair() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
    }

    fn jwks(keys: &[(&str, &PKey<Private>)]) -> KeySet {
        let keys: Vec<_> = (keys.iter())
            .map(|(kid, k)| {
                let rsa = k.rsa().unwrap();
                serde_json::json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                    "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec())})
            })
            .collect();
        let doc = serde_json::json!({ "keys": keys }).to_string();
        KeySet::parse(KeyFormat::Jwks, doc.as_bytes()).unwrap()
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({"iss": "https://accounts.google.com", "aud": AUDIENCE,
            "iat": NOW - 10, "exp": NOW + 3590, "email": EMAIL, "email_verified": true,
            "sub": "1234567890", "azp": "1234567890"})
    }

    fn token(key: &PKey<Private>, header: serde_json::Value, claims: &serde_json::Value) -> String {
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut signer = Signer::new(MessageDigest::sha256(), key).unwrap();
        signer.update(signed.as_bytes()).unwrap();
        format!("{signed}.{}", b64(&signer.sign_to_vec().unwrap()))
    }

    fn rs256(kid: &str) -> serde_json::Value {
        serde_json::json!({"alg": "RS256", "kid": kid, "typ": "JWT"})
    }

    fn pubsub(email: Option<&str>) -> GooglePubSub {
        GooglePubSub::new(
            AUDIENCE.into(),
            url::Url::parse(GOOGLE_JWKS_URL).unwrap(),
            email.map(str::to_owned),
            DEFAULT_TOLERANCE,
        )
    }

    fn verdict(v: &GooglePubSub, keys: &KeySet, token: &str) -> Result<(), VerifyError> {
        let h = headers(&[(HEADER, &format!("Bearer {token}"))]);
        let r = req(&h, SAMPLE_BODY, NOW);
        v.key_source(&r)?;
        v.verify(&r, keys)
    }

    #[test]
    fn a_google_signed_token_for_the_audience_verifies() {
        let (k1, k2) = (key_pair(), key_pair());
        let keys = jwks(&[("k1", &k1), ("k2", &k2)]);
        let v = pubsub(Some(EMAIL));
        assert_eq!(
            verdict(&v, &keys, &token(&k2, rs256("k2"), &claims())),
            Ok(())
        );
        // Signed by another key than its kid names, or by a key not in the set.
        assert_eq!(
            verdict(&v, &keys, &token(&k1, rs256("k2"), &claims())),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verdict(&v, &keys, &token(&key_pair(), rs256("k3"), &claims())),
            Err(VerifyError::UnknownKey)
        );
    }

    #[test]
    fn every_claim_is_checked_before_any_key_is_needed() {
        let k = key_pair();
        let v = pubsub(Some(EMAIL));
        let with = |field: &str, value: serde_json::Value| {
            let mut c = claims();
            c[field] = value;
            token(&k, rs256("k"), &c)
        };
        let cases = [
            (
                with("iss", "evil.example".into()),
                VerifyError::Claim("iss"),
            ),
            (
                with("aud", "https://other".into()),
                VerifyError::Claim("aud"),
            ),
            (with("exp", (NOW - 61).into()), VerifyError::StaleTimestamp),
            (with("iat", (NOW + 61).into()), VerifyError::StaleTimestamp),
            (with("nbf", (NOW + 61).into()), VerifyError::StaleTimestamp),
            (
                with("email", "other@x.iam.gserviceaccount.com".into()),
                VerifyError::Claim("email"),
            ),
            (
                with("email_verified", "true".into()),
                VerifyError::Claim("email_verified"),
            ),
        ];
        for (t, expected) in cases {
            let h = headers(&[(HEADER, &format!("Bearer {t}"))]);
            assert_eq!(v.key_source(&req(&h, b"{}", NOW)), Err(expected));
        }
        // Leeway both ways, and no email rule unless configured.
        let keys = jwks(&[("k", &k)]);
        assert_eq!(verdict(&v, &keys, &with("exp", (NOW - 59).into())), Ok(()));
        assert_eq!(verdict(&v, &keys, &with("iat", (NOW + 59).into())), Ok(()));
        let listed = with("aud", serde_json::json!(["x", AUDIENCE]));
        assert_eq!(verdict(&v, &keys, &listed), Ok(()));
        let anyone = pubsub(None);
        assert_eq!(
            verdict(&anyone, &keys, &with("email", "x@y".into())),
            Ok(())
        );
    }

    #[test]
    fn check_shows_the_settings_but_not_an_audience_query() {
        let mut v = pubsub(Some(EMAIL));
        v.audience = "https://hooks.example.com/pubsub?token=s3cr3t".into();
        let shown = v.summary();
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(
            shown.contains(GOOGLE_JWKS_URL) && shown.contains(EMAIL),
            "{shown}"
        );
    }

    #[test]
    fn malformed_tokens_and_other_algorithms_are_refused() {
        let k = key_pair();
        let v = pubsub(None);
        let malformed = Err(VerifyError::MalformedHeader(HEADER));
        let good = token(&k, rs256("k"), &claims());
        let mut forms = vec![
            "Bearer".to_owned(),
            "Basic abc".to_owned(),
            "Bearer a.b".to_owned(),
            "Bearer a.b.c.d".to_owned(),
            format!("Bearer {good}="),
            format!("Bearer {}", "a".repeat(MAX_TOKEN + 1)),
            format!(
                "Bearer {}",
                token(
                    &k,
                    serde_json::json!({"alg": "HS256", "kid": "k"}),
                    &claims()
                )
            ),
            format!(
                "Bearer {}",
                token(
                    &k,
                    serde_json::json!({"alg": "none", "kid": "k"}),
                    &claims()
                )
            ),
            format!(
                "Bearer {}",
                token(&k, serde_json::json!({"alg": "RS256"}), &claims())
            ),
            format!(
                "Bearer {}",
                token(&k, rs256("k"), &serde_json::json!("claims"))
            ),
        ];
        forms.push(format!("Bearer {}", good.replacen('.', "!.", 1)));
        for form in forms {
            let h = headers(&[(HEADER, &form)]);
            assert_eq!(
                v.key_source(&req(&h, b"{}", NOW)).map(|_| ()),
                malformed,
                "{form}"
            );
        }
        let h = headers(&[]);
        assert_eq!(
            v.key_source(&req(&h, b"{}", NOW)).map(|_| ()),
            Err(VerifyError::MissingHeader(HEADER))
        );
        // The scheme word is not case-sensitive (RFC 6750).
        let keys = jwks(&[("k", &k)]);
        let h = headers(&[(HEADER, &format!("bearer {good}"))]);
        assert_eq!(v.verify(&req(&h, b"{}", NOW), &keys), Ok(()));
    }
}
