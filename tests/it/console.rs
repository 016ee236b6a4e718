//! The operator console over HTTP against a real broker: login, a dead-lettered record on
//! the sink and DLQ pages (escaped), redrive with CSRF, replay's dry run, and what an
//! anonymous client gets. The headless-browser run of the same flow is
//! `tests/console/console.test.mjs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::support::broker::Broker;
use crate::support::connectors::{SinkToml, SourceToml};
use crate::support::hookbridge::{Config, Hookbridge};
use crate::support::kafka;
use crate::support::receiver::{Answer, Receiver};
use crate::support::unique;

const TOKEN: &str = "console-token-5d1f0c9a7e3b";
const GH_SECRET: &str = "gh-secret-value-77aa01";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Client {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Client {
    fn new(hb: &Hookbridge) -> Self {
        Client {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: hb.admin_url(""),
            cookie: None,
        }
    }

    async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let r = req.send().await.expect("GET");
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, headers, r.text().await.expect("body"))
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let r = req.send().await.expect("POST");
        let status = r.status().as_u16();
        let set = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = r.text().await.expect("body");
        (status, set.map_or(text.clone(), |s| format!("{s}\n{text}")))
    }
}

/// The CSRF token in a page's forms.
fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..].split('"').next().expect("value").to_owned()
}

impl Client {
    /// A client logged in to `hb`'s console.
    async fn logged_in(hb: &Hookbridge) -> Client {
        let mut c = Client::new(hb);
        let (_, set) = c.post("/console/login", &[("token", TOKEN)]).await;
        c.cookie = Some(set.split(';').next().expect("cookie").to_owned());
        c
    }

