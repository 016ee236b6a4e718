//! The process settings in `hookbridge.toml`: Kafka, the webhook listener, the admin
//! listener, logging and shutdown. Connectors live in their own files (`connectors/`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::rate_limit::RateLimitConfig;
use super::units::{ByteSize, HumanDuration};
use super::{ConfigError, SecretRef};

/// Everything in `hookbridge.toml` after layering defaults, file and environment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Directory holding one connector file (`*.toml`) per source or sink. Relative
    /// paths are resolved against the directory of the config file.
    pub connectors_dir: PathBuf,
    pub kafka: KafkaSettings,
    pub http: HttpSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
    pub shutdown: ShutdownSettings,
}

/// How hookbridge reaches the Kafka cluster.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma separated.
    pub brokers: String,
    /// Any librdkafka property (TLS, SASL, …). Values may be `${ENV}` or `file:` references.
    pub properties: BTreeMap<String, SecretRef>,
    /// Ingress: how long a webhook may wait for the broker's acknowledgement before it is
    /// answered 503 (the sender retries; the record is never acknowledged falsely).
    pub produce_timeout: HumanDuration,
    /// Egress: least time between two commits of a sink. A change (a record finished) is
    /// committed as soon as this much has passed since the last commit, so a crash
    /// redelivers what was in flight plus at most about one interval of finished work.
    pub commit_interval: HumanDuration,
    /// Egress: largest finished-offset map stored in each partition's commit metadata
    /// (the broker's `offset.metadata.max.bytes`, 4096 by default, must allow it).
    pub commit_metadata_max_bytes: usize,
    /// Egress: memory for records held by all sinks together (received, not finished).
    /// Past it, a partition that takes another record pauses; paused partitions resume
    /// once half of it is free.
    pub buffer_memory: ByteSize,
}

impl KafkaSettings {
    /// `brokers` as librdkafka is given it: each comma-separated entry trimmed of the
    /// whitespace around it and empty ones left out, so a trailing line break (a value
    /// from a file or a YAML block) is not read as part of a host name. What
    /// `kafka.brokers` is checked as, too.
    pub fn bootstrap_servers(&self) -> String {
        bootstrap_entries(&self.brokers)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Resolves property values. Names only in errors, never the value.
    pub fn resolved_properties(&self, file: &str) -> Result<Vec<(String, String)>, ConfigError> {
        self.properties
            .iter()
            .map(|(k, v)| {
                v.resolve()
                    .map(|s| (k.clone(), s.expose().to_owned()))
                    .map_err(|e| {
                        ConfigError::new(file, format!("kafka.properties.{k}"), e.to_string())
                    })
            })
            .collect()
    }
}

/// The webhook listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Requests handled at once; more get 503 + Retry-After instead of queueing unbounded.
    pub max_in_flight: usize,
    /// Time a client gets to send a request's headers, and the longest an idle
    /// keep-alive connection is kept (slow-loris protection).
    pub header_timeout: HumanDuration,
    /// Largest request header section accepted; larger requests get 431.
    pub max_header_bytes: ByteSize,
    /// Open connections at once; past it, new connections are accepted and closed.
    pub max_connections: usize,
    /// Open connections one client address (IPv6: one /64) may hold. The last eighth of
    /// `max_connections` is kept for addresses that hold little, so a provider's or a
    /// probe's new connection is served while others hold all they may.
    pub max_connections_per_address: usize,
    /// Requests served on one keep-alive connection before it is closed (both listeners).
    pub max_requests_per_connection: usize,
    /// Longest a response write may make no progress before the connection is closed
    /// (a client that pipelines requests and never reads the answers; both listeners).
    pub write_timeout: HumanDuration,
    /// Longest time a request body may take to arrive after its headers; slower
    /// requests get 408 and the connection is closed.
    pub body_timeout: HumanDuration,
    /// Bytes per second a request body must keep up (with one second of credit), so a
    /// stalled sender is cut off long before `body_timeout`.
    pub min_body_rate: ByteSize,
    /// Request body bytes held in memory by all requests together; past it, new
    /// requests get 503 + Retry-After at once. Must be at least every source's max_body.
    pub max_body_bytes_in_flight: ByteSize,
    /// Of those, held by the requests of one client address (IPv6: one /64). Must be at
    /// least every source's max_body.
    pub max_body_bytes_per_address: ByteSize,
    /// Failed signature checks allowed per client address (IPv6: per /64); past it,
    /// that address gets 429 + Retry-After. Verified requests never spend it.
    pub unverified_rate_limit: RateLimitConfig,
    /// Requests from addresses over `unverified_rate_limit` verified at once, all such
    /// addresses together (a slot is taken once the body is in); more get 429.
    pub probation_slots: usize,
    /// Of those, held by one address (IPv6: one /64) at most.
    pub probation_slots_per_address: usize,
    /// Serve HTTPS: `[http.tls] cert = "/etc/tls/chain.pem", key = "/etc/tls/key.pem"`.
    #[serde(default)]
    pub tls: Option<TlsSettings>,
}

/// PEM files for the webhook listener's TLS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key of the leaf certificate.
    pub key: PathBuf,
}

/// The admin listener: `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    /// Open connections at once; the header timeout, write timeout and requests per
    /// connection are the webhook listener's (`http.*`).
    pub max_connections: usize,
    /// Open connections one client address (IPv6: one /64) may hold; the last eighth of
    /// `max_connections` is kept for addresses that hold little (a kubelet's probes).
    pub max_connections_per_address: usize,
    /// The operator console at `/console`.
    pub console: ConsoleSettings,
}

/// The operator console on the admin listener (`/console`). Off unless `token` is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// The login token, as a secret reference (`${ENV}` or `file:/path`); at least 16
    /// characters. Without it the console is off and `/console` answers 404.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// Show everything, change nothing: no redrive or replay buttons, and those actions
    /// are refused with 403.
    pub read_only: bool,
    /// How long a login lasts.
    pub session_ttl: HumanDuration,
}

/// Log output.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `hookbridge=debug,rdkafka=warn`.
    pub level: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Graceful shutdown.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// One deadline for the whole drain on SIGTERM: in-flight webhooks, in-flight
    /// deliveries, the final commit and the producer flush.
    pub drain_timeout: HumanDuration,
}

/// The entries of a bootstrap list: separated by commas, trimmed, empty ones left out.
pub fn bootstrap_entries(brokers: &str) -> impl Iterator<Item = &str> {
    brokers.split(',').map(str::trim).filter(|e| !e.is_empty())
}
