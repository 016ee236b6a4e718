//! `hookbridge check`: a human summary of the validated configuration. Secrets appear
//! only as their reference (`${NAME}`, `file:/path`) or `<redacted>`, never as values;
//! credentials in sink URLs (user, password, secret-looking query values) are redacted.
//! Settings that work but weaken a protection are printed as warnings.

use std::fmt::Write;

use crate::config::load::Loaded;
use crate::config::units::format_size;
use crate::connectors::key::KeyRule;
use crate::connectors::sink::{AuthConfig, BatchFormat, BatchItems, Ordering, Tombstones};
use crate::connectors::template::redacted_url as redacted_url_text;
use crate::connectors::{Connectors, Sink, Source, WEAK_SECRET_BYTES};
use crate::kafka::producer;

/// Renders the summary printed by `check` (and logged by `run` at debug level).
pub fn summary(loaded: &Loaded, connectors: &Connectors) -> String {
    let s = &loaded.settings;
    let mut out = String::new();
    let _ = writeln!(out, "settings: {}", loaded.file_label());
    let _ = writeln!(out, "  kafka.brokers: {}", s.kafka.brokers);
    for (k, v) in &s.kafka.properties {
        let shown = if v.is_literal() && !looks_secret(k) {
            "<set>".to_owned()
        } else {
            v.describe()
        };
        let _ = writeln!(out, "  kafka.properties.{k}: {shown}");
    }
    let _ = writeln!(
        out,
        "  http.listen: {}   admin.listen: {}",
        s.http.listen, s.admin.listen
    );
    let console = &s.admin.console;
    match &console.token {
        Some(token) => {
            let _ = writeln!(
                out,
                "  admin.console: on at /console, token {}, read_only {}",
                token.describe(),
                console.read_only
            );
        }
        None => {
            let _ = writeln!(out, "  admin.console: off (no admin.console.token)");
        }
    }
    if let Some(tls) = &s.http.tls {
        let _ = writeln!(
            out,
            "  http.tls: cert {} key {}",
            tls.cert.display(),
            tls.key.display()
        );
    }
    let _ = writeln!(
        out,
        "  connectors_dir: {}",
        loaded.connectors_dir().display()
    );
    let _ = writeln!(out, "sources: {}", connectors.sources.len());
    for src in &connectors.sources {
        source_line(&mut out, src);
    }
    record_limits(&mut out, loaded, connectors);
    let _ = writeln!(out, "sinks: {}", connectors.sinks.len());
    for sink in &connectors.sinks {
        sink_line(&mut out, sink);
    }
    let console_token = s
        .admin
        .console
        .token
        .as_ref()
        .filter(|t| t.is_literal())
        .map(|_| "admin.console.token".to_owned());
    let kafka_secrets = (s.kafka.properties.iter())
        .filter(|(k, v)| v.is_literal() && is_secret_property(k))
        .map(|(k, _)| format!("kafka.properties.{k}"));
    let settings_secrets = (console_token.into_iter())
        .chain(kafka_secrets)
        .map(|key| (loaded.written_in(&key), key));
    for (file, key) in connectors
        .literal_secrets
        .iter()
        .cloned()
        .chain(settings_secrets)
    {
        let _ = writeln!(
            out,
            "warning: {file}: key `{key}` holds a literal secret; use \"${{ENV_VAR}}\" or \"file:/path\" outside local development"
        );
    }
    for warning in loaded.unread_env_warnings() {
        let _ = writeln!(out, "warning: {warning}");
    }
    for warning in risky_settings(loaded, connectors) {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

/// The longest broker wait that still lets a Discord request be answered within
/// Discord's 3 seconds, with room for the network.
const DISCORD_ANSWER_BUDGET: std::time::Duration = std::time::Duration::from_millis(2500);

/// Sources whose provider needs the answer sooner than a slow broker ack can give it.
/// Discord, both kinds: an interaction not answered within 3 s fails for the user, and
/// webhook events not answered within 3 s count against the app until Discord stops
/// sending them. hookbridge answers only after the ack, which `kafka.produce_timeout`
/// bounds, so a 503 (which Discord does not wait for) cannot come in time either.
fn late_answers(produce_timeout: std::time::Duration, sources: &[Source]) -> Vec<String> {
    if produce_timeout <= DISCORD_ANSWER_BUDGET {
        return Vec::new();
    }
    (sources.iter())
        .filter(|src| matches!(src.verifier.scheme_name(), "discord" | "discord-events"))
        .map(|src| {
            format!(
                "{}: a `{}` source while kafka.produce_timeout is {}: Discord needs the answer within 3 s, so a slow broker ack fails the request for Discord before hookbridge can even answer 503; set kafka.produce_timeout to 2.5s or less",
                src.file,
                src.verifier.scheme_name(),
                humantime::format_duration(produce_timeout)
            )
        })
        .collect()
}

/// Settings that work but weaken what hookbridge protects: each one is legitimate
/// somewhere (a sidecar on loopback, a trusted network), so they are warnings.
fn risky_settings(loaded: &Loaded, connectors: &Connectors) -> Vec<String> {
    let s = &loaded.settings;
    let file = loaded.file_label();
    let mut out = Vec::new();
    let listen = s.http.listen.ip();
    for src in &connectors.sources {
        if src.verifier.scheme_name() == "none" && !listen.is_loopback() {
            out.push(format!(
                "{}: key `source.verify.scheme` is \"none\" while http.listen ({}) is not a loopback address: anyone who reaches the listener can write to topic {}",
                src.file, s.http.listen, src.topic
            ));
        }
    }
    for src in &connectors.sources {
        if let Some(names) = unsigned_headers_read(src) {
            out.push(format!(
                "{}: `source.key` or `source.forward_headers` read {names}, which the {} signature does not cover: a client that captured a signed request can replay it with other values",
                src.file,
                src.verifier.scheme_name()
            ));
        }
    }
    out.extend(late_answers(s.kafka.produce_timeout.0, &connectors.sources));
    if s.http.min_body_rate.0 == 0 {
        out.push(format!(
            "{file}: key `http.min_body_rate` is 0: a stalled body holds its slot and memory for all of http.body_timeout ({})",
            humantime::format_duration(s.http.body_timeout.0)
        ));
    }
    for (file, key) in &connectors.weak_secrets {
        out.push(format!(
            "{file}: key `{key}` holds a secret shorter than {WEAK_SECRET_BYTES} bytes: it can be guessed offline from one captured request; use a long random one"
        ));
    }
    out
}

/// The headers a source copies into its records (key, forwarded headers) that its
/// signature does not cover, comma separated; `None` when there are none.
fn unsigned_headers_read(src: &Source) -> Option<String> {
    if src.verifier.scheme_name() == "none" {
        return None; // nothing is covered, and check warns about that already
    }
    let signed = src.verifier.signed_headers();
    let key = match &src.key {
        KeyRule::Header(h) => Some(h),
        _ => None,
    };
    let mut read: Vec<&str> = (key.into_iter().chain(&src.forward_headers))
        .map(|h| h.as_str())
        .filter(|h| !signed.iter().any(|s| s.eq_ignore_ascii_case(h)))
        .collect();
    read.sort_unstable();
    read.dedup();
    (!read.is_empty()).then(|| read.join(", "))
}

/// The URL with its credentials, its path past the first segment and secret-looking
/// query values replaced, for display:
/// `https://user:pass@host/p?token=…&page=2` → `https://redacted:redacted@host/p?token=redacted&page=2`.
/// Many webhook sinks carry their secret in the path (Slack's `/services/T/B/<secret>`,
/// Discord's `/api/webhooks/<id>/<token>`, Teams' connector URLs), so only the first
/// segment is shown: enough to tell sinks apart, never the token.
fn redacted_url(url: &url::Url) -> String {
    let mut url = url.clone();
    let segments: Vec<String> = (url.path_segments().into_iter().flatten())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if segments.len() > 1 {
        url.set_path(&format!("/{}/redacted", segments[0]));
    }
    // The user, password, query and fragment by the rule every redacted URL follows.
    redacted_url_text(url.as_str())
}

/// A librdkafka property whose value is a credential (a password, a client secret, a
/// private key, a JAAS line), as opposed to one that only names where one is
/// (`ssl.key.location`).
fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passphrase",
        "secret",
        "jaas",
        "key.pem",
        "sasl.oauthbearer.config",
    ]
    .iter()
    .any(|w| k.contains(w))
}

fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "key", "token", "jaas"]
        .iter()
        .any(|w| k.contains(w))
}

fn source_line(out: &mut String, s: &Source) {
    let _ = writeln!(out, "  - {} ({})", s.name, s.file);
    let _ = writeln!(
        out,
        "      POST {} → topic {}   verify: {}",
        s.path,
        s.topic,
        s.verifier.scheme_name()
    );
    if let Some(details) = s.verifier.details() {
        let _ = writeln!(out, "      verify: {details}");
    }
    let _ = writeln!(
        out,
        "      key: {:?}   max_body: {}   rate_limit: {}",
        s.key,
        format_size(s.max_body as u64),
        s.rate_limit.map_or("none".to_owned(), |r| format!(
            "{}/s burst {}",
            r.per_second,
            r.burst.unwrap_or(r.per_second)
        ))
    );
    if !s.forward_headers.is_empty() {
        let names: Vec<&str> = s.forward_headers.iter().map(|h| h.as_str()).collect();
        let _ = writeln!(out, "      forward_headers: {}", names.join(", "));
    }
    if let Some(rule) = &s.event_type {
        let _ = writeln!(out, "      event_type: {rule:?} → hookbridge-event-type");
    }
    if let Some(ce) = &s.cloudevents {
        let _ = writeln!(
            out,
            "      cloudevents: accepted; allowed_origins: {}",
            ce.allowed_origins.join(", ")
        );
    }
    if let Some(r) = &s.routing {
        let _ = writeln!(
            out,
            "      topics_allowed: {} (other routed topics are refused with 400)",
            r.allowed().join(", ")
        );
    }
}

