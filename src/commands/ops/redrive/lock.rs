//! One redrive of a sink at a time, across processes: a redrive reads the DLQ by
//! assignment (its group has no members to exclude another run), so two runs at once,
//! from two shells or a shell and the console, would each send every dead letter. Each
//! run that sends first joins the sink's redrive lock group, `<sink group>-redrive-lock`,
//! and goes on only when the broker lists it as the group's one member; it stays a
//! member (a thread of its own polls) until it ends, and leaves the group then. Two runs
//! that join together both find two members and both stop. A run that loses its place
//! (its session ended, its assignment lost) stops before its next record. The check
//! fails closed: a listing that does not show this run as the one member refuses.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientContext;
use tokio_util::sync::CancellationToken;

use super::super::{KafkaContext, OpsError};
use crate::config::load::Loaded;

/// How long joining the lock group may take: over the classic protocol's 45 s session,
/// which a killed holder keeps the group for, and a new group's first rebalance delay
/// (`group.initial.rebalance.delay.ms`, 3 s by default).
const JOIN_WITHIN: Duration = Duration::from_secs(60);
/// How often the member polls: its rebalances are served, its place kept.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// How many listings may leave this run's membership unconfirmed before it refuses.
const LISTINGS: usize = 5;
/// How often the member checks that it still has the member id it was listed under.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Held while a redrive sends: its process is the lock group's member.
pub struct RedriveLock {
    flags: Arc<Flags>,
    member: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Flags {
    /// The member's first assignment (empty or not) arrived: it has joined.
    joined: AtomicBool,
    /// The member lost its place: another run may hold the group now.
    lost: AtomicBool,
    /// The lock is given up: the member leaves.
    stop: AtomicBool,
}

impl RedriveLock {
    /// Joins the lock group of `redrive_group` (subscribing to `dlq`, whose partitions
    /// it never reads) and holds it, or refuses when another member is there. Blocking:
    /// it waits for the join, or until `stop`.
    pub fn take(
        loaded: &Loaded,
        redrive_group: &str,
        dlq: &str,
        sink: &str,
        stop: &CancellationToken,
    ) -> Result<Self, OpsError> {
        let group = &format!("{redrive_group}-lock");
        let flags = Arc::new(Flags::default());
        let cfg = super::super::consumer_config(
            loaded,
            group,
            &[
                // The classic protocol, whatever the sinks use: a KIP-848 group is listed
                // by the classic DescribeGroups as Dead, without its members. Its session
                // settings are its own, so a file tuned for the other protocol (which
                // leaves them to the broker) still makes a valid classic consumer.
                ("group.protocol", "classic"),
                ("session.timeout.ms", "45000"),
                ("heartbeat.interval.ms", "1000"),
                ("max.poll.interval.ms", "300000"),
                ("statistics.interval.ms", "0"),
            ],
        )?;
        let consumer: BaseConsumer<Member> = cfg
            .create_with_context(Member(flags.clone()))
            .doing(|| "creating the redrive lock's Kafka consumer".into())?;
        consumer
            .subscribe(&[dlq])
            .doing(|| format!("joining the redrive lock group {group}"))?;
        let deadline = Instant::now() + JOIN_WITHIN;
        while !flags.joined.load(Ordering::Acquire) {
            if stop.is_cancelled() {
                return Err(OpsError::Refused(
                    "stopped before the redrive began: nothing was sent".into(),
                ));
            }
            if Instant::now() > deadline {
                return Err(OpsError::Refused(format!(
                    "could not join the redrive lock group {group} within {JOIN_WITHIN:?}: \
                     {}",
                    held_elsewhere(sink)
                )));
            }
            // Not a record: the lock's partitions are paused as soon as they are assigned.
            // A refusal the broker will not change (no ACL for the group) ends the wait.
            if let Some(Err(e)) = consumer.poll(POLL_EVERY) {
                if not_allowed(&e) {
                    return Err(OpsError::Kafka {
                        what: format!("joining the redrive lock group {group}"),
                        error: e,
                    });
                }
            }
        }
        let Some(me) = member_id(&consumer) else {
            return Err(OpsError::NoAnswer(format!(
                "the redrive lock group {group} gave this redrive no member id; run it again"
            )));
        };
        if !is_only_member(&consumer, group, &me)? {
            return Err(OpsError::Refused(held_elsewhere(sink)));
        }
        let member = {
            let flags = flags.clone();
            std::thread::Builder::new()
                .name("redrive-lock".into())
                .spawn(move || {
                    let mut checked = Instant::now();
                    while !flags.stop.load(Ordering::Acquire) {
                        let _ = consumer.poll(POLL_EVERY);
                        // A session that ended (or a member the group forgot) rejoins
                        // under a new id, or none: the place listed alone is gone.
                        if checked.elapsed() >= CHECK_EVERY {
                            checked = Instant::now();
                            if member_id(&consumer).as_deref() != Some(me.as_str()) {
                                flags.lost.store(true, Ordering::Release);
                            }
                        }
                    }
                    // Dropping the consumer closes it: it leaves the group at once.
                    consumer.unsubscribe();
                })
                .map_err(|e| {
                    OpsError::Refused(format!("starting the redrive lock's thread: {e}"))
                })?
        };
        Ok(RedriveLock {
            flags,
            member: Some(member),
        })
    }

