//! Layering of the process settings: built-in defaults → `hookbridge.toml` (or YAML) →
//! `HOOKBRIDGE__SECTION__KEY` environment variables.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};

use super::validate::validate;
use super::{ConfigError, Settings};

const DEFAULTS: &str = include_str!("defaults.toml");

/// The default config file looked up in the working directory when `--config` is absent.
pub(crate) const DEFAULT_FILE: &str = "hookbridge.toml";

/// Settings plus where they came from, so connectors resolve relative to the file.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    /// The file that was read, if any (`None` = defaults and environment only).
    pub file: Option<PathBuf>,
    /// Each setting an environment variable set, with the variable.
    pub set_by_env: Vec<(String, String)>,
    /// Variables that look like an override written with single underscores
    /// (`HOOKBRIDGE_KAFKA_BROKERS`), which are not read: warned about, by name.
    pub unread_env: Vec<String>,
}

impl Loaded {
    /// `e` (about these settings, found after loading) naming the environment variable
    /// behind it when one set the setting it is about.
    pub fn blame(&self, e: ConfigError) -> ConfigError {
        blame_environment(e, &self.set_by_env)
    }

    /// Where setting `key` (dotted, as `admin.console.token`) was written: the
    /// environment variable that set it, else the settings file.
    pub fn written_in(&self, key: &str) -> String {
        match self.set_by_env.iter().find(|(setting, _)| setting == key) {
            Some((_, var)) => format!("environment variable {var}"),
            None => self.file_label(),
        }
    }

    /// What to tell the operator about [`Loaded::unread_env`]: one line per variable.
    pub fn unread_env_warnings(&self) -> impl Iterator<Item = String> + '_ {
        self.unread_env.iter().map(|name| {
            format!(
                "environment variable {name} is not read: a setting is overridden as HOOKBRIDGE__SECTION__KEY, with two underscores after HOOKBRIDGE and between the parts (as HOOKBRIDGE__KAFKA__BROKERS)"
            )
        })
    }

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
    load_settings_with(path, std::env::vars_os())
}

/// [`load_settings`] with these environment variables in place of the process's.
fn load_settings_with(
    path: Option<&Path>,
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Loaded, ConfigError> {
    let (overrides, unread_env) = overrides(vars)?;
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
        check_toml_syntax(p, &label)?;
        builder = builder.add_source(File::from(p.as_path()).required(true));
    }
    let set_by_env: Vec<(String, String)> = (overrides.keys())
        .map(|name| (setting_of(name), name.clone()))
        .collect();
    // Values stay strings until a setting's type asks for a number or a boolean: parsed
    // up front, a secret of digits lost its leading zeros (`00123` became 123).
    builder = builder.add_source(
        Environment::with_prefix("HOOKBRIDGE")
            .prefix_separator("__")
            .separator("__")
            .source(Some(overrides)),
    );
    let blame = |e: ConfigError| blame_environment(e, &set_by_env);
    let built = builder
        .build()
        .map_err(|e| blame(from_config_error(&label, e)))?;
    whole_numbers_whole(&built, &label).map_err(blame)?;
    let settings = built
        .try_deserialize::<Settings>()
        .map_err(|e| blame(from_config_error(&label, e)))?;
    validate(&settings, &label).map_err(blame)?;
    Ok(Loaded {
        settings,
        file,
        set_by_env,
        unread_env,
    })
}

/// Where environment overrides start: `HOOKBRIDGE__SECTION__KEY` (in any case).
const ENV_PREFIX: &str = "HOOKBRIDGE__";

/// The overrides among `vars`: names starting with [`ENV_PREFIX`], in any case. Other
/// variables are never read, whatever bytes they hold; an override that is not UTF-8
/// is an error naming it (not its value). Also the names of the variables that look
/// like an override with single underscores ([`looks_like_an_override`]).
fn overrides(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<(config::Map<String, String>, Vec<String>), ConfigError> {
    let mut out = config::Map::new();
    let mut unread = Vec::new();
    let settings = setting_names();
    for (name, value) in vars {
        let Some(name) = name.to_str() else { continue };
        let ours =
            (name.get(..ENV_PREFIX.len())).is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX));
        if !ours {
            if looks_like_an_override(name, &settings) {
                unread.push(name.to_owned());
            }
            continue;
        }
        let value = value.into_string().map_err(|_| {
            ConfigError::new(format!("environment variable {name}"), "", "is not UTF-8")
        })?;
        out.insert(name.to_owned(), value);
    }
    unread.sort();
    Ok((out, unread))
}

