//! Readiness shared by the parts that know it (the producer's broker probe, each sink's
//! consumer) and the admin listener that reports it on `/readyz`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// What `/readyz` reports: the broker answered recently and every sink has joined its
/// consumer group (holds an assignment, possibly empty).
#[derive(Default)]
pub struct Health {
    pub broker_reachable: AtomicBool,
    /// Sinks that are between assignments (starting, or in a rebalance).
    pub sinks_unassigned: AtomicUsize,
    /// Sinks whose poll thread or dispatcher died (a bug): the process is stopping and
    /// must not be sent traffic meanwhile.
    pub sinks_failed: AtomicUsize,
}

impl Health {
    pub fn ready(&self) -> bool {
        self.broker_reachable.load(Ordering::Relaxed)
            && self.sinks_unassigned.load(Ordering::Relaxed) == 0
            && self.sinks_failed.load(Ordering::Relaxed) == 0
    }
}
