//! Shaping records: filter, URL and header templates, forwarded headers, transform,
//! CloudEvents, and the jq deadline.

use std::sync::Arc;

use super::*;
use crate::connectors::Connectors;
use crate::egress::record::TopicPartition;

fn shaper(extra: &str) -> Shaper {
    shaper_with(extra, telemetry())
}

fn shaper_with(extra: &str, telemetry: Arc<SinkTelemetry>) -> Shaper {
    let mut out = Connectors::default();
    let text = format!("[sink]\nname = \"s\"\ntopics = [\"t\"]\n{extra}\n");
    crate::connectors::load_file("s.toml", &text, &mut out).expect("valid sink");
    Shaper::new(&out.sinks[0], telemetry)
}

fn telemetry() -> Arc<SinkTelemetry> {
    let metrics = Arc::new(crate::telemetry::Metrics::new());
    Arc::new(SinkTelemetry::new("s".into(), metrics))
}

fn record(value: &[u8], headers: &[(&str, &[u8])], key: Option<&[u8]>) -> Record {
    Record {
        tp: TopicPartition {
            topic: Arc::from("t"),
            partition: 0,
        },
        offset: 7,
        leader_epoch: -1,
        key: key.map(Bytes::copy_from_slice),
        value: Bytes::copy_from_slice(value),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), Bytes::copy_from_slice(v)))
            .collect(),
        epoch: 0,
    }
}

const EVERYTHING: &str = r#"url = "https://h/{topic}/{key}/{header.x-t}?p={json./a/b}&e={event_type}"
headers = { X-T = "{header.x-t}", X-K = "k={key}" }
forward_headers = ["x-*"]
filter = '.a.b != "skip"'
transform = '{b: .a.b, k: $key, h: $headers}'
format = "cloudevents-structured""#;

