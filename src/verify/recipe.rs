//! Providers whose signature is one HMAC over a template, written as data.
//!
//! A [`Recipe`] says where the signature is (header, prefix, encoding, algorithm),
//! what is signed (a template in the `hmac` scheme's syntax), where the timestamp comes
//! from and its default tolerance, and how a handshake is answered. [`Recipe::build`]
//! turns it, with the source's secrets, into the one HMAC engine
//! ([`GenericHmac`](super::generic::GenericHmac)). A new provider of this kind is a
//! recipe, a sample body and its test vectors.

use std::time::Duration;

use http::header::HeaderName;

use super::crypto::{Algorithm, Key};
use super::generic::{Encoding, Fill, GenericHmac, KeyedList, SignatureHeader, Template};
use super::{Handshake, WebhookRequest};

/// Answers a provider's handshake for a verified request, given the secret that
/// signed it; `None` when the request is an ordinary event.
pub type HandshakeFn = fn(&Key, &WebhookRequest<'_>) -> Option<Handshake>;

/// One header a provider may put its signature in.
#[derive(Debug, Clone, Copy)]
pub struct SignatureAt {
    /// The header name.
    pub header: &'static str,
    /// Text before the encoded MAC, e.g. `"sha256="`.
    pub prefix: &'static str,
    /// The MAC algorithm.
    pub algorithm: Algorithm,
    /// Whether `send` writes it; an alternate spelling of another header is not written.
    pub sent: bool,
}

impl SignatureAt {
    /// The common case: an HMAC-SHA256 signature after `prefix`, written by `send`.
    pub const fn sha256(header: &'static str, prefix: &'static str) -> Self {
        SignatureAt {
            header,
            prefix,
            algorithm: Algorithm::Sha256,
            sent: true,
        }
    }
}

/// A provider's signing rule, as data.
#[derive(Debug, Clone, Copy)]
pub struct Recipe {
    /// The scheme name in config.
    pub name: &'static str,
    /// Where the signature may be; the first present in a request is checked.
    pub signatures: &'static [SignatureAt],
    /// How the MAC is written.
    pub encoding: Encoding,
    /// The signed content (`{body}`, `{timestamp}`, `{url}`, `{header:Name}`).
    pub template: &'static str,
    /// The header carrying the signed Unix-seconds timestamp, if the provider signs one.
    pub timestamp_header: Option<&'static str>,
    /// When the signature header is a keyed list that also carries the timestamp.
    pub list: Option<KeyedList>,
    /// The timestamp header counts milliseconds rather than seconds.
    pub timestamp_millis: bool,
    /// The provider's own replay window.
    pub default_tolerance: Duration,
    /// Headers `send` adds so a test delivery looks real.
    pub extra: &'static [(&'static str, Fill)],
    /// The provider's endpoint handshake, if it has one.
    pub handshake: Option<HandshakeFn>,
    /// A realistic body for `send`.
    pub sample_body: &'static [u8],
}

impl Recipe {
    /// What a recipe leaves unsaid: hex over `{body}`, no timestamp, no handshake; a
    /// provider recipe states only where it differs (`..Recipe::DEFAULTS`).
    pub const DEFAULTS: Recipe = Recipe {
        name: "",
        signatures: &[],
        encoding: Encoding::Hex,
        template: "{body}",
        timestamp_header: None,
        list: None,
        timestamp_millis: false,
        default_tolerance: Duration::ZERO,
        extra: &[],
        handshake: None,
        sample_body: b"",
    };
}

/// Slack's and Zoom's shared rule: `<header>: v0=<hex HMAC-SHA256(secret,
/// "v0:{timestamp}:{body}")>` with a Unix-seconds timestamp header, five minutes either
/// way, and a handshake.
pub const fn v0(
    name: &'static str,
    signatures: &'static [SignatureAt],
    timestamp_header: &'static str,
    handshake: HandshakeFn,
    sample_body: &'static [u8],
) -> Recipe {
    Recipe {
        name,
        signatures,
        template: "v0:{timestamp}:{body}",
        timestamp_header: Some(timestamp_header),
        default_tolerance: Duration::from_secs(300),
        handshake: Some(handshake),
        sample_body,
        ..Recipe::DEFAULTS
    }
}

/// A recipe that does not build: a bug in the recipe, caught by its tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("recipe {name}: {reason}")]
pub struct RecipeError {
    name: &'static str,
    reason: String,
}

impl Recipe {
    /// The engine for this provider with `keys` (any may match) and `tolerance`
    /// (`None`: the provider's default; ignored when no timestamp is signed).
    /// `extra_signatures` adds optional headers, e.g. GitHub's legacy SHA-1 one.
    pub fn build(
        &self,
        keys: Vec<Key>,
        tolerance: Option<Duration>,
        extra_signatures: &[SignatureAt],
    ) -> Result<GenericHmac, RecipeError> {
        let fail = |reason: String| RecipeError {
            name: self.name,
            reason,
        };
        let header = |name: &'static str| {
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| fail(e.to_string()))
        };
        let signatures = (self.signatures.iter().chain(extra_signatures))
            .map(|at| {
                Ok(SignatureHeader {
                    name: header(at.header)?,
                    label: at.header,
                    prefix: at.prefix.to_owned(),
                    algorithm: at.algorithm,
                    sent: at.sent,
                })
            })
            .collect::<Result<Vec<_>, RecipeError>>()?;
        let tolerance = tolerance.unwrap_or(self.default_tolerance);
        let timestamp = match self.timestamp_header {
            Some(name) => Some((header(name)?, name, tolerance)),
            None => None,
        };
        let list = self.list.map(|list| (list, tolerance));
        let template = Template::parse(self.template).map_err(|e| fail(e.to_string()))?;
        let engine = GenericHmac::from_parts(
            self.name,
            keys,
            signatures,
            self.encoding,
            (timestamp, list),
            template,
            self.extra,
            self.handshake,
            self.sample_body,
        );
        Ok(if self.timestamp_millis {
            engine.in_millis()
        } else {
            engine
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{
        calendly, github, hubspot, paddle, shopify, slack, square, stripe, workos, zoom,
    };
    use super::*;

    #[test]
    fn every_recipe_builds() {
        for recipe in [
            &github::RECIPE,
            &stripe::RECIPE,
            &paddle::RECIPE,
            &hubspot::RECIPE,
            &shopify::RECIPE,
            &slack::RECIPE,
            &square::RECIPE,
            &zoom::RECIPE,
            &calendly::RECIPE,
            &workos::RECIPE,
        ] {
            let engine = recipe
                .build(vec![Key::new(&b"k"[..])], None, &github::LEGACY_SHA1)
                .unwrap();
            assert_eq!(engine.name(), recipe.name);
            assert!(engine
                .sign(recipe.sample_body, "https://a.example/", 0)
                .is_some());
        }
    }
}
