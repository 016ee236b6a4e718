//! Connector files: one source or sink per `*.toml` file in the connectors directory,
//! parsed strictly (unknown keys are errors) and validated into typed definitions.

pub(crate) mod key;
pub(crate) mod sink;
pub(crate) mod source;
pub(crate) mod status_policy;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::load::toml_error;
use crate::config::units::format_size;
use crate::config::{ConfigError, Settings};
pub(crate) use sink::{Sink, SinkConfig};
pub(crate) use source::{Source, SourceConfig};

/// The raw shape of one connector file: exactly one of `[source]` or `[sink]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectorFile {
    source: Option<SourceConfig>,
    sink: Option<SinkConfig>,
}

/// Every connector of the process, validated, each with the file it came from.
#[derive(Debug, Default)]
pub struct Connectors {
    pub sources: Vec<Source>,
    pub sinks: Vec<Sink>,
    /// Literal secrets found (file, key): accepted for local development, warned by `check`.
    pub literal_secrets: Vec<(String, String)>,
}

impl Connectors {
    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name.as_ref() == name)
    }

    pub fn sink(&self, name: &str) -> Option<&Sink> {
        self.sinks.iter().find(|s| s.name.as_ref() == name)
    }
}

/// Loads and validates every `*.toml` in `dir`, in file-name order.
pub fn load_dir(dir: &Path) -> Result<Connectors, ConfigError> {
    let label = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ConfigError::new(&label, "", format!("cannot read connectors directory: {e}"))
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();

    let mut out = Connectors::default();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigError::new(
                path.display().to_string(),
                "",
                format!("cannot read file: {e}"),
            )
        })?;
        load_file(&path.display().to_string(), &text, &mut out)?;
    }
    check_unique(&out)?;
    Ok(out)
}

/// Parses one connector file's text and adds the validated connector to `out`.
pub(crate) fn load_file(file: &str, text: &str, out: &mut Connectors) -> Result<(), ConfigError> {
    let raw: ConnectorFile = parse_toml(file, text)?;
    match (raw.source, raw.sink) {
        (Some(src), None) => {
            for (key, r) in src.secret_refs() {
                if r.is_literal() {
                    out.literal_secrets.push((file.to_owned(), key));
                }
            }
            out.sources.push(src.validate(file)?);
        }
        (None, Some(sink)) => {
            for (key, r) in sink.secret_refs() {
                if r.is_literal() {
                    out.literal_secrets.push((file.to_owned(), key));
                }
            }
            out.sinks.push(sink.validate(file)?);
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                file,
                "",
                "a connector file holds either [source] or [sink], not both",
            ))
        }
        (None, None) => {
            return Err(ConfigError::new(
                file,
                "",
                "expected a [source] or [sink] table",
            ))
        }
    }
    Ok(())
}

/// Deserializes TOML, reporting the dotted key path of the first problem.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<T, ConfigError> {
    // Errors give line and column, never the line itself: it may hold a literal secret.
    let de = toml::Deserializer::parse(text).map_err(|e| toml_error(file, text, "", &e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        toml_error(file, text, &key, e.inner())
    })
}

/// Rules that involve both the settings and a connector.
pub fn check_against(settings: &Settings, connectors: &Connectors) -> Result<(), ConfigError> {
    let drain = settings.shutdown.drain_timeout.0;
    for sink in &connectors.sinks {
        if sink.timeout >= drain {
            return Err(ConfigError::new(
                sink.file.as_str(),
                "sink.timeout",
                format!(
                    "{} must be shorter than shutdown.drain_timeout ({}), so an attempt in flight always ends within a drain",
                    humantime::format_duration(sink.timeout),
                    humantime::format_duration(drain)
                ),
            ));
        }
    }
    sources_fit(settings, &connectors.sources)
}

/// Every source's `max_body` must fit the process-wide body budget, or such a webhook
/// would be answered 503 — and retried by its sender — forever.
fn sources_fit(settings: &Settings, sources: &[Source]) -> Result<(), ConfigError> {
    let budget = settings.http.max_body_bytes_in_flight.0;
    for source in sources {
        if source.max_body as u64 > budget {
            return Err(ConfigError::new(
                source.file.as_str(),
                "source.max_body",
                format!(
                    "{} is more than http.max_body_bytes_in_flight ({}); such a webhook could never be accepted",
                    format_size(source.max_body as u64),
                    format_size(budget)
                ),
            ));
        }
    }
    Ok(())
}

fn check_unique(c: &Connectors) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    let named = c
        .sources
        .iter()
        .map(|s| (&s.file, &s.name))
        .chain(c.sinks.iter().map(|s| (&s.file, &s.name)));
    for (file, name) in named {
        if !names.insert(name.clone()) {
            return Err(ConfigError::new(
                file.as_str(),
                "name",
                format!("connector name {name:?} is used by another file; names must be unique"),
            ));
        }
    }
    let mut paths = HashSet::new();
    for s in &c.sources {
        if !paths.insert(s.path.clone()) {
            return Err(ConfigError::new(
                s.file.as_str(),
                "source.path",
                format!("path {:?} is used by another source", s.path),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Any text, TOML or not, gives a value or a located error: never a panic.
        #[test]
        fn connector_files_never_panic(text in ".{0,400}") {
            let mut out = Connectors::default();
            let _ = load_file("fuzz.toml", &text, &mut out);
        }

        #[test]
        fn near_valid_sources_never_panic(
            path in ".{0,20}", key in ".{0,30}", body in ".{0,12}", rate in 0u32..5,
        ) {
            let text = format!(
                "[source]\nname = \"x\"\npath = {path:?}\ntopic = \"t\"\nverify = {{ scheme = \"none\" }}\nkey = {key:?}\nmax_body = {body:?}\nrate_limit = {{ per_second = {rate} }}\n"
            );
            let mut out = Connectors::default();
            let _ = load_file("fuzz.toml", &text, &mut out);
        }
    }

    #[test]
    fn errors_name_the_key_path() {
        let mut out = Connectors::default();
        let err = load_file("s.toml", "[sink]\nname = \"a\"\ntopics = [\"t\"]\nurl = \"http://x\"\nretry = { max_attemps = 3 }\n", &mut out)
            .unwrap_err();
        assert_eq!(err.file, "s.toml");
        assert!(err.key.as_deref().unwrap_or("").contains("retry"), "{err}");
        assert!(err.reason.contains("max_attemps"), "{err}");
    }
}
