//! Pure validation of the process settings as a whole: every duration, size and count in
//! range, settings that must agree with each other, and no `kafka.properties` entry that
//! would weaken the commit promise. No environment, files or clients are touched — only
//! the values — so it runs first, for every command, and building (resolving secrets,
//! creating Kafka clients) happens after it.

use std::time::Duration;

use super::settings::{KafkaSettings, Settings};
use super::units::format_size;
use super::{ConfigError, SecretRef};

/// Checks `settings` read from `file`; the first problem is named with its key.
pub fn validate(settings: &Settings, file: &str) -> Result<(), ConfigError> {
    let err = |key: &str, reason: String| ConfigError::new(file, key, reason);
    let s = settings;
    if s.connectors_dir.as_os_str().is_empty() {
        return Err(err("connectors_dir", "must not be empty".into()));
    }
    if s.kafka.brokers.trim().is_empty() {
        return Err(err("kafka.brokers", "must not be empty".into()));
    }
    // The client's protocol when it is known here: unset is plaintext; a `${VAR}` or
    // `file:` is not known; a value that is no protocol is refused by key with the other
    // properties, never printed.
    let security_protocol =
        (s.kafka.properties.iter()).find(|(k, _)| k.eq_ignore_ascii_case("security.protocol"));
    let protocol = match security_protocol {
        None => Some("plaintext".to_owned()),
        Some((_, SecretRef::Literal(p))) => {
            Some(p.expose().trim().to_ascii_lowercase()).filter(|p| PROTOCOLS.contains(&p.as_str()))
        }
        Some(_) => None,
    };
    if let Some(problem) = broker_list_problem(&s.kafka.brokers, protocol.as_deref()) {
        return Err(err("kafka.brokers", problem));
    }
    if let Some(problem) = level_problem(&s.log.level) {
        return Err(err("log.level", problem));
    }
    let ms = Duration::from_millis;
    let secs = Duration::from_secs;
    let durations = [
        (
            "kafka.produce_timeout",
            s.kafka.produce_timeout.0,
            ms(100),
            secs(300),
        ),
        (
            "kafka.commit_interval",
            s.kafka.commit_interval.0,
            ms(10),
            secs(600),
        ),
        (
            "http.header_timeout",
            s.http.header_timeout.0,
            ms(100),
            secs(300),
        ),
        (
            "http.write_timeout",
            s.http.write_timeout.0,
            ms(100),
            secs(3600),
        ),
        (
            "http.body_timeout",
            s.http.body_timeout.0,
            ms(100),
            secs(3600),
        ),
        (
            "shutdown.drain_timeout",
            s.shutdown.drain_timeout.0,
            secs(1),
            secs(3600),
        ),
    ];
    for (key, value, min, max) in durations {
        in_range_duration(value, min, max).map_err(|r| err(key, r))?;
    }
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    let sizes = [
        // Below a few dozen bytes no map fits: a takeover would redeliver everything
        // finished above the watermark.
        (
            "kafka.commit_metadata_max_bytes",
            s.kafka.commit_metadata_max_bytes as u64,
            64,
            MIB,
        ),
        (
            "kafka.buffer_memory",
            s.kafka.buffer_memory.0,
            MIB,
            64 * GIB,
        ),
        ("http.max_header_bytes", s.http.max_header_bytes.0, KIB, MIB),
        ("http.min_body_rate", s.http.min_body_rate.0, 0, GIB),
        (
            "http.max_body_bytes_in_flight",
            s.http.max_body_bytes_in_flight.0,
            MIB,
            64 * GIB,
        ),
        (
            "http.max_body_bytes_per_address",
            s.http.max_body_bytes_per_address.0,
            KIB,
            64 * GIB,
        ),
    ];
    for (key, value, min, max) in sizes {
        in_range_size(value, min, max).map_err(|r| err(key, r))?;
    }
    let counts = [
        ("http.max_in_flight", s.http.max_in_flight, 1, 1_000_000),
        ("http.max_connections", s.http.max_connections, 1, 1_000_000),
        ("http.probation_slots", s.http.probation_slots, 1, 1_000_000),
        (
            "http.probation_slots_per_address",
            s.http.probation_slots_per_address,
            1,
            1_000_000,
        ),
        (
            "http.max_connections_per_address",
            s.http.max_connections_per_address,
            1,
            1_000_000,
        ),
        (
            "http.max_requests_per_connection",
            s.http.max_requests_per_connection,
            1,
            100_000_000,
        ),
        ("admin.max_connections", s.admin.max_connections, 1, 100_000),
        (
            "admin.max_connections_per_address",
            s.admin.max_connections_per_address,
            1,
            100_000,
        ),
        (
            "http.unverified_rate_limit.per_second",
            s.http.unverified_rate_limit.per_second.get() as usize,
            1,
            1_000_000,
        ),
    ];
    for (key, value, min, max) in counts {
        if !(min..=max).contains(&value) {
            return Err(err(key, format!("{value} is out of range {min}..={max}")));
        }
    }
    if s.kafka.produce_timeout.0 >= s.shutdown.drain_timeout.0 {
        return Err(err(
            "kafka.produce_timeout",
            "must be shorter than shutdown.drain_timeout, so a webhook waiting for its ack is answered within a drain".into(),
        ));
    }
    if same_port_clash(s.http.listen, s.admin.listen) {
        return Err(err(
            "admin.listen",
            format!(
                "{} takes the port of http.listen ({}); use another port",
                s.admin.listen, s.http.listen
            ),
        ));
    }
    check_console(&s.admin.console, file)?;
    check_properties(&s.kafka, file)
}

