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
