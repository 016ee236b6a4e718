//! Every branch of the delivery policy, and its properties over any run of attempts.

use proptest::prelude::*;

use super::*;
use crate::config::units::HumanDuration;

const MS: Duration = Duration::from_millis(1);

fn retry(max_attempts: u32) -> RetryConfig {
    RetryConfig {
        max_attempts,
        max_elapsed: None,
        initial: HumanDuration(100 * MS),
        max: HumanDuration(2000 * MS),
        honor_retry_after: true,
    }
}

fn failed(reason: &'static str) -> Outcome {
    Outcome::Retryable {
        reason,
        status: None,
        retry_after: None,
    }
}

fn status(code: u16) -> Outcome {
    Outcome::Retryable {
        reason: "5xx",
        status: Some(code),
        retry_after: None,
    }
}

fn refused(code: u16) -> Outcome {
    Outcome::Permanent {
        reason: "4xx",
        status: code,
    }
}

/// Starts an attempt, then asks the policy about its outcome (took 10 ms, no token,
/// the jitter at the top of its window).
fn attempt(policy: &Policy<'_>, state: &mut Attempts, outcome: &Outcome, turn: Turn) -> Decision {
    attempt_with(policy, state, outcome, turn, false)
}

fn attempt_with(
    policy: &Policy<'_>,
    state: &mut Attempts,
    outcome: &Outcome,
    turn: Turn,
    token: bool,
) -> Decision {
    state.start(SystemTime::UNIX_EPOCH);
    let attempted = Attempted {
        outcome,
        turn,
        took: 10 * MS,
        token,
    };
    policy.after(state, attempted, u64::MAX)
}

fn with_dlq(retry: &RetryConfig) -> Policy<'_> {
    Policy {
        retry,
        dead_letters: true,
    }
}

/// The policy is decided without I/O: its module names no runtime, client or metric.
#[test]
fn the_policy_is_pure() {
    let source = include_str!("../policy.rs");
    for io in [
        "tokio",
        "rdkafka",
        "reqwest",
        "prometheus",
        "SystemTime::now",
        "Instant",
    ] {
        assert!(!source.contains(io), "policy.rs uses {io}");
    }
}

#[test]
fn a_2xx_finishes_and_the_destination_is_reachable() {
    let r = retry(3);
    let mut s = Attempts::default();
    let d = attempt(&with_dlq(&r), &mut s, &Outcome::Delivered, Turn::Attempt);
    assert_eq!(d.next, Next::Delivered);
    assert_eq!(d.breaker, Health::Reachable);
    assert_eq!(s.counted(), 1);
    assert_eq!(s.first(), Some(SystemTime::UNIX_EPOCH));
}

#[test]
fn a_retryable_failure_backs_off_within_the_exponential_window() {
    let r = retry(0);
    let p = with_dlq(&r);
    let mut s = Attempts::default();
    for (n, ceiling) in [100, 200, 400, 800, 1600, 2000, 2000]
        .into_iter()
        .enumerate()
    {
        let d = attempt(&p, &mut s, &failed("timeout"), Turn::Attempt);
        assert_eq!(d.breaker, Health::Failed);
        let Next::Retry { error, wait } = d.next else {
            panic!("attempt {}: {:?}", n + 1, d.next)
        };
        assert_eq!(error, "timeout");
        assert!(wait <= ceiling * MS, "attempt {}: {wait:?}", n + 1);
    }
    assert_eq!(s.counted(), 7, "max_attempts = 0 never runs out");
}

#[test]
fn retry_after_is_honoured_capped_or_ignored_as_configured() {
    let mut r = retry(0);
    let asked = |secs| Outcome::Retryable {
        reason: "429",
        status: Some(429),
        retry_after: Some(Duration::from_secs(secs)),
    };
    let wait = |r: &RetryConfig, o: &Outcome| match attempt(
        &with_dlq(r),
        &mut Attempts::default(),
        o,
        Turn::Attempt,
    )
    .next
    {
        Next::Retry { wait, .. } => wait,
        other => panic!("{other:?}"),
    };
    assert_eq!(wait(&r, &asked(1)), Duration::from_secs(1));
    assert_eq!(
        wait(&r, &asked(60)),
        Duration::from_secs(2),
        "capped by max"
    );
    r.honor_retry_after = false;
    assert!(
        wait(&r, &asked(1)) <= 100 * MS,
        "the first backoff's window"
    );
}

