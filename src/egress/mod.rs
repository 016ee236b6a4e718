//! Egress: Kafka records POSTed to HTTP destinations, at least once. An offset is
//! committed only when every record before it was delivered (2xx) or dead-lettered with
//! the broker's acknowledgement: the contiguous watermark, per partition.
//!
//! # A record's path
//!
//! 1. **Poll thread** (`consumer::poll_thread`): polls librdkafka, turns each message
//!    into a [`record::Record`] and hands them to the dispatcher in batches
//!    (`Event::Records`), together with assignment and revoke events from the
//!    `consumer::SinkContext` callbacks. What it handed over and the dispatcher has not
//!    taken in is bounded by bytes and batches, and the dispatcher holds it back while
//!    enough records wait for a delivery slot (`handoff`).
//! 2. **Dispatcher** (`dispatcher`): one async task per sink; for each record it asks the
//!    record's **partition core** ([`partition::Partition`], pure, no I/O) whether the
//!    record may start now, waits behind its lane (key or partition), or the partition
//!    must pause.
//! 3. **Delivery futures** (`delivery`): a started record is a future the dispatcher
//!    polls itself; it POSTs (`client`: headers, signing, trace context) under the rate
//!    limit and the breaker, each attempt ending in an **outcome** (`outcome`), and
//!    does what the pure **delivery policy** (`policy`) says next: retry after a
//!    backoff, dead-letter, or hold. It ends delivered, or dead-lettered (`dlq`) once
//!    the broker acknowledged the DLQ record. Cancelled on revoke or shutdown, it ends
//!    unfinished.
//! 4. **Commit**: the finished record goes back to its partition core, which moves the
//!    contiguous watermark; on the commit interval (and synchronously on revoke and
//!    shutdown) the watermark is committed with the **finished-offset map** above it as
//!    metadata ([`finished`]), so a member that takes the partition over skips what was
//!    already finished.
//!
//! # Threads and tasks
//!
//! * the **poll thread** (`poll-<sink>`, a std thread): it may block in a rebalance
//!   callback while the dispatcher drains, which a tokio worker must never do;
//! * the **dispatcher task** (tokio): owns all partition state, so nothing in it is
//!   shared or locked; deliveries run inside it, not as spawned tasks;
//! * **librdkafka's threads**: fetching, producing (DLQ writes) and delivering commit
//!   results to the context's callbacks.

pub mod batch;
pub(crate) mod breaker;
pub(crate) mod client;
pub(crate) mod consumer;
pub(crate) mod delivery;
pub(crate) mod dispatcher;
pub(crate) mod dlq;
pub mod evaluation;
pub mod finished;
pub(crate) mod handoff;
pub(crate) mod memory;
pub(crate) mod outcome;
pub mod partition;
pub(crate) mod policy;
pub mod record;
pub(crate) mod redact;
pub mod request;
pub(crate) mod retry;
pub mod sign;
pub(crate) mod token;
pub(crate) mod watermark;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use tokio_util::sync::CancellationToken;

use crate::connectors::Sink;
use crate::telemetry::sink::SinkTelemetry;
use crate::telemetry::Health;
use crate::telemetry::Metrics;
pub(crate) use consumer::Drained;
use consumer::{Control, SinkContext};
use delivery::Destination;
use dispatcher::{CommitPolicy, Dispatcher};

/// Why a sink could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SinkError {
    #[error("sink {0}: cannot create consumer: {1}")]
    Consumer(String, rdkafka::error::KafkaError),
    #[error("sink {name}: cannot create HTTP client: {why}", name = .0, why = client::causes(.1))]
    Client(String, reqwest::Error),
    #[error("sink {0}: its {1} stopped on an internal error")]
    Died(String, &'static str),
}

impl SinkError {
    /// Whether the sink counted itself failed (`Health::sinks_failed`) when this
    /// happened: a thread or task that died does so at once; a run that could not start
    /// leaves it to its caller.
    pub fn counted_failed(&self) -> bool {
        matches!(self, SinkError::Died(..))
    }
}

