//! Micro-benchmarks of shaping one record before its delivery (`egress::request`): the
//! cost a sink's `filter`, `transform`, URL template and CloudEvents format add per
//! record, on a 1 KiB JSON value.
//!
//! * `shaping/<config>`: `Shaper::shape` of one record, from the raw pass-through (no
//!   shaping configured) to filter + transform + templates, the programs run in this
//!   process.
//! * `shaping/<config>-worker`: `Shaper::shape_in_time` as the service runs it, the
//!   programs in a jq worker process of the built binary: the round trip (a request
//!   frame written, the answer read) on top of the evaluation.
//!
//! * `shaping/batch-item-<items>`: `batch::item` of the record for a `json-array`
//!   batch: the check that its value is JSON in UTF-8 (`data`), and the envelope around it
//!   (`envelope`); `batch-item-data-padded` for a 1 KiB value that is mostly one string
//!   (`{"n":1,"pad":"xx…"}`, as `scripts/bench` produces), `-unicode` for 1.3 KiB of
//!   non-ASCII text, `-escaped` for the record's JSON as a string inside another.
//!
//! `cargo bench --bench shaping`.

// The test kit's connector builders: one spelling of a connector file.
#[path = "../tests/it/support/connectors.rs"]
mod connectors;

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hookbridge::connectors::load_dir;
use hookbridge::egress::batch;
use hookbridge::egress::record::{Record, TopicPartition};
use hookbridge::egress::request::Shaper;

use connectors::SinkToml;

const CONFIGS: [(&str, &str); 6] = [
    ("raw", ""),
    ("url-template", "url = \"http://127.0.0.1:9/tenants/{header.x-tenant}/orders/{key}?type={event_type}\""),
    ("filter", "filter = '.type == \"order.created\" and .amount > 10'"),
    ("transform", "transform = '{id: .id, total: .amount, tenant: $headers[\"x-tenant\"], items: [.items[] | {sku, qty}]}'"),
    ("filter+transform", "filter = '.type == \"order.created\" and .amount > 10'\ntransform = '{id: .id, total: .amount, tenant: $headers[\"x-tenant\"], items: [.items[] | {sku, qty}]}'"),
    ("cloudevents-structured", "format = \"cloudevents-structured\""),
];

/// A 1 KiB order as JSON.
fn value() -> Bytes {
    let items: Vec<String> = (0..13)
        .map(|i| {
            format!(
                r#"{{"sku":"SKU-{i:04}","qty":{i},"price":{}.5,"note":"{}"}}"#,
                i * 3,
                "x".repeat(20)
            )
        })
        .collect();
    let v = format!(
        r#"{{"id":"ord_1234567890","type":"order.created","amount":129.5,"currency":"EUR","customer":{{"id":"cus_42","email":"a@example.com"}},"items":[{}]}}"#,
        items.join(",")
    );
    Bytes::from(v)
}

fn record() -> Record {
    Record {
        tp: TopicPartition {
            topic: hookbridge::egress::record::Topic::new("orders"),
            partition: 3,
        },
        offset: 1_234_567,
        leader_epoch: -1,
        checked_item: None,
        null_headers: Vec::new(),
        null_value: false,
        key: Some(Bytes::from_static(b"ord_1234567890")),
        value: value(),
        headers: vec![
            (
                "content-type".into(),
                Bytes::from_static(b"application/json"),
            ),
            ("x-tenant".into(), Bytes::from_static(b"acme")),
            (
                "hookbridge-event-type".into(),
                Bytes::from_static(b"order.created"),
            ),
            (
                "hookbridge-received-at".into(),
                Bytes::from_static(b"2026-01-02T03:04:05.678Z"),
            ),
        ],
        epoch: 0,
    }
}

fn shaper(extra: &str) -> Shaper {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut sink = SinkToml::bare("s", &["orders"]);
    if !extra.starts_with("url") {
        sink = sink.url("http://127.0.0.1:9/hook");
    }
    std::fs::write(dir.path().join("s.toml"), sink.raw(extra).render()).expect("connector file");
    let connectors = load_dir(dir.path()).expect("valid sink");
    let metrics = Arc::new(hookbridge::telemetry::Metrics::new());
    let telemetry = hookbridge::telemetry::SinkTelemetry::new("s".into(), metrics);
    Shaper::new(&connectors.sinks[0], Arc::new(telemetry)).in_process()
}

/// The jq configurations again, their programs run in worker processes.
const WORKER_CONFIGS: [usize; 2] = [3, 4];

fn shaping(c: &mut Criterion) {
    let record = record();
    assert!(record.value.len() >= 1000, "{}", record.value.len());
    let mut group = c.benchmark_group("shaping");
    group.throughput(Throughput::Elements(1));
    for (name, extra) in CONFIGS {
        let s = shaper(extra);
        assert!(
            matches!(s.shape(&record), Ok(Some(_))),
            "{name} sends the record"
        );
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                black_box(
                    s.shape(black_box(&record))
                        .ok()
                        .flatten()
                        .map(|p| p.body(&record).len()),
                )
            })
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let cancel = tokio_util::sync::CancellationToken::new();
    for i in WORKER_CONFIGS {
        let (name, extra) = CONFIGS[i];
        let s = shaper(extra).with_workers(
            env!("CARGO_BIN_EXE_hookbridge").into(),
            hookbridge::egress::request::JQ_DEADLINE,
        );
        let once = || {
            runtime.block_on(async {
                let shaped = s.shape_in_time(black_box(&record), &cancel).await;
                shaped
                    .and_then(|r| r.ok())
                    .flatten()
                    .map(|p| p.body(&record).len())
            })
        };
        assert!(once().is_some(), "{name} sends the record");
        group.bench_function(BenchmarkId::from_parameter(format!("{name}-worker")), |b| {
            b.iter(|| black_box(once()))
        });
    }
    for (name, items) in [
        ("data", batch::Items::Data),
        ("envelope", batch::Items::Envelope),
    ] {
        let rules = batch::Rules {
            max_records: 100,
            max_bytes: 1 << 20,
            max_wait: std::time::Duration::from_millis(100),
            layout: batch::Layout::JsonArray,
            items,
        };
        let origin = batch::Origin {
            webhook_id: "orders-3-42",
            topic: "orders",
            partition: 3,
            offset: 42,
        };
        let padded = Bytes::from(format!("{{\"n\":1,\"pad\":\"{}\"}}", "x".repeat(1000)));
        let text = "héllo wörld ünïcödé ".repeat(50);
        let unicode =
            Bytes::from(serde_json::to_vec(&serde_json::json!({ "text": text })).unwrap());
        let nested = String::from_utf8_lossy(&record.value).into_owned();
        let escaped =
            Bytes::from(serde_json::to_vec(&serde_json::json!({ "payload": nested })).unwrap());
        let values = [
            ("", &record.value),
            ("-padded", &padded),
            ("-unicode", &unicode),
            ("-escaped", &escaped),
        ];
        let shapes = if name == "data" { values.len() } else { 1 };
        for (shape, value) in values.into_iter().take(shapes) {
            assert!(batch::item(&rules, origin, value, false).is_ok());
            let id = format!("batch-item-{name}{shape}");
            group.bench_function(BenchmarkId::from_parameter(id), |b| {
                b.iter(|| {
                    black_box(
                        batch::item(&rules, origin, black_box(value), false)
                            .map(|i| i.map_or(0, |i| i.len())),
                    )
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, shaping);
criterion_main!(benches);