    /// The replay dry run from `1h` ago on sink `orders`, once it says `says` (it counts
    /// what the group has committed, which follows the deliveries).
    async fn dry_run_saying(&self, says: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (status, _, dry) = self.get("/console/sinks/orders/replay?from=1h").await;
            assert_eq!(status, 200, "{dry}");
            if dry.contains(says) {
                return dry;
            }
            assert!(std::time::Instant::now() < deadline, "{dry}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A broker with a topic (named after `prefix`) and its DLQ topic, one partition each.
fn broker_with_dlq(prefix: &str) -> (Broker, String, String) {
    let broker = Broker::start();
    let topic = unique(prefix);
    let dlq = format!("{topic}.dlq");
    broker.create_topic(&topic, 1);
    broker.create_topic(&dlq, 1);
    (broker, topic, dlq)
}

/// A process with the console on and one sink, `orders`, from `topic` (group
/// `g-<topic>`) to `url`, with `more` lines of the sink's table.
fn with_orders_sink(broker: &Broker, topic: &str, url: &str, more: &str) -> Config {
    let sink = format!(
        "[sink]\nname = \"orders\"\ntopics = [\"{topic}\"]\ngroup_id = \"g-{topic}\"\nurl = \"{url}\"\n{more}"
    );
    Config::new(&broker.addr())
        .connector("orders.toml", &sink)
        .env("CONSOLE_TOKEN", TOKEN)
        .extra("[admin.console]\ntoken = \"${CONSOLE_TOKEN}\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_a_failure_opens_the_dead_letter_and_redrives_it() {
    let broker = Broker::start();
    let topic = unique("console");
    let dlq = format!("{topic}.dlq");
    let events = unique("console-gh");
    broker.create_topic(&topic, 1);
    broker.create_topic(&dlq, 1);
    broker.create_topic(&events, 1);
    let accept = Arc::new(AtomicBool::new(false));
    let flag = accept.clone();
    let rx = Receiver::start(move |_| {
        Answer::status(if flag.load(Ordering::SeqCst) {
            200
        } else {
            400
        })
    })
    .await;
    let sink = SinkToml::new(&topic, &rx.url)
        .max_attempts(2)
        .backoff("100ms", "200ms")
        .dlq(&dlq)
        .sign_standard_webhooks("${ORDERS_WHSEC}")
        .render();
    let source = SourceToml::new("github", "/webhooks/github", &events)
        .verify_secrets("github", &["${GH_SECRET}"])
        .render();
    let cfg = Config::new(&broker.addr())
        .connector("orders.toml", &sink)
        .connector("github.toml", &source)
        .env("ORDERS_WHSEC", WHSEC)
        .env("GH_SECRET", GH_SECRET)
        .env("CONSOLE_TOKEN", TOKEN)
        .extra("[admin.console]\ntoken = \"${CONSOLE_TOKEN}\"");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[json!({"key": "k0", "value": "<script>alert(1)</script>"})],
    )
    .await;
    assert_eq!(
        kafka::read(&broker.addr(), &dlq, Some(1), 30.0).await.len(),
        1
    );

    let mut c = Client::new(&hb);
    let mut pages = Vec::new();

    // Anonymous: every page 401, every action 403.
    for path in [
        "/console",
        "/console/api/overview",
        "/console/sinks/orders",
        "/console/sinks/orders/dlq",
        "/console/sinks/orders/dlq/0:0",
        "/console/sinks/orders/replay?from=1h",
        "/console/sources/github",
    ] {
        let (status, _, body) = c.get(path).await;
        assert_eq!(status, 401, "{path}");
        pages.push(body);
    }
    for path in [
        "/console/sinks/orders/dlq/0:0/redrive",
        "/console/sinks/orders/dlq/redrive",
        "/console/sinks/orders/replay",
        "/console/logout",
    ] {
        let (status, _) = c.post(path, &[("from", "1h")]).await;
        assert_eq!(status, 403, "{path}");
    }
    let (status, body) = c
        .post("/console/login", &[("token", "not-the-token")])
        .await;
    assert_eq!(status, 401);
    pages.push(body);

    // Login: a random session id in an HttpOnly SameSite=Strict cookie.
    let (status, set) = c.post("/console/login", &[("token", TOKEN)]).await;
    assert_eq!(status, 303, "{set}");
    let set_cookie = set.lines().next().expect("set-cookie");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(!set_cookie.contains(TOKEN), "{set_cookie}");
    c.cookie = Some(set_cookie.split(';').next().expect("pair").to_owned());

    let (status, headers, overview) = c.get("/console").await;
    assert_eq!(status, 200, "{overview}");
    let csp = headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(overview.contains("orders") && overview.contains("github"));
    assert!(!overview.contains("<script>") && !overview.contains("onclick"));
    pages.push(overview.clone());
    let (_, _, api) = c.get("/console/api/overview").await;
    let api: serde_json::Value = serde_json::from_str(&api).expect("overview json");
    assert_eq!(api["sinks"]["orders"]["dead_lettered"], 1, "{api}");

    // The failure row, the dead letter, escaped.
    let (_, _, sink_page) = c.get("/console/sinks/orders").await;
    assert!(sink_page.contains(&format!("{topic}-0-0")), "{sink_page}");
    assert!(
        sink_page.contains("dead-lettered: permanent"),
        "{sink_page}"
    );
    pages.push(sink_page);
    let (status, _, list) = c.get("/console/sinks/orders/dlq?status=4xx").await;
    assert_eq!(status, 200, "{list}");
    assert!(list.contains("/console/sinks/orders/dlq/0%3A0"), "{list}");
    pages.push(list);
    let (status, _, record) = c.get("/console/sinks/orders/dlq/0:0").await;
    assert_eq!(status, 200, "{record}");
    assert!(
        record.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{record}"
    );
    assert!(!record.contains("<script>alert"), "{record}");
    pages.push(record.clone());
    let (status, _, missing) = c.get("/console/sinks/orders/dlq/0:99").await;
    assert_eq!(status, 404, "{missing}");
    // Filters and places it cannot read are bad requests, naming what was wrong.
    let (status, _, bad) = c.get("/console/sinks/orders/dlq?reason=permanant").await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad.contains("permanent, exhausted"), "{bad}");
    let (status, _, bad) = c.get("/console/sinks/orders/dlq/zero").await;
    assert_eq!(status, 400, "{bad}");

    // Redrive: refused without the CSRF token; with it, dead-lettered again while the
    // destination refuses, delivered once it accepts.
    let redrive = "/console/sinks/orders/dlq/0:0/redrive";
    let (status, _) = c.post(redrive, &[]).await;
    assert_eq!(status, 403);
    let (status, _) = c.post(redrive, &[("csrf", "forged")]).await;
    assert_eq!(status, 403);
    let token = csrf(&record);
    let (status, body) = c.post(redrive, &[("csrf", &token)]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("DeadLettered"), "{body}");
    accept.store(true, Ordering::SeqCst);
    // Sent again (a double-click, a reloaded result page), the same dead letter is
    // refused: it was handled, and its copy from the failed try is at 0:1.
    let sent = rx.seen().len();
    let (status, body) = c.post(redrive, &[("csrf", &token)]).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already redriven"), "{body}");
    assert_eq!(rx.seen().len(), sent, "nothing was sent twice");
    let (status, body) = c
        .post("/console/sinks/orders/dlq/0:1/redrive", &[("csrf", &token)])
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Delivered"), "{body}");
    assert_eq!(rx.seen().last().map(|r| r.status), Some(200));
    let logs = hb.logs();
    assert!(
        logs.lines().any(|l| l.contains("\"actor\":\"console\"")
            && l.contains("\"action\":\"redrive\"")
            && l.contains("\"client\":\"127.0.0.1\"")),
        "actions are logged with who did them: {logs}"
    );

    // Redrive all: the CLI's redrive. Both console redrives were where the redrive group
    // resumed, so both were committed and nothing is left to send.
    let before = rx.seen().len();
    let (status, body) = c
        .post("/console/sinks/orders/redrive", &[("csrf", &token)])
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("redriven: 0;"), "{body}");
    assert_eq!(rx.seen().len(), before);
    let (status, _) = c.post("/console/sinks/orders/redrive", &[]).await;
    assert_eq!(status, 403, "redrive all needs the CSRF token too");

    // Replay: a dry run (applying it is `a_console_replay_rewinds_the_running_sink_…`).
    let (status, _, dry) = c.get("/console/sinks/orders/replay?from=1h").await;
    assert_eq!(status, 200, "{dry}");
    assert!(
        dry.contains("1 record(s) would be delivered again"),
        "{dry}"
    );
    pages.push(dry.clone());
    // A time it cannot read is refused naming the page's own field, not the CLI's option.
    let (status, _, unread) = c.get("/console/sinks/orders/replay?from=yesterday").await;
    assert_eq!(
        status, 400,
        "a time it cannot read is a bad request: {unread}"
    );
    assert!(unread.contains("expected an RFC 3339 time"), "{unread}");
    assert!(!unread.contains("--from"), "{unread}");
    let (status, _) = c
        .post("/console/sinks/orders/replay", &[("from", "1h")])
        .await;
    assert_eq!(status, 403, "a replay needs the CSRF token");

    // read_only: the same pages without actions, and the actions refused.
    assert!(hb.terminate(Duration::from_secs(20)).await.success());
    let settings = hb.dir.path().join("hookbridge.toml");
    let mut text = std::fs::read_to_string(&settings).expect("settings");
    text.push_str("\nread_only = true\n");
    std::fs::write(&settings, text).expect("settings");
    hb.spawn();
    hb.ready(Duration::from_secs(40)).await;
    let mut c = Client::new(&hb);
    let (_, set) = c.post("/console/login", &[("token", TOKEN)]).await;
    c.cookie = Some(set.split(';').next().expect("cookie").to_owned());
    let (status, _, record) = c.get("/console/sinks/orders/dlq/0:0").await;
    assert_eq!(status, 200, "{record}");
    assert!(record.contains("read-only"), "{record}");
    assert!(!record.contains("/redrive"), "no redrive button: {record}");
    let (_, _, list) = c.get("/console/sinks/orders/dlq").await;
    assert!(
        !list.contains("Redrive all"),
        "no redrive-all button: {list}"
    );
    assert!(
        !list.contains("name=\"at\"") && !list.contains("Redrive the selected"),
        "no checkboxes: {list}"
    );
    let (status, _) = c
        .post(
            "/console/sinks/orders/dlq/redrive",
            &[("csrf", &csrf(&list)), ("at", "0:0")],
        )
        .await;
    assert_eq!(status, 403, "redrive of the selected is refused");
    let (status, _) = c
        .post("/console/sinks/orders/redrive", &[("csrf", &csrf(&list))])
        .await;
    assert_eq!(status, 403);
    let (_, _, dry) = c.get("/console/sinks/orders/replay?from=1h").await;
    assert!(!dry.contains("Apply the replay"), "{dry}");
    let (status, _) = c
        .post(
            "/console/sinks/orders/replay",
            &[("csrf", &csrf(&dry)), ("from", "1h")],
        )
        .await;
    assert_eq!(status, 403, "read-only refuses a replay");
    let (status, _, source) = c.get("/console/sources/github").await;
    assert_eq!(status, 200, "{source}");
    pages.push(source);
    let (status, body) = c.post(redrive, &[("csrf", &csrf(&record))]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("read-only"), "{body}");
    pages.extend([record, dry]);

    for page in &pages {
        for secret in [TOKEN, GH_SECRET, WHSEC] {
            assert!(!page.contains(secret), "a secret on a page:\n{page}");
        }
    }
}

/// The login form is open to anyone who reaches the admin listener: a huge form is
/// refused unread, and a form trickled byte by byte is cut off, so anonymous clients
/// cannot hold the listener's connection slots (and `/healthz` with them); and one
/// address's wrong guesses throttle that address only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_forms_are_bounded_in_size_and_time() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let broker = Broker::start();
    let cfg = Config::new(&broker.addr())
        .env("CONSOLE_TOKEN", TOKEN)
        .extra("[admin.console]\ntoken = \"${CONSOLE_TOKEN}\"");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;

