//! Whether a sink that holds nothing has anything to wait for. Ready once the group has
//! given the member its share, even an empty one; two ways of holding nothing never
//! announce it:
//!
//! * librdkafka does not join a group while none of the subscribed topics exist (and,
//!   once a sink's topics are deleted under it, never says so again), so such a sink
//!   would never be assigned. A sink that is waiting for its group while every topic it
//!   subscribes to is missing from the cluster counts as holding an empty assignment,
//!   until librdkafka assigns it once a topic appears.
//! * Under the KIP-848 consumer group protocol (`group.protocol = "consumer"`) librdkafka
//!   calls no rebalance callback for an empty target assignment (it is no different from
//!   the empty one held), so a replica beyond the partition count would never hear from
//!   its group. A member the group has taken in (a member epoch above zero, which the
//!   coordinator's answer to its heartbeat sets; librdkafka sets it to 0 when the member
//!   rejoins or leaves) holds its share.
//!   Not under the classic protocol, where every assignment is announced, empty ones
//!   too, and the generation outlives the membership (a member whose session timed
//!   out keeps it while it tries to join again).
//!
//! `/readyz` would otherwise keep such replicas out of their load balancer, webhooks and
//! all. Asked every [`CHECK_EVERY`] while the sink waits and holds nothing, and at once
//! when librdkafka reports a subscribed topic missing.
//!
//! Only ever from waiting to ready: a topic that appears does not take readiness away
//! again (every replica would leave its load balancer together, for as long as
//! librdkafka takes to notice the topic).

use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;

use super::SinkContext;

/// How often a sink waiting for its group, holding nothing, asks whether it has been
/// taken in and whether its topics exist.
pub(super) const CHECK_EVERY: Duration = Duration::from_secs(5);

/// How long the cluster's answer is waited for (the poll thread waits).
const METADATA_WAIT: Duration = Duration::from_secs(1);

/// What the cluster says of the subscribed topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Topics {
    /// None of them exists: nothing to join.
    AllMissing,
    /// One exists, or could not be told about (a pattern): wait to join.
    Joinable,
}

impl Topics {
    /// From what each subscribed topic is: `Some(true)` missing, `Some(false)` there,
    /// `None` not known (a pattern, which librdkafka matches itself).
    pub(super) fn of(missing: impl IntoIterator<Item = Option<bool>>) -> Self {
        let mut any = false;
        for m in missing {
            if m != Some(true) {
                return Topics::Joinable;
            }
            any = true;
        }
        if any {
            Topics::AllMissing
        } else {
            Topics::Joinable
        }
    }
}

/// Whether `topic` is missing from the cluster's `metadata`; `None` for a pattern.
fn missing(metadata: &Metadata, topic: &str) -> Option<bool> {
    if topic.starts_with('^') {
        return None;
    }
    Some(match metadata.topics().iter().find(|t| t.name() == topic) {
        None => true,
        Some(t) => matches!(
            t.error(),
            Some(rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        ),
    })
}

impl SinkContext {
    /// While the sink waits for its group holding nothing, counts it as assigned when the
    /// group has taken it in (an empty share) or when none of its topics exists (nothing
    /// to join).
    pub(super) fn check_subscription(&self, consumer: &BaseConsumer<SinkContext>) {
        let waiting =
            || !self.assigned.load(Ordering::Relaxed) && self.assignments().current.is_empty();
        if !waiting() {
            return;
        }
        if self.consumer_protocol && is_member(consumer) {
            self.set_assigned(true);
            return;
        }
        let Ok(subscribed) = consumer.subscription() else {
            return;
        };
        // All topics in one request, with no topic handle made (a handle of a missing
        // topic would have librdkafka ask about it every second for good).
        let Ok(metadata) = consumer.fetch_metadata(None, METADATA_WAIT) else {
            return; // no answer: asked again next time
        };
        let found =
            Topics::of((subscribed.elements().iter()).map(|e| missing(&metadata, e.topic())));
        if found == Topics::AllMissing && waiting() {
            self.set_assigned(true);
        }
    }
}

/// Whether the group coordinator has taken the member in: it has a member id and an
/// epoch above zero (the KIP-848 member epoch; under the classic protocol the
/// generation, which is not reset when the membership ends).
fn is_member(consumer: &BaseConsumer<SinkContext>) -> bool {
    // SAFETY: the client pointer lives as long as `consumer`; librdkafka hands back a
    // copy of the group's metadata (or null without a group), read here and destroyed
    // once; the member id it returns lives as long as that copy.
    unsafe {
        let metadata = rdsys::rd_kafka_consumer_group_metadata(consumer.client().native_ptr());
        if metadata.is_null() {
            return false;
        }
        let epoch = rdsys::rd_kafka_consumer_group_metadata_generation_id(metadata);
        let id = rdsys::rd_kafka_consumer_group_metadata_member_id(metadata);
        let has_id = !id.is_null() && *id != 0;
        rdsys::rd_kafka_consumer_group_metadata_destroy(metadata);
        epoch > 0 && has_id
    }
}
