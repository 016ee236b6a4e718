//! The router without a socket: every reply decided before the producer is reached.
//! The producer points at a closed port and is never asked to send.

use std::num::NonZeroU32;

use axum::http::{Request, StatusCode};
use rdkafka::ClientConfig;
use tower::ServiceExt;

use super::*;
use crate::connectors::{self, Connectors};

const SECRET: &str = "router-test-secret";

fn ingress() -> Router {
    let mut out = Connectors::default();
    connectors::load_file(
        "gh.toml",
        &format!(
            "[source]\nname = \"gh\"\npath = \"/gh\"\ntopic = \"t\"\nmax_body = \"1KiB\"\nverify = {{ scheme = \"github\", secrets = [\"{SECRET}\"] }}\n"
        ),
        &mut out,
    )
    .unwrap();
    connectors::load_file(
        "wa.toml",
        "[source]\nname = \"wa\"\npath = \"/wa\"\ntopic = \"t\"\nverify = { scheme = \"meta\", secret = \"app\", verify_token = \"tok\" }\n",
        &mut out,
    )
    .unwrap();
    connectors::load_file(
        "grid.toml",
        "[source]\nname = \"grid\"\npath = \"/grid\"\ntopic = \"t\"\nverify = { scheme = \"azure-event-grid\", secrets = [\"grid-secret-0123456789\"], header = \"X-Grid-Secret\", topics = [\"/subscriptions/x\"] }\n",
        &mut out,
    )
    .unwrap();
    connectors::load_file(
        "graph.toml",
        "[source]\nname = \"graph\"\npath = \"/graph\"\ntopic = \"t\"\nverify = { scheme = \"microsoft-graph\", secrets = [\"graph-state-0123456789\"] }\n",
        &mut out,
    )
    .unwrap();
    let producer =
        Producer::create(ClientConfig::new().set("bootstrap.servers", "127.0.0.1:1")).unwrap();
    let protection = Protection {
        max_in_flight: 8,
        body_timeout: Duration::from_secs(5),
        min_body_rate: 1024,
        max_body_bytes_in_flight: 1 << 20,
        max_body_bytes_per_address: 1 << 20,
        unverified_rate_limit: Some(RateLimitConfig {
            per_second: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(2),
        }),
        probation_slots: 8,
        probation_slots_per_address: 2,
    };
    let ing = Ingress::new(
        out.sources,
        producer,
        Duration::from_secs(1),
        &protection,
        Arc::new(Metrics::new()),
    );
    app(Arc::new(ing))
}

async fn send(app: &Router, method: &str, path: &str, body: &'static str, sig: &str) -> Response {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("x-hub-signature-256", sig)
        .body(Body::from(body))
        .unwrap();
    app.clone().oneshot(req).await.unwrap()
}