    let c = Client::new(&hb);
    let huge = "x".repeat(100_000);
    let (status, _) = c.post("/console/login", &[("token", &huge)]).await;
    assert_eq!(status, 413, "a 100 kB form is not read");

    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", hb.admin))
        .await
        .expect("connect");
    conn.write_all(
        b"POST /console/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\ntoken=",
    )
    .await
    .expect("send headers");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 1024];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "a stalled form is cut off, not waited for");
    let head = String::from_utf8_lossy(&answer);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");

    // Wrong guesses from one address lock that address out, not the operator at another.
    for _ in 0..10 {
        let (status, _) = c.post("/console/login", &[("token", "guess")]).await;
        assert_eq!(status, 401);
    }
    let (status, _) = c.post("/console/login", &[("token", TOKEN)]).await;
    assert_eq!(status, 429, "this address is throttled, right token or not");
    let mut other = Client::new(&hb);
    other.http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    let (status, _) = other.post("/console/login", &[("token", TOKEN)]).await;
    assert_eq!(status, 303, "another address logs in");
}

/// A console redrive in progress does not hold the process past SIGTERM: it is cut off
/// (its dead letter stays for the next redrive) and the process exits in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_redrive_in_progress_ends_with_the_process() {
    let (broker, topic, dlq) = broker_with_dlq("console-stop");
    // 400 until `hang` is set; then an answer that takes two minutes.
    let hang = Arc::new(AtomicBool::new(false));
    let flag = hang.clone();
    let rx = Receiver::start(move |_| {
        if flag.load(Ordering::SeqCst) {
            Answer {
                status: 200,
                headers: Vec::new(),
                delay: Duration::from_secs(120),
            }
        } else {
            Answer::status(400)
        }
    })
    .await;
    let sink = SinkToml::new(&topic, &rx.url)
        .timeout("15s")
        .max_attempts(3)
        .backoff("100ms", "200ms")
        .dlq(&dlq)
        .render();
    let cfg = Config::new(&broker.addr())
        .connector("orders.toml", &sink)
        .env("CONSOLE_TOKEN", TOKEN)
        .extra("[admin.console]\ntoken = \"${CONSOLE_TOKEN}\"");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[json!({"key": "k0", "value": "{}"})],
    )
    .await;
    assert_eq!(
        kafka::read(&broker.addr(), &dlq, Some(1), 30.0).await.len(),
        1
    );

    let mut c = Client::new(&hb);
    let (_, set) = c.post("/console/login", &[("token", TOKEN)]).await;
    c.cookie = Some(set.split(';').next().expect("cookie").to_owned());
    let (_, _, record) = c.get("/console/sinks/orders/dlq/0:0").await;
    let token = csrf(&record);
    hang.store(true, Ordering::SeqCst);
    let before = rx.seen().len();
    let pending = tokio::spawn(async move {
        c.post("/console/sinks/orders/redrive", &[("csrf", &token)])
            .await
    });
    rx.wait_for(Duration::from_secs(20), "the redriven request", |seen| {
        seen.len() > before
    })
    .await;
    // Unstopped, the redrive would wait for three 15 s attempts.
    let status = hb.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    pending.abort();
}

