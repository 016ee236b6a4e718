//! Azure Event Grid (Event Grid event schema): events authenticated by a secret static
//! header (a "delivery property" marked secret on the event subscription, checked like
//! the `token` scheme), and the subscription validation handshake.
//!
//! Rule (Azure docs, "Webhook event delivery — Endpoint validation with Event Grid
//! events"): when a subscription is created, Event Grid POSTs `aeg-event-type:
//! SubscriptionValidation` with a body `[{"eventType":
//! "Microsoft.EventGrid.SubscriptionValidationEvent", "data": {"validationCode": …}}]`;
//! the endpoint proves it wants the events by answering 200 with
//! `{"validationResponse": "<validationCode>"}`. That request carries no secret hookbridge
//! can check, so it is answered only when the event's `topic` (the resource id of the
//! source of events) is one of the source's `topics` or under one of them; anyone else
//! gets 403 — otherwise anybody could subscribe this endpoint to their own topic. It
//! only echoes a bounded printable code and produces nothing. Everything else must
//! carry the secret header. (The
//! CloudEvents schema's `OPTIONS` abuse-protection handshake is not answered: use the
//! Event Grid schema.)

use http::HeaderMap;
use serde::Deserialize;

use super::token::SharedToken;
use super::Handshake;

/// The header Event Grid marks every delivery with.
pub const EVENT_TYPE_HEADER: &str = "aeg-event-type";
/// Its value on the validation request.
const VALIDATION: &str = "SubscriptionValidation";
/// The event type of the validation event.
const VALIDATION_EVENT: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";
/// Longest validation code echoed (Event Grid's are GUIDs).
const MAX_CODE: usize = 256;

/// A `Microsoft.Storage.BlobCreated` event (trimmed).
pub const SAMPLE_BODY: &[u8] = br#"[{"id":"831e1650-001e-001b-66ab-eeb76e069631","topic":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct","subject":"/blobServices/default/containers/c/blobs/report.csv","eventType":"Microsoft.Storage.BlobCreated","eventTime":"2024-06-01T12:00:00.000Z","data":{"api":"PutBlockList","contentType":"text/csv","contentLength":524288},"dataVersion":"","metadataVersion":"1"}]"#;

/// Azure Event Grid: the secret header, and the topics whose validation is answered.
#[derive(Debug, Clone)]
pub struct EventGrid {
    pub token: SharedToken,
    /// Resource ids, without a trailing `/`.
    topics: Vec<String>,
}

/// The configured `topics`, checked: not empty, each a resource id (`/subscriptions/…`).
pub fn topics(raw: &[String]) -> Result<Vec<String>, &'static str> {
    if raw.is_empty() {
        return Err("must list the resource ids of the topics this source takes events from (the subscription validation is answered only for them)");
    }
    raw.iter()
        .map(|t| {
            let t = t.trim().trim_end_matches('/');
            let id = t.strip_prefix("/subscriptions/").unwrap_or_default();
            if id.is_empty() || id.starts_with('/') {
                Err("each must be a resource id starting /subscriptions/<id>")
            } else {
                Ok(t.to_owned())
            }
        })
        .collect()
}

impl EventGrid {
    pub fn new(token: SharedToken, topics: Vec<String>) -> Self {
        Self { token, topics }
    }

    /// Whether `topic` is a configured one or under one (resource ids compare without
    /// regard to case, and only at a `/` boundary).
    fn allows(&self, topic: &str) -> bool {
        let topic = topic.as_bytes();
        self.topics.iter().any(|t| {
            let t = t.as_bytes();
            topic.len() >= t.len()
                && topic[..t.len()].eq_ignore_ascii_case(t)
                && (topic.len() == t.len() || topic[t.len()] == b'/')
        })
    }

    /// The answer to a validation request; `None` for any other request. A validation
    /// for a topic not configured gets 403.
    pub fn validation(&self, headers: &HeaderMap, body: &[u8]) -> Option<Handshake> {
        validation(headers, body, |topic| self.allows(topic))
    }
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "eventType")]
    event_type: Option<String>,
    topic: Option<String>,
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "validationCode")]
    validation_code: Option<String>,
}

