//! One redrive of a sink at a time, across processes: a redrive reads the DLQ by
//! assignment (its group has no members to exclude another run), so two runs at once,
//! from two shells or a shell and the console, would each send every dead letter. Each
//! run that sends first joins the sink's redrive lock group, `<sink group>-redrive-lock`,
//! and goes on only if it is the group's one member; it stays a member (a thread of its
//! own polls) until it ends, and leaves the group then. Two runs that join together both
//! find two members and both stop: neither sends anything.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;

use super::super::{KafkaContext, OpsError};
use crate::config::load::Loaded;

/// How long joining the lock group may take (a broker delays a new group's first
/// rebalance by `group.initial.rebalance.delay.ms`, 3 s by default).
const JOIN_WITHIN: Duration = Duration::from_secs(30);
/// How often the member polls: its rebalances are served, its place kept.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// The lock group of a sink's redrive group.
pub fn group_of(redrive_group: &str) -> String {
    format!("{redrive_group}-lock")
}

/// Held while a redrive sends: its process is the lock group's member.
pub struct RedriveLock {
    stop: Arc<AtomicBool>,
    member: Option<JoinHandle<()>>,
}

impl RedriveLock {
    /// Joins `group` (subscribing to `dlq`, whose partitions it never reads) and holds it,
    /// or refuses when another member is there. Blocking: it waits for the join.
    pub fn take(loaded: &Loaded, group: &str, dlq: &str, sink: &str) -> Result<Self, OpsError> {
        let consumer: BaseConsumer<Joined> = super::super::consumer_config(loaded, group, &[])?
            .create_with_context(Joined::default())
            .doing(|| "creating the redrive lock's Kafka consumer".into())?;
        consumer
            .subscribe(&[dlq])
            .doing(|| format!("joining the redrive lock group {group}"))?;
        let deadline = Instant::now() + JOIN_WITHIN;
        while !consumer.context().0.load(Ordering::Acquire) {
            if Instant::now() > deadline {
                return Err(OpsError::NoAnswer(format!(
                    "joining the redrive lock group {group} took over {JOIN_WITHIN:?}"
                )));
            }
            // Not a record: the lock's partitions are paused as soon as they are assigned.
            let _ = consumer.poll(POLL_EVERY);
        }
        let groups = consumer
            .fetch_group_list(Some(group), Duration::from_secs(10))
            .doing(|| format!("listing the redrive lock group {group}"))?;
        let members = groups
            .groups()
            .iter()
            .map(|g| g.members().len())
            .max()
            .unwrap_or(0);
        if members > 1 {
            return Err(OpsError::Refused(format!(
                "another redrive of sink {sink:?} is running ({members} members in group {group}); \
                 run this one once it has ended. A redrive process that was killed holds the \
                 group until its session times out (session.timeout.ms)"
            )));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let member = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("redrive-lock".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        let _ = consumer.poll(POLL_EVERY);
                    }
                    // Dropping the consumer closes it: it leaves the group at once.
                    consumer.unsubscribe();
                })
                .map_err(|e| {
                    OpsError::Refused(format!("starting the redrive lock's thread: {e}"))
                })?
        };
        Ok(RedriveLock {
            stop,
            member: Some(member),
        })
    }
}

impl Drop for RedriveLock {
    /// Waits for the member to leave the group, so a redrive run right after this one
    /// finds the group empty (a process that exits first would hold it until its session
    /// timed out). On a runtime's worker, the wait is announced as blocking.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let Some(member) = self.member.take() else {
            return;
        };
        let leave = move || {
            let _ = member.join();
        };
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(leave),
            _ => leave(),
        }
    }
}

/// Says when the lock consumer has joined its group (its first assignment, empty or
/// not), and pauses what it is assigned: the lock never reads a record.
#[derive(Default)]
struct Joined(AtomicBool);

impl ClientContext for Joined {}

impl ConsumerContext for Joined {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            let _ = consumer.pause(assigned);
            self.0.store(true, Ordering::Release);
        }
    }
}
