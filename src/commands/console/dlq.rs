//! The dead-letter browser (a bounded tail of each DLQ partition, filtered), one dead
//! letter's page, and redrive of one, the selected or all of a sink's dead letters.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;

use super::actions;
use super::html::{self, esc, url};
use super::{client_ip, failed_page, failed_page_with, ok_page, Client, Console, Form, Page};
use crate::commands::ops::inspect::{self, At, Filter};
use crate::commands::ops::{redrive, OpsError};

/// Dead letters listed per DLQ page.
const DLQ_PAGE: usize = 100;
/// Records read from the end of each DLQ partition per DLQ page: a page view (or a
/// reload, or a filter) reads a bounded tail, never a DLQ of millions from its start.
/// `dlq list` reads it all.
const DLQ_SCAN: u64 = 10_000;
/// Body bytes shown on a record page.
const BODY_PREVIEW: usize = 8192;

/// Characters of a key or header value the record page shows, as of the body: a record
/// may carry megabytes in either, and the page would be several times that once
/// escaped. `dlq show` prints them whole.
const FIELD_PREVIEW: usize = BODY_PREVIEW;

pub(super) async fn dlq_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    let s = c.viewer(&headers)?;
    c.sink(&name)?;
    let title = format!("Dead letters of {name}");
    let given = |k: &str| {
        q.get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let (reason, status) = (given("reason"), given("status"));
    let status_filter = match status.as_deref().map(str::parse).transpose() {
        Ok(f) => f,
        Err(e) => return failed_page(&c, &s, &title, &e),
    };
    let reason_filter = match (reason.as_deref())
        .map(|r| inspect::parse_reason("reason", r))
        .transpose()
    {
        Ok(r) => r,
        Err(e) => return failed_page(&c, &s, &title, &e),
    };
    let older_than = match given("older").as_deref().map(str::parse).transpose() {
        Ok(k) => k,
        Err(e) => return failed_page(&c, &s, &title, &e),
    };
    let filter = Filter {
        since: None,
        reason: reason_filter,
        status: status_filter,
        last_per_partition: Some(DLQ_SCAN),
        older_than,
    };
    let (loaded, connectors, n) = (c.loaded.clone(), c.connectors.clone(), name.clone());
    let listed = tokio::task::spawn_blocking(move || {
        inspect::list(&loaded, &connectors, &n, &filter, DLQ_PAGE)
    })
    .await
    .unwrap_or_else(|e| Err(OpsError::Refused(format!("listing stopped: {e}"))));
    let listing = match listed {
        Ok(l) => l,
        Err(e) => return failed_page(&c, &s, &title, &e),
    };
    let rows: Vec<Vec<String>> = listing
        .records
        .iter()
        .rev()
        .map(|r| {
            let pick = if c.read_only {
                String::new()
            } else {
                format!(
                    "<input type=\"checkbox\" name=\"at\" value=\"{}\" form=\"redrive-selected\" aria-label=\"select {}\">",
                    esc(&r.at()),
                    esc(&r.at())
                )
            };
            vec![
                pick,
                esc(&r.time),
                format!(
                    "<a href=\"/console/sinks/{}/dlq/{}\">{}</a>",
                    url(&name),
                    url(&r.at()),
                    esc(&r.at())
                ),
                esc(&format!("{} [{}] @{}", r.topic, r.partition, r.offset)),
                esc(&r.reason),
                esc(&r.status.map_or_else(|| r.error.clone(), |s| s.to_string())),
                esc(&r.attempts.to_string()),
                format!("<code>{}</code>", esc(&r.response)),
            ]
        })
        .collect();
    let redrive_all = if c.read_only {
        String::new()
    } else {
        // The checkboxes in the table belong to the first form through their `form`
        // attribute: no script needed to collect them.
        format!(
            "<form method=\"post\" id=\"redrive-selected\" action=\"/console/sinks/{u}/dlq/redrive\" data-confirm=\"POST the selected dead letters to the sink's destination again?\">{csrf}<button class=\"action\">Redrive the selected</button></form>\
<form method=\"post\" action=\"/console/sinks/{u}/redrive\" data-confirm=\"Redrive every dead letter of this sink that no redrive has handled yet (filters do not apply), as dlq redrive does?\">{csrf}<button class=\"action\">Redrive all (as dlq redrive)</button></form>",
            u = url(&name),
            csrf = html::csrf_field(&s.csrf)
        )
    };
    let body = format!(
        "{redrive_all}<form method=\"get\" class=\"filters\"><label>reason <input name=\"reason\" value=\"{}\" placeholder=\"permanent, exhausted, template…\"></label>\
<label>status <input name=\"status\" value=\"{}\" placeholder=\"400, 4xx or none\"></label><button>Filter</button></form>\
<p>{} of {} matching{} among the last {DLQ_SCAN} records of each partition of <code>{}</code>, newest first; other sinks' records: {}; unreadable: {}. <code>hookbridge dlq list</code> reads them all.</p>{}{}",
        esc(reason.as_deref().unwrap_or("")),
        esc(status.as_deref().unwrap_or("")),
        listing.records.len(),
        listing.matched,
        if older_than.is_some() { " (older ones)" } else { "" },
        esc(&listing.dlq),
        listing.other_sinks,
        listing.unreadable,
        html::table(
            "dlq",
            &["", "time", "at", "origin", "reason", "status", "attempts", "response"],
            &rows
        ),
        older_link(&name, &reason, &status, &listing),
    );
    ok_page(&c, &s, &title, &body)
}

