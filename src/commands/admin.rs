//! The admin listener: Prometheus `/metrics`, liveness `/healthz`, readiness `/readyz`,
//! and the operator console (`/console`) when it is configured.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::commands::console::{self, Console};
use crate::config::Settings;
use crate::http::server::{ClientAddr, Limits};
use crate::telemetry::{Health, Metrics};

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// The admin listener's connection limits: the webhook listener's header timeout, size,
/// write timeout and requests per connection, its own connection cap and per-address
/// share, and never TLS (it is meant for the internal network).
pub fn limits(settings: &Settings) -> Limits {
    Limits {
        max_connections: settings.admin.max_connections,
        max_connections_per_address: settings.admin.max_connections_per_address,
        tls: None,
        ..Limits::common(&settings.http)
    }
}

/// The admin router; with `console`, also the console's pages under `/console`.
pub fn app(metrics: Arc<Metrics>, health: Arc<Health>, console: Option<Arc<Console>>) -> Router {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(AdminState { metrics, health });
    match console {
        Some(c) => app
            .merge(console::routes(c))
            .layer(axum::middleware::map_request(client_for_console)),
        None => app,
    }
}

/// Hands the console the client address the listener tagged the request with.
async fn client_for_console(mut req: axum::extract::Request) -> axum::extract::Request {
    if let Some(ClientAddr(addr)) = req.extensions().get::<ClientAddr>().copied() {
        req.extensions_mut().insert(console::Client(addr.ip()));
    }
    req
}

async fn metrics_text(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    match s.health.unready_because() {
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
        None => (StatusCode::OK, "ready"),
    }
}
