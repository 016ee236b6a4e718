//! The recent failed attempts of each sink, kept in memory for the operator console: a
//! bounded ring per sink (the oldest entry makes room), fed by the sink's typed events.
//! Coordinates, outcome and the start of the destination's answer; never a record's body
//! or headers: the ring must not become a second copy of the data, and it is shown on a
//! page (which masks the sink's secrets in the answer and escapes it, as for a DLQ entry).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Entries kept per sink.
pub const PER_SINK: usize = 100;
/// Bytes of the destination's answer kept per entry: enough to read an error message,
/// and the ring of a sink stays within `PER_SINK` × this.
pub const RESPONSE_BYTES: usize = 512;

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub at: SystemTime,
    /// `<topic>-<partition>-<offset>` of the record.
    pub id: String,
    /// Failure class (`4xx`, `5xx`, `timeout`, …).
    pub error: &'static str,
    /// Last HTTP status, when the destination answered and the event carries it.
    pub status: Option<u16>,
    pub attempts: u32,
    /// What happens to the record: `retrying`, `dead-lettered: permanent`, …
    pub outcome: String,
    /// The start of the destination's answer (at most [`RESPONSE_BYTES`]), as received:
    /// escaping and masking are the page's job.
    pub response: bytes::Bytes,
}

impl Failure {
    /// `response` cut to what the ring keeps; a copy, so the ring never holds on to a
    /// whole answer buffer.
    pub fn excerpt(response: &[u8]) -> bytes::Bytes {
        bytes::Bytes::copy_from_slice(&response[..response.len().min(RESPONSE_BYTES)])
    }
}

/// One sink's ring.
#[derive(Debug, Default)]
pub struct FailureRing(Mutex<VecDeque<Failure>>);

impl FailureRing {
    pub fn push(&self, f: Failure) {
        // A poisoned lock only means a panic elsewhere mid-push; the ring is still usable.
        let mut ring = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == PER_SINK {
            ring.pop_front();
        }
        ring.push_back(f);
    }

    /// Newest first.
    pub fn recent(&self) -> Vec<Failure> {
        let ring = self.0.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().rev().cloned().collect()
    }
}

/// Every sink's ring, by sink name.
#[derive(Debug, Default)]
pub struct RecentFailures(Mutex<HashMap<Arc<str>, Arc<FailureRing>>>);

impl RecentFailures {
    /// The ring of `sink`, created on first use.
    pub fn ring(&self, sink: &Arc<str>) -> Arc<FailureRing> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(sink.clone()).or_default().clone()
    }

    /// Newest first; empty for a sink that never failed.
    pub fn recent(&self, sink: &str) -> Vec<Failure> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.get(sink).map(|r| r.recent()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_entries_per_sink() {
        let all = RecentFailures::default();
        let ring = all.ring(&Arc::from("orders"));
        for n in 0..(PER_SINK as u32 + 5) {
            ring.push(Failure {
                at: SystemTime::now(),
                id: format!("t-0-{n}"),
                error: "5xx",
                status: Some(500),
                attempts: n,
                outcome: "retrying".into(),
                response: Failure::excerpt(&[b'x'; 4096]),
            });
        }
        let recent = all.recent("orders");
        assert_eq!(recent.len(), PER_SINK);
        assert_eq!(recent[0].attempts, PER_SINK as u32 + 4, "newest first");
        assert_eq!(recent[PER_SINK - 1].attempts, 5, "the oldest made room");
        assert!(all.recent("billing").is_empty());
        assert_eq!(recent[0].response.len(), RESPONSE_BYTES, "answers are cut");
    }
}
