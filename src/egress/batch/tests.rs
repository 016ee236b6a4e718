use super::*;
use proptest::prelude::*;

fn rules(layout: Layout, items: Items) -> Rules {
    Rules {
        max_records: 3,
        max_bytes: 64,
        max_wait: Duration::from_millis(50),
        layout,
        items,
    }
}

/// Keys of the batches built here: their items are made, never their value.
impl Valued for () {
    fn value(&self) -> &[u8] {
        &[]
    }
}

impl Valued for i32 {
    fn value(&self) -> &[u8] {
        &[]
    }
}

/// The item `item` gives `body`, as bytes.
fn item_bytes(r: &Rules, origin: Origin<'_>, body: &Bytes) -> Result<Bytes, NotJson> {
    item(r, origin, body, false).map(|made| made.unwrap_or_else(|| body.clone()))
}

fn origin(offset: i64) -> Origin<'static> {
    Origin {
        webhook_id: "msg_\"1\"",
        topic: "orders",
        partition: 2,
        offset,
    }
}

#[test]
fn a_json_body_is_an_item_as_is_and_shares_the_record_s_bytes() {
    let r = rules(Layout::JsonArray, Items::Data);
    let body = Bytes::from_static(b"{\n  \"a\": 1\n}");
    assert_eq!(item(&r, origin(7), &body, false), Ok(None), "nothing made");
    let mut open = Open::new(Instant::now());
    open.push(&body[..], Item::Value);
    assert_eq!(&open.seal(&r).0[..], b"[{\n  \"a\": 1\n}]");
}

#[test]
fn a_body_that_is_not_json_is_refused() {
    for layout in [Layout::JsonArray, Layout::Ndjson] {
        for bad in [&b"plain text"[..], b"", b"{\"a\":", b"\xff\xfe", b"{} {}"] {
            let r = rules(layout, Items::Envelope);
            assert_eq!(
                item(&r, origin(1), &Bytes::copy_from_slice(bad), false),
                Err(NotJson),
                "{bad:?}"
            );
        }
    }
}

#[test]
fn ndjson_items_are_one_line_each() {
    let r = rules(Layout::Ndjson, Items::Data);
    let it = item_bytes(
        &r,
        origin(1),
        &Bytes::from_static(b"{\n \"a\": \"x\\ny\"\n}"),
    )
    .unwrap();
    assert_eq!(&it[..], br#"{  "a": "x\ny" }"#);
}

#[test]
fn an_envelope_names_the_record_and_escapes_its_id() {
    let r = rules(Layout::JsonArray, Items::Envelope);
    let it = item_bytes(&r, origin(7), &Bytes::from_static(b" [1,2] ")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&it).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"webhook_id": "msg_\"1\"", "topic": "orders", "partition": 2, "offset": 7, "data": [1, 2]})
    );
}

#[test]
fn a_batch_is_sealed_as_a_json_array_or_lines() {
    let t0 = Instant::now();
    for (layout, want) in [
        (Layout::JsonArray, &b"[{\"a\":1},2,\"x\"]"[..]),
        (Layout::Ndjson, &b"{\"a\":1}\n2\n\"x\"\n"[..]),
    ] {
        let r = rules(layout, Items::Data);
        let mut open = Open::new(t0);
        let values = [&b"{\"a\":1}"[..], b"2", b"\"x\""];
        for (k, value) in values.into_iter().enumerate() {
            let made = item(&r, origin(k as i64), value, false).unwrap();
            assert!(made.is_none(), "each value is its item as it is");
            assert!(open.fits(&r, value.len()));
            open.push(value, Item::Value);
        }
        assert!(open.is_full(&r));
        let (body, items) = open.seal(&r);
        assert_eq!(&body[..], want);
        let keys: Vec<&[u8]> = items.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, values);
        if layout == Layout::JsonArray {
            serde_json::from_slice::<serde_json::Value>(&body).unwrap();
        }
    }
}