/// A destination that echoes what it was sent in its error answers, as real ones do:
/// each record's first request gets 503, later ones 400, until `accept` is set; then
/// 200. Its answers name the request's `Authorization` header and carry markup. The
/// browser test (`console_browser.rs`) uses it too.
pub(crate) struct Echoing {
    pub url: String,
    pub accept: Arc<AtomicBool>,
    /// `webhook-id`s answered 200.
    delivered: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Echoing {
    pub async fn start() -> Echoing {
        use std::collections::HashMap;
        use std::sync::Mutex;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let accept = Arc::new(AtomicBool::new(false));
        let delivered = Arc::new(Mutex::new(Vec::new()));
        let tries: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let (flag, done) = (accept.clone(), delivered.clone());
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
            let (flag, done, tries) = (flag.clone(), done.clone(), tries.clone());
            async move {
                let h = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let id = h("webhook-id");
                if flag.load(Ordering::SeqCst) {
                    done.lock().expect("lock").push(id);
                    return (axum::http::StatusCode::OK, String::new());
                }
                let nth = {
                    let mut t = tries.lock().expect("lock");
                    let n = t.entry(id).or_default();
                    *n += 1;
                    *n
                };
                if nth == 1 {
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "busy <i>try later</i>".to_owned(),
                    )
                } else {
                    (
                        axum::http::StatusCode::BAD_REQUEST,
                        format!("order <b>rejected</b>; you sent {}", h("authorization")),
                    )
                }
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Echoing {
            url,
            accept,
            delivered,
            task,
        }
    }

    pub fn delivered(&self) -> Vec<String> {
        self.delivered.lock().expect("lock").clone()
    }
}

impl Drop for Echoing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The sink page's recent failures show each failed attempt's status and the start of
/// the destination's answer, escaped and with the sink's secrets masked; the DLQ page
/// redrives the dead letters ticked on it, each with the checks of a single redrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_show_answers_and_the_selected_dead_letters_are_redriven() {
    const BEARER: &str = "orders-bearer-9f8e7d6c5b4a";
    let (broker, topic, dlq) = broker_with_dlq("console-sel");
    let dest = Echoing::start().await;
    let sink = format!(
        "[sink]\nname = \"orders\"\ntopics = [\"{topic}\"]\ngroup_id = \"g-{topic}\"\nurl = \"{}\"\nauth = {{ bearer = \"${{ORDERS_BEARER}}\" }}\nretry = {{ max_attempts = 3, initial = \"100ms\", max = \"200ms\" }}\ndlq = {{ topic = \"{dlq}\" }}\n",
        dest.url
    );
    let cfg = Config::new(&broker.addr())
        .connector("orders.toml", &sink)
        .env("ORDERS_BEARER", BEARER)
        .env("CONSOLE_TOKEN", TOKEN)
        .extra("[admin.console]\ntoken = \"${CONSOLE_TOKEN}\"");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[
            json!({"key": "k0", "value": "{}"}),
            json!({"key": "k1", "value": "{}"}),
            json!({"key": "k2", "value": "{}"}),
        ],
    )
    .await;
    assert_eq!(
        kafka::read(&broker.addr(), &dlq, Some(3), 30.0).await.len(),
        3
    );

    let mut c = Client::new(&hb);
    let mut pages = Vec::new();
    let (status, _) = c
        .post("/console/sinks/orders/dlq/redrive", &[("at", "0:0")])
        .await;
    assert_eq!(status, 403, "anonymous");
    let (_, set) = c.post("/console/login", &[("token", TOKEN)]).await;
    c.cookie = Some(set.split(';').next().expect("cookie").to_owned());

    // Recent failures: the 503 that was retried and the 400 that dead-lettered, each
    // with its answer as text, the echoed bearer token masked.
    let (_, _, sink_page) = c.get("/console/sinks/orders").await;
    assert!(sink_page.contains("<th>response</th>"), "{sink_page}");
    assert!(
        sink_page.contains("<td>503</td>")
            && sink_page.contains("busy &lt;i&gt;try later&lt;/i&gt;"),
        "{sink_page}"
    );
    assert!(
        sink_page.contains("<td>400</td>")
            && sink_page.contains("order &lt;b&gt;rejected&lt;/b&gt;; you sent [redacted]"),
        "{sink_page}"
    );
    assert!(!sink_page.contains("<b>rejected"), "{sink_page}");
    pages.push(sink_page);

    // The DLQ page: a checkbox per dead letter, tied to the redrive-selected form.
    let (_, _, list) = c.get("/console/sinks/orders/dlq").await;
    for at in ["0:0", "0:1", "0:2"] {
        assert!(
            list.contains(&format!(
                "name=\"at\" value=\"{at}\" form=\"redrive-selected\""
            )),
            "{list}"
        );
    }
    assert!(list.contains("Redrive the selected"), "{list}");
    pages.push(list.clone());
    let token = csrf(&list);
    let selected = "/console/sinks/orders/dlq/redrive";
    let (status, _) = c.post(selected, &[("at", "0:0")]).await;
    assert_eq!(status, 403, "no CSRF token");
    let (status, _) = c.post(selected, &[("csrf", &token)]).await;
    assert_eq!(status, 400, "nothing selected");

    // Still refused: the first selected is dead-lettered again and the rest are not
    // tried, so one action does not run every selected record's retry schedule.
    let (status, body) = c
        .post(selected, &[("csrf", &token), ("at", "0:2"), ("at", "0:1")])
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("DeadLettered"), "{body}");
    assert!(
        body.contains("not sent: an earlier one was not delivered"),
        "{body}"
    );
    assert!(dest.delivered().is_empty());

    // Fixed: two of the three are redriven; a selected offset with no dead letter is
    // reported and does not stop the others.
    dest.accept.store(true, Ordering::SeqCst);
    let form = [
        ("csrf", token.as_str()),
        ("at", "0:2"),
        ("at", "0:99"),
        ("at", "0:0"),
    ];
    let (status, body) = c.post(selected, &form).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("redriven: 2 of 3"), "{body}");
    let delivered = dest.delivered();
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    assert_ne!(delivered[0], delivered[1]);
    pages.push(body);
    // Sent again, nothing is sent twice.
    let (status, body) = c.post(selected, &form).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("redriven: 0 of 3"), "{body}");
    assert!(body.contains("already redriven"), "{body}");
    assert_eq!(dest.delivered().len(), 2);
    let logs = hb.logs();
    assert!(
        logs.lines().any(|l| l.contains("\"actor\":\"console\"")
            && l.contains("\"action\":\"redrive-selected\"")
            && l.contains("\"client\":\"127.0.0.1\"")
            && l.contains("\"at\":\"0:2\"")),
        "each redriven dead letter is logged with who did it: {logs}"
    );
    for page in &pages {
        for secret in [TOKEN, BEARER] {
            assert!(!page.contains(secret), "a secret on a page:\n{page}");
        }
    }
}

