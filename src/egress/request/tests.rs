//! Shaping records: filter, URL and header templates, forwarded headers, transform,
//! CloudEvents. The programs run in process here (a unit test is no hookbridge binary);
//! their deadline, crashes and workers are tested with the real binary in
//! `tests/it/jq_workers.rs`.

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
    Shaper::new(&out.sinks[0], telemetry).in_process()
}

fn telemetry() -> Arc<SinkTelemetry> {
    let metrics = Arc::new(crate::telemetry::Metrics::new());
    Arc::new(SinkTelemetry::new("s".into(), metrics))
}

fn record(value: &[u8], headers: &[(&str, &[u8])], key: Option<&[u8]>) -> Record {
    Record {
        tp: TopicPartition {
            topic: "t".into(),
            partition: 0,
        },
        offset: 7,
        leader_epoch: -1,
        checked_item: None,
        null_headers: Vec::new(),
        null_value: false,
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
    let event: serde_json::Value = serde_json::from_slice(p.body(&r)).unwrap();
    assert_eq!(event["type"], "o.c");
    assert_eq!(event["id"], "t-0-7");
    assert_eq!(event["data"]["b"], "x y");
    assert_eq!(event["data"]["k"], "k/1");
    let skip = record(br#"{"a":{"b":"skip"}}"#, &[("x-t", b"acme")], Some(b"k"));
    assert!(s.shape(&skip).unwrap().is_none(), "filtered");
    let no_tenant = record(br#"{"a":{"b":"x"}}"#, &[], Some(b"k"));
    assert_eq!(
        s.shape(&no_tenant).err().map(classed),
        Some(Refused {
            reason: "template",
            error: "missing-value",
            detail: None,
        })
    );
    let not_json = record(b"nope", &[("x-t", b"acme")], Some(b"k"));
    assert_eq!(
        s.shape(&not_json).err().map(classed),
        Some(Refused {
            reason: "filter",
            error: "not-json",
            detail: None,
        })
    );
}

#[test]
fn a_dot_segment_header_is_refused_not_sent_elsewhere() {
    let s = shaper("url = \"http://h/tenants/{header.x-tenant}/orders\"");
    for bad in [&b".."[..], b"."] {
        let r = record(b"{}", &[("x-tenant", bad)], None);
        assert_eq!(
            s.shape(&r).err().map(classed),
            Some(Refused {
                reason: "template",
                error: "invalid-url",
                detail: None,
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
    let body: serde_json::Value = serde_json::from_slice(p.body(&r)).expect("JSON body");
    assert_eq!(body, serde_json::json!({"k": "\u{fffd}", "h": "\u{fffd}"}));
    let s = shaper("url = \"http://h/\"\ntransform = '[.n / 0]'");
    assert_eq!(
        s.shape(&record(br#"{"n":0}"#, &[], None))
            .err()
            .map(classed),
        Some(Refused {
            reason: "transform",
            error: "not-json-output",
            detail: None,
        })
    );
}

#[test]
fn record_values_under_credential_names_are_sent_as_sensitive() {
    let s = shaper(
        "url = \"http://h/\"\nforward_record_headers = [\"x-*\"]\n\
         headers = { Authorization = \"Bearer {header.tok}\", X-Tenant = \"{header.tok}\" }",
    );
    let r = record(
        b"{}",
        &[
            ("tok", b"s3cr3t-value"),
            ("x-api-key", b"k"),
            ("x-route", b"r"),
        ],
        None,
    );
    let p = s.shape(&r).unwrap().unwrap();
    let sensitive = |name: &str| p.headers[name].is_sensitive();
    assert!(sensitive("authorization"));
    assert!(sensitive("x-api-key"));
    assert!(!sensitive("x-tenant"));
    assert!(!sensitive("x-route"));
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

/// In binary mode a record's Content-Type that names a CloudEvents format would make the
/// request a structured event its body's author wrote: the data goes as JSON (or bytes)
/// instead. A record's own `ce-*` headers are never forwarded: the sink writes the
/// attributes. Times with a numeric offset are sent in UTC.
#[test]
fn a_binary_cloudevent_keeps_its_own_attributes_and_mode() {
    let forwarding =
        "url = \"http://h/\"\nformat = \"cloudevents-binary\"\nforward_headers = [\"*\"]";
    let s = shaper(forwarding);
    let forged = br#"{"specversion":"1.0","id":"forged","source":"/x","type":"t"}"#;
    for (content_type, sent) in [
        (&b"application/cloudevents+json"[..], "application/json"),
        (
            b"Application/CloudEvents-Batch+JSON; charset=utf-8",
            "application/json",
        ),
        (b"application/cloudevents+avro", "application/octet-stream"),
    ] {
        let r = record(
            forged,
            &[
                ("content-type", content_type),
                ("ce-time", b"yesterday"),
                ("CE-Id", b"forged"),
                ("ce-bad_name", b"1"),
                ("x-kept", b"yes"),
                ("hookbridge-received-at", b"2024-05-01T12:00:00+02:00"),
            ],
            None,
        );
        let p = s.shape(&r).unwrap().unwrap();
        assert_eq!(
            p.content_type.as_ref().map(|v| v.to_str().unwrap()),
            Some(sent)
        );
        assert_eq!(p.headers["ce-time"], "2024-05-01T10:00:00.000Z");
        assert!(!p.headers.contains_key("ce-bad_name"));
        assert_eq!(p.headers["x-kept"], "yes");
    }
    // Structured mode carries the attributes in the body: a record's `ce-*` headers
    // beside it would be a second, contradicting set.
    let structured = shaper(&forwarding.replace("cloudevents-binary", "cloudevents-structured"));
    let r = record(
        b"{}",
        &[("ce-time", b"yesterday"), ("x-kept", b"yes")],
        None,
    );
    let p = structured.shape(&r).unwrap().unwrap();
    assert!(!p.headers.contains_key("ce-time"));
    assert_eq!(p.headers["x-kept"], "yes");
    let plain = record(
        br#"{"a":1}"#,
        &[("content-type", b"application/json")],
        None,
    );
    assert_eq!(
        s.shape(&plain).unwrap().unwrap().content_type,
        None,
        "as it is"
    );
    // A raw sink forwards `ce-*` headers like any other.
    let raw = shaper("url = \"http://h/\"\nforward_headers = [\"*\"]");
    let r = record(b"{}", &[("ce-time", b"yesterday")], None);
    assert_eq!(
        raw.shape(&r).unwrap().unwrap().headers["ce-time"],
        "yesterday"
    );
}

#[test]
fn rfc3339_times_are_read_with_z_or_an_offset() {
    let utc = |t: &str| crate::clock::parse_rfc3339(t).and_then(crate::clock::rfc3339_millis);
    for (given, read) in [
        ("2024-05-01T12:00:00Z", Some("2024-05-01T12:00:00.000Z")),
        (
            "2024-05-01T12:00:00.5+02:00",
            Some("2024-05-01T10:00:00.500Z"),
        ),
        (
            "2024-05-01T12:00:00-05:30",
            Some("2024-05-01T17:30:00.000Z"),
        ),
        (
            "2024-05-01T23:30:00-01:00",
            Some("2024-05-02T00:30:00.000Z"),
        ),
        (
            "2024-05-01T12:00:00+00:00",
            Some("2024-05-01T12:00:00.000Z"),
        ),
        ("2024-05-01T12:00:00+24:00", None),
        ("2024-05-01T12:00:00+02:60", None),
        ("2024-05-01T12:00:00+0a:00", None),
        ("yesterday", None),
        // An offset that takes the time out of what RFC 3339 text holds.
        ("1970-01-01T00:00:00+00:01", None),
        ("9999-12-31T23:59:59-00:01", None),
    ] {
        assert_eq!(utc(given).as_deref(), read, "{given}");
    }
    // Such a time is left out of the event; the record is still sent.
    let s = shaper("url = \"http://h/\"\nformat = \"cloudevents-binary\"");
    for edge in [
        &b"1970-01-01T00:00:00+00:01"[..],
        b"9999-12-31T23:59:59-00:01",
    ] {
        let r = record(b"{}", &[("hookbridge-received-at", edge)], None);
        let p = s.shape(&r).unwrap().unwrap();
        assert!(!p.headers.contains_key("ce-time"));
    }
}

/// Structured CloudEvents carry JSON data as the producer wrote it: a number past 64
/// bits or with a trailing zero is not rounded, keys keep their order; any JSON text
/// counts (a number no float holds included). An empty `content-type` on the record is
/// none: the sink's type applies.
#[test]
fn structured_cloudevents_carry_json_data_as_written() {
    let s = shaper("url = \"http://h/\"\nformat = \"cloudevents-structured\"");
    let data = br#"{"id":12345678901234567890123,"amount":1.10, "b":[1e400]}"#;
    let r = record(data, &[("content-type", b"application/json")], None);
    let p = s.shape(&r).unwrap().unwrap();
    let body = p.body(&r).to_vec();
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.ends_with(&format!(
            ",\"data\":{}}}",
            std::str::from_utf8(data).unwrap()
        )),
        "{text}"
    );
    let event: serde_json::Value = serde_json::from_str(&text.replace("1e400", "1")).unwrap();
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!(event["specversion"], "1.0");
    assert!(event.get("data_base64").is_none());

    for (header, want) in [(&b""[..], "application/json"), (b" ", "application/json")] {
        let r = record(b"{}", &[("content-type", header)], None);
        let p = s.shape(&r).unwrap().unwrap();
        let event: serde_json::Value = serde_json::from_slice(p.body(&r)).unwrap();
        assert_eq!(event["datacontenttype"], want, "{header:?}");
        assert_eq!(event["data"], serde_json::json!({}));
    }
    // Not JSON though typed so, or not UTF-8 inside a string: sent as base64.
    let r = record(
        b"{\"a\":\"\xff\"}",
        &[("content-type", b"application/json")],
        None,
    );
    let p = s.shape(&r).unwrap().unwrap();
    let event: serde_json::Value = serde_json::from_slice(p.body(&r)).unwrap();
    assert!(event.get("data").is_none() && event.get("data_base64").is_some());
    let r = record(b"{not json", &[("content-type", b"application/json")], None);
    let p = s.shape(&r).unwrap().unwrap();
    let event: serde_json::Value = serde_json::from_slice(p.body(&r)).unwrap();
    assert_eq!(event["data_base64"], "e25vdCBqc29u");
    assert!(event.get("data").is_none());
}

/// A record of more headers than any header map holds (25 000 tiny ones) is refused as
/// its headers are counted, not built into a map that panics; headers taken from the
/// record's content type and a CloudEvent's type count too.
#[test]
fn a_record_of_countless_headers_is_refused_as_they_are_counted() {
    let s = shaper("url = \"http://h/\"\nforward_headers = [\"x-*\"]");
    let names: Vec<String> = (0..25_000).map(|i| format!("x-{i}")).collect();
    let headers: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"1"[..])).collect();
    let r = record(b"{}", &headers, None);
    let refused = Err(Refused {
        reason: TEMPLATE,
        error: "headers-too-large",
        detail: None,
    });
    assert_eq!(s.shape(&r).map(|_| ()).map_err(classed), refused);
    let big = vec![b'a'; 40 << 10];
    let r = record(b"{}", &[("content-type", &big)], None);
    assert_eq!(s.shape(&r).map(|_| ()).map_err(classed), refused);
    let ce = shaper("url = \"http://h/\"\nformat = \"cloudevents-binary\"");
    let kind = vec![b'%'; 12 << 10]; // three times as long percent-encoded
    let r = record(b"{}", &[("hookbridge-event-type", &kind)], None);
    assert_eq!(ce.shape(&r).map(|_| ()).map_err(classed), refused);
}

/// A record whose URL or headers no request can carry is refused before anything is
/// sent: the client would fail building it (a URL past its limit), or a server could
/// break the HTTP/2 connection every other request shares over one header block.
#[test]
fn a_record_too_large_for_a_request_is_refused_before_it_is_sent() {
    let s = shaper(
        "url = \"http://h/t/{header.x-t}\"\nheaders = { X-K = \"{key}\" }\nforward_headers = [\"x-f\"]",
    );
    let refused = |error| {
        Err(Refused {
            reason: TEMPLATE,
            error,
            detail: None,
        })
    };
    let long = "a".repeat(70_000);
    let r = record(b"{}", &[("x-t", long.as_bytes())], Some(b"k"));
    assert_eq!(
        s.shape(&r).map(|_| ()).map_err(classed),
        refused("invalid-url")
    );
    // ~22 KB of text that triples when percent-encoded.
    let wide = "é".repeat(11_000);
    let r = record(b"{}", &[("x-t", wide.as_bytes())], Some(b"k"));
    assert_eq!(
        s.shape(&r).map(|_| ()).map_err(classed),
        refused("invalid-url")
    );
    // A URL the client could build still goes in the HTTP/2 header block.
    let r = record(b"{}", &[("x-t", &[b'a'; 40_000])], Some(b"k"));
    assert_eq!(
        s.shape(&r).map(|_| ()).map_err(classed),
        refused("headers-too-large")
    );
    let r = record(b"{}", &[("x-t", b"t")], Some(&[b'k'; 40 << 10]));
    assert_eq!(
        s.shape(&r).map(|_| ()).map_err(classed),
        refused("headers-too-large")
    );
    let big = vec![b'f'; 20 << 10];
    let r = record(
        b"{}",
        &[("x-t", b"t"), ("x-f", &big)],
        Some(&[b'k'; 20 << 10]),
    );
    assert_eq!(
        s.shape(&r).map(|_| ()).map_err(classed),
        refused("headers-too-large"),
        "forwarded and filled in together"
    );
    let r = record(b"{}", &[("x-t", b"t"), ("x-f", &big)], Some(b"k"));
    assert!(s.shape(&r).unwrap().is_some(), "20 KiB is fine");
}

#[test]
fn an_empty_source_header_names_the_topic_as_the_cloudevent_source() {
    let s = shaper("url = \"http://h/\"\nformat = \"cloudevents-binary\"");
    let r = record(b"{}", &[("hookbridge-source", b"")], None);
    let p = s.shape(&r).unwrap().unwrap();
    assert_eq!(p.headers["ce-source"], "/hookbridge/topics/t");
}

/// A `{json./…}` number is sent as written: an id past 64 bits is not rounded into a
/// float (another resource's URL), and a number no float holds elsewhere in the value
/// does not make the other placeholders missing.
#[test]
fn json_numbers_fill_templates_as_written() {
    let s = shaper("url = \"http://h/o/{json./id}\"\nheaders = { X-Kind = \"{json./kind}\" }");
    let r = record(
        br#"{"id":12345678901234567890123,"kind":"k","x":1e400}"#,
        &[],
        None,
    );
    let p = s.shape(&r).expect("shaped").expect("a request");
    assert_eq!(p.url.as_str(), "http://h/o/12345678901234567890123");
    assert_eq!(p.headers.get("x-kind").unwrap(), "k");
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
                .err()
                .map(classed),
            Some(Refused::new(reason, "not-json"))
        );
    }
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

/// A tombstone becomes what `tombstones` says before any template or program sees it:
/// POSTed with an empty body, finished without a request, or dead-lettered.
#[test]
fn a_tombstone_is_delivered_skipped_or_dead_lettered_as_the_sink_says() {
    let tombstone = Record {
        null_value: true,
        ..record(b"", &[], Some(b"k"))
    };
    let empty = record(b"", &[], Some(b"k"));
    let url = "url = \"http://h/{key}\"\n";
    let deliver = shaper(url);
    let prepared = deliver
        .shape(&tombstone)
        .expect("shaped")
        .expect("a request");
    assert!(prepared.body(&tombstone).is_empty());
    let skip = shaper(&format!("{url}tombstones = \"skip\""));
    assert!(skip.shape(&tombstone).expect("finished").is_none());
    assert!(
        skip.shape(&empty).expect("shaped").is_some(),
        "an empty value is not null"
    );
    let dead = shaper(&format!(
        "{url}tombstones = \"dead-letter\"\ndlq = {{ topic = \"t.dlq\" }}"
    ));
    let Err(refused) = dead.shape(&tombstone) else {
        panic!("a tombstone is refused")
    };
    assert_eq!((refused.reason, refused.error), ("tombstone", "null-value"));
}

/// A refusal's reason and class, without its detail.
fn classed(r: Refused) -> Refused {
    Refused { detail: None, ..r }
}

/// A template's refusal says which part could not be filled and why, never the
/// record's values.
#[test]
fn a_template_refusal_names_the_part_that_could_not_be_filled() {
    let s = shaper("url = \"http://h/t/{header.x-t}\"\nheaders = { X-K = \"{header.x-k}\" }");
    let detail = |r: &Record| s.shape(r).err().and_then(|r| r.detail);
    let r = record(b"{}", &[("x-k", b"secret-value")], None);
    assert_eq!(
        detail(&r).as_deref(),
        Some("url: the record has no value for `{header.x-t}`")
    );
    let r = record(b"{}", &[("x-t", b"secret-value")], None);
    assert_eq!(
        detail(&r).as_deref(),
        Some("header x-k: the record has no value for `{header.x-k}`")
    );
    let r = record(b"{}", &[("x-t", b"secret-value"), ("x-k", b"a\nb")], None);
    let said = detail(&r).expect("a detail");
    assert!(
        said.starts_with("header x-k: the filled-in value is not a header value"),
        "{said}"
    );
    // A value the URL takes, in a URL that cannot be sent: named by its kind only.
    for bad in ["..".to_owned(), "secret-value".repeat(6_000)] {
        let r = record(b"{}", &[("x-t", bad.as_bytes()), ("x-k", b"k")], None);
        let said = detail(&r).expect("a detail");
        assert!(said.starts_with("url: "), "{said}");
        assert!(!said.contains("secret-value"), "{said}");
    }
}