pub(super) async fn record_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path((name, at)): Path<(String, String)>,
) -> Page {
    let s = c.viewer(&headers)?;
    c.sink(&name)?;
    let title = format!("Dead letter {at} of {name}");
    let at: At = match at.parse() {
        Ok(a) => a,
        Err(e) => return failed_page(&c, &s, &title, &e),
    };
    let (loaded, connectors, n) = (c.loaded.clone(), c.connectors.clone(), name.clone());
    let shown = tokio::task::spawn_blocking(move || {
        inspect::show(&loaded, &connectors, &n, at, BODY_PREVIEW)
    })
    .await
    .unwrap_or_else(|e| Err(OpsError::Refused(format!("reading stopped: {e}"))));
    let shown = match shown {
        Ok(sh) => sh,
        Err(e) => return failed_page(&c, &s, &title, &e),
    };
    let mut body = String::new();
    if let Some(sum) = &shown.summary {
        let _ = write!(
            body,
            "<dl><dt>origin</dt><dd>{}</dd><dt>reason</dt><dd>{} ({})</dd><dt>status</dt><dd>{}</dd><dt>attempts</dt><dd>{}</dd><dt>dead-lettered</dt><dd>{}</dd><dt>response</dt><dd><code>{}</code></dd></dl>",
            esc(&format!("{} [{}] @{}", sum.topic, sum.partition, sum.offset)),
            esc(&sum.reason),
            esc(&sum.error),
            esc(&sum.status.map_or_else(|| "–".into(), |s| s.to_string())),
            sum.attempts,
            esc(&shown.time),
            esc(&sum.response),
        );
    } else {
        body.push_str("<p class=\"error\">Not a hookbridge dead letter: no readable envelope; it cannot be redriven.</p>");
    }
    if !c.read_only && shown.summary.is_some() {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/console/sinks/{}/dlq/{}/redrive\" data-confirm=\"POST this record to the sink's destination again?\">{}<button class=\"action\">Redrive to the destination</button></form>",
            url(&name),
            url(&format!("{}:{}", at.partition, at.offset)),
            html::csrf_field(&s.csrf)
        );
    }
    let header_rows: Vec<Vec<String>> = shown
        .headers
        .iter()
        .map(|(k, v)| match v {
            Some(v) => vec![
                esc(&preview(k)),
                format!("<code>{}</code>", esc(&preview(v))),
            ],
            None => vec![esc(&preview(k)), "<em>null</em>".to_owned()],
        })
        .collect();
    let cut = if shown.body_truncated {
        ", preview cut"
    } else {
        ""
    };
    let _ = write!(
        body,
        "<h2>Key</h2><pre>{}</pre><h2>Headers</h2>{}<h2>Body ({} bytes{cut})</h2><pre class=\"body\">{}</pre>",
        esc(&preview(shown.key.as_deref().unwrap_or("(none)"))),
        html::table("headers", &["name", "value"], &header_rows),
        shown.body_bytes,
        esc(&shown.body),
    );
    ok_page(&c, &s, &title, &body)
}

