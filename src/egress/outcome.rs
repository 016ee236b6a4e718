//! The one place an HTTP attempt's result is classified: delivered, retryable (with the
//! destination's `Retry-After`), or permanent. Which non-2xx statuses retry and which
//! dead-letter is each sink's [`StatusPolicy`].

use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, StatusCode};

use crate::connectors::status_policy::{Action, StatusPolicy};

/// What one attempt means for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the destination has it.
    Delivered,
    /// A status the policy retries, connect errors, timeouts: try again later.
    Retryable {
        reason: &'static str,
        status: Option<u16>,
        retry_after: Option<Duration>,
    },
    /// A status the policy dead-letters: the destination will not take it.
    Permanent { reason: &'static str, status: u16 },
}

impl Outcome {
    /// Label for the attempts metric.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered => "2xx",
            Outcome::Retryable { reason, .. } | Outcome::Permanent { reason, .. } => reason,
        }
    }

    /// A retry of a batch the destination answered with 2xx, whose answer could not be
    /// read per item (`bad-answer`), or was too long to read whole (`cut-answer` with
    /// its 2xx status; one cut off by a broken connection carries none): the destination
    /// is up.
    pub fn is_unread_2xx(&self) -> bool {
        match self {
            Outcome::Retryable { reason, status, .. } => {
                *reason == BAD_ANSWER
                    || (*reason == CUT_ANSWER && status.is_some_and(|s| (200..300).contains(&s)))
            }
            _ => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Delivered => None,
            Outcome::Retryable { status, .. } => *status,
            Outcome::Permanent { status, .. } => Some(*status),
        }
    }
}

/// Classification lives here, next to [`Outcome`]; the policy itself is a sink
/// definition ([`crate::connectors::status_policy`]).
impl StatusPolicy {
    /// Classifies a response.
    pub fn classify(&self, status: StatusCode, headers: &HeaderMap, now: SystemTime) -> Outcome {
        if status.is_success() {
            return Outcome::Delivered;
        }
        let code = status.as_u16();
        let reason = status_label(code);
        match self.action(code) {
            Action::Retry => Outcome::Retryable {
                reason,
                status: Some(code),
                retry_after: retry_after(headers, now),
            },
            Action::DeadLetter => Outcome::Permanent {
                reason,
                status: code,
            },
        }
    }
}

/// The metric and DLQ label of a status: the codes with a meaning of their own, else
/// the class.
fn status_label(code: u16) -> &'static str {
    match code {
        408 => "408",
        425 => "425",
        429 => "429",
        100..=199 => "1xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

/// The reason of an attempt that could not connect: the destination is down or
/// unreachable, whatever the record.
pub const CONNECT: &str = "connect";

/// The reason of a batch's 2xx answer whose `results` are not one status per item: the
/// batch is tried again, but the destination is reachable.
pub const BAD_ANSWER: &str = "bad-answer";

/// The reason of a batch's 2xx answer too long to read per item, or cut off.
pub const CUT_ANSWER: &str = "cut-answer";

/// Classifies a transport error: every one is retryable.
pub fn from_error(err: &reqwest::Error) -> Outcome {
    let reason = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        CONNECT
    } else {
        "transport"
    };
    Outcome::Retryable {
        reason,
        status: None,
        retry_after: None,
    }
}

