//! Reading a webhook body under the limits an unauthenticated client must not be able to
//! exceed: a deadline for the whole body, a minimum data rate (so a stalled sender is cut
//! off within about a second, not at the deadline), `max_body`, and a process-wide budget
//! of body bytes held in memory, shared out per client address (see [`crate::http::share`]) so
//! that no one address can pin it. Memory follows the bytes received — the body is copied
//! into one growing buffer, never kept as a list of the client's (possibly 1-byte) chunks.
//!
//! A body its client abandons (closes or resets the connection mid-body) is told apart
//! when it was slow ([`BodyError::Abandoned`]), so it is charged like one cut off: else a
//! client could hold a body slot and its bytes until just before the deadline, close,
//! and start again, for free.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::time::Instant;

use crate::http::share::ShareLimits;
use crate::http::shares::{Share, Shares};

/// The first allocation of a body buffer; it grows by doubling as bytes arrive, so a
/// client that declares a large `Content-Length` and sends little costs little.
const INITIAL_CAPACITY: usize = 16 << 10;

/// How a body must arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// The largest body accepted (the source's `max_body`).
    pub max_body: usize,
    /// The whole body must have arrived within this time after the headers.
    pub deadline: Duration,
    /// Bytes per second the body must keep up, with one second of credit: a client that
    /// sent `n` bytes is cut off `(n + rate) / rate` seconds after its headers.
    pub min_rate: u64,
}

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("body not received within the deadline")]
    Deadline,
    #[error("body arrived slower than the minimum rate")]
    TooSlow,
    /// The client broke the body off (closed the connection) after holding it for long
    /// or going quiet: see [`abandoned_slowly`].
    #[error("the client abandoned a slow body")]
    Abandoned,
    #[error("too many request bytes in flight")]
    OverBudget,
    #[error("could not read the request body")]
    Broken,
}

/// The process-wide budget of request body bytes held in memory, shared out per client
/// address.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    bytes: Arc<Shares>,
}

/// Budget held by one request; returned when the request is answered.
#[derive(Debug)]
pub struct Reservation {
    held: Share,
}

impl BodyBudget {
    /// `bytes` in all, at most `per_address` of them held by one client address, for
    /// bodies of at most `largest_body` (the largest `max_body`): an address holding
    /// one such body or less may still take from the reserve (see [`ShareLimits::bytes`]).
    pub fn new(bytes: usize, per_address: usize, largest_body: usize) -> Self {
        Self {
            bytes: Shares::new(ShareLimits::bytes(bytes.max(1), per_address, largest_body)),
        }
    }

    /// A reservation for a new request from `client`, or `None` when the budget (or the
    /// client's part of it) is spent: the request is answered 503 at once instead of
    /// queueing behind slow bodies.
    pub fn start(&self, client: IpAddr) -> Option<Reservation> {
        Some(Reservation {
            held: self.bytes.take(client).ok()?,
        })
    }

    /// Bytes reserved by all requests right now.
    #[cfg(test)]
    pub fn reserved(&self) -> usize {
        self.bytes.held().0
    }
}

impl Reservation {
    fn held(&self) -> usize {
        self.held.held()
    }

    /// Holds at least `bytes` of the budget in total.
    fn grow_to(&mut self, bytes: usize) -> Result<(), BodyError> {
        let more = bytes.saturating_sub(self.held());
        self.held.grow(more).map_err(|_| BodyError::OverBudget)
    }
}

/// The bytes received so far, in one buffer whose capacity is reserved from the budget.
struct Collector<'a> {
    buf: Vec<u8>,
    limit: usize,
    reservation: &'a mut Reservation,
}

impl Collector<'_> {
    fn push(&mut self, data: &[u8]) -> Result<(), BodyError> {
        let needed = self.buf.len() + data.len();
        if needed > self.limit {
            return Err(BodyError::TooLarge(self.limit));
        }
        if needed > self.buf.capacity() {
            // Doubling keeps copies amortised; capping at the limit keeps the buffer
            // within max_body. Capacity is what costs memory, so that is what is reserved.
            let capacity = needed.max(self.buf.capacity() * 2).min(self.limit);
            self.reservation.grow_to(capacity)?;
            self.buf
                .try_reserve_exact(capacity - self.buf.len())
                .map_err(|_| BodyError::OverBudget)?;
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }
}