#[tokio::test]
async fn replies_decided_before_the_producer() {
    let app = ingress();
    assert_eq!(
        send(&app, "POST", "/nope", "{}", "").await.status(),
        StatusCode::NOT_FOUND
    );
    let r = send(&app, "GET", "/gh", "", "").await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let big: &'static str = Box::leak("x".repeat(2048).into_boxed_str());
    let r = send(&app, "POST", "/gh", big, "").await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = send(&app, "POST", "/gh", "{}", "sha256=00").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn failed_signatures_spend_the_address_budget_then_get_429() {
    let app = ingress();
    // Burst 2: two failures are 401, the third goes over and is 429 …
    for _ in 0..2 {
        let r = send(&app, "POST", "/gh", "{}", "sha256=00").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = send(&app, "POST", "/gh", "{}", "sha256=00").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key(header::RETRY_AFTER));
    // … yet a correctly signed request from that address (a provider's shared
    // sending address an attacker spent) is still verified, not refused: it gets past
    // the signature to the producer, which here has no broker (503).
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(b"{}");
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let r = send(&app, "POST", "/gh", "{}", &sig).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn oversized_bodies_spend_the_address_budget_too() {
    let app = ingress();
    let big: &'static str = Box::leak("x".repeat(2048).into_boxed_str());
    for _ in 0..2 {
        let r = send(&app, "POST", "/gh", big, "sha256=00").await;
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    // The budget (burst 2) is spent: the next failure is over it.
    let r = send(&app, "POST", "/gh", "{}", "sha256=00").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn meta_subscription_gets_its_challenge_and_a_wrong_token_403() {
    let app = ingress();
    let ok = send(
        &app,
        "GET",
        "/wa?hub.mode=subscribe&hub.verify_token=tok&hub.challenge=1158201444",
        "",
        "",
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let body = axum::body::to_bytes(ok.into_body(), 1024).await.unwrap();
    assert_eq!(body.as_ref(), b"1158201444");
    let wrong = send(
        &app,
        "GET",
        "/wa?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1",
        "",
        "",
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    // Any other GET is still refused, and GitHub sources have no subscription.
    assert_eq!(
        send(&app, "GET", "/wa", "", "").await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        send(
            &app,
            "GET",
            "/gh?hub.mode=subscribe&hub.verify_token=tok&hub.challenge=1",
            "",
            ""
        )
        .await
        .status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn bodies_abandoned_after_holding_their_slot_spend_the_address_budget() {
    use futures::StreamExt;
    let app = ingress();
    // Most of a body (1000 of the 1 KiB max_body: rate credit until about 2 s), then
    // the client goes away after 1.5 s: more than a quarter of the 5 s body_timeout, so
    // it held its slot long, as one timed out does.
    let abandoned = || {
        let part = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(vec![
            b' ';
            1000
        ]))]);
        let gone = futures::stream::once(async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
        });
        Request::builder()
            .method("POST")
            .uri("/gh")
            .header("x-hub-signature-256", "sha256=00")
            .body(Body::from_stream(part.chain(gone)))
            .unwrap()
    };
    let (a, b) = tokio::join!(
        app.clone().oneshot(abandoned()),
        app.clone().oneshot(abandoned())
    );
    for r in [a.unwrap(), b.unwrap()] {
        assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
    }
    // The budget (burst 2) is spent: the next failure is over it.
    let r = send(&app, "POST", "/gh", "{}", "sha256=00").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// A request with `headers`, no signature.
async fn send_with(
    app: &Router,
    path: &str,
    headers: &[(&str, &str)],
    body: &'static str,
) -> StatusCode {
    let mut req = Request::builder().method("POST").uri(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Body::from(body)).unwrap();
    app.clone().oneshot(req).await.unwrap().status()
}

#[tokio::test]
async fn refused_event_grid_and_graph_validations_spend_the_address_budget_like_signatures() {
    let grid = [("aeg-event-type", "SubscriptionValidation")];
    // Burst 2. Event Grid: a validation that is none (400), one for another topic (403).
    let app = ingress();
    let not_validation =
        r#"[{"eventType":"Microsoft.Storage.BlobCreated","topic":"/subscriptions/x"}]"#;
    let foreign = r#"[{"eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","topic":"/subscriptions/y","data":{"validationCode":"c0de"}}]"#;
    assert_eq!(
        send_with(&app, "/grid", &grid, not_validation).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send_with(&app, "/grid", &grid, foreign).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send_with(&app, "/grid", &grid, not_validation).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Microsoft Graph: a validationToken that cannot be echoed (400), a notification
    // with a wrong clientState (401).
    let app = ingress();
    assert_eq!(
        send_with(&app, "/graph?validationToken=a%0Ab", &[], "").await,
        StatusCode::BAD_REQUEST
    );
    let forged = r#"{"value":[{"clientState":"guess"}]}"#;
    assert_eq!(
        send_with(&app, "/graph", &[], forged).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send_with(&app, "/graph?validationToken=a%0Ab", &[], "").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Only no `Transfer-Encoding` or `chunked` once is read as the body it says: any other
/// coding (`gzip, chunked`), or chunked twice, would hand over the body still encoded.
#[test]
fn only_chunked_once_is_a_transfer_coding_taken() {
    let with = |values: &[&str]| {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::TRANSFER_ENCODING, v.parse().unwrap());
        }
        only_chunked(&h)
    };
    for taken in [
        &[][..],
        &["chunked"],
        &["Chunked"],
        &[" , chunked"],
        &["chunked", ""],
    ] {
        assert!(with(taken), "{taken:?}");
    }
    for refused in [
        &["gzip, chunked"][..],
        &["chunked, chunked"],
        &["chunked", "chunked"],
        &["gzip", "chunked"],
        &["identity"],
    ] {
        assert!(!with(refused), "{refused:?}");
    }
}
