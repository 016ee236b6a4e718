//! The delivery policy of one record, as a pure function: after each attempt, what comes
//! next (finished, try again at once with a fresh OAuth2 token, retry after a backoff,
//! dead-letter with a reason, or hold at the slowest pace when there is no DLQ) and what
//! the attempt tells the sink's circuit breaker. It owns the rules of attempt counting:
//!
//! * a 2xx finishes the record; any answer (even a refusal) means the destination is
//!   reachable;
//! * the first 401 to an OAuth2 token is answered with one fresh token and an immediate
//!   attempt that does not count; a second 401 follows the status policy;
//! * a probe of an open breaker that could not even connect says nothing about the
//!   record and does not count; of a record's other failed probes in a row only every
//!   [`FREE_PROBES`]th counts, so records taking turns at probing a destination that
//!   refuses them all are still dead-lettered in the end (an outage only slows their
//!   attempts down);
//! * a permanent status, `retry.max_attempts` counted attempts or `retry.max_elapsed` of
//!   attempting and backing off (not of waiting for the breaker, a permit, a token, nor
//!   of a probe that did not count) dead-letters the record; without a DLQ it is held
//!   and attempted again every `retry.max`, never dropped;
//! * a failed dead-letter write is tried again after 0.5 s, doubling up to 30 s.
//!
//! No I/O and no clock of its own: the loop in `delivery` performs the step and passes in
//! what it measured (how long the attempt took, a random roll for the backoff's jitter).

use std::time::{Duration, SystemTime};

use super::outcome::{self, Outcome};
use super::retry;
use crate::connectors::sink::RetryConfig;

/// Failed probes of one record in a row of which only the last counts against its
/// attempts.
pub const FREE_PROBES: u32 = 3;

/// `DeadLetter::reason` when the status policy refuses the record.
pub const PERMANENT: &str = "permanent";
/// `DeadLetter::reason` when the attempts or the time are used up.
pub const EXHAUSTED: &str = "exhausted";

/// The first wait before a failed dead-letter write is tried again (the record stays
/// unfinished meanwhile); it doubles after each failure up to [`DEAD_LETTER_RETRY_MAX`].
pub const DEAD_LETTER_RETRY: Duration = Duration::from_millis(500);
/// The longest wait between two dead-letter writes.
pub const DEAD_LETTER_RETRY_MAX: Duration = Duration::from_secs(30);

/// The wait after a failed dead-letter write that followed a wait of `previous`.
pub fn dead_letter_backoff(previous: Duration) -> Duration {
    previous.saturating_mul(2).min(DEAD_LETTER_RETRY_MAX)
}

/// How the circuit breaker let an attempt go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// The breaker is closed: a normal attempt.
    Attempt,
    /// The attempt probed an open breaker; `counts` when this record also failed the
    /// previous probe and no other record was waiting to probe.
    Probe { counts: bool },
}

/// One attempt as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Attempted<'a> {
    pub outcome: &'a Outcome,
    pub turn: Turn,
    /// How long the request took.
    pub took: Duration,
    /// It carried an OAuth2 access token.
    pub token: bool,
}

/// What an attempt tells the circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The destination answered: it is reachable.
    Reachable,
    /// A retryable failure of a normal attempt.
    Failed,
    /// A retryable failure of a probe: the breaker remembers which record failed it.
    ProbeFailed,
}

/// What the delivery does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The destination has the record.
    Delivered,
    /// Fetch a fresh token and attempt again at once.
    RefreshToken,
    /// Attempt again after `wait`.
    Retry { error: &'static str, wait: Duration },
    /// Out of attempts without a DLQ: never dropped, attempted again after `wait`
    /// (`retry.max`); only its lane waits.
    Hold { error: &'static str, wait: Duration },
    /// Write the record to the DLQ with `reason`; `error` is the last failure class.
    DeadLetter {
        reason: &'static str,
        error: &'static str,
    },
}

/// What follows a record that cannot be shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    DeadLetter,
    /// Never dropped: it holds its lane, checked again every `wait` (`retry.max`).
    Hold {
        wait: Duration,
    },
}

/// The policy's answer to one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub breaker: Health,
    pub next: Next,
}