/// Reads `body` under `limits`, holding its memory in `reservation`.
pub async fn read(
    body: Body,
    declared: Option<u64>,
    limits: BodyLimits,
    reservation: &mut Reservation,
) -> Result<Bytes, BodyError> {
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return Err(BodyError::TooLarge(limits.max_body));
    }
    let started = Instant::now();
    let deadline = started + limits.deadline;
    let initial = declared
        .map_or(INITIAL_CAPACITY, |n| n as usize)
        .min(INITIAL_CAPACITY)
        .min(limits.max_body);
    reservation.grow_to(initial)?;
    let mut collector = Collector {
        buf: Vec::new(),
        limit: limits.max_body,
        reservation,
    };
    collector
        .buf
        .try_reserve_exact(initial)
        .map_err(|_| BodyError::OverBudget)?;
    let mut body = body;
    // One timer, moved forward only when it fires: re-arming it for every chunk would
    // make a stream of 1-byte chunks cost a timer operation per byte. It is polled, and so
    // registered with the runtime, only when the body has nothing ready (`biased`): most
    // bodies arrive with their headers, and registering a timer due before every other
    // one wakes the runtime's timer thread (a syscall and a context switch per webhook).
    let cut_off_at = |received: usize| {
        started
            .checked_add(rate_allowance(received, limits.min_rate))
            .map_or(deadline, |t| t.min(deadline))
    };
    let timer = tokio::time::sleep_until(cut_off_at(0));
    tokio::pin!(timer);
    let mut last_data = started;
    loop {
        let frame = tokio::select! {
            biased;
            frame = body.frame() => frame,
            () = &mut timer => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(BodyError::Deadline);
                }
                let next = cut_off_at(collector.buf.len());
                if next <= now {
                    return Err(BodyError::TooSlow);
                }
                timer.as_mut().reset(next);
                continue;
            }
        };
        let frame = match frame {
            None => break,
            Some(Err(_)) if abandoned_slowly(started.elapsed(), last_data.elapsed(), limits) => {
                return Err(BodyError::Abandoned)
            }
            Some(Err(_)) => return Err(BodyError::Broken),
            Some(Ok(frame)) => frame,
        };
        if let Ok(data) = frame.into_data() {
            collector.push(&data)?;
            last_data = Instant::now();
            // A body whose every frame is ready when asked for never lets the timer be
            // polled: the timer's two rules are kept here too.
            if last_data >= deadline {
                return Err(BodyError::Deadline);
            }
            if cut_off_at(collector.buf.len()) <= last_data {
                return Err(BodyError::TooSlow);
            }
        }
    }
    Ok(Bytes::from(collector.buf))
}

/// Whether a body broken off by its client after `elapsed`, the last of it `silent` ago,
/// was slow enough to be charged like one cut off: it was held for at least a quarter of
/// the deadline (no provider's delivery takes that long on a working link), or nothing
/// had arrived for [`STALLED`] before the close (a network failure breaks a body while
/// it flows; a client sitting on its rate credit, then closing before the cut-off to
/// start again, has gone quiet). A body broken off early while it flowed is not charged.
/// Best effort: a client that trickles a byte now and then and closes before the
/// quarter is still not charged; what any one address can hold meanwhile is bounded by
/// its share of the body budget, not by this charge.
pub fn abandoned_slowly(elapsed: Duration, silent: Duration, limits: BodyLimits) -> bool {
    elapsed >= limits.deadline / 4 || silent >= STALLED
}

/// How long a body may go without data before a close counts as abandoning it.
const STALLED: Duration = Duration::from_secs(2);