/// Shortest console token accepted: a short one could be guessed through the login form.
pub const CONSOLE_TOKEN_MIN_CHARS: usize = 16;

fn check_console(c: &super::settings::ConsoleSettings, file: &str) -> Result<(), ConfigError> {
    let key = "admin.console.token";
    if let Some(token) = &c.token {
        let value = token
            .resolve()
            .map_err(|e| ConfigError::new(file, key, e.to_string()))?;
        if value.expose().chars().count() < CONSOLE_TOKEN_MIN_CHARS {
            return Err(ConfigError::new(
                file,
                key,
                format!("the token is shorter than {CONSOLE_TOKEN_MIN_CHARS} characters; use a long random one (openssl rand -hex 24)"),
            ));
        }
    }
    let ttl = c.session_ttl.0;
    in_range_duration(
        ttl,
        Duration::from_secs(60),
        Duration::from_secs(7 * 86_400),
    )
    .map_err(|r| ConfigError::new(file, "admin.console.session_ttl", r))
}

fn in_range_duration(value: Duration, min: Duration, max: Duration) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!(
            "{} is out of range {}..={}",
            humantime::format_duration(value),
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(())
}

fn in_range_size(value: u64, min: u64, max: u64) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!(
            "{} is out of range {}..={}",
            format_size(value),
            format_size(min),
            format_size(max)
        ));
    }
    Ok(())
}

/// A librdkafka property hookbridge sets itself because its promises depend on it.
struct Guarded {
    name: &'static str,
    /// Values that keep the promise (compared case-insensitively); empty = set by
    /// hookbridge only.
    allowed: &'static [&'static str],
    why: &'static str,
}

const AUTO_COMMIT: &str = "hookbridge commits each partition's contiguous watermark of finished records itself; automatic commits would commit records that were never delivered";
const ACKS: &str = "a 2xx promises the record is in every in-sync replica, which needs acks=all";