/// Timing shared by every sink.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub commit_interval: Duration,
    pub drain_timeout: Duration,
    /// Largest finished-offset map written with each partition's commit.
    pub commit_metadata_budget: usize,
}

/// What every sink of the process shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// Bytes of records held by all sinks together.
    pub memory: Arc<memory::MemoryBudget>,
}

/// Runs one sink until `stop`, then drains, commits and returns.
pub(crate) async fn run_sink(
    sink: Sink,
    mut consumer_cfg: ClientConfig,
    producers: dlq::Producers,
    shared: Shared,
    timing: Timing,
    stop: CancellationToken,
) -> Result<Drained, SinkError> {
    let Shared {
        metrics,
        health,
        memory,
    } = shared;
    let name = sink.name.clone();
    let topics = sink.topics.clone();
    // The topics the sink names (not its patterns) are interned now, as the broker's own:
    // a dead letter from one of them stays readable in the console however many other
    // names dead letters brought (see `Topic::from_record`).
    for topic in topics.iter().filter(|t| !t.starts_with('^')) {
        record::Topic::new(topic);
    }
    consumer_cfg.set("group.id", &sink.group_id);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let context = SinkContext::new(
        name.clone(),
        tx.clone(),
        timing.drain_timeout,
        health.clone(),
        &metrics,
    )
    .under_consumer_protocol(crate::kafka::uses_consumer_protocol(&consumer_cfg));
    health.sink_started(&name);
    let consumer: BaseConsumer<SinkContext> = consumer_cfg
        .create_with_context(context)
        .map_err(|e| SinkError::Consumer(name.to_string(), e))?;
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topic_refs)
        .map_err(|e| SinkError::Consumer(name.to_string(), e))?;
    let consumer = Arc::new(consumer);
    tokio::spawn(consumer.context().stopping(stop.clone()));
    if let Some(dlq_topic) = sink.dlq_topic.clone() {
        let (consumer, name) = (consumer.clone(), name.clone());
        tokio::task::spawn_blocking(move || {
            dlq::warn_if_missing(consumer.client(), &name, &dlq_topic)
        });
    }

    let telemetry = Arc::new(SinkTelemetry::new(name.clone(), metrics));
    let destination = Arc::new(
        Destination::new(sink, producers, telemetry.clone())
            .map_err(|e| SinkError::Client(name.to_string(), e))?,
    );
    let check_items = destination.items_are_values();
    let (flow_tx, flow_rx) = std::sync::mpsc::channel();
    let control = Control {
        consumer: consumer.clone(),
        flow: flow_tx,
    };
    let dispatcher = Dispatcher::new(
        destination,
        telemetry,
        Arc::new(control),
        CommitPolicy {
            interval: timing.commit_interval,
            metadata_budget: timing.commit_metadata_budget,
        },
        memory,
        consumer.context().handoff(),
    );
    let dispatching = tokio::spawn(dispatcher.run(rx));
    let poller = {
        let consumer = consumer.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name(format!("poll-{name}"))
            .spawn(move || consumer::poll_thread(consumer, flow_rx, stop, check_items))
            .map_err(|e| {
                SinkError::Consumer(
                    name.to_string(),
                    rdkafka::error::KafkaError::ClientCreation(e.to_string()),
                )
            })?
    };
    tracing::info!(connector = %name, topics = ?topics, "sink started");
    // A dispatcher that panicked leaves the poll thread running: stopping the process
    // ends it (its drain finds the dispatcher gone and commits nothing).
    let dispatcher_died = dispatching.await.is_err();
    if dispatcher_died {
        consumer.context().failed(&stop, "dispatcher");
    }
    let drained = tokio::task::spawn_blocking(move || {
        let drained = poller.join().ok().flatten();
        drop(consumer);
        drained
    })
    .await
    .ok()
    .flatten();
    tracing::info!(connector = %name, "sink stopped");
    if dispatcher_died {
        return Err(SinkError::Died(name.to_string(), "dispatcher"));
    }
    drained.ok_or_else(|| SinkError::Died(name.to_string(), "poll thread"))
}
