//! The HTTP listeners (webhooks and admin): HTTP/1.1, optionally over TLS, with a header
//! read timeout (which also bounds idle keep-alive), a header size limit, a response write
//! timeout, a cap on requests per connection and a cap on open connections shared out per
//! client address, so clients that are slow, oversized, not reading or simply numerous are
//! cut off before they cost more than their share. When a new address (a provider, a
//! kubelet) finds the listener full, the address holding the most gives one connection
//! up for it, so no number of addresses can keep a new one out. On shutdown a listener stops
//! accepting, and in-flight requests finish — each webhook still waits for its broker
//! ack — before [`serve`] returns.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use crate::config::settings::HttpSettings;

use super::share::{address_key, Refused, ShareLimits};
use super::shares::{Share, Shares};
use super::tls::Tls;

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

/// Serves `router` (the webhooks' or the admin listener's) with the listener limits until
/// `stop` is cancelled and every in-flight request is answered.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        // hyper's read buffer grows to ~400 KiB for a fast body and is kept for the
        // connection's life; bounded here, an idle keep-alive connection holds little.
        .max_buf_size((limits.max_header_bytes + (8 << 10)).max(8 << 10))
        .max_headers(128);
    // Every connection holds a sender; when the last is gone, every connection ended.
    let (running, mut all_ended) = mpsc::channel::<()>(1);
    let state = Arc::new(Listening {
        builder,
        service: TowerToHyperService::new(router),
        tls: limits.tls.map(Arc::new),
        shares: Shares::new(ShareLimits::connections(
            limits.max_connections,
            limits.max_connections_per_address,
        )),
        open: Open::default(),
        waiting: AtomicUsize::new(0),
        draining: CancellationToken::new(),
        running,
        header_timeout: limits.header_timeout,
        write_timeout: limits.write_timeout,
        max_requests: limits.max_requests_per_connection.max(1),
    });
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
        let _ = stream.set_nodelay(true);
        match state.shares.take(peer.ip()) {
            Ok(slot) => {
                tokio::spawn(state.clone().run(stream, peer, slot));
            }
            Err(why) if state.make_room(peer, why) => {
                // The slot a larger holder gives up is this connection's; it waits for
                // it off the accept loop.
                let state = state.clone();
                tokio::spawn(async move {
                    let slot = state.wait_for_slot(peer).await;
                    state.waiting.fetch_sub(1, Ordering::Relaxed);
                    match slot {
                        Some(slot) => state.run(stream, peer, slot).await,
                        None => tracing::debug!(%peer, "no connection slot came free"),
                    }
                });
            }
            // Accept-and-close rather than leaving the socket in the backlog: the client
            // learns at once, and the kernel queue cannot hide a full listener.
            Err(why) => {
                tracing::debug!(%peer, ?why, "connection limit reached; closing new connection");
                drop(stream);
            }
        }
    }
    drop(listener);
    // Idle connections close now, busy ones once their request is answered.
    state.draining.cancel();
    drop(state);
    let _ = all_ended.recv().await;
    Ok(())
}

/// Longest a new connection waits for the slot a larger holder gives up for it.
const MAKE_ROOM_WAIT: Duration = Duration::from_secs(1);

/// How long a connection must have asked for nothing before it may be closed for a new
/// client when no address holds more than a little. Longer protects a distant client's
/// TLS handshake better, but lets clients that connect again at once keep every
/// connection younger than it, and so out of reach.
const SILENT: Duration = Duration::from_millis(100);

/// New connections waiting for a slot at once, at most; past it they are closed.
const MAX_WAITING: usize = 64;

/// What every connection of a listener shares.
struct Listening {
    builder: http1::Builder,
    service: Inner,
    tls: Option<Arc<Tls>>,
    shares: Arc<Shares>,
    open: Open,
    /// New connections waiting for a slot.
    waiting: AtomicUsize,
    /// Cancelled on shutdown; every connection's close handle is a child of it.
    draining: CancellationToken,
    running: mpsc::Sender<()>,
    header_timeout: Duration,
    write_timeout: Duration,
    max_requests: usize,
}

