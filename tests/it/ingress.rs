//! Ingress end to end: signed webhooks in, records read back with confluent-kafka.

use std::time::{Duration, Instant};

use crate::support::broker::Broker;
use crate::support::connectors::SourceToml;
use crate::support::hookbridge::{metric, Config, Hookbridge};
use crate::support::kafka;
use crate::support::scenario::{Scenario, Setup};
use crate::support::{github_sig, unique};

const SECRET: &str = "gh-secret-value-1f9c2e";

/// The GitHub source these tests post to.
fn github_source(topic: &str) -> SourceToml {
    SourceToml::new("github", "/webhooks/github", topic)
        .verify_secrets("github", &["${GH_SECRET}"])
        .key("header:X-GitHub-Delivery")
        .forward_headers(&["X-GitHub-Event", "X-GitHub-Delivery"])
}

/// A topic of three partitions and hookbridge running the source `source` writes.
fn setup(prefix: &str) -> Setup {
    Setup::new(prefix).partitions(3).env("GH_SECRET", SECRET)
}

async fn post(
    hb: &Hookbridge,
    body: &[u8],
    sig: Option<&str>,
    delivery: &str,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(hb.url("/webhooks/github"))
        .header("content-type", "application/json")
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", delivery)
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(body.to_vec());
    if let Some(s) = sig {
        req = req.header("X-Hub-Signature-256", s);
    }
    req.send().await.expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhook_lands_byte_identical_with_key_and_headers() {
    let Scenario {
        broker, topic, hb, ..
    } = setup("gh").source(|n| github_source(&n.topic)).await;
    // CRLF, non-UTF-8 bytes and trailing whitespace must survive untouched.
    let body: &[u8] = b"{\"ref\":\"refs/heads/main\"}\r\n\xff\xfe\x00 ";
    let resp = post(&hb, body, Some(&github_sig(SECRET, body)), "d-123").await;
    assert_eq!(resp.status(), 200);

    let records = kafka::read(&broker.addr(), &topic, Some(1), 15.0).await;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.value, body);
    assert_eq!(r.key.as_deref(), Some(&b"d-123"[..]));
    assert_eq!(r.header("X-GitHub-Event").as_deref(), Some("push"));
    assert_eq!(r.header("hookbridge-source").as_deref(), Some("github"));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        r.header("traceparent").as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    let received_at = r
        .header("hookbridge-received-at")
        .expect("received-at header");
    assert!(
        humantime::parse_rfc3339(&received_at).is_ok(),
        "{received_at}"
    );
    assert!(!hb.logs().contains(SECRET), "secret leaked into logs");
}

