//! Discord's two kinds of signed HTTP requests, both `X-Signature-Ed25519: <hex Ed25519
//! signature of timestamp + body>` and `X-Signature-Timestamp`, checked against the
//! application's public key:
//!
//! * **Interactions** (`scheme = "discord"`; Discord Developer Docs, "Interactions —
//!   Receiving and Responding"): a `PING` is `{"type":1}` and must be answered with a
//!   `PONG`, `{"type":1}`. Every other interaction must be answered within 3 seconds
//!   with an interaction response, or Discord shows the user a failure. hookbridge
//!   produces it to Kafka and, after the broker's ack, answers with a *deferred*
//!   response — `{"type":5}` (`DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE`, "ACK an
//!   interaction and edit a response later, the user sees a loading state"); for a
//!   message component (type 3) `{"type":6}` (`DEFERRED_UPDATE_MESSAGE`, the user sees
//!   no loading state); for an autocomplete (type 4), which cannot be deferred, an
//!   empty choice list `{"type":8,"data":{"choices":[]}}` — so the consumer of the topic
//!   completes it later with the interaction token.
//! * **Webhook events** (`scheme = "discord-events"`; "Webhook Events"): the body's
//!   `type` is `0` for a `PING` — "a PING event sent to verify your Webhook Event URL is
//!   active" — and `1` for an event. Both are acknowledged with `204` and no body; a
//!   `PING` is not produced, an event is produced first. Here `{"type":1}` is a real
//!   event, never a handshake.
//!
//! Discord states no replay window; hookbridge applies one anyway (`tolerance`, default
//! 5 minutes, both ways) since the timestamp is signed — a deliberate, stricter
//! difference. Discord signs with a private key only it holds, so `hookbridge send`
//! cannot sign for these schemes.

use std::time::Duration;

use http::HeaderMap;
use serde::Deserialize;

use super::crypto;
use super::{Handshake, VerifyError, WebhookRequest};
use crate::signature::ed25519::{self, PublicKey};

/// The signature header.
pub const SIGNATURE: &str = "X-Signature-Ed25519";
/// The timestamp header.
pub const TIMESTAMP: &str = "X-Signature-Timestamp";
/// hookbridge's replay window for Discord.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// An `APPLICATION_COMMAND` interaction (trimmed).
pub const SAMPLE_BODY: &[u8] = br#"{"type":2,"id":"1234567890","application_id":"987654321","token":"interaction-token","data":{"name":"hello","type":1}}"#;

/// An `APPLICATION_AUTHORIZED` webhook event (trimmed).
pub const SAMPLE_EVENT: &[u8] = br#"{"version":1,"application_id":"987654321","type":1,"event":{"type":"APPLICATION_AUTHORIZED","timestamp":"2024-10-18T14:42:53.064834","data":{"integration_type":1,"scopes":["applications.commands"],"user":{"id":"1234567890","username":"someone"}}}}"#;

/// Which of Discord's two kinds of requests a source receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Interactions (slash commands, components, modals): `PING` is type 1.
    Interactions,
    /// Webhook events: `PING` is type 0, an event is type 1.
    Events,
}

/// Verifies Discord interactions or webhook events and answers them as Discord requires.
#[derive(Debug, Clone)]
pub struct Discord {
    keys: Vec<PublicKey>,
    tolerance: Duration,
    kind: Kind,
}

#[derive(Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: Option<u64>,
    /// Only webhook events carry one.
    event: Option<serde::de::IgnoredAny>,
}

impl Discord {
    /// A verifier over application public keys `keys`.
    pub fn new(keys: Vec<PublicKey>, tolerance: Duration, kind: Kind) -> Self {
        Discord {
            keys,
            tolerance,
            kind,
        }
    }

