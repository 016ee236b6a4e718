//! The operator console on the admin listener (`/console`): live figures per source and
//! sink, each sink's recent failures, a DLQ browser with redrive, and replay with a dry
//! run. Off unless `admin.console.token` is set.
//!
//! Security, all in this module: a token login gives an HttpOnly SameSite=Strict session
//! cookie (see [`session`]); every POST carries the session's CSRF token; `read_only`
//! hides the actions and refuses them; every page is sent with a CSP of
//! `default-src 'self'` (no inline script, nothing from elsewhere), and every value on it
//! is HTML-escaped ([`html::esc`]). Actions reuse the CLI's code (`dlq show`, `dlq
//! redrive`, `replay`) with its safety, and are logged with `actor = "console"` and the
//! client's address.
//!
//! Not yet: the per-source event catalog. It needs the source's `event_type` rule; once
//! sources carry it, its counts belong in [`figures::SourceFigures`] and its page beside
//! [`sink_page`].

mod actions;
mod figures;
mod html;
mod session;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use tokio_util::sync::CancellationToken;

use crate::commands::ops::inspect::{self, At, Filter};
use crate::commands::ops::{redrive, replay, OpsError};
use crate::config::load::Loaded;
use crate::config::ConfigError;
use crate::connectors::Connectors;
use crate::telemetry::Metrics;
use actions::Actions;
use html::{esc, url, Frame};
use session::{Login, Session, Sessions, COOKIE};

/// Dead letters listed per DLQ page.
const DLQ_PAGE: usize = 100;
/// Records read from the end of each DLQ partition per DLQ page: a page view (or a
/// reload, or a filter) reads a bounded tail, never a DLQ of millions from its start.
/// `dlq list` reads it all.
const DLQ_SCAN: u64 = 10_000;
/// Body bytes shown on a record page.
const BODY_PREVIEW: usize = 8192;

/// The address a request came from, set by the listener that serves the console; login
/// failures are limited per address.
#[derive(Debug, Clone, Copy)]
pub struct Client(pub std::net::IpAddr);

/// The address of a request, for the login limit and the action log (who did it: with
/// one shared token, the address is what tells operators apart).
fn client_ip(client: Option<axum::Extension<Client>>) -> std::net::IpAddr {
    client.map_or(session::NO_ADDRESS, |axum::Extension(Client(ip))| ip)
}

/// Everything the console serves from.
pub struct Console {
    sessions: Sessions,
    read_only: bool,
    metrics: Arc<Metrics>,
    loaded: Arc<Loaded>,
    /// The sinks (cloned; sources are not needed by any action).
    connectors: Arc<Connectors>,
    sources: Vec<String>,
    sinks: Vec<String>,
    /// Actions running per sink, and dead letters already redriven.
    actions: Arc<Actions>,
    /// The process's shutdown: a redrive in progress stops at its next record, so the
    /// admin listener (which waits for its requests) does not hold the exit.
    stop: CancellationToken,
}

