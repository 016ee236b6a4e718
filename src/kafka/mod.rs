//! Kafka clients: the acknowledged producer shared by ingress and the dead-letter path,
//! and the consumer configuration each sink reads with.

pub mod envelope;
pub mod headers;
pub mod producer;

use rdkafka::ClientConfig;

use crate::config::settings::KafkaSettings;

/// Base client config: brokers, then every passthrough property (TLS, SASL, …), which
/// override hookbridge's defaults.
pub fn client_config(
    kafka: &KafkaSettings,
    properties: &[(String, String)],
    defaults: &[(&str, &str)],
) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &kafka.brokers);
    for (k, v) in defaults {
        cfg.set(*k, *v);
    }
    for (k, v) in properties {
        cfg.set(k, v);
    }
    cfg
}

/// Consumer defaults for a sink. Offsets are committed explicitly from the contiguous
/// watermark, never automatically: `enable.auto.commit=false` and
/// `enable.auto.offset.store=false`.
pub const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
    ("session.timeout.ms", "10000"),
    ("heartbeat.interval.ms", "1000"),
    ("enable.partition.eof", "false"),
    // Feeds hookbridge_consumer_lag.
    ("statistics.interval.ms", "5000"),
    // librdkafka's prefetch queue (default 64 MiB) sits in front of the per-partition
    // buffers; 16 MiB keeps a stalled sink's memory bounded without starving a fast one.
    ("queued.max.messages.kbytes", "16384"),
];

/// Properties that only make sense for one client kind are dropped from the other so
/// librdkafka does not warn on every start.
pub fn for_producer(properties: &[(String, String)]) -> Vec<(String, String)> {
    const CONSUMER_ONLY: &[&str] = &[
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "group.instance.id",
        "partition.assignment.strategy",
        "max.poll.interval.ms",
        "auto.offset.reset",
        "fetch.min.bytes",
        "fetch.wait.max.ms",
        "fetch.max.bytes",
        "max.partition.fetch.bytes",
        "group.protocol",
        "isolation.level",
    ];
    properties
        .iter()
        .filter(|(k, _)| !CONSUMER_ONLY.contains(&k.as_str()))
        .cloned()
        .collect()
}
