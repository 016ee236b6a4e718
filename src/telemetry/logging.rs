//! Structured logs with `tracing`, pretty for a terminal or JSON for collectors. The
//! `RUST_LOG` environment variable overrides the configured level.

use tracing_subscriber::EnvFilter;

use crate::config::settings::{LogFormat, LogSettings};

/// Installs the global subscriber. Logs go to stderr so stdout stays for command output.
pub fn init(log: &LogSettings) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = EnvFilter::try_new(filter_text(rust_log.as_deref(), &log.level))
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

/// The filter in force: `RUST_LOG` when it says something, else the configured level.
/// An empty or blank `RUST_LOG` (a deployment template's `RUST_LOG: ${RUST_LOG}` with
/// nothing behind it) is no filter: taken as one, it silenced every line, warnings
/// included.
fn filter_text<'a>(rust_log: Option<&'a str>, level: &'a str) -> &'a str {
    rust_log.filter(|v| !v.trim().is_empty()).unwrap_or(level)
}

#[cfg(test)]
mod tests {
    use super::filter_text;

    #[test]
    fn an_empty_rust_log_leaves_the_configured_level() {
        assert_eq!(filter_text(None, "info"), "info");
        assert_eq!(filter_text(Some(""), "info"), "info");
        assert_eq!(filter_text(Some("  "), "warn"), "warn");
        assert_eq!(filter_text(Some("debug"), "info"), "debug");
    }
}
