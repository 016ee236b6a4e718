//! Structured logs with `tracing`, pretty for a terminal or JSON for collectors. The
//! `RUST_LOG` environment variable overrides the configured level.

use tracing_subscriber::EnvFilter;

use crate::config::settings::{LogFormat, LogSettings};

/// Installs the global subscriber. Logs go to stderr so stdout stays for command output.
pub fn init(log: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
