//! Reading a sink's DLQ topic, shared by `dlq redrive`, `dlq list` and `dlq show` (and the
//! console, which calls those): which records were there when the read started, and which
//! of them are this sink's. One owner for both rules, so an inspection lists exactly what
//! a redrive would handle.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::inspect::At;
use super::{KafkaContext, OpsError};
use crate::config::load::Loaded;
use crate::egress::record::{NotTaken, Record, Topic, TopicPartition, NAMES_FROM_RECORDS};
use crate::kafka::envelope::{self, DeadLetterEnvelope, EnvelopeError};
use crate::kafka::headers::dlq;

/// With partition EOF events a read knows when it has caught up; this only guards
/// against a broker that stops answering.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// The `group.id` of inspecting consumers (see [`groupless_consumer`]).
const INSPECT_GROUP: &str = "hookbridge-dlq-inspect";

/// A consumer that joins no group: it is only ever assigned partitions at explicit
/// offsets and never commits, so inspecting a DLQ changes nobody's offsets. librdkafka
/// refuses `assign` without a `group.id`, so it carries [`INSPECT_GROUP`], which is never
/// joined, read or written. `extra` overrides the defaults.
pub(crate) fn groupless_consumer(
    loaded: &Loaded,
    extra: &[(&str, &str)],
) -> Result<BaseConsumer, OpsError> {
    // The sink consumer's defaults (never committing on its own), plus where a
    // partition ends; `extra` last, so it wins.
    let mut settings = vec![("enable.partition.eof", "true")];
    settings.extend_from_slice(extra);
    super::consumer(loaded, INSPECT_GROUP, &settings)
}

/// Assigns every partition `reader` lists: from its beginning, or with `last`, from
/// `last` records before where it ended at the start, so that reading a huge DLQ takes
/// a bounded time.
pub(crate) fn assign_tail(
    consumer: &BaseConsumer,
    reader: &Reader,
    last: Option<u64>,
) -> Result<(), OpsError> {
    let mut tpl = TopicPartitionList::new();
    for (p, start) in reader.bounds.starts(last) {
        tpl.add_partition_offset(&reader.dlq, p, start)
            .doing(|| "building the assignment".into())?;
    }
    consumer
        .assign(&tpl)
        .doing(|| "assigning the dlq partitions".into())
}

/// Reads the records a DLQ held when the read started, partition by partition up to its
/// end then, and no further.
pub(crate) struct Reader {
    dlq: String,
    bounds: Bounds,
    idle_since: Instant,
}

impl Reader {
    /// Notes where each partition of `dlq` ends now; assign the consumer afterwards.
    pub(crate) fn at_start(consumer: &BaseConsumer, dlq: &str) -> Result<Self, OpsError> {
        Ok(Reader {
            dlq: dlq.to_owned(),
            bounds: Bounds::at_start(consumer, dlq)?,
            idle_since: Instant::now(),
        })
    }

    pub(crate) fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.bounds.listed.keys().copied()
    }

    /// The next record that was there at the start; `None` once every partition is read
    /// up to its end.
    pub(crate) fn next<'c>(
        &mut self,
        consumer: &'c BaseConsumer,
    ) -> Result<Option<BorrowedMessage<'c>>, OpsError> {
        while !self.bounds.all_reached() {
            let Some(polled) = consumer.poll(Duration::from_millis(200)) else {
                if self.idle_since.elapsed() > IDLE_LIMIT {
                    return Err(OpsError::NoAnswer(format!(
                        "the broker sent nothing from {} for {IDLE_LIMIT:?}",
                        self.dlq
                    )));
                }
                continue;
            };
            self.idle_since = Instant::now();
            let msg = match polled {
                Ok(msg) => msg,
                Err(KafkaError::PartitionEOF(p)) => {
                    self.bounds.reached(p);
                    continue;
                }
                Err(e) => return Err(e).doing(|| format!("reading {}", self.dlq)),
            };
            if self.bounds.admits(&msg) {
                return Ok(Some(msg));
            }
        }
        Ok(None)
    }
}

/// Where each DLQ partition ended when the read started, and which partitions were
/// read up to there.
struct Bounds {
    /// End offset per partition as the broker listed it at the start.
    listed: HashMap<i32, i64>,
    /// First offset per partition then.
    low: HashMap<i32, i64>,
    /// Partitions finished: caught up, or past the start.
    reached: HashMap<i32, bool>,
    started_ms: i64,
}

impl Bounds {
    fn at_start(consumer: &BaseConsumer, dlq: &str) -> Result<Self, OpsError> {
        let started_ms = crate::clock::unix_millis();
        let (mut listed, mut low) = (HashMap::new(), HashMap::new());
        for p in super::partitions(consumer, dlq)? {
            let (first, high) = consumer
                .fetch_watermarks(dlq, p, Duration::from_secs(10))
                .doing(|| format!("reading the end of {dlq} [{p}]"))?;
            listed.insert(p, high);
            low.insert(p, first);
        }
        let reached = listed.keys().map(|p| (*p, false)).collect();
        Ok(Bounds {
            listed,
            low,
            reached,
            started_ms,
        })
    }

    /// Where each partition is read from: its beginning, or `last` records before its
    /// listed end when it holds more.
    fn starts(&self, last: Option<u64>) -> Vec<(i32, Offset)> {
        self.listed
            .iter()
            .map(|(p, high)| {
                let low = self.low.get(p).copied().unwrap_or(0);
                let from = last
                    .and_then(|n| i64::try_from(n).ok())
                    .map(|n| high.saturating_sub(n))
                    .filter(|from| *from > low);
                (*p, from.map_or(Offset::Beginning, Offset::Offset))
            })
            .collect()
    }

