//! `hookbridge send` signs as each provider would; every provider's source accepts it
//! end to end (HTTP → verify → Kafka ack) and the record lands in Kafka.

use std::time::Duration;

use crate::support::broker::Broker;
use crate::support::connectors::{list, SourceToml};
use crate::support::hookbridge::{metric, Config, Hookbridge};
use crate::support::kafka;
use crate::support::unique;

/// Each scheme's source: the scheme, its other `verify` keys (values as TOML) and its secret.
type Provider = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

const PROVIDERS: &[Provider] = &[
    ("github", &[], "gh-secret"),
    ("stripe", &[], "whsec_stripe_test_secret"),
    ("slack", &[], "8f742231b10e8888abcd99yyyzzz85a5"),
    ("shopify", &[], "shpss_secret"),
    (
        "standard-webhooks",
        &[],
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ),
    ("svix", &[], "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ("gitlab", &[], "gitlab-token"),
    (
        "twilio",
        &[("public_url", "\"https://hooks.example.com/twilio\"")],
        "twilio-auth-token",
    ),
    ("paddle", &[], "pdl_ntfset_secret"),
    (
        "square",
        &[
            ("trust_forwarded_from", "[\"127.0.0.1\"]"),
            (
                "trust_forwarded_headers",
                "[\"X-Forwarded-Proto\", \"X-Forwarded-Host\"]",
            ),
        ],
        "square-signature-key",
    ),
    ("zoom", &[], "zoom-secret-token"),
    ("linear", &[], "lin_wh_secret"),
    ("calendly", &[], "calendly-signing-key-0123"),
    ("workos", &[], "workos-webhook-secret-0123"),
    ("mailgun", &[], "mailgun-signing-key-0123"),
    ("microsoft-graph", &[], "graph-client-state-0123"),
    (
        "azure-event-grid",
        &[
            ("header", "\"X-Event-Grid-Secret\""),
            (
                "topics",
                "[\"/subscriptions/00000000-0000-0000-0000-000000000000\"]",
            ),
        ],
        "event-grid-secret-0123",
    ),
    ("twitch", &[], "twitch-secret-0123"),
    (
        "hubspot",
        &[("public_url", "\"https://hooks.example.com/hubspot\"")],
        "hubspot-client-secret",
    ),
    (
        "meta",
        &[("verify_token", "\"meta-verify-token\"")],
        "meta-app-secret",
    ),
    (
        "token",
        &[("header", "\"X-Webhook-Token\"")],
        "shared-token-value",
    ),
    ("bearer", &[], "bearer-token-value"),
    ("basic", &[], "hook:basic-password"),
    (
        "hmac",
        &[
            ("header", "\"X-Signature\""),
            ("prefix", "\"sha512=\""),
            ("algorithm", "\"sha512\""),
            ("encoding", "\"base64\""),
            ("timestamp_header", "\"X-Timestamp\""),
            ("template", "\"{timestamp}.{body}\""),
        ],
        "generic-secret",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_gets_2xx_from_every_provider_source() {
    let broker = Broker::start();
    let topic = unique("send");
    broker.create_topic(&topic, 1);
    let mut cfg = Config::new(&broker.addr());
    for (i, (scheme, extra, secret)) in PROVIDERS.iter().enumerate() {
        let env = format!("SEND_SECRET_{i}");
        let source = extra.iter().fold(
            SourceToml::new(scheme, &format!("/hooks/{scheme}"), &topic)
                .verify_secrets(scheme, &[&format!("${{{env}}}")]),
            |source, (key, value)| source.verify_set(key, value),
        );
        cfg = cfg
            .connector(&format!("{scheme}.toml"), &source.render())
            .env(&env, secret);
    }
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(30)).await;
    for (scheme, _, _) in PROVIDERS {
        let (ok, out) = hb
            .command(&["send", "--connector", scheme, "--url", &hb.url("")])
            .await;
        assert!(ok, "send to {scheme}: {out}");
        assert!(out.starts_with("200"), "{scheme}: {out}");
    }
    let records = kafka::read(&broker.addr(), &topic, Some(PROVIDERS.len()), 20.0).await;
    assert_eq!(records.len(), PROVIDERS.len());
    let m = hb.metrics().await;
    assert_eq!(metric(&m, "hookbridge_signature_failures_total", &[]), 0.0);
    for (_, _, secret) in PROVIDERS {
        assert!(!hb.logs().contains(secret), "a secret reached the logs");
    }
    // Nothing listening: the failure names the URL once, with the reason.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = closed.local_addr().expect("its address").port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}");
    let (ok, out) = hb
        .command(&["send", "--connector", "github", "--url", &url])
        .await;
    assert!(!ok, "{out}");
    assert_eq!(out.matches(&url).count(), 1, "{out}");
    assert!(out.to_lowercase().contains("refused"), "{out}");
    // A password in `--url` is not printed with the failure; a query would go before
    // the source's path, so it is refused (without repeating it).
    let with_password = format!("http://user:pass-must-not-print@127.0.0.1:{port}");
    let (ok, out) = hb
        .command(&["send", "--connector", "github", "--url", &with_password])
        .await;
    assert!(!ok && !out.contains("pass-must-not-print"), "{out}");
    let with_query = format!("http://127.0.0.1:{port}/?token=query-must-not-print");
    let (code, out) = hb
        .command_code(&["send", "--connector", "github", "--url", &with_query])
        .await;
    assert_eq!(code, 2, "{out}");
    assert!(
        !out.contains("query-must-not-print") && out.contains("no query"),
        "{out}"
    );
}

/// A GitHub source with `max_body`, its secret in `LARGE_SECRET`.
fn large_body_config(broker: &Broker, topic: &str, max_body: &str) -> Config {
    Config::new(&broker.addr())
        .connector(
            "github.toml",
            &SourceToml::new("github", "/hooks/github", topic)
                .verify_secrets("github", &["${LARGE_SECRET}"])
                .max_body(max_body)
                .render(),
        )
        .env("LARGE_SECRET", "large-body-secret")
}

/// A JSON body of exactly `len` bytes.
fn json_body(len: usize) -> Vec<u8> {
    let mut body = br#"{"padding":""#.to_vec();
    body.resize(len - 2, b'x');
    body.extend_from_slice(br#""}"#);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_1mib_webhook_is_accepted_and_in_kafka() {
    let broker = Broker::start();
    let topic = unique("large");
    broker.create_topic(&topic, 1);
    let mut hb = Hookbridge::start(&large_body_config(&broker, &topic, "2MiB"));
    hb.ready(Duration::from_secs(30)).await;
    let body = json_body(1 << 20);
    let file = hb.dir.path().join("body.json");
    std::fs::write(&file, &body).unwrap();
    let (ok, out) = hb
        .command(&[
            "send",
            "--connector",
            "github",
            "--url",
            &hb.url(""),
            "--body",
            file.to_str().unwrap(),
        ])
        .await;
    assert!(ok && out.starts_with("200"), "{out}");
    let records = kafka::read(&broker.addr(), &topic, Some(1), 20.0).await;
    assert_eq!(records.len(), 1);
    assert!(records[0].value == body, "the record is not the body");
    let (ok, out) = hb.command(&["check"]).await;
    assert!(ok && out.contains("raise them"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_kafka_refuses_as_too_large_is_413_not_503() {
    let broker = Broker::start();
    let topic = unique("too-large");
    broker.create_topic(&topic, 1);
    // The user's own message.max.bytes wins over the one max_body needs, so Kafka's
    // client refuses this record for its size: a permanent answer, not "retry later".
    let cfg = large_body_config(&broker, &topic, "1MiB").prop("message.max.bytes", "100000");
    let mut hb = Hookbridge::start(&cfg);
    hb.ready(Duration::from_secs(30)).await;
    let file = hb.dir.path().join("body.json");
    std::fs::write(&file, json_body(200_000)).unwrap();
    let (ok, out) = hb
        .command(&[
            "send",
            "--connector",
            "github",
            "--url",
            &hb.url(""),
            "--body",
            file.to_str().unwrap(),
        ])
        .await;
    assert!(!ok && out.starts_with("413"), "{out}");
    assert!(hb.logs().contains("too large"), "no clear log line");
    let (ok, out) = hb.command(&["check"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("message.max.bytes") && out.contains("max.message.bytes"),
        "check does not name the limits to raise: {out}"
    );
}

/// A Twilio source whose signed URL comes from forwarded headers of `proxy`.
fn forwarded_twilio(broker: &Broker, topic: &str, proxy: &str) -> Config {
    Config::new(&broker.addr())
        .connector(
            "twilio.toml",
            &SourceToml::new("twilio", "/hooks/twilio", topic)
                .verify_secrets("twilio", &["${TWILIO_TOKEN}"])
                .verify_set("trust_forwarded_from", &list(&[proxy]))
                .verify_set(
                    "trust_forwarded_headers",
                    &list(&["X-Forwarded-Proto", "X-Forwarded-Host"]),
                )
                .render(),
        )
        .env("TWILIO_TOKEN", "twilio-forwarded-token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_trusted_only_from_named_proxies() {
    let broker = Broker::start();
    let topic = unique("forwarded");
    broker.create_topic(&topic, 1);
    // `send` adds the X-Forwarded-Proto/Host a proxy would; from 127.0.0.1 they count.
    let mut trusted = Hookbridge::start(&forwarded_twilio(&broker, &topic, "127.0.0.1"));
    trusted.ready(Duration::from_secs(30)).await;
    let (ok, out) = trusted
        .command(&["send", "--connector", "twilio", "--url", &trusted.url("")])
        .await;
    assert!(ok && out.starts_with("200"), "{out}");
    // The same signed request from an address that is not a named proxy is refused.
    let mut other = Hookbridge::start(&forwarded_twilio(&broker, &topic, "10.0.0.1"));
    other.ready(Duration::from_secs(30)).await;
    let (ok, out) = other
        .command(&["send", "--connector", "twilio", "--url", &other.url("")])
        .await;
    assert!(!ok && out.starts_with("401"), "{out}");
    assert_eq!(
        kafka::read(&broker.addr(), &topic, Some(2), 5.0)
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_url_signing_without_a_trusted_url() {
    let broker = Broker::start();
    let cfg = Config::new(&broker.addr()).connector(
        "square.toml",
        &SourceToml::new("square", "/hooks/square", "t")
            .verify_secret("square", "k")
            .render(),
    );
    let dir = cfg.write(1, 2);
    let out = std::process::Command::new(crate::support::hookbridge::bin())
        .args(["check", "--config"])
        .arg(dir.path().join("hookbridge.toml"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("square.toml")
            && text.contains("source.verify.public_url")
            && text.contains("trust_forwarded_from"),
        "{text}"
    );
}