const GUARDED: &[Guarded] = &[
    Guarded {
        name: "enable.auto.commit",
        allowed: &["false"],
        why: AUTO_COMMIT,
    },
    Guarded {
        name: "auto.commit.enable",
        allowed: &["false"],
        why: AUTO_COMMIT,
    },
    Guarded {
        name: "enable.auto.offset.store",
        allowed: &["false"],
        why: AUTO_COMMIT,
    },
    Guarded {
        name: "auto.offset.reset",
        allowed: &["earliest", "smallest", "beginning"],
        why: "a new consumer group, or an offset that is out of range, must start at the earliest record; any other reset skips records silently",
    },
    Guarded {
        name: "isolation.level",
        allowed: &["read_committed"],
        why: "read_uncommitted delivers records of aborted transactions",
    },
    Guarded {
        name: "offset.store.method",
        allowed: &["broker"],
        why: "committed offsets must live in Kafka, the only state hookbridge has",
    },
    Guarded {
        name: "group.id",
        allowed: &[],
        why: "each sink is its own consumer group (`group_id` in the sink's file, default its name); one group for every sink would mix their offsets",
    },
    Guarded {
        name: "group.instance.id",
        allowed: &[],
        why: "one static member id shared by every sink and replica makes the members fence each other out of their groups",
    },
    Guarded {
        name: "acks",
        allowed: &["all", "-1"],
        why: ACKS,
    },
    Guarded {
        name: "request.required.acks",
        allowed: &["all", "-1"],
        why: ACKS,
    },
    Guarded {
        name: "delivery.report.only.error",
        allowed: &["false"],
        why: "ingress answers 2xx on the broker's acknowledgement; without delivery reports for successes every webhook would be answered 503 and resent forever",
    },
    Guarded {
        name: "transactional.id",
        allowed: &[],
        why: "hookbridge's producer is idempotent, not transactional; a transactional id makes every produce fail",
    },
];

/// The property librdkafka sets for `name`: it strips one `topic.` prefix from a name it
/// does not know globally and sets the rest on the default topic config, so
/// `topic.acks` and `topic.auto.offset.reset` are `acks` and `auto.offset.reset` (and
/// which of the two spellings wins varies), so both are guarded alike.
fn librdkafka_name(name: &str) -> &str {
    const PREFIX: &str = "topic.";
    match name.get(..PREFIX.len()) {
        Some(p) if p.eq_ignore_ascii_case(PREFIX) => &name[PREFIX.len()..],
        _ => name,
    }
}

/// Refuses properties that would weaken the commit promise, and literal values that
/// look like mistyped secret references.
fn check_properties(kafka: &KafkaSettings, file: &str) -> Result<(), ConfigError> {
    for (name, value) in &kafka.properties {
        let key = format!("kafka.properties.{name}");
        value
            .check_form()
            .map_err(|e| ConfigError::new(file, key.as_str(), e.to_string()))?;
        let bare = librdkafka_name(name);
        let Some(guard) = GUARDED.iter().find(|g| g.name.eq_ignore_ascii_case(bare)) else {
            continue;
        };
        let kept = match value {
            SecretRef::Literal(v) => guard
                .allowed
                .iter()
                .any(|a| a.eq_ignore_ascii_case(v.expose().trim())),
            SecretRef::Env(_) | SecretRef::File(_) => false,
        };
        if !kept {
            let reason = if guard.allowed.is_empty() {
                format!(
                    "cannot be set in kafka.properties; hookbridge sets it: {}",
                    guard.why
                )
            } else {
                format!(
                    "may only be {} (hookbridge's own setting): {}",
                    guard.allowed.join(" or "),
                    guard.why
                )
            };
            return Err(ConfigError::new(file, key, reason));
        }
    }
    Ok(())
}

/// Why `level` (`log.level`) is not a filter to log with, for `check` and `run` to
/// refuse the file rather than log something else: a syntax error would fall back to
/// `info`, and a misspelt level (`warning`) is a target's name, which turns every other
/// line off. A bare target (`hookbridge::egress`: all of it) and levels 0 to 5 pass.
pub fn level_problem(level: &str) -> Option<String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    // Other systems' level names, which tracing would read as targets.
    const FOREIGN: [&str; 10] = [
        "warning",
        "err",
        "fatal",
        "critical",
        "crit",
        "information",
        "informational",
        "notice",
        "verbose",
        "all",
    ];
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(level) {
        return Some(format!("{level:?} is not a log filter: {e}"));
    }
    let misspelt = |word: &str| {
        let word = word.to_ascii_lowercase();
        !LEVELS.contains(&word.as_str())
            && (FOREIGN.contains(&word.as_str()) || LEVELS.iter().any(|l| edits(l, &word) <= 2))
    };
    let bare =
        (level.split(',').map(str::trim)).find(|d| !d.contains(['=', '[', ':']) && misspelt(d))?;
    Some(format!(
        "{bare:?} is not a level ({}); a target's level is written target=level",
        LEVELS.join(", ")
    ))
}

