//! Every answer ingress gives a webhook sender, decided by one enum.

use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::connectors::source::OriginCheck;
use crate::verify::Handshake;

/// The outcome of one webhook request.
#[derive(Debug)]
pub enum Reply {
    /// The record is acknowledged by Kafka.
    Accepted,
    /// A provider handshake answered as the provider requires; nothing produced.
    Handshake(Handshake),
    /// A CloudEvents abuse-protection request (`OPTIONS`) answered.
    OriginCheck(OriginCheck),
    NotFound,
    MethodNotAllowed,
    /// A transfer coding other than `chunked` (RFC 9112 6.1: 501): the body would be
    /// taken as it came, still encoded, with nothing to say so.
    TransferCodingNotImplemented,
    /// Bad, missing or stale signature.
    Unauthorized(&'static str),
    /// The configured key is not in the request.
    BadRequest(String),
    PayloadTooLarge(usize),
    /// The body did not arrive within the deadline or at the minimum rate.
    RequestTimeout,
    /// Kafka refused the record for its size: retrying can never succeed.
    RecordTooLarge,
    RateLimited(Duration),
    /// Kafka did not acknowledge in time, or too many requests (or request bytes) are in
    /// flight.
    Unavailable(&'static str),
}

impl Reply {
    pub fn status(&self) -> StatusCode {
        match self {
            Reply::Accepted => StatusCode::OK,
            Reply::Handshake(h) => StatusCode::from_u16(h.status).unwrap_or(StatusCode::OK),
            Reply::OriginCheck(OriginCheck::Allowed(_)) => StatusCode::OK,
            Reply::OriginCheck(OriginCheck::Refused) => StatusCode::FORBIDDEN,
            Reply::OriginCheck(OriginCheck::Missing) => StatusCode::BAD_REQUEST,
            Reply::NotFound => StatusCode::NOT_FOUND,
            Reply::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Reply::TransferCodingNotImplemented => StatusCode::NOT_IMPLEMENTED,
            Reply::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Reply::BadRequest(_) => StatusCode::BAD_REQUEST,
            Reply::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Reply::PayloadTooLarge(_) | Reply::RecordTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reply::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Reply::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn retry_after(seconds: u64) -> HeaderValue {
    HeaderValue::from(seconds.max(1))
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            Reply::Accepted => (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                Bytes::from_static(b"{\"status\":\"accepted\"}"),
            )
                .into_response(),
            Reply::Handshake(h) => {
                (status, [(header::CONTENT_TYPE, h.content_type)], h.body).into_response()
            }
            Reply::OriginCheck(check) => match check {
                OriginCheck::Allowed(origin) => (
                    status,
                    [
                        (HeaderName::from_static("webhook-allowed-origin"), origin),
                        (
                            HeaderName::from_static("webhook-allowed-rate"),
                            HeaderValue::from_static("*"),
                        ),
                        (header::ALLOW, HeaderValue::from_static("POST, OPTIONS")),
                    ],
                )
                    .into_response(),
                OriginCheck::Refused => json_error(status, "this origin may not deliver here"),
                OriginCheck::Missing => json_error(status, "WebHook-Request-Origin is missing"),
            },
            Reply::NotFound => json_error(status, "no source is configured at this path"),
            Reply::MethodNotAllowed => {
                let mut r = json_error(status, "webhooks are accepted with POST only");
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
                r
            }
            Reply::TransferCodingNotImplemented => {
                // Its body cannot be read as sent: the connection is not reused.
                let mut r = json_error(status, "only the chunked transfer coding is accepted");
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                r
            }
            Reply::Unauthorized(reason) => json_error(status, reason),
            Reply::BadRequest(reason) => json_error(status, &reason),
            Reply::PayloadTooLarge(limit) => {
                json_error(status, &format!("body exceeds {limit} bytes"))
            }
            Reply::RequestTimeout => {
                // The rest of the body may never come: the connection is not reused.
                let mut r = json_error(status, "request body too slow");
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                r
            }
            Reply::RecordTooLarge => json_error(
                status,
                "the record is larger than Kafka accepts for this topic; it will never be accepted",
            ),
            Reply::RateLimited(wait) => {
                let mut r = json_error(status, "rate limit exceeded");
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                r.headers_mut()
                    .insert(header::RETRY_AFTER, retry_after(secs));
                r
            }
            Reply::Unavailable(reason) => {
                let mut r = json_error(status, reason);
                r.headers_mut().insert(header::RETRY_AFTER, retry_after(5));
                r
            }
        }
    }
}
