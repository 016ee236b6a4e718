//! What keeps console actions from repeating each other: one action at a time per sink
//! (a second redrive or replay of a sink answers 409 while the first runs), and each dead
//! letter redriven at most once from this console.
//!
//! A double-click, a reloaded result page or two operators on the same sink would
//! otherwise run the same redrive twice: every record delivered twice, and each one that
//! fails again dead-lettered twice, so the next redrive sends it twice more. The redrive
//! group catches a dead letter it has passed ([`crate::commands::ops::redrive::redrive_one`]); the
//! memory here catches one redriven away from where that group resumes.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use crate::commands::ops::inspect::At;

/// Lines of a whole redrive kept for its result page; the rest are only counted.
pub const LINES_SHOWN: usize = 200;

/// The lines a whole redrive reports, in memory bounded however long the DLQ: the first
/// [`LINES_SHOWN`], and how many more there were.
#[derive(Debug, Default)]
pub struct Lines {
    pub shown: Vec<String>,
    pub more: usize,
}

impl Lines {
    pub fn push(&mut self, line: String) {
        if self.shown.len() < LINES_SHOWN {
            self.shown.push(line);
        } else {
            self.more += 1;
        }
    }
}

/// Dead letters remembered as redriven; the oldest is forgotten past it.
const REMEMBERED: usize = 4096;

/// The console's running actions and redriven dead letters.
#[derive(Debug, Default)]
pub struct Actions {
    running: Mutex<HashSet<String>>,
    redriven: Mutex<Redriven>,
}

#[derive(Debug, Default)]
struct Redriven {
    set: HashSet<(String, i32, i64)>,
    order: VecDeque<(String, i32, i64)>,
}

/// An action on a sink, running until dropped.
#[derive(Debug)]
pub struct Running {
    actions: Arc<Actions>,
    sink: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self
            .actions
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        running.remove(&self.sink);
    }
}

impl Actions {
    /// Starts an action on `sink`; `None` while another one runs.
    pub fn start(self: &Arc<Self>, sink: &str) -> Option<Running> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if !running.insert(sink.to_owned()) {
            return None;
        }
        Some(Running {
            actions: self.clone(),
            sink: sink.to_owned(),
        })
    }

    /// Whether this console already redrove the dead letter at `at` of `sink`.
    pub fn was_redriven(&self, sink: &str, at: At) -> bool {
        let r = self.redriven.lock().unwrap_or_else(|p| p.into_inner());
        r.set.contains(&(sink.to_owned(), at.partition, at.offset))
    }

    /// Remembers that the dead letter at `at` of `sink` was redriven.
    pub fn redrove(&self, sink: &str, at: At) {
        let mut r = self.redriven.lock().unwrap_or_else(|p| p.into_inner());
        let key = (sink.to_owned(), at.partition, at.offset);
        if r.set.insert(key.clone()) {
            r.order.push_back(key);
        }
        if r.order.len() > REMEMBERED {
            if let Some(old) = r.order.pop_front() {
                r.set.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_redrive_keeps_a_bounded_number_of_lines() {
        let mut lines = Lines::default();
        for n in 0..100_000 {
            lines.push(format!(
                "dlq offset {n} [0] → t-0-{n} (permanent 400): Delivered"
            ));
        }
        assert_eq!(lines.shown.len(), LINES_SHOWN);
        assert_eq!(lines.more, 100_000 - LINES_SHOWN);
        assert!(lines.shown[0].starts_with("dlq offset 0 "));
    }

    #[test]
    fn one_action_per_sink_at_a_time() {
        let a = Arc::new(Actions::default());
        let first = a.start("orders").expect("free");
        assert!(a.start("orders").is_none(), "a second one waits its turn");
        assert!(a.start("billing").is_some(), "other sinks are free");
        drop(first);
        assert!(
            a.start("orders").is_some(),
            "free again once the first ends"
        );
    }

    #[test]
    fn a_redriven_dead_letter_is_remembered_in_bounded_memory() {
        let a = Actions::default();
        let at = |offset| At {
            partition: 0,
            offset,
        };
        assert!(!a.was_redriven("orders", at(7)));
        a.redrove("orders", at(7));
        assert!(a.was_redriven("orders", at(7)));
        assert!(!a.was_redriven("billing", at(7)));
        for o in 0..(REMEMBERED as i64 + 10) {
            a.redrove("orders", at(1_000 + o));
        }
        assert!(!a.was_redriven("orders", at(7)), "the oldest was forgotten");
        assert_eq!(a.redriven.lock().unwrap().set.len(), REMEMBERED);
    }
}
