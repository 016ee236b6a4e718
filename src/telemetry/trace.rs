//! W3C trace context: keep a valid incoming `traceparent`, or start a new trace.

use axum::http::HeaderMap;
use rand::Rng;

/// The W3C header that carries the trace context, on HTTP requests and (the same name,
/// see `kafka::headers::TRACEPARENT`) on Kafka records.
pub const TRACEPARENT: &str = "traceparent";

/// True for a well-formed version-00 `traceparent` with non-zero ids. Checked without
/// allocating: it runs for every webhook and every delivery attempt.
pub fn is_valid(tp: &str) -> bool {
    let b = tp.as_bytes();
    let hex = |s: &[u8]| {
        s.iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    };
    let nonzero = |s: &[u8]| s.iter().any(|c| *c != b'0');
    // 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>
    b.len() == 55
        && &b[..3] == b"00-"
        && b[35] == b'-'
        && b[52] == b'-'
        && hex(&b[3..35])
        && nonzero(&b[3..35])
        && hex(&b[36..52])
        && nonzero(&b[36..52])
        && hex(&b[53..55])
}

/// The request's `traceparent` if valid, else a fresh sampled one.
pub fn traceparent(headers: &HeaderMap) -> String {
    if let Some(tp) = headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()) {
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
    if !is_valid(parent) {
        return new_traceparent();
    }
    let span: u64 = rand::rng().random::<u64>() | 1;
    format!("00-{}-{span:016x}-01", &parent[3..35])
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
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
