//! Meta webhooks (WhatsApp Cloud API, Messenger, Instagram, Facebook Graph): each POST
//! carries `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>`, and the
//! endpoint is registered with a GET verification request,
//! `?hub.mode=subscribe&hub.verify_token=<token>&hub.challenge=<n>`, answered 200 with the
//! challenge when the token is the one configured, 403 otherwise.
//!
//! Rule (Meta for Developers, Graph API "Webhooks: Getting started", verification requests
//! and event notifications). Meta signs no timestamp, so there is no replay window. Meta
//! publishes no verification library; the recipe follows the documented algorithm.

use http::HeaderMap;

use super::crypto::{ct_eq, Key};
use super::generic::{GenericHmac, RecipeError};
use super::recipe::{Recipe, SignatureAt};
use super::{Handshake, VerifyError, WebhookRequest};

/// The signature header.
pub const SIGNATURE: &str = "X-Hub-Signature-256";

/// A WhatsApp message notification.
pub const SAMPLE_BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"messages":[{"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=","timestamp":"1749416383","type":"text","text":{"body":"Does it come in another color?"}}]},"field":"messages"}]}]}"#;

/// `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>`.
pub const RECIPE: Recipe = Recipe {
    name: "meta",
    signatures: &[SignatureAt::sha256(SIGNATURE, "sha256=")],
    sample_body: SAMPLE_BODY,
    ..Recipe::DEFAULTS
};

/// Longest `hub.challenge` echoed back (Meta sends a short number).
const MAX_CHALLENGE: usize = 256;

/// Meta's verifier: the app secrets for events, the verify tokens for the subscription.
#[derive(Debug, Clone)]
pub struct Meta {
    hmac: GenericHmac,
    verify_tokens: Vec<Key>,
}

impl Meta {
    /// Events verified with any of `app_secrets`; subscriptions with any of `verify_tokens`.
    pub fn new(app_secrets: Vec<Key>, verify_tokens: Vec<Key>) -> Result<Self, RecipeError> {
        Ok(Meta {
            hmac: RECIPE.build(app_secrets, None, &[])?,
            verify_tokens,
        })
    }

    pub fn verify(&self, req: &WebhookRequest<'_>) -> Result<(), VerifyError> {
        self.hmac.verify(req)
    }

    pub fn sign(&self, body: &[u8], url: &str, now: i64) -> Option<HeaderMap> {
        self.hmac.sign(body, url, now)
    }

    /// The answer to a GET verification request (`query` is the URL's query string):
    /// `None` when it is not one. The token is compared in constant time.
    pub fn subscription(&self, query: Option<&str>) -> Option<Handshake> {
        let (mut mode, mut token, mut challenge) = (None, None, None);
        for (k, v) in form_urlencoded::parse(query?.as_bytes()) {
            match k.as_ref() {
                "hub.mode" => mode = Some(v),
                "hub.verify_token" => token = Some(v),
                "hub.challenge" => challenge = Some(v),
                _ => {}
            }
        }
        if mode.as_deref() != Some("subscribe") {
            return None;
        }
        let token = token.unwrap_or_default();
        let known = (self.verify_tokens.iter()).any(|k| ct_eq(k.as_bytes(), token.as_bytes()));
        if !known {
            return Some(Handshake::forbidden("unknown verify token"));
        }
        match challenge {
            Some(c)
                if !c.is_empty()
                    && c.len() <= MAX_CHALLENGE
                    && c.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Some(Handshake::text(c.into_owned()))
            }
            _ => Some(Handshake::bad_request("missing or malformed hub.challenge")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{headers, keys, req};

    fn meta() -> Meta {
        Meta::new(keys(&["app-secret"]), keys(&["old-token", "new-token"])).unwrap()
    }

    #[test]
    fn events_are_verified_like_the_documented_hmac() {
        let m = meta();
        let body = SAMPLE_BODY;
        let signed = m.sign(body, "", 0).unwrap();
        assert!(m.verify(&req(&signed, body, 0)).is_ok());
        let sig = signed.get(SIGNATURE).unwrap().to_str().unwrap().to_owned();
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        let tampered = [body, b" "].concat();
        assert_eq!(
            m.verify(&req(&signed, &tampered, 0)),
            Err(VerifyError::Mismatch)
        );
        let wrong = headers(&[(SIGNATURE, &format!("sha256={}", "0".repeat(64)))]);
        assert_eq!(m.verify(&req(&wrong, body, 0)), Err(VerifyError::Mismatch));
    }

    #[test]
    fn the_subscription_is_answered_only_for_a_configured_token() {
        let m = meta();
        let ok = m
            .subscription(Some(
                "hub.mode=subscribe&hub.verify_token=new-token&hub.challenge=1158201444",
            ))
            .unwrap();
        assert_eq!((ok.status, ok.body.as_ref()), (200, &b"1158201444"[..]));
        let rotated = m
            .subscription(Some(
                "hub.mode=subscribe&hub.verify_token=old-token&hub.challenge=7",
            ))
            .unwrap();
        assert_eq!(rotated.status, 200);
        let wrong = m
            .subscription(Some(
                "hub.mode=subscribe&hub.verify_token=guess&hub.challenge=7",
            ))
            .unwrap();
        assert_eq!(wrong.status, 403);
        assert!(!String::from_utf8_lossy(&wrong.body).contains("token="));
        let no_challenge = m
            .subscription(Some("hub.mode=subscribe&hub.verify_token=new-token"))
            .unwrap();
        assert_eq!(no_challenge.status, 400);
        let script = m
            .subscription(Some(
                "hub.mode=subscribe&hub.verify_token=new-token&hub.challenge=%3Cscript%3E%20x",
            ))
            .unwrap();
        assert_eq!(script.status, 400, "only a plain token is echoed");
        assert!(m.subscription(Some("hub.mode=unsubscribe")).is_none());
        assert!(m.subscription(None).is_none());
    }
}