fn validation(
    headers: &HeaderMap,
    body: &[u8],
    allowed: impl Fn(&str) -> bool,
) -> Option<Handshake> {
    let kind = headers.get(EVENT_TYPE_HEADER)?.to_str().ok()?;
    if !kind.eq_ignore_ascii_case(VALIDATION) {
        return None;
    }
    let event = serde_json::from_slice::<Vec<Event>>(body)
        .ok()
        .and_then(|events| events.into_iter().next())
        .filter(|e| e.event_type.as_deref() == Some(VALIDATION_EVENT));
    if let Some(e) = &event {
        if !e.topic.as_deref().is_some_and(&allowed) {
            return Some(Handshake::forbidden("topic not allowed"));
        }
    }
    let code = event.and_then(|e| e.data?.validation_code).filter(|c| {
        !c.is_empty() && c.len() <= MAX_CODE && c.bytes().all(|b| b.is_ascii_graphic())
    });
    Some(match code {
        Some(code) => Handshake::json(&serde_json::json!({ "validationResponse": code }))?,
        None => Handshake::bad_request("not a subscription validation event"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::headers;

    fn grid() -> EventGrid {
        let token = SharedToken::token(
            "azure-event-grid",
            http::HeaderName::from_static("x-grid"),
            None,
            &[crate::verify::crypto::Key::new(
                b"grid-secret-0123456789".to_vec(),
            )],
        );
        EventGrid::new(token, topics(&["/subscriptions/x/".to_owned()]).unwrap())
    }

    fn validation(headers: &HeaderMap, body: &[u8]) -> Option<Handshake> {
        grid().validation(headers, body)
    }

    #[test]
    fn only_the_configured_topics_are_validated() {
        let h = headers(&[(EVENT_TYPE_HEADER, "SubscriptionValidation")]);
        let body = |topic: &str| {
            format!(
                r#"[{{"id":"1","topic":"{topic}","data":{{"validationCode":"c0de"}},"eventType":"Microsoft.EventGrid.SubscriptionValidationEvent"}}]"#
            )
        };
        let status = |topic: &str| validation(&h, body(topic).as_bytes()).unwrap().status;
        assert_eq!(status("/subscriptions/x"), 200);
        assert_eq!(status("/SUBSCRIPTIONS/X/resourceGroups/rg"), 200);
        assert_eq!(status("/subscriptions/attacker"), 403);
        assert_eq!(status("/subscriptions/xy"), 403);
        assert_eq!(status(""), 403);
        let untopiced = br#"[{"id":"1","data":{"validationCode":"c0de"},"eventType":"Microsoft.EventGrid.SubscriptionValidationEvent"}]"#;
        assert_eq!(validation(&h, untopiced).unwrap().status, 403);
        assert!(topics(&[]).is_err());
        assert!(topics(&["/subscriptions/".to_owned()]).is_err());
        assert!(topics(&["rg".to_owned()]).is_err());
    }

    #[test]
    fn the_validation_code_is_answered_and_nothing_else_is_a_handshake() {
        let h = headers(&[(EVENT_TYPE_HEADER, "SubscriptionValidation")]);
        let body = br#"[{"id":"2d1781af-3a4c-4d7c-bd0c-e34b19da4e66","topic":"/subscriptions/x","subject":"","data":{"validationCode":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6","validationUrl":"https://rp-eastus2.eventgrid.azure.net/x"},"eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","eventTime":"2018-01-25T22:12:19.4556811Z","metadataVersion":"1","dataVersion":"1"}]"#;
        let answer = validation(&h, body).unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(
            &answer.body[..],
            br#"{"validationResponse":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}"#
        );
        assert_eq!(validation(&h, b"[]").unwrap().status, 400);
        assert_eq!(validation(&h, SAMPLE_BODY).unwrap().status, 400);
        let notification = headers(&[(EVENT_TYPE_HEADER, "Notification")]);
        assert_eq!(validation(&notification, body), None);
        assert_eq!(validation(&HeaderMap::new(), body), None);
    }
}
