//! Reads and writes Kafka through an independent client (Python confluent-kafka), so a
//! test never checks hookbridge's Kafka code with itself.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const TOOL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/kafka_tool.py");

/// One record as read back.
#[derive(Debug, Clone)]
pub struct Read {
    #[allow(dead_code)]
    pub partition: i32,
    #[allow(dead_code)]
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    /// The value is null (a tombstone); `value` is then empty.
    #[allow(dead_code)]
    pub null_value: bool,
    pub headers: Vec<(String, Vec<u8>)>,
    /// The names of the headers whose value was null (read as empty in `headers`).
    #[allow(dead_code)]
    pub null_headers: Vec<String>,
}

impl Read {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

fn b64(v: &Value) -> Option<Vec<u8>> {
    v.as_str()
        .map(|s| STANDARD.decode(s).expect("base64 from kafka_tool"))
}

/// Reads `topic` from the beginning until `expect` records or `timeout_s` seconds.
pub async fn read(brokers: &str, topic: &str, expect: Option<usize>, timeout_s: f64) -> Vec<Read> {
    read_with(brokers, topic, expect, timeout_s, false).await
}

/// Reads everything in `topic`: stops once every partition was read to its end.
#[allow(dead_code)] // used by the chaos suite, which shares these fixtures
pub async fn read_all(brokers: &str, topic: &str, timeout_s: f64) -> Vec<Read> {
    read_with(brokers, topic, None, timeout_s, true).await
}

async fn read_with(
    brokers: &str,
    topic: &str,
    expect: Option<usize>,
    timeout_s: f64,
    to_end: bool,
) -> Vec<Read> {
    let mut cmd = Command::new("python3");
    cmd.args([
        TOOL,
        "read",
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--timeout",
        &timeout_s.to_string(),
    ]);
    if to_end {
        cmd.arg("--to-end");
    }
    if let Some(n) = expect {
        cmd.args(["--expect", &n.to_string()]);
    }
    let out = cmd.output().await.expect("run kafka_tool read");
    assert!(
        out.status.success(),
        "kafka_tool read: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json line");
            Read {
                partition: v["partition"].as_i64().unwrap_or(-1) as i32,
                offset: v["offset"].as_i64().unwrap_or(-1),
                key: b64(&v["key"]),
                value: b64(&v["value"]).unwrap_or_default(),
                null_value: v["value"].is_null(),
                headers: v["headers"]
                    .as_array()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                (
                                    h[0].as_str().unwrap_or("").to_owned(),
                                    b64(&h[1]).unwrap_or_default(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                null_headers: (v["headers"].as_array().into_iter().flatten())
                    .filter(|h| h[1].is_null())
                    .map(|h| h[0].as_str().unwrap_or("").to_owned())
                    .collect(),
            }
        })
        .collect()
}

/// Produces records given as JSON objects `{"key", "value", "headers", "partition"?}`
/// (a `null` value is a tombstone).
pub async fn produce(brokers: &str, topic: &str, records: &[Value]) {
    produce_compressed(brokers, topic, records, "none").await;
}

/// [`produce`] in batches compressed with `codec` (`gzip`, `snappy`, `lz4`, `zstd`).
pub async fn produce_compressed(brokers: &str, topic: &str, records: &[Value], codec: &str) {
    produce_with(brokers, topic, records, &["--compression", codec]).await;
}

/// [`produce`] in one transaction, committed (`commit`) or aborted (`abort`): the log
/// gets a commit or abort marker after the records, which no consumer is handed.
#[allow(dead_code)] // used by the integration suite only
pub async fn produce_in_transaction(brokers: &str, topic: &str, records: &[Value], end: &str) {
    produce_with(brokers, topic, records, &["--transaction", end]).await;
}

async fn produce_with(brokers: &str, topic: &str, records: &[Value], options: &[&str]) {
    let mut child = Command::new("python3")
        .args([TOOL, "produce", "--brokers", brokers, "--topic", topic])
        .args(options)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kafka_tool produce");
    let mut input = String::new();
    for r in records {
        input.push_str(&r.to_string());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(input.as_bytes())
        .await
        .expect("write records");
    drop(stdin);
    let out = child.wait_with_output().await.expect("produce finished");
    assert!(
        out.status.success(),
        "kafka_tool produce: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Committed offset and high watermark per partition for `group` on `topic`.
pub async fn committed(brokers: &str, group: &str, topic: &str) -> BTreeMap<i32, (i64, i64)> {
    let out = Command::new("python3")
        .args([
            TOOL,
            "committed",
            "--brokers",
            brokers,
            "--group",
            group,
            "--topic",
            topic,
        ])
        .output()
        .await
        .expect("run kafka_tool committed");
    assert!(
        out.status.success(),
        "kafka_tool committed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    v.as_object()
        .expect("object")
        .iter()
        .map(|(p, pair)| {
            (
                p.parse().expect("partition"),
                (
                    pair[0].as_i64().unwrap_or(-1),
                    pair[1].as_i64().unwrap_or(-1),
                ),
            )
        })
        .collect()
}

/// Committed offset and metadata of each partition, read by an independent client.
pub fn committed_with_metadata(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Vec<(i64, String)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let reader: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = reader
        .committed_offsets(tpl, Duration::from_secs(5))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                rdkafka::Offset::Offset(o) => o,
                _ => -1,
            };
            (offset, e.metadata().to_owned())
        })
        .collect()
}
/// Waits until `group` has committed every partition of `topic` up to its end (a
/// committed offset equal to the high watermark; an empty partition, with nothing to
/// commit, counts as at its end), asking again every 250 ms; panics with the last
/// offsets read after `timeout`. Returns them.
pub async fn wait_committed_to_end(
    brokers: &str,
    group: &str,
    topic: &str,
    timeout: Duration,
) -> BTreeMap<i32, (i64, i64)> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = committed(brokers, group, topic).await;
        if !last.is_empty() && last.values().all(|&(c, h)| c == h || (h == 0 && c <= 0)) {
            return last;
        }
        assert!(
            Instant::now() < deadline,
            "committed offsets never reached the end: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The client port of the broker coordinating `group` (asked of the cluster).
#[allow(dead_code)] // used by the chaos suite, which shares these fixtures
pub async fn coordinator_port(brokers: &str, group: &str) -> u16 {
    let out = Command::new("python3")
        .args([TOOL, "coordinator", "--brokers", brokers, "--group", group])
        .output()
        .await
        .expect("run kafka_tool coordinator");
    assert!(
        out.status.success(),
        "kafka_tool coordinator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    v["port"].as_u64().expect("port") as u16
}