#[test]
fn the_last_counted_attempt_dead_letters_as_exhausted_with_the_last_error() {
    let r = retry(3);
    let p = with_dlq(&r);
    let mut s = Attempts::default();
    for _ in 0..2 {
        let d = attempt(&p, &mut s, &status(503), Turn::Attempt);
        assert!(matches!(d.next, Next::Retry { .. }), "{d:?}");
    }
    let d = attempt(&p, &mut s, &failed("transport"), Turn::Attempt);
    assert_eq!(
        d.next,
        Next::DeadLetter {
            reason: EXHAUSTED,
            error: "transport"
        }
    );
    assert_eq!(d.breaker, Health::Failed);
    assert_eq!(s.counted(), 3);
}

#[test]
fn a_permanent_status_dead_letters_at_once_and_the_destination_is_reachable() {
    let r = retry(12);
    let mut s = Attempts::default();
    let d = attempt(&with_dlq(&r), &mut s, &refused(422), Turn::Attempt);
    assert_eq!(
        d,
        Decision {
            breaker: Health::Reachable,
            next: Next::DeadLetter {
                reason: PERMANENT,
                error: "4xx"
            }
        }
    );
    assert_eq!(s.counted(), 1);
}

#[test]
fn without_a_dlq_a_record_out_of_attempts_is_held_at_the_maximum_backoff() {
    let r = retry(2);
    let p = Policy {
        retry: &r,
        dead_letters: false,
    };
    let mut s = Attempts::default();
    assert!(matches!(
        attempt(&p, &mut s, &status(500), Turn::Attempt).next,
        Next::Retry { .. }
    ));
    for _ in 0..3 {
        let d = attempt(&p, &mut s, &status(500), Turn::Attempt);
        assert_eq!(
            d.next,
            Next::Hold {
                error: "5xx",
                wait: 2000 * MS
            }
        );
    }
    let d = attempt(&p, &mut s, &refused(400), Turn::Attempt);
    assert_eq!(
        d.next,
        Next::Hold {
            error: "4xx",
            wait: 2000 * MS
        },
        "a permanent status too"
    );
}

#[test]
fn max_elapsed_counts_attempts_and_backoffs_only() {
    let mut r = retry(0);
    r.max_elapsed = Some(HumanDuration(225 * MS));
    r.honor_retry_after = true;
    let p = with_dlq(&r);
    let asked = Outcome::Retryable {
        reason: "503",
        status: Some(503),
        retry_after: Some(100 * MS),
    };
    let mut s = Attempts::default();
    // 10 ms of attempt and 100 ms of backoff each: 110, 220, and the third attempt
    // reaches 230 ≥ 225.
    assert!(matches!(
        attempt(&p, &mut s, &asked, Turn::Attempt).next,
        Next::Retry { .. }
    ));
    assert!(matches!(
        attempt(&p, &mut s, &asked, Turn::Attempt).next,
        Next::Retry { .. }
    ));
    // Free probes spend nothing.
    for _ in 0..5 {
        let d = attempt(
            &p,
            &mut s,
            &failed(outcome::CONNECT),
            Turn::Probe { counts: false },
        );
        assert!(matches!(d.next, Next::Retry { .. }), "{d:?}");
    }
    let d = attempt(&p, &mut s, &asked, Turn::Attempt);
    assert_eq!(
        d.next,
        Next::DeadLetter {
            reason: EXHAUSTED,
            error: "503"
        }
    );
    assert_eq!(s.counted(), 3);
}

