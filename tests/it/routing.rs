//! Ingress routing by event type: webhooks of two event types land in two topics with a
//! `hookbridge-event-type` header; a type whose topic is not allowed, or a webhook
//! without a type, is refused with 400 and produced nowhere. Accepted webhooks are
//! counted by event type in `/metrics`.

use std::time::Duration;

use crate::support::broker::Broker;
use crate::support::connectors::SourceToml;
use crate::support::hookbridge::{metric, Config, Hookbridge};
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
    let source = SourceToml::new(
        "github",
        "/webhooks/github",
        &format!("{prefix}.{{event_type}}"),
    )
    .topics_allowed(&[&format!("{prefix}.push"), &format!("{prefix}.iss*")])
    .event_type("header:X-GitHub-Event")
    .verify_secrets("github", &["${GH_SECRET}"])
    .render();
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

    // Accepted webhooks are counted by event type; refused ones are not accepted.
    let m = hb.metrics().await;
    let accepted = |t: &str| {
        metric(
            &m,
            "hookbridge_ingress_accepted_total",
            &[("connector", "github"), ("event_type", t)],
        )
    };
    assert_eq!((accepted("push"), accepted("issues")), (1.0, 1.0), "{m}");
    assert_eq!(
        accepted("deployment"),
        0.0,
        "a refused type is not accepted"
    );

    let (ok, text) = hb.command(&["check"]).await;
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("topics_allowed: {prefix}.push, {prefix}.iss*")),
        "{text}"
    );
    drop(hb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_are_accepted_after_the_abuse_protection_handshake_and_routed_by_type() {
    let broker = Broker::start();
    let prefix = unique("cein");
    for t in ["order.created", "order.paid"] {
        broker.create_topic(&format!("{prefix}.{t}"), 1);
    }
    let source = SourceToml::new("grid", "/events", &format!("{prefix}.{{event_type}}"))
        .topics_allowed(&[&format!("{prefix}.order.*")])
        .set(
            "cloudevents",
            r#"{ allowed_origins = ["eventgrid.azure.net"] }"#,
        )
        .verify_secret("token", "${GRID_TOKEN}")
        .verify_set("header", "\"X-Token\"")
        .render();
    let cfg = Config::new(&broker.addr())
        .connector("grid.toml", &source)
        .env("GRID_TOKEN", "grid-token-1");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(30)).await;
    let client = reqwest::Client::new();

    let options = |origin: Option<&'static str>| {
        let mut req = client.request(reqwest::Method::OPTIONS, hb.url("/events"));
        if let Some(o) = origin {
            req = req
                .header("WebHook-Request-Origin", o)
                .header("WebHook-Request-Rate", "120");
        }
        req.send()
    };
    let ok = options(Some("eventgrid.azure.net")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["webhook-allowed-origin"].to_str().unwrap(),
        "eventgrid.azure.net"
    );
    assert!(ok.headers().contains_key("webhook-allowed-rate"));
    assert_eq!(options(Some("evil.example")).await.unwrap().status(), 403);
    assert_eq!(options(None).await.unwrap().status(), 400);

    // Binary mode: attributes in ce-* headers, the body is the data.
    let binary = client
        .post(hb.url("/events"))
        .header("X-Token", "grid-token-1")
        .header("content-type", "application/json")
        .header("ce-specversion", "1.0")
        .header("ce-id", "e-1")
        .header("ce-source", "/shop")
        .header("ce-type", "order.created")
        .body(r#"{"order":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(binary.status(), 200);
    // Structured mode: the type is in the body.
    let structured = client
        .post(hb.url("/events"))
        .header("X-Token", "grid-token-1")
        .header("content-type", "application/cloudevents+json; charset=utf-8")
        .body(r#"{"specversion":"1.0","id":"e-2","source":"/shop","type":"order.paid","data":{"order":2}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(structured.status(), 200);
    let refused = client
        .post(hb.url("/events"))
        .header("X-Token", "grid-token-1")
        .header("ce-specversion", "1.0")
        .header("ce-id", "e-3")
        .header("ce-source", "/shop")
        .header("ce-type", "user.deleted")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400, "type routed outside topics_allowed");

    let created = kafka::read(
        &broker.addr(),
        &format!("{prefix}.order.created"),
        Some(1),
        15.0,
    )
    .await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].value, br#"{"order":1}"#);
    assert_eq!(created[0].header("ce-id").as_deref(), Some("e-1"));
    assert_eq!(created[0].header("ce-source").as_deref(), Some("/shop"));
    assert_eq!(
        created[0].header("hookbridge-event-type").as_deref(),
        Some("order.created")
    );
    let paid = kafka::read(
        &broker.addr(),
        &format!("{prefix}.order.paid"),
        Some(1),
        15.0,
    )
    .await;
    assert_eq!(paid.len(), 1);
    assert!(String::from_utf8_lossy(&paid[0].value).contains("\"id\":\"e-2\""));
    drop(hb);
}
