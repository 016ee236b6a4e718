//! The sink's file read, checked and built, end to end: defaults, status lists, auth.

use super::*;
use crate::config::ConfigError;
use crate::connectors::status_policy::Action;
use crate::connectors::status_policy::StatusPolicy;

fn sink(extra: &str) -> Result<Sink, ConfigError> {
    let text = format!(
        "name = \"orders\"\ntopics = [\"orders\"]\nurl = \"http://127.0.0.1:9/hook\"\n{extra}"
    );
    let cfg: SinkConfig = toml::from_str(&text).expect("parses");
    cfg.validate("orders.toml")?.build()
}

#[test]
fn default_status_policy_retries_auth_and_not_found() {
    let s = sink("").unwrap();
    assert_eq!(s.status, StatusPolicy::default());
    for code in [401, 403, 404, 429, 503] {
        assert_eq!(s.status.action(code), Action::Retry, "{code}");
    }
    for code in [400, 410, 422, 301] {
        assert_eq!(s.status.action(code), Action::DeadLetter, "{code}");
    }
}

#[test]
fn status_lists_replace_their_defaults() {
    let s = sink("status = { retry = [\"5xx\", 429], dead_letter = [\"4xx\", 503] }").unwrap();
    assert_eq!(s.status.action(401), Action::DeadLetter);
    assert_eq!(s.status.action(503), Action::DeadLetter);
    assert_eq!(s.status.action(502), Action::Retry);
    let only_retry = sink("status = { retry = [\"4xx\", \"5xx\"] }").unwrap();
    assert_eq!(only_retry.status.action(400), Action::Retry);
    assert_eq!(only_retry.status.action(301), Action::DeadLetter);
}

#[test]
fn bearer_and_basic_send_a_sensitive_authorization_header() {
    for (extra, want) in [
        ("auth = { bearer = \"tok\" }", "Bearer tok"),
        (
            "auth = { basic = { user = \"u\", password = \"p\" } }",
            "Basic dTpw",
        ),
    ] {
        let s = sink(extra).unwrap();
        let Some(Credentials::Header(v)) = &s.credentials else {
            panic!("{extra}: {:?}", s.credentials);
        };
        assert_eq!(v.to_str().unwrap(), want);
        assert!(v.is_sensitive());
    }
    for (extra, key) in [
        (
            "auth = { bearer = \"t\" }\nheaders = { Authorization = \"x\" }",
            "sink.auth",
        ),
        (
            "auth = { oauth2 = { token_url = \"ftp://x\", client_id = \"c\", client_secret = \"s\" } }",
            "sink.auth.oauth2.token_url",
        ),
        (
            "auth = { oauth2 = { token_url = \"https://idp/t\", client_id = \"c\", client_secret = \"s\", scopes = [\"read write\"] } }",
            "sink.auth.oauth2.scopes",
        ),
        (
            "auth = { oauth2 = { token_url = \"https://idp/t\", client_id = \"c\", client_secret = \"s\", scopes = [\"a\", \"\"] } }",
            "sink.auth.oauth2.scopes",
        ),
        (
            "auth = { oauth2 = { token_url = \"https://idp/t\", client_id = \"c\", client_secret = \"s\", scopes = [\"café\"] } }",
            "sink.auth.oauth2.scopes",
        ),
        ("tls = { cert = \"/nonexistent\" }", "sink.tls"),
        ("tls = { ca = \"/nonexistent/ca.pem\" }", "sink.tls.ca"),
    ] {
        let e = sink(extra).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{extra}: {e}");
    }
}

