//! Process configuration: the layered `hookbridge.toml` settings, units (durations,
//! sizes) and secret references shared by connector files.

pub mod load;
pub(crate) mod rate_limit;
pub mod secret;
pub mod settings;
pub(crate) mod units;
pub(crate) mod validate;

use std::fmt;

pub use secret::Secret;
pub(crate) use secret::SecretRef;
pub(crate) use settings::Settings;

/// A configuration problem, always naming where it is: the file, the key and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the value came from (or the layer, e.g. the environment).
    pub file: String,
    /// Dotted key path inside the file, when known.
    pub key: Option<String>,
    /// What is wrong and, where possible, what to do about it. Never contains a secret.
    pub reason: String,
}

impl ConfigError {
    pub fn new(file: impl Into<String>, key: impl Into<String>, reason: impl Into<String>) -> Self {
        let key = key.into();
        Self {
            file: file.into(),
            key: (!key.is_empty()).then_some(key),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: key `{}`: {}", self.file, key, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

impl std::error::Error for ConfigError {}
