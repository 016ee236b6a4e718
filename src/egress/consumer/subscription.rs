//! Whether a sink that holds nothing has anything to join. librdkafka does not join a
//! group while none of the subscribed topics exist (and, once a sink's topics are
//! deleted under it, never says so again), so such a sink would never be assigned, and
//! `/readyz` would keep every replica out of its load balancer, webhooks and all. A
//! sink that holds nothing while every topic it subscribes to is missing from the
//! cluster counts as holding an empty assignment; once one appears, it is waiting for
//! its group again until librdkafka assigns it. Asked of the cluster every
//! [`CHECK_EVERY`] while the sink holds nothing, and at once when librdkafka reports a
//! subscribed topic missing.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::SinkContext;

/// How often a sink holding nothing asks whether its topics exist.
pub(super) const CHECK_EVERY: Duration = Duration::from_secs(5);

/// How long one topic's metadata is waited for (the poll thread waits; only while the
/// sink holds nothing).
const METADATA_WAIT: Duration = Duration::from_secs(2);

/// What the cluster says of the subscribed topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Topics {
    /// None of them exists: nothing to join.
    AllMissing,
    /// One exists, or could not be asked about (a pattern, no answer): wait to join.
    Joinable,
}

impl Topics {
    /// From what each subscribed topic is: `Some(true)` missing, `Some(false)` there,
    /// `None` not known (a pattern, or no answer).
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

/// Whether `topic` is missing from the cluster; `None` when it cannot be told (a
/// pattern, which librdkafka matches itself, or no answer).
fn missing(consumer: &BaseConsumer<SinkContext>, topic: &str) -> Option<bool> {
    if topic.starts_with('^') {
        return None;
    }
    let metadata = consumer.fetch_metadata(Some(topic), METADATA_WAIT).ok()?;
    let t = metadata.topics().iter().find(|t| t.name() == topic)?;
    Some(matches!(
        t.error(),
        Some(rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
    ))
}

impl SinkContext {
    /// Asks the cluster whether the sink's topics exist, when it holds nothing, and
    /// counts it as assigned (nothing to join) or waiting accordingly.
    pub(super) fn check_subscription(&self, consumer: &BaseConsumer<SinkContext>) {
        if !self.assignments().current.is_empty() {
            return;
        }
        let Ok(subscribed) = consumer.subscription() else {
            return;
        };
        let topics: Vec<String> = (subscribed.elements().iter())
            .map(|e| e.topic().to_owned())
            .collect();
        let found = Topics::of(topics.iter().map(|t| missing(consumer, t)));
        // The assignment may have come while the cluster was asked.
        if !self.assignments().current.is_empty() {
            return;
        }
        match found {
            Topics::AllMissing => {
                if !self.assigned.load(Ordering::Relaxed) {
                    self.without_topics.store(true, Ordering::Relaxed);
                    self.set_assigned(true);
                }
            }
            Topics::Joinable => {
                if self.without_topics.swap(false, Ordering::Relaxed) {
                    self.set_assigned(false);
                }
            }
        }
    }
}
