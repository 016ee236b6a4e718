//! Baseline (a) of `scripts/bench`: the plainest axum server that reads each request body
//! and answers 200. It is the HTTP ceiling the ingress rows are compared with: whatever
//! the bridges add on top of this is Kafka, verification and bookkeeping. Rust
//! allocations go through mimalloc, as hookbridge's do.
//!
//! `baseline-http200 --listen 127.0.0.1:PORT`

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Router;
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Address to accept webhooks on.
    #[arg(long, env = "BASELINE_LISTEN")]
    listen: SocketAddr,
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Taking the body as `Bytes` makes the server read all of it, as a bridge must.
async fn accept(_body: Bytes) -> StatusCode {
    StatusCode::OK
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let app = Router::new().fallback(post(accept));
    // TCP_NODELAY as hookbridge's listener sets it, so both answer without Nagle's delay.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    axum::serve(listener, app).await
}
