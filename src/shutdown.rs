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

/// The first SIGTERM, SIGINT or SIGHUP (SIGHUP only when it was not ignored at start:
/// under `nohup` a hangup is not a reason to stop). What every long command stops on.
#[cfg(unix)]
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let recv = |kind| async move {
        match signal(kind) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    let hangup = async {
        if hangup_ignored() {
            std::future::pending::<()>().await;
        }
        recv(SignalKind::hangup()).await;
    };
    tokio::select! {
        _ = recv(SignalKind::terminate()) => {}
        _ = hangup => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Whether SIGHUP is ignored (`nohup` started the process so): read before anything
/// listens for it, as listening replaces the disposition.
#[cfg(unix)]
fn hangup_ignored() -> bool {
    // SAFETY: with a null new action, sigaction only writes the current disposition of
    // SIGHUP into `old`, a zeroed struct of the type it expects.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGHUP, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

#[cfg(not(unix))]
pub async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
