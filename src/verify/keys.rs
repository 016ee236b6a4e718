//! Verification keys a provider publishes at a URL instead of handing them over once
//! (Google's JWKS for Pub/Sub push, AWS SNS's signing certificates): which document a
//! request needs ([`KeySource`]), what is accepted as its URL ([`key_url`]), and the
//! document parsed into public keys ([`KeySet`]).
//!
//! Fetching and caching are ingress's (`ingress::keys`): a scheme first names the
//! [`KeySource`] a request needs, after its cheap checks, then verifies synchronously
//! against the [`KeySet`] ingress hands it. Everything here is pure, so the verdicts are
//! tested without a network.

use std::net::IpAddr;

use base64::Engine as _;
use openssl::bn::BigNum;
use openssl::pkey::{PKey, Public};
use openssl::rsa::Rsa;
use serde::Deserialize;

/// Largest key document read: Google's JWKS and an SNS certificate are a few KiB.
pub const MAX_DOCUMENT: usize = 64 << 10;
/// Most keys read from one JWKS (Google publishes two or three).
const MAX_JWKS_KEYS: usize = 16;

/// How a key document is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFormat {
    /// A JSON Web Key Set (`{"keys":[{"kty":"RSA","kid":…,"n":…,"e":…}]}`).
    Jwks,
    /// One PEM X.509 certificate, whose public key verifies.
    Certificate,
}

/// The document a request's signature is checked with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeySource {
    /// Where it is; already checked by [`key_url`].
    pub url: url::Url,
    pub format: KeyFormat,
}

/// Public keys read from one document.
#[derive(Clone)]
pub enum KeySet {
    /// JWKS RSA keys by `kid`.
    Jwks(Vec<(String, PKey<Public>)>),
    /// A certificate's public key.
    Certificate(PKey<Public>),
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySet::Jwks(keys) => f
                .debug_list()
                .entries(keys.iter().map(|(kid, _)| kid))
                .finish(),
            KeySet::Certificate(_) => f.write_str("Certificate"),
        }
    }
}

impl KeySet {
    /// The document in `format`; the reason is static and holds nothing of the document.
    pub fn parse(format: KeyFormat, document: &[u8]) -> Result<Self, &'static str> {
        if document.len() > MAX_DOCUMENT {
            return Err("key document too large");
        }
        match format {
            KeyFormat::Jwks => parse_jwks(document),
            KeyFormat::Certificate => {
                let cert =
                    openssl::x509::X509::from_pem(document).map_err(|_| "not a PEM certificate")?;
                let key = cert.public_key().map_err(|_| "no usable public key")?;
                key.rsa().map_err(|_| "not an RSA certificate")?;
                Ok(KeySet::Certificate(key))
            }
        }
    }

    /// The JWKS key with this `kid`.
    pub fn by_kid(&self, kid: &str) -> Option<&PKey<Public>> {
        match self {
            KeySet::Jwks(keys) => keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key),
            KeySet::Certificate(_) => None,
        }
    }

    /// The certificate's key.
    pub fn certificate(&self) -> Option<&PKey<Public>> {
        match self {
            KeySet::Certificate(key) => Some(key),
            KeySet::Jwks(_) => None,
        }
    }
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// RSA signing keys with a `kid`; others (encryption keys, other types) are skipped.
fn parse_jwks(document: &[u8]) -> Result<KeySet, &'static str> {
    let jwks: Jwks = serde_json::from_slice(document).map_err(|_| "not a JSON Web Key Set")?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let keys: Vec<_> = (jwks.keys.iter())
        .filter(|k| k.kty.as_deref() == Some("RSA") && k.usage.as_deref().unwrap_or("sig") == "sig")
        .filter_map(|k| {
            let n = BigNum::from_slice(&b64.decode(k.n.as_deref()?).ok()?).ok()?;
            let e = BigNum::from_slice(&b64.decode(k.e.as_deref()?).ok()?).ok()?;
            let rsa = Rsa::from_public_components(n, e).ok()?;
            // Short keys are refused: a 1024-bit key is forgeable by a determined sender.
            (rsa.size() >= 256).then_some(())?;
            Some((k.kid.clone()?, PKey::from_rsa(rsa).ok()?))
        })
        .take(MAX_JWKS_KEYS)
        .collect();
    if keys.is_empty() {
        return Err("no RSA signing key in the key set");
    }
    Ok(KeySet::Jwks(keys))
}

/// Why a key URL is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyUrlError {
    #[error("is not an absolute URL")]
    NotAUrl,
    #[error("must be https (http only to a loopback address)")]
    NotHttps,
    #[error("must not carry credentials, a query or a fragment")]
    Extras,
    #[error("its host is not an allowed one")]
    Host,
}

