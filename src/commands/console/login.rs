//! Logging in and out: the token form, the session cookie it sets, and the failed-login
//! limit per client address (kept by [`super::session`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::html::{self};
use super::session::{Login, COOKIE};
use super::{client_ip, html_body, Client, Console, Form, Page, Refusal};

pub(super) async fn login_page() -> Response {
    html_body(html::login("")).into_response()
}

pub(super) async fn login(
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

pub(super) async fn logout(State(c): State<Arc<Console>>, headers: HeaderMap, form: Form) -> Page {
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
