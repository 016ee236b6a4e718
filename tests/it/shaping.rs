//! Sink shaping end to end: templated URLs and headers, forwarded record headers, jq
//! filters and transforms — on the real broker, against a loopback receiver, with the
//! DLQ and the committed offsets read back through an independent client.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support::broker::Broker;
use crate::support::connectors::{list, SinkToml};
use crate::support::hookbridge::{bin, metric, Config, Hookbridge};
use crate::support::kafka;
use crate::support::processes::children;
use crate::support::receiver::{Answer, Receiver};
use crate::support::scenario::{Names, Scenario, Setup};
use crate::support::unique;

const API_KEY: &str = "api-key-value-must-not-leak-41f";

/// The receiver's `http://127.0.0.1:PORT` (its URL without the path).
fn origin(n: &Names) -> &str {
    n.url.trim_end_matches("/hook")
}

/// A scenario of these tests: the sink `shaped` (5 s timeout, three attempts) with the
/// shaping under test added by `shape`, delivering to a receiver that answers 200.
async fn start(
    setup: Setup,
    shape: impl FnOnce(&Names, SinkToml) -> SinkToml,
) -> Scenario<Receiver> {
    setup
        .env("API_KEY", API_KEY)
        .sink(
            |_| Answer::status(200),
            |n| {
                let sink = SinkToml::bare("shaped", &[&n.topic])
                    .group_id(&format!("g-{}", n.topic))
                    .timeout("5s")
                    .max_attempts(3)
                    .backoff("100ms", "1s");
                shape(n, sink)
            },
        )
        .await
}

/// Every partition of `topic` committed to its end by `group`.
async fn wait_committed_to_end(
    broker: &Broker,
    group: &str,
    topic: &str,
) -> BTreeMap<i32, (i64, i64)> {
    kafka::wait_committed_to_end(&broker.addr(), group, topic, Duration::from_secs(30)).await
}