/// A key document's URL: `https`, or plain `http` to a loopback IP literal only (a local
/// key server or sidecar; the test suite), without credentials, query or fragment, and
/// with a host (and port, when not the default) that `host_allowed` accepts.
pub fn key_url(raw: &str, host_allowed: impl Fn(&str) -> bool) -> Result<url::Url, KeyUrlError> {
    checked_url(raw, false, host_allowed)
}

/// As [`key_url`], but a query is allowed: a URL the provider wants visited (SNS's
/// `SubscribeURL` carries its action and token in the query).
pub fn visit_url(raw: &str, host_allowed: impl Fn(&str) -> bool) -> Result<url::Url, KeyUrlError> {
    checked_url(raw, true, host_allowed)
}

fn checked_url(
    raw: &str,
    query_allowed: bool,
    host_allowed: impl Fn(&str) -> bool,
) -> Result<url::Url, KeyUrlError> {
    let url = url::Url::parse(raw).map_err(|_| KeyUrlError::NotAUrl)?;
    let host = url.host_str().ok_or(KeyUrlError::NotAUrl)?;
    let loopback = (host.trim_start_matches('[').trim_end_matches(']'))
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(KeyUrlError::NotHttps),
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || (url.query().is_some() && !query_allowed)
        || url.fragment().is_some()
    {
        return Err(KeyUrlError::Extras);
    }
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    if !host_allowed(&authority.to_ascii_lowercase()) {
        return Err(KeyUrlError::Host);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_urls_are_https_or_loopback_http_without_extras() {
        let any = |_: &str| true;
        assert!(key_url("https://www.googleapis.com/oauth2/v3/certs", any).is_ok());
        assert!(key_url("http://127.0.0.1:8080/certs", any).is_ok());
        assert!(key_url("http://[::1]:8080/certs", any).is_ok());
        assert_eq!(
            key_url("http://www.googleapis.com/oauth2/v3/certs", any),
            Err(KeyUrlError::NotHttps)
        );
        assert_eq!(
            key_url("http://localhost/c", any),
            Err(KeyUrlError::NotHttps)
        );
        assert_eq!(
            key_url("ftp://127.0.0.1/c", any),
            Err(KeyUrlError::NotHttps)
        );
        assert_eq!(key_url("https://u:p@h/c", any), Err(KeyUrlError::Extras));
        assert_eq!(key_url("https://h/c?x=1", any), Err(KeyUrlError::Extras));
        assert!(visit_url("https://h/c?x=1", any).is_ok());
        assert_eq!(visit_url("https://h/c#x", any), Err(KeyUrlError::Extras));
        assert_eq!(key_url("/c", any), Err(KeyUrlError::NotAUrl));
        let only = |h: &str| h == "sns.us-east-1.amazonaws.com";
        assert!(key_url("https://sns.us-east-1.amazonaws.com/x.pem", only).is_ok());
        assert!(key_url("https://SNS.us-east-1.amazonaws.com/x.pem", only).is_ok());
        assert_eq!(
            key_url("https://sns.us-east-1.amazonaws.com:444/x.pem", only),
            Err(KeyUrlError::Host)
        );
        assert_eq!(
            key_url(
                "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
                only
            ),
            Err(KeyUrlError::Host)
        );
    }

    #[test]
    fn documents_parse_or_are_refused_without_panicking() {
        let rsa = Rsa::generate(2048).unwrap();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwks = serde_json::json!({"keys": [
            {"kty": "EC", "kid": "ec"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": b64.encode(rsa.n().to_vec()), "e": "AQAB"},
            {"kty": "RSA", "kid": "k1", "n": b64.encode(rsa.n().to_vec()), "e": "AQAB"},
        ]});
        let set = KeySet::parse(KeyFormat::Jwks, jwks.to_string().as_bytes()).unwrap();
        assert!(set.by_kid("k1").is_some());
        assert!(set.by_kid("enc").is_none() && set.by_kid("ec").is_none());
        for bad in [&b"{}"[..], b"[]", b"{\"keys\":[]}", b"\xff", b""] {
            assert!(KeySet::parse(KeyFormat::Jwks, bad).is_err());
            assert!(KeySet::parse(KeyFormat::Certificate, bad).is_err());
        }
        let short = Rsa::generate(1024).unwrap();
        let weak = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "k", "n": b64.encode(short.n().to_vec()), "e": "AQAB"}]});
        assert!(KeySet::parse(KeyFormat::Jwks, weak.to_string().as_bytes()).is_err());
        let huge = vec![b' '; MAX_DOCUMENT + 1];
        assert!(KeySet::parse(KeyFormat::Jwks, &huge).is_err());
    }
}
