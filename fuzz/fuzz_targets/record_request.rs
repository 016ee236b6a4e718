//! A record's key, header names and values and its value are written by any producer
//! (Go and C clients write header names that are not UTF-8; the poll thread reads them
//! lossily). Shaping one into a request — filter, URL and header templates, forwarded
//! headers, transform, CloudEvents — never panics; a record never moves the request to
//! a host the sink did not name; and what is shaped is always a request the HTTP client
//! accepts.
#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use bytes::Bytes;
use hookbridge::connectors::{self, Connectors};
use hookbridge::egress::record::{Record, TopicPartition};
use hookbridge::egress::request::Shaper;
use hookbridge::telemetry::{Metrics, SinkTelemetry};
use libfuzzer_sys::fuzz_target;

/// Sinks that read every part of a record, each with the hosts its requests may reach.
const SINKS: &[(&str, &[&str])] = &[
    (
        r#"url = "https://h.example/{topic}/{key}/{header.x-t}?p={json./a/b}&e={event_type}&o={offset}"
headers = { X-T = "{header.x-t}", X-K = "k={key}", X-J = "{json./a}" }
forward_headers = ["x-*", "content-type"]
filter = '.a.b != "skip"'
transform = '{b: .a.b, k: $key, h: $headers, t: $topic, e: $event_type}'
format = "cloudevents-structured""#,
        &["h.example"],
    ),
    (
        r#"url = "https://h.example/{header.x-t}/{partition}"
headers = { X-K = "{key}" }
forward_headers = ["*"]
format = "cloudevents-binary""#,
        &["h.example"],
    ),
    (
        r#"url = "https://{header.host}/in/{key}"
allowed_hosts = ["a.example", "b.example:8443"]
forward_headers = ["x-*"]"#,
        &["a.example", "b.example"],
    ),
];

fn shapers() -> &'static Vec<(Shaper, &'static [&'static str])> {
    static SHAPERS: OnceLock<Vec<(Shaper, &'static [&'static str])>> = OnceLock::new();
    SHAPERS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hookbridge-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        for (i, (extra, _)) in SINKS.iter().enumerate() {
            let text = format!("[sink]\nname = \"s{i}\"\ntopics = [\"t\"]\n{extra}\n");
            std::fs::write(dir.join(format!("s{i}.toml")), text).expect("a sink file");
        }
        let loaded: Connectors = connectors::load_dir(&dir).expect("the fuzz sinks are valid");
        let _ = std::fs::remove_dir_all(&dir);
        let metrics = Arc::new(Metrics::new());
        (loaded.sinks.iter())
            .map(|sink| {
                let telemetry = SinkTelemetry::new(sink.name.clone(), metrics.clone());
                // No worker binary here: the programs run in this process.
                Shaper::new(sink, Arc::new(telemetry)).in_process()
            })
            .zip(SINKS.iter().map(|(_, hosts)| *hosts))
            .collect()
    })
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    sink: u8,
    topic: &'a str,
    partition: i32,
    offset: i64,
    key: Option<&'a [u8]>,
    value: &'a [u8],
    /// Names as raw bytes: the poll thread reads a non-UTF-8 name lossily.
    headers: Vec<(&'a [u8], &'a [u8])>,
}

fuzz_target!(|input: Input<'_>| {
    let shapers = shapers();
    let (shaper, hosts) = &shapers[usize::from(input.sink) % shapers.len()];
    let record = Record {
        tp: TopicPartition {
            topic: Arc::from(input.topic),
            partition: input.partition,
        },
        offset: input.offset,
        key: input.key.map(Bytes::copy_from_slice),
        value: Bytes::copy_from_slice(input.value),
        headers: (input.headers.iter())
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), Bytes::copy_from_slice(v)))
            .collect(),
        epoch: 0,
        leader_epoch: -1,
        checked_item: None,
        null_headers: Vec::new(),
    };
    let _ = record.webhook_id();
    let Ok(Some(prepared)) = shaper.shape(&record) else {
        return; // filtered, or refused with a dead letter's reason
    };
    let host = prepared.url.host_str().unwrap_or_default();
    assert!(hosts.contains(&host), "a record moved the request to {host:?}");
    assert_eq!(prepared.url.scheme(), "https", "a record changed the scheme");
    let request = reqwest::Client::new()
        .post(prepared.url.as_ref().clone())
        .headers(prepared.headers)
        .body(prepared.body)
        .build();
    assert!(request.is_ok(), "a shaped request the client refuses: {request:?}");
});
