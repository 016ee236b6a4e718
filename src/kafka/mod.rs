//! Kafka clients: the acknowledged producer shared by ingress and the dead-letter path,
//! and the consumer configuration each sink reads with.

pub mod client_log;
pub mod envelope;
pub(crate) mod headers;
pub mod producer;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaConfRes;
use rdkafka::ClientConfig;

use crate::config::settings::KafkaSettings;
use crate::config::ConfigError;

/// Resolves `kafka.properties` and has librdkafka check each one on its own, so an error
/// names the property (file and key) and a reason — never the value. librdkafka's own
/// message quotes the value (`Invalid value "…" for configuration property …`), and
/// rust-rdkafka appends it again, so neither is passed through as is.
pub fn checked_properties(
    kafka: &KafkaSettings,
    file: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let props = kafka.resolved_properties(file)?;
    for (name, value) in &props {
        let mut one = ClientConfig::new();
        one.set(name, value);
        if let Err(e) = one.create_native_config() {
            return Err(ConfigError::new(
                file,
                format!("kafka.properties.{name}"),
                property_reason(&e, value),
            ));
        }
    }
    consumer_settings_agree(kafka, &props, file)?;
    Ok(props)
}

/// What librdkafka checks across a consumer's properties only when the consumer is made
/// (each property alone passes the check above, and the sink would fail at start):
/// under the classic protocol, a `max.poll.interval.ms` at least the
/// `session.timeout.ms`; under `group.protocol = "consumer"`, none of the settings the
/// broker owns. Read as librdkafka reads them (its own parsing and defaults,
/// hookbridge's defaults under the file's properties, as a sink's consumer gets them),
/// naming the property the file set.
fn consumer_settings_agree(
    kafka: &KafkaSettings,
    props: &[(String, String)],
    file: &str,
) -> Result<(), ConfigError> {
    let Ok(native) = client_config(kafka, props, CONSUMER_DEFAULTS).create_native_config() else {
        return Ok(()); // each property was checked alone above
    };
    let read = |name: &str| native.get(name).ok();
    let set = |name: &str| props.iter().any(|(k, _)| k == name);
    if read("group.protocol").is_some_and(|p| is_consumer_protocol(&p)) {
        // The broker owns these under KIP-848: librdkafka refuses a consumer that sets one.
        return match BROKER_SIDE_UNDER_CONSUMER_PROTOCOL.iter().find(|k| set(k)) {
            Some(key) => Err(ConfigError::new(
                file,
                format!("kafka.properties.{key}"),
                "is not a client setting under `group.protocol = \"consumer\"` (the broker \
                 owns the group; librdkafka refuses a sink's consumer that sets it): remove it",
            )),
            None => Ok(()),
        };
    }
    let number = |name: &str| read(name).and_then(|v| v.trim().parse::<i64>().ok());
    let (Some(poll), Some(session)) =
        (number("max.poll.interval.ms"), number("session.timeout.ms"))
    else {
        return Ok(());
    };
    if poll >= session {
        return Ok(());
    }
    let (key, reason) = if set("max.poll.interval.ms") {
        let whose = if set("session.timeout.ms") {
            ""
        } else {
            ", hookbridge's default"
        };
        (
            "max.poll.interval.ms",
            format!(
                "must be at least the consumer session (`session.timeout.ms`, {session} ms{whose}): \
                 librdkafka refuses a sink's consumer polled less often; raise it, or lower the session"
            ),
        )
    } else {
        (
            "session.timeout.ms",
            format!(
                "must be at most `max.poll.interval.ms` ({poll} ms, librdkafka's default): \
                 librdkafka refuses a sink's consumer with a longer session; lower it, or raise \
                 `max.poll.interval.ms`"
            ),
        )
    };
    Err(ConfigError::new(
        file,
        format!("kafka.properties.{key}"),
        reason,
    ))
}

/// Whether a `group.protocol` value selects KIP-848 (librdkafka ignores the case and
/// leading blanks of the value).
fn is_consumer_protocol(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case("consumer")
}

/// Whether a consumer made from `cfg` joins its group by the KIP-848 consumer protocol.
pub(crate) fn uses_consumer_protocol(cfg: &ClientConfig) -> bool {
    cfg.get("group.protocol").is_some_and(is_consumer_protocol)
}

/// Why librdkafka refused a property, with the value taken out of its message.
fn property_reason(err: &KafkaError, value: &str) -> String {
    match err {
        KafkaError::ClientConfig(RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN, ..) => {
            "librdkafka has no such property (misspelt?)".to_owned()
        }
        KafkaError::ClientConfig(_, desc, ..) => {
            format!("librdkafka refuses the value: {}", scrub(desc, value))
        }
        _ => "librdkafka refuses this property".to_owned(),
    }
}

