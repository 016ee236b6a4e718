//! Connector files: one source or sink per `*.toml` file in the connectors directory,
//! parsed strictly (unknown keys are errors), validated into typed definitions (pure:
//! no environment, files or clients), then built: secrets resolved, verifiers and rate
//! limiters created.

pub(crate) mod jq;
pub(crate) mod key;
pub(crate) mod sink;
pub(crate) mod source;
pub(crate) mod status_policy;
pub(crate) mod template;

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
    /// Source secrets shorter than [`WEAK_SECRET_BYTES`] (file, key): warned by `check`.
    pub weak_secrets: Vec<(String, String)>,
}

/// A shared secret shorter than this can be guessed offline from one captured request.
pub const WEAK_SECRET_BYTES: usize = 16;

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
    // Hidden files are not connectors: an editor's lock (`.#orders.toml`, a dangling
    // link), macOS's `._orders.toml` beside a copied file.
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
        })
        .collect();
    files.sort();

    let mut out = Connectors::default();
    for path in files {
        // A FIFO would be read forever, a device for as long as it gives: only a file (or
        // a link to one, as a mounted ConfigMap's are) is read.
        if std::fs::metadata(&path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            return Err(ConfigError::new(
                path.display().to_string(),
                "",
                "not a regular file (a pipe, socket or device)",
            ));
        }
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

/// What [`is_topic_name`] checks, as a configuration error says it.
pub const TOPIC_NAME_RULE: &str =
    "is not a Kafka topic name: 1 to 249 of A-Z, a-z, 0-9, '.', '_' and '-', not \".\" or \"..\"";

/// Whether Kafka allows this topic name: 1 to 249 of `[A-Za-z0-9._-]`, and not `.` or
/// `..`. Names a sender or a record's contents put forward are checked against it before
/// they name anything.
pub fn is_topic_name(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name != "."
        && name != ".."
        && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Parses one connector file's text and adds the validated connector to `out`.
pub(crate) fn load_file(file: &str, text: &str, out: &mut Connectors) -> Result<(), ConfigError> {
    let raw: ConnectorFile = parse_toml(file, text)?;
    match (raw.source, raw.sink) {
        (Some(src), None) => {
            for (key, r) in src.secret_refs() {
                if r.is_literal() {
                    out.literal_secrets.push((file.to_owned(), key.clone()));
                }
                // A reference that does not resolve is reported by `build` below.
                if (r.resolve()).is_ok_and(|s| s.expose().len() < WEAK_SECRET_BYTES) {
                    out.weak_secrets.push((file.to_owned(), key));
                }
            }
            out.sources.push(src.validate(file)?.build()?);
        }
        (None, Some(sink)) => {
            for (key, r) in sink.secret_refs() {
                if r.is_literal() {
                    out.literal_secrets.push((file.to_owned(), key));
                }
            }
            out.sinks.push(sink.validate(file)?.build()?);
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
    let budgets = [
        (
            "http.max_body_bytes_in_flight",
            settings.http.max_body_bytes_in_flight.0,
        ),
        (
            "http.max_body_bytes_per_address",
            settings.http.max_body_bytes_per_address.0,
        ),
    ];
    for source in sources {
        for (key, budget) in budgets {
            if source.max_body as u64 > budget {
                return Err(ConfigError::new(
                    source.file.as_str(),
                    "source.max_body",
                    format!(
                        "{} is more than {key} ({}); such a webhook could never be accepted",
                        format_size(source.max_body as u64),
                        format_size(budget)
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn check_unique(c: &Connectors) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    let named = (c.sources.iter())
        .map(|s| (&s.file, "source.name", &s.name))
        .chain(c.sinks.iter().map(|s| (&s.file, "sink.name", &s.name)));
    for (file, key, name) in named {
        if !names.insert(name.clone()) {
            return Err(ConfigError::new(
                file.as_str(),
                key,
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

    /// A secret of digits written without quotes is a type error that names the key
    /// and what was expected, never the number.
    #[test]
    fn a_secret_written_as_a_number_is_not_shown_in_the_error() {
        for value in ["8675309123456789", "86753.09123"] {
            let text = format!(
                "[source]\nname = \"s\"\npath = \"/s\"\ntopic = \"t\"\nverify = {{ scheme = \"token\", header = \"X-Token\", secrets = [{value}] }}\n"
            );
            let err = load_file("s.toml", &text, &mut Connectors::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("source.verify.secrets[0]"), "{err}");
            assert!(!err.contains("8675309") && !err.contains("86753"), "{err}");
        }
        let sink = "[sink]\nname = \"o\"\ntopics = [\"t\"]\nurl = \"http://h/\"\nheaders = { Authorization = 98765432109876 }\n";
        let err = load_file("o.toml", sink, &mut Connectors::default())
            .unwrap_err()
            .to_string();
        assert!(!err.contains("98765432109876"), "{err}");
    }

    /// One source and one sink setting every key `docs/configuration.md` documents for
    /// them; that page is read too, so a key documented there but not set here fails the
    /// test.
    const KITCHEN_SOURCE: &str = r#"
[source]
name = "kitchen-in"
path = "/webhooks/kitchen"
topic = "kitchen.{event_type}"
verify = { scheme = "hmac", secrets = ["one", "two"], header = "X-Signature", prefix = "sha256=", algorithm = "sha512", encoding = "base64", timestamp_header = "X-Timestamp", template = "{url}.{timestamp}.{body}", tolerance = "2m", public_url = "https://hooks.example.com/webhooks/kitchen" }
key = "json:/data/id"
forward_headers = ["X-Event", "X-Delivery"]
max_body = "2MiB"
rate_limit = { per_second = 200, burst = 400 }
replay_guard = { id = "header:X-Delivery", window = "10m" }
event_type = "header:X-Event"
cloudevents = { allowed_origins = ["eventgrid.azure.net"] }
topics_allowed = ["kitchen.order.created", "kitchen.refund.*"]
"#;

    const KITCHEN_SINK: &str = r#"
[sink]
name = "kitchen-out"
topics = ["orders", "refunds"]
group_id = "kitchen-group"
url = "https://{header.x-region}.inventory.internal/hooks/{topic}/{key}?offset={offset}"
allowed_hosts = ["eu.inventory.internal", "us.inventory.internal:443"]
method = "put"
headers = { X-Api-Key = "literal-token", X-Tenant = "{header.x-tenant}" }
content_type = "application/cloudevents+json"
forward_headers = ["traceparent", "X-*"]
filter = '.type == "order.created"'
transform = '{id: .id, total: .amount}'

timeout = "5s"
concurrency = 32
ordering = "partition"
tombstones = "skip"
buffer = 500
retry = { max_attempts = 7, max_elapsed = "1h", initial = "250ms", max = "1m", honor_retry_after = false }
rate_limit = { per_second = 500, burst = 50 }
dlq = { topic = "orders.dlq" }
sign = { scheme = "standard-webhooks", secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }
breaker = { failures = 5, cooldown = "10s" }
status = { retry = [404, "5xx"], dead_letter = ["4xx"] }
auth = { oauth2 = { token_url = "https://login.example.com/oauth/token", client_id = "hb", client_secret = "literal-secret", scopes = ["a", "b"], audience = "inventory", client_auth = "body" } }
tls = { }
format = "raw"
batch = { max_records = 50, max_bytes = "512KiB", max_wait = "20ms", format = "ndjson", items = "envelope" }
"#;

    /// The keys of `docs/configuration.md`'s `[source]` example and of its sink key table.
    fn documented_keys() -> Vec<String> {
        let doc = include_str!("../../docs/configuration.md");
        let section = |from: &str, to: &str| {
            let start = doc.find(from).expect("docs/configuration.md section");
            let end = start
                + doc[start..]
                    .find(to)
                    .expect("docs/configuration.md section end");
            &doc[start..end]
        };
        let source = section("## Source connectors", "### Responses");
        let sink = section("## Sink connectors", "### Delivery");
        let example_keys = source
            .lines()
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.trim().to_owned()))
            .filter(|k| !k.is_empty() && !k.starts_with('#') && !k.starts_with('['));
        let table_keys = sink
            .lines()
            .filter(|l| l.starts_with("| `"))
            .flat_map(|l| {
                l.split('|')
                    .nth(1)
                    .unwrap_or("")
                    .split(',')
                    .map(str::to_owned)
            })
            .map(|k| k.trim().trim_matches('`').to_owned());
        example_keys.chain(table_keys).collect()
    }

    #[test]
    fn kitchen_sink_sets_every_documented_key_and_loads() {
        let text = format!("{KITCHEN_SOURCE}\n{KITCHEN_SINK}");
        let keys = documented_keys();
        assert!(
            keys.len() > 20,
            "docs/configuration.md sections not found: {keys:?}"
        );
        for key in keys {
            let leaf = key.rsplit('.').next().unwrap_or(&key);
            assert!(
                text.contains(&format!("{leaf} = ")),
                "docs/configuration.md documents {key:?}; set it in the kitchen sink"
            );
        }
        let mut out = Connectors::default();
        load_file("in.toml", KITCHEN_SOURCE, &mut out).unwrap();
        load_file("out.toml", KITCHEN_SINK, &mut out).unwrap();
        let source = &out.sources[0];
        assert_eq!(source.key, key::KeyRule::Json("/data/id".into()));
        assert_eq!(source.max_body, 2 << 20);
        assert_eq!(source.forward_headers.len(), 2);
        let routing = source.routing.as_ref().unwrap();
        assert_eq!(
            routing
                .topic(Some(b"refund.issued"))
                .map(|r| r.topic().to_owned()),
            Ok("kitchen.refund.issued".to_owned())
        );
        assert!(routing.topic(Some(b"push")).is_err());
        assert!(routing.topic(Some(b"refund.x/../y")).is_err());
        assert!(source.limiter.is_some());
        assert_eq!(
            source.signed_url.public(),
            Some("https://hooks.example.com/webhooks/kitchen")
        );
        let sink = &out.sinks[0];
        assert_eq!(sink.group_id, "kitchen-group");
        assert_eq!(sink.method, axum::http::Method::PUT);
        assert_eq!((sink.headers.len(), sink.header_templates.len()), (1, 1));
        assert_eq!(sink.url.allowed_hosts().len(), 2);
        assert!(sink.filter.is_some() && sink.transform.is_some());
        assert!(matches!(
            sink.credentials,
            Some(sink::Credentials::OAuth2 { ref scopes, .. }) if scopes.len() == 2
        ));
        assert_eq!(
            sink.forward_headers[1],
            sink::HeaderPattern::Prefix("x-".into())
        );
        assert_eq!(sink.timeout, std::time::Duration::from_secs(5));
        assert_eq!((sink.concurrency, sink.buffer), (32, 500));
        assert_eq!(sink.ordering, sink::Ordering::Partition);
        assert_eq!(sink.tombstones, sink::Tombstones::Skip);
        assert_eq!(sink.retry.max_attempts, 7);
        assert!(!sink.retry.honor_retry_after);
        assert_eq!(sink.dlq_topic.as_deref(), Some("orders.dlq"));
        assert!(sink.signing_key.is_some());
        assert_eq!(sink.breaker.failures, 5);
        let batch = sink.batch.expect("batch");
        assert_eq!((batch.max_records, batch.max_bytes.0), (50, 512 << 10));
        assert_eq!(batch.format, sink::BatchFormat::Ndjson);
        assert_eq!(batch.items, sink::BatchItems::Envelope);
        assert_eq!(
            sink.status.to_string(),
            r#"retry = [404, "5xx"], dead_letter = ["4xx"]"#
        );
    }

    /// Two connectors of one name: the second file is named, with its own key.
    #[test]
    fn a_name_used_twice_is_refused_under_the_section_s_key() {
        let dir = tempfile::tempdir().unwrap();
        let sink = "[sink]\nname = \"orders\"\ntopics = [\"t\"]\nurl = \"http://x/\"\n";
        let source = "[source]\nname = \"orders\"\npath = \"/o\"\ntopic = \"t\"\nverify = { scheme = \"none\" }\n";
        std::fs::write(dir.path().join("a.toml"), source).unwrap();
        std::fs::write(dir.path().join("b.toml"), sink).unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("b.toml") && err.contains("sink.name"), "{err}");
        assert!(err.contains("used by another file"), "{err}");
    }

    /// Hidden files (an editor's lock, macOS's `._` copies) are not connectors; a pipe
    /// named `*.toml` is refused, never read (it would block the load for good).
    #[test]
    fn hidden_files_are_passed_over_and_a_pipe_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sink = "[sink]\nname = \"orders\"\ntopics = [\"t\"]\nurl = \"http://x/\"\n";
        std::fs::write(dir.path().join("orders.toml"), sink).unwrap();
        std::fs::write(dir.path().join("._orders.toml"), [0xff, 0xfe, 0x00]).unwrap();
        std::os::unix::fs::symlink("/nonexistent", dir.path().join(".#orders.toml")).unwrap();
        let loaded = load_dir(dir.path()).expect("the hidden files are not read");
        assert_eq!(loaded.sinks.len(), 1);
        let fifo = dir.path().join("pipe.toml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("pipe.toml") && err.contains("not a regular file"),
            "{err}"
        );
    }

    #[test]
    fn validation_reads_no_environment() {
        // An unset variable fails only when the secrets are resolved.
        let text = "[sink]\nname = \"a\"\ntopics = [\"t\"]\nurl = \"http://x/\"\nheaders = { Authorization = \"${HOOKBRIDGE_TEST_NEVER_SET}\" }\n";
        let raw: ConnectorFile = parse_toml("a.toml", text).unwrap();
        let definition = raw.sink.unwrap().validate("a.toml").unwrap();
        let err = definition.build().unwrap_err();
        assert_eq!(err.key.as_deref(), Some("sink.headers.Authorization"));
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