impl Console {
    /// The console of this process; `None` when `admin.console.token` is not set.
    pub fn from_settings(
        loaded: Arc<Loaded>,
        connectors: &Connectors,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Result<Option<Arc<Console>>, ConfigError> {
        let c = &loaded.settings.admin.console;
        let Some(token) = &c.token else {
            return Ok(None);
        };
        let token = token.resolve().map_err(|e| {
            ConfigError::new(loaded.file_label(), "admin.console.token", e.to_string())
        })?;
        let sessions = Sessions::new(token, c.session_ttl.0);
        let read_only = c.read_only;
        let sinks_only = Connectors {
            sinks: connectors.sinks.clone(),
            ..Connectors::default()
        };
        Ok(Some(Arc::new(Console {
            sessions,
            read_only,
            metrics,
            sources: connectors
                .sources
                .iter()
                .map(|s| s.name.to_string())
                .collect(),
            sinks: connectors
                .sinks
                .iter()
                .map(|s| s.name.to_string())
                .collect(),
            connectors: Arc::new(sinks_only),
            loaded,
            actions: Arc::default(),
            stop,
        })))
    }

    fn frame<'a>(&'a self, s: &'a Session) -> Frame<'a> {
        Frame {
            csrf: &s.csrf,
            read_only: self.read_only,
            sinks: &self.sinks,
        }
    }

    /// The session of a page request.
    fn viewer(&self, headers: &HeaderMap) -> Result<Session, Refusal> {
        self.sessions.current(headers).ok_or(Refusal::LogIn)
    }

    /// The session of an action: logged in, the right CSRF token, not read-only.
    fn actor(&self, headers: &HeaderMap, form: &Form) -> Result<Session, Refusal> {
        let s = self
            .sessions
            .current(headers)
            .ok_or(Refusal::Forbidden("log in first"))?;
        if !s.csrf_ok(form.get("csrf")) {
            return Err(Refusal::Forbidden("missing or wrong CSRF token"));
        }
        if self.read_only {
            return Err(Refusal::Forbidden("the console is read-only"));
        }
        Ok(s)
    }

    /// Starts an action on sink `name`, or says that one is already running.
    fn start(&self, name: &str) -> Result<actions::Running, OpsError> {
        self.actions.start(name).ok_or_else(|| {
            OpsError::Refused(format!(
                "another console action on sink {name:?} is running; wait for it to finish"
            ))
        })
    }

    fn sink(&self, name: &str) -> Result<(), Refusal> {
        if self.sinks.iter().any(|s| s == name) {
            Ok(())
        } else {
            Err(Refusal::NotFound)
        }
    }
}

/// The console's routes, all under `/console`.
pub fn routes(console: Arc<Console>) -> Router {
    Router::new()
        .route("/console", get(overview_page))
        .route("/console/", get(overview_page))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", axum::routing::post(logout))
        .route("/console/api/overview", get(overview_json))
        .route("/console/sinks/{name}", get(sink_page))
        .route("/console/sinks/{name}/dlq", get(dlq_page))
        .route("/console/sinks/{name}/dlq/{at}", get(record_page))
        .route(
            "/console/sinks/{name}/dlq/{at}/redrive",
            axum::routing::post(redrive_action),
        )
        .route(
            "/console/sinks/{name}/redrive",
            axum::routing::post(redrive_all_action),
        )
        .route(
            "/console/sinks/{name}/replay",
            get(replay_page).post(replay_action),
        )
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .layer(axum::middleware::map_response(harden))
        .with_state(console)
}

/// Headers on every console response: only this origin's resources, no inline script,
/// no framing, nothing cached or leaked through the referrer.
async fn harden(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Why a request is not served.
#[derive(Debug)]
enum Refusal {
    /// No session: 401 with the login form.
    LogIn,
    /// 403 with the reason.
    Forbidden(&'static str),
    NotFound,
    /// A form over [`FORM_BYTES`] (or cut off): 413.
    TooLarge,
    /// A form not sent within [`FORM_TIMEOUT`]: 408.
    Slow,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::LogIn => {
                (StatusCode::UNAUTHORIZED, html_body(html::login(""))).into_response()
            }
            Refusal::Forbidden(why) => (StatusCode::FORBIDDEN, why).into_response(),
            Refusal::NotFound => (StatusCode::NOT_FOUND, "not found").into_response(),
            Refusal::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "a console form is at most 16 KiB",
            )
                .into_response(),
            Refusal::Slow => (
                StatusCode::REQUEST_TIMEOUT,
                [(header::CONNECTION, "close")],
                "the form was not sent in time",
            )
                .into_response(),
        }
    }
}

fn html_body(text: String) -> ([(header::HeaderName, &'static str); 1], String) {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], text)
}

/// A page, or a refusal.
type Page = Result<Response, Refusal>;

fn ok_page(c: &Console, s: &Session, title: &str, body: &str) -> Page {
    Ok(html_body(html::page(&c.frame(s), title, body)).into_response())
}

/// An operator command failed: its message on a page, with a status that fits.
fn failed_page(c: &Console, s: &Session, title: &str, e: &OpsError) -> Page {
    let status = match e {
        OpsError::NotFound(_) | OpsError::NoSink(_) | OpsError::NoTopic(_) => StatusCode::NOT_FOUND,
        OpsError::Refused(_) | OpsError::NoDlq(_) => StatusCode::CONFLICT,
        _ => StatusCode::BAD_GATEWAY,
    };
    let body = format!("<p class=\"error\">{}</p>", esc(&e.to_string()));
    Ok((status, html_body(html::page(&c.frame(s), title, &body))).into_response())
}

/// Largest form body a console POST reads: a form holds a CSRF token, a login token or a
/// time, never more.
const FORM_BYTES: usize = 16 << 10;
/// How long a POST may take to send its form. The console's POSTs are the only bodies
/// the admin listener reads, and the login is open to anyone who reaches it: without a
/// deadline, clients trickling a body would hold every admin connection slot, and
/// `/healthz` and `/readyz` with them.
const FORM_TIMEOUT: Duration = Duration::from_secs(10);

/// An `application/x-www-form-urlencoded` body.
struct Form(HashMap<String, String>);

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = Refusal;

    async fn from_request(req: Request, _: &S) -> Result<Form, Refusal> {
        let read = axum::body::to_bytes(req.into_body(), FORM_BYTES);
        match tokio::time::timeout(FORM_TIMEOUT, read).await {
            Ok(Ok(body)) => Ok(Form::parse(&body)),
            Ok(Err(_)) => Err(Refusal::TooLarge),
            Err(_) => Err(Refusal::Slow),
        }
    }
}

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
}

