//! Sink authentication end to end: OAuth2 client credentials against a local token
//! endpoint (down at first, short-lived tokens, a revoked token answered 401) and mTLS
//! against an HTTPS receiver that demands a client certificate from a private CA; HTTP/2
//! negotiated by ALPN with a TLS destination that offers it, HTTP/1.1 with one that does
//! not.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;

use crate::support::broker::Broker;
use crate::support::connectors::{list, quote, SinkToml};
use crate::support::hookbridge::{metric, Config, Hookbridge};
use crate::support::kafka;
use crate::support::receiver::{Answer, Receiver};
use crate::support::{unique, wait_until};

const CLIENT_SECRET: &str = "client-secret-must-not-leak-5e1";

type TokenState = (
    Arc<Mutex<Vec<(String, String)>>>,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
);

/// A token endpoint that answers 503 to its first `down` requests, then issues
/// `tok-1`, `tok-2`, … valid for 2 s. Keeps every request's form body and auth header.
struct TokenEndpoint {
    url: String,
    seen: Arc<Mutex<Vec<(String, String)>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl TokenEndpoint {
    async fn start(down: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/oauth/token", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let issued = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let state = (seen.clone(), issued, requests);
        let app = axum::Router::new()
            .route(
                "/oauth/token",
                axum::routing::post(
                    move |axum::extract::State((seen, issued, requests)): axum::extract::State<TokenState>,
                          headers: HeaderMap,
                          body: String| async move {
                        let auth = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        seen.lock().unwrap().push((body, auth));
                        if requests.fetch_add(1, Ordering::SeqCst) < down {
                            return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
                        }
                        let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                        axum::Json(json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": 2}))
                            .into_response()
                    },
                ),
            )
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TokenEndpoint {
            url,
            seen,
            _task: task,
        }
    }
}

fn token_number(auth: &str) -> usize {
    auth.strip_prefix("Bearer tok-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A token is taken when the request's turn has come, not before it waits: records
/// held by the sink's rate limit for longer than a token lives still go with a live one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_held_by_the_rate_limit_goes_with_a_token_that_is_still_live() {
    let broker = Broker::start();
    let topic = unique("oauth-late");
    broker.create_topic(&topic, 1);
    // Tokens valid for 2 s, by when each was issued.
    let issued: Arc<Mutex<Vec<std::time::Instant>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token_url = format!("http://{}/token", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post({
            let issued = issued.clone();
            move || async move {
                let mut issued = issued.lock().unwrap();
                issued.push(std::time::Instant::now());
                axum::Json(json!({"access_token": format!("tok-{}", issued.len()), "token_type": "Bearer", "expires_in": 2}))
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let rx = Receiver::start({
        let issued = issued.clone();
        move |r| {
            let n = token_number(&r.header("authorization"));
            let live = (n.checked_sub(1))
                .and_then(|i| issued.lock().unwrap().get(i).copied())
                .is_some_and(|at| at.elapsed() < Duration::from_secs(2));
            Answer::status(if live { 200 } else { 401 })
        }
    })
    .await;
    let sink = SinkToml::new(&topic, &rx.url)
        .name("late")
        .set("ordering", "\"none\"")
        .set("rate_limit", "{ per_second = 1, burst = 1 }")
        .set(
            "auth",
            &format!(
                "{{ oauth2 = {{ token_url = {}, client_id = \"client-a\", client_secret = \"${{CLIENT_SECRET}}\" }} }}",
                quote(&token_url)
            ),
        )
        .render();
    let cfg = Config::new(&broker.addr())
        .connector("late.toml", &sink)
        .env("CLIENT_SECRET", CLIENT_SECRET);
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    let records: Vec<_> = (0..6)
        .map(|i| json!({"key": format!("k{i}"), "value": format!("{{\"n\":{i}}}")}))
        .collect();
    kafka::produce(&broker.addr(), &topic, &records).await;
    rx.wait_for(Duration::from_secs(40), "six deliveries", |s| {
        s.iter().filter(|r| r.status == 200).count() >= 6
    })
    .await;
    let refused = rx.seen().iter().filter(|r| r.status == 401).count();
    assert_eq!(
        refused, 0,
        "a token that expired while its record waited was sent"
    );
    assert!(hb.terminate(Duration::from_secs(20)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_tokens_are_cached_refreshed_on_expiry_and_on_401_and_an_endpoint_outage_only_delays(
) {
    let broker = Broker::start();
    let topic = unique("oauth");
    let dlq = format!("{topic}.dlq");
    broker.create_topic(&topic, 1);
    broker.create_topic(&dlq, 1);
    let tokens = TokenEndpoint::start(3).await;
    // tok-1 is "revoked": the destination refuses it.
    let rx = Receiver::start(|r| {
        let n = token_number(&r.header("authorization"));
        Answer::status(if n >= 2 { 200 } else { 401 })
    })
    .await;
    let sink = SinkToml::new(&topic, &rx.url)
        .name("oauth")
        .timeout("5s")
        .max_attempts(2)
        .backoff("100ms", "1s")
        .set("status", r#"{ dead_letter = ["4xx"], retry = ["5xx"] }"#)
        .dlq(&dlq)
        .set(
            "auth",
            &format!(
                "{{ oauth2 = {{ token_url = {}, client_id = \"client-a\", client_secret = \"${{CLIENT_SECRET}}\", scopes = {}, audience = \"https://api.example\" }} }}",
                quote(&tokens.url),
                list(&["orders.write", "orders.read"])
            ),
        )
        .render();
    let cfg = Config::new(&broker.addr())
        .connector("oauth.toml", &sink)
        .env("CLIENT_SECRET", CLIENT_SECRET);
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;

    let batch = |from: usize| -> Vec<serde_json::Value> {
        (from..from + 5)
            .map(|i| json!({"key": format!("k{i}"), "value": format!("{{\"n\":{i}}}")}))
            .collect()
    };
    kafka::produce(&broker.addr(), &topic, &batch(0)).await;
    rx.wait_for(Duration::from_secs(30), "first batch delivered", |s| {
        s.iter().filter(|r| r.status == 200).count() >= 5
    })
    .await;
    // Past tok-2's lifetime: the next batch needs a fresh token without any 401.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = rx.seen().len();
    kafka::produce(&broker.addr(), &topic, &batch(5)).await;
    rx.wait_for(Duration::from_secs(30), "second batch delivered", |s| {
        s.iter().filter(|r| r.status == 200).count() >= 10
    })
    .await;

    let seen = rx.seen();
    let delivered: HashSet<String> = seen
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.header("webhook-id"))
        .collect();
    assert_eq!(delivered.len(), 10, "every record delivered");
    assert!(
        seen.iter().any(|r| r.status == 401),
        "tok-1 was tried and refused"
    );
    assert!(
        seen.iter()
            .filter(|r| r.status == 401)
            .all(|r| token_number(&r.header("authorization")) == 1),
        "a refused token is not used again after the refresh"
    );
    let second: Vec<usize> = seen[before..]
        .iter()
        .map(|r| token_number(&r.header("authorization")))
        .collect();
    assert!(
        second.iter().all(|n| *n >= 3),
        "an expired token was refreshed before use: {second:?}"
    );
    assert!(
        seen[before..].iter().all(|r| r.status == 200),
        "no 401 needed after expiry"
    );

    let requests = tokens.seen.lock().unwrap().clone();
    // At least: 3 failures, tok-1, tok-2 (after the 401), tok-3 (after expiry). No upper
    // bound: a token lives 2 s and is used for 1 s, so a slow machine delivering the
    // first batch refreshes it more often, as it should.
    assert!(
        requests.len() >= 6,
        "3 failures, tok-1, tok-2 (after the 401), tok-3 (after expiry): {}",
        requests.len()
    );
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("client-a:{CLIENT_SECRET}"))
    );
    for (body, auth) in &requests {
        assert_eq!(auth, &basic, "client_secret_basic");
        let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert!(form.contains(&("grant_type".into(), "client_credentials".into())));
        assert!(form.contains(&("scope".into(), "orders.write orders.read".into())));
        assert!(form.contains(&("audience".into(), "https://api.example".into())));
    }

    let dead = kafka::read(&broker.addr(), &dlq, None, 3.0).await;
    assert!(dead.is_empty(), "nothing dead-lettered: {}", dead.len());
    let m = hb.metrics().await;
    assert_eq!(
        metric(
            &m,
            "hookbridge_oauth2_token_failures_total",
            &[("connector", "oauth"), ("class", "5xx")]
        ),
        3.0,
        "{m}"
    );
    let (ok, text) = hb.command(&["check"]).await;
    assert!(ok && text.contains("auth: oauth2"), "{text}");
    let logs = hb.logs() + &text;
    assert!(!logs.contains(CLIENT_SECRET), "client secret leaked");
    assert!(!logs.contains("tok-"), "a token leaked");
    drop(hb);
}

/// CA, server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI.
fn make_pki(dir: &Path) {
    let run = |args: &str| {
        let out = std::process::Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(dir)
            .output()
            .expect("openssl CLI");
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run("req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca");
    for who in ["server", "client"] {
        run(&format!(
            "req -newkey rsa:2048 -nodes -keyout {who}.key -out {who}.csr -subj /CN={who}"
        ));
        run(&format!(
            "x509 -req -in {who}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out {who}.pem -days 2 -extfile san.ext"
        ));
    }
}

/// What a loopback HTTPS destination (server certificate from [`make_pki`]) asks of
/// its clients and offers them.
#[derive(Clone, Copy)]
struct TlsOffer {
    /// Demands a client certificate signed by `ca.pem`.
    client_cert: bool,
    /// Offers `h2` by ALPN besides `http/1.1`, and serves HTTP/2 when it is chosen.
    h2: bool,
}

/// What such a destination saw: handshakes refused, and the HTTP version of each request
/// it answered 200.
#[derive(Clone, Default)]
struct TlsSeen {
    refused: Arc<AtomicUsize>,
    versions: Arc<Mutex<Vec<axum::http::Version>>>,
}

impl TlsSeen {
    fn ok(&self) -> usize {
        self.versions.lock().unwrap().len()
    }
}

async fn tls_receiver(dir: &Path, offer: TlsOffer) -> (String, TlsSeen) {
    use openssl::ssl::{AlpnError, SslAcceptor, SslFiletype, SslMethod, SslVerifyMode};
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    b.set_certificate_chain_file(dir.join("server.pem"))
        .unwrap();
    b.set_private_key_file(dir.join("server.key"), SslFiletype::PEM)
        .unwrap();
    if offer.client_cert {
        b.set_ca_file(dir.join("ca.pem")).unwrap();
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    }
    let protocols: &'static [u8] = if offer.h2 {
        b"\x02h2\x08http/1.1"
    } else {
        b"\x08http/1.1"
    };
    b.set_alpn_select_callback(move |_, client| {
        openssl::ssl::select_next_proto(protocols, client).ok_or(AlpnError::NOACK)
    });
    let acceptor = Arc::new(b.build());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/hook", listener.local_addr().unwrap());
    let seen = TlsSeen::default();
    let out = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let ssl = openssl::ssl::Ssl::new(acceptor.context()).unwrap();
                let mut stream = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
                if std::pin::Pin::new(&mut stream).accept().await.is_err() {
                    seen.refused.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                let h2 = stream.ssl().selected_alpn_protocol() == Some(b"h2".as_slice());
                let versions = seen.versions.clone();
                let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    versions.lock().unwrap().push(req.version());
                    async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                        ))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = if h2 {
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(io, service)
                        .await
                } else {
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await
                };
            });
        }
    });
    (url, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_destination_gets_the_client_certificate_and_refuses_a_sink_without_one() {
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path());
    let (url, seen) = tls_receiver(
        pki.path(),
        TlsOffer {
            client_cert: true,
            h2: false,
        },
    )
    .await;
    let broker = Broker::start();
    let path = |f: &str| pki.path().join(f).display().to_string();
    let sink = |name: &str, topic: &str, tls: &[(&str, &str)]| {
        SinkToml::new(topic, &url)
            .name(name)
            .timeout("5s")
            .max_attempts(0)
            .backoff("100ms", "500ms")
            .breaker_failures(0)
            .tls(tls)
            .render()
    };
    // Without a client certificate (but trusting the CA): the handshake is refused and the
    // record stays undelivered.
    let topic = unique("nocert");
    broker.create_topic(&topic, 1);
    let cfg = Config::new(&broker.addr()).connector(
        "nocert.toml",
        &sink("nocert", &topic, &[("ca", &path("ca.pem"))]),
    );
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[json!({"key": "a", "value": "{}"})],
    )
    .await;
    wait_until(
        Duration::from_secs(10),
        "handshakes refused and retried",
        || std::future::ready(seen.refused.load(Ordering::SeqCst) >= 2),
    )
    .await;
    assert_eq!(seen.ok(), 0);
    drop(hb);

    let topic = unique("mtls");
    broker.create_topic(&topic, 1);
    let cfg = Config::new(&broker.addr()).connector(
        "mtls.toml",
        &sink(
            "mtls",
            &topic,
            &[
                ("ca", &path("ca.pem")),
                ("cert", &path("client.pem")),
                ("key", &path("client.key")),
            ],
        ),
    );
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &(0..3)
            .map(|i| json!({"key": format!("k{i}"), "value": "{}"}))
            .collect::<Vec<_>>(),
    )
    .await;
    wait_until(Duration::from_secs(20), "3 deliveries over mTLS", || {
        std::future::ready(seen.ok() >= 3)
    })
    .await;
    assert_eq!(seen.ok(), 3, "delivered over mTLS");
    let (good, text) = hb.command(&["check"]).await;
    assert!(
        good && text.contains("tls: ca") && text.contains("client certificate"),
        "{text}"
    );
    drop(hb);
}

/// A TLS destination that offers HTTP/2 by ALPN gets every delivery as HTTP/2; one that
/// offers only HTTP/1.1 gets HTTP/1.1 (reqwest's native TLS asks for both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_destination_offering_http2_gets_it_and_an_http1_one_still_works() {
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path());
    let ca = pki.path().join("ca.pem").display().to_string();
    let broker = Broker::start();
    let mut cfg = Config::new(&broker.addr());
    let mut destinations = Vec::new();
    for (name, h2) in [("h2", true), ("h1", false)] {
        let (url, seen) = tls_receiver(
            pki.path(),
            TlsOffer {
                client_cert: false,
                h2,
            },
        )
        .await;
        let topic = unique(name);
        broker.create_topic(&topic, 1);
        let sink = SinkToml::new(&topic, &url)
            .name(name)
            .timeout("5s")
            .max_attempts(0)
            .backoff("100ms", "500ms")
            .tls(&[("ca", &ca)])
            .render();
        cfg = cfg.connector(&format!("{name}.toml"), &sink);
        destinations.push((name, h2, topic, seen));
    }
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(40)).await;
    for (_, _, topic, _) in &destinations {
        let records: Vec<_> = (0..5)
            .map(|i| json!({"key": format!("k{i}"), "value": "{}"}))
            .collect();
        kafka::produce(&broker.addr(), topic, &records).await;
    }
    for (name, h2, _, seen) in &destinations {
        wait_until(Duration::from_secs(20), "5 deliveries over TLS", || {
            std::future::ready(seen.ok() >= 5)
        })
        .await;
        let want = if *h2 {
            axum::http::Version::HTTP_2
        } else {
            axum::http::Version::HTTP_11
        };
        let versions = seen.versions.lock().unwrap().clone();
        assert!(
            versions.iter().all(|v| *v == want),
            "{name}: {versions:?}, expected all {want:?}"
        );
    }
    drop(hb);
}

