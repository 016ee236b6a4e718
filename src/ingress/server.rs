//! The webhook listener: serves [`app`](super::app) until shutdown, then stops accepting
//! and lets in-flight requests finish (each one still waits for its broker ack).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{app, Ingress};

/// Binds the listener; binding separately lets `run` fail fast on a taken port.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves webhooks until `stop` is cancelled and every in-flight request is answered.
pub async fn serve(
    listener: TcpListener,
    ingress: Arc<Ingress>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app(ingress))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}