    /// Whether this run is still the group's member: when not, another run may have
    /// taken the lock, and this one must not send another record.
    pub fn still_held(&self) -> Result<(), OpsError> {
        if !self.flags.lost.load(Ordering::Acquire) {
            return Ok(());
        }
        Err(OpsError::Refused(
            "stopped: this redrive lost its place in the redrive lock group (its session ended), so another may be running; what it finished is committed, run it again".into(),
        ))
    }
}

/// Why a redrive was refused the lock.
fn held_elsewhere(sink: &str) -> String {
    format!(
        "another redrive of sink {sink:?} is running; run this one once it has ended. \
         A redrive process that was killed holds the lock until its session times out \
         (45 s by default)"
    )
}

/// Whether the broker lists this member as the only one of `group`. Another member
/// listed: false. A listing that does not show this member (the group not there, Dead,
/// or without it) is asked again a few times, then refused: never taken as free.
fn is_only_member(
    consumer: &BaseConsumer<Member>,
    group: &str,
    me: &str,
) -> Result<bool, OpsError> {
    for _ in 0..LISTINGS {
        let groups = consumer
            .fetch_group_list(Some(group), Duration::from_secs(10))
            .doing(|| format!("listing the redrive lock group {group}"))?;
        let listed = groups.groups().iter().find(|g| g.name() == group);
        let verdict = listed.and_then(|g| {
            let members: Vec<&str> = g.members().iter().map(|m| m.id()).collect();
            only_member(g.state(), &members, Some(me))
        });
        if let Some(only) = verdict {
            return Ok(only);
        }
        let _ = consumer.poll(Duration::from_millis(500));
    }
    Err(OpsError::NoAnswer(format!(
        "the broker did not list this redrive as the member of the redrive lock group {group}; run it again"
    )))
}

/// What a listing of the lock group in `state` with `members` says, for the member `me`:
/// the only member (true), one of several (false), or nothing sure (`None`: the group
/// Dead or empty, or without `me`), which is never taken as free.
fn only_member(state: &str, members: &[&str], me: Option<&str>) -> Option<bool> {
    if state == "Dead" {
        return None;
    }
    match members {
        [one] if me == Some(*one) => Some(true),
        [_, _, ..] => Some(false),
        _ => None,
    }
}

/// A consumer error that waiting will not change: the group or topic not allowed.
fn not_allowed(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::GroupAuthorizationFailed | RDKafkaErrorCode::TopicAuthorizationFailed
        )
    )
}

/// The member id the group coordinator gave this consumer (`None` before it joined).
fn member_id(consumer: &BaseConsumer<Member>) -> Option<String> {
    let rk = consumer.client().native_ptr();
    // SAFETY: `rk` is the live client `consumer` owns; librdkafka returns a copy of the
    // member id (or null), which is freed here with its own allocator after reading.
    unsafe {
        let id = rdsys::rd_kafka_memberid(rk);
        if id.is_null() {
            return None;
        }
        let text = std::ffi::CStr::from_ptr(id).to_string_lossy().into_owned();
        rdsys::rd_kafka_mem_free(rk, id.cast());
        Some(text).filter(|t| !t.is_empty())
    }
}

impl Drop for RedriveLock {
    /// Waits for the member to leave the group, so a redrive run right after this one
    /// finds the group empty (a process that exits first would hold it until its session
    /// timed out). On a runtime's worker, the wait is announced as blocking.
    fn drop(&mut self) {
        self.flags.stop.store(true, Ordering::Release);
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

/// The lock consumer's context: says when it has joined (its first assignment, empty
/// or not), pauses what it is assigned (the lock never reads a record), and notes a
/// revoke of an assignment librdkafka gave up as lost. (The member thread also notes a
/// changed member id, which covers a loss with nothing assigned to revoke.)
struct Member(Arc<Flags>);

impl ClientContext for Member {}

impl ConsumerContext for Member {
    /// Before the revoke is applied: applying it clears librdkafka's lost flag.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            if consumer.assignment_lost() {
                self.0.lost.store(true, Ordering::Release);
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            let _ = consumer.pause(assigned);
            self.0.joined.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Free only when the broker lists this member alone; another member refuses; a
    /// listing that cannot say (Dead, empty, someone else alone, no id yet) is not free.
    #[test]
    fn the_lock_is_taken_only_when_this_member_is_listed_alone() {
        let me = Some("m-1");
        assert_eq!(only_member("Stable", &["m-1"], me), Some(true));
        assert_eq!(only_member("Stable", &["m-1", "m-2"], me), Some(false));
        assert_eq!(
            only_member("PreparingRebalance", &["m-2", "m-1"], me),
            Some(false)
        );
        assert_eq!(only_member("CompletingRebalance", &["m-1"], me), Some(true));
        assert_eq!(only_member("Dead", &["m-1"], me), None);
        assert_eq!(only_member("Empty", &[], me), None);
        assert_eq!(only_member("Stable", &["m-2"], me), None);
        assert_eq!(only_member("Stable", &["m-1"], None), None);
    }

    /// Only a refusal the broker will not change ends the wait to join: the group or
    /// the DLQ topic not allowed. Anything else (a coordinator moving, a broker down)
    /// is waited out up to the join limit.
    #[test]
    fn only_a_missing_permission_ends_the_wait_to_join() {
        let failed = |code| KafkaError::MessageConsumption(code);
        assert!(not_allowed(&failed(
            RDKafkaErrorCode::GroupAuthorizationFailed
        )));
        assert!(not_allowed(&failed(
            RDKafkaErrorCode::TopicAuthorizationFailed
        )));
        for code in [
            RDKafkaErrorCode::NotCoordinator,
            RDKafkaErrorCode::CoordinatorNotAvailable,
            RDKafkaErrorCode::BrokerTransportFailure,
        ] {
            assert!(!not_allowed(&failed(code)), "{code:?}");
        }
    }
}
