//! Differential tests: requests signed by the providers' own libraries (pinned PyPI
//! packages, `scripts/sdk-vectors.sh`), changed the ways senders and attackers change
//! them (tampered, stale, future, malformed, rotated or unknown secret, empty and 1 MiB
//! bodies, non-canonical encodings), and judged by those libraries. hookbridge's verdict
//! must equal the library's, except for the deliberate differences listed here (and in
//! docs/providers.md), each of which must still be observed — so a list entry cannot go stale.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hookbridge::verify::{VerifyConfig, WebhookRequest};
use serde::Deserialize;

use crate::support::broker::Broker;
use crate::support::connectors::SourceToml;
use crate::support::hookbridge::{Config, Hookbridge};
use crate::support::{kafka, unique};

/// (provider, case, hookbridge's verdict, why it differs from the SDK's).
const DELIBERATE: &[(&str, &str, bool, &str)] = &[
    (
        "stripe",
        "future",
        false,
        "stripe-python rejects only old timestamps; a timestamp 10 minutes ahead is a forged or skewed clock",
    ),
    (
        "paddle",
        "future",
        false,
        "Paddle's SDK rejects only old timestamps; the same reason",
    ),
    (
        "hubspot",
        "future",
        false,
        "hubspot-api-client rejects only old timestamps; the same reason as Stripe's",
    ),
    (
        "discord",
        "stale",
        false,
        "discord-interactions checks no timestamp; hookbridge applies a 5-minute window to the signed one",
    ),
    (
        "workos",
        "other-keys",
        false,
        "the workos SDK takes whatever precedes '=' on trust; hookbridge requires the t and v1 keys",
    ),
    (
        "github",
        "empty-body",
        true,
        "octokit refuses to verify an empty payload; a correctly signed empty body is authentic",
    ),
];

/// Differences that show only when requests reach one source in turn (the Kafka test):
/// (provider, case, hookbridge's verdict, why).
const STATEFUL: &[(&str, &str, bool, &str)] = &[(
    "mailgun",
    "other-body-same-signature",
    false,
    "Mailgun signs no body; the token was accepted with the valid case's body, so another body with it is a replay",
)];

#[derive(Deserialize)]
struct Vector {
    provider: String,
    case: String,
    config: String,
    headers: Vec<(String, String)>,
    body: String,
    url: String,
    now: i64,
    sdk: bool,
}

#[derive(Deserialize)]
struct Connector {
    verify: VerifyConfig,
}

/// Fresh vectors, in a file of this test's own (`name`): tests run concurrently.
fn vectors(name: &str) -> Vec<Vector> {
    crate::support::sdk_vectors(name, &[])
}

