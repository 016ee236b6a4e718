//! The HTTP listeners (webhooks and admin): HTTP/1.1, optionally over TLS, with a header
//! read timeout, a header size limit and a cap on open connections, so clients that are
//! slow, oversized or simply numerous are cut off before they cost more than a slot. On
//! shutdown a listener stops accepting, and in-flight requests finish — each webhook still
//! waits for its broker ack — before [`serve`] returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::tls::Tls;
use super::{app, Ingress};

/// Connection-level settings of a listener.
pub struct Limits {
    /// Time a client gets to send request headers (and the TLS handshake); also how long
    /// an idle keep-alive connection is kept.
    pub header_timeout: Duration,
    pub max_header_bytes: usize,
    /// Open connections at once; past it, new connections are accepted and closed at
    /// once, so a flood of idle sockets cannot exhaust file descriptors or memory.
    pub max_connections: usize,
    /// Serve HTTPS with this certificate, when configured.
    pub tls: Option<Tls>,
}

/// The address of the client of a request, inserted into every request's extensions so
/// the handler can budget unverified traffic per client.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Binds the listener; binding separately lets `run` fail fast on a taken port.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves webhooks until `stop` is cancelled and every in-flight request is answered.
pub async fn serve(
    listener: TcpListener,
    ingress: Arc<Ingress>,
    limits: Limits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    serve_router(listener, app(ingress), limits, stop).await
}

/// Serves any router with the listener limits (the admin listener uses this too).
pub async fn serve_router(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let service = TowerToHyperService::new(router);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        // hyper's read buffer grows to ~400 KiB for a fast body and is kept for the
        // connection's life; bounded here, an idle keep-alive connection holds little.
        .max_buf_size((limits.max_header_bytes + (8 << 10)).max(8 << 10))
        .max_headers(128);
    let builder = Arc::new(builder);
    let tls = limits.tls.map(Arc::new);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Accept-and-close rather than leaving the socket in the backlog: the client
        // learns at once, and the kernel queue cannot hide a full listener.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection limit reached; closing new connection");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            builder: builder.clone(),
            service: WithClient {
                inner: service.clone(),
                peer,
            },
            watcher: graceful.watcher(),
            _slot: slot,
        };
        let (tls, handshake_timeout) = (tls.clone(), limits.header_timeout);
        tokio::spawn(conn.run(stream, tls, handshake_timeout));
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One accepted connection; its slot is released when it ends, however it ends.
struct Connection {
    builder: Arc<http1::Builder>,
    service: WithClient,
    watcher: Watcher,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(self, stream: TcpStream, tls: Option<Arc<Tls>>, handshake_timeout: Duration) {
        match tls {
            None => self.serve(TokioIo::new(stream)).await,
            Some(tls) => {
                if let Some(stream) = tls.accept(stream, handshake_timeout).await {
                    self.serve(TokioIo::new(stream)).await;
                }
            }
        }
    }

    async fn serve<I>(self, io: I)
    where
        I: Read + Write + Unpin + Send + 'static,
    {
        let conn = self.builder.serve_connection(io, self.service);
        if let Err(e) = self.watcher.watch(conn).await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// The router as a hyper service that tags each request with its client's address.
#[derive(Clone)]
struct WithClient {
    inner: Inner,
    peer: SocketAddr,
}

type Inner = TowerToHyperService<axum::Router>;

impl hyper::service::Service<hyper::Request<Incoming>> for WithClient {
    type Response = <Inner as hyper::service::Service<hyper::Request<Incoming>>>::Response;
    type Error = <Inner as hyper::service::Service<hyper::Request<Incoming>>>::Error;
    type Future = <Inner as hyper::service::Service<hyper::Request<Incoming>>>::Future;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(ClientAddr(self.peer));
        self.inner.call(req)
    }
}