/// Several commit intervals pass with the group's committed offset of partition 0 at
/// most 1: the record at offset 1, which cannot be finished, holds the watermark.
async fn assert_held_at_offset_1(broker: &Broker, topic: &str, what: &str) {
    for _ in 0..8 {
        let c = kafka::committed(&broker.addr(), &format!("g-{topic}"), topic).await;
        assert!(
            c.get(&0).is_none_or(|(offset, _)| *offset <= 1),
            "committed past {what}: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templated_url_and_headers_route_tenants_and_a_record_without_the_header_is_dead_lettered()
{
    let Scenario {
        broker,
        topic,
        dlq,
        rx,
        hb,
    } = start(Setup::new("tenants").partitions(2).dlq(), |n, sink| {
        sink.url(&format!(
            "{}/tenants/{{header.x-tenant}}/orders/{{key}}?n={{json./n}}",
            origin(n)
        ))
        .set(
            "headers",
            r#"{ "X-Tenant" = "tenant {header.x-tenant}", "X-Api-Key" = "${API_KEY}" }"#,
        )
        .set("forward_record_headers", &list(&["x-*"]))
        .dlq(&n.dlq)
    })
    .await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[
            json!({"key": "o1", "value": "{\"n\":1}", "headers": {"x-tenant": "acme", "x-trace": "t1", "bad name": "v", "x-api-key": "forged"}}),
            json!({"key": "o/2?x", "value": "{\"n\":2}", "headers": {"x-tenant": "globex"}}),
            json!({"key": "o3", "value": "{\"n\":3}", "headers": {"other": "no tenant"}}),
            json!({"key": "o4", "value": "{\"n\":4}", "headers": {"x-tenant": "acme"}}),
        ],
    )
    .await;
    rx.wait_for(Duration::from_secs(30), "three deliveries", |s| {
        s.len() >= 3
    })
    .await;
    let dead = kafka::read(&broker.addr(), &dlq, Some(1), 20.0).await;
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(d.value, b"{\"n\":3}");
    assert_eq!(
        d.header("hookbridge-dlq-reason").as_deref(),
        Some("template")
    );
    assert_eq!(
        d.header("hookbridge-dlq-error").as_deref(),
        Some("missing-value")
    );
    assert_eq!(d.header("hookbridge-dlq-attempts").as_deref(), Some("0"));
    assert_eq!(
        d.header("hookbridge-dlq-response").as_deref(),
        Some("url: the record has no value for `{header.x-tenant}`"),
        "the dead letter says what could not be filled in"
    );
    wait_committed_to_end(&broker, &format!("g-{topic}"), &topic).await;

    let seen = rx.seen();
    let mut uris: Vec<String> = seen.iter().map(|r| r.uri.clone()).collect();
    uris.sort();
    assert_eq!(
        uris,
        [
            "/tenants/acme/orders/o1?n=1",
            "/tenants/acme/orders/o4?n=4",
            // The key's `/` and `?` are encoded: a value never adds a segment or a query.
            "/tenants/globex/orders/o%2F2%3Fx?n=2",
        ],
        "no request for the record without a tenant"
    );
    for r in &seen {
        assert_eq!(r.header("x-api-key"), API_KEY);
        let tenant = if r.uri.contains("acme") {
            "acme"
        } else {
            "globex"
        };
        assert_eq!(r.header("x-tenant"), format!("tenant {tenant}"));
    }
    let o1 = seen.iter().find(|r| r.uri.contains("o1")).unwrap();
    assert_eq!(o1.header("x-trace"), "t1", "x-* record headers forwarded");
    assert!(o1.headers.get("other").is_none());
    assert!(o1.header("webhook-id").starts_with(&format!("{topic}-")));

    let (ok, text) = hb.command(&["check"]).await;
    assert!(ok, "{text}");
    assert!(
        text.contains("/tenants/{header.x-tenant}/orders/{key}?n={json./n}")
            && text.contains("header x-tenant: per record from {header.x-tenant}")
            && text.contains("forward_headers: x-*"),
        "{text}"
    );
    assert!(!text.contains(API_KEY), "secret in check output:\n{text}");
    assert!(!hb.logs().contains(API_KEY), "secret in the logs");
    drop(hb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_passes_one_in_ten_and_every_offset_commits_and_transform_makes_the_body() {
    let Scenario {
        broker,
        topic,
        dlq,
        rx,
        hb,
    } = start(Setup::new("filtered").partitions(2).dlq(), |n, sink| {
        sink.url(&n.url)
            .filter(".n % 10 == 0")
            .transform(r#"{id: .n, tenant: $headers["x-tenant"], key: $key, topic: $topic}"#)
            .dlq(&n.dlq)
    })
    .await;
    let mut records: Vec<_> = (0..100)
        .map(|n| json!({"key": format!("k{}", n % 7), "value": json!({"n": n, "pad": "x"}).to_string(), "headers": {"x-tenant": "acme", "content-type": "text/plain"}}))
        .collect();
    records.push(json!({"key": "bad", "value": "not json"}));
    kafka::produce(&broker.addr(), &topic, &records).await;
    wait_committed_to_end(&broker, &format!("g-{topic}"), &topic).await;

    let dead = kafka::read(&broker.addr(), &dlq, Some(1), 20.0).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value, b"not json");
    assert_eq!(
        dead[0].header("hookbridge-dlq-reason").as_deref(),
        Some("filter")
    );
    assert_eq!(
        dead[0].header("hookbridge-dlq-error").as_deref(),
        Some("not-json")
    );
    let seen = rx.seen();
    let mut bodies: Vec<serde_json::Value> = seen
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("JSON body"))
        .collect();
    bodies.sort_by_key(|b| b["id"].as_i64());
    let expected: Vec<serde_json::Value> = (0..10)
        .map(|i| {
            let n = i * 10;
            json!({"id": n, "tenant": "acme", "key": format!("k{}", n % 7), "topic": topic})
        })
        .collect();
    assert_eq!(
        bodies, expected,
        "exactly the transform's output of 1 in 10"
    );
    for r in &seen {
        assert_eq!(r.header("content-type"), "application/json");
    }
    let m = hb.metrics().await;
    assert_eq!(
        metric(
            &m,
            "hookbridge_deliveries_total",
            &[("connector", "shaped"), ("outcome", "filtered")]
        ),
        90.0,
        "{m}"
    );
    let (ok, text) = hb.command(&["check"]).await;
    assert!(
        ok && text.contains("filter: .n % 10 == 0") && text.contains("transform: {id: .n"),
        "{text}"
    );
    drop(hb);
}

/// A filter that never ends on one record dead-letters it with `timeout` while the other
/// partition's records are delivered, a runaway evaluation does not hold up SIGTERM,
/// and no worker process outlives the sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_filter_times_out_without_holding_up_other_partitions_or_shutdown() {
    let Scenario {
        broker,
        topic,
        dlq,
        rx,
        mut hb,
    } = start(Setup::new("runaway").partitions(2).dlq(), |n, sink| {
        sink.url(&n.url).filter("last(range(.n)) > 0").dlq(&n.dlq)
    })
    .await;
    let mut records = vec![json!({"key": "r", "value": "{\"n\":1e15}", "partition": 0})];
    records.extend(
        (0..20).map(|i| json!({"key": format!("k{i}"), "value": "{\"n\":2}", "partition": 1})),
    );
    kafka::produce(&broker.addr(), &topic, &records).await;
    rx.wait_for(
        Duration::from_secs(30),
        "the other partition's records",
        |s| s.len() >= 20,
    )
    .await;
    let dead = kafka::read(&broker.addr(), &dlq, Some(1), 20.0).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].header("hookbridge-dlq-reason").as_deref(),
        Some("filter")
    );
    assert_eq!(
        dead[0].header("hookbridge-dlq-error").as_deref(),
        Some("timeout")
    );
    wait_committed_to_end(&broker, &format!("g-{topic}"), &topic).await;
    // Runaway evaluations still running (or just started) when SIGTERM comes.
    let more: Vec<_> = (0..4)
        .map(|p| json!({"key": "r", "value": "{\"n\":1e15}", "partition": p % 2}))
        .collect();
    kafka::produce(&broker.addr(), &topic, &more).await;
    let mut workers = Vec::new();
    crate::support::wait_until(Duration::from_secs(30), "workers evaluating", || {
        workers = children(hb.pid());
        let busy = workers.len() >= 2;
        async move { busy }
    })
    .await;
    let status = hb.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    for w in workers {
        w.wait_gone(Duration::from_secs(10));
    }
}