/// `text` up to [`FIELD_PREVIEW`] characters, saying how much more there is.
fn preview(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(FIELD_PREVIEW) {
        None => text.into(),
        Some((end, _)) => format!(
            "{}… ({} more bytes: `hookbridge dlq show` prints it whole)",
            &text[..end],
            text.len() - end
        )
        .into(),
    }
}

pub(super) async fn redrive_action(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path((name, at)): Path<(String, String)>,
    client: Option<axum::Extension<Client>>,
    form: Form,
) -> Page {
    let client = client_ip(client);
    let s = c.actor(&headers, &form)?;
    c.sink(&name)?;
    let title = format!("Redrive {at} of {name}");
    let at: At = match at.parse() {
        Ok(a) => a,
        Err(e) => return failed_page(&c, &s, &title, &e),
    };
    let at_text = format!("{}:{}", at.partition, at.offset);
    let running = match c.start(&name) {
        Ok(r) => r,
        Err(e) => return failed_page(&c, &s, &title, &e),
    };
    if c.actions.was_redriven(&name, at) {
        let e = OpsError::Refused(format!(
            "{at_text} of {name} was already redriven from this console; if it failed again, its new dead letter is further on in the DLQ"
        ));
        return failed_page(&c, &s, &title, &e);
    }
    // Before anything is sent: a process killed mid-redrive still left who asked.
    tracing::info!(actor = "console", %client, action = "redrive", connector = %name, at = %at_text, "console action requested");
    // Its own task: a client that goes away mid-delivery neither cuts the delivery short
    // nor frees the sink for a second redrive before this one is over.
    let (loaded, connectors, n, actions) = (
        c.loaded.clone(),
        c.connectors.clone(),
        name.clone(),
        c.actions.clone(),
    );
    let stop = c.stop.clone();
    let logged_at = at_text.clone();
    let result = tokio::spawn(async move {
        let _running = running;
        let said = redrive::redrive_one(&loaded, &connectors, &n, at, &stop, None).await;
        // Logged here, not by the handler: a browser that goes away drops the handler,
        // and the redrive it asked for still runs to its end.
        let at_text = logged_at;
        match &said {
            Ok(said) => {
                actions.redrove(&n, at);
                tracing::info!(actor = "console", %client, action = "redrive", connector = %n, at = %at_text, result = %said, "console action");
            }
            Err(e) => {
                tracing::warn!(actor = "console", %client, action = "redrive", connector = %n, at = %at_text, error = %e, "console action failed");
            }
        }
        said
    })
    .await
    .unwrap_or_else(|e| Err(OpsError::Refused(format!("redrive stopped: {e}"))));
    match result {
        Ok(said) => {
            let body = format!(
                "<p class=\"result\">{}</p><p><a href=\"/console/sinks/{}/dlq\">Back to the dead letters</a></p>",
                esc(&said),
                url(&name)
            );
            ok_page(&c, &s, &title, &body)
        }
        Err(e) => failed_page(&c, &s, &title, &e),
    }
}

/// The link to the next page of a listing (older dead letters, the same filters) when
/// more matched than it shows.
fn older_link(
    name: &str,
    reason: &Option<String>,
    status: &Option<String>,
    listing: &inspect::Listing,
) -> String {
    // The listing is oldest first: its first record is the oldest shown.
    let Some(oldest) = listing.records.first() else {
        return String::new();
    };
    if listing.matched <= listing.records.len() {
        return String::new();
    }
    let mut query = format!("older={}", oldest.page_key());
    for (k, v) in [("reason", reason), ("status", status)] {
        if let Some(v) = v {
            let _ = write!(query, "&{k}={}", url(v));
        }
    }
    format!(
        "<p><a href=\"/console/sinks/{}/dlq?{}\">Older dead letters</a></p>",
        url(name),
        esc(&query)
    )
}

/// Dead letters one "redrive the selected" takes: a page's worth.
const SELECTED_MAX: usize = DLQ_PAGE;

