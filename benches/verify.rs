//! Micro-benchmarks of the per-request hot paths, through the public API:
//!
//! * `verify/<scheme>/<size>`: one accepted signature check per scheme, for 1 KiB and
//!   64 KiB bodies. Each scheme is one row of [`SCHEMES`] (its `verify = { … }` table), so
//!   adapting to a changed verify API touches [`prepared`] only.
//! * `outgoing/sign/<size>` and `request_parts/*`: the per-attempt parts of an outgoing
//!   request that are public today: the Standard Webhooks signature, the `webhook-id` and
//!   the child `traceparent`. (The header assembly itself is private to the delivery.)
//!
//! `cargo bench --bench verify` (criterion; `-- verify/github` to filter).

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hookbridge::config::Secret;
use hookbridge::egress::batch::{self, Items, Layout, Origin, Rules};
use hookbridge::egress::record::{Record, TopicPartition};
use hookbridge::egress::sign::Signer;
use hookbridge::telemetry::trace;
use hookbridge::verify::{twilio, Verifier, VerifyConfig, WebhookRequest};

/// (scheme, the connector's `verify` table). Secrets are literals: nothing is resolved
/// from the environment in a benchmark.
const SCHEMES: &[(&str, &str)] = &[
    ("github", r#"{ scheme = "github", secrets = ["s3cret"] }"#),
    (
        "stripe",
        r#"{ scheme = "stripe", secrets = ["whsec_s3cret"] }"#,
    ),
    ("slack", r#"{ scheme = "slack", secrets = ["s3cret"] }"#),
    ("shopify", r#"{ scheme = "shopify", secrets = ["s3cret"] }"#),
    (
        "standard-webhooks",
        r#"{ scheme = "standard-webhooks", secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] }"#,
    ),
    ("gitlab", r#"{ scheme = "gitlab", secrets = ["s3cret"] }"#),
    // URL-signing schemes verify against the URL configured at the provider.
    (
        "twilio",
        r#"{ scheme = "twilio", secrets = ["s3cret"], public_url = "https://hooks.example.com/webhooks/bench" }"#,
    ),
    ("paddle", r#"{ scheme = "paddle", secrets = ["s3cret"] }"#),
    (
        "square",
        r#"{ scheme = "square", secrets = ["s3cret"], public_url = "https://hooks.example.com/webhooks/bench" }"#,
    ),
    ("zoom", r#"{ scheme = "zoom", secrets = ["s3cret"] }"#),
    ("linear", r#"{ scheme = "linear", secrets = ["s3cret"] }"#),
    ("twitch", r#"{ scheme = "twitch", secrets = ["s3cret"] }"#),
    (
        "hmac",
        r#"{ scheme = "hmac", secrets = ["s3cret"], header = "X-Signature", prefix = "sha256=" }"#,
    ),
];

const SIZES: &[(&str, usize)] = &[("1KiB", 1024), ("64KiB", 64 * 1024)];

const URL: &str = "https://hooks.example.com/webhooks/bench";

#[derive(serde::Deserialize)]
struct Connector {
    verify: VerifyConfig,
}

/// A JSON body of `size` bytes. It carries Linear's `webhookTimestamp` (ms), which
/// Linear verifies and every other scheme ignores.
fn body(size: usize, now: i64) -> Vec<u8> {
    let mut body = format!("{{\"webhookTimestamp\":{},\"pad\":\"", now * 1000).into_bytes();
    body.resize(size.saturating_sub(2).max(body.len()), b'x');
    body.extend_from_slice(b"\"}");
    body
}

/// The verifier, the headers its provider would send, and the URL it signed.
fn prepared(table: &str, body: &[u8], now: i64) -> (Verifier, http::HeaderMap, String) {
    let connector: Connector =
        toml::from_str(&format!("verify = {table}")).expect("bench verify table parses");
    let verifier = connector.verify.build().expect("bench verify table builds");
    // Twilio signs a JSON body through a `bodySHA256` parameter on the URL.
    let url = match verifier {
        Verifier::Twilio(_) => twilio::url_with_body_sha256(URL, body),
        _ => URL.to_string(),
    };
    let headers = verifier
        .sign(body, &url, now)
        .expect("every bench scheme signs");
    (verifier, headers, url)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn verify(c: &mut Criterion) {
    let now = now();
    let mut group = c.benchmark_group("verify");
    for (size_name, size) in SIZES {
        let body = body(*size, now);
        group.throughput(Throughput::Bytes(*size as u64));
        for (scheme, table) in SCHEMES {
            let (verifier, headers, url) = prepared(table, &body, now);
            let request = WebhookRequest {
                headers: &headers,
                body: &body,
                url: &url,
                now,
            };
            // Only the accepting path is measured: a bench that silently timed a
            // rejection would look fast and mean nothing.
            assert!(
                verifier.verify(&request).is_ok(),
                "{scheme} rejects its own signature"
            );
            group.bench_with_input(BenchmarkId::new(*scheme, size_name), &request, |b, r| {
                b.iter(|| verifier.verify(black_box(r)))
            });
        }
    }
    group.finish();
}

/// A record as the consumer hands it to a delivery.
fn record(value: Bytes) -> Record {
    Record {
        tp: TopicPartition {
            topic: hookbridge::egress::record::Topic::new("orders"),
            partition: 3,
        },
        offset: 123_456,
        key: Some(Bytes::from_static(b"order-42")),
        value,
        headers: Vec::new(),
        epoch: 0,
        leader_epoch: -1,
        checked_item: None,
        null_headers: Vec::new(),
        null_value: false,
    }
}

fn outgoing(c: &mut Criterion) {
    let signer = Signer::new(&Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        .expect("bench signing secret is base64");
    let mut group = c.benchmark_group("outgoing");
    for (size_name, size) in SIZES {
        let record = record(Bytes::from(body(*size, now())));
        let id = record.webhook_id();
        group.throughput(Throughput::Bytes(*size as u64));
        group.bench_with_input(BenchmarkId::new("sign", size_name), &record, |b, r| {
            b.iter(|| signer.sign(&id, black_box(1_700_000_000), &r.value))
        });
        // A record checked and framed as an item of a JSON-array batch (the check a poll
        // thread makes, `Record::check_item`, included).
        let rules = Rules {
            max_records: 100,
            max_bytes: 1 << 20,
            max_wait: std::time::Duration::from_millis(100),
            layout: Layout::JsonArray,
            items: Items::Data,
        };
        let origin = Origin {
            webhook_id: &id,
            topic: "orders",
            partition: 3,
            offset: 123_456,
        };
        group.bench_with_input(
            BenchmarkId::new("batch_item", size_name),
            &record,
            |b, r| b.iter(|| batch::item(&rules, origin, black_box(&r.value), false)),
        );
    }
    group.finish();
    // Per request, not per byte: a group of their own so no byte throughput is implied.
    let mut group = c.benchmark_group("request_parts");
    let record = record(Bytes::new());
    group.bench_function("webhook_id", |b| b.iter(|| black_box(&record).webhook_id()));
    let parent = trace::new_traceparent();
    group.bench_function("traceparent_child", |b| {
        b.iter(|| trace::child_of(black_box(&parent)))
    });
    group.finish();
}

criterion_group!(benches, verify, outgoing);
criterion_main!(benches);
