//! Microsoft Graph change notifications: a subscription's `clientState` is the shared
//! secret, sent back in every notification; the endpoint is validated with a
//! `validationToken`.
//!
//! Rule (Microsoft Graph docs, "Receive change notifications through webhooks"):
//! * When a subscription is created, Graph POSTs to the notification URL with
//!   `?validationToken=<token>` and an empty body; the endpoint must answer within 10
//!   seconds with 200, `Content-Type: text/plain` and the token, URL-decoded, as the
//!   body. No secret is involved, so hookbridge answers it for any caller (it only
//!   echoes printable text of bounded length) and produces nothing.
//! * A notification is JSON `{"value": [ … ]}`; each item carries the `clientState` set
//!   on the subscription, which must equal a configured secret (constant time). Graph
//!   signs nothing else: the `clientState` check is the authentication, as Microsoft
//!   describes it. Every item must carry it, so one forged item cannot ride along.

use serde::Deserialize;

use super::crypto::{ct_eq, Key};
use super::{Handshake, VerifyError, WebhookRequest};

/// The query parameter of the validation request.
pub const VALIDATION_TOKEN: &str = "validationToken";
/// Longest validation token echoed (Graph's are far shorter).
const MAX_TOKEN: usize = 1024;
/// The field checked in each notification.
const FIELD: &str = "clientState";

/// One `created` notification (trimmed).
pub const SAMPLE_BODY: &[u8] = br#"{"value":[{"subscriptionId":"7f105c7d-2dc5-4530-97cd-4e7ae6534c07","subscriptionExpirationDateTime":"2024-06-03T12:00:00.0000000Z","changeType":"created","resource":"Users/b4a5e4c9-3c71-4b5b-8d8f-6a1e1c2b3d4e/Messages/AAMkAGUwNjQ4ZjIx","clientState":"","tenantId":"84bd8158-6d4d-4958-8b9f-9d6445542f95"}]}"#;

/// Verifies Graph notifications by their `clientState` and answers the validation.
#[derive(Debug, Clone)]
pub struct MsGraph {
    client_states: Vec<Key>,
}

#[derive(Deserialize)]
struct Notifications {
    value: Vec<Notification>,
}

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "clientState")]
    client_state: Option<String>,
}

impl MsGraph {
    /// A verifier accepting any of `client_states`.
    pub fn new(client_states: Vec<Key>) -> Self {
        MsGraph { client_states }
    }

    /// Every notification in the body carries a configured `clientState`.
    pub fn verify(&self, req: &WebhookRequest<'_>) -> Result<(), VerifyError> {
        let body: Notifications =
            serde_json::from_slice(req.body).map_err(|_| VerifyError::MalformedBody("value"))?;
        if body.value.is_empty() {
            return Err(VerifyError::MalformedBody("value"));
        }
        for n in &body.value {
            let state = n
                .client_state
                .as_deref()
                .ok_or(VerifyError::MalformedBody(FIELD))?;
            let known = (self.client_states.iter())
                .fold(false, |ok, k| ct_eq(k.as_bytes(), state.as_bytes()) | ok);
            if !known {
                return Err(VerifyError::Mismatch);
            }
        }
        Ok(())
    }

    /// The validation request (`POST …?validationToken=…`): the token as text.
    pub fn subscription(&self, query: Option<&str>) -> Option<Handshake> {
        let token = form_urlencoded::parse(query?.as_bytes())
            .find(|(k, _)| k == VALIDATION_TOKEN)
            .map(|(_, v)| v)?;
        let printable = |c: char| !c.is_control();
        Some(
            if !token.is_empty() && token.len() <= MAX_TOKEN && token.chars().all(printable) {
                Handshake::text(token.into_owned())
            } else {
                Handshake::bad_request("validationToken must be printable text")
            },
        )
    }

    /// A notification body carrying the first `clientState` (for `send` and tests).
    pub fn sign_body(&self, body: &[u8]) -> Option<Vec<u8>> {
        let state = std::str::from_utf8(self.client_states.first()?.as_bytes()).ok()?;
        let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
        for item in value.get_mut("value")?.as_array_mut()? {
            item.as_object_mut()?
                .insert(FIELD.to_owned(), serde_json::Value::from(state));
        }
        serde_json::to_vec(&value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{keys, req};
    use http::HeaderMap;

    const NOW: i64 = 1_717_243_200;

    #[test]
    fn every_notification_needs_a_known_client_state() {
        let v = MsGraph::new(keys(&["old-state", "state-1234"]));
        let h = HeaderMap::new();
        let ok = br#"{"value":[{"clientState":"state-1234"},{"clientState":"old-state"}]}"#;
        assert_eq!(v.verify(&req(&h, ok, NOW)), Ok(()));
        let forged = br#"{"value":[{"clientState":"state-1234"},{"clientState":"nope"}]}"#;
        assert_eq!(v.verify(&req(&h, forged, NOW)), Err(VerifyError::Mismatch));
        let missing = br#"{"value":[{"clientState":"state-1234"},{}]}"#;
        assert_eq!(
            v.verify(&req(&h, missing, NOW)),
            Err(VerifyError::MalformedBody(FIELD))
        );
        for bad in [&b"{}"[..], br#"{"value":[]}"#, b"not json"] {
            assert_eq!(
                v.verify(&req(&h, bad, NOW)),
                Err(VerifyError::MalformedBody("value"))
            );
        }
        let signed = v.sign_body(SAMPLE_BODY).unwrap();
        assert_eq!(v.verify(&req(&h, &signed, NOW)), Ok(()));
    }

    #[test]
    fn the_validation_token_is_echoed_as_text() {
        let v = MsGraph::new(keys(&["s"]));
        let h = v
            .subscription(Some(
                "validationToken=Validation%3A%20Testing%20client%20application",
            ))
            .unwrap();
        assert_eq!(
            (h.status, h.content_type),
            (200, "text/plain; charset=utf-8")
        );
        assert_eq!(&h.body[..], b"Validation: Testing client application");
        assert_eq!(v.subscription(Some("other=1")), None);
        assert_eq!(v.subscription(None), None);
        assert_eq!(
            v.subscription(Some("validationToken=")).unwrap().status,
            400
        );
        assert_eq!(
            v.subscription(Some("validationToken=a%0Ab"))
                .unwrap()
                .status,
            400
        );
    }
}
