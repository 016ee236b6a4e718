//! Structured logs with `tracing`, pretty for a terminal or JSON for collectors. The
//! `RUST_LOG` environment variable overrides the configured level.

use tracing_subscriber::EnvFilter;

use crate::config::settings::{LogFormat, LogSettings};

/// Why `level` (`log.level`) is not a filter to log with, for `check` and `run` to
/// refuse the file rather than log something else: a syntax error would fall back to
/// `info`, and a bare word that is not a level (`warning`) is a module name, which
/// turns every other line off.
pub fn level_problem(level: &str) -> Option<String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    if let Err(e) = EnvFilter::builder().parse(level) {
        return Some(format!("{level:?} is not a log filter: {e}"));
    }
    let is_level = |word: &str| LEVELS.iter().any(|l| l.eq_ignore_ascii_case(word));
    let bare = (level.split(',').map(str::trim))
        .find(|d| !d.is_empty() && !d.contains(['=', '[']) && !is_level(d))?;
    Some(format!(
        "{bare:?} is not a level ({}); a module's level is written module=level",
        LEVELS.join(", ")
    ))
}

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

#[cfg(test)]
mod tests {
    use super::level_problem;

    #[test]
    fn a_level_is_a_level_or_a_list_of_module_levels() {
        for good in [
            "info",
            "WARN",
            "error",
            "off",
            "warn,hookbridge=debug",
            "rdkafka=warn,info",
        ] {
            assert_eq!(level_problem(good), None, "{good}");
        }
        for bad in ["warning", "eror", "error,hookbridge=bogus", "info,verbose"] {
            let problem = level_problem(bad).expect(bad);
            assert!(problem.contains("not a"), "{bad}: {problem}");
        }
    }
}