/// `systemctl stop` sends SIGTERM to every process of the service (its cgroup), a
/// Ctrl-C SIGINT to the terminal's process group: the jq workers get it too. They go
/// on evaluating while the sink drains, so no record under evaluation is
/// dead-lettered as `crashed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_signalled_to_every_process_dead_letters_no_record_under_evaluation() {
    let Scenario {
        broker,
        dlq,
        topic,
        rx,
        mut hb,
    } = start(Setup::new("stopall").dlq(), |n, sink| {
        sink.url(&n.url).filter("last(range(.n)) > 0").dlq(&n.dlq)
    })
    .await;
    // Each some hundredths of a second of counting (a debug build's jq), on keys of
    // their own: four workers are busy evaluating all along, each record well inside
    // the 1 s deadline even on a loaded machine (at 1.5e6 one ran past it under CI's
    // load, and its worker, killed for the timeout, read as ended by the signal).
    let records: Vec<_> = (0..40)
        .map(|i| json!({"key": format!("k{i}"), "value": "{\"n\":4e5}"}))
        .collect();
    kafka::produce(&broker.addr(), &topic, &records).await;
    let pid = hb.pid();
    let mut workers = Vec::new();
    // Started as far as ignoring SIGTERM: a worker signalled before that would end
    // because it had not started yet, not because a stop is taken for a crash.
    crate::support::wait_until(Duration::from_secs(30), "workers evaluating", || {
        workers = children(pid);
        let busy = workers.len() >= 2 && workers.iter().all(|w| w.ignores_sigterm());
        async move { busy }
    })
    .await;
    let before = rx.seen().len();
    for w in &workers {
        let _ = Command::new("kill")
            .args(["-TERM", &w.pid.to_string()])
            .status();
    }
    // Records evaluated after the signal, by the workers it was sent to: they are
    // still there, none replaced.
    let after = before + workers.len() + 1;
    rx.wait_for(Duration::from_secs(30), "records after the signal", |s| {
        s.len() >= after
    })
    .await;
    for w in &workers {
        assert!(w.alive(), "worker {} ended by SIGTERM", w.pid);
    }
    let m = hb.metrics().await;
    for reason in ["killed", "exited", "crashed"] {
        let labels = [("connector", "shaped"), ("reason", reason)];
        let replaced = metric(&m, "hookbridge_jq_worker_restarts_total", &labels);
        assert_eq!(replaced, 0.0, "workers replaced ({reason})");
    }
    let status = hb.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
    let dead = kafka::read_all(&broker.addr(), &dlq, 10.0).await;
    let crashed = (dead.iter())
        .filter(|d| d.header("hookbridge-dlq-error").as_deref() == Some("crashed"))
        .count();
    assert_eq!(crashed, 0, "records dead-lettered as crashed by the stop");
}