#[test]
fn the_byte_limit_holds_except_for_one_item_alone() {
    let r = rules(Layout::JsonArray, Items::Data);
    let big = Bytes::from(format!("\"{}\"", "x".repeat(100)));
    let mut open = Open::new(Instant::now());
    assert!(open.fits(&r, big.len()), "an empty batch takes any item");
    open.push((), big.clone());
    let small = Bytes::from_static(b"1");
    assert!(!open.fits(&r, small.len()));
    let mut open = Open::new(Instant::now());
    let half = Bytes::from(format!("\"{}\"", "x".repeat(28))); // 30 bytes
    open.push((), half.clone());
    assert!(open.fits(&r, half.len()), "[30,30] is 63 bytes");
    open.push((), half.clone());
    assert!(!open.fits(&r, small.len()), "[30,30,1] is 65 bytes");
    assert!(open.seal(&r).0.len() <= r.max_bytes);
}

#[test]
fn an_item_that_fills_the_byte_limit_exactly_joins_and_one_byte_more_does_not() {
    for layout in [Layout::JsonArray, Layout::Ndjson] {
        let r = rules(layout, Items::Data);
        let first = Bytes::from_static(b"1");
        // JSON array: `[1,` + item + `]` = 64; NDJSON: `1\n` + item + `\n` = 64.
        let exact = match layout {
            Layout::JsonArray => 60,
            Layout::Ndjson => 61,
        };
        for (len, joins) in [(exact, true), (exact + 1, false)] {
            let mut open = Open::new(Instant::now());
            open.push((), first.clone());
            let item = Bytes::from(format!("\"{}\"", "x".repeat(len - 2)));
            assert_eq!(open.fits(&r, item.len()), joins, "{layout:?}, {len} bytes");
            if joins {
                open.push((), item);
                assert_eq!(open.seal(&r).0.len(), r.max_bytes, "{layout:?}");
            }
        }
    }
}

#[test]
fn a_batch_is_due_max_wait_after_its_first_item() {
    let r = rules(Layout::Ndjson, Items::Data);
    let t0 = Instant::now();
    let open = Open::<()>::new(t0);
    assert_eq!(open.due_at(&r), t0 + Duration::from_millis(50));
}

#[test]
fn per_item_statuses_are_read_only_in_the_documented_shape() {
    let ok = br#"{"results":[{"status":200},{"status":503,"error":"busy"}],"id":1}"#;
    assert_eq!(answer(ok, 2), BatchAnswer::PerItem(vec![200, 503]));
    let bom = [&b"\xEF\xBB\xBF"[..], ok].concat();
    assert_eq!(answer(&bom, 2), BatchAnswer::PerItem(vec![200, 503]));
    // Not an answer per item: the 2xx finishes every item (a search or bulk API's own
    // `results` included).
    for whole in [
        &b""[..],
        b"ok",
        b"[1,2]",
        br#""results""#,
        br#"{"ok":true}"#,
        br#"{"results":null}"#,
        br#"{"received":2}"#,
        br#"{"results":{"indexed":3}}"#,
        br#"{"results":"ok"}"#,
        br#"{"results":[{"id":"a"},{"id":"b"}]}"#,
        br#"{"results":[{"id":"a"},{"id":"b"}"#,
    ] {
        assert_eq!(answer(whole, 2), BatchAnswer::Whole, "{whole:?}");
    }
    // An answer per item that cannot be read: never taken as every item delivered.
    for bad in [
        &br#"{"results":[{"status":200},{"status":503,"error":"busy"}]}"#[..],
        br#"{"results":[{"status":200}]}"#,
        br#"{"results":[]}"#,
        br#"{"results":[{"code":200},{"status":200},{"status":200}]}"#,
        br#"{"results":[{"status":70000},{"status":200},{"status":503}]}"#,
        br#"{"results":[{"status":-1},{"status":200},{"status":503}]}"#,
        br#"{"results":[{"status":"503"},{"status":200},{"status":200}]}"#,
        br#"{"results":[{"status":null},{"status":200},{"status":200}]}"#,
        br#"{"results":[{"status":200.0},{"status":200},{"status":503}]}"#,
        br#" {"results":[{"status":200},{"sta"#,
        b"\xEF\xBB\xBF{\"results\":[{\"status\":500},{\"status\":200},{\"status\":200}",
    ] {
        assert_eq!(answer(bad, 3), BatchAnswer::Malformed, "{bad:?}");
    }
}

