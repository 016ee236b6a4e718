//! Webhook signatures as both directions make and check them: MAC keys and tags
//! ([`mac`]), Ed25519 ([`ed25519`]) and Standard Webhooks signing, verifying and
//! `whsec_` key decoding ([`standard`]). Ingress verification (`verify`) and egress
//! signing (`egress`) both build on this module, so neither copies the other; it uses no
//! other module of the crate.

pub mod ed25519;
pub mod mac;
pub mod standard;