/// A hookbridge process killed outright (SIGKILL: no drop, no cleanup) while a worker
/// runs a program that would loop for days: the worker sees its parent gone and ends on
/// its own, so no worker outlives the process that started it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_end_when_the_process_is_killed_mid_evaluation() {
    let Scenario {
        broker,
        topic,
        mut hb,
        ..
    } = start(Setup::new("orphans"), |n, sink| {
        sink.url(&n.url).filter("last(range(.n)) > 0")
    })
    .await;
    // Without a DLQ, each refused runaway is held and the next key's record evaluated:
    // workers keep busy with runaways.
    let runaways: Vec<_> = (0..8)
        .map(|i| json!({"key": format!("r{i}"), "value": "{\"n\":1e15}"}))
        .collect();
    kafka::produce(&broker.addr(), &topic, &runaways).await;
    let pid = hb.pid();
    let mut workers = Vec::new();
    // Evaluating, not only started: a worker that has spent a fifth of a second of
    // CPU (more than starting takes) and goes on has a runaway (an idle one would end
    // on its closed stdin, not on its parent's death).
    let mut ticks = Vec::new();
    crate::support::wait_until(Duration::from_secs(30), "a worker evaluating", || {
        workers = children(pid);
        let now: Vec<_> = workers.iter().map(|w| (w.pid, w.cpu_ticks())).collect();
        let busy = now
            .iter()
            .any(|(p, t)| ticks.iter().any(|(q, u)| p == q && t > u && *u >= 20));
        ticks = now;
        async move { busy }
    })
    .await;
    hb.kill9();
    for w in workers {
        w.wait_gone(Duration::from_secs(10));
    }
}

/// The filter of the crash tests: a record with `n` makes it build a value nested
/// 50 × `n` deep, and dropping it overflows the worker's stack. 50 levels a step keeps
/// the jq loop's own cost small, so `n` = 2000 (twice the depth the worker's stack
/// holds in a debug build) crashes in a tenth of the 1 s deadline.
fn deep() -> String {
    let (open, close) = ("[".repeat(50), "]".repeat(50));
    format!("if .n then (reduce range(.n) as $i (0; {open}.{close}) | true) else true end")
}

/// Records `{"i": i}` under keys `k<i>`, which the crash tests' filter lets through.
fn plain_records(keys: std::ops::Range<i32>) -> Vec<serde_json::Value> {
    keys.map(|i| json!({"key": format!("k{i}"), "value": format!("{{\"i\":{i}}}")}))
        .collect()
}

/// Workers of the sink `shaped` that died on a record.
async fn crashes(hb: &Hookbridge) -> f64 {
    let m = hb.metrics().await;
    let labels = [("connector", "shaped"), ("reason", "crashed")];
    metric(&m, "hookbridge_jq_worker_restarts_total", &labels)
}

/// A record that overflows its jq worker's stack is dead-lettered with `crashed`, the
/// sink goes on delivering the records after it, and the process never aborted (the
/// same process, up all along). The crash is logged without the record; the workers
/// have an empty environment (the parent's has a secret).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_crashes_its_worker_is_dead_lettered_and_the_sink_goes_on() {
    let Scenario {
        broker,
        topic,
        dlq,
        rx,
        mut hb,
    } = start(Setup::new("crash").dlq(), |n, sink| {
        sink.url(&n.url).filter(&deep()).dlq(&n.dlq)
    })
    .await;
    let pid = hb.pid();
    let mut records =
        vec![json!({"key": "c", "value": "{\"n\":2000,\"tag\":\"crash-record-7f3\"}"})];
    records.extend(plain_records(0..20));
    kafka::produce(&broker.addr(), &topic, &records).await;
    rx.wait_for(Duration::from_secs(30), "the other records", |s| {
        s.len() >= 20
    })
    .await;
    let dead = kafka::read(&broker.addr(), &dlq, Some(1), 20.0).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].header("hookbridge-dlq-reason").as_deref(),
        Some("filter")
    );
    assert_eq!(
        dead[0].header("hookbridge-dlq-error").as_deref(),
        Some("crashed")
    );
    wait_committed_to_end(&broker, &format!("g-{topic}"), &topic).await;
    assert!(hb.exited().is_none(), "the process is up");
    assert_eq!(hb.pid(), pid, "never restarted");
    assert_eq!(crashes(&hb).await, 1.0);
    let logs = hb.logs();
    assert!(logs.contains("a jq worker died on a record"), "{logs}");
    assert!(
        !logs.contains("crash-record-7f3"),
        "the record is not logged"
    );
    let workers = children(pid);
    assert!(!workers.is_empty(), "a worker is kept for the next records");
    for w in workers {
        let environ = std::fs::read(format!("/proc/{}/environ", w.pid)).expect("environ");
        assert!(environ.is_empty(), "{}", String::from_utf8_lossy(&environ));
    }
    drop(hb);
}

