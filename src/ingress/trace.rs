//! W3C trace context: keep a valid incoming `traceparent`, or start a new trace.

use axum::http::HeaderMap;
use rand::Rng;

/// True for a well-formed version-00 `traceparent` with non-zero ids.
pub fn is_valid(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && parts[1] != "0".repeat(32)
        && hex(parts[2], 16)
        && parts[2] != "0".repeat(16)
        && hex(parts[3], 2)
}

/// The request's `traceparent` if valid, else a fresh sampled one.
pub fn traceparent(headers: &HeaderMap) -> String {
    if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        if is_valid(tp) {
            return tp.to_owned();
        }
    }
    new_traceparent()
}

/// A new trace id and span id.
pub fn new_traceparent() -> String {
    let mut rng = rand::rng();
    let trace: u128 = rng.random::<u128>() | 1;
    let span: u64 = rng.random::<u64>() | 1;
    format!("00-{trace:032x}-{span:016x}-01")
}

/// A child of `parent`: same trace id, new span id (for the outgoing POST).
pub fn child_of(parent: &str) -> String {
    match parent.split('-').nth(1) {
        Some(trace) if is_valid(parent) => {
            let span: u64 = rand::rng().random::<u64>() | 1;
            format!("00-{trace}-{span:016x}-01")
        }
        _ => new_traceparent(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_valid_and_replaces_invalid() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(is_valid(tp));
        let mut h = HeaderMap::new();
        h.insert("traceparent", tp.parse().unwrap());
        assert_eq!(traceparent(&h), tp);
        h.insert("traceparent", "garbage".parse().unwrap());
        assert!(is_valid(&traceparent(&h)));
        assert!(child_of(tp).starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(is_valid(&new_traceparent()));
    }
}
