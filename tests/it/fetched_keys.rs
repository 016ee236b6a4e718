//! Providers whose verification keys hookbridge fetches (Google Pub/Sub push): requests
//! signed and judged by the provider's own library (`tests/vectors/keyed.py`, against a
//! key server on loopback), sent through the binary to a real broker with the same key
//! document served from a loopback server here. hookbridge's answers must equal the
//! library's verdicts (but for the deliberate differences below), exactly the accepted
//! bodies must reach Kafka, the key server must be asked once, and a key server that
//! cannot be reached must give 503 — never 401, never 2xx.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::support::broker::Broker;
use crate::support::connectors::SourceToml;
use crate::support::hookbridge::{Config, Hookbridge};
use crate::support::{kafka, unique};

/// (case, hookbridge's verdict, why it differs from google-auth's).
const DELIBERATE: &[(&str, bool, &str)] = &[(
    "no-exp",
    false,
    "google-auth's JWKS path (PyJWT) requires no exp; a token that never expires could be replayed forever",
)];

#[derive(Deserialize)]
struct PubSub {
    jwks: String,
    audience: String,
    email: String,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    case: String,
    authorization: String,
    sdk: bool,
}

#[derive(Deserialize)]
struct Vectors {
    #[serde(rename = "google-pubsub")]
    pubsub: PubSub,
}

fn vectors() -> Vectors {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("keyed-vectors-{}.json", std::process::id()));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sdk-vectors.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(&out)
        .arg("keyed")
        .status()
        .expect("run scripts/sdk-vectors.sh");
    assert!(status.success(), "generating keyed vectors failed");
    serde_json::from_slice(&std::fs::read(&out).expect("vectors file")).expect("vectors JSON")
}

/// A loopback server answering `document` to every GET, counting them; its address.
async fn key_server(document: String) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let (hits, document) = (counted.clone(), document.clone());
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            document
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, hits)
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn pubsub_source(name: &str, topic: &str, v: &PubSub, jwks_url: &str) -> String {
    SourceToml::new(name, &format!("/hooks/{name}"), topic)
        .set(
            "verify",
            &format!(
                "{{ scheme = \"google-pubsub\", audience = \"{}\", email = \"{}\", jwks_url = \"{jwks_url}\" }}",
                v.audience, v.email
            ),
        )
        .render()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_pubsub_answers_equal_google_auth_and_a_key_server_down_is_503() {
    let vectors = vectors().pubsub;
    assert!(
        vectors.vectors.len() >= 20,
        "only {} vectors",
        vectors.vectors.len()
    );
    let (keys, hits) = key_server(vectors.jwks.clone()).await;
    let broker = Broker::start();
    let topic = unique("pubsub");
    broker.create_topic(&topic, 1);
    let cfg = Config::new(&broker.addr())
        .connector(
            "pubsub.toml",
            &pubsub_source(
                "pubsub",
                &topic,
                &vectors,
                &format!("http://{keys}/oauth2/v3/certs"),
            ),
        )
        .connector(
            "down.toml",
            &pubsub_source(
                "down",
                &topic,
                &vectors,
                &format!("http://127.0.0.1:{}/certs", closed_port()),
            ),
        );
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(30)).await;
    let client = reqwest::Client::new();
    let post = |path: &str, authorization: &str, body: String| {
        client
            .post(hb.url(path))
            .header("Authorization", authorization)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let (mut accepted, mut wrong) = (Vec::new(), Vec::new());
    for v in &vectors.vectors {
        let deliberate = DELIBERATE.iter().find(|(c, _, _)| *c == v.case);
        let want = match deliberate {
            Some((case, verdict, _)) => {
                assert_ne!(*verdict, v.sdk, "{case}: google-auth agrees now");
                *verdict
            }
            None => v.sdk,
        };
        let body = format!(
            r#"{{"message":{{"data":"e30=","messageId":"{}"}},"subscription":"projects/p/subscriptions/s"}}"#,
            v.case
        );
        let status = post("/hooks/pubsub", &v.authorization, body.clone())
            .await
            .unwrap()
            .status();
        if status.is_success() != want || !(status.is_success() || status == 401) {
            wrong.push(format!("{}: {status}, google-auth {}", v.case, v.sdk));
        }
        if status.is_success() {
            accepted.push(body.into_bytes());
        }
    }
    assert!(
        wrong.is_empty(),
        "answers differ from google-auth:\n{}",
        wrong.join("\n")
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the key set is fetched once"
    );

    // Nobody can check a signature without the keys: 503, and the provider retries. A
    // token the claims already refuse is 401 without any fetch.
    let valid = &vectors
        .vectors
        .iter()
        .find(|v| v.case == "valid")
        .unwrap()
        .authorization;
    let r = post("/hooks/down", valid, "{}".into()).await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let foreign = &vectors
        .vectors
        .iter()
        .find(|v| v.case == "wrong-audience")
        .unwrap()
        .authorization;
    assert_eq!(
        post("/hooks/down", foreign, "{}".into())
            .await
            .unwrap()
            .status(),
        401
    );

    let records = kafka::read(&broker.addr(), &topic, Some(accepted.len()), 30.0).await;
    let mut in_kafka: Vec<Vec<u8>> = records.iter().map(|r| r.value.clone()).collect();
    in_kafka.sort();
    accepted.sort();
    assert!(
        in_kafka == accepted,
        "Kafka holds other bodies than the accepted ones"
    );
}
