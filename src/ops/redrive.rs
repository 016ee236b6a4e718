//! `hookbridge dlq redrive`: re-delivers a sink's dead-lettered records, either straight to
//! the sink's destination (same `webhook-id` as the first try, full retry policy; a record
//! that fails again is dead-lettered again with a fresh envelope) or back onto its original
//! topic.
//!
//! Three rules keep a redrive from losing or misrouting records:
//! * **Bounded.** Each DLQ partition is read up to where it ended when the redrive
//!   started; whatever is dead-lettered meanwhile (by the running sink, or by this redrive)
//!   is left, uncommitted, for the next redrive. So the command ends even while the sink
//!   keeps dead-lettering.
//! * **Only this sink's records.** A DLQ topic may be shared by several sinks. A record
//!   whose `hookbridge-dlq-connector` names another sink is never sent to this sink's
//!   destination (nor signed with its secret).
//! * **Commits only what it handled or was not its own.** Progress is committed in the
//!   sink's own redrive group, `<sink group>-redrive`, after each record. Another sink's
//!   records are passed over in this group only: every sink's redrive has its own group
//!   and offsets, so the other sink's redrive still finds them. Nothing at or after the
//!   first record it did not reach is ever committed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::{KafkaContext, OpsError};
use crate::config::load::Loaded;
use crate::connectors::{Connectors, Sink};
use crate::egress::delivery::{Destination, Finish, Stop};
use crate::egress::record::{Record, TopicPartition};
use crate::kafka::envelope::{self, DeadLetterEnvelope, EnvelopeError};
use crate::kafka::{self, producer};
use crate::telemetry::sink::SinkTelemetry;
use crate::telemetry::Metrics;

/// Where redriven records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// POST to the sink's destination now.
    Destination,
    /// Produce back onto the original topic; the running sink delivers it.
    Source,
}

/// Options of one redrive.
pub struct Redrive<'a> {
    pub connector: &'a str,
    pub to: Target,
    pub limit: Option<usize>,
    pub dry_run: bool,
}

/// With partition EOF events the redrive knows when it has caught up; this only guards
/// against a broker that stops answering.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// Passed-over records (other sinks', unreadable) are committed in batches of this size,
/// so a long run of them neither costs one commit each nor is re-read from the start.
const COMMIT_EVERY: usize = 500;

/// Runs the redrive and prints a line per record and a summary.
pub async fn redrive(
    loaded: &Loaded,
    connectors: &Connectors,
    opts: Redrive<'_>,
) -> Result<(), OpsError> {
    let sink = super::sink(connectors, opts.connector)?;
    let dlq = sink
        .dlq_topic
        .clone()
        .ok_or_else(|| OpsError::NoDlq(opts.connector.to_owned()))?;
    let group = redrive_group(connectors, sink)?;
    let consumer = super::consumer(loaded, &group, &[("enable.partition.eof", "true")])?;
    let mut bounds = Bounds::at_start(&consumer, &dlq)?;
    assign_from_committed(&consumer, &dlq, bounds.partitions())?;
    let sender = Sender::new(loaded, sink, opts.to)?;
    let mut progress = Progress::new(&dlq, &group, opts.dry_run);
    let mut tally = Tally::default();
    let mut idle_since = Instant::now();
    while !bounds.all_reached() && opts.limit.is_none_or(|l| tally.handled() < l) {
        let Some(polled) = consumer.poll(Duration::from_millis(200)) else {
            if idle_since.elapsed() > IDLE_LIMIT {
                progress.flush(&consumer)?;
                return Err(OpsError::Refused(format!(
                    "the broker sent nothing from {dlq} for {IDLE_LIMIT:?}; progress so far is committed, run the redrive again"
                )));
            }
            continue;
        };
        idle_since = Instant::now();
        let msg = match polled {
            Ok(msg) => msg,
            Err(KafkaError::PartitionEOF(p)) => {
                bounds.reached(p);
                continue;
            }
            Err(e) => return Err(e).doing(|| format!("reading {dlq}")),
        };
        if !bounds.admits(&msg) {
            continue;
        }
        let sent = handle(&msg, &sink.name, &opts, &sender, &mut tally).await?;
        progress.done(msg.partition(), msg.offset());
        if sent || progress.due() {
            progress.flush(&consumer)?;
        }
    }
    progress.flush(&consumer)?;
    println!("{}", tally.summary(opts.dry_run));
    Ok(())
}