    /// The scheme name in config.
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Interactions => "discord",
            Kind::Events => "discord-events",
        }
    }

    /// A sample body of this kind, for `hookbridge send` and tests.
    pub fn sample_body(&self) -> &'static [u8] {
        match self.kind {
            Kind::Interactions => SAMPLE_BODY,
            Kind::Events => SAMPLE_EVENT,
        }
    }

    /// Checks the timestamp window, then the signature of timestamp + body.
    pub fn verify(&self, req: &WebhookRequest<'_>) -> Result<(), VerifyError> {
        let ts_text = crypto::header_str(req.headers, TIMESTAMP)?;
        let signature = crypto::header_str(req.headers, SIGNATURE)?;
        let ts = crypto::parse_unix(ts_text).ok_or(VerifyError::MalformedHeader(TIMESTAMP))?;
        let signature = ed25519::signature_from_hex(signature)
            .ok_or(VerifyError::MalformedHeader(SIGNATURE))?;
        crypto::check_tolerance(ts, req.now, self.tolerance)?;
        if ed25519::verify_any(&self.keys, &[ts_text.as_bytes(), req.body], &signature) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }

    /// The answer to a `PING`, which is not produced: interactions `{"type":1}` →
    /// `{"type":1}`; webhook events `{"type":0}` → 204. A webhook event (type 1 with an
    /// `event`) sent to an interactions source is refused with 400, never answered as a
    /// PING: the source was set up on a Webhook Events URL and needs `discord-events`,
    /// and a 2xx would tell Discord an event nobody produced was delivered.
    pub fn handshake(&self, req: &WebhookRequest<'_>) -> Option<Handshake> {
        let body: Interaction = serde_json::from_slice(req.body).ok()?;
        match (self.kind, body.kind?) {
            (Kind::Interactions, 1) if body.event.is_some() => Some(Handshake::bad_request(
                "a Discord webhook event sent to a source with scheme = \"discord\" (interactions): use scheme = \"discord-events\"",
            )),
            (Kind::Interactions, 1) => Handshake::json(&serde_json::json!({ "type": 1 })),
            (Kind::Events, 0) => Some(Handshake::no_content()),
            _ => None,
        }
    }

    /// The answer once anything else is in Kafka, in place of hookbridge's own 200: a
    /// deferred interaction response Discord accepts, or 204 for a webhook event.
    pub fn acknowledgement(&self, req: &WebhookRequest<'_>) -> Option<Handshake> {
        match self.kind {
            Kind::Events => Some(Handshake::no_content()),
            Kind::Interactions => Handshake::json(&match body_type(req.body) {
                // MESSAGE_COMPONENT: DEFERRED_UPDATE_MESSAGE, no loading state.
                Some(3) => serde_json::json!({ "type": 6 }),
                // APPLICATION_COMMAND_AUTOCOMPLETE: cannot be deferred; no choices.
                Some(4) => serde_json::json!({ "type": 8, "data": { "choices": [] } }),
                // DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE.
                _ => serde_json::json!({ "type": 5 }),
            }),
        }
    }

    /// The headers for `body` signed with the private key `seed` at `now` (tests).
    pub fn sign_with(seed: &[u8; 32], body: &[u8], now: i64) -> Option<HeaderMap> {
        let ts = now.to_string();
        let signature = ed25519::sign(seed, &[ts.as_bytes(), body])?;
        let mut headers = HeaderMap::new();
        crypto::insert_header(&mut headers, TIMESTAMP, &ts)?;
        crypto::insert_header(&mut headers, SIGNATURE, &hex::encode(signature))?;
        Some(headers)
    }
}

