//! Ingress routing by event type: webhooks of two event types land in two topics with a
//! `hookbridge-event-type` header; a type whose topic is not allowed, or a webhook
//! without a type, is refused with 400 and produced nowhere.

use std::time::Duration;

use crate::support::broker::Broker;
use crate::support::hookbridge::{Config, Hookbridge};
use crate::support::kafka;
use crate::support::{github_sig, unique};

const SECRET: &str = "gh-routing-secret-77a1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_routed_by_event_type_and_a_disallowed_type_is_refused() {
    let broker = Broker::start();
    let prefix = unique("route");
    for t in ["push", "issues", "deployment"] {
        broker.create_topic(&format!("{prefix}.{t}"), 1);
    }
    let source = format!(
        r#"[source]
name = "github"
path = "/webhooks/github"
topic = "{prefix}.{{event_type}}"
topics_allowed = ["{prefix}.push", "{prefix}.iss*"]
event_type = "header:X-GitHub-Event"
verify = {{ scheme = "github", secrets = ["${{GH_SECRET}}"] }}
"#
    );
    let cfg = Config::new(&broker.addr())
        .connector("github.toml", &source)
        .env("GH_SECRET", SECRET);
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(30)).await;

    let client = reqwest::Client::new();
    let send = |event: Option<&str>, body: &'static str| {
        let mut req = client
            .post(hb.url("/webhooks/github"))
            .header("content-type", "application/json")
            .header("X-Hub-Signature-256", github_sig(SECRET, body.as_bytes()))
            .body(body);
        if let Some(e) = event {
            req = req.header("X-GitHub-Event", e);
        }
        req.send()
    };
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(send(Some("push"), r#"{"n":1}"#).await.unwrap()), 200);
    assert_eq!(
        status(send(Some("issues"), r#"{"n":2}"#).await.unwrap()),
        200
    );
    assert_eq!(
        status(send(Some("deployment"), r#"{"n":3}"#).await.unwrap()),
        400,
        "a topic not in topics_allowed"
    );
    assert_eq!(
        status(send(Some("../push"), r#"{"n":4}"#).await.unwrap()),
        400,
        "not a topic name"
    );
    assert_eq!(
        status(send(None, r#"{"n":5}"#).await.unwrap()),
        400,
        "no event type"
    );

    let push = kafka::read(&broker.addr(), &format!("{prefix}.push"), Some(1), 15.0).await;
    assert_eq!(push.len(), 1);
    assert_eq!(push[0].value, br#"{"n":1}"#);
    assert_eq!(
        push[0].header("hookbridge-event-type").as_deref(),
        Some("push")
    );
    let issues = kafka::read(&broker.addr(), &format!("{prefix}.issues"), Some(1), 15.0).await;
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].value, br#"{"n":2}"#);
    assert_eq!(
        issues[0].header("hookbridge-event-type").as_deref(),
        Some("issues")
    );
    let refused = kafka::read(&broker.addr(), &format!("{prefix}.deployment"), None, 3.0).await;
    assert!(refused.is_empty(), "nothing produced for a refused type");

    let (ok, text) = hb.command(&["check"]).await;
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("topics_allowed: {prefix}.push, {prefix}.iss*")),
        "{text}"
    );
    drop(hb);
}
