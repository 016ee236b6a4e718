//! Differential tests: requests signed by the providers' own libraries (pinned PyPI
//! packages, `scripts/sdk-vectors.sh`), changed the ways senders and attackers change
//! them (tampered, stale, future, malformed, rotated or unknown secret, empty and 1 MiB
//! bodies, non-canonical encodings), and judged by those libraries. hookbridge's verdict
//! must equal the library's, except for the deliberate differences listed here (and in
//! the README), each of which must still be observed — so a list entry cannot go stale.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hookbridge::verify::{VerifyConfig, WebhookRequest};
use serde::Deserialize;

use crate::support::broker::Broker;
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
        "github",
        "empty-body",
        true,
        "octokit refuses to verify an empty payload; a correctly signed empty body is authentic",
    ),
];

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
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sdk-vectors-{name}-{}.json", std::process::id()));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sdk-vectors.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(&out)
        .status()
        .expect("run scripts/sdk-vectors.sh");
    assert!(status.success(), "generating SDK vectors failed");
    serde_json::from_slice(&std::fs::read(&out).expect("vectors file")).expect("vectors JSON")
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
            &format!(
                "[source]\nname = \"{name}\"\npath = \"/hooks/{name}\"\ntopic = \"{topic}\"\nmax_body = \"2MiB\"\nverify = {{ {config}{tolerance} }}\n"
            ),
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
        let want = expected(v);
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
