//! SIGTERM / Ctrl-C / SIGHUP → one `CancellationToken` that every part of the process
//! watches.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGTERM, SIGINT or SIGHUP. A hangup (the terminal or
/// ssh session that started the process closed) would otherwise end it at once, as a
/// kill -9 does: no drain, no final commit, its group waiting out its session.
pub fn on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received; draining");
        token.cancel();
    });
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let recv = |kind| async move {
        match signal(kind) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = recv(SignalKind::terminate()) => {}
        _ = recv(SignalKind::hangup()) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
