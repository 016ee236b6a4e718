//! The destination every egress target POSTs to: it answers 200 at once and counts records
//! (a JSON array body counts its items, so a batch of 100 counts 100) and requests, and
//! notes when the first delivery of a run arrived and when the expected count was reached.
//! Plain HTTP/1.1, or HTTPS offering only `h2` by ALPN (so a row over it is HTTP/2 or
//! delivers nothing). Its own ceiling is measured with wrk before the egress rows.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Router;

use crate::error::{BenchError, Result};
use crate::tls::Pki;

#[derive(Default)]
struct Tally {
    count: AtomicU64,
    requests: AtomicU64,
    expected: AtomicU64,
    first_at: Mutex<Option<Instant>>,
    done_at: Mutex<Option<Instant>>,
}

/// What the receiver has seen of the current run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Records: one per request, or the items of a JSON array body.
    pub count: u64,
    pub requests: u64,
    pub first_at: Option<Instant>,
    pub done_at: Option<Instant>,
}

pub struct Receiver {
    pub url: String,
    tally: Arc<Tally>,
}

/// Records in one body: the items of a JSON array, else one. The benchmark's records are
/// JSON objects, so only a batch starts with `[`. Items are counted by the commas at the
/// array's own level, strings skipped with `memchr`: a full parse (serde_json's
/// `IgnoredAny`) would take about a fifth of the receiver's CPU in the batched row, on
/// the two cores the broker and the program under test share with it. Counting, not
/// checking: what hookbridge sends is checked by the test suites; a body that is not a
/// complete array counts one.
fn records_in(body: &[u8]) -> u64 {
    if body.first() != Some(&b'[') {
        return 1;
    }
    let (mut depth, mut commas, mut empty, mut at) = (0u32, 0u64, true, 0usize);
    while let Some(&c) = body.get(at) {
        match c {
            b'"' => match closing_quote(body, at + 1) {
                Some(end) => at = end,
                None => return 1,
            },
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return if empty { 0 } else { commas + 1 };
                }
            }
            b',' if depth == 1 => commas += 1,
            _ => {}
        }
        if at > 0 && !c.is_ascii_whitespace() {
            empty = false;
        }
        at += 1;
    }
    1
}

/// Where the string that starts at `from` (just past its opening quote) ends: the index
/// of its closing quote.
fn closing_quote(body: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from + memchr::memchr2(b'"', b'\\', body.get(from..)?)?;
        if body[at] == b'"' {
            return Some(at);
        }
        from = at + 2;
    }
}

async fn count(State(tally): State<Arc<Tally>>, body: Bytes) -> StatusCode {
    let records = records_in(&body);
    tally.requests.fetch_add(1, Ordering::Relaxed);
    let before = tally.count.fetch_add(records, Ordering::Relaxed);
    let n = before + records;
    // Locks are taken twice per run, not per request.
    if before == 0 {
        stamp(&tally.first_at);
    }
    let expected = tally.expected.load(Ordering::Relaxed);
    if before < expected && n >= expected {
        stamp(&tally.done_at);
    }
    StatusCode::OK
}

fn stamp(at: &Mutex<Option<Instant>>) {
    *at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
}

fn read(at: &Mutex<Option<Instant>>) -> Option<Instant> {
    *at.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(BenchError::io("binding the receiver"))
}

impl Receiver {
    fn app() -> (Router, Arc<Tally>) {
        let tally = Arc::new(Tally::default());
        let app = Router::new()
            .fallback(post(count))
            .with_state(tally.clone());
        (app, tally)
    }

    /// Plain HTTP/1.1 on `addr`.
    pub async fn start(addr: SocketAddr) -> Result<Self> {
        let (app, tally) = Self::app();
        // As hookbridge's own listener does: answers are not held back by Nagle's algorithm.
        let listener = bind(addr).await?.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Receiver {
            url: format!("http://{addr}/hook"),
            tally,
        })
    }

    /// HTTPS on `addr` with `pki`'s server certificate, HTTP/2 only.
    pub async fn start_h2(addr: SocketAddr, pki: &Pki) -> Result<Self> {
        let (app, tally) = Self::app();
        let acceptor = Arc::new(pki.h2_acceptor()?);
        let listener = bind(addr).await?;
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = crate::tls::accept(&acceptor, tcp).await else {
                        return;
                    };
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(io, service)
                    .await;
                });
            }
        });
        Ok(Receiver {
            url: format!("https://{addr}/hook"),
            tally,
        })
    }

    /// Starts a new run that is complete after `expected` records.
    pub fn reset(&self, expected: u64) {
        *self
            .tally
            .first_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        *self
            .tally
            .done_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        self.tally.expected.store(expected, Ordering::Relaxed);
        self.tally.count.store(0, Ordering::Relaxed);
        self.tally.requests.store(0, Ordering::Relaxed);
    }

    pub fn progress(&self) -> Progress {
        Progress {
            count: self.tally.count.load(Ordering::Relaxed),
            requests: self.tally.requests.load(Ordering::Relaxed),
            first_at: read(&self.tally.first_at),
            done_at: read(&self.tally.done_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::records_in;

    #[test]
    fn a_json_array_counts_its_items_and_anything_else_one() {
        assert_eq!(records_in(br#"[{"n":1},{"n":2,"a":[3,4]},5]"#), 3);
        assert_eq!(records_in(b"[]"), 0);
        assert_eq!(records_in(br#"{"n":1}"#), 1);
        assert_eq!(records_in(b"[not json"), 1);
        assert_eq!(records_in(b" [1]"), 1);
        assert_eq!(records_in(b"[ ]"), 0);
        assert_eq!(records_in(br#"[{"s":"a,b]}\"],\\"},"x"]"#), 2);
        assert_eq!(records_in(br#"["unterminated\"]"#), 1);
    }

    #[test]
    fn counts_what_serde_json_counts_for_arrays_it_wrote() {
        let tricky = ["", ",", "]", "}", "\\", "\"", "[{,\\\"", "é,\u{1}"];
        for n in 0..=tricky.len() + 1 {
            let items: Vec<serde_json::Value> = (0..n)
                .map(
                    |i| serde_json::json!({ "n": i, "s": tricky[i % tricky.len()], "a": [i, [i]] }),
                )
                .collect();
            for body in [
                serde_json::to_vec(&items),
                serde_json::to_vec_pretty(&items),
            ] {
                let body = body.unwrap();
                assert_eq!(
                    records_in(&body),
                    n as u64,
                    "{}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
    }
}
