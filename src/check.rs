//! `hookbridge check`: a human summary of the validated configuration. Secrets appear
//! only as their reference (`${NAME}`, `file:/path`) or `<redacted>`, never as values.

use std::fmt::Write;

use crate::config::load::Loaded;
use crate::config::units::format_size;
use crate::connectors::sink::{AuthConfig, Ordering};
use crate::connectors::{Connectors, Sink, Source};
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
    for (file, key) in &connectors.literal_secrets {
        let _ = writeln!(
            out,
            "warning: {file}: key `{key}` holds a literal secret; use \"${{ENV_VAR}}\" or \"file:/path\" outside local development"
        );
    }
    out
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

/// `url` with a password and the query (which may carry an API key) replaced.
fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("redacted"));
            }
            if u.query().is_some() {
                u.set_query(Some("redacted"));
            }
            u.to_string()
        }
        Err(_) => "<not a URL>".to_owned(),
    }
}

fn sink_line(out: &mut String, s: &Sink) {
    let url = s.url.redacted();
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
                redacted_url(&o.token_url),
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
    #[test]
    fn a_token_url_is_shown_without_its_password_or_query() {
        assert_eq!(
            super::redacted_url("https://id:s3cret@login.example/token?key=k3y"),
            "https://id:redacted@login.example/token?redacted"
        );
        assert_eq!(
            super::redacted_url("https://login.example/token"),
            "https://login.example/token"
        );
    }
}
