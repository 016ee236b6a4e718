//! The producer: `acks=all` and idempotent, so a delivery report means the record is in
//! every in-sync replica and a librdkafka-internal retry never duplicates or reorders it.
//! Each send waits for its own record's report; the reports are served by a thread that
//! sleeps while there are none ([`poller`]).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::client::Client;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, FutureRecord, Producer as _, ProducerContext,
};
use rdkafka::{ClientConfig, ClientContext, Message};
use tokio::sync::oneshot;

use super::client_log::ClientLog;
use poller::Poller;

mod poller;

/// librdkafka's own `message.max.bytes` default: never lowered below it, so DLQ records
/// of sinks keep fitting when every source is small.
const LIBRDKAFKA_DEFAULT_MAX: usize = 1_000_000;

/// Apache Kafka's default broker `message.max.bytes` (and topic `max.message.bytes`).
pub const BROKER_DEFAULT_MAX: usize = 1_048_588;

/// Builds the acknowledged producer. `delivery_timeout` bounds how long librdkafka keeps
/// trying one record; ingress answers 503 when it expires. A property the user set in
/// `kafka.properties` wins over these defaults.
pub fn build(cfg: ClientConfig, delivery_timeout: Duration) -> Result<Producer, KafkaError> {
    Producer::create(&with_defaults(cfg, delivery_timeout))
}

/// An acknowledged producer, cheap to clone (clones share one librdkafka client). Its
/// poll thread ends with the last clone.
#[derive(Clone)]
pub struct Producer {
    shared: Arc<Shared>,
}

struct Shared {
    // Dropped first: the poll thread ends before the client does.
    _poller: Poller,
    base: Arc<BaseProducer<Acks>>,
}

impl Producer {
    /// A producer with `cfg` exactly as given (no defaults added: see [`build`]).
    pub fn create(cfg: &ClientConfig) -> Result<Self, KafkaError> {
        Self::with_poller(cfg, Poller::start)
    }

    fn with_poller(
        cfg: &ClientConfig,
        start: impl FnOnce(Arc<BaseProducer<Acks>>) -> std::io::Result<Poller>,
    ) -> Result<Self, KafkaError> {
        let base: Arc<BaseProducer<Acks>> = Arc::new(cfg.create_with_context(Acks::default())?);
        let poller = start(base.clone())
            .map_err(|e| KafkaError::ClientCreation(format!("starting its poll thread: {e}")))?;
        Ok(Producer {
            shared: Arc::new(Shared {
                _poller: poller,
                base,
            }),
        })
    }

    /// The librdkafka client (metadata requests).
    pub fn client(&self) -> &Client<Acks> {
        self.shared.base.client()
    }

    /// Waits until the producer hits a fatal error (the idempotent producer fenced by a
    /// newer one, or its sequence lost on the broker) or the broker fences it, and returns
    /// it: librdkafka then fails every record, now and later, and only a new producer
    /// can send again.
    pub async fn failed(&self) -> String {
        let errors = &self.client().context().errors;
        loop {
            // Registered before the client is asked, so an error between the two wakes it.
            let mut next = std::pin::pin!(errors.notified());
            next.as_mut().enable();
            let fenced = || self.client().context().fenced.get().cloned();
            if let Some(error) = self.fatal_error().or_else(fenced) {
                return error;
            }
            next.await;
        }
    }

    /// The fatal error and its reason, once there is one.
    pub fn fatal_error(&self) -> Option<String> {
        let (code, reason) = self.client().fatal_error()?;
        Some(format!("{code}: {reason}"))
    }

    /// Raises a fatal error as a fenced producer would, through librdkafka's test hook.
    #[cfg(test)]
    pub(crate) fn fence_for_test(&self, reason: &std::ffi::CStr) {
        use rdkafka::bindings::{rd_kafka_resp_err_t as Code, rd_kafka_test_fatal_error};
        // SAFETY: the client is live; librdkafka copies the reason.
        let raised = unsafe {
            rd_kafka_test_fatal_error(
                self.client().native_ptr(),
                Code::RD_KAFKA_RESP_ERR__FENCED,
                reason.as_ptr(),
            )
        };
        assert_eq!(
            raised,
            Code::RD_KAFKA_RESP_ERR_NO_ERROR,
            "the first fatal error"
        );
    }