fn hookbridge_verdict(v: &Vector) -> bool {
    let connector: Connector = toml::from_str(&format!("verify = {{ {} }}", v.config))
        .unwrap_or_else(|e| panic!("{} {}: {e}", v.provider, v.case));
    let verifier = connector
        .verify
        .build()
        .unwrap_or_else(|e| panic!("{} {}: {e:?}", v.provider, v.case));
    let mut headers = http::HeaderMap::new();
    for (name, value) in &v.headers {
        headers.append(
            http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    let body = STANDARD.decode(&v.body).unwrap();
    let request = WebhookRequest {
        headers: &headers,
        body: &body,
        url: &v.url,
        now: v.now,
    };
    verifier.verify(&request).is_ok()
}

/// The verdict hookbridge must reach: the SDK's, or the listed deliberate one (which
/// must then really differ from the SDK's).
fn expected(v: &Vector) -> bool {
    let deliberate = DELIBERATE
        .iter()
        .find(|(p, c, _, _)| *p == v.provider && *c == v.case);
    match deliberate {
        Some((_, _, verdict, _)) => {
            assert_ne!(
                *verdict, v.sdk,
                "{} {}: listed as a deliberate difference but the SDK agrees now",
                v.provider, v.case
            );
            *verdict
        }
        None => v.sdk,
    }
}

#[test]
fn verdicts_equal_the_providers_sdks() {
    let vectors = vectors("verdicts");
    assert!(vectors.len() >= 100, "only {} vectors", vectors.len());
    let wrong: Vec<String> = (vectors.iter())
        .filter(|v| hookbridge_verdict(v) != expected(v))
        .map(|v| format!("{} {}: sdk {}", v.provider, v.case, v.sdk))
        .collect();
    assert!(wrong.is_empty(), "verdicts differ:\n{}", wrong.join("\n"));
    for (provider, case, _, _) in DELIBERATE {
        assert!(
            vectors
                .iter()
                .any(|v| v.provider == *provider && v.case == *case),
            "no vector for the deliberate difference {provider} {case}"
        );
    }
}

/// The path and query a vector's request goes to: the source's path plus the query of
/// the URL it was signed for (the source's `public_url` supplies the rest).
fn path_and_query(path: &str, url: &str) -> String {
    match url.split_once('?') {
        Some((_, query)) => format!("{path}?{query}"),
        None => path.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_the_bodies_the_sdks_accept_reach_kafka() {
    let vectors = vectors("kafka");
    let broker = Broker::start();
    let topic = unique("providers");
    broker.create_topic(&topic, 1);
    // One source per distinct verify table, all producing to one topic.
    let mut sources: BTreeMap<&str, String> = BTreeMap::new();
    for v in &vectors {
        let n = sources.len();
        sources.entry(&v.config).or_insert_with(|| format!("s{n}"));
    }
    let mut cfg = Config::new(&broker.addr());
    for (config, name) in &sources {
        // Paddle's 5-second window is shorter than this test's own latency between
        // signing and sending; a wider one still refuses the stale and future vectors.
        let tolerance = if config.starts_with("scheme = \"paddle\"") {
            ", tolerance = \"1m\""
        } else {
            ""
        };
        cfg = cfg.connector(
            &format!("{name}.toml"),
            &SourceToml::new(name, &format!("/hooks/{name}"), &topic)
                .max_body("2MiB")
                // The scheme's own keys, as the table above spells them.
                .set("verify", &format!("{{ {config}{tolerance} }}"))
                .render(),
        );
    }
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(30)).await;
    let client = reqwest::Client::new();
    let mut accepted = Vec::new();
    let mut wrong = Vec::new();
    for v in &vectors {
        let name = &sources[v.config.as_str()];
        let url = hb.url(&path_and_query(&format!("/hooks/{name}"), &v.url));
        let mut request = client.post(&url).body(STANDARD.decode(&v.body).unwrap());
        for (header, value) in &v.headers {
            request = request.header(header, value);
        }
        let status = request.send().await.expect("POST").status();
        let stateful = (STATEFUL.iter()).find(|(p, c, _, _)| *p == v.provider && *c == v.case);
        let want = stateful.map_or_else(|| expected(v), |(_, _, verdict, _)| *verdict);
        if status.is_success() != want {
            wrong.push(format!("{} {}: {status}", v.provider, v.case));
        }
        if status.is_success() {
            accepted.push((name.clone(), STANDARD.decode(&v.body).unwrap()));
        }
    }
    assert!(
        wrong.is_empty(),
        "answers differ from the SDKs:\n{}",
        wrong.join("\n")
    );
    let records = kafka::read(&broker.addr(), &topic, Some(accepted.len()), 30.0).await;
    let mut in_kafka: Vec<(String, Vec<u8>)> = records
        .iter()
        .map(|r| {
            (
                r.header("hookbridge-source").unwrap_or_default(),
                r.value.clone(),
            )
        })
        .collect();
    in_kafka.sort();
    accepted.sort();
    assert_eq!(in_kafka.len(), accepted.len(), "records in Kafka");
    assert!(
        in_kafka == accepted,
        "Kafka holds other bodies than the accepted ones"
    );
}

/// Discord's two kinds of requests, signed as Discord signs them, through the listener
/// and the broker: webhook events (`PING` is type 0, an event type 1, both answered 204)
/// and interactions (`PING` is type 1; anything else is produced, then deferred). Only
/// the `PING`s stay out of Kafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_events_and_interactions_are_answered_as_discord_requires() {
    use hookbridge::verify::discord::Discord;
    const SEED: [u8; 32] = [7u8; 32];
    let key =
        openssl::pkey::PKey::private_key_from_raw_bytes(&SEED, openssl::pkey::Id::ED25519).unwrap();
    let public = hex::encode(key.raw_public_key().unwrap());
    let broker = Broker::start();
    let topic = unique("discord");
    broker.create_topic(&topic, 1);
    let source = |name: &str, scheme: &str| {
        SourceToml::new(name, &format!("/hooks/{name}"), &topic)
            .verify_public_keys(scheme, &[&public])
            .render()
    };
    let cfg = Config::new(&broker.addr())
        .connector("events.toml", &source("events", "discord-events"))
        .connector("interactions.toml", &source("interactions", "discord"));
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(30)).await;
    let client = reqwest::Client::new();
    let send = |name: &'static str, body: String| {
        let (client, url) = (client.clone(), hb.url(&format!("/hooks/{name}")));
        async move {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            let headers = Discord::sign_with(&SEED, body.as_bytes(), now).unwrap();
            let r = (client.post(url).headers(headers).body(body))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let mut produced = Vec::new();
    let ping = r#"{"version":1,"application_id":"1","type":0}"#.to_owned();
    assert_eq!(send("events", ping).await, (204, String::new()));
    for i in 0..5 {
        let event = format!(
            r#"{{"version":1,"application_id":"1","type":1,"event":{{"type":"APPLICATION_AUTHORIZED","timestamp":"2024-10-18T14:42:53.064834","data":{{"n":{i}}}}}}}"#
        );
        assert_eq!(send("events", event.clone()).await, (204, String::new()));
        produced.push(("events".to_owned(), event));
    }
    // A webhook event on an interactions source (the scheme set up before
    // discord-events existed) is refused, never answered as a PING with nothing produced.
    let misrouted = String::from_utf8(hookbridge::verify::discord::SAMPLE_EVENT.to_vec()).unwrap();
    let (status, _) = send("interactions", misrouted).await;
    assert_eq!(
        status, 400,
        "a webhook event is never acknowledged unproduced"
    );
    let ping = r#"{"type":1,"id":"1","application_id":"1","token":"t"}"#.to_owned();
    assert_eq!(
        send("interactions", ping).await,
        (200, r#"{"type":1}"#.into())
    );
    for (body, answer) in [
        (
            r#"{"type":2,"id":"2","token":"t","data":{"name":"hello"}}"#,
            r#"{"type":5}"#,
        ),
        (
            r#"{"type":3,"id":"3","token":"t","data":{"custom_id":"b"}}"#,
            r#"{"type":6}"#,
        ),
        (
            r#"{"type":5,"id":"5","token":"t","data":{"custom_id":"m"}}"#,
            r#"{"type":5}"#,
        ),
    ] {
        assert_eq!(
            send("interactions", body.to_owned()).await,
            (200, answer.to_owned())
        );
        produced.push(("interactions".to_owned(), body.to_owned()));
    }
    let records = kafka::read(&broker.addr(), &topic, Some(produced.len()), 30.0).await;
    let mut in_kafka: Vec<(String, String)> = (records.iter())
        .map(|r| {
            (
                r.header("hookbridge-source").unwrap_or_default(),
                String::from_utf8_lossy(&r.value).into_owned(),
            )
        })
        .collect();
    in_kafka.sort();
    produced.sort();
    assert_eq!(
        in_kafka, produced,
        "exactly the events and interactions, no PING"
    );
}

/// When the broker does not acknowledge, Discord's interactions and webhook events get
/// 503 — never the deferred response or the 204 that would tell Discord they were
/// delivered — while the PINGs, which produce nothing, are still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_gets_503_not_its_acknowledgement_when_kafka_does_not_ack() {
    use hookbridge::verify::discord::{Discord, SAMPLE_BODY, SAMPLE_EVENT};
    const SEED: [u8; 32] = [7u8; 32];
    let key =
        openssl::pkey::PKey::private_key_from_raw_bytes(&SEED, openssl::pkey::Id::ED25519).unwrap();
    let public = hex::encode(key.raw_public_key().unwrap());
    let mut broker = Broker::own();
    let topic = unique("discord-down");
    broker.create_topic(&topic, 1);
    let source = |name: &str, scheme: &str| {
        SourceToml::new(name, &format!("/hooks/{name}"), &topic)
            .verify_public_keys(scheme, &[&public])
            .render()
    };
    let cfg = Config::new(&broker.addr())
        .connector("events.toml", &source("events", "discord-events"))
        .connector("interactions.toml", &source("interactions", "discord"));
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(30)).await;
    broker.stop();
    let client = reqwest::Client::new();
    let send = |name: &'static str, body: &[u8]| {
        let (client, url, body) = (
            client.clone(),
            hb.url(&format!("/hooks/{name}")),
            body.to_vec(),
        );
        async move {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            let headers = Discord::sign_with(&SEED, &body, now).unwrap();
            let r = (client.post(url).headers(headers).body(body))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    assert_eq!(send("interactions", SAMPLE_BODY).await, 503);
    assert_eq!(send("events", SAMPLE_EVENT).await, 503);
    assert_eq!(send("interactions", br#"{"type":1}"#).await, 200);
    assert_eq!(
        send("events", br#"{"version":1,"application_id":"1","type":0}"#).await,
        204
    );
}

/// Microsoft Graph through the listener and the broker: the validation request is
/// answered with its token as text and produces nothing; notifications are produced only
/// when every item carries a configured `clientState`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsoft_graph_validation_is_echoed_and_client_state_checked() {
    let broker = Broker::start();
    let topic = unique("msgraph");
    broker.create_topic(&topic, 1);
    let cfg = Config::new(&broker.addr())
        .connector(
            "graph.toml",
            &SourceToml::new("graph", "/hooks/graph", &topic)
                .verify_secrets("microsoft-graph", &["${GRAPH_STATE}"])
                .render(),
        )
        .env("GRAPH_STATE", "graph-client-state-7f3a");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(30)).await;
    let client = reqwest::Client::new();
    let r = client
        .post(hb.url("/hooks/graph?validationToken=Validation%3A%20Testing%20client%20application"))
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(
        r.text().await.unwrap(),
        "Validation: Testing client application"
    );
    let good = r#"{"value":[{"subscriptionId":"s1","changeType":"created","clientState":"graph-client-state-7f3a"}]}"#;
    let forged =
        r#"{"value":[{"subscriptionId":"s1","changeType":"created","clientState":"guess"}]}"#;
    for (body, status) in [(good, 200), (forged, 401)] {
        let r = client
            .post(hb.url("/hooks/graph"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{body}");
    }
    let records = kafka::read(&broker.addr(), &topic, Some(2), 5.0).await;
    let values: Vec<&[u8]> = records.iter().map(|r| r.value.as_slice()).collect();
    assert_eq!(
        values,
        vec![good.as_bytes()],
        "only the notification with the right clientState"
    );
}

/// Azure Event Grid through the listener and the broker: the subscription validation is
/// answered with its code and produces nothing; events need the secret header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_event_grid_validation_is_answered_and_events_need_the_secret_header() {
    let broker = Broker::start();
    let topic = unique("eventgrid");
    broker.create_topic(&topic, 1);
    let cfg = Config::new(&broker.addr())
        .connector(
            "grid.toml",
            &SourceToml::new("grid", "/hooks/grid", &topic)
                .verify_secrets("azure-event-grid", &["${GRID_SECRET}"])
                .verify_set("header", "\"X-Grid-Secret\"")
                .verify_set("topics", "[\"/subscriptions/x\"]")
                .render(),
        )
        .env("GRID_SECRET", "grid-secret-value-5c2e");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(30)).await;
    let client = reqwest::Client::new();
    let validation = r#"[{"id":"2d1781af","topic":"/subscriptions/x","subject":"","data":{"validationCode":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},"eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","eventTime":"2018-01-25T22:12:19Z","metadataVersion":"1","dataVersion":"1"}]"#;
    let r = client
        .post(hb.url("/hooks/grid"))
        .header("aeg-event-type", "SubscriptionValidation")
        .body(validation)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"validationResponse":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}"#
    );
    // Someone else's topic: refused, or anybody could subscribe this endpoint.
    let foreign = validation.replace("/subscriptions/x", "/subscriptions/attacker");
    let r = client
        .post(hb.url("/hooks/grid"))
        .header("aeg-event-type", "SubscriptionValidation")
        .body(foreign)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let event = r#"[{"id":"e1","eventType":"Microsoft.Storage.BlobCreated","subject":"/blobs/a","data":{}}]"#;
    for (secret, status) in [("grid-secret-value-5c2e", 200), ("guess", 401)] {
        let r = client
            .post(hb.url("/hooks/grid"))
            .header("aeg-event-type", "Notification")
            .header("X-Grid-Secret", secret)
            .body(event)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{secret}");
    }
    let records = kafka::read(&broker.addr(), &topic, Some(2), 5.0).await;
    let values: Vec<&[u8]> = records.iter().map(|r| r.value.as_slice()).collect();
    assert_eq!(
        values,
        vec![event.as_bytes()],
        "only the authenticated event"
    );
}
