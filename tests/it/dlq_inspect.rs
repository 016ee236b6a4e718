//! `dlq list` and `dlq show` against a real broker: two sinks share one DLQ topic, one
//! destination refuses with 400 and answers 503 to one record, and the commands list and
//! show exactly the asked sink's dead letters, commit nothing, and say clearly when a
//! record is not there.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::broker::Broker;
use crate::support::connectors::SinkToml;
use crate::support::hookbridge::{bin, Config, Hookbridge};
use crate::support::kafka;
use crate::support::receiver::{Answer, Receiver};
use crate::support::unique;

/// A sink that dead-letters after two attempts.
fn sink(name: &str, topic: &str, url: &str, dlq: &str) -> SinkToml {
    SinkToml::new(topic, url)
        .name(name)
        .max_attempts(2)
        .backoff("100ms", "200ms")
        .dlq(dlq)
}

/// Runs a hookbridge command with `hb`'s config: exit code, stdout, stderr.
async fn run(hb: &Hookbridge, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(bin())
        .args(args)
        .arg("--config")
        .arg(hb.dir.path().join("hookbridge.toml"))
        .output()
        .await
        .expect("run hookbridge command");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `dlq list --json` for `orders` with `extra` flags, parsed.
async fn list_json(hb: &Hookbridge, extra: &[&str]) -> Value {
    let mut args = vec!["dlq", "list", "--connector", "orders", "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = run(hb, &args).await;
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A dead letter's headers as `kafka::produce` takes them: to write forged copies.
fn headers_of(record: &kafka::Read) -> serde_json::Map<String, Value> {
    (record.headers.iter())
        .map(|(k, v)| (k.clone(), json!(String::from_utf8_lossy(v))))
        .collect()
}

fn origin_offsets(listing: &Value) -> Vec<i64> {
    let mut offs: Vec<i64> = listing["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["offset"].as_i64().expect("offset"))
        .collect();
    offs.sort();
    offs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_list_and_show_read_one_sinks_dead_letters_and_commit_nothing() {
    let broker = Broker::start();
    let orders = unique("inspect-orders");
    let billing = unique("inspect-billing");
    let dlq = unique("inspect-shared.dlq");
    broker.create_topic(&orders, 1);
    broker.create_topic(&billing, 1);
    broker.create_topic(&dlq, 1);
    let (quiet, quiet_dlq) = (unique("inspect-quiet"), unique("inspect-quiet.dlq"));
    broker.create_topic(&quiet, 1);
    // 400 (permanent) for everything, except 503 (retried, then exhausted) for one record.
    let rx = Receiver::start(|r| {
        let body = String::from_utf8_lossy(&r.body);
        Answer::status(if body.contains("\"n\":2") { 503 } else { 400 })
    })
    .await;
    let cfg = Config::new(&broker.addr())
        .connector(
            "orders.toml",
            &sink("orders", &orders, &rx.url, &dlq).render(),
        )
        .connector(
            "billing.toml",
            &sink("billing", &billing, &rx.url, &dlq).render(),
        )
        .connector(
            "quiet.toml",
            &sink("quiet", &quiet, &rx.url, &quiet_dlq).render(),
        );
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;

    let hostile = "<script>alert(1)</script>\u{1b}[31m";
    let recs = vec![
        json!({"key": "k0", "value": "{\"n\":0}"}),
        json!({"key": "k1", "value": format!("{{\"n\":1,\"note\":\"{hostile}\"}}")}),
        json!({"key": "k2", "value": "{\"n\":2}"}),
    ];
    kafka::produce(&broker.addr(), &orders, &recs).await;
    kafka::produce(
        &broker.addr(),
        &billing,
        &[json!({"key": "b0", "value": "{\"b\":0}"})],
    )
    .await;
    let dead = kafka::read(&broker.addr(), &dlq, Some(4), 30.0).await;
    assert_eq!(dead.len(), 4);

    // Everything of `orders`, nothing of `billing`, while the sinks run.
    let all = list_json(&hb, &[]).await;
    assert_eq!(all["matched"], 3, "{all}");
    assert_eq!(all["other_sinks"], 1, "{all}");
    assert_eq!(all["dlq"], dlq.as_str());
    assert_eq!(origin_offsets(&all), vec![0, 1, 2]);
    for r in all["records"].as_array().expect("records") {
        assert_eq!(r["topic"], orders.as_str(), "{r}");
        assert_eq!(r["response"], "answer", "the response excerpt: {r}");
        let (status, reason) = if r["offset"] == 2 {
            (503, "exhausted")
        } else {
            (400, "permanent")
        };
        assert_eq!(r["status"], status, "{r}");
        assert_eq!(r["reason"], reason, "{r}");
        assert!(r["attempts"].as_u64().expect("attempts") >= 1, "{r}");
        assert!(r["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{r}");
    }

    // Filters.
    let exhausted = list_json(&hb, &["--reason", "exhausted"]).await;
    assert_eq!(origin_offsets(&exhausted), vec![2], "{exhausted}");
    assert_eq!(
        origin_offsets(&list_json(&hb, &["--status", "4xx"]).await),
        vec![0, 1]
    );
    assert_eq!(
        origin_offsets(&list_json(&hb, &["--status", "503"]).await),
        vec![2]
    );
    assert_eq!(
        origin_offsets(&list_json(&hb, &["--since", "1h"]).await),
        vec![0, 1, 2]
    );
    let later = humantime::format_rfc3339(std::time::SystemTime::now() + Duration::from_secs(3600))
        .to_string();
    let none = list_json(&hb, &["--since", &later]).await;
    assert_eq!(none["matched"], 0, "{none}");
    let one = list_json(&hb, &["--limit", "1"]).await;
    assert_eq!(one["matched"], 3, "{one}");
    assert_eq!(one["records"].as_array().map(Vec::len), Some(1), "{one}");

    // The table.
    let (code, table, err) = run(&hb, &["dlq", "list", "--connector", "orders"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(table.starts_with("TIME"), "{table}");
    assert!(
        table.contains("3 of 3 matching dead letter(s) of sink \"orders\""),
        "{table}"
    );
    assert!(table.contains("other sinks' records: 1"), "{table}");
    let (code, _, err) = run(
        &hb,
        &["dlq", "list", "--connector", "orders", "--status", "9xx"],
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("expected an HTTP status"), "{err}");

    // Show: every header, the body escaped.
    let hostile_at = all["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["offset"] == 1)
        .map(|r| format!("{}:{}", r["dlq_partition"], r["dlq_offset"]))
        .expect("record 1 listed");
    let (code, shown, err) = run(
        &hb,
        &["dlq", "show", "--connector", "orders", "--at", &hostile_at],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    for expected in [
        "hookbridge-dlq-reason: permanent",
        "hookbridge-dlq-status: 400",
        "hookbridge-dlq-connector: orders",
        &format!("hookbridge-dlq-topic: {orders}"),
        "key:      k1",
        "<script>alert(1)</script>\\u{1b}[31m",
    ] {
        assert!(shown.contains(expected), "{expected:?} in:\n{shown}");
    }
    assert!(
        !shown.contains('\u{1b}'),
        "no raw escape byte reaches the terminal"
    );
    let (code, js, err) = run(
        &hb,
        &[
            "dlq",
            "show",
            "--connector",
            "orders",
            "--at",
            &hostile_at,
            "--json",
            "--preview",
            "5",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let js: Value = serde_json::from_str(&js).expect("show --json");
    assert_eq!(js["body"], "{\"n\":");
    assert_eq!(js["body_truncated"], true);
    assert_eq!(js["summary"]["offset"], 1);

    // Not there: a clear message and exit code 3.
    let (code, _, err) = run(
        &hb,
        &["dlq", "show", "--connector", "orders", "--at", "0:999"],
    )
    .await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no dead letter at 0:999"), "{err}");
    let (code, _, err) = run(
        &hb,
        &["dlq", "show", "--connector", "orders", "--at", "7:0"],
    )
    .await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no such partition"), "{err}");
    // What it cannot read is a usage error, as clap's are: exit code 2.
    let (code, _, err) = run(
        &hb,
        &["dlq", "show", "--connector", "orders", "--at", "zero"],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--at \"zero\""), "{err}");
    let (code, _, err) = run(
        &hb,
        &["dlq", "list", "--connector", "orders", "--status", "6xx"],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    let billing_at = dead
        .iter()
        .find(|r| r.header("hookbridge-dlq-connector").as_deref() == Some("billing"))
        .map(|r| format!("{}:{}", r.partition, r.offset))
        .expect("billing's dead letter");
    let (code, _, err) = run(
        &hb,
        &["dlq", "show", "--connector", "orders", "--at", &billing_at],
    )
    .await;
    assert_eq!(code, 3, "another sink's record is not shown: {err}");
    assert!(err.contains("another sink (billing)"), "{err}");
    // A record without an envelope is shown as it is, and is not a dead letter of the
    // sink: exit code 3 all the same.
    kafka::produce(
        &broker.addr(),
        &dlq,
        &[json!({"key": "stray", "value": "{\"stray\":true}"})],
    )
    .await;
    let stray = kafka::read(&broker.addr(), &dlq, Some(5), 30.0).await;
    let stray_at = (stray.iter())
        .find(|r| r.header("hookbridge-dlq-connector").is_none())
        .map(|r| format!("{}:{}", r.partition, r.offset))
        .expect("the stray record");
    for json in [false, true] {
        let mut args = vec!["dlq", "show", "--connector", "orders", "--at", &stray_at];
        if json {
            args.push("--json");
        }
        let (code, out, err) = run(&hb, &args).await;
        assert_eq!(code, 3, "{out}{err}");
        assert!(out.contains("stray"), "the record is shown: {out}");
    }

    // Anyone who can write to the DLQ topic writes its envelope's text: a reason and an
    // error with terminal escapes and a bidi override reach no terminal, log or JSON raw.
    let first = dead
        .iter()
        .find(|r| r.header("hookbridge-dlq-connector").as_deref() == Some("orders"))
        .expect("a dead letter of orders");
    let mut headers = headers_of(first);
    headers.insert(
        "hookbridge-dlq-reason".into(),
        json!("\u{1b}[2Jpermanent\u{202e}"),
    );
    headers.insert("hookbridge-dlq-error".into(), json!("\u{1b}]0;title\u{7}"));
    kafka::produce(
        &broker.addr(),
        &dlq,
        &[json!({"key": "k0", "value": "{\"n\":0}", "headers": headers})],
    )
    .await;
    kafka::read(&broker.addr(), &dlq, Some(6), 30.0).await;
    let all = list_json(&hb, &[]).await;
    let forged = all["records"]
        .as_array()
        .and_then(|r| {
            r.iter()
                .find(|r| r["reason"] != "permanent" && r["reason"] != "exhausted")
        })
        .unwrap_or_else(|| panic!("the forged dead letter is listed: {all}"));
    assert_eq!(forged["reason"], "\\u{1b}[2Jpermanent\\u{202e}", "{forged}");
    assert_eq!(forged["error"], "\\u{1b}]0;title\\u{7}", "{forged}");

    // Inspecting moved nobody's offsets: a redrive still finds all three, and the forged
    // fourth, its reason escaped.
    let (code, out, err) = run(
        &hb,
        &["dlq", "redrive", "--connector", "orders", "--dry-run"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("would redrive: 4"), "{out}");
    assert!(out.contains("\\u{1b}[2Jpermanent"), "{out}");
    assert!(
        !out.contains(['\u{1b}', '\u{202e}', '\u{7}']),
        "no raw control character: {out:?}"
    );

    // A sink that never dead-lettered, its DLQ topic not made yet: named as not there,
    // not a broker error.
    let (code, _, err) = run(&hb, &["dlq", "list", "--connector", "quiet"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("topic {quiet_dlq} not found")),
        "{err}"
    );
}

/// The console's DLQ page reads only the tail of each partition: a DLQ of any length
/// answers in a bounded time. Records without an envelope are enough to count what was
/// read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_with_a_window_reads_only_the_last_records_of_each_partition() {
    let broker = Broker::start();
    let topic = unique("window-orders");
    let dlq = unique("window.dlq");
    broker.create_topic(&topic, 1);
    broker.create_topic(&dlq, 2);
    let cfg = Config::new(&broker.addr()).connector(
        "orders.toml",
        &sink("orders", &topic, "http://127.0.0.1:9/", &dlq).render(),
    );
    let dir = cfg.write(1, 2);
    // In ten produce calls: ten batches per partition, as a DLQ fills over time.
    for batch in 0..10 {
        let records: Vec<Value> = (0..4)
            .map(|n| json!({"key": format!("k{batch}-{n}"), "value": "{}", "partition": n % 2}))
            .collect();
        kafka::produce(&broker.addr(), &dlq, &records).await;
    }
    assert_eq!(
        kafka::read(&broker.addr(), &dlq, Some(40), 30.0)
            .await
            .len(),
        40
    );

    let loaded = hookbridge::config::load::load_settings(Some(&dir.path().join("hookbridge.toml")))
        .expect("settings");
    let connectors =
        hookbridge::connectors::load_dir(&loaded.connectors_dir()).expect("connectors");
    let list = |last| {
        let filter = hookbridge::commands::ops::inspect::Filter {
            last_per_partition: last,
            ..Default::default()
        };
        hookbridge::commands::ops::inspect::list(&loaded, &connectors, "orders", &filter, 100)
            .expect("listing")
    };
    let all = tokio::task::block_in_place(|| list(None));
    assert_eq!(all.unreadable, 40, "without a window every record is read");
    let tail = tokio::task::block_in_place(|| list(Some(5)));
    // Some brokers list a partition's end as its last batch's base offset + 1, so a
    // batch's other records may come on top of the five; never the whole partition.
    assert!(
        (10..30).contains(&tail.unreadable),
        "the last 5 of each of 2 partitions, not all 40: {}",
        tail.unreadable
    );
    assert_eq!(tail.last_per_partition, Some(5));
}

/// A destination that echoes the request in its error answer would put the sink's
/// bearer token into the DLQ's response excerpt: it is masked there, and `dlq list` and
/// `dlq show` (and the console, which shows what they read) mask it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_secret_echoed_by_the_destination_is_masked() {
    const DEST_TOKEN: &str = "Bearer dest-token-8c1e55f0a2";
    let broker = Broker::start();
    let topic = unique("echo-orders");
    let dlq = unique("echo.dlq");
    broker.create_topic(&topic, 1);
    broker.create_topic(&dlq, 1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let echo = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let dump: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        (
            axum::http::StatusCode::BAD_REQUEST,
            format!("bad request\n{dump}"),
        )
    });
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, echo).await;
    });
    let conf = sink("orders", &topic, &url, &dlq)
        .set("headers", r#"{ authorization = "${DEST_TOKEN}" }"#)
        .render();
    let cfg = Config::new(&broker.addr())
        .connector("orders.toml", &conf)
        .env("DEST_TOKEN", DEST_TOKEN);
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[json!({"key": "k0", "value": "{}"})],
    )
    .await;
    let dead = kafka::read(&broker.addr(), &dlq, Some(1), 30.0).await;
    assert_eq!(dead.len(), 1);
    // The echo is kept, the token in it masked before the dead letter is written.
    let kept = dead[0]
        .header("hookbridge-dlq-response")
        .unwrap_or_default();
    assert!(kept.contains("authorization: [redacted]"), "{kept}");
    assert!(!kept.contains("dest-token-8c1e55f0a2"), "{kept}");

    // `command` passes the process's environment, which holds DEST_TOKEN.
    let (ok, listed) = hb
        .command(&["dlq", "list", "--connector", "orders", "--json"])
        .await;
    assert!(ok, "{listed}");
    assert!(listed.contains("\"matched\": 1"), "{listed}");
    assert!(!listed.contains("dest-token-8c1e55f0a2"), "{listed}");
    assert!(listed.contains("[redacted]"), "{listed}");
    // A time it cannot read is refused in the words of the option given.
    let (ok, refused) = hb
        .command(&["dlq", "list", "--connector", "orders", "--since", "soon"])
        .await;
    assert!(!ok, "{refused}");
    assert!(refused.contains("--since \"soon\""), "{refused}");
    assert!(!refused.contains("--from"), "{refused}");
    // A reason no dead letter carries is refused, not listed as nothing.
    let (ok, refused) = hb
        .command(&[
            "dlq",
            "list",
            "--connector",
            "orders",
            "--reason",
            "permanant",
        ])
        .await;
    assert!(!ok, "{refused}");
    assert!(refused.contains("--reason \"permanant\""), "{refused}");
    let (ok, shown) = hb
        .command(&["dlq", "show", "--connector", "orders", "--at", "0:0"])
        .await;
    assert!(ok, "{shown}");
    assert!(!shown.contains("dest-token-8c1e55f0a2"), "{shown}");
    assert!(shown.contains("authorization: [redacted]"), "{shown}");
    server.abort();
}

/// Every origin topic a dead letter names is kept for the life of the process that reads
/// it, up to 65 536 names: a dead letter past that is never passed over and committed
/// past, as one without an envelope is. The redrive stops before it; `dlq list` lists it
/// from its envelope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_past_the_topic_names_a_process_keeps_stops_the_redrive() {
    const NAMES: usize = 65_536;
    let broker = Broker::start();
    let (orders, dlq) = (unique("names-orders"), unique("names-orders.dlq"));
    broker.create_topic(&orders, 1);
    broker.create_topic(&dlq, 1);
    let rx = Receiver::start(|_| Answer::status(400)).await;
    let cfg = Config::new(&broker.addr()).connector(
        "orders.toml",
        &sink("orders", &orders, &rx.url, &dlq).render(),
    );
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    kafka::produce(
        &broker.addr(),
        &orders,
        &[json!({"key": "k", "value": "{}"})],
    )
    .await;
    let real = kafka::read(&broker.addr(), &dlq, Some(1), 30.0).await;
    // The same envelope from one more origin topic than a process keeps: each its own.
    let forged: Vec<Value> = (0..=NAMES)
        .map(|i| {
            let mut headers = headers_of(&real[0]);
            headers.insert(
                "hookbridge-dlq-topic".into(),
                json!(format!("tenant-{i:05}")),
            );
            json!({"key": "k", "value": "{}", "headers": headers})
        })
        .collect();
    kafka::produce(&broker.addr(), &dlq, &forged).await;

    let (code, out, err) = run(
        &hb,
        &["dlq", "redrive", "--connector", "orders", "--dry-run"],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("topic names one hookbridge process takes from dead letters"),
        "{err}"
    );
    let would = out
        .lines()
        .filter(|l| l.starts_with("would redrive dlq"))
        .count();
    assert_eq!(
        would, NAMES,
        "every dead letter before it, and not the one past"
    );
    assert!(!out.contains("passed over"), "none is passed over");

    let all = {
        let (code, out, err) = run(
            &hb,
            &[
                "dlq",
                "list",
                "--connector",
                "orders",
                "--json",
                "--limit",
                "1",
            ],
        )
        .await;
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Value>(&out).expect("list --json")
    };
    assert_eq!(
        all["matched"],
        NAMES + 2,
        "the real one and every forged one"
    );
    assert_eq!(all["unreadable"], 0, "{all}");
    assert_eq!(all["records"][0]["topic"], format!("tenant-{NAMES:05}"));
}