    /// Waits up to `timeout` for every record queued so far to be reported.
    pub fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        self.shared.base.flush(timeout)
    }

    /// Sends one record and waits for the broker's acknowledgement: queues it (waiting up
    /// to `queue_timeout` while librdkafka's queue is full), then waits for its report.
    pub async fn send_acked<K: rdkafka::message::ToBytes + ?Sized>(
        &self,
        record: FutureRecord<'_, K, [u8]>,
        queue_timeout: Duration,
    ) -> Result<Acked, KafkaError> {
        let started = Instant::now();
        let (tx, rx) = oneshot::channel();
        let mut queued = BaseRecord {
            topic: record.topic,
            partition: record.partition,
            payload: record.payload,
            key: record.key,
            timestamp: record.timestamp,
            headers: record.headers,
            delivery_opaque: Box::new(tx),
        };
        loop {
            match self.shared.base.send(queued) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if started.elapsed() < queue_timeout =>
                {
                    queued = back;
                    tokio::time::sleep(QUEUE_FULL_WAIT).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
        // The report always comes (librdkafka reports purged records too); a sender
        // dropped without one means the client is gone.
        rx.await.unwrap_or(Err(KafkaError::Canceled))
    }
}

/// How long a send waits before queueing again when librdkafka's queue is full.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(100);

/// The producer's context: each record carries the channel its report is sent on.
#[derive(Default)]
pub struct Acks {
    log: ClientLog,
    /// Woken at every error librdkafka reports: [`Producer::failed`] then asks the
    /// client whether it was a fatal one.
    errors: tokio::sync::Notify,
    /// Why the broker's refusals failed this producer (see [`Acks::note_fencing`]).
    fenced: std::sync::OnceLock<String>,
    /// Records refused as fenced since the last one acknowledged.
    fenced_in_a_row: std::sync::atomic::AtomicU32,
}

/// Records refused in a row as fenced, none acknowledged between, that fail the producer.
const FENCED_IN_A_ROW: u32 = 3;

impl Acks {
    /// A record refused because the broker fenced this producer's id. librdkafka takes
    /// one such refusal as the batch's alone and bumps the producer's epoch; but a broker
    /// that fenced it after a stall refused every later record the same way, and
    /// librdkafka raised no fatal error. Refused [`FENCED_IN_A_ROW`] times with nothing
    /// acknowledged between, the producer counts as one that can send nothing more.
    fn note_fencing(&self, error: &KafkaError) {
        use RDKafkaErrorCode::{InvalidProducerEpoch, ProducerFenced};
        let KafkaError::MessageProduction(code @ (ProducerFenced | InvalidProducerEpoch)) = error
        else {
            return;
        };
        if self.fenced_in_a_row.fetch_add(1, Relaxed) + 1 >= FENCED_IN_A_ROW {
            let _ = self.fenced.set(format!(
                "{code}: the broker refused {FENCED_IN_A_ROW} records in a row as fenced"
            ));
            self.errors.notify_waiters();
        }
    }
}

/// librdkafka's reports, each kind at most once per `client_log::EVERY`.
impl ClientContext for Acks {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.log.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // The code is the fatal error's own (`Fenced`, `OutOfOrderSequenceNumber`, …),
        // not librdkafka's `Fatal`: whoever waits looks at the client.
        self.errors.notify_waiters();
        self.log.error(&error, reason);
    }
}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<oneshot::Sender<Result<Acked, KafkaError>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, reply: Self::DeliveryOpaque) {
        let report = match result {
            Ok(m) => {
                if self.fenced_in_a_row.load(Relaxed) != 0 {
                    self.fenced_in_a_row.store(0, Relaxed);
                }
                Ok(Acked {
                    partition: m.partition(),
                    offset: m.offset(),
                })
            }
            Err((e, _)) => {
                self.note_fencing(e);
                Err(e.clone())
            }
        };
        // The sender may have stopped waiting (its request went away): nothing to do.
        let _ = reply.send(report);
    }
}