/// The body's top-level `type`, when it is a JSON object with a numeric one.
fn body_type(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Interaction>(body).ok()?.kind
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{req, with_header, without_header};

    const NOW: i64 = 1_717_243_200;
    const SEED: [u8; 32] = [7u8; 32];
    const OTHER_SEED: [u8; 32] = [9u8; 32];

    fn public(seed: &[u8; 32]) -> PublicKey {
        let key = openssl::pkey::PKey::private_key_from_raw_bytes(seed, openssl::pkey::Id::ED25519)
            .unwrap();
        PublicKey::from_hex(&hex::encode(key.raw_public_key().unwrap())).unwrap()
    }

    fn discord(seeds: &[&[u8; 32]]) -> Discord {
        Discord::new(
            seeds.iter().map(|s| public(s)).collect(),
            DEFAULT_TOLERANCE,
            Kind::Interactions,
        )
    }

    fn events() -> Discord {
        Discord::new(vec![public(&SEED)], DEFAULT_TOLERANCE, Kind::Events)
    }

    #[test]
    fn signed_interactions_verify_with_any_key() {
        let h = Discord::sign_with(&SEED, SAMPLE_BODY, NOW).unwrap();
        assert_eq!(discord(&[&SEED]).verify(&req(&h, SAMPLE_BODY, NOW)), Ok(()));
        assert_eq!(
            discord(&[&OTHER_SEED, &SEED]).verify(&req(&h, SAMPLE_BODY, NOW)),
            Ok(())
        );
        assert_eq!(
            discord(&[&OTHER_SEED]).verify(&req(&h, SAMPLE_BODY, NOW)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            discord(&[&SEED]).verify(&req(&h, b"{\"type\":3}", NOW)),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn stale_missing_and_malformed() {
        let v = discord(&[&SEED]);
        let old = Discord::sign_with(&SEED, b"{}", NOW - 301).unwrap();
        assert_eq!(
            v.verify(&req(&old, b"{}", NOW)),
            Err(VerifyError::StaleTimestamp)
        );
        let h = Discord::sign_with(&SEED, b"{}", NOW).unwrap();
        assert_eq!(
            v.verify(&req(&without_header(&h, SIGNATURE), b"{}", NOW)),
            Err(VerifyError::MissingHeader(SIGNATURE))
        );
        let upper = h.get(SIGNATURE).unwrap().to_str().unwrap().to_owned() + "00";
        assert_eq!(
            v.verify(&req(&with_header(&h, SIGNATURE, &upper), b"{}", NOW)),
            Err(VerifyError::MalformedHeader(SIGNATURE))
        );
    }

    #[test]
    fn ping_is_answered() {
        let v = discord(&[&SEED]);
        let h = Discord::sign_with(&SEED, b"{\"type\":1}", NOW).unwrap();
        let r = req(&h, b"{\"type\":1}", NOW);
        assert_eq!(v.verify(&r), Ok(()));
        let answer = v.handshake(&r).unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(&answer.body[..], b"{\"type\":1}");
        assert_eq!(v.handshake(&req(&h, SAMPLE_BODY, NOW)), None);
    }

    #[test]
    fn a_webhook_event_sent_to_an_interactions_source_is_refused_not_ponged() {
        let h = HeaderMap::new();
        let (status, body) = answer(discord(&[&SEED]).handshake(&req(&h, SAMPLE_EVENT, NOW)));
        assert_eq!(status, 400);
        assert!(body.contains("discord-events"), "{body}");
    }

    fn answer(h: Option<Handshake>) -> (u16, String) {
        let h = h.expect("an answer");
        (h.status, String::from_utf8(h.body.to_vec()).unwrap())
    }

    #[test]
    fn interactions_are_deferred_once_produced() {
        let v = discord(&[&SEED]);
        let h = HeaderMap::new();
        let ack = |body: &[u8]| answer(v.acknowledgement(&req(&h, body, NOW)));
        assert_eq!(ack(SAMPLE_BODY), (200, r#"{"type":5}"#.into()));
        assert_eq!(
            ack(br#"{"type":5,"data":{}}"#),
            (200, r#"{"type":5}"#.into())
        );
        assert_eq!(ack(br#"{"type":3}"#), (200, r#"{"type":6}"#.into()));
        assert_eq!(
            ack(br#"{"type":4}"#),
            (200, r#"{"data":{"choices":[]},"type":8}"#.into())
        );
    }

    #[test]
    fn webhook_events_ping_is_type_0_and_type_1_is_an_event() {
        let v = events();
        let h = HeaderMap::new();
        let ping = req(&h, br#"{"version":1,"application_id":"1","type":0}"#, NOW);
        assert_eq!(answer(v.handshake(&ping)), (204, String::new()));
        // An event is never a handshake: it is produced, then answered 204.
        let event = req(&h, SAMPLE_EVENT, NOW);
        assert_eq!(v.handshake(&event), None);
        assert_eq!(v.handshake(&req(&h, br#"{"type":1}"#, NOW)), None);
        assert_eq!(answer(v.acknowledgement(&event)), (204, String::new()));
        // Interactions never treat type 0 as a PING.
        assert_eq!(discord(&[&SEED]).handshake(&ping), None);
    }
}