/// A source's page: its signature failures by reason and its event catalog, the event
/// types its accepted webhooks carried (by its `event_type` rule) with counts and first
/// and last seen, escaped; a source without the rule says it has none to catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_page_catalogs_its_event_types() {
    let broker = Broker::start();
    let events = unique("console-cat");
    broker.create_topic(&events, 1);
    let typed = format!(
        "[source]\nname = \"github\"\npath = \"/webhooks/github\"\ntopic = \"{events}\"\nevent_type = \"header:X-GitHub-Event\"\nverify = {{ scheme = \"github\", secrets = [\"${{GH_SECRET}}\"] }}\n"
    );
    let untyped = format!(
        "[source]\nname = \"plain\"\npath = \"/webhooks/plain\"\ntopic = \"{events}\"\nverify = {{ scheme = \"github\", secrets = [\"${{GH_SECRET}}\"] }}\n"
    );
    let cfg = Config::new(&broker.addr())
        .connector("github.toml", &typed)
        .connector("plain.toml", &untyped)
        .env("GH_SECRET", GH_SECRET)
        .env("CONSOLE_TOKEN", TOKEN)
        .extra("[admin.console]\ntoken = \"${CONSOLE_TOKEN}\"");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    let http = reqwest::Client::new();
    let send = |event: Option<&'static str>, secret: &'static str| {
        let body = "{\"action\":\"opened\"}";
        let mut req = http
            .post(hb.url("/webhooks/github"))
            .header(
                "X-Hub-Signature-256",
                crate::support::github_sig(secret, body.as_bytes()),
            )
            .body(body)
            .timeout(Duration::from_secs(30));
        if let Some(e) = event {
            req = req.header("X-GitHub-Event", e);
        }
        async move { req.send().await.expect("an answer").status().as_u16() }
    };
    for event in ["push", "issues", "push", "<b>odd</b>"] {
        assert_eq!(send(Some(event), GH_SECRET).await, 200, "{event}");
    }
    assert_eq!(send(None, GH_SECRET).await, 200, "no event type");
    assert_eq!(send(Some("push"), "wrong-secret").await, 401);

    let mut c = Client::new(&hb);
    let (status, _, _) = c.get("/console/sources/github").await;
    assert_eq!(status, 401, "anonymous");
    let (_, set) = c.post("/console/login", &[("token", TOKEN)]).await;
    c.cookie = Some(set.split(';').next().expect("cookie").to_owned());
    let (_, _, overview) = c.get("/console").await;
    assert!(
        overview.contains("<a href=\"/console/sources/github\">github</a>"),
        "{overview}"
    );
    let (status, _, page) = c.get("/console/sources/github").await;
    assert_eq!(status, 200, "{page}");
    let catalog = page
        .split("<table class=\"catalog\">")
        .nth(1)
        .expect("a catalog table");
    let rows: Vec<&str> = catalog.split("<tr>").skip(2).collect();
    assert!(
        rows[0].starts_with("<td><code>push</code></td><td>2</td>"),
        "the most frequent first: {page}"
    );
    assert!(
        catalog.contains("<code>issues</code></td><td>1</td>"),
        "{page}"
    );
    assert!(
        catalog.contains("<code>&lt;b&gt;odd&lt;/b&gt;</code></td><td>1</td>"),
        "{page}"
    );
    assert!(!page.contains("<b>odd"), "{page}");
    assert!(
        catalog.contains("no event type found</em></td><td>1</td>"),
        "{page}"
    );
    assert!(page.contains("header:x-github-event"), "{page}");
    assert!(page.contains("in memory, per process"), "{page}");
    assert!(
        page.contains("<td>mismatch</td><td>1</td>"),
        "signature failures by reason: {page}"
    );
    let (_, _, plain) = c.get("/console/sources/plain").await;
    assert!(plain.contains("no <code>event_type</code> rule"), "{plain}");
    let (status, _, _) = c.get("/console/sources/nope").await;
    assert_eq!(status, 404);
    for page in [&page, &plain, &overview] {
        for secret in [TOKEN, GH_SECRET] {
            assert!(!page.contains(secret), "a secret on a page:\n{page}");
        }
    }
}