/// The producer's configuration: hookbridge's defaults under what the user set.
fn with_defaults(mut cfg: ClientConfig, delivery_timeout: Duration) -> ClientConfig {
    let ms = delivery_timeout.as_millis().max(1).to_string();
    let defaults = [
        ("acks", "all"),
        ("enable.idempotence", "true"),
        ("message.timeout.ms", ms.as_str()),
        // A short linger batches concurrent webhooks into one request; each sender still
        // waits for its own record's acknowledgement, so batching never weakens the promise.
        // Every sender waits out the linger before its 2xx, so it is as short as batching
        // allows: with 64 senders waiting on their acks (scripts/bench, docs/benchmarks.md)
        // 1 ms gave the most webhooks per second; 2 ms and 0 (a request per record) about
        // a third fewer.
        ("linger.ms", "1"),
        ("socket.connection.setup.timeout.ms", "3000"),
    ];
    for (k, v) in defaults {
        if cfg.get(k).is_none() {
            cfg.set(k, v);
        }
    }
    if cfg.get("acks").is_some_and(|a| a != "all" && a != "-1") {
        tracing::warn!("kafka.properties sets acks other than all: a 2xx no longer means every in-sync replica has the record");
    }
    cfg
}

/// Like [`build`], but each batch holds one record: a size refusal by the broker (whose
/// limit applies per batch) is then about that record alone.
pub fn build_one_per_batch(
    mut cfg: ClientConfig,
    delivery_timeout: Duration,
) -> Result<Producer, KafkaError> {
    cfg.set("batch.num.messages", "1").set("linger.ms", "0");
    build(cfg, delivery_timeout)
}

/// Raises the producer's `message.max.bytes` to the largest record any source can
/// produce, so a body `max_body` allows is never refused by the client itself. A value
/// the user set wins; if it is too small, those webhooks get 413 and this warns why.
pub fn fit_records(cfg: &mut ClientConfig, largest_record: Option<usize>) {
    let needed = largest_record.unwrap_or(0).max(LIBRDKAFKA_DEFAULT_MAX);
    match cfg.get("message.max.bytes").map(str::parse::<usize>) {
        None => {
            cfg.set("message.max.bytes", needed.to_string());
        }
        Some(Ok(set)) if set < needed => tracing::warn!(
            set,
            needed,
            "kafka.properties sets message.max.bytes below the largest record a source's max_body allows: larger webhooks are refused with 413"
        ),
        Some(_) => {}
    }
}

/// Whether the broker (or the client, before sending) refused the record for its size.
/// Such a record can never be produced, so the sender must not retry it: 413, not 503.
pub fn is_too_large(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge)
    )
}

/// A short class of a produce failure for metrics and logs: `too_large`,
/// `unknown_topic` (the topic does not exist), `not_authorized`, `timeout` or `other`.
pub fn failure_class(e: &KafkaError) -> &'static str {
    match e.rdkafka_error_code() {
        _ if is_too_large(e) => "too_large",
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            "unknown_topic"
        }
        Some(RDKafkaErrorCode::TopicAuthorizationFailed) => "not_authorized",
        Some(RDKafkaErrorCode::MessageTimedOut | RDKafkaErrorCode::RequestTimedOut) => "timeout",
        _ => "other",
    }
}