/// Levenshtein distance, for telling a misspelt level from a target's name.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Whether two listeners could not both bind: the same address and port, or the same
/// port where one is a wildcard (`0.0.0.0`, `[::]`) of the other's family, or `[::]`,
/// which also takes IPv4 on Linux by default. Port 0 (the kernel picks) never clashes.
fn same_port_clash(a: std::net::SocketAddr, b: std::net::SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    let v6_wildcard = |x: std::net::SocketAddr| x.is_ipv6() && x.ip().is_unspecified();
    a.ip() == b.ip()
        || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified()))
        || v6_wildcard(a)
        || v6_wildcard(b)
}

/// The `security.protocol` values librdkafka knows, as a bootstrap entry's
/// `protocol://` names them (any case).
const PROTOCOLS: [&str; 4] = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];

/// What is wrong with a bootstrap list, as librdkafka reads one: entries separated by
/// commas (empty ones and spaces around them skipped), each `host`, `host:port`,
/// `[ipv6]:port` or a bare IPv6 address, optionally after `protocol://` (which must be
/// the client's `security.protocol` when that is known here, not a `${VAR}`) and then
/// before a `/path` it ignores. A list that is none (`[a:9092 b:9092]`, a YAML list
/// printed whole; `a:99999`; two brokers on one line without a comma) would pass a check
/// and leave every replica unready for good, trying to resolve it.
fn broker_list_problem(list: &str, security_protocol: Option<&str>) -> Option<String> {
    let mut any = false;
    for (i, entry) in super::settings::bootstrap_entries(list).enumerate() {
        any = true;
        let at = || format!("entry {} ({:?})", i + 1, entry);
        if entry.contains(char::is_whitespace) {
            return Some(format!("{}: brokers are separated by commas", at()));
        }
        let address = match entry.split_once("://") {
            Some((protocol, address)) => {
                let protocol = protocol.to_ascii_lowercase();
                if !PROTOCOLS.contains(&protocol.as_str()) {
                    return Some(format!(
                        "{}: the protocol is not one of {}",
                        at(),
                        PROTOCOLS.join(", ")
                    ));
                }
                if security_protocol.is_some_and(|p| p != protocol) {
                    return Some(format!(
                        "{}: its protocol is not kafka.properties' security.protocol ({})",
                        at(),
                        security_protocol.unwrap_or_default()
                    ));
                }
                // After `protocol://` librdkafka ignores a path; without one a `/` is
                // part of the host.
                address.split('/').next().unwrap_or_default()
            }
            None => entry,
        };
        let (host, port) = match address.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((host, "")) => (host, None),
                Some((host, rest)) => match rest.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Some(format!("{} is not [address]:port", at())),
                },
                None => return Some(format!("{} opens a [ it does not close", at())),
            },
            // A bare IPv6 address (a zone after `%`): librdkafka uses the default port.
            None if address.matches(':').count() > 1 => {
                let ip = address.split('%').next().unwrap_or_default();
                if ip.parse::<std::net::Ipv6Addr>().is_err() {
                    return Some(format!("{} is not host:port", at()));
                }
                (address, None)
            }
            None => match address.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (address, None),
            },
        };
        if host.is_empty() || host.contains(['[', ']', '"', '\'', '@', '\\', '/']) {
            return Some(format!("{} is not host:port", at()));
        }
        if let Some(port) = port {
            // Read as a number up to what is not a digit: `9092/` is 9092.
            let port = port.split('/').next().unwrap_or_default();
            // (`+9092` too, as librdkafka's atoi reads it.)
            if !port.parse::<u16>().is_ok_and(|p| p > 0) {
                return Some(format!("{}: the port is not 1 to 65535", at()));
            }
        }
    }
    (!any).then(|| "names no broker".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::parse_settings;

    fn settings(extra: &str) -> Result<(), ConfigError> {
        let s = parse_settings(extra).expect("parses");
        validate(&s, "hookbridge.toml")
    }

    #[test]
    fn defaults_are_valid() {
        settings("").unwrap();
    }

    #[test]
    fn listeners_clash_on_one_port_when_either_takes_every_address() {
        let clash = |a: &str, b: &str| same_port_clash(a.parse().unwrap(), b.parse().unwrap());
        for (a, b) in [
            ("127.0.0.1:80", "127.0.0.1:80"),
            ("127.0.0.1:80", "0.0.0.0:80"),
            ("[::]:80", "127.0.0.1:80"),
            ("[::1]:80", "[::]:80"),
        ] {
            assert!(clash(a, b) && clash(b, a), "{a} {b}");
        }
        for (a, b) in [
            ("127.0.0.1:80", "127.0.0.2:80"),
            ("127.0.0.1:80", "0.0.0.0:81"),
            ("[::1]:80", "127.0.0.1:80"),
            ("0.0.0.0:80", "[::1]:80"),
            ("127.0.0.1:0", "0.0.0.0:0"),
        ] {
            assert!(!clash(a, b) && !clash(b, a), "{a} {b}");
        }
    }

    #[test]
    fn bootstrap_lists_librdkafka_reads_pass() {
        let plain = Some("plaintext");
        for ok in [
            "kafka:9092",
            "kafka",
            "b-1.kafka:9096,b-2.kafka:9096",
            " a:1 , b:2 ",
            "a:9092,b:9092\n",
            "a:9092\r",
            "a:9092,",
            "a:9092,,b:9092",
            "a:9092/",
            "PLAINTEXT://broker.example.com:9093/",
            "[::1]:9092",
            "[fd00::1]",
            "fd00::1",
            "[fe80::1%eth0]:9092",
            "broker_1.internal:9092",
            "127.0.0.1:65535",
            "a:+9092",
        ] {
            assert_eq!(broker_list_problem(ok, plain), None, "{ok}");
        }
        assert_eq!(
            broker_list_problem("SASL_SSL://b:9093", Some("sasl_ssl")),
            None
        );
        assert_eq!(
            broker_list_problem("SSL://b:9093", None),
            None,
            "protocol unknown here"
        );
        for (bad, protocol, says) in [
            (",", plain, "names no broker"),
            ("[a:9092 b:9092]", plain, "separated by commas"),
            ("[::1", plain, "opens a [ it does not close"),
            ("a:65536", plain, "the port is not 1 to 65535"),
            ("a:0", plain, "the port is not 1 to 65535"),
            ("a:90x2", plain, "the port is not 1 to 65535"),
            ("[::1]9092", plain, "not [address]:port"),
            ("a:9092\nb:9092", plain, "separated by commas"),
            ("a:9092 b:9092", plain, "separated by commas"),
            ("a:9092:9093", plain, "not host:port"),
            ("kafka/x:9092", plain, "not host:port"),
            ("SSL://b:9093", plain, "security.protocol (plaintext)"),
            ("foo://b:9093", plain, "the protocol is not one of"),
            ("://b:9093", plain, "the protocol is not one of"),
            ("user@b:9093", plain, "not host:port"),
        ] {
            let problem = broker_list_problem(bad, protocol).unwrap_or_default();
            assert!(problem.contains(says), "{bad:?}: {problem}");
        }
    }

    #[test]
    fn zero_and_absurd_values_name_their_key() {
        let cases = [
            (
                "[kafka]\ncommit_interval = \"0s\"\n",
                "kafka.commit_interval",
            ),
            (
                "[kafka]\nproduce_timeout = \"0s\"\n",
                "kafka.produce_timeout",
            ),
            ("[kafka]\nbrokers = \" \"\n", "kafka.brokers"),
            ("[kafka]\nbrokers = \",\"\n", "kafka.brokers"),
            ("[kafka]\nbrokers = \"[a:9092 b:9092]\"\n", "kafka.brokers"),
            ("[kafka]\nbrokers = \"a:99999\"\n", "kafka.brokers"),
            ("[kafka]\nbrokers = \"a:0\"\n", "kafka.brokers"),
            (
                "[kafka]\nbrokers = \"SASL_SSL://a:9093\"\n",
                "kafka.brokers",
            ),
            (
                "[kafka]\ncommit_metadata_max_bytes = 0\n",
                "kafka.commit_metadata_max_bytes",
            ),
            ("[http]\nmax_in_flight = 0\n", "http.max_in_flight"),
            ("[http]\nmax_connections = 0\n", "http.max_connections"),
            ("[http]\nheader_timeout = \"0s\"\n", "http.header_timeout"),
            ("[http]\nbody_timeout = \"0s\"\n", "http.body_timeout"),
            (
                "[http]\nmax_header_bytes = \"1GiB\"\n",
                "http.max_header_bytes",
            ),
            (
                "[http]\nmax_body_bytes_in_flight = 0\n",
                "http.max_body_bytes_in_flight",
            ),
            ("[admin]\nmax_connections = 0\n", "admin.max_connections"),
            (
                "[http]\nmax_connections_per_address = 0\n",
                "http.max_connections_per_address",
            ),
            (
                "[http]\nmax_requests_per_connection = 0\n",
                "http.max_requests_per_connection",
            ),
            ("[http]\nwrite_timeout = \"0s\"\n", "http.write_timeout"),
            (
                "[admin]\nmax_connections_per_address = 0\n",
                "admin.max_connections_per_address",
            ),
            (
                "[shutdown]\ndrain_timeout = \"0s\"\n",
                "shutdown.drain_timeout",
            ),
            (
                "[kafka]\nproduce_timeout = \"30s\"\n",
                "kafka.produce_timeout",
            ),
            ("[admin]\nlisten = \"0.0.0.0:8080\"\n", "admin.listen"),
            (
                "[http]\nlisten = \"127.0.0.1:38380\"\n[admin]\nlisten = \"0.0.0.0:38380\"\n",
                "admin.listen",
            ),
            (
                "[admin.console]\ntoken = \"short-secret\"\n",
                "admin.console.token",
            ),
            (
                "[admin.console]\ntoken = \"${HOOKBRIDGE_TEST_UNSET_CONSOLE_TOKEN}\"\n",
                "admin.console.token",
            ),
            (
                "[admin.console]\nsession_ttl = \"1s\"\n",
                "admin.console.session_ttl",
            ),
        ];
        for (text, key) in cases {
            let e = settings(text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
            assert_eq!(e.file, "hookbridge.toml");
            assert!(!e.to_string().contains("short-secret"), "{e}");
        }
        assert!(settings("[admin.console]\ntoken = \"a-console-token-long-enough\"\n").is_ok());
    }

    #[test]
    fn ranges_include_both_ends_and_refuse_what_lies_past_either() {
        let at_the_ends = [
            "[kafka]\ncommit_interval = \"10ms\"\n",
            "[kafka]\ncommit_interval = \"10m\"\n",
            "[http]\nmax_header_bytes = \"1KiB\"\n",
            "[http]\nmax_header_bytes = \"1MiB\"\n",
            "[kafka]\nbuffer_memory = \"64GiB\"\n",
            "[http]\nmax_body_bytes_in_flight = \"64GiB\"\n",
            "[http]\nmax_body_bytes_per_address = \"1KiB\"\n",
            "[http]\nmax_body_bytes_per_address = \"64GiB\"\n",
            "[admin.console]\nsession_ttl = \"7days\"\n",
            "[admin.console]\ntoken = \"sixteen-chars-ok\"\n",
        ];
        for text in at_the_ends {
            settings(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
        let past = [
            (
                "[kafka]\ncommit_interval = \"601s\"\n",
                "kafka.commit_interval",
            ),
            ("[http]\nmax_header_bytes = 1023\n", "http.max_header_bytes"),
            (
                "[kafka]\nbuffer_memory = \"65GiB\"\n",
                "kafka.buffer_memory",
            ),
            (
                "[http]\nmax_body_bytes_in_flight = \"65GiB\"\n",
                "http.max_body_bytes_in_flight",
            ),
            (
                "[http]\nmax_body_bytes_per_address = 1023\n",
                "http.max_body_bytes_per_address",
            ),
            (
                "[http]\nmax_body_bytes_per_address = \"65GiB\"\n",
                "http.max_body_bytes_per_address",
            ),
            (
                "[admin.console]\nsession_ttl = \"8days\"\n",
                "admin.console.session_ttl",
            ),
            (
                "[admin.console]\ntoken = \"fifteen-chars-x\"\n",
                "admin.console.token",
            ),
        ];
        for (text, key) in past {
            let e = settings(text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        }
    }

    #[test]
    fn properties_that_weaken_commits_are_refused() {
        let refused = [
            "\"enable.auto.commit\" = \"true\"",
            "\"enable.auto.offset.store\" = \"true\"",
            "\"auto.offset.reset\" = \"latest\"",
            "\"isolation.level\" = \"read_uncommitted\"",
            "\"group.id\" = \"shared\"",
            "\"acks\" = \"1\"",
            "\"request.required.acks\" = \"0\"",
            "\"auto.commit.enable\" = \"true\"",
            "\"transactional.id\" = \"x\"",
            "\"delivery.report.only.error\" = \"true\"",
            "\"ENABLE.AUTO.COMMIT\" = \"true\"",
            "\"enable.auto.commit\" = \"${AUTO}\"",
            "\"topic.auto.offset.reset\" = \"latest\"",
            "\"topic.acks\" = \"1\"",
            "\"topic.request.required.acks\" = \"0\"",
            "\"topic.auto.commit.enable\" = \"true\"",
            "\"topic.offset.store.method\" = \"file\"",
            "\"TOPIC.acks\" = \"1\"",
        ];
        for line in refused {
            let e = settings(&format!("[kafka.properties]\n{line}\n")).unwrap_err();
            assert!(
                e.key
                    .as_deref()
                    .unwrap_or("")
                    .starts_with("kafka.properties."),
                "{line}: {e}"
            );
            assert!(e.reason.contains("hookbridge"), "{line}: {e}");
        }
        let kept = [
            "\"enable.auto.commit\" = \"false\"",
            "\"auto.offset.reset\" = \"earliest\"",
            "\"acks\" = \"all\"",
            "\"topic.acks\" = \"all\"",
            "\"topic.auto.offset.reset\" = \"earliest\"",
            "\"enable.partition.eof\" = \"true\"",
            "\"enable.idempotence\" = \"false\"",
        ];
        for line in kept {
            settings(&format!("[kafka.properties]\n{line}\n")).unwrap();
        }
    }

    #[test]
    fn mistyped_property_reference_is_refused_without_its_value() {
        let e =
            settings("[kafka.properties]\n\"sasl.password\" = \"$KAFKA_PASSWORD\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("kafka.properties.sasl.password"));
        assert!(!e.to_string().contains("KAFKA_PASSWORD"), "{e}");
    }

    #[test]
    fn a_level_is_a_level_or_a_list_of_module_levels() {
        for good in [
            "info",
            "WARN",
            "error",
            "off",
            "warn,hookbridge=debug",
            "rdkafka=warn,info",
            "hookbridge",
            "info,hookbridge::egress",
            "3",
            "[delivery]=debug",
        ] {
            assert_eq!(level_problem(good), None, "{good}");
        }
        for bad in [
            "warning",
            "eror",
            "error,hookbridge=bogus",
            "info,verbose",
            "Fatal",
            "debg",
        ] {
            let problem = level_problem(bad).expect(bad);
            assert!(problem.contains("not a"), "{bad}: {problem}");
        }
    }
}