#[test]
fn client_key_material_is_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("connectors")).unwrap();
    std::fs::write(dir.path().join("hookbridge.toml"), "").unwrap();
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("connectors/s.toml"), {
        let cert = dir.path().join("cert.pem").display().to_string();
        SinkToml::bare("s", &["t"])
            .url("https://x/")
            .tls(&[("cert", &cert), ("key", &cert)])
            .render()
    })
    .unwrap();
    let out = std::process::Command::new(crate::support::hookbridge::bin())
        .args(["check", "--config"])
        .arg(dir.path().join("hookbridge.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("sink.tls.cert") && text.contains("not a PEM certificate"),
        "{text}"
    );
}

/// A client certificate with another pair's key is refused at load, naming the key, not
/// when the sink starts (which stopped the process saying only "builder error").
#[test]
fn a_client_key_that_does_not_match_its_certificate_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    // The client's certificate with the server's key.
    let file = |name: &str| dir.path().join(name).display().to_string();
    let (cert, other_key) = (file("client.pem"), file("server.key"));
    std::fs::create_dir(dir.path().join("connectors")).unwrap();
    std::fs::write(dir.path().join("hookbridge.toml"), "").unwrap();
    let sink = SinkToml::bare("s", &["t"])
        .url("https://x/")
        .tls(&[("cert", &cert), ("key", &other_key)])
        .render();
    std::fs::write(dir.path().join("connectors/s.toml"), sink).unwrap();
    let out = std::process::Command::new(crate::support::hookbridge::bin())
        .args(["check", "--config"])
        .arg(dir.path().join("hookbridge.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("sink.tls.key") && text.contains("does not match"),
        "{text}"
    );
}