#[test]
fn a_probe_that_cannot_connect_never_counts() {
    let r = retry(1);
    let p = with_dlq(&r);
    let mut s = Attempts::default();
    for counts in [false, true, false, true, false] {
        let d = attempt(
            &p,
            &mut s,
            &failed(outcome::CONNECT),
            Turn::Probe { counts },
        );
        assert_eq!(d.breaker, Health::ProbeFailed);
        assert!(matches!(d.next, Next::Retry { .. }), "{d:?}");
        assert_eq!(s.counted(), 0);
    }
    let d = attempt(&p, &mut s, &failed(outcome::CONNECT), Turn::Attempt);
    assert_eq!(d.breaker, Health::Failed);
    assert!(
        matches!(d.next, Next::DeadLetter { .. }),
        "a normal attempt counts"
    );
}

#[test]
fn every_third_failed_probe_of_a_record_counts() {
    let r = retry(2);
    let p = with_dlq(&r);
    let mut s = Attempts::default();
    let probe = Turn::Probe { counts: false };
    let mut counted = Vec::new();
    for _ in 0..5 {
        let d = attempt(&p, &mut s, &status(502), probe);
        assert_eq!(d.breaker, Health::ProbeFailed);
        counted.push(s.counted());
    }
    assert_eq!(counted, [0, 0, 1, 1, 1]);
    let d = attempt(&p, &mut s, &status(502), probe);
    assert_eq!(s.counted(), 2, "the sixth probe counts");
    assert!(matches!(d.next, Next::DeadLetter { .. }), "{d:?}");
}

#[test]
fn a_counting_probe_counts_at_once() {
    let r = retry(1);
    let mut s = Attempts::default();
    let d = attempt(
        &with_dlq(&r),
        &mut s,
        &status(500),
        Turn::Probe { counts: true },
    );
    assert_eq!(d.breaker, Health::ProbeFailed);
    assert_eq!(
        d.next,
        Next::DeadLetter {
            reason: EXHAUSTED,
            error: "5xx"
        }
    );
}

#[test]
fn a_refused_probe_is_an_answer() {
    let r = retry(5);
    let mut s = Attempts::default();
    let d = attempt(
        &with_dlq(&r),
        &mut s,
        &refused(410),
        Turn::Probe { counts: false },
    );
    assert_eq!(d.breaker, Health::Reachable);
    assert_eq!(s.counted(), 1);
}

#[test]
fn the_first_401_to_a_token_refreshes_it_without_counting_and_the_second_follows_the_status_policy()
{
    let r = retry(1);
    let p = with_dlq(&r);
    let unauthorized = Outcome::Retryable {
        reason: "4xx",
        status: Some(401),
        retry_after: None,
    };
    let mut s = Attempts::default();
    let d = attempt_with(&p, &mut s, &unauthorized, Turn::Attempt, true);
    assert_eq!(
        d,
        Decision {
            breaker: Health::Reachable,
            next: Next::RefreshToken
        }
    );
    assert_eq!(s.counted(), 0);
    let d = attempt_with(&p, &mut s, &unauthorized, Turn::Attempt, true);
    assert_eq!(d.breaker, Health::Failed);
    assert!(matches!(d.next, Next::DeadLetter { .. }), "{d:?}");

    // Without a token a 401 is just a status.
    let mut s = Attempts::default();
    let d = attempt_with(&p, &mut s, &unauthorized, Turn::Attempt, false);
    assert!(matches!(d.next, Next::DeadLetter { .. }), "{d:?}");
    // A 401 the status policy dead-letters still gets its fresh token first.
    let mut s = Attempts::default();
    let permanent = Outcome::Permanent {
        reason: "4xx",
        status: 401,
    };
    let d = attempt_with(&p, &mut s, &permanent, Turn::Attempt, true);
    assert_eq!(d.next, Next::RefreshToken);
}

#[test]
fn a_record_that_cannot_be_shaped_is_dead_lettered_or_held() {
    let r = retry(3);
    assert_eq!(with_dlq(&r).refused(), Refusal::DeadLetter);
    let p = Policy {
        retry: &r,
        dead_letters: false,
    };
    assert_eq!(p.refused(), Refusal::Hold { wait: 2000 * MS });
}

