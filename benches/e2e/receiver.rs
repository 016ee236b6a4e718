//! The destination every egress target POSTs to: it answers 200 at once and counts, and
//! notes when the first delivery of a run arrived and when the expected count was reached.
//! The baseline and every hookbridge sink deliver to this same receiver.

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

#[derive(Default)]
struct Tally {
    count: AtomicU64,
    expected: AtomicU64,
    first_at: Mutex<Option<Instant>>,
    done_at: Mutex<Option<Instant>>,
}

/// What the receiver has seen of the current run.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub count: u64,
    pub first_at: Option<Instant>,
    pub done_at: Option<Instant>,
}

pub struct Receiver {
    pub url: String,
    tally: Arc<Tally>,
}

async fn count(State(tally): State<Arc<Tally>>, _body: Bytes) -> StatusCode {
    let n = tally.count.fetch_add(1, Ordering::Relaxed) + 1;
    // Locks are taken twice per run, not per request.
    if n == 1 {
        stamp(&tally.first_at);
    }
    if n == tally.expected.load(Ordering::Relaxed) {
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

impl Receiver {
    pub async fn start(addr: SocketAddr) -> Result<Self> {
        let tally = Arc::new(Tally::default());
        let app = Router::new()
            .fallback(post(count))
            .with_state(tally.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(BenchError::io("binding the receiver"))?;
        // As hookbridge's own listener does: answers are not held back by Nagle's algorithm.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Receiver {
            url: format!("http://{addr}/hook"),
            tally,
        })
    }

    /// Starts a new run that is complete after `expected` deliveries.
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
    }

    pub fn progress(&self) -> Progress {
        Progress {
            count: self.tally.count.load(Ordering::Relaxed),
            first_at: read(&self.tally.first_at),
            done_at: read(&self.tally.done_at),
        }
    }
}