/// Whether `name` is a setting's override written with single underscores, as
/// `HOOKBRIDGE_KAFKA_BROKERS` or `HOOKBRIDGE_ADMIN_CONSOLE__TOKEN`: `HOOKBRIDGE_` and
/// the dotted name of a setting of the built-in defaults (or `admin.console.token`) with
/// underscores for its dots. Other `HOOKBRIDGE_…` variables are not settings and are
/// left alone: the flags' (`HOOKBRIDGE_CONFIG`), Kubernetes' service links and Docker's
/// links for a service named after a section (`HOOKBRIDGE_ADMIN_SERVICE_HOST`,
/// `HOOKBRIDGE_KAFKA_PORT`), a variable a `${…}` reference reads.
fn looks_like_an_override(name: &str, settings: &[String]) -> bool {
    let upper = name.to_ascii_uppercase();
    let Some(rest) = upper.strip_prefix("HOOKBRIDGE_") else {
        return false;
    };
    let spelt: String = (rest.split('_').filter(|part| !part.is_empty()))
        .collect::<Vec<_>>()
        .join("_");
    settings.contains(&spelt)
}

/// Every setting's dotted name, upper case with underscores for its dots, as
/// [`looks_like_an_override`] compares them (`HTTP_MAX_IN_FLIGHT`).
fn setting_names() -> Vec<String> {
    fn leaves(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (key, value) in table {
            let path = match prefix {
                "" => key.to_ascii_uppercase(),
                _ => format!("{prefix}_{}", key.to_ascii_uppercase()),
            };
            match value {
                // librdkafka's names hold dots, which no variable name can place.
                toml::Value::Table(_) if path == "KAFKA_PROPERTIES" => {}
                toml::Value::Table(t) => leaves(t, &path, out),
                _ => out.push(path),
            }
        }
    }
    let defaults = defaults_table();
    // Settings with no default.
    let mut out: Vec<String> = ["ADMIN_CONSOLE_TOKEN", "HTTP_TLS_CERT", "HTTP_TLS_KEY"]
        .map(String::from)
        .to_vec();
    leaves(&defaults, "", &mut out);
    out
}

/// The setting an override names: `HOOKBRIDGE__HTTP__MAX_IN_FLIGHT` → `http.max_in_flight`.
fn setting_of(var: &str) -> String {
    var[ENV_PREFIX.len()..].to_lowercase().replace("__", ".")
}

/// An error about a setting an environment variable set names that variable, not the
/// file (which may not even mention the setting). An unknown setting's error names the
/// field under its parent's key: the two make the setting, or the section, the override
/// is in. An error about a setting of the file that names one the environment set (a
/// rule between two settings) names the file with the variable.
fn blame_environment(e: ConfigError, set_by_env: &[(String, String)]) -> ConfigError {
    let unknown = (e.reason.strip_prefix("unknown field `"))
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| match e.key.as_deref() {
            Some(parent) => format!("{parent}.{field}"),
            None => field.to_owned(),
        });
    let within = |setting: &str, key: &str| {
        setting == key || (setting.strip_prefix(key)).is_some_and(|rest| rest.starts_with('.'))
    };
    let about = |setting: &str| match (&unknown, e.key.as_deref()) {
        (Some(unknown), _) => within(setting, unknown),
        (None, Some(key)) => within(key, setting),
        (None, None) => false,
    };
    if let Some((_, var)) = set_by_env.iter().find(|(setting, _)| about(setting)) {
        return ConfigError {
            file: format!("environment variable {var}"),
            ..e
        };
    }
    match set_by_env
        .iter()
        .find(|(setting, _)| e.reason.contains(setting.as_str()))
    {
        Some((_, var)) => ConfigError {
            file: format!("{} (with environment variable {var})", e.file),
            ..e
        },
        None => e,
    }
}

