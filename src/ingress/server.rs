//! The HTTP listeners (webhooks and admin): HTTP/1.1, optionally over TLS, with a header
//! read timeout (which also bounds idle keep-alive), a header size limit, a response write
//! timeout, a cap on requests per connection and a cap on open connections shared out per
//! client address, so clients that are slow, oversized, not reading or simply numerous are
//! cut off before they cost more than their share. On shutdown a listener stops
//! accepting, and in-flight requests finish — each webhook still waits for its broker
//! ack — before [`serve`] returns.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use crate::config::settings::HttpSettings;

use super::share::{Share, ShareLimits, Shares};
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
    /// Open connections one client address (IPv6: one /64) may hold; the last eighth of
    /// `max_connections` is kept for addresses holding little (see [`super::share`]).
    pub max_connections_per_address: usize,
    /// Requests served on one connection; the last is answered with `Connection: close`,
    /// so a client that keeps a connection busy with cheap requests still gives it up.
    pub max_requests_per_connection: usize,
    /// Longest a response write may make no progress (a client that pipelines requests
    /// and never reads the answers); then the connection is closed. hyper has no such
    /// timer of its own.
    pub write_timeout: Duration,
    /// Serve HTTPS with this certificate, when configured.
    pub tls: Option<Tls>,
}

impl Limits {
    /// The webhook listener's limits, without TLS; the admin listener takes the same
    /// per-connection limits and replaces the connection caps.
    pub fn common(http: &HttpSettings) -> Self {
        Self {
            header_timeout: http.header_timeout.0,
            max_header_bytes: usize::try_from(http.max_header_bytes.0).unwrap_or(usize::MAX),
            max_connections: http.max_connections,
            max_connections_per_address: http.max_connections_per_address,
            max_requests_per_connection: http.max_requests_per_connection,
            write_timeout: http.write_timeout.0,
            tls: None,
        }
    }
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
    let shares = Shares::new(ShareLimits::new(
        limits.max_connections,
        limits.max_connections_per_address,
    ));
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
        let slot = match shares.take(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                tracing::debug!(%peer, ?why, "connection limit reached; closing new connection");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            builder: builder.clone(),
            service: WithClient {
                inner: service.clone(),
                peer,
                served: Arc::new(AtomicUsize::new(0)),
                max_requests: limits.max_requests_per_connection.max(1),
            },
            watcher: graceful.watcher(),
            write_timeout: limits.write_timeout,
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
    write_timeout: Duration,
    _slot: Share,
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
        let io = WriteDeadline::new(io, self.write_timeout);
        let conn = self.builder.serve_connection(io, self.service);
        if let Err(e) = self.watcher.watch(conn).await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// The router as a hyper service that tags each request with its client's address and
/// closes the connection after its last allowed request.
#[derive(Clone)]
struct WithClient {
    inner: Inner,
    peer: SocketAddr,
    /// Requests started on this connection.
    served: Arc<AtomicUsize>,
    max_requests: usize,
}

type Inner = TowerToHyperService<axum::Router>;
type InnerResponse = <Inner as hyper::service::Service<hyper::Request<Incoming>>>::Response;
type InnerError = <Inner as hyper::service::Service<hyper::Request<Incoming>>>::Error;

impl hyper::service::Service<hyper::Request<Incoming>> for WithClient {
    type Response = InnerResponse;
    type Error = InnerError;
    type Future = Pin<Box<dyn Future<Output = Result<InnerResponse, InnerError>> + Send>>;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(ClientAddr(self.peer));
        let last = self.served.fetch_add(1, Ordering::Relaxed) + 1 >= self.max_requests;
        let answer = self.inner.call(req);
        Box::pin(async move {
            let mut response = answer.await?;
            if last {
                // hyper closes the connection after a response that says so.
                (response.headers_mut()).insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            Ok(response)
        })
    }
}

/// A connection's I/O with a write timeout: a write (or flush) that makes no progress for
/// `timeout` fails, and hyper then closes the connection. Progress of any size re-arms it,
/// so a slow but reading client is never cut off, only one that stopped reading.
struct WriteDeadline<I> {
    io: I,
    timeout: Duration,
    /// Running while a write is blocked; `None` once it made progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<I> WriteDeadline<I> {
    fn new(io: I, timeout: Duration) -> Self {
        Self {
            io,
            timeout,
            stalled: None,
        }
    }

    /// Passes a write's result on; while it is pending, runs the timer and fails the
    /// write when it fires.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timeout = self.timeout;
        let timer = (self.stalled).get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client did not read the response in time",
        )))
    }
}

impl<I: Read + Unpin> Read for WriteDeadline<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: Write + Unpin> Write for WriteDeadline<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}