#[test]
fn a_failed_dead_letter_write_waits_twice_as_long_up_to_half_a_minute() {
    let mut waits = vec![DEAD_LETTER_RETRY];
    for _ in 0..8 {
        waits.push(dead_letter_backoff(*waits.last().unwrap()));
    }
    let secs: Vec<f64> = waits.iter().map(Duration::as_secs_f64).collect();
    assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
}

/// An outcome of any class, reason, status and `Retry-After`.
fn any_outcome() -> impl Strategy<Value = Outcome> {
    let reason = prop::sample::select(vec![
        "5xx",
        "4xx",
        "429",
        "timeout",
        outcome::CONNECT,
        "transport",
    ]);
    prop_oneof![
        Just(Outcome::Delivered),
        (
            reason,
            prop::option::of(300u16..600),
            prop::option::of(0u64..10_000)
        )
            .prop_map(|(reason, status, after)| Outcome::Retryable {
                reason,
                status,
                retry_after: after.map(Duration::from_millis),
            }),
        (300u16..600).prop_map(|status| Outcome::Permanent {
            reason: "4xx",
            status
        }),
    ]
}

fn any_turn() -> impl Strategy<Value = Turn> {
    prop_oneof![
        Just(Turn::Attempt),
        any::<bool>().prop_map(|counts| Turn::Probe { counts }),
    ]
}

fn any_retry() -> impl Strategy<Value = RetryConfig> {
    (
        0u32..6,
        prop::option::of(1u64..5_000),
        1u64..1_000,
        1u64..10_000,
        any::<bool>(),
    )
        .prop_map(|(max_attempts, elapsed, initial, max, honor)| RetryConfig {
            max_attempts,
            max_elapsed: elapsed.map(|ms| HumanDuration(Duration::from_millis(ms))),
            initial: HumanDuration(Duration::from_millis(initial)),
            max: HumanDuration(Duration::from_millis(initial.max(max))),
            honor_retry_after: honor,
        })
}