async fn login_page() -> Response {
    html_body(html::login("")).into_response()
}

async fn login(
    State(c): State<Arc<Console>>,
    client: Option<axum::Extension<Client>>,
    form: Form,
) -> Response {
    let client = client_ip(client);
    match c.sessions.login(client, form.get("token").unwrap_or("")) {
        Login::Started(id) => {
            tracing::info!(actor = "console", %client, action = "login", "console login");
            let cookie = format!(
                "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}",
                c.sessions.ttl().as_secs()
            );
            (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, "/console".to_owned()),
                    (header::SET_COOKIE, cookie),
                ],
            )
                .into_response()
        }
        Login::Wrong => {
            tracing::warn!(
                actor = "console",
                %client,
                action = "login",
                "console login refused: wrong token"
            );
            (
                StatusCode::UNAUTHORIZED,
                html_body(html::login("That token is not the console token.")),
            )
                .into_response()
        }
        Login::Throttled(wait) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, wait.as_secs().max(1).to_string())],
            html_body(html::login(
                "Too many failed logins in the last minute; try again shortly.",
            )),
        )
            .into_response(),
    }
}

async fn logout(State(c): State<Arc<Console>>, headers: HeaderMap, form: Form) -> Page {
    let s = c
        .sessions
        .current(&headers)
        .ok_or(Refusal::Forbidden("log in first"))?;
    if !s.csrf_ok(form.get("csrf")) {
        return Err(Refusal::Forbidden("missing or wrong CSRF token"));
    }
    c.sessions.logout(&headers);
    let clear = format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/console/login".to_owned()),
            (header::SET_COOKIE, clear),
        ],
    )
        .into_response())
}