/// Replay applied from the console of a process that runs the sink: the process's run
/// of the sink stops for the replay (so the group has no live member), the group moves
/// back through the code of `hookbridge replay`, and the sink runs again from there:
/// the records are delivered again, and the process is ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_replay_rewinds_the_running_sink_and_it_delivers_again() {
    let broker = Broker::start();
    let topic = unique("console-replay");
    broker.create_topic(&topic, 1);
    let rx = Receiver::start(|_| Answer::status(200)).await;
    let cfg = with_orders_sink(&broker, &topic, &rx.url, "");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    let records: Vec<_> = (0..3)
        .map(|n| json!({"key": format!("k{n}"), "value": "{}"}))
        .collect();
    kafka::produce(&broker.addr(), &topic, &records).await;
    rx.wait_for(Duration::from_secs(30), "3 deliveries", |seen| {
        seen.len() >= 3
    })
    .await;

    let c = Client::logged_in(&hb).await;
    let dry = c
        .dry_run_saying("3 record(s) would be delivered again")
        .await;
    assert!(dry.contains("Apply the replay"), "{dry}");
    // The form applies the time the dry run showed, not "1h" again from a later now.
    let marker = "type=\"hidden\" name=\"from\" value=\"";
    let at = dry
        .find(marker)
        .map(|i| i + marker.len())
        .expect("a from field");
    let from = &dry[at..at + dry[at..].find('"').unwrap_or(0)];
    assert!(
        humantime::parse_rfc3339(from).is_ok(),
        "the dry run's time, as RFC 3339: {from:?}"
    );
    let (status, body) = c
        .post(
            "/console/sinks/orders/replay",
            &[("csrf", &csrf(&dry)), ("from", from)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("→ offset 0 (was 3)"), "{body}");
    assert!(body.contains("runs the sink again"), "{body}");
    rx.wait_for(Duration::from_secs(30), "the 3 records again", |seen| {
        seen.iter().filter(|r| r.nth == 2).count() == 3
    })
    .await;
    hb.ready(Duration::from_secs(20)).await;
    let logs = hb.logs();
    assert!(
        logs.contains("sink started again after a console replay"),
        "{logs}"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("\"action\":\"replay\"") && l.contains("\"client\":\"127.0.0.1\"")),
        "{logs}"
    );
    // A new record after the replay is delivered once, as usual.
    kafka::produce(
        &broker.addr(),
        &topic,
        &[json!({"key": "k9", "value": "{}"})],
    )
    .await;
    rx.wait_for(Duration::from_secs(30), "the record after", |seen| {
        seen.len() == 7
    })
    .await;
}

/// While another process runs the sink, a console replay is refused as the command's
/// is, nothing moves, and this process's run of the sink, stopped for the attempt, runs
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_replay_is_refused_while_another_process_runs_the_sink() {
    let broker = Broker::start();
    let topic = unique("console-replay2");
    broker.create_topic(&topic, 2);
    let rx = Receiver::start(|_| Answer::status(200)).await;
    let cfg = with_orders_sink(&broker, &topic, &rx.url, "");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    let mut other = Hookbridge::start(&cfg);
    other.ready(Duration::from_secs(40)).await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[json!({"key": "k0", "value": "{}"})],
    )
    .await;
    rx.wait_for(Duration::from_secs(30), "the record", |seen| {
        seen.len() == 1
    })
    .await;

    let c = Client::logged_in(&hb).await;
    let one = "1 record(s) would be delivered again";
    let dry = c.dry_run_saying(one).await;
    let (status, body) = c
        .post(
            "/console/sinks/orders/replay",
            &[("csrf", &csrf(&dry)), ("from", "1h")],
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("live member"), "{body}");
    let (_, _, after) = c.get("/console/sinks/orders/replay?from=1h").await;
    assert!(after.contains(one), "nothing moved: {after}");
    // This process runs the sink again: with the other one gone, it takes every
    // partition and delivers what comes next.
    hb.ready(Duration::from_secs(20)).await;
    assert!(other.terminate(Duration::from_secs(20)).await.success());
    kafka::produce(
        &broker.addr(),
        &topic,
        &[
            json!({"key": "k1", "value": "{}"}),
            json!({"key": "k2", "value": "{}"}),
            json!({"key": "k3", "value": "{}"}),
        ],
    )
    .await;
    rx.wait_for(Duration::from_secs(30), "the records after", |seen| {
        let ids: std::collections::HashSet<String> =
            seen.iter().map(|r| r.header("webhook-id")).collect();
        ids.len() == 4
    })
    .await;
    assert!(hb
        .logs()
        .contains("sink started again after a console replay"));
}

