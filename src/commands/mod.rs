//! What `main` dispatches: each command assembles the layers below for one job, and
//! nothing below may use a command (`scripts/check-layering` holds each one's
//! allow-list).
//!
//! The console lives here too, although no command line names it: it is pages over the
//! operator commands (it calls [`ops`] for `dlq show`, redrive and replay) served by
//! `admin`, so it depends on one command and is used by another; as a lower layer it
//! would reach up into `ops`.

pub(crate) mod admin;
pub mod check;
pub(crate) mod console;
pub mod ops;
pub mod run;
pub mod send;

/// Writes `text` to standard output. A reader that went away (`… | head -1`) or a full
/// disk ends the output, not the command: `print!` would panic, and a redrive would stop
/// between a delivery and its commit because its report could not be read. The command
/// runs to its end and then exits 1 ([`output_lost`]): a script must not take a cut
/// `--json` or a report missing its passed-over lines for the whole.
pub fn print_out(text: impl std::fmt::Display) {
    use std::io::Write;
    if let Err(e) = write!(std::io::stdout().lock(), "{text}") {
        let mut lost = OUTPUT_LOST.lock().unwrap_or_else(|p| p.into_inner());
        lost.get_or_insert_with(|| e.to_string());
    }
}

/// The first error writing standard output, when one was lost.
static OUTPUT_LOST: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Why some of the command's output could not be written, if it could not.
pub fn output_lost() -> Option<String> {
    OUTPUT_LOST
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// [`print_out`] of one line.
pub fn say(line: impl std::fmt::Display) {
    print_out(format_args!("{line}\n"));
}
