//! Slack requests: `X-Slack-Signature: v0=<hex HMAC-SHA256(signing_secret, "v0:{ts}:{body}")>`
//! with `ts` from `X-Slack-Request-Timestamp`.
//!
//! Rule (Slack, "Verifying requests from Slack",
//! <https://api.slack.com/authentication/verifying-requests-from-slack>): concatenate the
//! version `v0`, the timestamp header and the raw body with `:`, HMAC-SHA256 it with the
//! app's signing secret, hex-encode, prefix `v0=` and compare. Slack recommends
//! rejecting timestamps more than five minutes from local time (default `tolerance`).
//! The Events API's `url_verification` request (<https://api.slack.com/events/url_verification>)
//! is signed like any other; after verification it is answered with its `challenge` as
//! plain text, which Slack accepts.

use std::time::Duration;

use serde::Deserialize;

use crate::verify::crypto::Key;
use crate::verify::recipe::{self, Recipe, SignatureAt};
use crate::verify::{Handshake, WebhookRequest};

/// The signature header.
pub const SIGNATURE: &str = "X-Slack-Signature";
/// The timestamp header.
pub const TIMESTAMP: &str = "X-Slack-Request-Timestamp";
/// Slack's recommended tolerance.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// An Events API `event_callback` for an app mention.
pub const SAMPLE_BODY: &[u8] = br#"{"token":"XXYYZZ","team_id":"T123ABC456","api_app_id":"A123ABC456","event":{"type":"app_mention","user":"U123ABC456","text":"<@U0LAN0Z89> is it everything a river should be?","ts":"1515449522.000016","channel":"C123ABC456","event_ts":"1515449522000016"},"type":"event_callback","event_id":"Ev123ABC456","event_time":1515449522000016,"authed_users":["U0LAN0Z89"]}"#;

/// `X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:{ts}:{body}")>`.
pub const RECIPE: Recipe = recipe::v0(
    "slack",
    &[SignatureAt::sha256(SIGNATURE, "v0=")],
    TIMESTAMP,
    handshake,
    SAMPLE_BODY,
);

/// The fields of a `url_verification` body we need; everything else is ignored.
#[derive(Deserialize)]
struct UrlVerification {
    #[serde(rename = "type")]
    kind: Option<String>,
    challenge: Option<String>,
}

/// `url_verification` → 200 with the challenge as text.
fn handshake(_: &Key, req: &WebhookRequest<'_>) -> Option<Handshake> {
    let probe: UrlVerification = serde_json::from_slice(req.body).ok()?;
    if probe.kind.as_deref() != Some("url_verification") {
        return None;
    }
    Some(match probe.challenge {
        Some(challenge) => Handshake::text(challenge),
        None => Handshake::bad_request("url_verification without challenge"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::generic::GenericHmac;
    use crate::verify::testutil::{headers, keys, req, with_header, without_header};
    use crate::verify::VerifyError;

    const NOW: i64 = 1_531_420_618;

    fn slack(secrets: &[&str]) -> GenericHmac {
        RECIPE
            .build(keys(secrets), Some(DEFAULT_TOLERANCE), &[])
            .unwrap()
    }

    #[test]
    fn slack_docs_known_answer() {
        // Slack, "Verifying requests from Slack", step-by-step walk-through.
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let h = headers(&[
            (TIMESTAMP, "1531420618"),
            (
                SIGNATURE,
                "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            ),
        ]);
        let v = slack(&["8f742231b10e8888abcd99yyyzzz85a5"]);
        assert_eq!(v.verify(&req(&h, body, NOW)), Ok(()));
        assert_eq!(v.sign(body, "", NOW).unwrap(), h);
    }

    #[test]
    fn rotated_second_secret_is_valid() {
        let h = slack(&["new"]).sign(b"{}", "", NOW).unwrap();
        assert_eq!(slack(&["old", "new"]).verify(&req(&h, b"{}", NOW)), Ok(()));
    }

    #[test]
    fn rejects_tampering_wrong_secret_missing_and_malformed() {
        let v = slack(&["s"]);
        let h = v.sign(b"a=1", "", NOW).unwrap();
        assert_eq!(v.verify(&req(&h, b"a=2", NOW)), Err(VerifyError::Mismatch));
        assert_eq!(
            slack(&["x"]).verify(&req(&h, b"a=1", NOW)),
            Err(VerifyError::Mismatch)
        );
        let other = v.sign(b"b=1", "", NOW).unwrap();
        assert_eq!(
            v.verify(&req(&other, b"a=1", NOW)),
            Err(VerifyError::Mismatch)
        );
        // The timestamp is signed: changing it breaks the signature.
        let moved = with_header(&h, TIMESTAMP, &(NOW + 1).to_string());
        assert_eq!(
            v.verify(&req(&moved, b"a=1", NOW)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            v.verify(&req(&without_header(&h, SIGNATURE), b"a=1", NOW)),
            Err(VerifyError::MissingHeader(SIGNATURE))
        );
        assert_eq!(
            v.verify(&req(&without_header(&h, TIMESTAMP), b"a=1", NOW)),
            Err(VerifyError::MissingHeader(TIMESTAMP))
        );
        let bad_sig = with_header(&h, SIGNATURE, "v1=abcd");
        assert_eq!(
            v.verify(&req(&bad_sig, b"a=1", NOW)),
            Err(VerifyError::MalformedHeader(SIGNATURE))
        );
        let bad_ts = with_header(&h, TIMESTAMP, "yesterday");
        assert_eq!(
            v.verify(&req(&bad_ts, b"a=1", NOW)),
            Err(VerifyError::MalformedHeader(TIMESTAMP))
        );
    }

    #[test]
    fn timestamp_outside_tolerance_either_way() {
        let v = slack(&["s"]);
        let old = v.sign(b"x", "", NOW - 301).unwrap();
        assert_eq!(
            v.verify(&req(&old, b"x", NOW)),
            Err(VerifyError::StaleTimestamp)
        );
        let future = v.sign(b"x", "", NOW + 301).unwrap();
        assert_eq!(
            v.verify(&req(&future, b"x", NOW)),
            Err(VerifyError::StaleTimestamp)
        );
    }

    #[test]
    fn url_verification_handshake() {
        let v = slack(&["s"]);
        let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        let h = v.sign(body, "", NOW).unwrap();
        let r = req(&h, body, NOW);
        assert_eq!(v.verify(&r), Ok(()));
        let hs = v.handshake(&r).unwrap();
        assert_eq!(hs.status, 200);
        assert!(hs.content_type.starts_with("text/plain"));
        assert_eq!(
            &hs.body[..],
            b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
        );
        // Ordinary events and form posts are not handshakes.
        assert_eq!(v.handshake(&req(&h, SAMPLE_BODY, NOW)), None);
        assert_eq!(v.handshake(&req(&h, b"token=x&command=%2Fhi", NOW)), None);
        let missing = br#"{"type":"url_verification"}"#;
        assert_eq!(v.handshake(&req(&h, missing, NOW)).unwrap().status, 400);
    }
}
