//! The overview and per-sink pages: live figures from the metrics registry, a sink's
//! recent failures and its lag per partition.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::html::{self, esc, url};
use super::{figures, ok_page, Console, Page, Refusal};
use crate::commands::ops::inspect;

pub(super) async fn overview_json(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    c.viewer(&headers)?;
    Ok(Json(figures::overview(&c.metrics, &c.sources, &c.sinks)).into_response())
}

fn seconds(v: Option<f64>) -> String {
    match v {
        Some(s) if s.is_finite() => format!("≤ {} ms", (s * 1000.0).round()),
        Some(_) => "> 10 s".into(),
        None => "–".into(),
    }
}

fn percent(ok: u64, all: u64) -> String {
    if all == 0 {
        "–".into()
    } else {
        format!("{:.1} %", ok as f64 * 100.0 / all as f64)
    }
}

pub(super) async fn overview_page(State(c): State<Arc<Console>>, headers: HeaderMap) -> Page {
    let s = c.viewer(&headers)?;
    let o = figures::overview(&c.metrics, &c.sources, &c.sinks);
    let sinks: Vec<Vec<String>> = o
        .sinks
        .iter()
        .map(|(n, f)| {
            let p = |k: &str| format!("sinks|{n}|{k}");
            vec![
                format!("<a href=\"/console/sinks/{}\">{}</a>", url(n), esc(n)),
                html::rate(&p("delivered")),
                html::live(&p("delivered"), f.delivered),
                html::live(&p("dead_lettered"), f.dead_lettered),
                format!(
                    "<span data-pct=\"sinks|{}\">{}</span>",
                    esc(n),
                    percent(f.attempts_ok, f.attempts)
                ),
                html::live(&p("in_flight"), f.in_flight),
                html::live(&p("lag_total"), f.lag_total),
                html::live(&p("breaker"), f.breaker),
                html::live(&p("dlq_writes"), f.dlq_writes),
                format!(
                    "<span data-fig=\"{}\" data-kind=\"seconds\">{}</span> / <span data-fig=\"{}\" data-kind=\"seconds\">{}</span>",
                    esc(&p("p50_seconds")),
                    seconds(f.p50_seconds),
                    esc(&p("p99_seconds")),
                    seconds(f.p99_seconds)
                ),
            ]
        })
        .collect();
    let sources: Vec<Vec<String>> = o
        .sources
        .iter()
        .map(|(n, f)| {
            let p = |k: &str| format!("sources|{n}|{k}");
            let failures = f
                .signature_failures
                .iter()
                .map(|(r, k)| format!("{}: {k}", esc(r)))
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                format!("<a href=\"/console/sources/{}\">{}</a>", url(n), esc(n)),
                html::rate(&p("requests")),
                html::live(&p("requests"), f.requests),
                html::live(&p("accepted"), f.accepted),
                if failures.is_empty() {
                    "–".into()
                } else {
                    failures
                },
                format!(
                    "<span data-fig=\"{}\" data-kind=\"seconds\">{}</span>",
                    esc(&p("produce_p99_seconds")),
                    seconds(f.produce_p99_seconds)
                ),
            ]
        })
        .collect();
    let body = format!(
        "<h2>Sinks</h2>{}<h2>Sources</h2>{}<p class=\"note\">Figures from the same registry as <code>/metrics</code>, refreshed every 2 s.</p>",
        html::table(
            "figures",
            &["sink", "rate", "delivered", "dead-lettered", "2xx attempts", "in flight", "lag", "breaker", "dlq writes", "p50 / p99"],
            &sinks
        ),
        html::table(
            "figures",
            &["source", "rate", "requests", "in Kafka (2xx)", "signature failures", "produce p99"],
            &sources
        ),
    );
    ok_page(&c, &s, "Overview", &body)
}

pub(super) async fn sink_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Page {
    let s = c.viewer(&headers)?;
    c.sink(&name)?;
    let o = figures::overview(&c.metrics, &[], std::slice::from_ref(&name));
    let f = o.sinks.get(&name).cloned().unwrap_or_default();
    let p = |k: &str| format!("sinks|{name}|{k}");
    let mut body = format!(
        "<p><a href=\"/console/sinks/{u}/dlq\">Dead letters</a> · <a href=\"/console/sinks/{u}/replay\">Replay</a></p>\
<p>delivered {} ({}) · dead-lettered {} · retries {} · in flight {} · buffered {} · paused partitions {} · breaker {} · lag {}</p>",
        html::live(&p("delivered"), f.delivered),
        html::rate(&p("delivered")),
        html::live(&p("dead_lettered"), f.dead_lettered),
        html::live(&p("retries"), f.retries),
        html::live(&p("in_flight"), f.in_flight),
        html::live(&p("buffered"), f.buffered),
        html::live(&p("paused_partitions"), f.paused_partitions),
        html::live(&p("breaker"), f.breaker),
        html::live(&p("lag_total"), f.lag_total),
        u = url(&name),
    );
    let lag: Vec<Vec<String>> = f
        .lag
        .iter()
        .map(|(at, l)| vec![esc(at), esc(&l.to_string())])
        .collect();
    let recent = c.metrics.recent_failures.recent(&name);
    let answers: Vec<&bytes::Bytes> = recent.iter().map(|f| &f.response).collect();
    let answers = inspect::response_lines(&c.connectors, &name, &answers);
    let failures: Vec<Vec<String>> = recent
        .iter()
        .zip(answers)
        .map(|(f, answer)| {
            vec![
                esc(&humantime::format_rfc3339_seconds(f.at).to_string()),
                esc(&f.id),
                esc(&f
                    .status
                    .map_or_else(|| f.error.to_owned(), |s| s.to_string())),
                esc(&f.attempts.to_string()),
                esc(&f.outcome),
                format!("<code>{}</code>", esc(&answer)),
            ]
        })
        .collect();
    let _ = write!(
        body,
        "<h2>Recent failures</h2><p class=\"note\">The last {} failed attempts of this process, newest first, with the start of each answer (the sink's secrets masked); never a record's body or headers. Reload to update.</p>{}<h2>Lag per partition</h2>{}",
        crate::telemetry::failures::PER_SINK,
        html::table("failures", &["time", "record", "status", "attempts", "outcome", "response"], &failures),
        html::table("lag", &["partition", "lag"], &lag),
    );
    ok_page(&c, &s, &format!("Sink {name}"), &body)
}