#[test]
fn a_record_with_everything_is_shaped() {
    let s = shaper(EVERYTHING);
    let r = record(
        br#"{"a":{"b":"x y"}}"#,
        &[
            ("x-t", b"acme"),
            ("hookbridge-event-type", b"o.c"),
            ("bad name", b"v"),
        ],
        Some(b"k/1"),
    );
    let p = s.shape(&r).unwrap().unwrap();
    assert_eq!(p.url.as_str(), "https://h/t/k%2F1/acme?p=x%20y&e=o.c");
    assert_eq!(p.headers["x-t"], "acme");
    assert_eq!(p.headers["x-k"], "k=k/1");
    assert!(p.headers.get("bad name").is_none());
    let event: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
    assert_eq!(event["type"], "o.c");
    assert_eq!(event["id"], "t-0-7");
    assert_eq!(event["data"]["b"], "x y");
    assert_eq!(event["data"]["k"], "k/1");
    let skip = record(br#"{"a":{"b":"skip"}}"#, &[("x-t", b"acme")], Some(b"k"));
    assert!(s.shape(&skip).unwrap().is_none(), "filtered");
    let no_tenant = record(br#"{"a":{"b":"x"}}"#, &[], Some(b"k"));
    assert_eq!(
        s.shape(&no_tenant).err(),
        Some(Refused {
            reason: "template",
            error: "missing-value"
        })
    );
    let not_json = record(b"nope", &[("x-t", b"acme")], Some(b"k"));
    assert_eq!(
        s.shape(&not_json).err(),
        Some(Refused {
            reason: "filter",
            error: "not-json"
        })
    );
}

#[test]
fn a_dot_segment_header_is_refused_not_sent_elsewhere() {
    let s = shaper("url = \"http://h/tenants/{header.x-tenant}/orders\"");
    for bad in [&b".."[..], b"."] {
        let r = record(b"{}", &[("x-tenant", bad)], None);
        assert_eq!(
            s.shape(&r).err(),
            Some(Refused {
                reason: "template",
                error: "invalid-url"
            })
        );
    }
    // `%2e` in a value is text: its `%` is encoded.
    let r = record(b"{}", &[("x-tenant", b"%2e%2e")], None);
    let p = s.shape(&r).unwrap().unwrap();
    assert_eq!(p.url.path(), "/tenants/%252e%252e/orders");
}

#[test]
fn a_transform_body_is_json_or_the_record_is_refused() {
    let s = shaper("url = \"http://h/\"\ntransform = '{k: $key, h: $headers.h}'");
    let r = record(b"{}", &[("h", b"\xfe")], Some(b"\xff"));
    let p = s.shape(&r).unwrap().unwrap();
    let body: serde_json::Value = serde_json::from_slice(&p.body).expect("JSON body");
    assert_eq!(body, serde_json::json!({"k": "\u{fffd}", "h": "\u{fffd}"}));
    let s = shaper("url = \"http://h/\"\ntransform = '[.n / 0]'");
    assert_eq!(
        s.shape(&record(br#"{"n":0}"#, &[], None)).err(),
        Some(Refused {
            reason: "transform",
            error: "not-json-output"
        })
    );
}

#[test]
fn framing_headers_are_never_forwarded() {
    let s = shaper("url = \"http://h/\"\nforward_record_headers = [\"*\"]");
    let r = record(
        b"{\"long\":\"body\"}",
        &[
            ("content-length", b"1"),
            ("Transfer-Encoding", b"chunked"),
            ("host", b"other.internal"),
            ("connection", b"close"),
            ("proxy-authorization", b"x"),
            ("expect", b"100-continue"),
            ("x-kept", b"1"),
        ],
        None,
    );
    let p = s.shape(&r).unwrap().unwrap();
    let names: Vec<&str> = p.headers.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["x-kept"]);
}

#[test]
fn binary_cloudevent_attributes_are_percent_encoded_and_time_is_rfc3339() {
    let s = shaper("url = \"http://h/\"\nformat = \"cloudevents-binary\"");
    let r = record(
        b"{}",
        &[
            ("hookbridge-event-type", "commande.créée 100%".as_bytes()),
            ("hookbridge-source", b"my source"),
            ("hookbridge-received-at", b"2026-12-04 17:00:00"),
        ],
        None,
    );
    let p = s.shape(&r).unwrap().unwrap();
    assert_eq!(p.headers["ce-type"], "commande.cr%C3%A9%C3%A9e%20100%25");
    assert_eq!(p.headers["ce-source"], "/hookbridge/sources/my%2520source");
    assert_eq!(p.headers["ce-time"], "2026-12-04T17:00:00.000Z");
}

#[test]
fn a_deeply_nested_value_is_refused_as_not_json() {
    let deep = "[".repeat(200_000);
    let r = record(deep.as_bytes(), &[], None);
    for (rules, reason) in [
        ("filter = 'true'", "filter"),
        ("transform = '.'", "transform"),
    ] {
        assert_eq!(
            shaper(&format!("url = \"http://h/\"\n{rules}"))
                .shape(&r)
                .err(),
            Some(Refused {
                reason,
                error: "not-json"
            })
        );
    }
}

/// A program that never ends holds up neither the task waiting on it nor the
/// others on its thread, and the record is refused with `timeout`.
#[tokio::test(flavor = "current_thread")]
async fn a_runaway_program_is_refused_at_the_deadline_without_blocking() {
    let s = shaper(
        "url = \"http://h/\"\nfilter = 'last(range(.n)) > 0'\ntransform = 'last(range(.m))'",
    );
    let cancel = CancellationToken::new();
    let ticks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let started = std::time::Instant::now();
    let runaway = record(br#"{"n":1e12}"#, &[], None);
    let got = s.shape_in_time(&runaway, &cancel).await.unwrap();
    assert_eq!(
        got.err(),
        Some(Refused {
            reason: "filter",
            error: "timeout"
        })
    );
    assert!(started.elapsed() < JQ_DEADLINE * 3);
    assert!(ticks.load(Ordering::Relaxed) > 10, "the thread was blocked");
    let late = record(br#"{"n":2,"m":1e12}"#, &[], None);
    let got = s.shape_in_time(&late, &cancel).await.unwrap();
    assert_eq!(got.err().map(|r| r.reason), Some("transform"));
    let fine = record(br#"{"n":2,"m":3}"#, &[], None);
    let got = s
        .shape_in_time(&fine, &cancel)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&got.body[..], b"2");
    cancel.cancel();
    assert!(s.shape_in_time(&runaway, &cancel).await.is_none());
    ticker.abort();
}

proptest::proptest! {
    /// Any record: shaped, filtered or refused — never a panic.
    #[test]
    fn shaping_never_panics(
        value in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        json_value in "\\{\"a\":\\{\"b\":\".{0,12}\"\\}\\}",
        name in "[a-zA-Z \\-]{0,8}",
        header in proptest::collection::vec(proptest::num::u8::ANY, 0..16),
        key in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..16)),
    ) {
        let s = shaper(EVERYTHING);
        for v in [&value[..], json_value.as_bytes()] {
            let r = record(v, &[(name.as_str(), &header), ("x-t", &header)], key.as_deref());
            let _ = s.shape(&r);
        }
    }
}

/// A program that never ends keeps its thread (and a core) for good: with as many
/// runaways as the sink allows still running, the next record is refused at once with
/// `runaway-limit` (whatever it holds), the gauge shows them, and once one ends records
/// are evaluated again. Here the "runaways" end after a while, past a short deadline.
#[tokio::test(flavor = "current_thread")]
async fn runaway_programs_are_bounded_per_sink() {
    let telemetry = telemetry();
    let s = shaper_with(
        "url = \"http://h/\"\nfilter = 'last(range(.n)) > 0'",
        telemetry.clone(),
    )
    .with_runaway_limits(Duration::from_millis(20), 2);
    let cancel = CancellationToken::new();
    let slow = record(br#"{"n":3e6}"#, &[], None);
    let quick = record(br#"{"n":2}"#, &[], None);
    let refused = |error| {
        Some(Refused {
            reason: "filter",
            error,
        })
    };
    for n in 1..=2 {
        let got = s.shape_in_time(&slow, &cancel).await.unwrap();
        assert_eq!(got.err(), refused("timeout"));
        assert_eq!(telemetry.jq_runaways.get(), n);
    }
    let started = std::time::Instant::now();
    let got = s.shape_in_time(&quick, &cancel).await.unwrap();
    assert_eq!(got.err(), refused("runaway-limit"), "at the limit");
    assert!(
        started.elapsed() < Duration::from_millis(20),
        "refused at once"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while telemetry.jq_runaways.get() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the runaways never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("runaways ended after {:?}", started.elapsed());
    let got = s.shape_in_time(&quick, &cancel).await.unwrap();
    assert!(
        matches!(got, Ok(Some(_))),
        "evaluated again once they ended"
    );
}

/// Records shaped at the same moment all run past the deadline: the sink never has more
/// evaluations running than its limit, however many started together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaways_started_together_stay_within_the_limit() {
    let telemetry = telemetry();
    let s = Arc::new(
        shaper_with(
            "url = \"http://h/\"\nfilter = 'last(range(.n)) > 0'",
            telemetry.clone(),
        )
        .with_runaway_limits(Duration::from_millis(20), 2),
    );
    let slow = record(br#"{"n":1e6}"#, &[], None);
    let most = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let watching = CancellationToken::new();
    let watcher = tokio::spawn({
        let (most, telemetry, watching) = (most.clone(), telemetry.clone(), watching.clone());
        async move {
            while !watching.is_cancelled() {
                most.fetch_max(telemetry.jq_runaways.get(), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let shaping: Vec<_> = (0..8)
        .map(|_| {
            let (s, slow) = (s.clone(), slow.clone());
            tokio::spawn(async move {
                let cancel = CancellationToken::new();
                s.shape_in_time(&slow, &cancel).await.map(|r| r.err())
            })
        })
        .collect();
    for shaped in shaping {
        let refused = shaped.await.expect("no panic").expect("not cancelled");
        assert!(refused.is_some(), "a runaway was shaped");
    }
    watching.cancel();
    watcher.await.expect("no panic");
    assert!(
        most.load(Ordering::SeqCst) <= 2,
        "{} evaluations ran past their deadline at once",
        most.load(Ordering::SeqCst)
    );
}

/// A record waiting for a slot while the evaluation holding it runs past its deadline
/// and on: refused as soon as that one is a runaway, not kept waiting until it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_waiting_for_a_slot_held_by_a_runaway_is_refused() {
    let telemetry = telemetry();
    let s = Arc::new(
        shaper_with(
            "url = \"http://h/\"\nfilter = 'last(range(.n)) > 0'",
            telemetry.clone(),
        )
        .with_runaway_limits(Duration::from_millis(50), 1),
    );
    let long = record(br#"{"n":2e7}"#, &[], None);
    let first = tokio::spawn({
        let s = s.clone();
        async move {
            let shaped = s.shape_in_time(&long, &CancellationToken::new()).await;
            shaped.map(|r| r.err().map(|r| r.error))
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.runaways.slots.available_permits() > 0 {
        assert!(std::time::Instant::now() < deadline, "never started");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let quick = record(br#"{"n":2}"#, &[], None);
    let second = s.shape_in_time(&quick, &CancellationToken::new()).await;
    assert_eq!(
        second.expect("not cancelled").err().map(|r| r.error),
        Some("runaway-limit")
    );
    let first = first.await.expect("no panic").expect("not cancelled");
    assert_eq!(first, Some("timeout"));
}

/// Evaluations given up on by a revoke are not runaways unless they are still running at
/// their deadline: the records that come next are evaluated, not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluations_given_up_on_before_their_deadline_are_not_runaways() {
    let telemetry = telemetry();
    let s = Arc::new(
        shaper_with(
            "url = \"http://h/\"\nfilter = 'last(range(.n)) > 0'",
            telemetry.clone(),
        )
        .with_runaway_limits(Duration::from_secs(30), 1),
    );
    let slow = record(br#"{"n":1e6}"#, &[], None);
    let revoke = CancellationToken::new();
    let given_up = tokio::spawn({
        let (s, revoke) = (s.clone(), revoke.clone());
        async move { s.shape_in_time(&slow, &revoke).await.is_none() }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.runaways.slots.available_permits() > 0 {
        assert!(std::time::Instant::now() < deadline, "never started");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    revoke.cancel();
    assert!(given_up.await.expect("no panic"), "cancelled");
    assert_eq!(telemetry.jq_runaways.get(), 0, "not a runaway yet");
    let quick = record(br#"{"n":2}"#, &[], None);
    let shaped = s.shape_in_time(&quick, &CancellationToken::new()).await;
    assert!(
        matches!(shaped, Some(Ok(Some(_)))),
        "the next record is evaluated"
    );
}