/// Handles one DLQ record that was there at the start. `true` when it was this sink's
/// and was sent (or listed, in a dry run), so its progress is committed right away.
async fn handle(
    msg: &BorrowedMessage<'_>,
    connector: &str,
    opts: &Redrive<'_>,
    sender: &Sender,
    tally: &mut Tally,
) -> Result<bool, OpsError> {
    match Entry::read(msg, connector) {
        Entry::Mine(mine) => {
            let (record, env) = *mine;
            let line = describe(msg, &record, &env);
            if opts.dry_run {
                println!("would redrive {line}");
                tally.redriven += 1;
            } else {
                let sent = sender.send(&record, &line).await?;
                tally.count(sent);
            }
            Ok(true)
        }
        Entry::OtherSink => {
            tally.other_sinks += 1;
            Ok(false)
        }
        Entry::Unreadable(e) => {
            println!(
                "dlq offset {} [{}]: not a hookbridge dead-letter record ({e}); passed over",
                msg.offset(),
                msg.partition()
            );
            tally.unreadable += 1;
            Ok(false)
        }
    }
}

/// The redrive group of `sink`. It must be the sink's alone: a group shared by two sinks
/// would let one sink's redrive commit past the other's records.
fn redrive_group(connectors: &Connectors, sink: &Sink) -> Result<String, OpsError> {
    if let Some(other) = connectors
        .sinks
        .iter()
        .find(|s| s.name != sink.name && s.group_id == sink.group_id)
    {
        return Err(OpsError::Refused(format!(
            "sinks {:?} and {:?} share the consumer group {:?}; give each sink its own group_id before redriving",
            sink.name, other.name, sink.group_id
        )));
    }
    Ok(format!("{}-redrive", sink.group_id))
}

/// Starts every DLQ partition where the redrive group stopped last time.
fn assign_from_committed(
    consumer: &BaseConsumer,
    dlq: &str,
    partitions: impl Iterator<Item = i32>,
) -> Result<(), OpsError> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition(dlq, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .doing(|| "reading the redrive group's offsets".into())?;
    let mut start = TopicPartitionList::new();
    for e in committed.elements() {
        let at = match e.offset() {
            Offset::Offset(o) => Offset::Offset(o),
            _ => Offset::Beginning,
        };
        start
            .add_partition_offset(e.topic(), e.partition(), at)
            .doing(|| "building the assignment".into())?;
    }
    consumer
        .assign(&start)
        .doing(|| "assigning the dlq partitions".into())
}

/// Where each DLQ partition ended when the redrive started, and which partitions were
/// read up to there.
struct Bounds {
    /// End offset per partition as the broker listed it at the start.
    listed: HashMap<i32, i64>,
    /// Partitions finished: caught up, or past the start.
    reached: HashMap<i32, bool>,
    started_ms: i64,
}

impl Bounds {
    fn at_start(consumer: &BaseConsumer, dlq: &str) -> Result<Self, OpsError> {
        let started_ms = super::unix_ms(SystemTime::now());
        let mut listed = HashMap::new();
        for p in super::partitions(consumer, dlq)? {
            let (_, high) = consumer
                .fetch_watermarks(dlq, p, Duration::from_secs(10))
                .doing(|| format!("reading the end of {dlq} [{p}]"))?;
            listed.insert(p, high);
        }
        let reached = listed.keys().map(|p| (*p, false)).collect();
        Ok(Bounds {
            listed,
            reached,
            started_ms,
        })
    }

    fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.listed.keys().copied()
    }

    fn reached(&mut self, partition: i32) {
        self.reached.insert(partition, true);
    }

    fn all_reached(&self) -> bool {
        self.reached.values().all(|r| *r)
    }

    /// Whether `msg` was in the DLQ when the redrive started. The first record that was
    /// not ends its partition: neither it nor anything after it is handled or committed.
    ///
    /// Below the listed end offset a record is certainly old. At or above it, its
    /// timestamp decides: some brokers list the end as the last batch's base offset + 1
    /// (Tansu), so the rest of that batch is still old, while whatever was dead-lettered
    /// after the start carries a later timestamp.
    fn admits(&mut self, msg: &BorrowedMessage<'_>) -> bool {
        let p = msg.partition();
        if self.reached.get(&p).copied().unwrap_or(true) {
            return false;
        }
        let below_end = self.listed.get(&p).is_some_and(|end| msg.offset() < *end);
        let older = msg
            .timestamp()
            .to_millis()
            .is_some_and(|t| t < self.started_ms);
        if below_end || older {
            return true;
        }
        self.reached(p);
        false
    }
}

/// A DLQ record, as far as this sink is concerned.
enum Entry {
    /// Dead-lettered by this sink: the original record and its envelope.
    Mine(Box<(Record, DeadLetterEnvelope)>),
    /// Another sink's: left for that sink's redrive.
    OtherSink,
    /// No readable envelope: no sink can redrive it.
    Unreadable(EnvelopeError),
}

impl Entry {
    fn read(msg: &BorrowedMessage<'_>, connector: &str) -> Entry {
        let mut record = Record::from_message(msg, msg.topic().into());
        match envelope::connector(&record.headers) {
            Ok(c) if c != connector => return Entry::OtherSink,
            Ok(_) => {}
            Err(e) => return Entry::Unreadable(e),
        }
        let env = match DeadLetterEnvelope::read(&record.headers) {
            Ok(env) => env,
            Err(e) => return Entry::Unreadable(e),
        };
        record.tp = TopicPartition {
            topic: env.origin.topic.as_str().into(),
            partition: env.origin.partition,
        };
        record.offset = env.origin.offset;
        record.headers = envelope::original_headers(&record.headers);
        Entry::Mine(Box::new((record, env)))
    }
}

fn describe(msg: &BorrowedMessage<'_>, r: &Record, env: &DeadLetterEnvelope) -> String {
    let status = env.status.map(|s| format!(" {s}")).unwrap_or_default();
    format!(
        "dlq offset {} [{}] → {} ({}{status})",
        msg.offset(),
        msg.partition(),
        r.webhook_id(),
        env.reason
    )
}

/// Sends a redriven record where the operator asked.
struct Sender {
    producer: FutureProducer,
    destination: Option<Destination>,
    cancel: CancellationToken,
}

impl Sender {
    fn new(loaded: &Loaded, sink: &Sink, to: Target) -> Result<Self, OpsError> {
        let props = loaded
            .settings
            .kafka
            .resolved_properties(&loaded.file_label())?;
        let producer = producer::build(
            kafka::client_config(&loaded.settings.kafka, &kafka::for_producer(&props), &[]),
            Duration::from_secs(30),
        )
        .doing(|| "creating a Kafka producer".into())?;
        let destination = match to {
            Target::Destination => Some(Destination::new(
                sink.clone(),
                producer.clone(),
                Arc::new(SinkTelemetry::new(
                    sink.name.clone(),
                    Arc::new(Metrics::new()),
                )),
            )?),
            Target::Source => None,
        };
        Ok(Sender {
            producer,
            destination,
            cancel: CancellationToken::new(),
        })
    }