    fn reached(&mut self, partition: i32) {
        self.reached.insert(partition, true);
    }

    fn all_reached(&self) -> bool {
        self.reached.values().all(|r| *r)
    }

    /// Whether `msg` was in the DLQ when the read started. The first record that was
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

/// A DLQ record, as far as one sink is concerned.
pub(crate) enum Entry {
    /// Dead-lettered by this sink: the original record (its topic, partition, offset and
    /// headers as before the dead-lettering) and its envelope.
    Mine(Box<(Record, DeadLetterEnvelope)>),
    /// Another sink's: left for that sink.
    OtherSink,
    /// This sink's, but its origin topic is one more new name than one process takes
    /// from records ([`NAMES_FROM_RECORDS`]): it can be listed and shown (from its
    /// envelope), not redriven by this process. Never passed over: a redrive stops
    /// before it, and the next run (a new process) goes on from there.
    Unplaced(Box<DeadLetterEnvelope>),
    /// No readable envelope: no sink can redrive it.
    Unreadable(EnvelopeError),
}

impl Entry {
    pub(crate) fn read(msg: &BorrowedMessage<'_>, connector: &str) -> Entry {
        let (mut record, _) = Record::from_message(msg, Topic::new(msg.topic()));
        match envelope::connector(&record.headers) {
            Ok(c) if c != connector => return Entry::OtherSink,
            Ok(_) => {}
            Err(e) => return Entry::Unreadable(e),
        }
        let env = match DeadLetterEnvelope::read(&record.headers) {
            Ok(env) => env,
            Err(e) => return Entry::Unreadable(e),
        };
        let topic = match Topic::from_record(&env.origin.topic) {
            Ok(topic) => topic,
            Err(NotTaken::Illegal) => {
                return Entry::Unreadable(EnvelopeError::Malformed(dlq::TOPIC))
            }
            Err(NotTaken::TooMany) => return Entry::Unplaced(Box::new(env)),
        };
        record.tp = TopicPartition {
            topic,
            partition: env.origin.partition,
        };
        record.offset = env.origin.offset;
        record.retain_headers(|name| !envelope::is_dead_letter_header(name));
        Entry::Mine(Box::new((record, env)))
    }
}

/// Why a redrive stops at an [`Entry::Unplaced`] record at `at` (`P:OFFSET` or a line
/// naming where it is).
pub(crate) fn unplaced(at: &str) -> OpsError {
    OpsError::Refused(format!(
        "{at}: its origin topic is one more than the {NAMES_FROM_RECORDS} topic names one \
         hookbridge process takes from dead letters; the redrive stopped before it (nothing \
         past it is committed): run it again from a new process (`hookbridge dlq redrive`, \
         or the console after a restart) to go on from there"
    ))
}

/// Consumer settings for [`read_one`]: never jump elsewhere on an offset the broker does
/// not have, and learn where a partition ends.
pub(crate) const READ_ONE: &[(&str, &str)] = &[
    ("auto.offset.reset", "error"),
    ("enable.partition.eof", "true"),
];

/// [`OpsError::NotFound`] for the record at `at`, saying why.
pub(crate) fn not_found(dlq: &str, at: At, why: &str) -> OpsError {
    OpsError::NotFound(format!(
        "no dead letter at {}:{} in {dlq}: {why}",
        at.partition, at.offset
    ))
}

/// The record at `at` in `dlq`, read by a consumer made with [`READ_ONE`]. A record that
/// is not there is [`OpsError::NotFound`] with the reason.
pub(crate) fn read_one<'c>(
    consumer: &'c BaseConsumer,
    dlq: &str,
    at: At,
) -> Result<BorrowedMessage<'c>, OpsError> {
    let missing = |why: &str| not_found(dlq, at, why);
    if !super::partitions(consumer, dlq)?.contains(&at.partition) {
        return Err(missing("the topic has no such partition"));
    }
    let (low, high) = consumer
        .fetch_watermarks(dlq, at.partition, Duration::from_secs(10))
        .doing(|| format!("reading the offsets of {dlq} [{}]", at.partition))?;
    if at.offset < low {
        return Err(missing(&format!(
            "deleted by retention (the partition starts at offset {low})"
        )));
    }
    if high <= low {
        return Err(missing("the partition is empty"));
    }
    // Past the listed end only the last batch can still hold it (some brokers list the
    // end as the last batch's base offset + 1), so read from the last listed record: a
    // fetch beyond the end gets no answer from them, not an error.
    let from = at.offset.min(high - 1);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(dlq, at.partition, Offset::Offset(from))
        .doing(|| "building the assignment".into())?;
    consumer
        .assign(&tpl)
        .doing(|| "assigning the dlq partition".into())?;
    let deadline = Instant::now() + IDLE_LIMIT;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(msg)) if msg.offset() < at.offset => {}
            Some(Ok(msg)) if msg.offset() == at.offset => return Ok(msg),
            Some(Ok(_)) => return Err(missing("no record has that offset (deleted or compacted)")),
            Some(Err(KafkaError::PartitionEOF(_))) => {
                return Err(missing("the partition ends before it"))
            }
            // auto.offset.reset=error: the broker has no such offset.
            Some(Err(KafkaError::MessageConsumption(_))) => {
                return Err(missing("the partition ends before it"))
            }
            Some(Err(e)) => return Err(e).doing(|| format!("reading {dlq}")),
        }
    }
    Err(OpsError::NoAnswer(format!(
        "the broker sent nothing from {dlq} [{}] for {IDLE_LIMIT:?}",
        at.partition
    )))
}
