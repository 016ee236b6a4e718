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

mod lock;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::dlq_read::{self, Entry, Reader};
use super::inspect::At;
use super::{KafkaContext, OpsError};
use crate::config::load::Loaded;
use crate::connectors::{Connectors, Sink};
use crate::egress::delivery::{Destination, Finish, Stop};
use crate::egress::record::Record;
use crate::kafka::envelope::DeadLetterEnvelope;
use crate::kafka::{self, producer};
use crate::telemetry::sink::SinkTelemetry;
use crate::telemetry::Metrics;
use lock::RedriveLock;

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
    /// Cancelled when the process shuts down (the console's redrives): the redrive stops
    /// before its next record, and an attempt in progress is cut off and left
    /// uncommitted.
    pub stop: CancellationToken,
}

/// Passed-over records (other sinks', unreadable) are committed in batches of this size,
/// so a long run of them neither costs one commit each nor is re-read from the start.
const COMMIT_EVERY: usize = 500;

/// What a redrive that ran to its end did: its summary line, and whether every record it
/// handled is taken care of (none was dead-lettered again).
#[derive(Debug)]
pub struct Summary {
    line: String,
    pub dead_lettered_again: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

/// Runs the redrive: hands `report` a line per record and returns the summary.
pub async fn redrive(
    loaded: &Loaded,
    connectors: &Connectors,
    opts: Redrive<'_>,
    report: &mut dyn FnMut(String),
) -> Result<Summary, OpsError> {
    let sink = super::sink(connectors, opts.connector)?;
    let dlq = super::inspect::dlq_topic(connectors, opts.connector)?;
    let group = redrive_group(connectors, sink)?;
    // A dry run sends and commits nothing: it needs no lock.
    let lock = match opts.dry_run {
        true => None,
        false => Some(RedriveLock::take(
            loaded, &group, &dlq, &sink.name, &opts.stop,
        )?),
    };
    let consumer = super::consumer(loaded, &group, &[("enable.partition.eof", "true")])?;
    let mut reader = Reader::at_start(&consumer, &dlq)?;
    assign_from_committed(&consumer, &dlq, reader.partitions())?;
    let sender = Sender::new(loaded, sink, opts.to, opts.stop.clone())?;
    let mut progress = Progress::new(&dlq, &group, opts.dry_run);
    let mut tally = Tally::default();
    while opts.limit.is_none_or(|l| tally.handled() < l) {
        if opts.stop.is_cancelled() {
            progress.flush(&consumer)?;
            return Err(OpsError::Refused(
                "stopped: hookbridge is shutting down; progress so far is committed, run the redrive again".into(),
            ));
        }
        if let Some(Err(lost)) = lock.as_ref().map(RedriveLock::still_held) {
            progress.flush(&consumer)?;
            return Err(lost);
        }
        let msg = match reader.next(&consumer) {
            Ok(Some(msg)) => msg,
            Ok(None) => break,
            Err(e) => {
                progress.flush(&consumer)?;
                let said = format!("{e}; progress so far is committed, run the redrive again");
                // The broker's trouble stays the broker's (the console answers 502).
                return Err(match e {
                    OpsError::Kafka { .. } | OpsError::NoAnswer(_) => OpsError::NoAnswer(said),
                    _ => OpsError::Refused(said),
                });
            }
        };
        let sent = match handle(&msg, &sink.name, &opts, &sender, &mut tally, report).await {
            Ok(sent) => sent,
            Err(e) => {
                // What was passed over before it (other sinks' records) is committed too.
                progress.flush(&consumer)?;
                return Err(e);
            }
        };
        progress.done(msg.partition(), msg.offset());
        if sent || progress.due() {
            progress.flush(&consumer)?;
        }
    }
    progress.flush(&consumer)?;
    Ok(Summary {
        line: tally.summary(opts.dry_run),
        dead_lettered_again: tally.failed,
    })
}

/// Redrives the one dead letter at `at` to the sink's destination (the console's redrive
/// button), with the same safety as a whole redrive: only this sink's record, the sink's
/// retry policy and `webhook-id`, dead-lettered again when it fails again. The redrive
/// group's offset moves past it only when the record is exactly where that group resumes,
/// so it never passes a record a redrive has not handled; otherwise the next whole
/// redrive sends it once more (same `webhook-id`, so receivers can deduplicate).
/// A dead letter the group has already passed is refused: a redrive handled it, so it
/// was delivered or dead-lettered again as a new record, and sending it again would
/// deliver it twice (or leave two dead letters of one record).
/// `stop` cuts the delivery short on shutdown, leaving the dead letter as it was.
/// Returns what happened, in one line. `held`: the sink's redrive lock when the caller
/// took it for several records ([`take_lock`]); without it, this redrive takes it.
pub async fn redrive_one(
    loaded: &Loaded,
    connectors: &Connectors,
    connector: &str,
    at: At,
    stop: &CancellationToken,
    held: Option<&RedriveLock>,
) -> Result<String, OpsError> {
    let sink = super::sink(connectors, connector)?;
    let dlq = super::inspect::dlq_topic(connectors, connector)?;
    let group = redrive_group(connectors, sink)?;
    // Kafka calls block; the delivery below awaits. Neither holds the other's thread.
    let (_lock, consumer, record, line) = tokio::task::block_in_place(|| {
        let lock = match held {
            Some(l) => l.still_held().map(|()| None)?,
            None => Some(RedriveLock::take(loaded, &group, &dlq, &sink.name, stop)?),
        };
        let consumer = super::consumer(loaded, &group, dlq_read::READ_ONE)?;
        let resume = resume_offset(&consumer, &dlq, at.partition)?;
        if resume > at.offset {
            return Err(OpsError::Refused(format!(
                "{dlq} {}:{} was already redriven (the redrive group resumes at offset {resume}); \
                 if it failed again, its new dead letter is further on in the topic",
                at.partition, at.offset
            )));
        }
        let (record, line) = {
            let msg = dlq_read::read_one(&consumer, &dlq, at)?;
            match Entry::read(&msg, &sink.name) {
                Entry::Mine(mine) if mine.1.is_cut() => {
                    let at = format!("{dlq} {}:{}", at.partition, at.offset);
                    return Err(OpsError::Refused(cut_to_fit(&at, &mine.1)));
                }
                Entry::Mine(mine) => {
                    let (record, env) = *mine;
                    let line = describe(&msg, &record, &env);
                    (record, line)
                }
                Entry::Unplaced(_) => {
                    return Err(dlq_read::unplaced(&format!(
                        "{dlq} {}:{}",
                        at.partition, at.offset
                    )))
                }
                Entry::OtherSink => {
                    return Err(dlq_read::not_found(
                        &dlq,
                        at,
                        "the record there was dead-lettered by another sink",
                    ))
                }
                Entry::Unreadable(e) => {
                    return Err(OpsError::Refused(format!(
                        "{dlq} {}:{} is not a hookbridge dead letter ({e}); it cannot be redriven",
                        at.partition, at.offset
                    )))
                }
            }
        };
        Ok::<_, OpsError>((lock, consumer, record, line))
    })?;
    let sender = Sender::new(loaded, sink, Target::Destination, stop.clone())?;
    let (_, said) = sender.send(&record, &line).await?;
    tokio::task::block_in_place(|| commit_if_next(&consumer, &dlq, &group, at))?;
    Ok(said)
}

/// Takes sink `connector`'s redrive lock, to hold while redriving several records one by
/// one ([`redrive_one`]). Blocking, until taken, refused or `stop`.
pub fn take_lock(
    loaded: &Loaded,
    connectors: &Connectors,
    connector: &str,
    stop: &CancellationToken,
) -> Result<RedriveLock, OpsError> {
    let sink = super::sink(connectors, connector)?;
    let dlq = super::inspect::dlq_topic(connectors, connector)?;
    let group = redrive_group(connectors, sink)?;
    RedriveLock::take(loaded, &group, &dlq, &sink.name, stop)
}

/// Why a dead letter cut to fit its topic is not redriven: it would deliver a partial
/// record. `at` names the dead letter.
fn cut_to_fit(at: &str, env: &DeadLetterEnvelope) -> String {
    let o = &env.origin;
    let key = (env.key_truncated)
        .map(|k| format!(", its key {k} bytes"))
        .unwrap_or_default();
    format!(
        "{at}: cut to fit the dead-letter topic ({} bytes originally{key}); not redriven, the whole record is at {}/{}@{}",
        env.truncated.unwrap_or_default(),
        o.topic,
        o.partition,
        o.offset
    )
}

/// Where the redrive group resumes in `partition` of `dlq`: its committed offset, or the
/// partition's start when it has none.
fn resume_offset(consumer: &BaseConsumer, dlq: &str, partition: i32) -> Result<i64, OpsError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(dlq, partition);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .doing(|| "reading the redrive group's offsets".into())?;
    match committed.find_partition(dlq, partition).map(|e| e.offset()) {
        Some(Offset::Offset(o)) => Ok(o),
        _ => Ok(consumer
            .fetch_watermarks(dlq, partition, Duration::from_secs(10))
            .doing(|| format!("reading the start of {dlq} [{partition}]"))?
            .0),
    }
}