    /// How the record was taken care of. A record left unfinished is an error: its
    /// offset must not be committed.
    async fn send(&self, record: &Record, line: &str) -> Result<Finish, OpsError> {
        let Some(dest) = &self.destination else {
            to_source(&self.producer, record).await?;
            println!("{line}: produced to {}", record.tp.topic);
            return Ok(Finish::Delivered);
        };
        let stop = Stop {
            cancel: &self.cancel,
            abort: &self.cancel,
        };
        let finish = dest.deliver(record, stop, None).await;
        println!("{line}: {finish:?}");
        match finish {
            Finish::Delivered | Finish::Filtered | Finish::DeadLettered => Ok(finish),
            Finish::Abandoned => Err(OpsError::Refused(format!(
                "{line}: delivery did not finish; progress up to the record before it is committed"
            ))),
        }
    }
}

async fn to_source(producer: &FutureProducer, r: &Record) -> Result<(), OpsError> {
    let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
    for (k, v) in &r.headers {
        headers = headers.insert(Header {
            key: k.as_str(),
            value: Some(v.as_ref()),
        });
    }
    let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&r.tp.topic)
        .payload(r.value.as_ref())
        .headers(headers);
    if let Some(k) = &r.key {
        fr = fr.key(k.as_ref());
    }
    producer::send_acked(producer, fr, Duration::from_secs(10))
        .await
        .map(|_| ())
        .doing(|| format!("producing to {}", r.tp.topic))
}

/// The redrive group's next offsets, committed after each handled record, every
/// [`COMMIT_EVERY`] passed-over ones and at the end. A dry run commits nothing.
struct Progress {
    topic: String,
    group: String,
    next: HashMap<i32, i64>,
    since_flush: usize,
    dry_run: bool,
}

impl Progress {
    fn new(topic: &str, group: &str, dry_run: bool) -> Self {
        Progress {
            topic: topic.to_owned(),
            group: group.to_owned(),
            next: HashMap::new(),
            since_flush: 0,
            dry_run,
        }
    }

    /// The record at `offset` needs no more work from this sink.
    fn done(&mut self, partition: i32, offset: i64) {
        if !self.dry_run {
            self.next.insert(partition, offset + 1);
            self.since_flush += 1;
        }
    }

    fn due(&self) -> bool {
        self.since_flush >= COMMIT_EVERY
    }

    fn flush(&mut self, consumer: &BaseConsumer) -> Result<(), OpsError> {
        if self.next.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in self.next.drain() {
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(o))
                .doing(|| "building the commit".into())?;
        }
        self.since_flush = 0;
        let group = &self.group;
        consumer
            .commit(&tpl, CommitMode::Sync)
            .doing(|| format!("committing redrive progress in group {group}"))
    }
}

/// What the redrive did, for the summary line.
#[derive(Debug, Default)]
struct Tally {
    redriven: usize,
    /// Let through by the sink's filter without a request: finished, but not sent.
    filtered: usize,
    failed: usize,
    other_sinks: usize,
    unreadable: usize,
}

impl Tally {
    fn count(&mut self, finish: Finish) {
        match finish {
            Finish::Delivered => self.redriven += 1,
            Finish::Filtered => self.filtered += 1,
            Finish::DeadLettered | Finish::Abandoned => self.failed += 1,
        }
    }

    /// Records of this sink taken care of, for `--limit`.
    fn handled(&self) -> usize {
        self.redriven + self.filtered + self.failed
    }

    fn summary(&self, dry_run: bool) -> String {
        let verb = if dry_run { "would redrive" } else { "redriven" };
        format!(
            "{verb}: {}; dead-lettered again: {}; other sinks' records left for their own redrive: {}; unreadable: {}; let through by the sink's filter without a request: {}",
            self.redriven, self.failed, self.other_sinks, self.unreadable, self.filtered
        )
    }
}

#[cfg(test)]
mod tally_tests {
    use super::*;

    #[test]
    fn filtered_records_are_not_counted_as_redriven() {
        let mut t = Tally::default();
        t.count(Finish::Delivered);
        t.count(Finish::Filtered);
        t.count(Finish::DeadLettered);
        assert_eq!(t.handled(), 3);
        assert!(
            t.summary(false)
                .starts_with("redriven: 1; dead-lettered again: 1;")
                && t.summary(false).ends_with("without a request: 1"),
            "{}",
            t.summary(false)
        );
    }
}
