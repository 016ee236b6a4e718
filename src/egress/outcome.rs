//! The one place an HTTP attempt's result is classified: delivered, retryable (with the
//! destination's `Retry-After`), or permanent.

use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, StatusCode};

/// What one attempt means for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the destination has it.
    Delivered,
    /// 408, 425, 429, 5xx, connect errors, timeouts: try again later.
    Retryable {
        reason: &'static str,
        status: Option<u16>,
        retry_after: Option<Duration>,
    },
    /// Any other status (other 4xx incl. 410, 3xx): the destination will never take it.
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

    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Delivered => None,
            Outcome::Retryable { status, .. } => *status,
            Outcome::Permanent { status, .. } => Some(*status),
        }
    }
}

/// Classifies a response.
pub fn from_response(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> Outcome {
    let code = status.as_u16();
    if status.is_success() {
        return Outcome::Delivered;
    }
    let retryable = |reason| Outcome::Retryable {
        reason,
        status: Some(code),
        retry_after: retry_after(headers, now),
    };
    match code {
        408 => retryable("408"),
        425 => retryable("425"),
        429 => retryable("429"),
        500..=599 => retryable("5xx"),
        300..=399 => Outcome::Permanent {
            reason: "3xx",
            status: code,
        },
        _ => Outcome::Permanent {
            reason: "4xx",
            status: code,
        },
    }
}

/// Classifies a transport error: every one is retryable.
pub fn from_error(err: &reqwest::Error) -> Outcome {
    let reason = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
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
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(code: u16, retry: Option<&str>) -> Outcome {
        let mut h = HeaderMap::new();
        if let Some(r) = retry {
            h.insert("retry-after", r.parse().unwrap());
        }
        from_response(StatusCode::from_u16(code).unwrap(), &h, SystemTime::now())
    }

    #[test]
    fn classifies_every_class() {
        assert_eq!(outcome(200, None), Outcome::Delivered);
        assert_eq!(outcome(204, None), Outcome::Delivered);
        for code in [408, 425, 429, 500, 502, 503, 504] {
            assert!(
                matches!(outcome(code, None), Outcome::Retryable { .. }),
                "{code}"
            );
        }
        for code in [400, 401, 403, 404, 410, 413, 422, 301] {
            assert!(
                matches!(outcome(code, None), Outcome::Permanent { .. }),
                "{code}"
            );
        }
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
    }
}