/// How long after the headers a client that sent `received` bytes may take for more.
fn rate_allowance(received: usize, min_rate: u64) -> Duration {
    if min_rate == 0 {
        return Duration::MAX;
    }
    let secs = (received as f64 + min_rate as f64) / min_rate as f64;
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;

    fn limits(max_body: usize) -> BodyLimits {
        BodyLimits {
            max_body,
            deadline: Duration::from_secs(5),
            min_rate: 1024,
        }
    }

    fn chunked(chunks: usize, size: usize) -> Body {
        let items = (0..chunks).map(move |_| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; size])));
        Body::from_stream(stream::iter(items))
    }

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn tiny_chunks_cost_the_bytes_received_not_the_chunk_count() {
        let budget = BodyBudget::new(1 << 20, 1 << 20, 1 << 20);
        let mut r = budget.start(CLIENT).unwrap();
        let body = read(chunked(100_000, 1), None, limits(1 << 20), &mut r)
            .await
            .unwrap();
        assert_eq!(body.len(), 100_000);
        // Capacity is at most twice the bytes received.
        assert!(r.held() <= 200_000, "{}", r.held());
        drop(r);
        assert_eq!(budget.reserved(), 0);
    }

    #[tokio::test]
    async fn over_max_body_is_too_large_declared_or_not() {
        let budget = BodyBudget::new(1 << 20, 1 << 20, 1 << 20);
        let mut r = budget.start(CLIENT).unwrap();
        let err = read(chunked(10, 100), None, limits(500), &mut r).await;
        assert_eq!(err, Err(BodyError::TooLarge(500)));
        let mut r = budget.start(CLIENT).unwrap();
        let err = read(chunked(1, 1), Some(501), limits(500), &mut r).await;
        assert_eq!(err, Err(BodyError::TooLarge(500)));
    }

    #[tokio::test]
    async fn the_budget_is_shared_and_refuses_when_spent() {
        let budget = BodyBudget::new(64 << 10, 64 << 10, 1 << 20);
        let mut first = budget.start(CLIENT).unwrap();
        read(chunked(1, 40 << 10), None, limits(1 << 20), &mut first)
            .await
            .unwrap();
        // Another address: the whole budget, not the first one's share, is what is spent.
        let mut second = budget.start("10.0.0.2".parse().unwrap()).unwrap();
        let err = read(chunked(1, 40 << 10), None, limits(1 << 20), &mut second).await;
        assert_eq!(err, Err(BodyError::OverBudget));
        drop((first, second));
        assert!(budget.start(CLIENT).is_some());
    }

    #[tokio::test]
    async fn one_address_cannot_pin_the_budget_another_still_reads() {
        // 1 MiB in all, 256 KiB per address: one address's half bodies stop there.
        let budget = BodyBudget::new(1 << 20, 256 << 10, 1 << 20);
        let attacker: IpAddr = "10.0.0.1".parse().unwrap();
        let mut held = Vec::new();
        for _ in 0..16 {
            let Some(mut r) = budget.start(attacker) else {
                break;
            };
            if read(chunked(1, 60 << 10), None, limits(1 << 20), &mut r)
                .await
                .is_err()
            {
                break;
            }
            held.push(r);
        }
        assert!(budget.reserved() <= 256 << 10, "{}", budget.reserved());
        let mut r = budget.start("10.0.0.2".parse().unwrap()).unwrap();
        let body = read(chunked(1, 200 << 10), None, limits(1 << 20), &mut r).await;
        assert_eq!(body.map(|b| b.len()), Ok(200 << 10));
    }

    #[tokio::test]
    async fn a_fresh_address_s_largest_body_is_read_while_another_holds_all_it_may() {
        // 8 MiB in all, bodies up to 2 MiB: more than a quarter of the 1 MiB eighth.
        let budget = BodyBudget::new(8 << 20, 7 << 20, 2 << 20);
        let attacker: IpAddr = "10.0.0.1".parse().unwrap();
        let mut held = Vec::new();
        while let Some(mut r) = budget.start(attacker) {
            let half = read(chunked(1, 512 << 10), None, limits(2 << 20), &mut r).await;
            if half.is_err() {
                break;
            }
            held.push(r);
        }
        assert!(budget.reserved() >= 6 << 20, "{}", budget.reserved());
        let mut r = budget.start("10.0.0.2".parse().unwrap()).unwrap();
        let body = read(chunked(32, 64 << 10), None, limits(2 << 20), &mut r).await;
        assert_eq!(body.map(|b| b.len()), Ok(2 << 20));
    }

    #[tokio::test]
    async fn a_stalled_body_is_cut_off_for_rate_then_deadline() {
        let budget = BodyBudget::new(1 << 20, 1 << 20, 1 << 20);
        let stalled = || {
            let first = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"x"))]);
            Body::from_stream(first.chain(stream::pending()))
        };
        use futures::StreamExt;
        let mut r = budget.start(CLIENT).unwrap();
        let started = Instant::now();
        let err = read(stalled(), Some(100), limits(1000), &mut r).await;
        assert_eq!(err, Err(BodyError::TooSlow));
        assert!(started.elapsed() < Duration::from_secs(2));

        let slow_limits = BodyLimits {
            min_rate: 0,
            deadline: Duration::from_millis(200),
            ..limits(1000)
        };
        let err = read(stalled(), Some(100), slow_limits, &mut r).await;
        assert_eq!(err, Err(BodyError::Deadline));
    }

    #[tokio::test]
    async fn a_body_whose_chunks_are_always_ready_is_still_cut_off_at_its_deadline() {
        // Every chunk is ready when asked for, so the cut-off timer is never polled; each
        // takes 10 ms to make, and the deadline passes at the tenth of fifty.
        let budget = BodyBudget::new(1 << 20, 1 << 20, 1 << 20);
        let l = BodyLimits {
            min_rate: 0,
            deadline: Duration::from_millis(100),
            ..limits(1000)
        };
        let mut r = budget.start(CLIENT).unwrap();
        let err = read(ready_bytes(50), None, l, &mut r).await;
        assert_eq!(err, Err(BodyError::Deadline));
    }

    #[tokio::test]
    async fn a_body_whose_chunks_are_always_ready_is_still_cut_off_below_the_minimum_rate() {
        // 100 bytes a second, every byte ready when asked for, against a minimum of 1 KiB
        // a second: cut off once past the allowance of a second and what it received,
        // long before its 5 s deadline or its last byte.
        let budget = BodyBudget::new(1 << 20, 1 << 20, 1 << 20);
        let mut r = budget.start(CLIENT).unwrap();
        let err = read(ready_bytes(300), None, limits(1000), &mut r).await;
        assert_eq!(err, Err(BodyError::TooSlow));
    }

    /// `n` one-byte chunks, each ready when asked for and 10 ms in the making (the
    /// stream blocks, so the reader never waits and never polls its timer).
    fn ready_bytes(n: usize) -> Body {
        use futures::StreamExt;
        Body::from_stream(stream::iter(0..n).map(|_| {
            std::thread::sleep(Duration::from_millis(10));
            Ok::<_, std::io::Error>(Bytes::from_static(b"x"))
        }))
    }

    #[test]
    fn an_abandoned_body_is_slow_when_held_long_or_silent() {
        let l = limits(1 << 20); // deadline 5 s
        let ms = Duration::from_millis;
        // Held for a quarter of the deadline, however lively.
        assert!(abandoned_slowly(ms(1250), ms(0), l));
        assert!(!abandoned_slowly(ms(1249), ms(0), l));
        // Silent for two seconds before the close, however early.
        let l = BodyLimits {
            deadline: Duration::from_secs(30),
            ..l
        };
        assert!(abandoned_slowly(ms(2000), ms(2000), l));
        assert!(!abandoned_slowly(ms(7400), ms(1999), l));
        assert!(
            abandoned_slowly(ms(7400), ms(7000), l),
            "credit, then quiet"
        );
    }

    #[tokio::test]
    async fn a_body_broken_off_late_is_abandoned_and_early_is_broken() {
        use futures::StreamExt;
        let budget = BodyBudget::new(1 << 20, 1 << 20, 1 << 20);
        // Half a body (which buys the rate credit to sit until the deadline), then the
        // connection closes after `after`.
        let broken_after = |after: Duration| {
            let half = stream::iter([Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 4000]))]);
            let close = stream::once(async move {
                tokio::time::sleep(after).await;
                Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
            });
            Body::from_stream(half.chain(close))
        };
        // A deadline of 4 s: a quarter of it is 1 s.
        let limits = BodyLimits {
            deadline: Duration::from_secs(4),
            ..limits(8000)
        };
        let mut r = budget.start(CLIENT).unwrap();
        let late = read(
            broken_after(Duration::from_millis(1100)),
            Some(8000),
            limits,
            &mut r,
        );
        assert_eq!(late.await, Err(BodyError::Abandoned));
        let early = read(
            broken_after(Duration::from_millis(50)),
            Some(8000),
            limits,
            &mut r,
        );
        assert_eq!(early.await, Err(BodyError::Broken));
        // Half a body buys credit to sit until well past two seconds; gone quiet, then
        // closed long before a quarter of a 30 s deadline, it is still charged.
        let limits = BodyLimits {
            deadline: Duration::from_secs(30),
            ..limits
        };
        let quiet = read(
            broken_after(Duration::from_millis(2100)),
            Some(8000),
            limits,
            &mut r,
        );
        assert_eq!(quiet.await, Err(BodyError::Abandoned));
    }

    #[test]
    fn rate_allowance_grows_with_bytes() {
        assert_eq!(rate_allowance(0, 1000), Duration::from_secs(1));
        assert_eq!(rate_allowance(4000, 1000), Duration::from_secs(5));
        assert_eq!(rate_allowance(1, 0), Duration::MAX);
    }
}
