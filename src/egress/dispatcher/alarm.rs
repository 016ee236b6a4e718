//! A timer the dispatcher keeps across its turns. The dispatcher's loop turns once per
//! finished delivery; a fresh `sleep_until` on every turn registered and removed a timer
//! entry each time (about 1% of a busy sink's CPU), and a `None` deadline still read the
//! clock to build a sleep that was never polled. An alarm is re-armed only when its
//! deadline moves.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::time::Sleep;

/// Far enough that an unarmed alarm never rings, near enough not to overflow `Instant`.
const NEVER: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

pub(super) struct Alarm {
    sleep: Pin<Box<Sleep>>,
}

impl Alarm {
    pub(super) fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep(NEVER)),
        }
    }

    /// Rings at `at` (at once if `at` has passed). With `None` it is left as it is: the
    /// caller's branch is disabled then and does not poll it. True when armed.
    pub(super) fn set(&mut self, at: Option<Instant>) -> bool {
        let Some(at) = at else { return false };
        let at = tokio::time::Instant::from_std(at);
        if self.sleep.deadline() != at {
            self.sleep.as_mut().reset(at);
        }
        true
    }
}

impl Future for Alarm {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.sleep.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paused test clock: tokio's, which a paused runtime advances.
    fn now() -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    #[tokio::test(start_paused = true)]
    async fn rings_at_its_deadline_and_again_after_a_move() {
        let mut alarm = Alarm::new();
        let start = now();
        assert!(alarm.set(Some((start + Duration::from_secs(5)).into_std())));
        (&mut alarm).await;
        assert_eq!(now(), start + Duration::from_secs(5));
        // Rung and not moved: it rings again at once, as a past deadline does.
        (&mut alarm).await;
        assert_eq!(now(), start + Duration::from_secs(5));
        assert!(alarm.set(Some((start + Duration::from_secs(9)).into_std())));
        (&mut alarm).await;
        assert_eq!(now(), start + Duration::from_secs(9));
    }

    #[tokio::test(start_paused = true)]
    async fn moved_earlier_or_into_the_past_it_rings_then() {
        let mut alarm = Alarm::new();
        let start = now();
        assert!(alarm.set(Some((start + Duration::from_secs(10)).into_std())));
        // Polled once, so registered with the timer at 10 s.
        assert!(tokio::time::timeout(Duration::from_secs(1), &mut alarm)
            .await
            .is_err());
        assert!(alarm.set(Some((start + Duration::from_secs(3)).into_std())));
        (&mut alarm).await;
        assert_eq!(now(), start + Duration::from_secs(3));
        // Rung, left unset a while, then set to the same past deadline: at once.
        assert!(!alarm.set(None));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(alarm.set(Some((start + Duration::from_secs(3)).into_std())));
        assert!(tokio::time::timeout(Duration::ZERO, &mut alarm)
            .await
            .is_ok());
        // Pending far ahead, then moved into the past (a batch flushed at shutdown): at once.
        assert!(alarm.set(Some((start + Duration::from_secs(20)).into_std())));
        assert!(tokio::time::timeout(Duration::ZERO, &mut alarm)
            .await
            .is_err());
        assert!(alarm.set(Some((start + Duration::from_secs(2)).into_std())));
        assert!(tokio::time::timeout(Duration::ZERO, &mut alarm)
            .await
            .is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn unset_is_not_armed_and_keeps_the_deadline() {
        let mut alarm = Alarm::new();
        let at = (now() + Duration::from_secs(3)).into_std();
        assert!(alarm.set(Some(at)));
        assert!(!alarm.set(None));
        assert_eq!(alarm.sleep.deadline(), tokio::time::Instant::from_std(at));
        let never = tokio::time::timeout(Duration::from_secs(3600), Alarm::new()).await;
        assert!(never.is_err(), "an alarm never set does not ring");
    }
}
