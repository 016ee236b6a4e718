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
    /// A sink stopped on purpose (for a console replay) is about to run again: its
    /// ended run, which a sink's consumer leaves counted unassigned when it stops, no
    /// longer counts; the next run's consumer counts itself until it is assigned. Only a
    /// deliberate restart clears it: a sink that stopped or failed otherwise stays counted.
    pub fn sink_restarting(&self) {
        let _ = (self.sinks_unassigned)
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    pub fn ready(&self) -> bool {
        self.broker_reachable.load(Ordering::Relaxed)
            && self.sinks_unassigned.load(Ordering::Relaxed) == 0
            && self.sinks_failed.load(Ordering::Relaxed) == 0
    }
}
