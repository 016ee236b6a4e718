//! Providers whose verification keys hookbridge fetches (Google Pub/Sub push, AWS SNS):
//! requests signed and judged by the provider's own library (`tests/vectors/keyed.py`
//! and `keyed-node.mjs`), and hookbridge's verdicts required to equal them (but for the
//! deliberate differences below). Pub/Sub's go through the binary to a real broker with
//! the same key document served from a loopback server here: exactly the accepted bodies
//! must reach Kafka, the key server must be asked once, and a key server that cannot be
//! reached must give 503 — never 401, never 2xx. SNS's are judged at the verifier with
//! the default certificate hosts, then SNS's message types go through the binary with a
//! loopback certificate server.

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

/// (case, hookbridge's verdict, why it differs from sns-validator's).
const SNS_DELIBERATE: &[(&str, bool, &str)] = &[
    (
        "unsubscribe-v1",
        true,
        "sns-validator signs an UnsubscribeConfirmation without its Token; AWS's docs list Token for both confirmation types",
    ),
    (
        "other-topic",
        false,
        "sns-validator checks no topic; hookbridge takes only the source's topics",
    ),
];

/// The verdict to reach: the library's, or the listed deliberate one (which must then
/// really differ from it).
fn expected(list: &[(&str, bool, &str)], case: &str, sdk: bool) -> bool {
    match list.iter().find(|(c, _, _)| *c == case) {
        Some((_, verdict, _)) => {
            assert_ne!(*verdict, sdk, "{case}: the library agrees now");
            *verdict
        }
        None => sdk,
    }
}

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
struct Sns {
    cert: String,
    cert_url: String,
    topic: String,
    vectors: Vec<SnsVector>,
}

#[derive(Deserialize)]
struct SnsVector {
    case: String,
    body: String,
    sdk: bool,
}

#[derive(Deserialize)]
struct Vectors {
    #[serde(rename = "google-pubsub")]
    pubsub: PubSub,
    #[serde(rename = "aws-sns")]
    sns: Sns,
}

