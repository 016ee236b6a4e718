//! Command line: `hookbridge [run|check|send|…]`; every flag also reads an env var.

use std::path::PathBuf;

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
        #[arg(long)]
        body: Option<PathBuf>,
        /// Base URL of the hookbridge webhook listener.
        #[arg(long, env = "HOOKBRIDGE_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
    },
}
