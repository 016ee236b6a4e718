//! The `hookbridge` binary: parse the command line, load configuration, run.

use std::process::ExitCode;

use clap::Parser;
use hookbridge::cli::{Cli, Command, DlqCommand, RedriveTo};
use hookbridge::commands::ops::{inspect, redrive, replay, OpsError};
use hookbridge::commands::{check, print_out, run, say, send};
use hookbridge::config::load::{load_settings, Loaded};
use hookbridge::connectors::{self, Connectors};
use hookbridge::{kafka, shutdown, telemetry};
use tokio_util::sync::CancellationToken;

/// mimalloc: records, futures and request parts are allocated and freed at line rate.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code of `dlq show` when there is no such dead letter (2 is a configuration error).
const NOT_FOUND: u8 = 3;
/// Exit code of `dlq redrive` when it ran to its end but dead-lettered records again.
const DEAD_LETTERED_AGAIN: u8 = 4;
/// How long the runtime's leftover work is waited for once `run` has returned.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

fn load(cli: &Cli) -> Result<(Loaded, Connectors), String> {
    let loaded = load_settings(cli.config.as_deref()).map_err(|e| e.to_string())?;
    let connectors = connectors::load_dir(&loaded.connectors_dir()).map_err(|e| e.to_string())?;
    connectors::check_against(&loaded.settings, &connectors).map_err(|e| e.to_string())?;
    kafka::checked_properties(&loaded.settings.kafka, &loaded.file_label())
        .map_err(|e| loaded.blame(e).to_string())?;
    Ok((loaded, connectors))
}

