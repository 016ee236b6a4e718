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
    fresh().as_str().to_owned()
}

/// A child of `parent`: same trace id, new span id (for the outgoing POST); a fresh trace
/// when `parent` is not a valid traceparent.
pub fn child_of(parent: &str) -> TraceParent {
    if !is_valid(parent) {
        return fresh();
    }
    TraceParent::new(&parent.as_bytes()[3..35])
}

/// A version-00, sampled `traceparent`, written in place: one is made for every webhook
/// and every delivery attempt, and `format!` with padded hex was most of its cost.
pub struct TraceParent([u8; 55]);

impl TraceParent {
    /// `trace` (32 lowercase hex digits) with a new span id.
    fn new(trace: &[u8]) -> Self {
        let mut tp = *b"00-00000000000000000000000000000000-0000000000000000-01";
        tp[3..35].copy_from_slice(trace);
        let span: u64 = rand::rng().random::<u64>() | 1;
        hex_into(&mut tp[36..52], &span.to_be_bytes());
        TraceParent(tp)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written into it.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// A new trace id and span id.
fn fresh() -> TraceParent {
    let trace: u128 = rand::rng().random::<u128>() | 1;
    let mut hex = [0u8; 32];
    hex_into(&mut hex, &trace.to_be_bytes());
    TraceParent::new(&hex)
}

/// `bytes` as lowercase hex into `out`, which every caller sizes at twice their length
/// (the `hex` crate refuses any other length, writing nothing).
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    let _ = hex::encode_to_slice(bytes, out);
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
        let child = child_of(tp);
        assert!(is_valid(child.as_str()), "{}", child.as_str());
        assert!(child
            .as_str()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert_ne!(child.as_str(), tp, "a new span id");
        assert!(is_valid(child_of("garbage").as_str()));
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

    #[test]
    fn hex_is_lowercase_and_in_byte_order() {
        let mut out = [0u8; 10];
        hex_into(&mut out, &[0x00, 0x9f, 0xa0, 0xff, 0x1e]);
        assert_eq!(&out, b"009fa0ff1e");
        let (a, b) = (new_traceparent(), new_traceparent());
        assert_ne!(a[3..35], b[3..35], "each new trace has its own id");
        assert!(is_valid(&a) && is_valid(&b));
    }
}
