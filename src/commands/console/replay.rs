//! Replay from the console: a dry run that shows what would be redelivered, then the
//! replay itself (a seek of the sink's group to a time), with this process's run of the
//! sink stopped for its moment ([`super::pause`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;

use super::html::{self, esc};
use super::{client_ip, failed_page, ok_page, Client, Console, Form, Page};
use crate::commands::ops::{replay, OpsError};

/// Past the drain timeout, how long a replay waits for this process's run of the sink
/// to leave the group before it gives up (and the sink goes on).
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

pub(super) async fn replay_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    let s = c.viewer(&headers)?;
    c.sink(&name)?;
    let title = format!("Replay {name}");
    let from_text = q
        .get("from")
        .map(|v| v.trim().to_owned())
        .unwrap_or_default();
    let mut body = format!(
        "<form method=\"get\"><label>from <input name=\"from\" value=\"{}\" placeholder=\"2h or 2026-11-22T08:00:00Z\"></label><button>Dry run</button></form>",
        esc(&from_text)
    );
    if from_text.is_empty() {
        return ok_page(&c, &s, &title, &body);
    }
    let from = match replay::parse_time("from", &from_text) {
        Ok(f) => f,
        Err(e) => return failed_page(&c, &s, &title, &e),
    };
    let (loaded, connectors, n) = (c.loaded.clone(), c.connectors.clone(), name.clone());
    let planned =
        tokio::task::spawn_blocking(move || replay::dry_run(&loaded, &connectors, &n, from))
            .await
            .unwrap_or_else(|e| Err(OpsError::Refused(format!("dry run stopped: {e}"))));
    let moves = match planned {
        Ok(m) => m,
        Err(e) => return failed_page(&c, &s, &title, &e),
    };
    let rows: Vec<Vec<String>> = moves
        .iter()
        .map(|m| {
            vec![
                esc(&format!("{} [{}]", m.topic, m.partition)),
                esc(&m.resume.to_string()),
                esc(&m
                    .target
                    .map_or_else(|| "no record since".into(), |t| t.to_string())),
                esc(&m.again().to_string()),
                esc(&m.skipped().to_string()),
            ]
        })
        .collect();
    let again: i64 = moves.iter().map(|m| m.again()).sum();
    let forward = moves.iter().any(|m| m.skipped() > 0);
    let _ = write!(
        body,
        "<p>Dry run: {again} record(s) would be delivered again. Nothing has changed.</p>{}",
        html::table(
            "replay",
            &[
                "partition",
                "resumes at",
                "moves to",
                "delivered again",
                "would skip"
            ],
            &rows
        )
    );
    // The time the dry run resolved, not `2h` again: applied a minute later, a duration
    // would move the group to another time than the one shown. Through the millisecond
    // the dry run looked up, which also keeps a time before 1970 writable; one past 9999
    // (an offset can make one of 9999-12-31) cannot be written at all.
    let resolved =
        crate::clock::rfc3339_millis(crate::clock::at_millis(crate::clock::millis_of(from)));
    if forward {
        body.push_str("<p class=\"error\">Refused: that time is past records the sink has not delivered yet. Choose an earlier time.</p>");
    } else if resolved.is_none() {
        body.push_str("<p class=\"error\">Refused: that time is past what an RFC 3339 time holds (9999-12-31). Choose an earlier time.</p>");
    } else if !c.read_only {
        let _ = write!(
            body,
            "<form method=\"post\" data-confirm=\"Move the group back and deliver these records again? This process stops the sink for the moment of the replay.\">{}<input type=\"hidden\" name=\"from\" value=\"{}\"><button class=\"action\">Apply the replay</button></form>\
<p class=\"note\">Applying stops this process's run of the sink (in-flight deliveries finish, the watermark is committed, it leaves the group), moves the group back exactly as <code>hookbridge replay</code> does, and starts the sink again from there. It is refused, and nothing moves, while other processes run the sink: stop them first.</p>",
            html::csrf_field(&s.csrf),
            esc(resolved.as_deref().unwrap_or_default())
        );
    }
    ok_page(&c, &s, &title, &body)
}

pub(super) async fn replay_action(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    client: Option<axum::Extension<Client>>,
    form: Form,
) -> Page {
    let client = client_ip(client);
    let s = c.actor(&headers, &form)?;
    c.sink(&name)?;
    let title = format!("Replay {name}");
    let from_text = form.get("from").unwrap_or("").to_owned();
    let from = match replay::parse_time("from", &from_text) {
        Ok(f) => f,
        Err(e) => return failed_page(&c, &s, &title, &e),
    };
    let running = match c.start(&name) {
        Ok(r) => r,
        Err(e) => return failed_page(&c, &s, &title, &e),
    };
    // This process is a member of the sink's group: its run of the sink stops (drains,
    // commits, leaves the group) for the replay and runs again after it, from the
    // rewound offsets. Other processes running the sink still make the replay refused.
    // All of it, the log line of who did it included, runs in a task of its own (see
    // `pause`): a client that goes away before the answer changes nothing.
    let wait = c.loaded.settings.shutdown.drain_timeout.0 + STOP_GRACE;
    // Logged before anything moves: should the process be stopped while the replay's
    // Kafka calls run, who asked for it is on record whatever happened.
    tracing::info!(actor = "console", %client, action = "replay", connector = %name, from = %from_text, "console action requested");
    let (loaded, connectors, n) = (c.loaded.clone(), c.connectors.clone(), name.clone());
    let replaying = c.switches.replay(&name, wait, &c.stop, move || {
        replay::replay(&loaded, &connectors, &n, from)
    });
    let applied = tokio::spawn(async move {
        // The sink's one-action lock is released only once the replay's task has
        // ended, its hold on the sink included: a second action cannot start between.
        let _running = running;
        let applied = match replaying.await {
            Ok(Ok(applied)) => applied,
            Ok(Err(e)) => Err(OpsError::Refused(e.to_string())),
            Err(e) => Err(OpsError::Refused(format!("replay stopped: {e}"))),
        };
        match &applied {
            Ok(_) => {
                tracing::info!(actor = "console", %client, action = "replay", connector = %name, from = %from_text, "console action");
            }
            Err(e) => {
                tracing::warn!(actor = "console", %client, action = "replay", connector = %name, from = %from_text, error = %e, "console action failed");
            }
        }
        applied
    })
    .await
    .unwrap_or_else(|e| Err(OpsError::Refused(format!("replay stopped: {e}"))));
    match applied {
        Ok(lines) => {
            let items: String = lines
                .iter()
                .map(String::as_str)
                .chain(["this process runs the sink again from there"])
                .map(|l| format!("<li>{}</li>", esc(l)))
                .collect();
            ok_page(
                &c,
                &s,
                &title,
                &format!("<ul class=\"result\">{items}</ul>"),
            )
        }
        Err(e) => failed_page(&c, &s, &title, &e),
    }
}
