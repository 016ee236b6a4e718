//! `hookbridge dlq redrive`: re-delivers dead-lettered records, either straight to the
//! sink's destination (same `webhook-id` as the first try, full retry policy; a record
//! that fails again is dead-lettered again with fresh headers) or back onto its original
//! topic. Progress is committed in the group `<sink group>-redrive`, so a redrive is
//! never repeated; records dead-lettered after the redrive started are left for the next.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::load::Loaded;
use crate::connectors::Connectors;
use crate::egress::delivery::{Destination, Finish};
use crate::egress::record::{Record, TopicPartition};
use crate::kafka::{self, headers::DLQ_PREFIX, producer};
use crate::telemetry::sink::SinkTelemetry;
use crate::telemetry::Metrics;

/// Where redriven records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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

/// The record as it was before dead-lettering: coordinates from the DLQ headers.
fn original(msg: &BorrowedMessage<'_>) -> Record {
    let dlq_topic: Arc<str> = msg.topic().into();
    let mut r = Record::from_message(msg, dlq_topic);
    let text = |name: &str| {
        r.header(name)
            .and_then(|v| std::str::from_utf8(v).ok().map(str::to_owned))
    };
    if let (Some(t), Some(p), Some(o)) = (
        text("hookbridge-dlq-topic"),
        text("hookbridge-dlq-partition").and_then(|p| p.parse().ok()),
        text("hookbridge-dlq-offset").and_then(|o| o.parse().ok()),
    ) {
        r.tp = TopicPartition {
            topic: t.into(),
            partition: p,
        };
        r.offset = o;
    }
    r.headers.retain(|(k, _)| !k.starts_with(DLQ_PREFIX));
    r
}

fn describe(msg: &BorrowedMessage<'_>, r: &Record) -> String {
    let reason = msg
        .headers()
        .and_then(|hs| {
            use rdkafka::message::Headers;
            hs.iter()
                .find(|h| h.key == "hookbridge-dlq-reason" || h.key == "hookbridge-dlq-status")
                .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
        })
        .unwrap_or_default();
    format!(
        "dlq offset {} [{}] → {} ({reason})",
        msg.offset(),
        msg.partition(),
        r.webhook_id()
    )
}

/// Runs the redrive and prints a line per record and a summary.
pub async fn redrive(
    loaded: &Loaded,
    connectors: &Connectors,
    opts: Redrive<'_>,
) -> anyhow::Result<()> {
    let sink = connectors
        .sink(opts.connector)
        .ok_or_else(|| anyhow!("no sink connector named {:?}", opts.connector))?;
    let Some(dlq) = sink.dlq_topic.clone() else {
        bail!("sink {:?} has no dlq configured", opts.connector);
    };
    let group = format!("{}-redrive", sink.group_id);
    let consumer = super::consumer(loaded, &group)?;
    let mut tpl = TopicPartitionList::new();
    for p in super::partitions(&consumer, &dlq)? {
        tpl.add_partition(&dlq, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .context("reading the redrive group's offsets")?;
    let mut start = TopicPartitionList::new();
    for e in committed.elements() {
        let at = match e.offset() {
            Offset::Offset(o) => Offset::Offset(o),
            _ => Offset::Beginning,
        };
        start.add_partition_offset(e.topic(), e.partition(), at)?;
    }
    consumer
        .assign(&start)
        .context("assigning the dlq partitions")?;

    let props = loaded
        .settings
        .kafka
        .resolved_properties(&loaded.file_label())?;
    let producer = producer::build(
        kafka::client_config(&loaded.settings.kafka, &kafka::for_producer(&props), &[]),
        Duration::from_secs(30),
    )?;
    let destination = match opts.to {
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
    let started_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let cancel = CancellationToken::new();
    let (mut done, mut failed) = (0usize, 0usize);
    let mut idle_since = Instant::now();
    while opts.limit.is_none_or(|l| done + failed < l)
        && idle_since.elapsed() < Duration::from_secs(3)
    {
        let Some(polled) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = polled.context("reading the dlq")?;
        idle_since = Instant::now();
        if msg.timestamp().to_millis().is_some_and(|t| t >= started_ms) {
            continue; // dead-lettered during this redrive: left for the next one
        }
        let record = original(&msg);
        let line = describe(&msg, &record);
        if opts.dry_run {
            println!("would redrive {line}");
            done += 1;
            continue;
        }
        let ok = match &destination {
            Some(dest) => {
                let finish = dest.deliver(&record, &cancel).await;
                println!("{line}: {finish:?}");
                finish == Finish::Delivered
            }
            None => {
                to_source(&producer, &record).await?;
                println!("{line}: produced to {}", record.tp.topic);
                true
            }
        };
        if ok {
            done += 1
        } else {
            failed += 1
        }
        let mut next = TopicPartitionList::new();
        next.add_partition_offset(
            msg.topic(),
            msg.partition(),
            Offset::Offset(msg.offset() + 1),
        )?;
        consumer
            .commit(&next, CommitMode::Sync)
            .context("committing redrive progress")?;
    }
    let verb = if opts.dry_run {
        "would redrive"
    } else {
        "redriven"
    };
    println!("{verb}: {done}; dead-lettered again: {failed}");
    Ok(())
}

async fn to_source(producer: &rdkafka::producer::FutureProducer, r: &Record) -> anyhow::Result<()> {
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
        .with_context(|| format!("producing to {}", r.tp.topic))
}
