//! Revoke and shutdown: a drain lets the in-flight deliveries of its partitions finish
//! until its deadline, then replies with their commits and forgets their state; a
//! partition given up (drained, lost, reassigned) stops its deliveries and leaves the
//! consumer's pause and seek bookkeeping.

use std::time::Instant;

use super::{Assigned, Commit, Dispatcher};
use crate::egress::finished;
use crate::egress::record::TopicPartition;
use crate::telemetry::sink::{Buffered, Paused};

/// A revoke or shutdown under way.
pub(super) struct Drain {
    /// Partition states to drain: a state of the same partition created later (revoked
    /// and assigned back) is not this drain's to forget.
    partitions: Vec<(TopicPartition, u64)>,
    reply: std::sync::mpsc::Sender<Vec<Commit>>,
    deadline: Instant,
    exit: bool,
}

impl Dispatcher {
    /// The earliest deadline of the drains under way.
    pub(super) fn drain_deadline(&self) -> Option<Instant> {
        self.drains.iter().map(|d| d.deadline).min()
    }

    pub(super) fn start_drain(
        &mut self,
        partitions: Vec<TopicPartition>,
        reply: std::sync::mpsc::Sender<Vec<Commit>>,
        deadline: Instant,
        exit: bool,
    ) {
        if exit {
            // Shutdown: no new records arrive (the poll loop has stopped), but what is
            // buffered is still delivered, each record getting one more attempt at most,
            // so everything delivered before the exit can be committed.
            self.destination.stop_retrying();
            // Batches still filling go at once.
            if let Some(b) = self.batching.as_mut() {
                b.flush();
            }
        }
        let mut states = Vec::with_capacity(partitions.len());
        for tp in partitions {
            if let Some(p) = self.partitions.get_mut(&tp) {
                let generation = p.core.generation();
                if !exit {
                    // Revoke: the partition belongs to another member now. In-flight
                    // attempts finish; records not started stay unfinished.
                    p.stops.cancel.cancel();
                    p.core.revoke();
                    self.purge_ready(&tp, generation);
                }
                states.push((tp, generation));
            }
        }
        self.drains.push(Drain {
            partitions: states,
            reply,
            deadline,
            exit,
        });
    }

    pub(super) fn unassign_all(&mut self) {
        let all: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
        for tp in all {
            self.remove_state(&tp);
        }
    }

    /// Replies to every drain that is complete or past its deadline. True = exit now.
    pub(super) fn finish_drains(&mut self) -> bool {
        if self.drains.is_empty() {
            return false; // the common turn: no clock read
        }
        let now = Instant::now();
        let mut exit = false;
        let mut i = 0;
        while i < self.drains.len() {
            let d = &self.drains[i];
            let complete = d.partitions.iter().all(|(tp, generation)| {
                self.partitions
                    .get(tp)
                    .is_none_or(|p| p.core.generation() != *generation || p.core.in_flight() == 0)
            });
            if complete || now >= d.deadline {
                let d = self.drains.swap_remove(i);
                exit |= self.finish_drain(d);
            } else {
                i += 1;
            }
        }
        exit
    }

    /// Replies with the drained partitions' commits and forgets them. True = exit now.
    fn finish_drain(&mut self, drain: Drain) -> bool {
        let mut commits = Vec::new();
        for (tp, generation) in &drain.partitions {
            let ours = self
                .partitions
                .get(tp)
                .is_some_and(|p| p.core.generation() == *generation);
            if !ours {
                continue;
            }
            // Stragglers past the deadline stop now, attempts in progress included.
            let Some(p) = self.remove_state(tp) else {
                continue;
            };
            if let Some(snap) = p.core.final_snapshot() {
                commits.push(Commit {
                    tp: tp.clone(),
                    offset: snap.base,
                    metadata: finished::encode(&snap, self.policy.metadata_budget).text,
                });
            }
        }
        tracing::info!(connector = %self.destination.name(), partitions = commits.len(), "partitions drained");
        let _ = drain.reply.send(commits);
        drain.exit
    }

    /// Gives a partition state up: its queued records are forgotten, its deliveries stop
    /// (attempts in progress included), it leaves the gauges, and the consumer clears
    /// any pause or owed seek so the partition is fetched again if it comes back.
    pub(super) fn remove_state(&mut self, tp: &TopicPartition) -> Option<Assigned> {
        let generation = self.partitions.get(tp)?.core.generation();
        self.purge_ready(tp, generation);
        let p = self.partitions.remove(tp)?;
        p.stops.cancel.cancel();
        p.stops.abort.cancel();
        self.memory.sub(p.bytes);
        Buffered(-(p.core.outstanding() as i64)).emit(&self.telemetry);
        if p.core.is_paused() {
            Paused(-1).emit(&self.telemetry);
        }
        self.control.release(tp, p.assignment);
        Some(p)
    }
}