#[test]
fn a_later_item_of_a_lane_waits_behind_an_earlier_failure() {
    let lanes = [Some("a"), Some("b"), Some("a"), None, Some("b")];
    let out = item_outcomes(&[500, 200, 200, 200, 200], &lanes);
    assert_eq!(
        out,
        vec![
            ItemOutcome::Failed(500),
            ItemOutcome::Delivered,
            ItemOutcome::Behind,
            ItemOutcome::Delivered,
            ItemOutcome::Delivered,
        ]
    );
}

proptest! {
    /// Never is an item finished (delivered, or failed and so maybe dead-lettered) while
    /// an earlier item of its lane is not; every 2xx item of a lane with no earlier
    /// failure is delivered; a failed item keeps its status.
    #[test]
    fn per_item_outcomes_keep_lane_order(
        items in proptest::collection::vec((prop::sample::select(vec![200u16, 204, 400, 429, 500]), proptest::option::of(0u8..3)), 0..20)
    ) {
        let statuses: Vec<u16> = items.iter().map(|(s, _)| *s).collect();
        let lanes: Vec<Option<u8>> = items.iter().map(|(_, l)| *l).collect();
        let out = item_outcomes(&statuses, &lanes);
        prop_assert_eq!(out.len(), items.len());
        for (i, o) in out.iter().enumerate() {
            let ok = (200..300).contains(&statuses[i]);
            let earlier_failed = lanes[i].is_some()
                && (0..i).any(|j| lanes[j] == lanes[i] && !(200..300).contains(&statuses[j]));
            match o {
                ItemOutcome::Delivered => prop_assert!(ok && !earlier_failed),
                ItemOutcome::Behind => prop_assert!(earlier_failed),
                ItemOutcome::Failed(s) => prop_assert!(!ok && !earlier_failed && *s == statuses[i]),
            }
        }
    }

    /// A sealed JSON array parses and holds the items in order, within `max_bytes` unless
    /// it holds one item.
    #[test]
    fn sealed_arrays_parse_and_respect_the_limits(values in proptest::collection::vec(any::<i64>(), 1..12), max_bytes in 8usize..80) {
        let r = Rules { max_bytes, ..rules(Layout::JsonArray, Items::Data) };
        let mut open = Open::new(Instant::now());
        let mut joined = Vec::new();
        for v in &values {
            let it = item_bytes(&r, origin(0), &Bytes::from(v.to_string())).unwrap();
            if !open.fits(&r, it.len()) { break; }
            open.push((), it);
            joined.push(*v);
        }
        let n = open.len();
        let (body, _) = open.seal(&r);
        let parsed: Vec<i64> = serde_json::from_slice(&body).unwrap();
        prop_assert_eq!(parsed, joined);
        prop_assert!(n == 1 || body.len() <= max_bytes);
        prop_assert!(n <= r.max_records);
    }
}

#[test]
fn a_failed_item_behind_an_unfinished_one_of_its_lane_waits_for_it() {
    // "create" answered 503, "update" 404 because the order is not there yet: the
    // update goes again after the create, it is not dead-lettered ahead of it.
    let out = item_outcomes(&[503, 404], &[Some(0), Some(0)]);
    assert_eq!(out, vec![ItemOutcome::Failed(503), ItemOutcome::Behind]);
}

#[test]
fn invalid_utf8_inside_a_string_is_not_json() {
    let r = rules(Layout::JsonArray, Items::Data);
    let bad = Bytes::from_static(b"{\"a\":\"\xff\"}");
    assert_eq!(item(&r, origin(1), &bad, false), Err(NotJson));
}

#[test]
fn ndjson_keeps_every_key_and_digit_of_a_pretty_body() {
    let r = rules(Layout::Ndjson, Items::Data);
    let pretty =
        Bytes::from_static(b"{\r\n  \"z\": 123456789012345678901234567890,\n  \"a\": 1.25\n}");
    let it = item_bytes(&r, origin(1), &pretty).unwrap();
    assert!(!it.contains(&b'\n') && !it.contains(&b'\r'));
    let text = std::str::from_utf8(&it).unwrap();
    assert!(text.contains("123456789012345678901234567890"), "{text}");
    assert!(
        text.find("\"z\"") < text.find("\"a\""),
        "key order kept: {text}"
    );
}

