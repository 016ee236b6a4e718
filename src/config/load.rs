//! Layering of the process settings: built-in defaults → `hookbridge.toml` (or YAML) →
//! `HOOKBRIDGE__SECTION__KEY` environment variables.

use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};

use super::{ConfigError, Settings};

const DEFAULTS: &str = include_str!("defaults.toml");

/// The default config file looked up in the working directory when `--config` is absent.
pub const DEFAULT_FILE: &str = "hookbridge.toml";

/// Settings plus where they came from, so connectors resolve relative to the file.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    /// The file that was read, if any (`None` = defaults and environment only).
    pub file: Option<PathBuf>,
}

impl Loaded {
    /// Name used in error messages for keys of the settings file.
    pub fn file_label(&self) -> String {
        self.file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<defaults+environment>".to_owned())
    }

    /// The connectors directory, relative paths taken from the config file's directory.
    pub fn connectors_dir(&self) -> PathBuf {
        let dir = &self.settings.connectors_dir;
        match self.file.as_deref().and_then(Path::parent) {
            Some(base) if dir.is_relative() => base.join(dir),
            _ => dir.clone(),
        }
    }
}

/// Loads the settings. An explicit `path` must exist; without one, `hookbridge.toml` in the
/// working directory is used when present.
pub fn load_settings(path: Option<&Path>) -> Result<Loaded, ConfigError> {
    let file = match path {
        Some(p) => {
            if !p.is_file() {
                return Err(ConfigError::new(
                    p.display().to_string(),
                    "",
                    "file not found",
                ));
            }
            Some(p.to_path_buf())
        }
        None => Some(PathBuf::from(DEFAULT_FILE)).filter(|p| p.is_file()),
    };
    let label = file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<defaults+environment>".to_owned());

    let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
    if let Some(p) = &file {
        builder = builder.add_source(File::from(p.as_path()).required(true));
    }
    builder = builder.add_source(
        Environment::with_prefix("HOOKBRIDGE")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true),
    );
    let settings = builder
        .build()
        .and_then(|c| c.try_deserialize::<Settings>())
        .map_err(|e| from_config_error(&label, e))?;
    Ok(Loaded { settings, file })
}

fn from_config_error(label: &str, err: config::ConfigError) -> ConfigError {
    // `config` already names the key in its message ("... for key `kafka.brokers`").
    ConfigError::new(label, "", err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_on_their_own() {
        let loaded = load_settings(None).unwrap();
        assert_eq!(loaded.settings.http.listen.port(), 8080);
        assert!(loaded.settings.kafka.properties.is_empty());
    }

    #[test]
    fn unknown_key_is_an_error_naming_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookbridge.toml");
        std::fs::write(&path, "[kafka]\nbrokerz = \"x:1\"\n").unwrap();
        let err = load_settings(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("hookbridge.toml"), "{err}");
        assert!(err.contains("brokerz"), "{err}");
    }

    #[test]
    fn relative_connectors_dir_follows_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookbridge.toml");
        std::fs::write(&path, "connectors_dir = \"conn\"\n").unwrap();
        let loaded = load_settings(Some(&path)).unwrap();
        assert_eq!(loaded.connectors_dir(), dir.path().join("conn"));
    }
}