proptest! {
    /// Over any run of attempts: a 2xx always finishes; a record is dead-lettered after
    /// at most `max_attempts` counted attempts; every wait is within the configured
    /// bounds; a permanent status is never retried; without a DLQ nothing is ever
    /// dead-lettered.
    #[test]
    fn any_run_of_attempts_keeps_the_policy(
        retry in any_retry(),
        dead_letters in any::<bool>(),
        run in prop::collection::vec((any_outcome(), any_turn(), 0u64..2_000, any::<bool>(), any::<u64>()), 1..40),
    ) {
        let policy = Policy { retry: &retry, dead_letters };
        let mut state = Attempts::default();
        for (outcome, turn, took, token, roll) in run {
            state.start(SystemTime::UNIX_EPOCH);
            let before = state.clone();
            let attempted = Attempted { outcome: &outcome, turn, took: Duration::from_millis(took), token };
            let d = policy.after(&mut state, attempted, roll);
            if d.next == Next::RefreshToken {
                prop_assert!(token && outcome.status() == Some(401) && !before.refreshed);
                prop_assert_eq!(state.counted(), before.counted() - 1);
                continue;
            }
            prop_assert!(state.counted() <= before.counted());
            match d.next {
                Next::Delivered => {
                    prop_assert_eq!(&outcome, &Outcome::Delivered);
                    break;
                }
                Next::DeadLetter { reason, .. } => {
                    prop_assert!(dead_letters);
                    prop_assert!(outcome != Outcome::Delivered);
                    if retry.max_attempts > 0 && retry.max_elapsed.is_none() {
                        prop_assert!(state.counted() <= retry.max_attempts);
                    }
                    let permanent = matches!(outcome, Outcome::Permanent { .. });
                    prop_assert_eq!(reason, if permanent { PERMANENT } else { EXHAUSTED });
                    break;
                }
                Next::Retry { wait, .. } => {
                    prop_assert!(matches!(outcome, Outcome::Retryable { .. }), "a permanent status retried");
                    prop_assert!(wait <= retry.max.0);
                    if let Outcome::Retryable { retry_after: Some(after), .. } = outcome {
                        if retry.honor_retry_after {
                            prop_assert_eq!(wait, after.min(retry.max.0));
                        }
                    }
                    if retry.max_attempts > 0 {
                        prop_assert!(state.counted() < retry.max_attempts);
                    }
                }
                Next::Hold { wait, .. } => {
                    prop_assert!(!dead_letters);
                    prop_assert!(outcome != Outcome::Delivered);
                    prop_assert_eq!(wait, retry.max.0);
                }
                Next::RefreshToken => unreachable!(),
            }
            // The breaker hears of every answer, and of every failure with its kind.
            let expected = match (&outcome, turn) {
                (Outcome::Retryable { .. }, Turn::Attempt) => Health::Failed,
                (Outcome::Retryable { .. }, Turn::Probe { .. }) => Health::ProbeFailed,
                _ => Health::Reachable,
            };
            prop_assert_eq!(d.breaker, expected);
        }
    }

    /// A record refused by every probe it makes alone is still dead-lettered: after at
    /// most `FREE_PROBES` probes per counted attempt.
    #[test]
    fn probes_alone_reach_the_dead_letter(max_attempts in 1u32..8, reason in prop::sample::select(vec!["5xx", "timeout", "429"])) {
        let retry = retry(max_attempts);
        let policy = with_dlq(&retry);
        let mut state = Attempts::default();
        let mut probes = 0;
        loop {
            probes += 1;
            let d = attempt(&policy, &mut state, &failed(reason), Turn::Probe { counts: false });
            if matches!(d.next, Next::DeadLetter { .. }) {
                break;
            }
            prop_assert!(probes < FREE_PROBES * max_attempts, "{} probes and still retrying", probes);
        }
        prop_assert_eq!(probes, FREE_PROBES * max_attempts);
    }
}

/// A batch answered 2xx whose per-item results cannot be read is tried again, but the
/// destination answered: its answers neither open the breaker nor keep it open, so they
/// cannot stall the sink; the record's attempts count, and it is dead-lettered in the end.
#[test]
fn a_2xx_answer_that_cannot_be_read_is_retried_with_the_destination_reachable() {
    let r = retry(2);
    let mut s = Attempts::default();
    let bad = failed(outcome::BAD_ANSWER);
    let d = attempt(&with_dlq(&r), &mut s, &bad, Turn::Attempt);
    assert_eq!(d.breaker, Health::Reachable);
    assert!(
        matches!(
            d.next,
            Next::Retry {
                error: "bad-answer",
                ..
            }
        ),
        "{d:?}"
    );
    let d = attempt(&with_dlq(&r), &mut s, &bad, Turn::Probe { counts: false });
    assert_eq!(d.breaker, Health::Reachable, "a probe that got an answer");
    assert_eq!(
        d.next,
        Next::DeadLetter {
            reason: EXHAUSTED,
            error: "bad-answer"
        }
    );
    // An answer per item too long to read whole, or cut short, came with a 2xx too.
    let cut = Outcome::Retryable {
        reason: "cut-answer",
        status: Some(207),
        retry_after: None,
    };
    let d = attempt(&with_dlq(&r), &mut Attempts::default(), &cut, Turn::Attempt);
    assert_eq!(d.breaker, Health::Reachable);
    // Cut off by a broken connection, it carries no status: a failure like any other.
    let broken = failed("cut-answer");
    let d = attempt(
        &with_dlq(&r),
        &mut Attempts::default(),
        &broken,
        Turn::Attempt,
    );
    assert_eq!(d.breaker, Health::Failed);
    let d = attempt(
        &with_dlq(&r),
        &mut Attempts::default(),
        &status(503),
        Turn::Attempt,
    );
    assert_eq!(d.breaker, Health::Failed, "a 5xx is no answer to read");
}
