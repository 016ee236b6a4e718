//! The operator console on the admin listener (`/console`): live figures per source and
//! sink, each sink's recent failures, a DLQ browser with redrive, replay with a dry run
//! (applied with this process's run of the sink stopped for it, see [`pause`]), and each
//! source's event catalog. Off unless `admin.console.token` is set.
//!
//! This file holds what every route goes through; the pages are in [`overview`], [`dlq`]
//! (with redrive of one, the selected or all) and [`replay`], the login in [`login`].
//!
//! Security, all in this module: a token login gives an HttpOnly SameSite=Strict session
//! cookie (see [`session`]); every POST carries the session's CSRF token; `read_only`
//! hides the actions and refuses them; every page is sent with a CSP of
//! `default-src 'self'` (no inline script, nothing from elsewhere), and every value on it
//! is HTML-escaped ([`html::esc`]). Actions reuse the CLI's code (`dlq show`, `dlq
//! redrive`, `replay`) with its safety, and are logged with `actor = "console"` and the
//! client's address.
//!
//! A source's page, with its event catalog, is in [`source`].

mod actions;
mod dlq;
mod figures;
mod html;
mod login;
mod overview;
pub mod pause;
mod replay;
mod session;
mod source;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use tokio_util::sync::CancellationToken;

use crate::commands::ops::OpsError;
use crate::config::load::Loaded;
use crate::config::ConfigError;
use crate::connectors::Connectors;
use crate::telemetry::Metrics;
use actions::Actions;
use html::{esc, Frame};
use session::{Session, Sessions};

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
    /// The `event_type` rule of each source that has one, as written.
    event_type_rules: HashMap<String, String>,
    sinks: Vec<String>,
    /// Actions running per sink, and dead letters already redriven.
    actions: Arc<Actions>,
    /// The process's shutdown: a redrive in progress stops at its next record, so the
    /// admin listener (which waits for its requests) does not hold the exit.
    stop: CancellationToken,
    /// This process's sinks, which a replay stops for its moment.
    switches: Arc<pause::SinkSwitches>,
}

impl Console {
    /// The console of this process; `None` when `admin.console.token` is not set.
    pub fn from_settings(
        loaded: Arc<Loaded>,
        connectors: &Connectors,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
        switches: Arc<pause::SinkSwitches>,
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
            event_type_rules: connectors
                .sources
                .iter()
                .filter_map(|s| {
                    Some((
                        s.name.to_string(),
                        source::rule_text(s.event_type.as_ref()?),
                    ))
                })
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
            switches,
        })))
    }

    fn frame<'a>(&'a self, s: &'a Session) -> Frame<'a> {
        Frame {
            csrf: &s.csrf,
            read_only: self.read_only,
            sources: &self.sources,
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
        .route("/console", get(overview::overview_page))
        .route("/console/", get(overview::overview_page))
        .route("/console/login", get(login::login_page).post(login::login))
        .route("/console/logout", axum::routing::post(login::logout))
        .route("/console/api/overview", get(overview::overview_json))
        .route("/console/sinks/{name}", get(overview::sink_page))
        .route("/console/sources/{name}", get(source::source_page))
        .route("/console/sinks/{name}/dlq", get(dlq::dlq_page))
        .route("/console/sinks/{name}/dlq/{at}", get(dlq::record_page))
        .route(
            "/console/sinks/{name}/dlq/{at}/redrive",
            axum::routing::post(dlq::redrive_action),
        )
        .route(
            "/console/sinks/{name}/dlq/redrive",
            axum::routing::post(dlq::redrive_selected_action),
        )
        .route(
            "/console/sinks/{name}/redrive",
            axum::routing::post(dlq::redrive_all_action),
        )
        .route(
            "/console/sinks/{name}/replay",
            get(replay::replay_page).post(replay::replay_action),
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
    failed_page_with(c, s, title, e, "")
}

/// [`failed_page`] with `more` (HTML) after the error: what was done before it.
fn failed_page_with(c: &Console, s: &Session, title: &str, e: &OpsError, more: &str) -> Page {
    let status = match e {
        OpsError::NotFound(_) | OpsError::NoSink(_) | OpsError::NoTopic(_) => StatusCode::NOT_FOUND,
        OpsError::Invalid(_) => StatusCode::BAD_REQUEST,
        OpsError::Refused(_) | OpsError::NoDlq(_) => StatusCode::CONFLICT,
        _ => StatusCode::BAD_GATEWAY,
    };
    let body = format!("<p class=\"error\">{}</p>{more}", esc(&e.to_string()));
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

/// An `application/x-www-form-urlencoded` body, its fields in order: a field can repeat
/// (the checkboxes of the dead letters selected for redrive).
struct Form(Vec<(String, String)>);

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

    /// The first value of field `k`.
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of field `k`, in order.
    fn all<'a>(&'a self, k: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(name, _)| name == k)
            .map(|(_, v)| v.as_str())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_keeps_every_value_of_a_repeated_field() {
        let f = Form::parse(b"csrf=abc&at=0%3A2&at=0%3A0&x=1");
        assert_eq!(f.get("csrf"), Some("abc"));
        assert_eq!(f.all("at").collect::<Vec<_>>(), ["0:2", "0:0"]);
        assert_eq!(f.get("at"), Some("0:2"));
        assert_eq!(f.all("none").count(), 0);
    }
}