/// A destination whose certificate the sink does not trust fails every attempt as
/// `connect`, like a host that is down; the log says why (the TLS library's reason),
/// once for many attempts, and never the URL, which may hold a credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_named_in_the_log_once_without_the_url() {
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path());
    let broker = Broker::start();
    let (url, _) = tls_receiver(
        pki.path(),
        TlsOffer {
            client_cert: false,
            h2: false,
        },
    )
    .await;
    let topic = unique("untrusted");
    broker.create_topic(&topic, 1);
    // No `tls.ca`: the receiver's private CA is not trusted.
    let url = format!("{url}?token=url-secret-9f2c");
    let sink = SinkToml::new(&topic, &url)
        .max_attempts(0)
        .backoff("50ms", "100ms")
        .render();
    let mut hb = Hookbridge::start(&Config::new(&broker.addr()).connector("s.toml", &sink));
    hb.ready(Duration::from_secs(40)).await;
    kafka::produce(
        &broker.addr(),
        &topic,
        &[json!({"key": "k", "value": "{}"})],
    )
    .await;
    wait_until(Duration::from_secs(20), "ten refused attempts", || async {
        let text = hb.metrics().await;
        metric(
            &text,
            "hookbridge_delivery_attempts_total",
            &[("result", "connect")],
        ) >= 10.0
    })
    .await;
    let logs = hb.logs();
    let said = logs.matches("request got no answer").count();
    assert_eq!(said, 1, "one line for many alike attempts:\n{logs}");
    assert!(logs.contains("certificate verify failed"), "{logs}");
    assert!(!logs.contains("url-secret-9f2c"), "{logs}");
    drop(hb);
}
