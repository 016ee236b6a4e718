//! The webhook listener's process-wide shares, through the real binary on real sockets:
//! the request-body memory budget (`http.max_body_bytes_in_flight`: past it, 503 +
//! `Retry-After` at once; its last eighth kept for addresses holding at most one largest
//! body) and the probation slots (`http.probation_slots`, 8 by default: requests from
//! addresses over `http.unverified_rate_limit` share them; past them, 429 +
//! `Retry-After`), while other addresses are served.
//!
//! Loopback gives each client address its own share (any 127.0.0.0/8 address works as
//! a source on Linux). Every wait is on an answer, never on a pause.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::connectors::SourceToml;
use crate::support::hookbridge::Hookbridge;
use crate::support::scenario::{Scenario, Setup};
use crate::support::{connect_from, github_sig, unique, wait_until};

const SECRET: &str = "gh-shares-secret-3b7e";
const PATH: &str = "/webhooks/github";

fn github(name: &str, path: &str, topic: &str) -> SourceToml {
    SourceToml::new(name, path, topic)
        .verify_secrets("github", &["${GH_SECRET}"])
        .key("header:X-GitHub-Delivery")
}

fn address(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// A client sending from `from`, each request on a new connection.
fn client_from(from: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(from))
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// What a correctly signed webhook of `body` to `path` from `client` got: status and
/// whether a `Retry-After` came with it.
async fn signed(hb: &Hookbridge, client: &reqwest::Client, path: &str, body: &[u8]) -> (u16, bool) {
    let id = unique("delivery");
    let r = client
        .post(hb.url(path))
        .header("X-Hub-Signature-256", github_sig(SECRET, body))
        .header("X-GitHub-Delivery", &id)
        .body(body.to_vec())
        .send()
        .await
        .expect("an answer");
    (r.status().as_u16(), r.headers().contains_key("retry-after"))
}

/// A request from `from` whose headers declare a 16 KiB body that never comes. Its
/// reservation (a body buffer's first allocation, 16 KiB) is taken before the body is
/// first read, which is when `Expect: 100-continue` is answered: so the 100 means the
/// bytes are held, until the test drops the connection (`http.min_body_rate = 0`: no
/// rate check cuts it off). A request refused its reservation is answered instead; its
/// answer's head is the error.
async fn hold_body(from: Ipv4Addr, port: u16) -> Result<TcpStream, String> {
    let mut s = connect_from(from, port).await.expect("connect");
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 16384\r\nExpect: 100-continue\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("send headers");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await.expect("an answer");
        assert!(n > 0, "closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    if answer.starts_with(b"HTTP/1.1 100") {
        Ok(s)
    } else {
        Err(String::from_utf8_lossy(&answer).to_lowercase())
    }
}

/// Holds 16 KiB bodies from `from` until one is refused: the address then holds all the
/// budget lets it. The refusal must be an immediate 503 with `Retry-After`.
async fn fill_from(from: Ipv4Addr, port: u16) -> Vec<TcpStream> {
    let mut held = Vec::new();
    loop {
        match hold_body(from, port).await {
            Ok(s) => held.push(s),
            Err(head) => {
                assert!(head.starts_with("http/1.1 503"), "{from}: {head}");
                assert!(head.contains("retry-after:"), "{from}: {head}");
                return held;
            }
        }
        assert!(held.len() <= 1024, "{from} was never refused");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_budget_refuses_new_requests_with_503_and_keeps_its_reserve_for_small_holders() {
    // 1 MiB of body memory, all of it open to one address: the last eighth (128 KiB) is
    // kept for addresses holding at most one largest body (64 KiB, more than a quarter
    // of the reserve). Bodies that never come hold their reservation (no rate check).
    let Scenario { hb, .. } = Setup::new("shares-body")
        .env("GH_SECRET", SECRET)
        .env("HOOKBRIDGE__HTTP__MAX_BODY_BYTES_IN_FLIGHT", "1MiB")
        .env("HOOKBRIDGE__HTTP__MAX_BODY_BYTES_PER_ADDRESS", "1MiB")
        .env("HOOKBRIDGE__HTTP__MIN_BODY_RATE", "0")
        .env("HOOKBRIDGE__HTTP__BODY_TIMEOUT", "300s")
        .source(|n| github("github", PATH, &n.topic).max_body("64KiB"))
        .await;

    // One address takes everything but the reserve: 56 bodies of 16 KiB.
    let many = fill_from(address(2), hb.http).await;
    assert_eq!(many.len(), 56, "all but the last eighth, to one address");

    // A fresh address still gets one largest body (64 KiB) from the reserve, read while
    // the other holds all it may.
    let fresh = client_from(address(3));
    let largest = format!("{{\"pad\":\"{}\"}}", "x".repeat((64 << 10) - 10));
    assert_eq!(largest.len(), 64 << 10);
    assert_eq!(
        signed(&hb, &fresh, PATH, largest.as_bytes()).await.0,
        200,
        "one largest body from a fresh address is read from the reserve"
    );

    // Two small holders take the reserve, up to one largest body each: then the whole
    // budget is held, and a new request from anyone gets 503 + Retry-After at once.
    let small_a = fill_from(address(3), hb.http).await;
    let small_b = fill_from(address(4), hb.http).await;
    assert_eq!(
        (small_a.len(), small_b.len()),
        (4, 4),
        "a small holder holds up to one largest body of the reserve"
    );
    let newcomer = client_from(address(5));
    let started = Instant::now();
    let (status, retry_after) = signed(&hb, &newcomer, PATH, b"{}").await;
    assert_eq!(status, 503, "the body budget is spent");
    assert!(retry_after, "503 without Retry-After");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at once, not queued: {:?}",
        started.elapsed()
    );

    // The budget comes back with the bodies.
    drop(many);
    wait_until(Duration::from_secs(30), "the budget given back", || async {
        signed(&hb, &newcomer, PATH, b"{}").await.0 == 200
    })
    .await;
    drop((small_a, small_b));
}

/// Puts `from` on probation for about a second: with `http.unverified_rate_limit` at 1/s
/// and a burst of 1, a wrong signature that is let through (401) followed by one that is
/// not (429) leaves the address over its budget until the next token, a second after
/// the first. (A 429 while it is still over budget from before does not count: its
/// window may be about to end.)
async fn put_on_probation(hb: &Hookbridge, from: Ipv4Addr) {
    let client = client_from(from);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = 0;
    loop {
        let r = client
            .post(hb.url(PATH))
            .header("X-Hub-Signature-256", "sha256=00")
            .body("{}")
            .send()
            .await
            .expect("an answer");
        let status = r.status().as_u16();
        if last == 401 && status == 429 {
            return;
        }
        assert!(status == 401 || status == 429, "{from}: {status}");
        assert!(
            Instant::now() < deadline,
            "{from} never went over its budget"
        );
        last = status;
    }
}

/// A verified webhook to the `held` source from `from`, sent but for its last byte.
async fn almost_sent(from: Ipv4Addr, port: u16) -> (TcpStream, u8) {
    let body = b"{\"held\":true}";
    let mut s = connect_from(from, port).await.expect("connect");
    let head = format!(
        "POST /webhooks/held HTTP/1.1\r\nHost: x\r\nX-GitHub-Delivery: held\r\nX-Hub-Signature-256: {}\r\nContent-Length: {}\r\n\r\n",
        github_sig(SECRET, body),
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("send headers");
    s.write_all(&body[..body.len() - 1])
        .await
        .expect("send body");
    (s, body[body.len() - 1])
}

/// The status of the answer on `s`.
async fn status_of(mut s: TcpStream) -> u16 {
    let mut head = [0u8; 12]; // "HTTP/1.1 503"
    s.read_exact(&mut head).await.expect("an answer");
    String::from_utf8_lossy(&head[9..])
        .parse()
        .expect("a status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_on_probation_share_eight_slots_while_others_are_served() {
    // Two GitHub sources: `held` produces to a topic that does not exist (and may not be
    // created), so each of its verified requests holds its probation slot until
    // produce_timeout; `github` produces normally. Probation slots: the defaults (8 in
    // all, 2 per address).
    let missing = unique("shares-missing");
    let held_source = github("held", "/webhooks/held", &missing).render();
    let Scenario { hb, .. } = Setup::new("shares-probation")
        .env("GH_SECRET", SECRET)
        .env("HOOKBRIDGE__HTTP__UNVERIFIED_RATE_LIMIT__PER_SECOND", "1")
        .env("HOOKBRIDGE__HTTP__UNVERIFIED_RATE_LIMIT__BURST", "1")
        .env("HOOKBRIDGE__HTTP__MIN_BODY_RATE", "0")
        .env("HOOKBRIDGE__HTTP__BODY_TIMEOUT", "120s")
        .env("HOOKBRIDGE__KAFKA__PRODUCE_TIMEOUT", "30s")
        .env("HOOKBRIDGE__SHUTDOWN__DRAIN_TIMEOUT", "60s")
        .config(move |c| {
            c.connector("held.toml", &held_source)
                .prop("allow.auto.create.topics", "false")
        })
        .source(|n| github("github", PATH, &n.topic))
        .await;

    // Eight addresses, one verified request each to `held`: the body is completed (and
    // the slot taken) while the address is on probation.
    let probation: Vec<Ipv4Addr> = (2..=10).map(address).collect();
    let mut holding = Vec::new();
    for &a in &probation[..8] {
        let (mut s, last) = almost_sent(a, hb.http).await;
        put_on_probation(&hb, a).await;
        s.write_all(&[last]).await.expect("send the last byte");
        holding.push(s);
    }

    // A ninth address on probation is refused once the eight slots are held (until the
    // last of them is taken it may still be served).
    let ninth = client_from(probation[8]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let retry_after = loop {
        put_on_probation(&hb, probation[8]).await;
        let (status, retry_after) = signed(&hb, &ninth, PATH, b"{\"ninth\":1}").await;
        if status == 429 {
            break retry_after;
        }
        assert_eq!(status, 200, "the ninth address before the slots were full");
        assert!(
            Instant::now() < deadline,
            "a ninth address on probation is still served: more than 8 slots"
        );
    };
    assert!(retry_after, "429 without Retry-After");

    // Meanwhile an address in good standing is served as usual.
    let good = client_from(address(1));
    assert_eq!(
        signed(&hb, &good, PATH, b"{\"good\":1}").await.0,
        200,
        "an address not on probation is served"
    );

    // Each of the eight had its slot: none was refused (429), and none could be
    // acknowledged (the topic does not exist).
    for s in holding {
        let status = status_of(s).await;
        assert!(
            status != 429 && !(200..300).contains(&status),
            "a request holding a probation slot got {status}"
        );
    }
    // The slots are given back with the answers.
    put_on_probation(&hb, probation[8]).await;
    assert_eq!(
        signed(&hb, &ninth, PATH, b"{\"ninth\":2}").await.0,
        200,
        "a probation slot given back"
    );
}