/// The built-in defaults under `text` (TOML), without files or environment; validation
/// is left to the caller. For tests of settings.
#[cfg(test)]
pub(crate) fn parse_settings(text: &str) -> Result<Settings, ConfigError> {
    Config::builder()
        .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
        .add_source(File::from_str(text, FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize::<Settings>())
        .map_err(|e| from_config_error("<text>", e))
}

/// A TOML syntax error is reported here, by line and column, before the `config` crate
/// would print the offending line — which may hold a literal secret.
fn check_toml_syntax(path: &Path, label: &str) -> Result<(), ConfigError> {
    let is_toml = path
        .extension()
        .is_none_or(|x| x.eq_ignore_ascii_case("toml"));
    if !is_toml {
        return Ok(());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(label, "", format!("cannot read file: {}", e.kind())))?;
    match text.parse::<toml::Table>() {
        Ok(_) => Ok(()),
        Err(e) => Err(toml_error(label, &text, "", &e)),
    }
}

/// The built-in defaults as a TOML table: which settings there are, and their types.
fn defaults_table() -> toml::Table {
    DEFAULTS.parse().expect("the built-in defaults are TOML")
}

/// A setting that counts (`http.max_in_flight`) written with a decimal point or an
/// exponent, in TOML or YAML, is an error: the `config` crate would round `10.5` to 11
/// and run with a number nobody wrote. Which settings count is read from the built-in
/// defaults, where each is a whole number. (An environment override stays text until
/// its setting reads it, and `10.5` does not read as a whole number there either.)
fn whole_numbers_whole(config: &Config, label: &str) -> Result<(), ConfigError> {
    let defaults = defaults_table();
    let Ok(values) = config
        .clone()
        .try_deserialize::<config::Map<String, config::Value>>()
    else {
        return Ok(()); // not a table: deserializing the settings says what is wrong
    };
    fraction_where_whole(&values, &defaults, "").map_or(Ok(()), |key| {
        Err(ConfigError::new(
            label,
            key,
            "expected a whole number, written without a decimal point or exponent",
        ))
    })
}

/// The first key (dotted, under `prefix`) where `values` hold a float and `defaults`
/// an integer.
fn fraction_where_whole(
    values: &config::Map<String, config::Value>,
    defaults: &toml::Table,
    prefix: &str,
) -> Option<String> {
    values.iter().find_map(|(key, value)| {
        let path = match prefix {
            "" => key.clone(),
            _ => format!("{prefix}.{key}"),
        };
        match (&value.kind, defaults.get(key)?) {
            (config::ValueKind::Float(_), toml::Value::Integer(_)) => Some(path),
            (config::ValueKind::Table(t), toml::Value::Table(d)) => {
                fraction_where_whole(t, d, &path)
            }
            _ => None,
        }
    })
}

/// A TOML error as file, key, line/column and reason — never the text of the line,
/// and quoted values in the reason are elided.
pub(crate) fn toml_error(file: &str, text: &str, key: &str, err: &toml::de::Error) -> ConfigError {
    let message = scrub_quoted(&one_line(err.message()));
    let reason = match err.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    };
    ConfigError::new(file, key, reason)
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Replaces every double-quoted segment with `"…"`, and a number or character serde
/// shows in backticks (`` integer `123` ``) with `` `…` ``: parsers quote the offending
/// value, and that value may be a secret written in the wrong place (a token of digits
/// written without quotes). The value an enum setting did not know (`` unknown variant
/// `…` ``) goes the same way: it is what was typed there, a secret pasted on the wrong
/// line included. Backticked names (fields, the variants expected) are kept.
pub(crate) fn scrub_quoted(text: &str) -> String {
    const VALUE_KINDS: [&str; 4] = [
        "integer ",
        "floating point ",
        "character ",
        "unknown variant ",
    ];
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut prev = None;
    while let Some(c) = chars.next() {
        if c == '`' && VALUE_KINDS.iter().any(|k| out.ends_with(k)) {
            out.push_str("`…`");
            chars.by_ref().find(|&q| q == '`');
            prev = Some('`');
            continue;
        }
        out.push(c);
        // A quote shown as a character (`"`) is the parser naming a token, not a value.
        let literal_quote = prev == Some('`') && chars.peek() == Some(&'`');
        prev = Some(c);
        if c != '"' || literal_quote {
            continue;
        }
        out.push_str("…\"");
        let mut escaped = false;
        for q in chars.by_ref() {
            match (escaped, q) {
                (false, '\\') => escaped = true,
                (false, '"') => break,
                _ => escaped = false,
            }
        }
        prev = Some('"');
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Describes a `config` crate error by key and reason, never by value: its own messages
/// quote the offending value (`invalid type: string "…"`) or the file's line.
fn from_config_error(label: &str, err: config::ConfigError) -> ConfigError {
    use config::ConfigError as E;
    match err {
        E::At { error, key, .. } => {
            let inner = from_config_error(label, *error);
            let key = inner.key.or(key).unwrap_or_default();
            ConfigError::new(label, key, inner.reason)
        }
        E::Type {
            unexpected,
            expected,
            key,
            ..
        } => ConfigError::new(
            label,
            key.unwrap_or_default(),
            format!("expected {expected}, found a {}", kind(&unexpected)),
        ),
        E::FileParse { cause, .. } => {
            let first = cause.to_string();
            let first = first.lines().next().unwrap_or("");
            ConfigError::new(label, "", format!("cannot parse: {}", scrub_quoted(first)))
        }
        E::NotFound(key) => ConfigError::new(label, key, "missing"),
        other => ConfigError::new(label, "", scrub_quoted(&one_line(&other.to_string()))),
    }
}

/// The kind of a value found where another was expected (`string`, `boolean`, …),
/// without the value that `config` appends to it.
fn kind(unexpected: &impl std::fmt::Display) -> String {
    let text = unexpected.to_string();
    let cut = text.find(['"', '`']).unwrap_or(text.len());
    text[..cut].trim().to_owned()
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

    fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        (vars.iter()).map(|(k, v)| (k.into(), v.into())).collect()
    }

    /// Overrides keep their text until a setting's type reads it: a secret of digits
    /// keeps its leading zeros, numbers and booleans still read as such.
    #[test]
    fn environment_overrides_are_read_as_their_setting_s_type() {
        let loaded = load_settings_with(
            None,
            env(&[
                ("HOOKBRIDGE__ADMIN__CONSOLE__TOKEN", "00012345678901234567"),
                ("HOOKBRIDGE__HTTP__MAX_IN_FLIGHT", "77"),
                ("HOOKBRIDGE__ADMIN__CONSOLE__READ_ONLY", "true"),
                ("hookbridge__kafka__brokers", "0123:9092"),
                ("HOOKBRIDGE__SHUTDOWN__DRAIN_TIMEOUT", "31"),
                ("OTHER__HTTP__MAX_IN_FLIGHT", "x"),
            ]),
        )
        .expect("loads");
        let s = &loaded.settings;
        let token = s
            .admin
            .console
            .token
            .as_ref()
            .expect("a token")
            .resolve()
            .unwrap();
        assert_eq!(token.expose(), "00012345678901234567");
        assert_eq!(s.http.max_in_flight, 77);
        assert!(s.admin.console.read_only);
        assert_eq!(s.kafka.brokers, "0123:9092");
        assert_eq!(
            s.shutdown.drain_timeout.0,
            std::time::Duration::from_secs(31)
        );
    }

    /// A setting written with single underscores is not read, and is named for a
    /// warning; the flags' variables and Kubernetes' service links are not.
    #[test]
    fn an_override_with_single_underscores_is_named_not_read() {
        let loaded = load_settings_with(
            None,
            env(&[
                ("HOOKBRIDGE_KAFKA_BROKERS", "k:9092"),
                ("hookbridge_http_max_in_flight", "7"),
                ("HOOKBRIDGE_ADMIN_CONSOLE__TOKEN", "x"),
                ("HOOKBRIDGE_CONNECTORS_DIR", "/c"),
                ("HOOKBRIDGE_CONFIG", "/etc/hookbridge.toml"),
                ("HOOKBRIDGE_DLQ_LIMIT", "5"),
                ("HOOKBRIDGE_ADMIN_SERVICE_HOST", "10.0.0.1"),
                ("HOOKBRIDGE_KAFKA_LIBS", "/cache/libs"),
                ("HOOKBRIDGE_KAFKA_ENV_KAFKA_HEAP_OPTS", "-Xmx1g"),
                ("HOOKBRIDGE_KAFKA_PASSWORD", "read by a ${...} reference"),
                ("HOOKBRIDGE_HTTP_TLS_CERT", "/etc/tls/chain.pem"),
                ("HOOKBRIDGE_ADMIN_PORT_9090_TCP_ADDR", "10.0.0.1"),
                ("HOOKBRIDGE_HTTP_PORT", "tcp://10.0.0.1:8080"),
                ("HOOKBRIDGE_KAFKAESQUE", "1"),
                ("HOOKBRIDGE__LOG__LEVEL", "debug"),
            ]),
        )
        .expect("loads");
        assert_eq!(
            loaded.unread_env,
            [
                "HOOKBRIDGE_ADMIN_CONSOLE__TOKEN",
                "HOOKBRIDGE_CONNECTORS_DIR",
                "HOOKBRIDGE_HTTP_TLS_CERT",
                "HOOKBRIDGE_KAFKA_BROKERS",
                "hookbridge_http_max_in_flight",
            ]
        );
        assert_ne!(loaded.settings.kafka.brokers, "k:9092");
        let said: Vec<String> = loaded.unread_env_warnings().collect();
        assert!(said[3].starts_with("environment variable HOOKBRIDGE_KAFKA_BROKERS is not read"));
        assert!(!said.iter().any(|w| w.contains("k:9092")), "{said:?}");
    }

    /// A counting setting written as a fraction is refused by key (the `config` crate
    /// would round it); whole numbers and fractions where one is allowed load.
    #[test]
    fn a_fraction_where_a_whole_number_is_expected_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookbridge.toml");
        let cases = [
            ("[http]\nmax_in_flight = 10.5\n", Some("http.max_in_flight")),
            (
                "[http]\nunverified_rate_limit = { per_second = 2.5, burst = 10 }\n",
                Some("http.unverified_rate_limit.per_second"),
            ),
            (
                "[kafka]\ncommit_metadata_max_bytes = 4e3\n",
                Some("kafka.commit_metadata_max_bytes"),
            ),
            ("[http]\nmax_in_flight = 10.0\n", Some("http.max_in_flight")),
            ("[http]\nmax_in_flight = 10\n", None),
            ("[kafka.properties]\n\"linger.ms\" = \"1.5\"\n", None),
        ];
        for (text, key) in cases {
            std::fs::write(&path, text).unwrap();
            let loaded = load_settings_with(Some(&path), env(&[]));
            match key {
                Some(key) => {
                    let e = loaded.unwrap_err();
                    assert_eq!(e.key.as_deref(), Some(key), "{e}");
                    assert!(e.reason.contains("whole number"), "{e}");
                }
                None => assert!(loaded.is_ok(), "{text}: {:?}", loaded.err()),
            }
        }
        // YAML too.
        let path = dir.path().join("hookbridge.yaml");
        std::fs::write(&path, "http:\n  max_in_flight: 10.5\n").unwrap();
        let e = load_settings_with(Some(&path), env(&[])).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("http.max_in_flight"), "{e}");
    }

    /// A bad or unknown override names its variable, not the file.
    #[test]
    fn an_override_s_error_names_the_variable() {
        let cases = [
            (
                "HOOKBRIDGE__HTTP__MAX_IN_FLIGHT",
                "abc",
                Some("http.max_in_flight"),
            ),
            (
                "HOOKBRIDGE__HTTP__MAX_IN_FLIGHT",
                "0",
                Some("http.max_in_flight"),
            ),
            ("HOOKBRIDGE__NOPE", "1", None),
            ("HOOKBRIDGE__NOPE__X", "1", None),
            ("HOOKBRIDGE__HTTP__MAX_INFLIGHT", "1", Some("http")),
        ];
        for (name, value, key) in cases {
            let e = load_settings_with(None, env(&[(name, value)])).unwrap_err();
            assert_eq!(e.file, format!("environment variable {name}"), "{e}");
            if key.is_some() {
                assert_eq!(e.key.as_deref(), key, "{e}");
            }
            assert!(
                !e.to_string().contains("abc"),
                "the value is not echoed: {e}"
            );
        }
    }

    /// A rule between two settings broken by an override names the variable beside the
    /// file, whose key it reports; an error found after loading about a setting the
    /// override made names the variable alone (`blame`).
    #[test]
    fn an_override_that_breaks_a_rule_with_another_setting_is_named() {
        let name = "HOOKBRIDGE__SHUTDOWN__DRAIN_TIMEOUT";
        let e = load_settings_with(None, env(&[(name, "2s")])).unwrap_err();
        assert!(
            e.file
                .contains(&format!("with environment variable {name}")),
            "{e}"
        );
        let name = "HOOKBRIDGE__KAFKA__PROPERTIES__SASL";
        let loaded = load_settings_with(None, env(&[(name, "1")])).unwrap();
        let later = ConfigError::new(loaded.file_label(), "kafka.properties.sasl", "unknown");
        assert_eq!(
            loaded.blame(later).file,
            format!("environment variable {name}")
        );
        let other = ConfigError::new(loaded.file_label(), "kafka.brokers", "unreachable");
        assert_eq!(loaded.blame(other).file, loaded.file_label());
    }

    /// Variables that are not hookbridge's are never read, whatever bytes they hold; an
    /// override that is not UTF-8 is an error naming it, not a panic.
    #[test]
    fn other_variables_are_never_read_and_a_bad_override_is_named() {
        use std::os::unix::ffi::OsStringExt;
        let latin1 = || OsString::from_vec(b"caf\xe9".to_vec());
        let vars = vec![(OsString::from("LC_NAME"), latin1()), (latin1(), latin1())];
        assert!(load_settings_with(None, vars).is_ok());
        let bad = vec![(OsString::from("HOOKBRIDGE__KAFKA__BROKERS"), latin1())];
        let e = load_settings_with(None, bad).unwrap_err();
        assert_eq!(e.file, "environment variable HOOKBRIDGE__KAFKA__BROKERS");
    }

    /// An unknown field of the file is the file's, even with an override whose last
    /// part has that name.
    #[test]
    fn a_file_s_unknown_field_is_not_blamed_on_an_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookbridge.toml");
        std::fs::write(&path, "brokers = \"x:1\"\n").unwrap();
        let e = load_settings_with(Some(&path), env(&[("HOOKBRIDGE__KAFKA__BROKERS", "k:1")]))
            .unwrap_err();
        assert!(e.file.ends_with("hookbridge.toml"), "{e}");
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
    fn syntax_error_names_the_line_but_never_prints_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookbridge.toml");
        std::fs::write(
            &path,
            "[kafka]\nbrokers = \"x:1\"\n[kafka.properties]\n\"sasl.password\" = \"hunter2-literal\n",
        )
        .unwrap();
        let err = load_settings(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("hookbridge.toml") && err.contains("line 4"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn yaml_errors_never_print_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookbridge.yaml");
        std::fs::write(
            &path,
            "kafka:\n  properties:\n    sasl.password: \"hunter2-literal\n",
        )
        .unwrap();
        let err = load_settings(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("hookbridge.yaml") && err.contains("line 3"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn type_errors_name_the_key_not_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookbridge.toml");
        std::fs::write(&path, "[http]\nmax_in_flight = \"hunter2-literal\"\n").unwrap();
        let err = load_settings(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("max_in_flight"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn scrubs_quoted_values() {
        assert_eq!(
            scrub_quoted(r#"invalid type: string "a\"b", expected u32"#),
            r#"invalid type: string "…", expected u32"#
        );
        assert_eq!(scrub_quoted("no quotes `k`"), "no quotes `k`");
        assert_eq!(
            scrub_quoted("invalid type: integer `8675309123456789`, expected a string"),
            "invalid type: integer `…`, expected a string"
        );
        assert_eq!(
            scrub_quoted("invalid type: floating point `1.5`, expected `a` or `b`"),
            "invalid type: floating point `…`, expected `a` or `b`"
        );
        assert_eq!(
            scrub_quoted("invalid value: character `x`, unknown field `y`"),
            "invalid value: character `…`, unknown field `y`"
        );
        assert_eq!(scrub_quoted("expected `\"`"), "expected `\"`");
        assert_eq!(
            scrub_quoted("unknown variant `sk_live_51H`, expected `key` or `partition`"),
            "unknown variant `…`, expected `key` or `partition`"
        );
        assert_eq!(scrub_quoted("open \"abc"), "open \"…\"");
        assert_eq!(line_column("a\nbc\nd", 4), (2, 3));
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
