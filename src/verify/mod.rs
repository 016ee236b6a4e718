//! TEMPORARY STUB — replaced by the real verifiers.
use crate::config::SecretRef;
use serde::Deserialize;

pub struct WebhookRequest<'a> {
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
    pub url: &'a str,
    pub now: i64,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signature does not match")]
    Mismatch,
}
impl VerifyError {
    pub fn reason(&self) -> &'static str {
        "mismatch"
    }
}
#[derive(Debug, Deserialize)]
#[serde(tag = "scheme", rename_all = "kebab-case", deny_unknown_fields)]
pub enum VerifyConfig {
    None {},
    Github { secrets: Vec<SecretRef> },
}
impl VerifyConfig {
    pub fn build(&self) -> Result<Verifier, (String, String)> {
        Ok(Verifier::None)
    }
    pub fn secret_refs(&self) -> Vec<&SecretRef> {
        vec![]
    }
    pub fn scheme_name(&self) -> &'static str {
        "none"
    }
}
#[derive(Debug, Clone)]
pub enum Verifier {
    None,
}
#[derive(Debug)]
pub struct Handshake {
    pub status: u16,
    pub content_type: &'static str,
    pub body: bytes::Bytes,
}
impl Verifier {
    pub fn verify(&self, _r: &WebhookRequest<'_>) -> Result<(), VerifyError> {
        Ok(())
    }
    pub fn handshake(&self, _r: &WebhookRequest<'_>) -> Option<Handshake> {
        None
    }
    pub fn sign(&self, _b: &[u8], _u: &str, _n: i64) -> Option<http::HeaderMap> {
        None
    }
    pub fn sample_body(&self) -> &'static [u8] {
        b"{}"
    }
    pub fn sample_content_type(&self) -> &'static str {
        "application/json"
    }
}