/// Without a DLQ a record that crashes its worker waits like any record that cannot be
/// sent: its offset is not committed past, while the other keys of its partition are
/// delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_crashes_its_worker_without_dlq_holds_its_offset() {
    let Scenario {
        broker,
        topic,
        rx,
        hb,
        ..
    } = start(Setup::new("crashnodlq"), |n, sink| {
        sink.url(&n.url).filter(&deep())
    })
    .await;
    let mut records = vec![json!({"key": "a", "value": "{\"i\":0}"})];
    records.push(json!({"key": "c", "value": "{\"n\":2000}"}));
    records.extend(plain_records(1..10));
    kafka::produce(&broker.addr(), &topic, &records).await;
    rx.wait_for(Duration::from_secs(30), "the other keys' records", |s| {
        s.len() >= 10
    })
    .await;
    assert_held_at_offset_1(&broker, &topic, "the record that crashed").await;
    assert!(crashes(&hb).await >= 1.0);
    drop(hb);
}

/// Without a DLQ a record whose template cannot be filled is not dropped: its key waits
/// (and the watermark with it) while other keys are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfillable_record_without_dlq_holds_its_offset() {
    let Scenario {
        broker,
        topic,
        rx,
        hb,
        ..
    } = start(Setup::new("nodlq"), |n, sink| {
        sink.url(&format!("{}/t/{{header.x-tenant}}", origin(n)))
    })
    .await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[
            json!({"key": "a", "value": "1", "headers": {"x-tenant": "acme"}}),
            json!({"key": "b", "value": "2"}),
            json!({"key": "c", "value": "3", "headers": {"x-tenant": "acme"}}),
        ],
    )
    .await;
    rx.wait_for(Duration::from_secs(30), "the two fillable records", |s| {
        s.len() >= 2
    })
    .await;
    assert_held_at_offset_1(&broker, &topic, "the unfillable record").await;
    assert!(
        hb.logs().contains("no dlq is configured"),
        "the stuck record is reported"
    );
    drop(hb);
}

#[test]
fn check_refuses_a_host_placeholder_without_allowed_hosts_and_a_bad_jq_program() {
    let cases = [
        (
            "url = \"https://{header.x-tenant}.example.com/hook\"",
            "sink.url",
            "allowed_hosts",
        ),
        (
            "url = \"https://example.com/{nope}\"",
            "sink.url",
            "unknown placeholder",
        ),
        (
            "url = \"https://example.com/\"\nfilter = '.a =='",
            "sink.filter",
            "not a jq program",
        ),
        (
            "url = \"https://example.com/\"\ntransform = 'nosuchfn'",
            "sink.transform",
            "not a jq program",
        ),
        (
            "url = \"https://example.com/\"\nheaders = { X-T = \"{header.x\" }",
            "sink.headers.X-T",
            "unclosed",
        ),
    ];
    for (body, key, reason) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("connectors")).unwrap();
        std::fs::write(dir.path().join("hookbridge.toml"), "").unwrap();
        std::fs::write(
            dir.path().join("connectors/s.toml"),
            SinkToml::bare("s", &["t"]).raw(body).render(),
        )
        .unwrap();
        let out = Command::new(bin())
            .args(["check", "--config"])
            .arg(dir.path().join("hookbridge.toml"))
            .output()
            .expect("run check");
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{body}: {text}");
        assert!(
            text.contains("s.toml") && text.contains(key) && text.contains(reason),
            "{body}: {text}"
        );
    }
    // With allowed_hosts the same URL passes, and check shows the list.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("connectors")).unwrap();
    std::fs::write(dir.path().join("hookbridge.toml"), "").unwrap();
    std::fs::write(
        dir.path().join("connectors/s.toml"),
        SinkToml::bare("s", &["t"])
            .url("https://{header.x-tenant}.example.com/hook")
            .set(
                "allowed_hosts",
                &list(&["acme.example.com", "globex.example.com"]),
            )
            .render(),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(dir.path().join("hookbridge.toml"))
        .output()
        .expect("run check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("allowed_hosts: acme.example.com, globex.example.com"),
        "{text}"
    );
}