/// Commits `at` + 1 in the redrive group when `at` is where the group resumes.
fn commit_if_next(consumer: &BaseConsumer, dlq: &str, group: &str, at: At) -> Result<(), OpsError> {
    if resume_offset(consumer, dlq, at.partition)? != at.offset {
        return Ok(());
    }
    let mut next = TopicPartitionList::new();
    next.add_partition_offset(dlq, at.partition, Offset::Offset(at.offset + 1))
        .doing(|| "building the commit".into())?;
    consumer
        .commit(&next, CommitMode::Sync)
        .doing(|| format!("committing redrive progress in group {group}"))
}

/// Handles one DLQ record that was there at the start. `true` when it was this sink's
/// and was sent (or listed, in a dry run), so its progress is committed right away.
async fn handle(
    msg: &BorrowedMessage<'_>,
    connector: &str,
    opts: &Redrive<'_>,
    sender: &Sender,
    tally: &mut Tally,
    report: &mut dyn FnMut(String),
) -> Result<bool, OpsError> {
    match Entry::read(msg, connector) {
        Entry::Mine(mine) if mine.1.is_cut() => {
            // Cut to fit the DLQ topic: redriving it would deliver a partial record.
            let at = format!("dlq offset {} [{}]", msg.offset(), msg.partition());
            report(cut_to_fit(&at, &mine.1));
            tally.unreadable += 1;
            Ok(false)
        }
        Entry::Mine(mine) => {
            let (record, env) = *mine;
            let line = describe(msg, &record, &env);
            if opts.dry_run {
                // A record a real run would stop at stops the dry run too.
                if sender.destination.is_none() {
                    sender.placement(&record, &line)?;
                }
                report(format!("would redrive {line}"));
                tally.redriven += 1;
            } else {
                let (finish, said) = sender.send(&record, &line).await?;
                report(said);
                tally.count(finish);
            }
            Ok(true)
        }
        Entry::Unplaced(_) => Err(dlq_read::unplaced(&format!(
            "dlq offset {} [{}]",
            msg.offset(),
            msg.partition()
        ))),
        Entry::OtherSink => {
            tally.other_sinks += 1;
            Ok(false)
        }
        Entry::Unreadable(e) => {
            report(format!(
                "dlq offset {} [{}]: not a hookbridge dead-letter record ({e}); passed over",
                msg.offset(),
                msg.partition()
            ));
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

fn describe(msg: &BorrowedMessage<'_>, r: &Record, env: &DeadLetterEnvelope) -> String {
    let status = env.status.map(|s| format!(" {s}")).unwrap_or_default();
    format!(
        "dlq offset {} [{}] → {} ({}{status})",
        msg.offset(),
        msg.partition(),
        r.webhook_id(),
        super::inspect::shown(&env.reason)
    )
}

/// Sends a redriven record where the operator asked.
struct Sender {
    producer: producer::Producer,
    destination: Option<Destination>,
    cancel: CancellationToken,
    /// What the broker says of each source topic, for `--to source`.
    partitions: std::sync::Mutex<HashMap<String, SourceTopic>>,
}

impl Sender {
    fn new(
        loaded: &Loaded,
        sink: &Sink,
        to: Target,
        cancel: CancellationToken,
    ) -> Result<Self, OpsError> {
        let props = loaded
            .settings
            .kafka
            .resolved_properties(&loaded.file_label())?;
        let mut cfg =
            kafka::client_config(&loaded.settings.kafka, &kafka::for_producer(&props), &[]);
        if to == Target::Source {
            // A record's topic that is gone is reported, never created by looking it up:
            // a topic the broker made with its default partitions is not where it was.
            cfg.set("allow.auto.create.topics", "false");
        }
        let producer = producer::build(cfg.clone(), Duration::from_secs(30))
            .doing(|| "creating a Kafka producer".into())?;
        let destination = match to {
            Target::Destination => Some(Destination::new(
                sink.clone(),
                crate::egress::dlq::Producers {
                    batched: producer.clone(),
                    alone: producer::build_one_per_batch(cfg, Duration::from_secs(30))
                        .doing(|| "creating a Kafka producer".into())?,
                },
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
            cancel,
            partitions: std::sync::Mutex::default(),
        })
    }

    /// What the broker says of `topic` now (asked until it answers, then kept).
    fn source_topic(&self, topic: &str) -> SourceTopic {
        let mut known = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = known.get(topic) {
            return *t;
        }
        let said = self
            .producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .ok()
            .and_then(|md| {
                let t = md.topics().iter().find(|t| t.name() == topic)?;
                Some(SourceTopic::of(
                    t.error().map(RDKafkaErrorCode::from),
                    t.partitions().len(),
                ))
            })
            .unwrap_or(SourceTopic::Unknown);
        // Only an answer is kept: a lookup that failed is made again for the next record.
        if said != SourceTopic::Unknown {
            known.insert(topic.to_owned(), said);
        }
        said
    }

    /// The partition a record redriven to its topic (`--to source`) goes to (`None`: the
    /// producer's partitioner, its own partition no longer existing), or why the redrive
    /// stops at it.
    fn placement(&self, record: &Record, line: &str) -> Result<Option<i32>, OpsError> {
        let (topic, partition) = (&record.tp.topic, record.tp.partition);
        match self.source_topic(topic).place(partition) {
            Placement::Partition(p) => Ok(Some(p)),
            Placement::Partitioner => Ok(None),
            Placement::Gone => Err(OpsError::Refused(format!(
                "{line}: its topic {topic} does not exist; create it (the record came from partition {partition}) or redrive with --to destination; progress up to the record before it is committed"
            ))),
            Placement::NotKnown => Err(OpsError::NoAnswer(format!(
                "{line}: the partitions of its topic {topic} could not be looked up (no answer, or the topic is not ready); run the redrive again: progress up to the record before it is committed"
            ))),
        }
    }

    /// How the record was taken care of, with the line that says so. A record left
    /// unfinished is an error: its offset must not be committed.
    async fn send(&self, record: &Record, line: &str) -> Result<(Finish, String), OpsError> {
        let Some(dest) = &self.destination else {
            let partition = self.placement(record, line)?;
            to_source(&self.producer, record, partition).await?;
            // Said in the line the redrive reports (the console's too), not printed.
            let placed = match partition {
                Some(_) => String::new(),
                None => format!(
                    " (partition {} no longer exists; placed by the partitioner)",
                    record.tp.partition
                ),
            };
            return Ok((
                Finish::Delivered,
                format!("{line}: produced to {}{placed}", record.tp.topic),
            ));
        };
        let stop = Stop {
            cancel: &self.cancel,
            abort: &self.cancel,
        };
        let finish = dest.deliver_as_the_sink_sends(record, stop).await;
        let said = format!("{line}: {finish:?}");
        match finish {
            Finish::Delivered | Finish::Filtered | Finish::DeadLettered => Ok((finish, said)),
            Finish::Abandoned => Err(OpsError::Refused(format!(
                "{line}: delivery did not finish; progress up to the record before it is committed"
            ))),
        }
    }
}

/// What the broker said of a record's source topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceTopic {
    /// It has this many partitions.
    Partitions(usize),
    /// It does not exist: producing would wait for it until the produce timeout, record
    /// after record.
    Gone,
    /// Not known (no answer, another error such as a topic not ready yet).
    Unknown,
}

/// Where a record redriven to its topic goes, or why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Its own partition.
    Partition(i32),
    /// Its partition no longer exists: where the producer's partitioner puts it.
    Partitioner,
    /// Its topic does not exist: the redrive stops.
    Gone,
    /// The topic's partitions are not known: the redrive stops rather than place the
    /// record away from its key.
    NotKnown,
}

impl SourceTopic {
    /// From a topic's metadata: its error, if any, and its partition count.
    fn of(error: Option<RDKafkaErrorCode>, partitions: usize) -> Self {
        match error {
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                SourceTopic::Gone
            }
            None if partitions > 0 => SourceTopic::Partitions(partitions),
            _ => SourceTopic::Unknown,
        }
    }

    /// Where a record of `partition` goes.
    fn place(self, partition: i32) -> Placement {
        match self {
            SourceTopic::Partitions(n) if usize::try_from(partition).is_ok_and(|p| p < n) => {
                Placement::Partition(partition)
            }
            SourceTopic::Partitions(_) => Placement::Partitioner,
            SourceTopic::Gone => Placement::Gone,
            SourceTopic::Unknown => Placement::NotKnown,
        }
    }
}

/// Produces `r` back to its topic, into the partition it came from when the topic still
/// has it: records keep their place beside their key even on topics partitioned by
/// another client's hash (Java's murmur2 is not librdkafka's default).
async fn to_source(
    producer: &producer::Producer,
    r: &Record,
    partition: Option<i32>,
) -> Result<(), OpsError> {
    let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
    for (key, value) in r.headers_as_produced() {
        headers = headers.insert(Header { key, value });
    }
    let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&r.tp.topic).headers(headers);
    if !r.null_value {
        fr = fr.payload(r.value.as_ref());
    }
    if let Some(k) = &r.key {
        fr = fr.key(k.as_ref());
    }
    if let Some(p) = partition {
        fr = fr.partition(p);
    }
    producer
        .send_acked(fr, Duration::from_secs(10))
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
    fn a_source_topic_the_broker_does_not_know_is_gone() {
        use rdkafka::types::RDKafkaErrorCode as E;
        assert_eq!(
            SourceTopic::of(Some(E::UnknownTopicOrPartition), 0),
            SourceTopic::Gone
        );
        assert_eq!(SourceTopic::of(Some(E::UnknownTopic), 0), SourceTopic::Gone);
        assert_eq!(SourceTopic::of(None, 3), SourceTopic::Partitions(3));
        assert_eq!(SourceTopic::of(None, 0), SourceTopic::Unknown);
        assert_eq!(
            SourceTopic::of(Some(E::LeaderNotAvailable), 3),
            SourceTopic::Unknown
        );
    }

    #[test]
    fn a_record_goes_to_its_own_partition_or_the_redrive_stops_unless_the_partition_is_gone() {
        let three = SourceTopic::Partitions(3);
        assert_eq!(three.place(0), Placement::Partition(0));
        assert_eq!(three.place(2), Placement::Partition(2));
        // The topic has fewer partitions now: the partitioner places it.
        assert_eq!(three.place(3), Placement::Partitioner);
        assert_eq!(three.place(-1), Placement::Partitioner);
        assert_eq!(SourceTopic::Gone.place(0), Placement::Gone);
        // Never placed away from its key on a lookup that did not answer.
        assert_eq!(SourceTopic::Unknown.place(0), Placement::NotKnown);
        assert_eq!(
            SourceTopic::of(
                Some(rdkafka::types::RDKafkaErrorCode::LeaderNotAvailable),
                3
            )
            .place(1),
            Placement::NotKnown
        );
    }

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
