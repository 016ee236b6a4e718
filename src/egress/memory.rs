//! The process-wide memory budget for records egress holds (received and not finished),
//! all sinks together. `buffer` bounds each partition by count; this bounds the process
//! by bytes, so many partitions of large records behind a destination in brownout cannot
//! take the process down. When it is spent, a partition that takes another record
//! pauses; paused partitions resume once half the budget is free again.

use std::sync::atomic::{AtomicU64, Ordering};

use super::record::Record;

/// Bytes counted per record beyond its key, value and headers (the record's own
/// fields, its place in a lane).
const RECORD_OVERHEAD: u64 = 128;

/// Shared by every sink of the process.
pub struct MemoryBudget {
    used: AtomicU64,
    limit: u64,
    /// `hookbridge_buffered_bytes`, when reported.
    gauge: Option<prometheus::IntGauge>,
}

impl MemoryBudget {
    pub fn new(limit: u64) -> Self {
        Self {
            used: AtomicU64::new(0),
            limit: limit.max(1),
            gauge: None,
        }
    }

    /// Reports the bytes held on `gauge`.
    pub fn reporting(mut self, gauge: prometheus::IntGauge) -> Self {
        gauge.set(0);
        self.gauge = Some(gauge);
        self
    }

    pub fn add(&self, bytes: u64) {
        let now = self.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.report(now);
    }

    pub fn sub(&self, bytes: u64) {
        // Never below zero, whatever the order of concurrent updates.
        let before = (self.used)
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(bytes))
            })
            .unwrap_or(0);
        self.report(before.saturating_sub(bytes));
    }

    fn report(&self, used: u64) {
        if let Some(g) = &self.gauge {
            g.set(i64::try_from(used).unwrap_or(i64::MAX));
        }
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Over the limit once `pending` bytes, held but not yet added, are counted:
    /// partitions taking more records pause.
    pub fn spent_with(&self, pending: u64) -> bool {
        self.used().saturating_add(pending) > self.limit
    }

    /// At most half used: paused partitions may resume.
    pub fn has_room(&self) -> bool {
        self.used() <= self.limit / 2
    }
}

/// What holding `r` costs.
pub fn record_bytes(r: &Record) -> u64 {
    let headers: usize = r.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    let key = r.key.as_ref().map_or(0, |k| k.len());
    (r.value.len() + key + headers) as u64 + RECORD_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spent_above_the_limit_room_again_at_half() {
        let b = MemoryBudget::new(1000);
        b.add(1000);
        assert!(!b.spent_with(0) && !b.has_room());
        assert!(b.spent_with(1), "bytes not yet added count");
        b.add(1);
        assert!(b.spent_with(0));
        b.sub(501);
        assert!(!b.spent_with(0) && b.has_room());
        assert!(!b.spent_with(500) && b.spent_with(501));
        b.sub(10_000);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn the_gauge_follows_the_bytes_held() {
        let g = prometheus::IntGauge::new("held", "held").unwrap();
        let b = MemoryBudget::new(1000).reporting(g.clone());
        b.add(300);
        b.add(200);
        assert_eq!(g.get(), 500);
        b.sub(450);
        assert_eq!(g.get(), 50);
        b.sub(100);
        assert_eq!(g.get(), 0);
    }
}
