//! The webhook listener: HTTP/1.1 (optionally over TLS) with a header read timeout and a
//! header size limit, so slow or oversized clients are cut off before they cost a request
//! slot. On shutdown it stops accepting, and in-flight requests finish — each still waits
//! for its broker ack — before [`serve`] returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::rt::{Read, Write};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::tls::Tls;
use super::{app, Ingress};

/// Connection-level settings of the webhook listener.
pub struct Limits {
    pub header_timeout: Duration,
    pub max_header_bytes: usize,
    /// Serve HTTPS with this certificate, when configured.
    pub tls: Option<Tls>,
}

/// Binds the listener; binding separately lets `run` fail fast on a taken port.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

type Service = TowerToHyperService<axum::Router>;

/// Serves webhooks until `stop` is cancelled and every in-flight request is answered.
pub async fn serve(
    listener: TcpListener,
    ingress: Arc<Ingress>,
    limits: Limits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let router = app(ingress);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(128);
    let builder = Arc::new(builder);
    let tls = limits.tls.map(Arc::new);
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (stream, peer) = stream;
        let _ = stream.set_nodelay(true);
        // The peer address decides whether forwarded headers are trusted (verify::url).
        let peer = axum::Extension(axum::extract::ConnectInfo(peer));
        let (builder, service, watcher, tls) = (
            builder.clone(),
            TowerToHyperService::new(router.clone().layer(peer)),
            graceful.watcher(),
            tls.clone(),
        );
        let handshake_timeout = limits.header_timeout;
        tokio::spawn(async move {
            match tls {
                None => connection(&builder, TokioIo::new(stream), service, watcher).await,
                Some(tls) => {
                    if let Some(stream) = tls.accept(stream, handshake_timeout).await {
                        connection(&builder, TokioIo::new(stream), service, watcher).await;
                    }
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn connection<I>(builder: &http1::Builder, io: I, service: Service, watcher: Watcher)
where
    I: Read + Write + Unpin + Send + 'static,
{
    if let Err(e) = watcher.watch(builder.serve_connection(io, service)).await {
        tracing::debug!(error = %e, "webhook connection ended with an error");
    }
}
