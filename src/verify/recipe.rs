//! Providers whose signature is one HMAC over a template, written as data.
//!
//! A [`Recipe`] says where the signature is (header, prefix, encoding, algorithm),
//! what is signed (a template in the `hmac` scheme's syntax), where the timestamp comes
//! from and its default tolerance, and how a handshake is answered. It is data only:
//! the one HMAC engine ([`GenericHmac`](super::generic::GenericHmac)) holds a recipe and
//! the source's secrets, and this module knows nothing of it. A new provider of this
//! kind is a recipe (with a sample body and its test vectors) and one registry row.

use std::time::Duration;

use serde::Deserialize;

use super::crypto::{self, Algorithm, Key, TimestampedSignatures};
use super::{Handshake, WebhookRequest};

/// Answers a provider's handshake for a verified request, given the secret that
/// signed it; `None` when the request is an ordinary event.
pub type HandshakeFn = fn(&Key, &WebhookRequest<'_>) -> Option<Handshake>;

/// How the signature is written in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Hex, either case accepted (unlike the provider schemes: no SDK to agree with),
    /// lowercase produced.
    #[default]
    Hex,
    /// Standard base64, padding optional (the provider schemes require it).
    Base64,
}

/// A value `send` adds to a test delivery besides the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Fixed text.
    Text(&'static str),
    /// A fresh message id.
    MessageId,
}

/// A signature header that carries the timestamp too, as `t=…,v1=…,v1=…` (Stripe) or
/// `ts=…;h1=…` (Paddle): several signatures may be listed while a secret rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedList {
    /// Between items, exactly (WorkOS: a comma and one space).
    pub separator: &'static str,
    /// The key of the (single) timestamp item.
    pub timestamp_key: &'static str,
    /// The key of each signature item.
    pub signature_key: &'static str,
}

impl KeyedList {
    /// Parses a header value; `None` if the timestamp item is missing, repeated or not
    /// a Unix timestamp.
    pub fn parse<'a>(&self, value: &'a str, alg: Algorithm) -> Option<TimestampedSignatures<'a>> {
        crypto::parse_timestamped_signatures(
            value,
            self.separator,
            self.timestamp_key,
            self.signature_key,
            alg,
        )
    }
}

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