/// Redrives the dead letters ticked on the DLQ page, one after the other in DLQ order,
/// each exactly as "redrive one" does (the same checks, the same code as the CLI): one
/// refused or handled already is reported and the others still go; once one is
/// dead-lettered again, the rest are reported as not sent.
pub(super) async fn redrive_selected_action(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    client: Option<axum::Extension<Client>>,
    form: Form,
) -> Page {
    let client = client_ip(client);
    let s = c.actor(&headers, &form)?;
    c.sink(&name)?;
    let title = format!("Redrive the selected dead letters of {name}");
    let picked: Result<Vec<At>, OpsError> = form.all("at").map(str::parse).collect();
    let mut picked = match picked {
        Ok(p) => p,
        Err(e) => return failed_page(&c, &s, &title, &e),
    };
    // In DLQ order, so the redrive group can move past each in turn where they follow
    // one another from where it resumes.
    picked.sort_by_key(|a| (a.partition, a.offset));
    picked.dedup();
    if picked.is_empty() || picked.len() > SELECTED_MAX {
        let e = OpsError::Invalid(format!(
            "select between 1 and {SELECTED_MAX} dead letters (selected: {})",
            picked.len()
        ));
        return failed_page(&c, &s, &title, &e);
    }
    let running = match c.start(&name) {
        Ok(r) => r,
        Err(e) => return failed_page(&c, &s, &title, &e),
    };
    let (loaded, connectors, n, actions) = (
        c.loaded.clone(),
        c.connectors.clone(),
        name.clone(),
        c.actions.clone(),
    );
    let stop = c.stop.clone();
    let asked: Vec<String> = (picked.iter())
        .map(|a| format!("{}:{}", a.partition, a.offset))
        .collect();
    tracing::info!(actor = "console", %client, action = "redrive-selected", connector = %name, at = %asked.join(","), "console action requested");
    // Its own task, as for one: the browser going away does not cut the batch short.
    let lines = tokio::spawn(async move {
        let _running = running;
        let mut lines = Vec::with_capacity(picked.len());
        // The sink's redrive lock, once for them all: joining its group takes a broker's
        // first-rebalance delay (3 s by default) each time.
        let lock = tokio::task::block_in_place(|| redrive::take_lock(&loaded, &connectors, &n, &stop));
        // Each redrive runs the sink's whole retry schedule: once one is not delivered
        // (the destination still refuses), the rest are not tried, so one action never
        // holds the sink's redrives for the schedule of every selected record.
        let mut refused = false;
        for at in picked {
            let at_text = format!("{}:{}", at.partition, at.offset);
            if stop.is_cancelled() {
                lines.push((at_text, Err("not sent: the process is stopping".to_owned())));
                continue;
            }
            if refused {
                lines.push((
                    at_text,
                    Err("not sent: an earlier one was not delivered; redrive it once the destination takes them".to_owned()),
                ));
                continue;
            }
            if actions.was_redriven(&n, at) {
                lines.push((
                    at_text,
                    Err("already redriven from this console; if it failed again, its new dead letter is further on in the DLQ".to_owned()),
                ));
                continue;
            }
            let said = match &lock {
                Ok(held) => {
                    redrive::redrive_one(&loaded, &connectors, &n, at, &stop, Some(held)).await
                }
                Err(e) => Err(OpsError::Refused(format!("not sent: {e}"))),
            };
            // Dead-lettered again: the destination still refuses. (An error is about this
            // record alone: not found, passed, not a dead letter of this sink.)
            refused = said.as_ref().is_ok_and(|s| s.ends_with(": DeadLettered"));
            match said {
                Ok(said) => {
                    actions.redrove(&n, at);
                    tracing::info!(actor = "console", %client, action = "redrive-selected", connector = %n, at = %at_text, result = %said, "console action");
                    lines.push((at_text, Ok(said)));
                }
                Err(e) => {
                    tracing::warn!(actor = "console", %client, action = "redrive-selected", connector = %n, at = %at_text, error = %e, "console action failed");
                    lines.push((at_text, Err(e.to_string())));
                }
            }
        }
        lines
    })
    .await;
    let lines = match lines {
        Ok(l) => l,
        Err(e) => {
            let e = OpsError::Refused(format!("redrive stopped: {e}"));
            return failed_page(&c, &s, &title, &e);
        }
    };
    let sent = lines.iter().filter(|(_, r)| r.is_ok()).count();
    let items: String = lines
        .iter()
        .map(|(at, r)| match r {
            Ok(said) => format!("<li><code>{}</code>: {}</li>", esc(at), esc(said)),
            Err(e) => format!(
                "<li><code>{}</code>: <span class=\"error\">{}</span></li>",
                esc(at),
                esc(e)
            ),
        })
        .collect();
    let body = format!(
        "<p class=\"result\">redriven: {sent} of {}</p><ul>{items}</ul><p><a href=\"/console/sinks/{}/dlq\">Back to the dead letters</a></p>",
        lines.len(),
        url(&name)
    );
    ok_page(&c, &s, &title, &body)
}