/// The Kafka limits each source's `max_body` needs. The producer raises its own limit;
/// the broker's and topic's the user must raise, or those webhooks are answered 413.
fn record_limits(out: &mut String, loaded: &Loaded, connectors: &Connectors) {
    let header_bytes = loaded.settings.http.max_header_bytes.0 as usize;
    for src in &connectors.sources {
        let needed = src.largest_record(header_bytes);
        let advice = if needed > producer::BROKER_DEFAULT_MAX {
            format!(
                "raise them: Kafka's default is {}",
                producer::BROKER_DEFAULT_MAX
            )
        } else {
            "Kafka's defaults suffice".to_owned()
        };
        let _ = writeln!(
            out,
            "  kafka limit for {}: records up to {needed} bytes; broker message.max.bytes and topic {} max.message.bytes must be >= {needed} ({advice})",
            src.name, src.topic
        );
    }
}

fn sink_line(out: &mut String, s: &Sink) {
    // A templated URL is shown as written, its credentials and secret-looking query
    // values replaced like a literal one's.
    let url = match s.url.literal() {
        Some(mut literal) => {
            // The URL sent carries no user and password (they go as `Authorization`);
            // shown as written, that it has them is worth seeing.
            if let Some(u) = s.url.userinfo() {
                let _ = literal.set_username("redacted");
                let _ = literal.set_password(u.password.as_ref().map(|_| "redacted"));
            }
            redacted_url(&literal)
        }
        None => s.url.redacted(),
    };
    let _ = writeln!(out, "  - {} ({})", s.name, s.file);
    let _ = writeln!(
        out,
        "      {} → {} {}   group: {}",
        s.topics.join(", "),
        s.method,
        url,
        s.group_id
    );
    let ordering = match s.ordering {
        Ordering::Key => "key",
        Ordering::Partition => "partition",
        Ordering::None => "none",
    };
    let _ = writeln!(
        out,
        "      ordering: {ordering}   concurrency: {}   timeout: {:?}   retry: {} attempts, {:?}..{:?}",
        s.concurrency, s.timeout, s.retry.max_attempts, s.retry.initial, s.retry.max
    );
    let _ = writeln!(
        out,
        "      dlq: {}   signing: {}",
        s.dlq_topic
            .as_deref()
            .unwrap_or("none (failing records retry forever)"),
        if s.signing_key.is_some() {
            "standard-webhooks <redacted>"
        } else {
            "off"
        }
    );
    let _ = writeln!(out, "      status: {}", s.status);
    let tombstones = match s.tombstones {
        Tombstones::Deliver => "deliver",
        Tombstones::Skip => "skip",
        Tombstones::DeadLetter => "dead-letter",
    };
    let _ = writeln!(out, "      tombstones: {tombstones}");
    if let Some(b) = &s.batch {
        let format = match b.format {
            BatchFormat::JsonArray => "json-array",
            BatchFormat::Ndjson => "ndjson",
        };
        let items = match b.items {
            BatchItems::Data => "data",
            BatchItems::Envelope => "envelope",
        };
        let _ = writeln!(
            out,
            "      batch: up to {} records or {}, waiting up to {:?}, {format} of {items}",
            b.max_records,
            format_size(b.max_bytes.0),
            b.max_wait
        );
    }
    if !s.url.allowed_hosts().is_empty() {
        let _ = writeln!(
            out,
            "      allowed_hosts: {}",
            s.url.allowed_hosts().join(", ")
        );
    }
    if !s.headers.is_empty() {
        let names: Vec<&str> = s.headers.iter().map(|(n, _)| n.as_str()).collect();
        let _ = writeln!(out, "      headers: {} (values redacted)", names.join(", "));
    }
    for (name, t) in &s.header_templates {
        // Only the placeholders: the literal text around them may be a credential.
        let fields: Vec<String> = t.fields().map(|f| format!("{{{f}}}")).collect();
        let _ = writeln!(
            out,
            "      header {name}: per record from {}",
            fields.join(", ")
        );
    }
    if !s.forward_headers.is_empty() {
        let names: Vec<String> = s.forward_headers.iter().map(|p| p.to_string()).collect();
        let _ = writeln!(out, "      forward_headers: {}", names.join(", "));
    }
    match &s.auth {
        None => {}
        Some(AuthConfig::Bearer(r)) => {
            let _ = writeln!(out, "      auth: bearer {}", r.describe());
        }
        Some(AuthConfig::Basic(b)) => {
            let _ = writeln!(
                out,
                "      auth: basic user {} password {}",
                b.user,
                b.password.describe()
            );
        }
        Some(AuthConfig::Oauth2(o)) => {
            let _ = writeln!(
                out,
                "      auth: oauth2 token_url {} client_id {} client_secret {} scopes [{}] audience {} client_auth {:?}",
                url::Url::parse(o.token_url.as_written()).map_or("<not a URL>".to_owned(), |u| redacted_url(&u)),
                o.client_id,
                o.client_secret.describe(),
                o.scopes.join(" "),
                o.audience.as_deref().unwrap_or("none"),
                o.client_auth
            );
        }
    }
    if let Some(t) = &s.tls {
        let path = |p: &Option<std::path::PathBuf>| {
            p.as_ref()
                .map_or("system roots".to_owned(), |p| p.display().to_string())
        };
        let _ = writeln!(
            out,
            "      tls: ca {}   client certificate {}",
            path(&t.ca),
            t.cert.as_ref().map_or("none".to_owned(), |c| format!(
                "{} (key redacted)",
                c.display()
            ))
        );
    }
    if s.format != crate::connectors::sink::Format::Raw {
        let _ = writeln!(out, "      format: {}", s.format.name());
    }
    if let Some(f) = &s.filter {
        let _ = writeln!(out, "      filter: {}", f.text);
    }
    if let Some(t) = &s.transform {
        let _ = writeln!(out, "      transform: {}", t.text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_urls_lose_credentials_and_secret_looking_query_values() {
        let url = |s: &str| redacted_url(&url::Url::parse(s).unwrap());
        assert_eq!(
            url("https://user:pa55@host.example/p?token=abc&page=2&api_key=k&Signature=s"),
            "https://redacted:redacted@host.example/p?token=redacted&page=2&api_key=redacted&Signature=redacted"
        );
        assert_eq!(url("https://user@host/"), "https://redacted@host/");
        assert_eq!(
            url("http://host/hook?password=x&secret=y&sig=z&key=w&id=7"),
            "http://host/hook?password=redacted&secret=redacted&sig=redacted&key=redacted&id=7"
        );
        assert_eq!(
            url("http://inventory.internal/hooks"),
            "http://inventory.internal/hooks"
        );
        // Pairs split at `;` too, a key read decoded, the fragment hidden whole.
        assert_eq!(
            url("https://host/p?page=2;%74oken=t0k&credential=u;p4ss#access_token=a"),
            "https://host/p?page=2;%74oken=redacted&credential=redacted#redacted"
        );
    }

    /// The URL a sink sends to has no user and password (they go as `Authorization`);
    /// `check` still shows that it was written with them, redacted.
    #[test]
    fn a_sink_url_written_with_credentials_shows_them_redacted() {
        let mut c = crate::connectors::Connectors::default();
        crate::connectors::load_file(
            "orders.toml",
            "[sink]\nname = \"orders\"\ntopics = [\"orders\"]\nurl = \"https://u:pa55word@h.example/hook\"\n",
            &mut c,
        )
        .unwrap();
        let mut out = String::new();
        sink_line(&mut out, &c.sinks[0]);
        assert!(
            out.contains("https://redacted:redacted@h.example/hook"),
            "{out}"
        );
        assert!(!out.contains("pa55word"), "{out}");
    }

    #[test]
    fn a_token_url_is_shown_without_its_password_or_secret_looking_query_values() {
        let url = |s: &str| redacted_url(&url::Url::parse(s).unwrap());
        assert_eq!(
            url("https://id:s3cret@login.example/token?key=k3y"),
            "https://redacted:redacted@login.example/token?key=redacted"
        );
        assert_eq!(
            url("https://login.example/token"),
            "https://login.example/token"
        );
    }

    #[test]
    fn secrets_in_sink_paths_and_function_keys_are_redacted() {
        let url = |s: &str| redacted_url(&url::Url::parse(s).unwrap());
        let slack = url("https://hooks.slack.com/services/T0/B0/XXXX");
        assert!(!slack.contains("XXXX"), "{slack}");
        assert_eq!(slack, "https://hooks.slack.com/services/redacted");
        let discord = url("https://discord.com/api/webhooks/123/tok3n");
        assert!(!discord.contains("tok3n"), "{discord}");
        let teams = url("https://x.webhook.office.com/webhookb2/g@t/IncomingWebhook/abc/def");
        assert!(!teams.contains("abc") && !teams.contains("def"), "{teams}");
        let func = url("https://app.azurewebsites.net/api/hook?code=f1x&clientId=default");
        assert!(!func.contains("f1x"), "{func}");
    }

    #[test]
    fn both_discord_kinds_are_warned_when_the_broker_may_answer_too_late() {
        let mut connectors = Connectors::default();
        let key = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
        for (name, scheme) in [("bot", "discord"), ("events", "discord-events")] {
            let text = format!(
                "[source]\nname = \"{name}\"\npath = \"/{name}\"\ntopic = \"t\"\nverify = {{ scheme = \"{scheme}\", public_keys = [\"{key}\"] }}\n"
            );
            crate::connectors::load_file(&format!("{name}.toml"), &text, &mut connectors).unwrap();
        }
        let gh = "[source]\nname = \"gh\"\npath = \"/gh\"\ntopic = \"t\"\nverify = { scheme = \"github\", secret = \"gh-literal-secret-0123456789\" }\n";
        crate::connectors::load_file("gh.toml", gh, &mut connectors).unwrap();
        let secs = std::time::Duration::from_secs_f64;
        let warned = late_answers(secs(5.0), &connectors.sources);
        assert_eq!(warned.len(), 2, "{warned:?}");
        assert!(
            warned[0].starts_with("bot.toml: a `discord` source while kafka.produce_timeout is 5s")
        );
        assert!(warned[1].starts_with("events.toml: a `discord-events` source"));
        assert!(late_answers(secs(2.5), &connectors.sources).is_empty());
    }
}
