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
/// between a delivery and its commit because its report could not be read.
pub fn print_out(text: impl std::fmt::Display) {
    use std::io::Write;
    let _ = write!(std::io::stdout().lock(), "{text}");
}

/// [`print_out`] of one line.
pub fn say(line: impl std::fmt::Display) {
    print_out(format_args!("{line}\n"));
}