pub(super) async fn redrive_all_action(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    client: Option<axum::Extension<Client>>,
    form: Form,
) -> Page {
    let client = client_ip(client);
    let s = c.actor(&headers, &form)?;
    c.sink(&name)?;
    let title = format!("Redrive every dead letter of {name}");
    let running = match c.start(&name) {
        Ok(r) => r,
        Err(e) => return failed_page(&c, &s, &title, &e),
    };
    let (loaded, connectors, n) = (c.loaded.clone(), c.connectors.clone(), name.clone());
    let stop = c.stop.clone();
    tracing::info!(actor = "console", %client, action = "redrive-all", connector = %name, "console action requested");
    // The redrive alternates blocking Kafka calls with awaited deliveries: it runs on a
    // blocking thread of its own, as the CLI runs it.
    let ran = tokio::task::spawn_blocking(move || {
        let _running = running;
        let mut lines = actions::Lines::default();
        let opts = redrive::Redrive {
            connector: &n,
            to: redrive::Target::Destination,
            limit: None,
            dry_run: false,
            stop,
        };
        let mut keep = |line: String| lines.push(line);
        let summary = tokio::runtime::Handle::current().block_on(redrive::redrive(
            &loaded,
            &connectors,
            opts,
            &mut keep,
        ));
        // Logged here, not by the handler: a browser that goes away drops the handler,
        // and the redrive it asked for still runs to its end.
        match &summary {
            Ok(summary) => {
                tracing::info!(actor = "console", %client, action = "redrive-all", connector = %n, result = %summary, "console action");
            }
            Err(e) => {
                tracing::warn!(actor = "console", %client, action = "redrive-all", connector = %n, error = %e, "console action failed");
            }
        }
        // The lines go with an error too: what was redriven or passed over before it
        // (a dead letter cut to fit, committed past) is on the page either way.
        (lines, summary.map(|s| s.to_string()))
    })
    .await
    .unwrap_or_else(|e| {
        let stopped = OpsError::Refused(format!("redrive stopped: {e}"));
        (actions::Lines::default(), Err(stopped))
    });
    let (lines, summary) = ran;
    let mut items: String = lines
        .shown
        .iter()
        .map(|l| format!("<li><code>{}</code></li>", esc(l)))
        .collect();
    if lines.more > 0 {
        let _ = write!(items, "<li>… and {} more</li>", lines.more);
    }
    let back = format!(
        "<p><a href=\"/console/sinks/{}/dlq\">Back to the dead letters</a></p>",
        url(&name)
    );
    match summary {
        Ok(summary) => {
            let body = format!(
                "<p class=\"result\">{}</p><ul>{items}</ul>{back}",
                esc(&summary)
            );
            ok_page(&c, &s, &title, &body)
        }
        Err(e) if items.is_empty() => failed_page(&c, &s, &title, &e),
        Err(e) => failed_page_with(&c, &s, &title, &e, &format!("<ul>{items}</ul>{back}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_field_is_cut_on_a_character_with_what_is_left_said() {
        assert_eq!(preview("short"), "short");
        let exact = "é".repeat(FIELD_PREVIEW);
        assert_eq!(preview(&exact), exact.as_str());
        let long = format!("{exact}éé");
        let cut = preview(&long);
        assert!(cut.starts_with(&exact), "the first characters whole");
        assert!(
            cut.ends_with("… (4 more bytes: `hookbridge dlq show` prints it whole)"),
            "{}",
            &cut[cut.len() - 80..]
        );
    }
}