/// A compressed body is kept as it came, signed bytes and all, with its
/// Content-Encoding beside it: a record that holds gzip says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoded_body_lands_with_its_content_encoding() {
    let Scenario {
        broker, topic, hb, ..
    } = setup("gz").source(|n| github_source(&n.topic)).await;
    let body: &[u8] = b"\x1f\x8b\x08\x00not-really-gzip";
    let resp = reqwest::Client::new()
        .post(hb.url("/webhooks/github"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .header("X-GitHub-Delivery", "d-gz")
        .header("X-Hub-Signature-256", github_sig(SECRET, body))
        .body(body.to_vec())
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let records = kafka::read(&broker.addr(), &topic, Some(1), 15.0).await;
    assert_eq!(records[0].value, body);
    assert_eq!(
        records[0].header("content-encoding").as_deref(),
        Some("gzip")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_get_401_and_produce_nothing() {
    let Scenario {
        broker, topic, hb, ..
    } = setup("gh-bad").source(|n| github_source(&n.topic)).await;
    let body = br#"{"zen":"hi"}"#;
    let bad = [
        Some(github_sig("wrong-secret", body)),
        Some(github_sig(SECRET, b"another body")),
        Some("sha256=zz".to_owned()),
        None,
    ];
    for sig in &bad {
        let resp = post(&hb, body, sig.as_deref(), "bad").await;
        assert_eq!(resp.status(), 401, "{sig:?}");
    }
    // A valid marker after the bad ones: the topic must hold exactly this one record.
    let marker = br#"{"marker":true}"#;
    assert_eq!(
        post(&hb, marker, Some(&github_sig(SECRET, marker)), "m")
            .await
            .status(),
        200
    );
    let records = kafka::read(&broker.addr(), &topic, None, 4.0).await;
    assert_eq!(records.len(), 1, "only the valid webhook is in Kafka");
    assert_eq!(records[0].value, marker);

    let m = hb.metrics().await;
    assert_eq!(
        metric(
            &m,
            "hookbridge_signature_failures_total",
            &[("connector", "github")]
        ),
        4.0
    );
    assert_eq!(
        metric(
            &m,
            "hookbridge_ingress_requests_total",
            &[("status", "401")]
        ),
        4.0
    );
    assert_eq!(
        metric(
            &m,
            "hookbridge_ingress_requests_total",
            &[("status", "200")]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_gets_503_within_the_deadline_never_2xx() {
    let Scenario { mut broker, hb, .. } = setup("gh-down")
        .on(Broker::own())
        .source(|n| github_source(&n.topic))
        .await;
    let body = br#"{"n":1}"#;
    assert_eq!(
        post(&hb, body, Some(&github_sig(SECRET, body)), "up")
            .await
            .status(),
        200
    );
    broker.stop();
    for i in 0..3 {
        let body = format!("{{\"n\":{i}}}");
        let started = Instant::now();
        let resp = post(
            &hb,
            body.as_bytes(),
            Some(&github_sig(SECRET, body.as_bytes())),
            "down",
        )
        .await;
        let took = started.elapsed();
        assert_eq!(
            resp.status(),
            503,
            "a record that is not in Kafka never gets a 2xx"
        );
        assert!(resp.headers().contains_key("retry-after"));
        // produce_timeout is 3s in the test config; the answer comes within it (+ slack).
        assert!(took < Duration::from_secs(6), "answered after {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_for_path_method_size_rate_and_key() {
    // The shared broker's handle lives as long as the test, as in every scenario.
    let Scenario {
        broker: _broker,
        hb,
        ..
    } = setup("gh-limits")
        .source(|n| github_source(&n.topic).max_body("1KiB").rate_limit(1, 3))
        .await;
    let client = reqwest::Client::new();

    let r = client
        .post(hb.url("/webhooks/nope"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client.get(hb.url("/webhooks/github")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");

    let big = vec![b'a'; 2048];
    let r = post(&hb, &big, Some(&github_sig(SECRET, &big)), "big").await;
    assert_eq!(r.status(), 413);

    // Missing key header: verified, but the configured key cannot be extracted.
    let body = br#"{"k":1}"#;
    let r = client
        .post(hb.url("/webhooks/github"))
        .header("X-Hub-Signature-256", github_sig(SECRET, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Only verified requests are charged to the source's budget: the 400 above used one
    // of the burst of 3, the 404/405/413 none. Keep posting until the limiter answers 429.
    let mut limited = None;
    for i in 0..10 {
        let body = format!("{{\"i\":{i}}}");
        let r = post(
            &hb,
            body.as_bytes(),
            Some(&github_sig(SECRET, body.as_bytes())),
            "rl",
        )
        .await;
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), 200);
    }
    let r = limited.expect("rate limit reached within 10 requests");
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
}

/// A body trickled a byte at a time is answered 408 once it falls behind
/// `min_body_rate`, long before its declared length arrives (over a real socket hyper's
/// body waits between bytes, so this is the cut-off timer's case; a body whose bytes are
/// all ready when asked for is `body::tests`').
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_cut_off_below_the_minimum_rate() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let broker = Broker::start();
    let topic = unique("gh-trickle");
    broker.create_topic(&topic, 1);
    let cfg = Config::new(&broker.addr())
        .connector("github.toml", &github_source(&topic).render())
        .env("GH_SECRET", SECRET)
        .env("HOOKBRIDGE__HTTP__MIN_BODY_RATE", "1KiB")
        .env("HOOKBRIDGE__HTTP__BODY_TIMEOUT", "60s");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(30)).await;
    let s = tokio::net::TcpStream::connect(("127.0.0.1", hb.http))
        .await
        .unwrap();
    let (mut read, mut write) = s.into_split();
    write
        .write_all(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nX-Hub-Signature-256: sha256=00\r\n\r\n")
        .await
        .unwrap();
    // 20 bytes a second, against at least 1 KiB a second after a second's allowance.
    let trickle = tokio::spawn(async move {
        while write.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), read.read_to_end(&mut answer)).await;
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// `Transfer-Encoding: gzip, chunked` is read as chunked by the HTTP server, its body
/// still gzipped: answered 501 (RFC 9112 6.1), never produced as it came. Plain
/// `chunked` is taken as ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_coding_other_than_chunked_is_not_implemented() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let broker = Broker::start();
    let topic = unique("gh-te");
    broker.create_topic(&topic, 1);
    let cfg = Config::new(&broker.addr())
        .connector("github.toml", &github_source(&topic).render())
        .env("GH_SECRET", SECRET);
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(30)).await;
    let body = br#"{"zen":"te"}"#;
    let signature = github_sig(SECRET, body);
    let send = |coding: &'static str| {
        let signature = signature.clone();
        let port = hb.http;
        async move {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let head = format!(
                "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: te-{}\r\nX-Hub-Signature-256: {signature}\r\nTransfer-Encoding: {coding}\r\n\r\n{:x}\r\n",
                coding.len(),
                body.len()
            );
            s.write_all(head.as_bytes()).await.unwrap();
            s.write_all(body).await.unwrap();
            s.write_all(b"\r\n0\r\n\r\n").await.unwrap();
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut answer)).await;
            String::from_utf8_lossy(&answer).into_owned()
        }
    };
    for coding in ["gzip, chunked", "chunked, chunked"] {
        let answer = send(coding).await;
        assert!(answer.starts_with("HTTP/1.1 501"), "{coding}: {answer}");
    }
    let answer = send("chunked").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = send(" , chunked").await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "an empty element is none: {answer}"
    );
    // Everything that was answered 2xx, and nothing else (a read until the topic is
    // quiet, not until a count).
    let landed = kafka::read_all(&broker.addr(), &topic, 5.0).await;
    assert_eq!(landed.len(), 2, "only the chunked ones");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_headers_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let broker = Broker::start();
    let topic = unique("gh-loris");
    broker.create_topic(&topic, 1);
    let cfg = Config::new(&broker.addr())
        .connector("github.toml", &github_source(&topic).render())
        .env("GH_SECRET", SECRET)
        .env("HOOKBRIDGE__HTTP__HEADER_TIMEOUT", "1s")
        .env("HOOKBRIDGE__HTTP__MAX_HEADER_BYTES", "8KiB");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(30)).await;

    // A client that never finishes its headers is disconnected after header_timeout.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", hb.http))
        .await
        .unwrap();
    s.write_all(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    assert!(read.is_ok(), "connection still open after 5s");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Oversized headers: 431.
    let body = br#"{"k":1}"#;
    let resp = reqwest::Client::new()
        .post(hb.url("/webhooks/github"))
        .header("X-Hub-Signature-256", github_sig(SECRET, body))
        .header("X-Big", "a".repeat(20_000))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 431);
    // The listener still serves well-behaved senders.
    assert_eq!(
        post(&hb, body, Some(&github_sig(SECRET, body)), "ok")
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_serves_https_with_the_configured_certificate() {
    let broker = Broker::start();
    let topic = unique("gh-tls");
    broker.create_topic(&topic, 1);
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl CLI");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let cfg = Config::new(&broker.addr())
        .connector("github.toml", &github_source(&topic).render())
        .env("GH_SECRET", SECRET)
        .env("HOOKBRIDGE__HTTP__TLS__CERT", cert.to_str().unwrap())
        .env("HOOKBRIDGE__HTTP__TLS__KEY", key.to_str().unwrap());
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(30)).await;

    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let body = br#"{"over":"tls"}"#;
    let url = format!("https://localhost:{}/webhooks/github", hb.http);
    let resp = client
        .post(&url)
        .header("X-Hub-Signature-256", github_sig(SECRET, body))
        .header("X-GitHub-Delivery", "tls-1")
        .body(body.to_vec())
        .send()
        .await
        .expect("https request");
    assert_eq!(resp.status(), 200);
    let records = kafka::read(&broker.addr(), &topic, Some(1), 15.0).await;
    assert_eq!(records[0].value, body);
    // Plain HTTP to the TLS port gets no webhook through.
    let plain = reqwest::Client::new()
        .post(hb.url("/webhooks/github"))
        .body(body.to_vec())
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_max_in_flight_get_503_at_once() {
    let mut broker = Broker::own();
    let topic = unique("gh-cap");
    broker.create_topic(&topic, 1);
    let cfg = Config::new(&broker.addr())
        .connector("github.toml", &github_source(&topic).render())
        .env("GH_SECRET", SECRET)
        .env("HOOKBRIDGE__HTTP__MAX_IN_FLIGHT", "1");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(30)).await;
    // With the broker gone, the first request holds the only slot until produce_timeout.
    broker.stop();
    let body = br#"{"slow":1}"#;
    let sig = github_sig(SECRET, body);
    let first = post(&hb, body, Some(&sig), "first");
    let second = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let r = post(&hb, body, Some(&sig), "second").await;
        (
            r.status(),
            r.headers().contains_key("retry-after"),
            r.text().await.unwrap_or_default(),
            started.elapsed(),
        )
    };
    let (first, (status, retry_after, text, took)) = tokio::join!(first, second);
    assert_eq!(first.status(), 503);
    assert_eq!(status, 503);
    assert!(retry_after);
    assert!(text.contains("too many requests in flight"), "{text}");
    assert!(
        took < Duration::from_secs(1),
        "answered at once, took {took:?}"
    );
}

/// GitHub signs no timestamp, so a captured request verifies forever. With
/// `replay_guard` on `X-GitHub-Delivery`, a delivery acknowledged within the window (same
/// id, same body) is answered 200 again but not produced a second time; distinct
/// deliveries with identical bodies, and the same id with another body, are produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_delivery_within_the_window_is_answered_but_not_produced_again() {
    let Scenario {
        broker, topic, hb, ..
    } = setup("gh-replay")
        .source(|n| github_source(&n.topic).replay_guard("header:X-GitHub-Delivery", "10m"))
        .await;
    let body = br#"{"action":"opened","number":7}"#;
    let other = br#"{"action":"closed","number":7}"#;
    // d1 twice (a replay), then d2 with the identical body (a distinct event: two
    // pushes can have identical payloads), then d1 with another body.
    for (b, delivery) in [
        (&body[..], "d1"),
        (&body[..], "d1"),
        (&body[..], "d2"),
        (&other[..], "d1"),
    ] {
        let resp = post(&hb, b, Some(&github_sig(SECRET, b)), delivery).await;
        assert_eq!(resp.status(), 200, "{delivery}");
    }
    let records = kafka::read(&broker.addr(), &topic, None, 5.0).await;
    let mut got: Vec<(Vec<u8>, Vec<u8>)> = (records.iter())
        .map(|r| (r.key.clone().unwrap_or_default(), r.value.clone()))
        .collect();
    got.sort();
    let want = |k: &str, v: &[u8]| (k.as_bytes().to_vec(), v.to_vec());
    let mut expected = vec![want("d1", body), want("d2", body), want("d1", other)];
    expected.sort();
    assert_eq!(
        got, expected,
        "every distinct delivery once, the replay not again"
    );
}