/// Fresh vectors, in a file of this test's own (`name`): tests run concurrently.
fn vectors(name: &str) -> Vectors {
    crate::support::sdk_vectors(&format!("keyed-{name}"), &["keyed"])
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
    let vectors = vectors("pubsub").pubsub;
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
        let want = expected(DELIBERATE, &v.case, v.sdk);
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

#[test]
fn aws_sns_verdicts_equal_sns_validator_with_the_default_certificate_hosts() {
    use hookbridge::verify::keys::{KeyFormat, KeySet};
    use hookbridge::verify::{VerifyConfig, WebhookRequest};
    #[derive(Deserialize)]
    struct Connector {
        verify: VerifyConfig,
    }
    let sns = vectors("sns-verdicts").sns;
    assert!(
        sns.vectors.len() >= 25,
        "only {} vectors",
        sns.vectors.len()
    );
    let connector: Connector = toml::from_str(&format!(
        "verify = {{ scheme = \"aws-sns\", topics = [\"{}\"] }}",
        sns.topic
    ))
    .unwrap();
    let verifier = connector.verify.build().unwrap();
    let cert = KeySet::parse(KeyFormat::Certificate, sns.cert.as_bytes()).unwrap();
    let headers = http::HeaderMap::new();
    let mut wrong = Vec::new();
    for v in &sns.vectors {
        let request = WebhookRequest {
            headers: &headers,
            body: v.body.as_bytes(),
            url: "",
            now: 0,
        };
        // Only the vectors' certificate URL serves a certificate (as in keyed-node.mjs);
        // any other allowed URL would fail to fetch: 503, not accepted.
        let verdict = match verifier.key_source(&request) {
            Ok(Some(source)) if source.url.as_str() == sns.cert_url => {
                verifier.verify_with(&request, Some(&cert)).is_ok()
            }
            _ => false,
        };
        if verdict != expected(SNS_DELIBERATE, &v.case, v.sdk) {
            wrong.push(format!(
                "{}: hookbridge {verdict}, sns-validator {}",
                v.case, v.sdk
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "verdicts differ from sns-validator:\n{}",
        wrong.join("\n")
    );
}

/// An SNS message signed as SNS signs it (AWS's string to sign), SignatureVersion 2.
fn sns_signed(
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
    fields: &[(&str, &str)],
) -> String {
    use base64::Engine as _;
    let kind = fields.iter().find(|(k, _)| *k == "Type").unwrap().1;
    let signed: &[&str] = if kind == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let mut text = String::new();
    for name in signed {
        if let Some((_, value)) = fields.iter().find(|(k, _)| k == name) {
            text.push_str(&format!("{name}\n{value}\n"));
        }
    }
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), key).unwrap();
    signer.update(text.as_bytes()).unwrap();
    let signature = base64::engine::general_purpose::STANDARD.encode(signer.sign_to_vec().unwrap());
    let mut m: serde_json::Map<String, serde_json::Value> = (fields.iter())
        .map(|(k, v)| ((*k).to_owned(), (*v).into()))
        .collect();
    m.insert("SignatureVersion".into(), "2".into());
    m.insert("Signature".into(), signature.into());
    serde_json::Value::Object(m).to_string()
}

/// A self-signed certificate for `key`, PEM.
fn certificate(key: &openssl::pkey::PKey<openssl::pkey::Private>) -> Vec<u8> {
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "sns.amazonaws.com")
        .unwrap();
    let name = name.build();
    let mut b = openssl::x509::X509Builder::new().unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.sign(key, openssl::hash::MessageDigest::sha256()).unwrap();
    b.build().to_pem().unwrap()
}

/// SNS's three message types through the binary: a notification is produced; a
/// subscription confirmation is confirmed (its URL visited) only where
/// `confirm_subscriptions` is set and is otherwise answered and logged; neither control
/// message is produced; a tampered message is 401, and an unreachable certificate 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sns_notifications_are_produced_and_confirmations_are_not() {
    let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let cert = certificate(&key);
    let (cert_hits, confirm_hits) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (c, s) = (cert_hits.clone(), confirm_hits.clone());
    let app = axum::Router::new()
        .route(
            "/SimpleNotificationService-1.pem",
            axum::routing::get(move || {
                let (c, cert) = (c.clone(), cert.clone());
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    cert
                }
            }),
        )
        .route(
            "/",
            axum::routing::get(move || {
                let s = s.clone();
                async move {
                    s.fetch_add(1, Ordering::SeqCst);
                    "<ConfirmSubscriptionResponse/>"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let topic_arn = "arn:aws:sns:us-east-1:123456789012:orders";
    let broker = Broker::start();
    let topic = unique("sns");
    broker.create_topic(&topic, 1);
    let source = |name: &str, hosts: &str, confirm: bool| {
        SourceToml::new(name, &format!("/hooks/{name}"), &topic)
            .set(
                "verify",
                &format!(
                    "{{ scheme = \"aws-sns\", topics = [\"{topic_arn}\"], cert_hosts = [\"{hosts}\"], confirm_subscriptions = {confirm} }}"
                ),
            )
            .render()
    };
    let down = format!("127.0.0.1:{}", closed_port());
    let cfg = Config::new(&broker.addr())
        .connector("sns.toml", &source("sns", &host, true))
        .connector("manual.toml", &source("manual", &host, false))
        .connector("down.toml", &source("down", &down, false));
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(30)).await;
    let cert_url = format!("http://{host}/SimpleNotificationService-1.pem");
    let subscribe_url = format!("http://{host}/?Action=ConfirmSubscription&Token=2336412f37");
    let notification = |cert_url: &str| {
        sns_signed(
            &key,
            &[
                ("Type", "Notification"),
                ("MessageId", "m-1"),
                ("TopicArn", topic_arn),
                ("Subject", "Order placed"),
                ("Message", "{\"order\":\"o-1\"}"),
                ("Timestamp", "2026-12-04T12:00:00.000Z"),
                ("SigningCertURL", cert_url),
            ],
        )
    };
    let control = |kind: &str| {
        sns_signed(
            &key,
            &[
                ("Type", kind),
                ("MessageId", "m-2"),
                ("TopicArn", topic_arn),
                ("Token", "2336412f37"),
                ("Message", "You have chosen to subscribe"),
                ("SubscribeURL", &subscribe_url),
                ("Timestamp", "2026-12-04T12:00:00.000Z"),
                ("SigningCertURL", &cert_url),
            ],
        )
    };
    let client = reqwest::Client::new();
    let post = |path: &str, body: String| {
        client
            .post(hb.url(path))
            .header("x-amz-sns-message-type", "Notification")
            .header("Content-Type", "text/plain; charset=UTF-8")
            .body(body)
            .send()
    };
    let produced = notification(&cert_url);
    let tampered = produced.replace("o-1", "o-2");
    assert_eq!(post("/hooks/sns", tampered).await.unwrap().status(), 401);

    let subscribe = control("SubscriptionConfirmation");
    assert_eq!(
        post("/hooks/manual", subscribe.clone())
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        confirm_hits.load(Ordering::SeqCst),
        0,
        "not confirmed unless configured"
    );
    assert_eq!(post("/hooks/sns", subscribe).await.unwrap().status(), 200);
    assert_eq!(confirm_hits.load(Ordering::SeqCst), 1, "confirmed once");
    let unsubscribe = control("UnsubscribeConfirmation");
    assert_eq!(post("/hooks/sns", unsubscribe).await.unwrap().status(), 200);
    assert_eq!(
        confirm_hits.load(Ordering::SeqCst),
        1,
        "an unsubscription is not visited"
    );
    // Produced last: a control message produced before it would be read instead.
    assert_eq!(
        post("/hooks/sns", produced.clone()).await.unwrap().status(),
        200
    );
    assert_eq!(
        cert_hits.load(Ordering::SeqCst),
        1,
        "the certificate is fetched once"
    );

    // A certificate URL on the allowed host that names no certificate: a forgery, 401.
    let forged = notification(&format!("http://{host}/SimpleNotificationService-2.pem"));
    assert_eq!(post("/hooks/sns", forged).await.unwrap().status(), 401);
    // The certificate server does not answer: 503, SNS retries.
    let unreachable = notification(&format!("http://{down}/SimpleNotificationService-1.pem"));
    assert_eq!(
        post("/hooks/down", unreachable).await.unwrap().status(),
        503
    );

    let records = kafka::read(&broker.addr(), &topic, Some(1), 30.0).await;
    let values: Vec<&[u8]> = records.iter().map(|r| r.value.as_slice()).collect();
    assert_eq!(values, vec![produced.as_bytes()], "only the notification");
    assert!(
        hb.logs()
            .contains("?Action=ConfirmSubscription&Token=2336412f37"),
        "the operator is told the SubscribeURL"
    );
}