/// Runs an operator command on a small runtime; errors print with their causes.
fn block_on(fut: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(code) => code,
        Err(e) => {
            // Written without a panic when stderr is gone (a redrive stopped by the
            // terminal's hangup ends here).
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            // What the operator gave cannot be used: a usage error, as clap's are.
            match e.downcast_ref::<OpsError>() {
                Some(OpsError::Invalid(_) | OpsError::NoSink(_) | OpsError::NoDlq(_)) => {
                    ExitCode::from(2)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// Turns transparent huge pages off for this process (and the jq workers it starts),
/// first thing in `main`. mimalloc asks for them on its arenas, and a huge page is
/// resident whole: a sink touching a few KiB of a fresh 2 MiB region holds all of it,
/// zeroed first. Without them peak RSS was about a sixth lower in `scripts/bench`
/// (idle 33 → 28 MiB, a stalled destination with 100 000 records waiting 120 → 92–98
/// MiB), throughput within the runs' spread (docs/benchmarks.md). Memory faulted
/// before `main` keeps its pages; a kernel without the option leaves them on.
fn without_huge_pages() {
    let (on, unused): (libc::c_ulong, libc::c_ulong) = (1, 0);
    // SAFETY: PR_SET_THP_DISABLE sets a flag of this process's memory map; it reads and
    // writes no memory of ours. prctl is variadic and the kernel reads each argument as
    // an unsigned long (non-zero unused ones are refused), so they are passed as such.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, on, unused, unused, unused);
    }
}

fn main() -> ExitCode {
    without_huge_pages();
    let cli = Cli::parse();
    // Before any configuration is read: a worker has no environment and no settings.
    if let Some(Command::JqWorker) = cli.command {
        return hookbridge::egress::evaluation::worker::main();
    }
    let (loaded, connectors) = match load(&cli) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let code = command(cli, loaded, connectors);
    match hookbridge::commands::output_lost() {
        // Said on stderr, which may be gone too: then the exit code says it alone. A
        // command that already failed keeps its own code (4: dead-lettered again).
        Some(e) if code == ExitCode::SUCCESS => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "error: the output could not be written whole: {e}"
            );
            ExitCode::FAILURE
        }
        _ => code,
    }
}

fn command(cli: Cli, loaded: Loaded, connectors: Connectors) -> ExitCode {
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => {
            // The listener's certificate and key, as `run` loads them: what it could not
            // serve with is refused here too (other commands never read them).
            if let Err(e) = run::listener_tls(&loaded) {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            print_out(check::summary(&loaded, &connectors));
            say("ok");
            ExitCode::SUCCESS
        }
        Command::Send {
            connector,
            body,
            url,
        } => block_on(async { send::send(&connectors, &connector, body.as_deref(), &url).await }),
        Command::Replay { connector, from } => block_on(async {
            let from = replay::parse_from(&from)?;
            for line in replay::replay(&loaded, &connectors, &connector, from)? {
                say(line);
            }
            say("start the sink to re-deliver");
            Ok(ExitCode::SUCCESS)
        }),
        Command::Dlq {
            command:
                DlqCommand::Redrive {
                    connector,
                    to,
                    limit,
                    dry_run,
                },
        } => block_on(async {
            // Ctrl-C (or SIGTERM, or the terminal's hangup) stops the redrive before its
            // next record (an attempt in progress is cut off and left uncommitted), so it
            // leaves its lock group on the way out; a second Ctrl-C ends the process at once.
            let stop = CancellationToken::new();
            let on_signal = stop.clone();
            tokio::spawn(async move {
                {
                    shutdown::wait_for_signal().await;
                    on_signal.cancel();
                    // After a hangup the terminal is gone: writing to it fails, not panics.
                    use std::io::Write;
                    let _ = writeln!(
                        std::io::stderr(),
                        "stopping: progress so far is committed; Ctrl-C again to end now"
                    );
                    if tokio::signal::ctrl_c().await.is_ok() {
                        std::process::exit(130);
                    }
                }
            });
            let opts = redrive::Redrive {
                connector: &connector,
                to: match to {
                    RedriveTo::Destination => redrive::Target::Destination,
                    RedriveTo::Source => redrive::Target::Source,
                },
                limit,
                dry_run,
                stop,
            };
            let summary =
                redrive::redrive(&loaded, &connectors, opts, &mut |line| say(line)).await?;
            say(&summary);
            Ok(match summary.dead_lettered_again {
                0 => ExitCode::SUCCESS,
                _ => ExitCode::from(DEAD_LETTERED_AGAIN),
            })
        }),
        Command::Dlq {
            command:
                DlqCommand::List {
                    connector,
                    since,
                    reason,
                    status,
                    limit,
                    json,
                },
        } => block_on(async {
            let filter = inspect::Filter {
                since: (since.as_deref())
                    .map(|t| replay::parse_time("--since", t))
                    .transpose()?,
                reason: (reason.as_deref())
                    .map(|r| inspect::parse_reason("--reason", r))
                    .transpose()?,
                status: status.as_deref().map(str::parse).transpose()?,
                last_per_partition: None,
                older_than: None,
            };
            let listing = inspect::list(&loaded, &connectors, &connector, &filter, limit)?;
            if json {
                say(serde_json::to_string_pretty(&listing)?);
            } else {
                print_out(listing.text());
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Dlq {
            command:
                DlqCommand::Show {
                    connector,
                    at,
                    preview,
                    json,
                },
        } => block_on(async {
            let at: inspect::At = at.parse()?;
            let shown = match inspect::show(&loaded, &connectors, &connector, at, preview) {
                Ok(shown) => shown,
                Err(e @ OpsError::NotFound(_)) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(NOT_FOUND));
                }
                Err(e) => return Err(e.into()),
            };
            if json {
                say(serde_json::to_string_pretty(&shown)?);
            } else {
                print_out(shown.text());
            }
            // A record without a readable envelope is shown as it is, for the operator
            // to see what it is, but it is no dead letter of the sink.
            Ok(match shown.summary {
                Some(_) => ExitCode::SUCCESS,
                None => ExitCode::from(NOT_FOUND),
            })
        }),
        // Answered before the configuration is loaded, above.
        Command::JqWorker => ExitCode::FAILURE,
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
            // `run` has waited for everything it must (sinks up to the drain deadline plus
            // their grace). A sink it gave up on may still be blocked in librdkafka (a
            // final commit or group leave to a broker that stopped answering): dropping the
            // runtime would wait for that without limit, so it is left behind.
            runtime.shutdown_timeout(EXIT_GRACE);
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