#[test]
fn each_layout_names_its_content_type() {
    // The receiver parses the body by it: a JSON array is JSON, one item per line is not.
    assert_eq!(Layout::JsonArray.content_type(), "application/json");
    assert_eq!(Layout::Ndjson.content_type(), "application/x-ndjson");
}

#[test]
fn an_ndjson_batch_fills_to_its_byte_limit_and_not_a_byte_more() {
    // One item per line: each item costs its bytes and its newline.
    let r = rules(Layout::Ndjson, Items::Data);
    let item = |n: usize| Bytes::from(format!("\"{}\"", "x".repeat(n - 2)));
    let mut open = Open::new(Instant::now());
    open.push(1, item(31));
    assert!(
        !open.fits(&r, item(32).len()),
        "32 + 33 bytes is one past 64"
    );
    assert!(open.fits(&r, item(31).len()), "32 + 32 bytes is 64");
    open.push(2, item(31));
    assert_eq!(open.len(), 2);
    let mut sealed = Open::new(Instant::now());
    sealed.push(1, item(31));
    sealed.push(2, item(31));
    assert_eq!(sealed.seal(&r).0.len(), 64);
    assert_eq!(
        open.into_keys().collect::<Vec<_>>(),
        [1, 2],
        "a given-up batch's keys"
    );
}

#[test]
fn a_batch_takes_no_more_than_max_records() {
    let r = rules(Layout::JsonArray, Items::Data);
    let one = Bytes::from_static(b"1");
    let mut open = Open::new(Instant::now());
    assert!(open.is_empty());
    for k in 0..3 {
        assert!(open.fits(&r, one.len()) && !open.is_full(&r), "record {k}");
        open.push(k, one.clone());
    }
    assert!(!open.is_empty());
    assert!(open.is_full(&r));
    assert!(!open.fits(&r, one.len()), "a fourth record");
}

/// A sink may hold thousands of one-record batches (a URL with `{key}` in it): a batch
/// holds room for the items it has, not for `max_records`, which no budget counts.
#[test]
fn a_batch_of_one_record_holds_room_for_few() {
    let mut r = rules(Layout::JsonArray, Items::Data);
    r.max_records = 10_000;
    let mut open = Open::new(Instant::now());
    open.push(0, Bytes::from_static(b"1"));
    let (_, items) = open.seal(&r);
    assert!(items.capacity() <= 4, "{}", items.capacity());
}

/// Only a member of the top-level object counts, however the body is cut into pieces.
#[test]
fn a_results_member_is_found_at_the_top_level_only() {
    let cases: [(&[u8], bool); 9] = [
        (br#"{"items":"xx","results":[{"status":500}]}"#, true),
        (br#"{"items":[{"x":{"y":1}}],"results":[]}"#, true),
        (br#"{ "results" : []}"#, true),
        (br#"{"items":[{"results":1}],"n":2}"#, false),
        (br#"{"items":"\"results\":","n":2}"#, false),
        (br#"{"a":"results","b":1}"#, false),
        (br#"["results"]"#, false),
        (br#"{"res\u0075lts":1}"#, false),
        (br#"{"resultsx":1,"xresults":2}"#, false),
    ];
    for (body, found) in cases {
        for piece in 1..=body.len() {
            let mut scan = TopLevelResults::default();
            for part in body.chunks(piece) {
                scan.feed(part);
            }
            let text = String::from_utf8_lossy(body);
            assert_eq!(scan.found(), found, "{text} in pieces of {piece}");
        }
    }
}

/// A long top-level string is not kept: the scan holds at most the name's length,
/// whatever a receiver streams.
#[test]
fn the_results_scan_keeps_no_more_than_the_name() {
    let mut scan = TopLevelResults::default();
    scan.feed(b"{\"");
    scan.feed(&[b'r'; 10_000]);
    assert!(scan.name.len() <= b"results".len(), "{}", scan.name.len());
    scan.feed(b"\":1}");
    assert!(!scan.found());
}