/// A URL's `user:password@` becomes the sink's own sensitive `Authorization`, like
/// `auth.basic`; with `auth` or `headers.Authorization` also set, which one is meant is
/// not guessed.
#[test]
fn url_credentials_are_the_sinks_basic_authorization() {
    let with_url = |url: &str, extra: &str| {
        let text = format!("name = \"orders\"\ntopics = [\"orders\"]\nurl = \"{url}\"\n{extra}");
        let cfg: SinkConfig = toml::from_str(&text).expect("parses");
        cfg.validate("orders.toml")?.build()
    };
    for (url, want) in [
        // base64("u:p w"), base64("u:")
        ("http://u:p%20w@127.0.0.1:9/hook", "Basic dTpwIHc="),
        ("http://u@127.0.0.1:9/hook", "Basic dTo="),
    ] {
        let s = with_url(url, "").unwrap();
        let Some(Credentials::Header(v)) = &s.credentials else {
            panic!("{url}: {:?}", s.credentials);
        };
        assert_eq!(v.to_str().unwrap(), want);
        assert!(v.is_sensitive());
        assert_eq!(s.url.literal().unwrap().as_str(), "http://127.0.0.1:9/hook");
    }
    for extra in [
        "auth = { bearer = \"t\" }",
        "headers = { Authorization = \"x\" }",
    ] {
        let e = with_url("http://u:secret-pw@127.0.0.1:9/hook", extra).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("sink.url"), "{extra}: {e}");
        assert!(!e.to_string().contains("secret-pw"), "{e}");
    }
    // The URL parser reads a user and password after a third slash: refused, never sent.
    let e = with_url("http:///u:secret-pw@127.0.0.1:9/hook", "").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("sink.url"), "{e}");
    assert!(!e.to_string().contains("secret-pw"), "{e}");
}

#[test]
fn bad_status_entries_name_the_key() {
    for (extra, key) in [
        ("status = { retry = [200] }", "sink.status.retry"),
        (
            "status = { dead_letter = [\"6xx\"] }",
            "sink.status.dead_letter",
        ),
        (
            "status = { retry = [404], dead_letter = [404] }",
            "sink.status.retry",
        ),
        (
            "headers = { Content-Length = \"{header.n}\" }",
            "sink.headers.Content-Length",
        ),
        ("headers = { host = \"x\" }", "sink.headers.host"),
        (
            "sign = { scheme = \"standard-webhooks\", secret = \"whsec_\" }",
            "sink.sign.secret",
        ),
        (
            "headers = { Transfer-Encoding = \"chunked\" }",
            "sink.headers.Transfer-Encoding",
        ),
    ] {
        let e = sink(extra).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{extra}: {e}");
    }
    let text = "name = \"o\"\ntopics = [\"o\"]\nurl = \"http://x/\"\nstatus = { retries = [500] }";
    assert!(
        toml::from_str::<SinkConfig>(text).is_err(),
        "unknown keys are errors"
    );
}

#[test]
fn batch_defaults_and_limits_name_their_key() {
    let s = sink("batch = {}").unwrap();
    let b = s.batch.expect("batch set");
    assert_eq!((b.max_records, b.max_bytes.0), (100, 1 << 20));
    assert_eq!(b.max_wait.0, std::time::Duration::from_millis(50));
    assert_eq!(
        (b.format, b.items),
        (BatchFormat::JsonArray, BatchItems::Data)
    );
    assert!(sink("").unwrap().batch.is_none());
    for (extra, key) in [
        ("batch = { max_records = 0 }", "sink.batch.max_records"),
        ("batch = { max_records = 10001 }", "sink.batch.max_records"),
        ("batch = { max_bytes = \"1000\" }", "sink.batch.max_bytes"),
        ("batch = { max_bytes = \"65MiB\" }", "sink.batch.max_bytes"),
        ("batch = { max_wait = \"61s\" }", "sink.batch.max_wait"),
        ("batch = {}\nformat = \"cloudevents-binary\"", "sink.batch"),
        (
            "batch = {}\nformat = \"cloudevents-structured\"",
            "sink.batch",
        ),
    ] {
        let err = sink(extra).unwrap_err();
        assert_eq!(err.file, "orders.toml", "{extra}");
        assert_eq!(err.key.as_deref(), Some(key), "{extra}: {err}");
    }
    let typo: Result<SinkConfig, _> = toml::from_str(
        "name = \"a\"\ntopics = [\"t\"]\nurl = \"http://x/\"\nbatch = { max_record = 3 }",
    );
    assert!(typo.is_err());
}