/// One record's progress through its attempts.
#[derive(Debug, Clone, Default)]
pub struct Attempts {
    /// Attempts that count against `retry.max_attempts`.
    counted: u32,
    /// Failed probes in a row that did not count.
    free_probes: u32,
    /// The one token refresh was used.
    refreshed: bool,
    /// Time spent attempting and backing off, against `retry.max_elapsed`.
    spent: Duration,
    first: Option<SystemTime>,
}

impl Attempts {
    /// An attempt starts at `now`.
    pub fn start(&mut self, now: SystemTime) {
        self.counted += 1;
        self.first.get_or_insert(now);
    }

    /// Attempts that counted so far (the dead letter's `attempts`).
    pub fn counted(&self) -> u32 {
        self.counted
    }

    /// When the first attempt started.
    pub fn first(&self) -> Option<SystemTime> {
        self.first
    }

    /// The attempt just made does not count.
    fn uncount(&mut self) {
        self.counted = self.counted.saturating_sub(1);
    }
}

/// One sink's delivery policy.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub retry: &'a RetryConfig,
    /// The sink has a DLQ.
    pub dead_letters: bool,
}

impl Policy<'_> {
    /// What follows `attempt`; `state` is updated (attempts counted, time spent). `roll`
    /// is a uniformly random number for the backoff's jitter.
    pub fn after(&self, state: &mut Attempts, attempt: Attempted<'_>, roll: u64) -> Decision {
        let decide = |breaker, next| Decision { breaker, next };
        if attempt.token && attempt.outcome.status() == Some(401) && !state.refreshed {
            state.refreshed = true;
            state.uncount();
            return decide(Health::Reachable, Next::RefreshToken);
        }
        // A probe that failed without counting: neither its attempt nor its time nor
        // its backoff is the record's.
        let mut free = false;
        let (breaker, error, retry_after, permanent) = match attempt.outcome {
            Outcome::Delivered => return decide(Health::Reachable, Next::Delivered),
            Outcome::Retryable {
                reason,
                retry_after,
                ..
            } => {
                let breaker = match attempt.turn {
                    // The destination answered 2xx, in a shape this sink cannot read
                    // per item or cut short: it is up, and its answers must not stall
                    // the sink.
                    _ if attempt.outcome.is_unread_2xx() => Health::Reachable,
                    // Hosts never come from a record: a probe that could not connect
                    // means the destination is down, and a record waiting alone
                    // through an outage must not be dead-lettered for it.
                    Turn::Probe { .. } if *reason == outcome::CONNECT => {
                        free = true;
                        Health::ProbeFailed
                    }
                    Turn::Probe { counts: false } if state.free_probes + 1 < FREE_PROBES => {
                        state.free_probes += 1;
                        free = true;
                        Health::ProbeFailed
                    }
                    Turn::Probe { counts: false } => {
                        state.free_probes = 0;
                        Health::ProbeFailed
                    }
                    Turn::Probe { counts: true } => Health::ProbeFailed,
                    Turn::Attempt => Health::Failed,
                };
                (breaker, *reason, *retry_after, false)
            }
            Outcome::Permanent { reason, .. } => (Health::Reachable, *reason, None, true),
        };
        if free {
            state.uncount();
        } else {
            state.spent = state.spent.saturating_add(attempt.took);
        }
        let exhausted = permanent || self.exhausted(state);
        let next = if exhausted && self.dead_letters {
            Next::DeadLetter {
                reason: if permanent { PERMANENT } else { EXHAUSTED },
                error,
            }
        } else if exhausted {
            Next::Hold {
                error,
                wait: self.retry.max.0,
            }
        } else {
            Next::Retry {
                error,
                wait: retry::backoff(self.retry, state.counted, retry_after, roll),
            }
        };
        if let (false, Next::Retry { wait, .. } | Next::Hold { wait, .. }) = (free, next) {
            state.spent = state.spent.saturating_add(wait);
        }
        decide(breaker, next)
    }

    /// What follows a record that cannot be shaped: no attempt could fix it, so it is
    /// dead-lettered at once (with the shaper's reason), or held without a DLQ.
    pub fn refused(&self) -> Refusal {
        if self.dead_letters {
            Refusal::DeadLetter
        } else {
            Refusal::Hold {
                wait: self.retry.max.0,
            }
        }
    }

    fn exhausted(&self, state: &Attempts) -> bool {
        let retry = self.retry;
        (retry.max_attempts > 0 && state.counted >= retry.max_attempts)
            || retry.max_elapsed.is_some_and(|m| state.spent >= m.0)
    }
}

#[cfg(test)]
mod tests;