/// Parses what a sink sent with the CloudEvents Python SDK (`tests/support/cloudevents_check.py`).
async fn parse_with_sdk(seen: &[crate::support::receiver::Received]) -> Vec<serde_json::Value> {
    use base64::Engine;
    use tokio::io::AsyncWriteExt;
    let mut input = String::new();
    for r in seen {
        let headers: serde_json::Map<String, serde_json::Value> = r
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
            .collect();
        input.push_str(
            &json!({"headers": headers, "body": base64::engine::general_purpose::STANDARD.encode(&r.body)})
                .to_string(),
        );
        input.push('\n');
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/cloudevents_check.py"
    );
    let mut child = tokio::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "cloudevents_check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_in_both_http_modes_parse_with_the_python_sdk() {
    let broker = Broker::start();
    let topic = unique("ce");
    broker.create_topic(&topic, 1);
    let binary_rx = Receiver::start(|_| Answer::status(200)).await;
    let structured_rx = Receiver::start(|_| Answer::status(200)).await;
    let sink = |name: &str, url: &str, format: &str| {
        SinkToml::new(&topic, url)
            .name(name)
            .group_id(&format!("g-{name}-{topic}"))
            .format(format)
            .render()
    };
    let cfg = Config::new(&broker.addr())
        .connector(
            "bin.toml",
            &sink("ce-bin", &binary_rx.url, "cloudevents-binary"),
        )
        .connector(
            "struct.toml",
            &sink("ce-struct", &structured_rx.url, "cloudevents-structured"),
        );
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[
            json!({"key": "a", "value": "{\"order\":1}", "headers": {
                "content-type": "application/json",
                "hookbridge-event-type": "order.created",
                "hookbridge-source": "shop",
                "hookbridge-received-at": "2026-01-02T03:04:05.678Z"}}),
            json!({"key": "b", "value": "plain text", "headers": {"content-type": "text/plain"}}),
        ],
    )
    .await;
    for rx in [&binary_rx, &structured_rx] {
        rx.wait_for(Duration::from_secs(30), "both records", |s| s.len() >= 2)
            .await;
    }
    for (rx, mode) in [(&binary_rx, "binary"), (&structured_rx, "structured")] {
        let mut seen = rx.seen();
        seen.sort_by_key(|r| r.header("webhook-id"));
        let events = parse_with_sdk(&seen).await;
        assert_eq!(events.len(), 2, "{mode}: {events:?}");
        let typed = &events[0];
        assert!(typed.get("error").is_none(), "{mode}: {typed}");
        let a = &typed["attributes"];
        assert_eq!(a["specversion"], "1.0", "{mode}");
        assert_eq!(
            a["id"],
            format!("{topic}-0-0"),
            "{mode}: ce-id is the webhook id"
        );
        assert_eq!(a["source"], "/hookbridge/sources/shop", "{mode}");
        assert_eq!(a["type"], "order.created", "{mode}");
        assert!(
            a["time"].as_str().unwrap_or("").starts_with("2026-01-02"),
            "{mode}: {a}"
        );
        assert_eq!(typed["data"], json!({"order": 1}), "{mode}");
        let plain = &events[1];
        assert!(plain.get("error").is_none(), "{mode}: {plain}");
        let a = &plain["attributes"];
        assert_eq!(a["type"], "hookbridge.record", "{mode}");
        assert_eq!(a["source"], format!("/hookbridge/topics/{topic}"), "{mode}");
        assert_eq!(a["datacontenttype"], "text/plain", "{mode}");
    }
    let structured = structured_rx.seen();
    assert!(structured.iter().all(|r| r
        .header("content-type")
        .starts_with("application/cloudevents+json")));
    let binary = binary_rx.seen();
    let plain = binary.iter().find(|r| r.body.as_ref() == b"plain text");
    assert!(plain.is_some(), "binary mode keeps the body as is");
    let (ok, text) = hb.command(&["check"]).await;
    assert!(
        ok && text.contains("format: cloudevents-binary")
            && text.contains("format: cloudevents-structured"),
        "{text}"
    );
    drop(hb);
}
