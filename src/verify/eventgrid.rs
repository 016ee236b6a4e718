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
//! can check, so it is answered for any caller — it only echoes a bounded printable
//! code — and produces nothing. Everything else must carry the secret header. (The
//! CloudEvents schema's `OPTIONS` abuse-protection handshake is not answered: use the
//! Event Grid schema.)

use http::HeaderMap;
use serde::Deserialize;

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

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "eventType")]
    event_type: Option<String>,
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "validationCode")]
    validation_code: Option<String>,
}

/// The answer to a validation request; `None` for any other request.
pub fn validation(headers: &HeaderMap, body: &[u8]) -> Option<Handshake> {
    let kind = headers.get(EVENT_TYPE_HEADER)?.to_str().ok()?;
    if !kind.eq_ignore_ascii_case(VALIDATION) {
        return None;
    }
    let code = serde_json::from_slice::<Vec<Event>>(body)
        .ok()
        .and_then(|events| events.into_iter().next())
        .filter(|e| e.event_type.as_deref() == Some(VALIDATION_EVENT))
        .and_then(|e| e.data?.validation_code)
        .filter(|c| {
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