/// `Retry-After` as delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = headers.get("retry-after")?.to_str().ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Seconds past u64 mean "very long": the longest wait, which `retry.max` caps.
        return Some(
            text.parse::<u64>()
                .map_or(Duration::MAX, Duration::from_secs),
        );
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::status_policy::{PolicyError, StatusMatch};

    fn outcome(code: u16, retry: Option<&str>) -> Outcome {
        let mut h = HeaderMap::new();
        if let Some(r) = retry {
            h.insert("retry-after", r.parse().unwrap());
        }
        StatusPolicy::default().classify(StatusCode::from_u16(code).unwrap(), &h, SystemTime::now())
    }

    #[test]
    fn classifies_every_class() {
        assert_eq!(outcome(200, None), Outcome::Delivered);
        assert_eq!(outcome(204, None), Outcome::Delivered);
        for code in [401, 403, 404, 408, 425, 429, 500, 502, 503, 504] {
            assert!(
                matches!(outcome(code, None), Outcome::Retryable { .. }),
                "{code}"
            );
        }
        for code in [400, 402, 405, 409, 410, 413, 422, 301, 302, 600] {
            assert!(
                matches!(outcome(code, None), Outcome::Permanent { .. }),
                "{code}"
            );
        }
    }

    /// The labels are what metrics and dead letters carry: operators alert and filter on
    /// them, so each is pinned.
    #[test]
    fn labels_name_the_codes_with_a_meaning_and_else_the_class() {
        for (code, label) in [
            (408, "408"),
            (425, "425"),
            (429, "429"),
            (103, "1xx"),
            (304, "3xx"),
            (404, "4xx"),
            (503, "5xx"),
            (600, "other"),
        ] {
            assert_eq!(status_label(code), label, "{code}");
            assert_eq!(outcome(code, None).label(), label, "{code}");
        }
        assert_eq!(Outcome::Delivered.label(), "2xx");
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let Outcome::Retryable {
            retry_after: wait, ..
        } = outcome(503, Some("2"))
        else {
            panic!()
        };
        assert_eq!(wait, Some(Duration::from_secs(2)));
        let now = SystemTime::now();
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        let mut h = HeaderMap::new();
        h.insert("retry-after", later.parse().unwrap());
        let d = retry_after(&h, now).unwrap();
        assert!(
            d <= Duration::from_secs(30) && d >= Duration::from_secs(28),
            "{d:?}"
        );
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
        h.insert("retry-after", "99999999999999999999999".parse().unwrap());
        assert_eq!(
            retry_after(&h, now),
            Some(Duration::MAX),
            "the longest wait"
        );
        for odd in ["", "-5", "+5", "1.5"] {
            h.insert("retry-after", odd.parse().unwrap());
            assert_eq!(retry_after(&h, now), None, "{odd:?}");
        }
    }

    #[test]
    fn a_configured_policy_prefers_exact_codes_and_dead_letters_the_unlisted() {
        let p = StatusPolicy::from_lists(
            Some(vec![
                StatusMatch::Code(404),
                StatusMatch::class("5xx").unwrap(),
            ]),
            Some(vec![
                StatusMatch::class("4xx").unwrap(),
                StatusMatch::Code(503),
            ]),
        )
        .unwrap();
        assert_eq!(p.action(404), Action::Retry, "exact beats class");
        assert_eq!(p.action(401), Action::DeadLetter);
        assert_eq!(p.action(503), Action::DeadLetter, "exact beats class");
        assert_eq!(p.action(500), Action::Retry);
        assert_eq!(p.action(302), Action::DeadLetter, "unlisted");
        let h = HeaderMap::new();
        assert_eq!(
            p.classify(StatusCode::NOT_FOUND, &h, SystemTime::now()),
            Outcome::Retryable {
                reason: "4xx",
                status: Some(404),
                retry_after: None
            }
        );
        assert_eq!(
            p.classify(StatusCode::SERVICE_UNAVAILABLE, &h, SystemTime::now()),
            Outcome::Permanent {
                reason: "5xx",
                status: 503
            }
        );
    }

    #[test]
    fn policy_entries_are_checked() {
        assert_eq!(StatusMatch::code(200), Err(PolicyError::Code(200)));
        assert_eq!(StatusMatch::code(600), Err(PolicyError::Code(600)));
        assert!(StatusMatch::class("2xx").is_err());
        assert_eq!(StatusMatch::class("5XX"), Ok(StatusMatch::Class(5)));
        assert_eq!(
            StatusPolicy::from_lists(
                Some(vec![StatusMatch::Code(429)]),
                Some(vec![StatusMatch::Code(429)])
            ),
            Err(PolicyError::Both("429".into()))
        );
        let retry_4xx = StatusPolicy::from_lists(Some(vec![StatusMatch::Class(4)]), None).unwrap();
        assert_eq!(
            retry_4xx.action(400),
            Action::Retry,
            "the default list gives way"
        );
        assert_eq!(retry_4xx.action(301), Action::DeadLetter);
        assert_eq!(
            StatusPolicy::default().to_string(),
            r#"retry = [401, 403, 404, 408, 425, 429, "5xx"], dead_letter = ["3xx", "4xx"]"#
        );
    }
}
