//! Secrets: how they are referenced in config (`${ENV}`, `file:/path`, or a literal for
//! local development) and a value type that never prints itself.
//!
//! A [`Secret`]'s `Debug` and `Display` are always `"<redacted>"`, so a secret can sit in
//! any struct that derives `Debug` without leaking into logs, errors or `check` output.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

/// A resolved secret value. Cheap to clone; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a value that is already resolved (tests, generated keys).
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it: a MAC key or a token compare.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a secret comes from, as written in a connector file.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum SecretRef {
    /// `${NAME}`: the environment variable `NAME`.
    Env(String),
    /// `file:/path`: the file's contents, with one trailing newline trimmed.
    File(String),
    /// Anything else: the value itself (accepted for local development; `check` warns).
    Literal(Secret),
}

impl From<String> for SecretRef {
    fn from(raw: String) -> Self {
        if let Some(name) = raw.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            SecretRef::Env(name.to_owned())
        } else if let Some(path) = raw.strip_prefix("file:") {
            SecretRef::File(path.to_owned())
        } else {
            SecretRef::Literal(Secret::new(raw))
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Why a secret reference could not be resolved. Names the reference, never the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("environment variable {0} is empty")]
    EmptyEnv(String),
    #[error("cannot read secret file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("secret file {0} is empty")]
    EmptyFile(String),
    #[error("secret is empty")]
    EmptyLiteral,
    #[error("the value looks like a mistyped reference ({0}); write \"${{NAME}}\" for an environment variable or \"file:/path\" for a file (a literal secret cannot have this form)")]
    MistypedReference(&'static str),
}

impl SecretRef {
    /// Reads the secret from where it lives.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if v.is_empty() => Err(SecretError::EmptyEnv(name.clone())),
                Ok(v) => Ok(Secret::new(v)),
                Err(_) => Err(SecretError::MissingEnv(name.clone())),
            },
            SecretRef::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| SecretError::File {
                    path: path.clone(),
                    reason: e.kind().to_string(),
                })?;
                let value = text.strip_suffix('\n').unwrap_or(&text);
                let value = value.strip_suffix('\r').unwrap_or(value);
                if value.is_empty() {
                    return Err(SecretError::EmptyFile(path.clone()));
                }
                Ok(Secret::new(value))
            }
            SecretRef::Literal(s) if s.expose().is_empty() => Err(SecretError::EmptyLiteral),
            SecretRef::Literal(s) => {
                self.check_form()?;
                Ok(s.clone())
            }
        }
    }

    /// Refuses a literal that was almost certainly meant as a reference (`$VAR`,
    /// `{VAR}`, `$(VAR)`, `${VAR` …): used as is, it would become the secret silently.
    /// Pure: looks at the text only; the reason never contains it.
    pub fn check_form(&self) -> Result<(), SecretError> {
        match self {
            SecretRef::Literal(s) => match mistyped_reference(s.expose()) {
                Some(what) => Err(SecretError::MistypedReference(what)),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// True for a value written inline in the file (fine locally, a warning in `check`).
    pub fn is_literal(&self) -> bool {
        matches!(self, SecretRef::Literal(_))
    }

    /// A printable description that never contains the secret: `${NAME}`, `file:/path`
    /// or `<literal>`.
    pub fn describe(&self) -> String {
        match self {
            SecretRef::Env(name) => format!("${{{name}}}"),
            SecretRef::File(path) => format!("file:{path}"),
            SecretRef::Literal(_) => "<literal>".to_owned(),
        }
    }
}

/// What kind of mistyped reference `text` looks like, if any.
fn mistyped_reference(text: &str) -> Option<&'static str> {
    let trimmed = text.trim();
    let is_reference = |t: &str| {
        matches!(
            SecretRef::from(t.to_owned()),
            SecretRef::Env(_) | SecretRef::File(_)
        )
    };
    if trimmed != text && is_reference(trimmed) {
        return Some("a reference with spaces around it");
    }
    if trimmed.starts_with("${") || trimmed.contains("${") {
        return Some("an unterminated or embedded ${...}");
    }
    if trimmed.starts_with("$(") {
        return Some("$(...)");
    }
    if trimmed.starts_with('$') {
        return Some("$NAME");
    }
    if trimmed.starts_with('{') && trimmed.ends_with('}') {
        return Some("{NAME}");
    }
    // Compared as bytes: a literal secret may hold any character, and slicing text at a
    // byte that is not a character boundary would panic with the secret in the message.
    if trimmed.len() > 5
        && trimmed.as_bytes()[..5].eq_ignore_ascii_case(b"file:")
        && !trimmed.starts_with("file:")
    {
        return Some("a file: reference with the wrong case");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            SecretRef::from("${A_B}".to_owned()),
            SecretRef::Env("A_B".into())
        );
        assert_eq!(
            SecretRef::from("file:/run/s".to_owned()),
            SecretRef::File("/run/s".into())
        );
        assert!(SecretRef::from("whsec_abc".to_owned()).is_literal());
    }

    #[test]
    fn never_prints_the_value() {
        let r = SecretRef::from("hunter2".to_owned());
        assert!(!format!("{r:?}").contains("hunter2"));
        let s = r.resolve().unwrap();
        assert!(!format!("{s:?} {s}").contains("hunter2"));
    }

    #[test]
    fn file_secret_trims_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "abc\n").unwrap();
        let r = SecretRef::File(p.to_string_lossy().into_owned());
        assert_eq!(r.resolve().unwrap().expose(), "abc");
    }

    #[test]
    fn mistyped_references_are_refused_without_printing_them() {
        for text in [
            "$KAFKA_PASSWORD",
            "{KAFKA_PASSWORD}",
            "$(KAFKA_PASSWORD)",
            "${KAFKA_PASSWORD",
            "prefix${KAFKA_PASSWORD}",
            " ${KAFKA_PASSWORD}",
            "FILE:/run/secret",
        ] {
            let err = SecretRef::from(text.to_owned()).resolve().unwrap_err();
            assert!(matches!(err, SecretError::MistypedReference(_)), "{text}");
            assert!(!err.to_string().contains("KAFKA_PASSWORD"), "{err}");
        }
        for fine in [
            "hunter2",
            "whsec_abc",
            "a$b",
            "pa{ss}word",
            "pwd€-hunter2",
            "€€€€€€",
        ] {
            assert!(SecretRef::from(fine.to_owned()).resolve().is_ok(), "{fine}");
        }
    }

    #[test]
    fn missing_env_names_the_variable() {
        let err = SecretRef::Env("HOOKBRIDGE_TEST_SURELY_UNSET".into())
            .resolve()
            .unwrap_err();
        assert!(err.to_string().contains("HOOKBRIDGE_TEST_SURELY_UNSET"));
    }
}
