//! The `hookbridge` binary: parse the command line, load configuration, run.

use std::process::ExitCode;

use clap::Parser;
use hookbridge::cli::{Cli, Command};
use hookbridge::config::load::{load_settings, Loaded};
use hookbridge::connectors::{self, Connectors};
use hookbridge::{check, run, send, shutdown, telemetry};
use tokio_util::sync::CancellationToken;

fn load(cli: &Cli) -> Result<(Loaded, Connectors), String> {
    let loaded = load_settings(cli.config.as_deref()).map_err(|e| e.to_string())?;
    let connectors = connectors::load_dir(&loaded.connectors_dir()).map_err(|e| e.to_string())?;
    Ok((loaded, connectors))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (loaded, connectors) = match load(&cli) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => {
            print!("{}", check::summary(&loaded, &connectors));
            println!("ok");
            ExitCode::SUCCESS
        }
        Command::Send {
            connector,
            body,
            url,
        } => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(send::send(&connectors, &connector, body.as_deref(), &url)) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run => {
            telemetry::logging::init(&loaded.settings.log);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let result = runtime.block_on(async {
                let stop = CancellationToken::new();
                shutdown::on_signal(stop.clone());
                run::run(loaded, connectors, stop).await
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