async fn overview_json(
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

async fn overview_page(State(c): State<Arc<Console>>, headers: HeaderMap) -> Page {
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
                esc(n),
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

async fn sink_page(
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
    let failures: Vec<Vec<String>> = c
        .metrics
        .recent_failures
        .recent(&name)
        .iter()
        .map(|f| {
            vec![
                esc(&humantime::format_rfc3339_seconds(f.at).to_string()),
                esc(&f.id),
                esc(&f
                    .status
                    .map_or_else(|| f.error.to_owned(), |s| s.to_string())),
                esc(&f.attempts.to_string()),
                esc(&f.outcome),
            ]
        })
        .collect();
    let _ = write!(
        body,
        "<h2>Recent failures</h2><p class=\"note\">The last {} failed attempts, newest first; no bodies. Reload to update.</p>{}<h2>Lag per partition</h2>{}",
        crate::telemetry::failures::PER_SINK,
        html::table("failures", &["time", "record", "status", "attempts", "outcome"], &failures),
        html::table("lag", &["partition", "lag"], &lag),
    );
    ok_page(&c, &s, &format!("Sink {name}"), &body)
}

async fn dlq_page(
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
    let filter = Filter {
        since: None,
        reason: reason.clone(),
        status: status_filter,
        last_per_partition: Some(DLQ_SCAN),
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
            vec![
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
        format!(
            "<form method=\"post\" action=\"/console/sinks/{}/redrive\" data-confirm=\"Redrive every dead letter of this sink that no redrive has handled yet (filters do not apply), as dlq redrive does?\">{}<button class=\"action\">Redrive all (as dlq redrive)</button></form>",
            url(&name),
            html::csrf_field(&s.csrf)
        )
    };
    let body = format!(
        "{redrive_all}<form method=\"get\" class=\"filters\"><label>reason <input name=\"reason\" value=\"{}\" placeholder=\"permanent or exhausted\"></label>\
<label>status <input name=\"status\" value=\"{}\" placeholder=\"400, 4xx or none\"></label><button>Filter</button></form>\
<p>{} of {} matching among the last {DLQ_SCAN} records of each partition of <code>{}</code>, newest first; other sinks' records: {}; unreadable: {}. <code>hookbridge dlq list</code> reads them all.</p>{}",
        esc(reason.as_deref().unwrap_or("")),
        esc(status.as_deref().unwrap_or("")),
        listing.records.len(),
        listing.matched,
        esc(&listing.dlq),
        listing.other_sinks,
        listing.unreadable,
        html::table(
            "dlq",
            &["time", "at", "origin", "reason", "status", "attempts", "response"],
            &rows
        ),
    );
    ok_page(&c, &s, &title, &body)
}

async fn record_page(
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
        .map(|(k, v)| vec![esc(k), format!("<code>{}</code>", esc(v))])
        .collect();
    let cut = if shown.body_truncated {
        ", preview cut"
    } else {
        ""
    };
    let _ = write!(
        body,
        "<h2>Key</h2><pre>{}</pre><h2>Headers</h2>{}<h2>Body ({} bytes{cut})</h2><pre class=\"body\">{}</pre>",
        esc(shown.key.as_deref().unwrap_or("(none)")),
        html::table("headers", &["name", "value"], &header_rows),
        shown.body_bytes,
        esc(&shown.body),
    );
    ok_page(&c, &s, &title, &body)
}

async fn redrive_action(
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
    // Its own task: a client that goes away mid-delivery neither cuts the delivery short
    // nor frees the sink for a second redrive before this one is over.
    let (loaded, connectors, n, actions) = (
        c.loaded.clone(),
        c.connectors.clone(),
        name.clone(),
        c.actions.clone(),
    );
    let stop = c.stop.clone();
    let result = tokio::spawn(async move {
        let _running = running;
        let said = redrive::redrive_one(&loaded, &connectors, &n, at, &stop).await;
        if said.is_ok() {
            actions.redrove(&n, at);
        }
        said
    })
    .await
    .unwrap_or_else(|e| Err(OpsError::Refused(format!("redrive stopped: {e}"))));
    match result {
        Ok(said) => {
            tracing::info!(actor = "console", %client, action = "redrive", connector = %name, at = %at_text, result = %said, "console action");
            let body = format!(
                "<p class=\"result\">{}</p><p><a href=\"/console/sinks/{}/dlq\">Back to the dead letters</a></p>",
                esc(&said),
                url(&name)
            );
            ok_page(&c, &s, &title, &body)
        }
        Err(e) => {
            tracing::warn!(actor = "console", %client, action = "redrive", connector = %name, at = %at_text, error = %e, "console action failed");
            failed_page(&c, &s, &title, &e)
        }
    }
}

async fn redrive_all_action(
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
        summary.map(|s| (lines, s))
    })
    .await
    .unwrap_or_else(|e| Err(OpsError::Refused(format!("redrive stopped: {e}"))));
    match ran {
        Ok((lines, summary)) => {
            tracing::info!(actor = "console", %client, action = "redrive-all", connector = %name, result = %summary, "console action");
            let mut items: String = lines
                .shown
                .iter()
                .map(|l| format!("<li><code>{}</code></li>", esc(l)))
                .collect();
            if lines.more > 0 {
                let _ = write!(items, "<li>… and {} more</li>", lines.more);
            }
            let body = format!(
                "<p class=\"result\">{}</p><ul>{items}</ul><p><a href=\"/console/sinks/{}/dlq\">Back to the dead letters</a></p>",
                esc(&summary),
                url(&name)
            );
            ok_page(&c, &s, &title, &body)
        }
        Err(e) => {
            tracing::warn!(actor = "console", %client, action = "redrive-all", connector = %name, error = %e, "console action failed");
            failed_page(&c, &s, &title, &e)
        }
    }
}

async fn replay_page(
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
    let from = match replay::parse_from(&from_text) {
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
    if forward {
        body.push_str("<p class=\"error\">Refused: that time is past records the sink has not delivered yet. Choose an earlier time.</p>");
    } else if !c.read_only {
        let _ = write!(
            body,
            "<form method=\"post\" data-confirm=\"Move the group back? The sink's processes must be stopped first.\">{}<input type=\"hidden\" name=\"from\" value=\"{}\"><button class=\"action\">Apply the replay</button></form>\
<p class=\"note\">A replay is refused while the sink's group has live members, which includes this process: stop every process running the sink, then replay (<code>hookbridge replay</code>) and start them.</p>",
            html::csrf_field(&s.csrf),
            esc(&from_text)
        );
    }
    ok_page(&c, &s, &title, &body)
}

async fn replay_action(
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
    let from = match replay::parse_from(&from_text) {
        Ok(f) => f,
        Err(e) => return failed_page(&c, &s, &title, &e),
    };
    let running = match c.start(&name) {
        Ok(r) => r,
        Err(e) => return failed_page(&c, &s, &title, &e),
    };
    let (loaded, connectors, n) = (c.loaded.clone(), c.connectors.clone(), name.clone());
    let applied = tokio::task::spawn_blocking(move || {
        let _running = running;
        replay::replay(&loaded, &connectors, &n, from)
    })
    .await
    .unwrap_or_else(|e| Err(OpsError::Refused(format!("replay stopped: {e}"))));
    match applied {
        Ok(lines) => {
            tracing::info!(actor = "console", %client, action = "replay", connector = %name, from = %from_text, "console action");
            let items: String = lines
                .iter()
                .map(|l| format!("<li>{}</li>", esc(l)))
                .collect();
            ok_page(
                &c,
                &s,
                &title,
                &format!("<ul class=\"result\">{items}</ul>"),
            )
        }
        Err(e) => {
            tracing::warn!(actor = "console", %client, action = "replay", connector = %name, from = %from_text, error = %e, "console action failed");
            failed_page(&c, &s, &title, &e)
        }
    }
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/console.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/console.js"),
    )
        .into_response()
}
