//! Command line: `hookbridge [run|check|send|…]`; every flag also reads an env var.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hookbridge",
    version,
    about = "Kafka ⇄ webhook bridge: verified webhooks into Kafka, Kafka records out to HTTP, nothing lost"
)]
pub struct Cli {
    /// Settings file (TOML or YAML). Default: ./hookbridge.toml when present.
    #[arg(long, short, global = true, env = "HOOKBRIDGE_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every configured connector (the default).
    Run,
    /// Validate settings and connectors; print a summary with secrets redacted.
    Check,
    /// Send a correctly signed test webhook to a source connector.
    Send {
        /// Source connector name.
        #[arg(long, env = "HOOKBRIDGE_CONNECTOR")]
        connector: String,
        /// Body file (default: a sample payload for the provider).
        #[arg(long, env = "HOOKBRIDGE_BODY")]
        body: Option<PathBuf>,
        /// Base URL of the hookbridge webhook listener.
        #[arg(long, env = "HOOKBRIDGE_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// Dead-letter topic operations.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Move a sink's consumer group back in time so records are delivered again.
    Replay {
        /// Sink connector name.
        #[arg(long, env = "HOOKBRIDGE_CONNECTOR")]
        connector: String,
        /// RFC 3339 time (2026-11-22T08:00:00Z) or a duration ago (2h).
        #[arg(long, env = "HOOKBRIDGE_REPLAY_FROM")]
        from: String,
    },
    /// Evaluates a sink's jq programs for the process that started it (frames on stdin
    /// and stdout); not for people, so not in `--help`. The name is the one the sink
    /// starts its workers with (`egress::evaluation::WORKER_COMMAND`).
    #[command(name = "jq-worker", hide = true)]
    JqWorker,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Re-deliver dead-lettered records of a sink.
    Redrive {
        /// Sink connector name.
        #[arg(long, env = "HOOKBRIDGE_CONNECTOR")]
        connector: String,
        /// `destination`: POST now with the sink's policy; `source`: back onto the original topic.
        #[arg(
            long,
            value_enum,
            default_value = "destination",
            env = "HOOKBRIDGE_REDRIVE_TO"
        )]
        to: RedriveTo,
        /// Redrive at most this many records.
        #[arg(long, env = "HOOKBRIDGE_REDRIVE_LIMIT")]
        limit: Option<usize>,
        /// List what would be redriven; change nothing.
        #[arg(long, env = "HOOKBRIDGE_DRY_RUN", value_parser = BoolishValueParser::new())]
        dry_run: bool,
    },
    /// List a sink's dead letters (newest last); reads without a consumer group, commits nothing.
    List {
        /// Sink connector name.
        #[arg(long, env = "HOOKBRIDGE_CONNECTOR")]
        connector: String,
        /// Only records dead-lettered since: RFC 3339 time or a duration ago (2h).
        #[arg(long, env = "HOOKBRIDGE_DLQ_SINCE")]
        since: Option<String>,
        /// Only this reason: `permanent`, `exhausted`, or why a record could not be
        /// shaped: `template`, `filter`, `transform`, `tombstone`, `batch`.
        #[arg(long, env = "HOOKBRIDGE_DLQ_REASON")]
        reason: Option<String>,
        /// Only this last HTTP status: `400`, a class such as `4xx`, or `none`.
        #[arg(long, env = "HOOKBRIDGE_DLQ_STATUS")]
        status: Option<String>,
        /// Show at most this many (the newest).
        #[arg(long, default_value_t = 50, env = "HOOKBRIDGE_DLQ_LIMIT")]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long, env = "HOOKBRIDGE_JSON", value_parser = BoolishValueParser::new())]
        json: bool,
    },
    /// Show one dead letter: every header, the key and the start of the body.
    Show {
        /// Sink connector name.
        #[arg(long, env = "HOOKBRIDGE_CONNECTOR")]
        connector: String,
        /// PARTITION:OFFSET in the dlq topic, as `dlq list` prints it.
        #[arg(long, env = "HOOKBRIDGE_DLQ_AT")]
        at: String,
        /// Bytes of the body shown.
        #[arg(long, default_value_t = 4096, env = "HOOKBRIDGE_DLQ_PREVIEW")]
        preview: usize,
        /// Print JSON instead of text.
        #[arg(long, env = "HOOKBRIDGE_JSON", value_parser = BoolishValueParser::new())]
        json: bool,
    },
}

/// Where `dlq redrive` sends records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RedriveTo {
    /// POST to the sink's destination now.
    Destination,
    /// Produce back onto the original topic; the running sink delivers it.
    Source,
}
