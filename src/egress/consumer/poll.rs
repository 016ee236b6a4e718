//! The poll thread of a sink: polls librdkafka, stamps each record with its partition's
//! epoch and hands records to the dispatcher in batches, applies flow changes between
//! polls, and on stop drains, commits synchronously and leaves the group. A panic in it
//! is contained: the sink is marked failed and the process shuts down.

use foldhash::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use tokio_util::sync::CancellationToken;

use super::commit::commit_sync;
use super::flow::{Flow, FlowState};
use super::{SinkContext, POLL_BATCH};
use crate::egress::record::Record;
use crate::telemetry::control::ControlEvent;

/// Interns topic names: one `Arc<str>` per topic, shared by its records. Looked up for
/// every record, so hashed with foldhash: the names are the assignment's, not a sender's.
#[derive(Default)]
struct Topics(HashMap<String, Arc<str>>);

impl Topics {
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(t) = self.0.get(name) {
            return t.clone();
        }
        let t: Arc<str> = name.into();
        self.0.insert(name.to_owned(), t.clone());
        t
    }
}

/// Polls until `stop`, forwarding records to the dispatcher in batches; then drains,
/// commits synchronously and closes the consumer (leaving the group at once). A panic
/// while polling (a bug: no record should cause one) is contained here: the sink is
/// marked failed, which takes `/readyz` down, `stop` is cancelled so the whole process
/// shuts down (and exits non-zero), and the drain below still runs so the dispatcher
/// ends instead of waiting forever. True when the poll loop panicked. `check_items`: each
/// record's value is checked as a batch item here ([`Record::check_item`]).
pub fn poll_thread(
    consumer: Arc<BaseConsumer<SinkContext>>,
    flow: std::sync::mpsc::Receiver<Flow>,
    stop: CancellationToken,
    check_items: bool,
) -> bool {
    let ctx = consumer.context();
    let died = !contain_panic(ctx, &stop, || {
        poll_loop(&consumer, &flow, &stop, check_items)
    });
    match ctx.drain(Vec::new(), true) {
        Some(commits) => commit_sync(&consumer, &commits),
        None => ctx.emit(ControlEvent::ShutdownDrainUnanswered),
    }
    ctx.set_assigned(false);
    // Closing serves one last revoke; the dispatcher is gone by then, so it commits nothing.
    consumer.unsubscribe();
    died
}

/// Runs `work`; when it panics, marks the sink failed (not ready) and cancels `stop` so
/// the process shuts down instead of running on without this sink. False on a panic.
pub(super) fn contain_panic(
    ctx: &SinkContext,
    stop: &CancellationToken,
    work: impl FnOnce(),
) -> bool {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(()) => true,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            ctx.failed(stop, &what);
            false
        }
    }
}

impl SinkContext {
    /// A sink's thread or task died: not ready from now on, and the process stops.
    pub(crate) fn failed(&self, stop: &CancellationToken, what: &str) {
        self.health.sinks_failed.fetch_add(1, Ordering::Relaxed);
        self.emit(ControlEvent::SinkFailed { what });
        stop.cancel();
    }
}

fn poll_loop(
    consumer: &BaseConsumer<SinkContext>,
    flow: &std::sync::mpsc::Receiver<Flow>,
    stop: &CancellationToken,
    check_items: bool,
) {
    let mut topics = Topics::default();
    let mut state = FlowState::default();
    while !stop.is_cancelled() {
        while let Ok(change) = flow.try_recv() {
            state.apply(consumer, change);
        }
        state.retry_seeks(consumer);
        let ctx = consumer.context();
        let mut wait = Duration::from_millis(50);
        loop {
            match consumer.poll(wait) {
                None => break,
                Some(Ok(msg)) => {
                    let (mut record, lossy) = Record::from_message(&msg, topics.get(msg.topic()));
                    if lossy > 0 {
                        ctx.emit(ControlEvent::LossyHeaderNames {
                            count: lossy as u64,
                        });
                    }
                    record.epoch = state.epoch(&record.tp);
                    if check_items {
                        record.check_item();
                    }
                    if ctx.push(record) >= POLL_BATCH {
                        break;
                    }
                }
                Some(Err(e)) => {
                    ctx.emit(ControlEvent::ConsumerError { error: &e });
                    break;
                }
            }
            // Take what is already fetched without waiting again.
            wait = Duration::ZERO;
        }
        if !ctx.flush() {
            return;
        }
    }
}