/// The client that applied a replay goes away while this process's run of the sink is
/// still draining (axum drops its request): the replay still happens, is logged with
/// who asked for it, and the sink runs again and delivers what comes next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_replay_whose_client_goes_away_mid_drain_still_runs_the_sink_again() {
    let broker = Broker::start();
    let topic = unique("console-replay3");
    broker.create_topic(&topic, 1);
    // The first delivery is answered late, so the sink's drain outlasts the request.
    let rx = Receiver::start(|r| {
        let mut a = Answer::status(200);
        if r.nth == 1 && r.header("webhook-id").ends_with("-0-0") {
            a.delay = Duration::from_secs(5);
        }
        a
    })
    .await;
    let cfg = with_orders_sink(&broker, &topic, &rx.url, "");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[json!({"key": "k0", "value": "{}"})],
    )
    .await;
    rx.wait_for(Duration::from_secs(30), "the record in flight", |seen| {
        seen.len() == 1
    })
    .await;

    let c = Client::logged_in(&hb).await;
    let (_, _, page) = c.get("/console/sinks/orders/replay").await;
    let token = csrf(&page);
    let applying = tokio::spawn(async move {
        c.post(
            "/console/sinks/orders/replay",
            &[("csrf", &token), ("from", "1h")],
        )
        .await
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !hb.logs().contains("stopping the sink for a console replay") {
        assert!(std::time::Instant::now() < deadline, "{}", hb.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!applying.is_finished(), "the drain is still waiting");
    applying.abort();

    rx.wait_for(Duration::from_secs(30), "k0 delivered again", |seen| {
        seen.iter()
            .filter(|r| r.header("webhook-id").ends_with("-0-0"))
            .count()
            == 2
    })
    .await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[json!({"key": "k1", "value": "{}"})],
    )
    .await;
    rx.wait_for(
        Duration::from_secs(30),
        "the record after the replay",
        |seen| {
            seen.iter()
                .any(|r| r.header("webhook-id").ends_with("-0-1"))
        },
    )
    .await;
    hb.ready(Duration::from_secs(20)).await;
    let logs = hb.logs();
    assert!(
        logs.lines().any(|l| l.contains("\"action\":\"replay\"")
            && l.contains("\"client\":\"127.0.0.1\"")
            && l.contains("console action")),
        "{logs}"
    );
}

/// The dead-letter list pages back: past the newest 100, a link lists the older ones,
/// with the same filters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_list_pages_back_to_older_dead_letters() {
    let (broker, topic, dlq) = broker_with_dlq("console-pages");
    let rx = Receiver::start(|_| Answer::status(400)).await;
    let cfg = with_orders_sink(
        &broker,
        &topic,
        &rx.url,
        &format!("dlq = {{ topic = \"{dlq}\" }}"),
    );
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    let records: Vec<_> = (0..105)
        .map(|i| json!({"key": format!("k{i}"), "value": "{}"}))
        .collect();
    kafka::produce(&broker.addr(), &topic, &records).await;
    assert_eq!(
        kafka::read(&broker.addr(), &dlq, Some(105), 30.0)
            .await
            .len(),
        105
    );

    let c = Client::logged_in(&hb).await;
    let (status, _, first) = c.get("/console/sinks/orders/dlq?status=4xx").await;
    assert_eq!(status, 200, "{first}");
    assert!(first.contains("100 of 105 matching"), "{first}");
    let link = first
        .split("href=\"")
        .filter_map(|h| h.split('"').next())
        .find(|h| h.contains("dlq?older="))
        .expect("a link to older dead letters")
        .replace("&amp;", "&");
    assert!(link.contains("status=4xx"), "the filters go along: {link}");
    let (status, _, older) = c.get(&link).await;
    assert_eq!(status, 200, "{older}");
    assert!(older.contains("5 of 5 matching (older ones)"), "{older}");
    assert!(
        !older.contains("Older dead letters"),
        "the oldest page links no further: {older}"
    );
    let shown = |page: &str| -> std::collections::HashSet<String> {
        page.split("name=\"at\" value=\"")
            .skip(1)
            .filter_map(|v| v.split('"').next())
            .map(str::to_owned)
            .collect()
    };
    let (newer, older) = (shown(&first), shown(&older));
    assert_eq!((newer.len(), older.len()), (100, 5));
    assert!(newer.is_disjoint(&older), "a dead letter on both pages");
    let (status, _, bad) = c.get("/console/sinks/orders/dlq?older=yesterday").await;
    assert_eq!(status, 400, "{bad}");
}