impl Listening {
    /// When a new or small holder was refused because the listener (or its reserve) is
    /// full, asks the largest holder to give one connection up — an idle one if it has
    /// one, else one once its request is answered — and says whether to wait for it. A
    /// few addresses could otherwise fill the reserve between them and keep providers
    /// and probes out for good. When no address holds more than a little (many addresses
    /// with a connection or two each), the oldest connection that has never asked for
    /// anything gives way ([`Open::close_oldest_silent`]).
    fn make_room(&self, peer: SocketAddr, why: Refused) -> bool {
        let limits = self.shares.limits();
        if why == Refused::AddressFull || !limits.is_small(self.shares.held_by(peer.ip())) {
            return false;
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        let closed = match self.shares.largest(peer.ip()) {
            Some(key) => self.open.close_one(key),
            None => self.open.close_oldest_silent(address_key(peer.ip())),
        };
        if !closed {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        } else {
            tracing::debug!(%peer, "listener full; a connection of the largest holder is closed for a new address");
        }
        closed
    }

    /// A slot for `peer` once one is given back, or `None` after [`MAKE_ROOM_WAIT`].
    async fn wait_for_slot(&self, peer: SocketAddr) -> Option<Share> {
        let deadline = tokio::time::Instant::now() + MAKE_ROOM_WAIT;
        loop {
            let released = self.shares.released();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Ok(slot) = self.shares.take(peer.ip()) {
                return Some(slot);
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return None;
            }
        }
    }

    /// Serves one accepted connection; its slot is released when it ends, however it ends.
    async fn run(self: Arc<Self>, stream: TcpStream, peer: SocketAddr, slot: Share) {
        let _running = self.running.clone();
        let close = self.draining.child_token();
        let (active, served) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let _open = self
            .open
            .insert(peer.ip(), close.clone(), active.clone(), served.clone());
        let service = WithClient {
            inner: self.service.clone(),
            peer,
            served,
            active,
            max_requests: self.max_requests,
        };
        match &self.tls {
            None => self.serve(TokioIo::new(stream), service, close).await,
            Some(tls) => {
                // Closed for another client (or on shutdown) before its handshake ended,
                // it gives its slot back at once, not at the end of the handshake.
                let accepted = tokio::select! {
                    s = tls.accept(stream, self.header_timeout) => s,
                    () = close.cancelled() => None,
                };
                if let Some(stream) = accepted {
                    self.serve(TokioIo::new(stream), service, close).await;
                }
            }
        }
        drop(slot);
    }

    async fn serve<I>(&self, io: I, service: WithClient, close: CancellationToken)
    where
        I: Read + Write + Unpin + Send + 'static,
    {
        let io = WriteDeadline::new(io, self.write_timeout);
        let (served, opened) = (service.served.clone(), Instant::now());
        let conn = self.builder.serve_connection(io, service);
        tokio::pin!(conn);
        let ended = tokio::select! {
            ended = conn.as_mut() => ended,
            _ = close.cancelled() => {
                // Closed for another client, one silent for a while is dropped at once:
                // hyper keeps a connection with part of a request head until its
                // header timeout, holding the slot it was closed to free. A new one, or
                // any on shutdown, may still finish the request it is sending.
                if served.load(Ordering::Relaxed) == 0
                    && opened.elapsed() >= SILENT
                    && !self.draining.is_cancelled()
                {
                    return;
                }
                // An idle connection closes at once; a busy one after its answer.
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = ended {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// A listener's open connections by client address, each with the handle that closes
/// it and the count of its requests in progress.
#[derive(Default)]
struct Open {
    next: AtomicU64,
    by_address: Mutex<HashMap<IpAddr, HashMap<u64, OpenConnection>>>,
}

struct OpenConnection {
    close: CancellationToken,
    active: Arc<AtomicUsize>,
    /// Requests started on it: none yet, it has never asked for anything.
    served: Arc<AtomicUsize>,
    opened: Instant,
}

impl Open {
    fn insert(
        &self,
        client: IpAddr,
        close: CancellationToken,
        active: Arc<AtomicUsize>,
        served: Arc<AtomicUsize>,
    ) -> Registered<'_> {
        let (key, id) = (
            address_key(client),
            self.next.fetch_add(1, Ordering::Relaxed),
        );
        let mut by_address = self
            .by_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let conn = OpenConnection {
            close,
            active,
            served,
            opened: Instant::now(),
        };
        (by_address.entry(key).or_default()).insert(id, conn);
        Registered {
            open: self,
            key,
            id,
        }
    }

    /// Closes one connection of the address `key`, idle if any; whether there was one.
    fn close_one(&self, key: IpAddr) -> bool {
        let mut by_address = self
            .by_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(conns) = by_address.get_mut(&key) else {
            return false;
        };
        let idle = conns
            .iter()
            .find(|(_, c)| c.active.load(Ordering::Relaxed) == 0);
        let Some(id) = idle.or_else(|| conns.iter().next()).map(|(id, _)| *id) else {
            return false;
        };
        // Out of the map, so it is not picked twice while it closes.
        if let Some(conn) = conns.remove(&id) {
            conn.close.cancel();
        }
        true
    }
}

impl Open {
    /// Closes one connection with no request in progress of an address other than
    /// `except`; whether there was one. The oldest that has asked for nothing in
    /// [`SILENT`] or more since it was opened goes first (a client that connects to be
    /// served asks within moments, a TLS handshake included); else the oldest idle one
    /// (a pooled connection between requests: its client connects again), so that
    /// connections held idle can never keep every new client out.
    fn close_oldest_silent(&self, except: IpAddr) -> bool {
        let mut by_address = self
            .by_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let oldest = (by_address.iter())
            .filter(|(key, _)| **key != except)
            .flat_map(|(key, conns)| conns.iter().map(move |(id, c)| (*key, *id, c)))
            // Never one that is new and has not asked yet: it may be in its TLS
            // handshake or sending its first request.
            .filter(|(_, _, c)| {
                c.active.load(Ordering::Relaxed) == 0
                    && (c.served.load(Ordering::Relaxed) > 0 || c.opened.elapsed() >= SILENT)
            })
            // Silent ones first (`false` sorts first), then the oldest.
            .min_by_key(|(_, id, c)| (c.served.load(Ordering::Relaxed) > 0, *id))
            .map(|(key, id, _)| (key, id));
        let Some((key, id)) = oldest else {
            return false;
        };
        // Out of the map, so it is not picked twice while it closes.
        if let Some(conn) = by_address.get_mut(&key).and_then(|c| c.remove(&id)) {
            conn.close.cancel();
        }
        true
    }
}

/// A connection's entry in [`Open`], removed when the connection ends.
struct Registered<'a> {
    open: &'a Open,
    key: IpAddr,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut by_address = (self.open.by_address.lock()).unwrap_or_else(PoisonError::into_inner);
        if let Some(conns) = by_address.get_mut(&self.key) {
            conns.remove(&self.id);
            if conns.is_empty() {
                by_address.remove(&self.key);
            }
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
    /// Requests in progress (not yet answered): a connection with none is idle.
    active: Arc<AtomicUsize>,
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
        let active = InProgress::new(&self.active);
        Box::pin(async move {
            let response = answer.await;
            drop(active);
            let mut response = response?;
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

/// One request counted in progress until dropped.
struct InProgress(Arc<AtomicUsize>);

impl InProgress {
    fn new(active: &Arc<AtomicUsize>) -> Self {
        active.fetch_add(1, Ordering::Relaxed);
        Self(active.clone())
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    //! The listener limits the docs publish (docs/internet-exposure.md), on a real
    //! loopback socket: the header count, the idle keep-alive bound and the TLS handshake
    //! bound.
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn limits(header_timeout: Duration, tls: Option<Tls>) -> Limits {
        Limits {
            header_timeout,
            max_header_bytes: 64 << 10,
            max_connections: 16,
            max_connections_per_address: 16,
            max_requests_per_connection: 1000,
            write_timeout: Duration::from_secs(10),
            tls,
        }
    }

    /// A listener answering 200 on `/`, on a free loopback port, until the token is cancelled.
    async fn listen(limits: Limits) -> (SocketAddr, CancellationToken) {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, router, limits, stop.clone()));
        (addr, stop)
    }

    /// The status of the one answer to `request` (the connection stays open).
    async fn status_of(stream: &mut TcpStream, request: &str) -> u16 {
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before an answer: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap()
    }

    /// How long until the peer closes `stream` (EOF or reset), at most `within`.
    async fn closed_after(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout_at((t0 + within).into(), stream.read(&mut buf)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(t0.elapsed()),
                Ok(Ok(_)) => {}
            }
        }
    }

    fn request_with_headers(n: usize) -> String {
        // `Host` is one of the n.
        let extra: String = (1..n).map(|i| format!("x-h{i}: v\r\n")).collect();
        format!("GET / HTTP/1.1\r\nhost: x\r\n{extra}\r\n")
    }

    #[tokio::test]
    async fn a_request_with_more_than_128_headers_gets_431() {
        let (addr, stop) = listen(limits(Duration::from_secs(10), None)).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        assert_eq!(status_of(&mut conn, &request_with_headers(128)).await, 200);
        let mut conn = TcpStream::connect(addr).await.unwrap();
        assert_eq!(status_of(&mut conn, &request_with_headers(129)).await, 431);
        stop.cancel();
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
        let timeout = Duration::from_millis(500);
        let (addr, stop) = listen(limits(timeout, None)).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            status_of(&mut conn, "GET / HTTP/1.1\r\nhost: x\r\n\r\n").await,
            200
        );
        // Kept alive after the answer, then closed once idle for the header timeout.
        let closed = closed_after(&mut conn, Duration::from_secs(10)).await;
        let closed = closed.expect("an idle keep-alive connection is closed");
        assert!(
            closed >= timeout / 2,
            "closed after {closed:?}, before the timeout"
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn a_client_silent_in_the_tls_handshake_is_cut_off_after_the_header_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = crate::http::tls::tests::made(dir.path(), "listener", None);
        let tls = Tls::from_files(&cert, &key).unwrap();
        let timeout = Duration::from_millis(500);
        let (addr, stop) = listen(limits(timeout, Some(tls))).await;
        // Connects and never says hello.
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let closed = closed_after(&mut conn, Duration::from_secs(10)).await;
        let closed = closed.expect("a silent TLS client is cut off");
        assert!(
            closed >= timeout / 2,
            "closed after {closed:?}, before the timeout"
        );
        stop.cancel();
    }
}