/// Where a produced record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    pub partition: i32,
    pub offset: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_limit_follows_the_largest_record_unless_the_user_set_one() {
        let mut cfg = ClientConfig::new();
        fit_records(&mut cfg, Some(3 << 20));
        assert_eq!(cfg.get("message.max.bytes"), Some("3145728"));
        let mut small = ClientConfig::new();
        fit_records(&mut small, Some(10));
        assert_eq!(small.get("message.max.bytes"), Some("1000000"));
        let mut user = ClientConfig::new();
        user.set("message.max.bytes", "200000");
        fit_records(&mut user, Some(3 << 20));
        assert_eq!(user.get("message.max.bytes"), Some("200000"));
    }

    /// Ingress answers 2xx on the delivery report: that means every in-sync replica has
    /// the record only with `acks=all`, and a librdkafka retry never duplicates or
    /// reorders it only with idempotence.
    #[test]
    fn the_producer_waits_for_every_in_sync_replica_and_is_idempotent() {
        let cfg = with_defaults(ClientConfig::new(), Duration::from_secs(7));
        assert_eq!(cfg.get("acks"), Some("all"));
        assert_eq!(cfg.get("enable.idempotence"), Some("true"));
        assert_eq!(cfg.get("message.timeout.ms"), Some("7000"));
        assert_eq!(
            cfg.get("linger.ms"),
            Some("1"),
            "the fastest linger measured"
        );
        assert_eq!(
            with_defaults(ClientConfig::new(), Duration::ZERO).get("message.timeout.ms"),
            Some("1"),
            "librdkafka reads 0 as forever"
        );
        let mut user = ClientConfig::new();
        user.set("acks", "-1").set("linger.ms", "20");
        let cfg = with_defaults(user, Duration::from_secs(7));
        assert_eq!(cfg.get("acks"), Some("-1"), "the other spelling of all");
        assert_eq!(cfg.get("linger.ms"), Some("20"));
        assert_eq!(cfg.get("enable.idempotence"), Some("true"));
        let _producer =
            build(ClientConfig::new(), Duration::from_secs(7)).expect("librdkafka takes them");
    }

    /// What `kafka.properties` may set reaches the producer as is, so the settings
    /// check is what keeps `acks` at all: every weaker spelling is refused there.
    #[test]
    fn a_weaker_acks_never_reaches_the_producer() {
        for (key, value) in [
            ("acks", "1"),
            ("acks", "0"),
            ("request.required.acks", "1"),
            ("topic.acks", "0"),
            ("Topic.Request.Required.Acks", "1"),
        ] {
            let text = format!("[kafka.properties]\n\"{key}\" = \"{value}\"\n");
            let settings = crate::config::load::parse_settings(&text).expect("parses");
            let e = crate::config::validate::validate(&settings, "hookbridge.toml")
                .expect_err("a weaker acks is refused");
            assert_eq!(
                e.key.as_deref(),
                Some(format!("kafka.properties.{key}").as_str())
            );
        }
    }

    /// Every send is answered by its own report, from librdkafka's mock cluster, with the
    /// poll thread's backstop an hour long: a report left queued while the thread sleeps
    /// would never come, and the test would fail at its deadline.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_send_gets_its_report_without_the_backstop() {
        let mut cfg = ClientConfig::new();
        cfg.set("test.mock.num.brokers", "1");
        let cfg = with_defaults(cfg, Duration::from_secs(30));
        let backstop = |base| Poller::with_backstop(base, Duration::from_secs(3600));
        let producer = Producer::with_poller(&cfg, backstop).expect("a mock-cluster producer");
        let senders = (0..32).map(|sender| {
            let producer = producer.clone();
            tokio::spawn(async move {
                let mut offsets = Vec::new();
                for i in 0..100 {
                    let value = format!("{sender}-{i}");
                    let key = sender.to_string();
                    let record = FutureRecord::to("acks")
                        .key(key.as_bytes())
                        .payload(value.as_bytes());
                    let acked = (producer.send_acked(record, Duration::from_secs(5)).await)
                        .expect("acknowledged");
                    offsets.push(acked.offset);
                }
                offsets
            })
        });
        let all =
            tokio::time::timeout(Duration::from_secs(120), futures::future::join_all(senders))
                .await
                .expect("every report came");
        let mut acked = 0;
        for offsets in all {
            let offsets = offsets.expect("sender task");
            assert_eq!(offsets.len(), 100);
            assert!(
                offsets.windows(2).all(|w| w[0] < w[1]),
                "one key's records are acknowledged in order"
            );
            acked += offsets.len();
        }
        assert_eq!(acked, 3200);
    }

    /// A fatal error (here raised through librdkafka's test hook, as a fenced idempotent
    /// producer raises it) wakes whoever waits for one, with its reason, and is kept.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fatal_error_is_made_known() {
        let mut cfg = ClientConfig::new();
        cfg.set("test.mock.num.brokers", "1");
        let producer = build(cfg, Duration::from_secs(5)).expect("a mock-cluster producer");
        assert!(producer.fatal_error().is_none());
        // Polled once first, so it is asleep when the error comes: only the report wakes it.
        let mut failed = std::pin::pin!(producer.failed());
        let once = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(failed.as_mut(), cx))
        });
        assert!(once.await.is_pending());
        producer.fence_for_test(c"fenced by a newer producer");
        let error = tokio::time::timeout(Duration::from_secs(30), failed)
            .await
            .expect("the fatal error is reported");
        assert!(error.contains("fenced by a newer producer"), "{error}");
        let again = producer.failed();
        let kept = tokio::time::timeout(Duration::from_secs(1), again).await;
        assert_eq!(
            kept.ok().as_deref(),
            Some(error.as_str()),
            "kept for later askers"
        );
    }

    /// A broker that keeps refusing the producer's records as fenced (librdkafka raises no
    /// fatal error) fails the producer; one refusal followed by an acknowledgement does not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_refused_as_fenced_fails_the_producer() {
        use rdkafka::mocking::MockCluster;
        use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
        let cluster = MockCluster::new(1).expect("a mock cluster");
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", cluster.bootstrap_servers());
        let producer = build(cfg, Duration::from_secs(10)).expect("a producer");
        let send = |value: &'static str| {
            let producer = producer.clone();
            async move {
                let record = FutureRecord::<[u8], [u8]>::to("fenced").payload(value.as_bytes());
                producer.send_acked(record, Duration::from_secs(5)).await
            }
        };
        send("first").await.expect("acknowledged");
        let mut failed = std::pin::pin!(producer.failed());
        let once = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(failed.as_mut(), cx))
        });
        assert!(
            once.await.is_pending(),
            "not failed while records are acknowledged"
        );
        let fenced = RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED;
        let refused = |e: KafkaError| {
            assert_eq!(
                e.rdkafka_error_code(),
                Some(RDKafkaErrorCode::ProducerFenced)
            );
        };
        // One refusal, then a record acknowledged: librdkafka carried on, and so does it.
        cluster.request_errors(RDKafkaApiKey::Produce, &[fenced]);
        refused(send("second").await.expect_err("refused"));
        send("third").await.expect("acknowledged after one refusal");
        // Refused in a row, nothing acknowledged between: it can send nothing more.
        cluster.request_errors(RDKafkaApiKey::Produce, &[fenced; FENCED_IN_A_ROW as usize]);
        for value in ["a", "b"] {
            refused(send(value).await.expect_err("refused"));
            let once = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(std::future::Future::poll(failed.as_mut(), cx))
            });
            assert!(
                once.await.is_pending(),
                "not failed before {FENCED_IN_A_ROW} in a row"
            );
        }
        refused(send("c").await.expect_err("refused"));
        let error = tokio::time::timeout(Duration::from_secs(30), failed)
            .await
            .expect("the producer is failed");
        assert!(error.contains("in a row as fenced"), "{error}");
    }

    #[test]
    fn size_refusals_are_recognised() {
        use rdkafka::error::RDKafkaErrorCode as Code;
        for (code, too_large) in [
            (Code::MessageSizeTooLarge, true),
            (Code::MessageBatchTooLarge, true),
            (Code::MessageTimedOut, false),
            (Code::NotEnoughReplicas, false),
        ] {
            assert_eq!(
                is_too_large(&KafkaError::MessageProduction(code)),
                too_large
            );
        }
    }
}
