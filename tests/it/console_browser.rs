//! The operator console in headless Chromium (`tests/console/console.test.mjs`, driven
//! with playwright-core through `scripts/console-browser.sh`): log in, a destination
//! answering 503 then 400 gives failure rows with its answers as text, the dead-lettered
//! record opens with its `<script>` body as text, it is redriven once the destination is
//! fixed and delivered, a second one is ticked and redriven as selected; the source page
//! lists its event types; a replay is applied and both records are delivered again;
//! anonymous requests get 401/403, a POST without the CSRF token 403, `read_only` hides
//! and refuses actions, and no secret value is on any page. Takes the screenshots of
//! docs/operations.md, written to `docs/console/` only when
//! `HOOKBRIDGE_UPDATE_SCREENSHOTS` is set (a test run leaves the work tree as it was).

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

use crate::console::Echoing;
use crate::support::broker::Broker;
use crate::support::connectors::{SinkToml, SourceToml};
use crate::support::hookbridge::{Config, Hookbridge};
use crate::support::kafka;
use crate::support::receiver::{Answer, Receiver};
use crate::support::{github_sig, unique};

const TOKEN: &str = "console-token-b7e2a94d1c60";
const GH_SECRET: &str = "gh-secret-value-3c9d5e";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Runs the browser script in `mode` against `hb`; panics with its output on failure.
async fn browse(hb: &Hookbridge, mode: &str, fix_url: &str, record_id: &str) {
    let root = env!("CARGO_MANIFEST_DIR");
    let scratch = tempfile::tempdir().expect("a directory for the screenshots");
    let shots = match std::env::var_os("HOOKBRIDGE_UPDATE_SCREENSHOTS") {
        Some(_) => format!("{root}/docs/console"),
        None => scratch.path().display().to_string(),
    };
    std::fs::create_dir_all(&shots).expect("the screenshots' directory");
    let mut cmd = tokio::process::Command::new(format!("{root}/scripts/console-browser.sh"));
    cmd.env("CONSOLE_BASE", hb.admin_url(""))
        .env("CONSOLE_TOKEN", TOKEN)
        .env("FIX_URL", fix_url)
        .env("SECRETS", format!("{TOKEN},{GH_SECRET},{WHSEC}"))
        .env("RECORD_ID", record_id)
        .env("MODE", mode)
        .kill_on_drop(true);
    if mode == "full" {
        cmd.env("SCREENSHOTS", &shots);
    }
    let out = tokio::time::timeout(Duration::from_secs(240), cmd.output())
        .await
        .expect("the browser test ends within 4 minutes")
        .expect("run scripts/console-browser.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser test ({mode}):\n{text}");
    eprintln!("{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_browser_from_failure_to_redrive() {
    let broker = Broker::start();
    let topic = unique("console-ui");
    let dlq = format!("{topic}.dlq");
    let events = unique("console-ui-gh");
    for t in [&topic, &dlq, &events] {
        broker.create_topic(t, 1);
    }
    // Each record's first attempt gets 503 (retried), the next 400 (dead-lettered),
    // until fixed; the answers carry markup.
    let dest = Echoing::start().await;
    // Any request here fixes the destination: the browser script calls it.
    let flag = dest.accept.clone();
    let fix = Receiver::start(move |_| {
        flag.store(true, Ordering::SeqCst);
        Answer::status(200)
    })
    .await;
    let sink = SinkToml::new(&topic, &dest.url)
        .max_attempts(3)
        .backoff("100ms", "200ms")
        .dlq(&dlq)
        .sign_standard_webhooks("${ORDERS_WHSEC}")
        .render();
    let source = SourceToml::new("github", "/webhooks/github", &events)
        .event_type("header:X-GitHub-Event")
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
    // A second dead letter, after the first: DLQ 0:1, for "redrive the selected".
    kafka::produce(
        &broker.addr(),
        &topic,
        &[json!({"key": "k1", "value": "{}"})],
    )
    .await;
    assert_eq!(
        kafka::read(&broker.addr(), &dlq, Some(2), 30.0).await.len(),
        2
    );
    // Webhooks for the source page's event catalog, and one signature failure.
    let http = reqwest::Client::new();
    for (event, secret) in [
        ("push", GH_SECRET),
        ("push", GH_SECRET),
        ("<i>ping</i>", GH_SECRET),
        ("push", "not-the-secret"),
    ] {
        let body = "{}";
        let status = http
            .post(hb.url("/webhooks/github"))
            .header("X-GitHub-Event", event)
            .header("X-Hub-Signature-256", github_sig(secret, body.as_bytes()))
            .body(body)
            .send()
            .await
            .expect("an answer")
            .status()
            .as_u16();
        assert_eq!(status, if secret == GH_SECRET { 200 } else { 401 });
    }

    let record_id = format!("{topic}-0-0");
    browse(&hb, "full", &fix.url, &record_id).await;
    // Both redrives reached the fixed destination, then the replay delivered both
    // records again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while dest.delivered().len() < 4 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = format!("{topic}-0-1");
    let mut replayed = dest.delivered().split_off(2);
    replayed.sort();
    assert_eq!(
        (dest.delivered()[..2].to_vec(), replayed),
        (
            vec![record_id.clone(), second.clone()],
            vec![record_id.clone(), second]
        ),
    );
    assert!(hb.logs().contains("\"actor\":\"console\""));

    // The same console, read-only.
    assert!(hb.terminate(Duration::from_secs(20)).await.success());
    let settings = hb.dir.path().join("hookbridge.toml");
    let mut text = std::fs::read_to_string(&settings).expect("settings");
    text.push_str("\nread_only = true\n");
    std::fs::write(&settings, text).expect("settings");
    hb.spawn();
    hb.ready(Duration::from_secs(40)).await;
    let before = dest.delivered().len();
    browse(&hb, "read-only", &fix.url, &record_id).await;
    assert_eq!(dest.delivered().len(), before, "read-only sent nothing");
}