/// A redrive goes on to its end when the browser that asked for it goes away, and the
/// audit log still says who redrove what and how it ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_redrive_whose_client_goes_away_is_still_logged() {
    let (broker, topic, dlq) = broker_with_dlq("console-gone");
    // Refused first (dead-lettered), then taken after 2 s: the redrive outlasts its request.
    let rx = Receiver::start(|r| {
        if r.nth == 1 {
            return Answer::status(400);
        }
        let mut a = Answer::status(200);
        a.delay = Duration::from_secs(2);
        a
    })
    .await;
    let cfg = with_orders_sink(
        &broker,
        &topic,
        &rx.url,
        &format!("dlq = {{ topic = \"{dlq}\" }}"),
    );
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[json!({"key": "k0", "value": "{}"})],
    )
    .await;
    assert_eq!(
        kafka::read(&broker.addr(), &dlq, Some(1), 30.0).await.len(),
        1
    );

    let c = Client::logged_in(&hb).await;
    let (_, _, record) = c.get("/console/sinks/orders/dlq/0:0").await;
    let token = csrf(&record);
    let asking = tokio::spawn(async move {
        c.post("/console/sinks/orders/dlq/0:0/redrive", &[("csrf", &token)])
            .await
    });
    rx.wait_for(Duration::from_secs(30), "the redrive in flight", |seen| {
        seen.len() == 2
    })
    .await;
    // Who asked is logged before anything is sent.
    assert!(
        hb.logs().lines().any(|l| l.contains("\"action\":\"redrive\"")
            && l.contains("console action requested")),
        "{}",
        hb.logs()
    );
    asking.abort();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let logs = hb.logs();
        if logs.lines().any(|l| {
            l.contains("\"action\":\"redrive\"")
                && l.contains("\"client\":\"127.0.0.1\"")
                && l.contains("Delivered")
        }) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{logs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A sink that cannot start is a failed sink: `/readyz` never answers 200, and the
/// process stops with an error naming the sink, instead of running on without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_fails_at_start_is_never_ready_and_stops_the_process() {
    let broker = Broker::start();
    let topic = unique("console-failstart");
    broker.create_topic(&topic, 1);
    let sink = format!(
        "[sink]\nname = \"orders\"\ntopics = [\"{topic}\"]\nurl = \"http://127.0.0.1:9/hook\"\n"
    );
    // Each value passes alone; together librdkafka refuses to create the consumer
    // (`fetch.max.bytes` below `message.max.bytes`). The producer never sees the first.
    let cfg = Config::new(&broker.addr())
        .prop("fetch.max.bytes", "1000")
        .connector("orders.toml", &sink);
    let mut hb = Hookbridge::start(&cfg);
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(r) = client.get(hb.admin_url("/readyz")).send().await {
            assert_ne!(r.status().as_u16(), 200, "{}", hb.logs());
        }
        if let Some(status) = hb.exited() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "{}", hb.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success(), "{}", hb.logs());
    let logs = hb.logs();
    assert!(logs.contains("sink failed"), "{logs}");
    assert!(logs.contains("cannot create consumer"), "{logs}");
}

/// A sink without a DLQ holds a record the destination refuses, attempting it again at
/// the slowest pace: each of those attempts is one failure row with the status and the
/// start of the answer (escaped, the sink's secrets masked), as with a DLQ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_of_a_sink_without_a_dlq_show_their_answers() {
    const BEARER: &str = "nodlq-bearer-4b3a2918f7e6";
    let broker = Broker::start();
    let topic = unique("console-nodlq");
    broker.create_topic(&topic, 1);
    let dest = Echoing::start().await;
    let more = "auth = { bearer = \"${ORDERS_BEARER}\" }\nretry = { max_attempts = 3, initial = \"100ms\", max = \"200ms\" }\n";
    let cfg = with_orders_sink(&broker, &topic, &dest.url, more).env("ORDERS_BEARER", BEARER);
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[json!({"key": "k0", "value": "{}"})],
    )
    .await;

    let c = Client::logged_in(&hb).await;
    let held = "retrying, no dlq";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let page = loop {
        let (_, _, page) = c.get("/console/sinks/orders").await;
        if page.matches(held).count() >= 3 {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let table = &page[page.find("<h2>Recent failures</h2>").expect("failures")..];
    let table = &table[..table.find("</table>").expect("table end")];
    let rows: Vec<&str> = table.split("<tr>").skip(2).collect();
    // The first attempt's 503 was retried; the 400s after it are held.
    assert!(
        rows.iter()
            .any(|r| r.contains("<td>503</td>") && r.contains("busy &lt;i&gt;try later")),
        "{page}"
    );
    for row in rows.iter().filter(|r| !r.contains("<td>503</td>")) {
        assert!(row.contains(held), "one row per held attempt: {row}");
        assert!(row.contains("<td>400</td>"), "{row}");
        assert!(
            row.contains("order &lt;b&gt;rejected&lt;/b&gt;; you sent [redacted]"),
            "{row}"
        );
    }
    assert!(!page.contains(BEARER) && !page.contains(TOKEN), "{page}");
}