/// A URL may carry a password: no `Debug` print of a sink, read or built, shows it.
#[test]
fn no_debug_print_of_a_sink_shows_a_url_password() {
    for (url, auth) in [
        ("http://u:url-secret@127.0.0.1:9/hook", ""),
        (
            "http://127.0.0.1:9/hook?token=url-secret",
            "auth = { oauth2 = { token_url = \"https://idp.example/token?client_secret=url-secret\", client_id = \"c\", client_secret = \"client-secret\" } }",
        ),
        (
            "https://discord.example/api/webhooks/1/url-secret-0123456789?thread_id={header.t}",
            "",
        ),
        (
            "http://127.0.0.1:9/hook",
            "auth = { oauth2 = { token_url = \"https:idp.example/token#access_token=url-secret\", client_id = \"c\", client_secret = \"client-secret\" } }",
        ),
    ] {
        let text = format!("name = \"orders\"\ntopics = [\"orders\"]\nurl = \"{url}\"\n{auth}");
        let cfg: SinkConfig = toml::from_str(&text).expect("parses");
        let read = format!("{cfg:?}");
        let built = format!("{:?}", cfg.validate("orders.toml").unwrap().build().unwrap());
        for shown in [read, built] {
            assert!(!shown.contains("url-secret"), "{shown}");
            assert!(!shown.contains("client-secret"), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
    }
}

/// A token URL as the URL parser reads it, whatever its slashes: a password in it never
/// shows in a `Debug` print of the file read, and such a URL is refused (the client
/// authenticates with its id and secret).
#[test]
fn a_token_url_with_a_password_is_refused_and_never_shown() {
    for token_url in [
        "https://c:url-secret@idp.example/token",
        "https:c:url-secret@idp.example/token",
        "https:///c:url-secret@idp.example/token",
        "https:\\\\c:url-secret@idp.example/token",
    ] {
        let text = format!(
            "name = \"orders\"\ntopics = [\"orders\"]\nurl = \"http://127.0.0.1:9/hook\"\n\
             auth = {{ oauth2 = {{ token_url = \"{token_url}\", client_id = \"c\", client_secret = \"s\" }} }}"
        );
        let cfg: SinkConfig = toml::from_str(&text).expect("parses");
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("url-secret"), "{token_url}: {shown}");
        let e = cfg.validate("orders.toml").unwrap_err();
        assert_eq!(
            e.key.as_deref(),
            Some("sink.auth.oauth2.token_url"),
            "{token_url}: {e}"
        );
        assert!(!e.to_string().contains("url-secret"), "{e}");
    }
}

/// A header value written literally is shown where a sink's settings are (`Debug`) and
/// left in dead letters' excerpts, unless its name says it carries credentials.
#[test]
fn literal_credentials_in_headers_are_kept_out_of_debug() {
    let s = sink(
        "headers = { Authorization = \"Bearer hunter2-token\", X-Api-Key = \"k-123456\", X-Tenant = \"acme\", X-Private-Token = \"sk-live-{header.tenant}\" }",
    )
    .unwrap();
    let shown = format!("{s:?}");
    assert!(!shown.contains("sk-live"), "template text in {shown}");
    for secret in ["hunter2-token", "k-123456"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    let sensitive = |n: &str| {
        s.headers
            .iter()
            .find(|(k, _)| k == n)
            .unwrap()
            .1
            .is_sensitive()
    };
    assert!(sensitive("authorization") && sensitive("x-api-key"));
    assert!(!sensitive("x-tenant"), "a plain literal stays as written");
}

#[test]
fn credential_header_names_are_told_from_plain_ones() {
    use super::definition::carries_credentials;
    for name in [
        "Authorization",
        "Cookie",
        "X-Api-Key",
        "X-Goog-Api-Key",
        "apikey",
        "Private-Token",
        "X-Vault-Token",
        "X_Client_Secret",
        "Ocp-Apim-Subscription-Key",
        "X-Auth-Key",
        "CB-Access-Passphrase",
        "X-Password",
        "X-JWT",
    ] {
        assert!(carries_credentials(name), "{name}");
    }
    for name in [
        "X-Tenant",
        "X-Routing-Key",
        "X-Tenant-Key",
        "X-Author",
        "X-Auth-Method",
        "X-Session-Id",
        "Keyword",
    ] {
        assert!(!carries_credentials(name), "{name}");
    }
}

/// `check` warns about a credential written literally in `headers`, not about plain text.
#[test]
fn check_warns_about_literal_credentials_in_headers() {
    let mut out = crate::connectors::Connectors::default();
    let text = "[sink]\nname = \"orders\"\ntopics = [\"orders\"]\nurl = \"http://127.0.0.1:9/hook\"\n\
        headers = { X-Api-Key = \"k-123456\", X-Tenant = \"acme\", X-Token = \"${HB_TEST_NEVER_SET}\" }\n";
    let _ = crate::connectors::load_file("orders.toml", text, &mut out);
    assert_eq!(
        out.literal_secrets,
        [(
            "orders.toml".to_owned(),
            "sink.headers.X-Api-Key".to_owned()
        )]
    );
}

#[test]
fn consumed_and_dead_letter_topics_are_kafka_topic_names() {
    let text = |topics: &str, dlq: &str| {
        format!("name = \"o\"\ntopics = {topics}\nurl = \"http://127.0.0.1:9/h\"\n{dlq}")
    };
    let cases = [
        (text(r#"["orders", "bad topic!"]"#, ""), "sink.topics[1]"),
        (text(r#"["orders/v1"]"#, ""), "sink.topics[0]"),
        (
            text(r#"["orders"]"#, r#"dlq = { topic = "orders dlq" }"#),
            "sink.dlq.topic",
        ),
    ];
    for (text, key) in cases {
        let cfg: SinkConfig = toml::from_str(&text).expect("parses");
        let Err(e) = cfg.validate("o.toml") else {
            panic!("{key} refused")
        };
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert!(e.reason.contains("is not a Kafka topic name"), "{e}");
    }
    let fine = text(
        r#"["orders.v1", "billing_2-x", "^events[.].*"]"#,
        r#"dlq = { topic = "orders.dlq" }"#,
    );
    let cfg: SinkConfig = toml::from_str(&fine).expect("parses");
    assert!(cfg.validate("o.toml").is_ok());
}

#[test]
fn dead_lettering_tombstones_needs_a_dead_letter_topic() {
    let text = "name = \"o\"\ntopics = [\"o\"]\nurl = \"http://127.0.0.1:9/h\"\ntombstones = \"dead-letter\"\n";
    let cfg: SinkConfig = toml::from_str(text).expect("parses");
    let Err(e) = cfg.validate("o.toml") else {
        panic!("refused without a dlq")
    };
    assert_eq!(e.key.as_deref(), Some("sink.tombstones"), "{e}");
    let with_dlq = format!("{text}dlq = {{ topic = \"o.dlq\" }}\n");
    let cfg: SinkConfig = toml::from_str(&with_dlq).expect("parses");
    assert!(cfg.validate("o.toml").is_ok());
    let odd: Result<SinkConfig, _> = toml::from_str(&text.replace("dead-letter", "drop"));
    assert!(odd.is_err(), "an unknown choice is refused");
}

/// An `allowed_hosts` entry whose port does not parse would never match: refused at load.
#[test]
fn allowed_hosts_entries_are_names_with_a_port_that_parses() {
    for good in ["a.com", "a.com:8443", "[::1]", "[::1]:8080", "10.0.0.1:80"] {
        let extra = format!("allowed_hosts = [\"{good}\"]");
        assert!(sink(&extra).is_ok(), "{good}");
    }
    for bad in [
        "a.com:99999",
        "a.com:0",
        "a.com:",
        ":80",
        "::1",
        "a.com:x",
        "[::1",
        "",
    ] {
        let extra = format!("allowed_hosts = [\"{bad}\"]");
        let e = sink(&extra).unwrap_err().to_string();
        assert!(
            e.contains("allowed_hosts") && e.contains("not a host name"),
            "{bad}: {e}"
        );
    }
}
