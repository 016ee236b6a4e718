//! Readiness shared by the parts that know it (the producer's broker probe, each sink's
//! consumer) and the admin listener that reports it on `/readyz`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What `/readyz` reports: the broker answered recently, the producer can still send,
/// and every sink has joined its consumer group (holds an assignment, possibly empty).
#[derive(Default)]
pub struct Health {
    pub broker_reachable: AtomicBool,
    /// A producer hit a fatal error (fenced, or its sequence lost): every webhook would
    /// be answered 503 until the process starts again with a new one, which it is doing.
    pub producer_failed: AtomicBool,
    /// Sinks that are between assignments (starting, or in a rebalance).
    pub sinks_unassigned: AtomicUsize,
    /// Sinks whose poll thread or dispatcher died (a bug): the process is stopping and
    /// must not be sent traffic meanwhile.
    pub sinks_failed: AtomicUsize,
    /// The process is stopping (a signal, or a failure): its webhook listener no longer
    /// accepts connections while it drains, so a load balancer must send elsewhere.
    pub stopping: AtomicBool,
    /// Sinks of this process that have not made their consumer yet: named at start,
    /// before `/readyz` is served, because a sink counts itself unassigned only once its
    /// consumer exists, and one whose consumer cannot be made must never look ready.
    sinks_starting: Mutex<HashSet<Arc<str>>>,
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

    /// The process's sinks, none of which has made its consumer yet.
    pub fn sinks_starting(&self, names: impl IntoIterator<Item = Arc<str>>) {
        self.starting().extend(names);
    }

    /// Sink `name` made its consumer (which counts itself unassigned from then on).
    pub fn sink_started(&self, name: &str) {
        self.starting().remove(name);
    }

    /// Whether some sink has not made its consumer yet.
    pub fn sinks_are_starting(&self) -> bool {
        !self.starting().is_empty()
    }

    fn starting(&self) -> std::sync::MutexGuard<'_, HashSet<Arc<str>>> {
        // A poisoned lock only means a panic elsewhere mid-update; the set still serves.
        self.sinks_starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub fn ready(&self) -> bool {
        self.unready_because().is_none()
    }

    /// Why the process must not be sent traffic now, as `/readyz` says it; `None`: ready.
    pub fn unready_because(&self) -> Option<&'static str> {
        if self.producer_failed.load(Ordering::Relaxed) {
            return Some("the Kafka producer failed; stopping");
        }
        if self.sinks_failed.load(Ordering::Relaxed) > 0 {
            return Some("a sink failed; stopping");
        }
        if self.stopping.load(Ordering::Relaxed) {
            return Some("stopping");
        }
        if !self.broker_reachable.load(Ordering::Relaxed) {
            return Some("broker unreachable");
        }
        if self.sinks_are_starting() || self.sinks_unassigned.load(Ordering::Relaxed) > 0 {
            return Some("waiting for partition assignment");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Before a sink has made its consumer nothing counts it unassigned: it is named as
    /// starting, so `/readyz` cannot answer 200 in that moment (or ever, if it fails).
    /// A process that is stopping is not ready, whatever else holds.
    #[test]
    fn a_stopping_process_is_unready() {
        let h = Health::default();
        h.broker_reachable.store(true, Ordering::Relaxed);
        assert!(h.ready());
        h.stopping.store(true, Ordering::Relaxed);
        assert_eq!(h.unready_because(), Some("stopping"));
    }

    #[test]
    fn a_sink_not_started_yet_keeps_the_process_unready() {
        let h = Health::default();
        h.broker_reachable.store(true, Ordering::Relaxed);
        h.sinks_starting(["orders".into(), "billing".into()]);
        assert!(!h.ready());
        h.sink_started("orders");
        assert!(!h.ready(), "billing has not started");
        h.sink_started("billing");
        h.sink_started("billing"); // a run after a console replay makes it again
        assert!(h.ready());
    }
}
