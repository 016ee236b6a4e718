//! A source's page: its figures, its signature failures by reason, and its event catalog
//! (the event types its accepted webhooks carried, from
//! [`crate::telemetry::catalog`]), kept in memory by this process.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;

use super::html::{self, esc};
use super::{figures, ok_page, Console, Page, Refusal};
use crate::commands::ops::escape::escape_str;
use crate::connectors::key::KeyRule;
use crate::connectors::source::EventTypeRule;
use crate::telemetry::catalog::{Seen, MAX_TYPES};

/// How the console names a source's `event_type` rule, as it is written in its file.
pub(super) fn rule_text(rule: &EventTypeRule) -> String {
    match rule {
        EventTypeRule::Rule(KeyRule::Header(h)) => format!("header:{h}"),
        EventTypeRule::Rule(KeyRule::Json(p)) => format!("json:{p}"),
        EventTypeRule::Rule(KeyRule::None) => "none".into(),
        EventTypeRule::CloudEvent => "the CloudEvent's type".into(),
    }
}

fn time(t: std::time::SystemTime) -> String {
    esc(&humantime::format_rfc3339_seconds(t).to_string())
}

fn row(name: String, s: &Seen) -> Vec<String> {
    vec![name, esc(&s.count.to_string()), time(s.first), time(s.last)]
}

pub(super) async fn source_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Page {
    let s = c.viewer(&headers)?;
    if !c.sources.contains(&name) {
        return Err(Refusal::NotFound);
    }
    let o = figures::overview(&c.metrics, std::slice::from_ref(&name), &[]);
    let f = o.sources.get(&name).cloned().unwrap_or_default();
    let p = |k: &str| format!("sources|{name}|{k}");
    let mut body = format!(
        "<p>requests {} ({}) · in Kafka (2xx) {}</p>",
        html::live(&p("requests"), f.requests),
        html::rate(&p("requests")),
        html::live(&p("accepted"), f.accepted),
    );
    let failures: Vec<Vec<String>> = f
        .signature_failures
        .iter()
        .map(|(reason, n)| vec![esc(reason), esc(&n.to_string())])
        .collect();
    let _ = write!(
        body,
        "<h2>Signature failures by reason</h2>{}",
        html::table("signature-failures", &["reason", "requests"], &failures)
    );
    body.push_str("<h2>Event catalog</h2>");
    match c.event_type_rules.get(&name) {
        None => body.push_str(
            "<p class=\"note\">This source has no <code>event_type</code> rule, so its webhooks carry no event type to catalog.</p>",
        ),
        Some(rule) => {
            let cat = c.metrics.event_catalog.snapshot(&name);
            let mut rows: Vec<Vec<String>> = cat
                .types
                .iter()
                .map(|(t, seen)| row(format!("<code>{}</code>", esc(&escape_str(t))), seen))
                .collect();
            if let Some(o) = &cat.other {
                rows.push(row(
                    format!("<em>other (types past the first {MAX_TYPES})</em>"),
                    o,
                ));
            }
            if let Some(u) = &cat.untyped {
                rows.push(row("<em>no event type found</em>".into(), u));
            }
            let _ = write!(
                body,
                "<p class=\"note\">Event types read by <code>{}</code> from the webhooks this process put in Kafka since it started (kept in memory, per process: other replicas and earlier runs are not counted), the most frequent first; at most {MAX_TYPES} types, later ones counted as other. Reload to update.</p>{}",
                esc(rule),
                html::table("catalog", &["event type", "webhooks", "first seen", "last seen"], &rows)
            );
        }
    }
    ok_page(&c, &s, &format!("Source {name}"), &body)
}