/// `text` with the value taken out: its quoted form always, anywhere when it is long
/// enough to be unambiguous, and as a whole word otherwise, so a "1" does not mangle a
/// range like "0..1000".
fn scrub(text: &str, value: &str) -> String {
    if value.is_empty() {
        return text.to_owned();
    }
    let text = text.replace(&format!("\"{value}\""), "\"<value>\"");
    if value.len() >= 4 {
        return text.replace(value, "<value>");
    }
    text.split(' ')
        .map(|word| if word == value { "<value>" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Base client config: brokers, then every passthrough property (TLS, SASL, …), which
/// override hookbridge's defaults.
pub(crate) fn client_config(
    kafka: &KafkaSettings,
    properties: &[(String, String)],
    defaults: &[(&str, &str)],
) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", kafka.bootstrap_servers());
    let consumer_protocol = properties
        .iter()
        .any(|(k, v)| k == "group.protocol" && is_consumer_protocol(v));
    for (k, v) in defaults {
        if consumer_protocol && BROKER_SIDE_UNDER_CONSUMER_PROTOCOL.contains(k) {
            continue;
        }
        cfg.set(*k, *v);
    }
    for (k, v) in properties {
        cfg.set(k, v);
    }
    cfg
}

/// Under the KIP-848 consumer group protocol (`group.protocol = "consumer"`) the broker
/// owns the session, the heartbeat and the assignment, and the classic protocol's type
/// has no meaning; librdkafka refuses a consumer that sets any of these, so hookbridge's
/// defaults for them are left out and a file that sets one is refused at load.
const BROKER_SIDE_UNDER_CONSUMER_PROTOCOL: &[&str] = &[
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "partition.assignment.strategy",
    "group.protocol.type",
];

/// Consumer defaults for a sink. Offsets are committed explicitly from the contiguous
/// watermark, never automatically: `enable.auto.commit=false` and
/// `enable.auto.offset.store=false`.
pub(crate) const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
    // Apache Kafka's own default since 3.0 (KIP-735). When the broker coordinating the
    // group crashes, no heartbeat is answered until the controller fences it (its
    // `broker.session.timeout.ms`, 9 s by default) and another broker loads the group;
    // a shorter session makes librdkafka end it meanwhile, and everything delivered
    // since the crash is delivered again (5 of 8 runs at 10 s, 0 of 8 at 45 s: the
    // chaos scenario "3 nodes"). A member killed -9 holds its partitions this long; one
    // that stops leaves the group at once.
    ("session.timeout.ms", "45000"),
    ("heartbeat.interval.ms", "1000"),
    ("enable.partition.eof", "false"),
    // Feeds hookbridge_consumer_lag.
    ("statistics.interval.ms", "5000"),
    // librdkafka's prefetch queue (default 64 MiB) sits in front of the per-partition
    // buffers; 16 MiB keeps a stalled sink's memory bounded without starving a fast one.
    ("queued.max.messages.kbytes", "16384"),
    // When that queue is over its threshold, librdkafka postpones the partition's next
    // fetch by this (1 s by default), and a sink that empties 16 MiB sooner then sits
    // idle: a batched sink stalled for up to a second at a time in `scripts/bench`.
    ("fetch.queue.backoff.ms", "10"),
    // One fetch is in flight per broker: while the broker holds one open for partitions
    // with nothing new, a partition resuming with a backlog waits for it to come back (500
    // ms by default). A batched sink's pauses then cost 0.45-0.8 s per 1 000 000 records;
    // at 100 ms none was seen. An idle sink asks each broker 10 times a second instead of 2.
    ("fetch.wait.max.ms", "100"),
    // Incremental rebalancing (KIP-429): a replica joining or leaving revokes only the
    // partitions that move; the others keep delivering, and stay ready, through it.
    ("partition.assignment.strategy", "cooperative-sticky"),
];

/// Properties that only make sense for one client kind are dropped from the other so
/// librdkafka does not warn on every start.
pub(crate) fn for_producer(properties: &[(String, String)]) -> Vec<(String, String)> {
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
        "fetch.queue.backoff.ms",
        "fetch.error.backoff.ms",
        "queued.min.messages",
        "queued.max.messages.kbytes",
        "group.protocol",
        "isolation.level",
    ];
    properties
        .iter()
        .filter(|(k, _)| !CONSUMER_ONLY.contains(&k.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::parse_settings;

    /// librdkafka is built with every codec a producer may compress a batch with: a
    /// partition holding a batch of a codec it lacks is never read past (every fetch
    /// fails `NotImplemented`), which stops a sink.
    #[test]
    fn librdkafka_reads_every_compression_codec() {
        // SAFETY: a fresh configuration, read once into a buffer of the size it asks
        // for, then destroyed.
        let features = unsafe {
            let conf = rdkafka::bindings::rd_kafka_conf_new();
            let name = c"builtin.features";
            let mut size = 0usize;
            rdkafka::bindings::rd_kafka_conf_get(
                conf,
                name.as_ptr(),
                std::ptr::null_mut(),
                &mut size,
            );
            let mut buf = vec![0u8; size];
            rdkafka::bindings::rd_kafka_conf_get(
                conf,
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                &mut size,
            );
            rdkafka::bindings::rd_kafka_conf_destroy(conf);
            String::from_utf8_lossy(&buf)
                .trim_end_matches('\0')
                .to_owned()
        };
        for codec in ["gzip", "snappy", "lz4", "zstd"] {
            assert!(
                features.split(',').any(|f| f == codec),
                "{codec}: {features}"
            );
        }
    }

    fn check(props: &str) -> Result<Vec<(String, String)>, ConfigError> {
        let s = parse_settings(&format!("[kafka.properties]\n{props}\n")).unwrap();
        checked_properties(&s.kafka, "hookbridge.toml")
    }

    #[test]
    fn misspelt_and_invalid_properties_name_the_key_never_the_value() {
        let e = check("\"sasl.pasword\" = \"hunter2-secret\"").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("kafka.properties.sasl.pasword"));
        assert!(e.reason.contains("no such property"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");

        let e = check("\"security.protocol\" = \"hunter2-secret\"").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("kafka.properties.security.protocol"));
        assert!(!e.to_string().contains("hunter2"), "{e}");

        let e = check("\"linger.ms\" = \"99999999\"").unwrap_err();
        assert!(!e.to_string().contains("99999999"), "{e}");
        assert!(check("\"linger.ms\" = \"5\"").is_ok());
    }

    #[test]
    fn a_poll_interval_shorter_than_the_session_is_refused_by_name() {
        let e = check("\"max.poll.interval.ms\" = \"20000\"").unwrap_err();
        assert_eq!(
            e.key.as_deref(),
            Some("kafka.properties.max.poll.interval.ms")
        );
        assert!(e.reason.contains("45000 ms, hookbridge's default"), "{e}");
        let e = check("\"max.poll.interval.ms\" = \"20000\"\n\"session.timeout.ms\" = \"30000\"")
            .unwrap_err();
        assert!(e.reason.contains("30000 ms)"), "{e}");
        // A session past librdkafka's default poll interval (300 s), with none set.
        let e = check("\"session.timeout.ms\" = \"400000\"").unwrap_err();
        assert_eq!(
            e.key.as_deref(),
            Some("kafka.properties.session.timeout.ms")
        );
        assert!(e.reason.contains("300000 ms"), "{e}");
        // As librdkafka reads numbers: a leading zero is octal (060000 is 24 576).
        assert!(
            check("\"max.poll.interval.ms\" = \"50000\"\n\"session.timeout.ms\" = \"060000\"")
                .is_ok()
        );
        // Only the numbers are shown, never another property's value.
        let e =
            check("\"max.poll.interval.ms\" = \"20000\"\n\"sasl.password\" = \"hunter2-secret\"")
                .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        // Under KIP-848 the broker owns the session: setting one is refused by name.
        let e = check("\"group.protocol\" = \"consumer\"\n\"session.timeout.ms\" = \"10000\"")
            .unwrap_err();
        assert_eq!(
            e.key.as_deref(),
            Some("kafka.properties.session.timeout.ms")
        );
        for fine in [
            "\"max.poll.interval.ms\" = \"45000\"",
            "\"max.poll.interval.ms\" = \"20000\"\n\"session.timeout.ms\" = \"10000\"",
            "\"max.poll.interval.ms\" = \"20000\"\n\"group.protocol\" = \"consumer\"",
            "\"max.poll.interval.ms\" = \"20000\"\n\"group.protocol\" = \" Consumer\"",
            "\"session.timeout.ms\" = \"10000\"",
        ] {
            assert!(check(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn a_sink_fetches_again_soon_unless_its_properties_say_otherwise() {
        let s = parse_settings("").unwrap();
        let cfg = client_config(&s.kafka, &[], CONSUMER_DEFAULTS);
        assert_eq!(cfg.get("fetch.wait.max.ms"), Some("100"));
        assert_eq!(cfg.get("fetch.queue.backoff.ms"), Some("10"));
        let own = [("fetch.wait.max.ms".to_owned(), "500".to_owned())];
        let cfg = client_config(&s.kafka, &own, CONSUMER_DEFAULTS);
        assert_eq!(cfg.get("fetch.wait.max.ms"), Some("500"));
    }

    #[test]
    fn consumer_only_properties_stay_off_the_producer() {
        let props: Vec<(String, String)> = [
            ("fetch.queue.backoff.ms", "1000"),
            ("queued.max.messages.kbytes", "262144"),
            ("fetch.wait.max.ms", "500"),
            ("linger.ms", "5"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            for_producer(&props),
            vec![("linger.ms".to_owned(), "5".to_owned())],
            "librdkafka warns at every start about a consumer property given to a producer"
        );
    }

    #[test]
    fn scrub_replaces_the_value() {
        assert_eq!(
            scrub("value 12345 out of range", "12345"),
            "value <value> out of range"
        );
        assert_eq!(
            scrub("value 1 not in 0..10", "1"),
            "value <value> not in 0..10"
        );
        assert_eq!(
            scrub("Invalid value \"ab\" for", "ab"),
            "Invalid value \"<value>\" for"
        );
    }
}
