//! Delivering one record: the I/O loop that performs what the delivery policy
//! ([`super::policy`]) decides after each attempt, until the destination takes the record
//! (2xx) or it is dead-lettered with the broker's acknowledgement. Each attempt waits for
//! an OAuth2 token, the circuit breaker, a concurrency permit and the rate limit, then
//! goes out through the sink's [`Client`]. Cancellation (revoke, shutdown) abandons the
//! record unfinished, so its offset is never committed.
//!
//! A [`Destination`] is all the dispatcher sees of a sink's delivery side, and it records
//! every figure of a delivery (attempts, retries, dead letters, finished records).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use bytes::Bytes;
use futures::future::BoxFuture;
use governor::DefaultDirectRateLimiter;
use tokio::sync::{Notify, Semaphore, SemaphorePermit, TryAcquireError};
use tokio_util::sync::CancellationToken;

use super::batch;
use super::breaker::{Admission, Breaker, RecordKey};
use super::client::Client;
use super::dlq::{self, DeadLetter};
use super::outcome::Outcome;
use super::policy::{self, Attempted, Attempts, Health, Next, Policy, Refusal, Turn};
use super::record::Record;
use super::request::{Prepared, Refused, Shaper};
use super::token::TokenSource;
use crate::connectors::sink::Ordering as LaneOrdering;
use crate::connectors::sink::{BatchFormat, BatchItems, Format};
use crate::connectors::Sink;
use crate::kafka::producer;
use crate::telemetry::sink::{
    AttemptEnded, BatchSent, DeadLetterFailed, DeadLettered, RecordFinished, RetryScheduled,
    SinkTelemetry, UnshapeableWithoutDlq,
};

/// What ends a delivery early: `cancel` (revoke, shutdown) stops it at its next wait;
/// `abort` (the drain deadline passed) also cuts off an attempt in progress.
#[derive(Clone, Copy)]
pub struct Stop<'a> {
    pub cancel: &'a CancellationToken,
    pub abort: &'a CancellationToken,
}

/// How a record's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The destination answered 2xx.
    Delivered,
    /// Written to the DLQ and acknowledged.
    DeadLettered,
    /// The sink's filter let it through without a request.
    Filtered,
    /// Stopped by revoke or shutdown: not finished, the offset must not move past it.
    Abandoned,
}

/// A record's item, or why it cannot be one. `body`, the shaped body (`None`: the
/// record's value), is taken when it is the item as it is: a transform's output moves
/// into the batch, and a value stays in its record.
pub(crate) fn record_item(
    rules: &batch::Rules,
    record: &Record,
    body: &mut Option<Bytes>,
) -> Result<batch::Item, batch::NotJson> {
    let id = match rules.items {
        batch::Items::Envelope => record.webhook_id(),
        batch::Items::Data => String::new(),
    };
    let origin = batch::Origin {
        webhook_id: &id,
        topic: &record.tp.topic,
        partition: record.tp.partition,
        offset: record.offset,
    };
    let (bytes, known_json) = match body {
        Some(b) => (&b[..], false),
        None => (&record.value[..], record.value_is_checked_item()),
    };
    Ok(match batch::item(rules, origin, bytes, known_json)? {
        Some(made) => batch::Item::Made(made),
        None => body.take().map_or(batch::Item::Value, batch::Item::Made),
    })
}

/// A record sent as a batch of one ([`Destination::deliver_as_the_sink_sends`]).
struct Alone<'a> {
    record: &'a Record,
    item: batch::Item,
}

impl Member for Alone<'_> {
    type Lane = ();

    fn record(&self) -> &Record {
        self.record
    }

    fn item(&self) -> &[u8] {
        self.item.bytes(&self.record.value)
    }

    fn lane(&self) -> Option<&()> {
        None
    }
}

/// One record of a batch as its sender holds it, lent to [`Destination::deliver_batch`]
/// for the batch's delivery: nothing of it is copied or counted again per attempt.
pub trait Member {
    /// What names an ordering lane.
    type Lane: PartialEq;
    fn record(&self) -> &Record;
    /// Its item in the body ([`batch::item`]).
    fn item(&self) -> &[u8];
    /// Its ordering lane (`None`: no order to keep).
    fn lane(&self) -> Option<&Self::Lane>;
}

/// Everything the deliveries of one sink share.
pub struct Destination {
    sink: Sink,
    /// One pooled client per sink, making the attempts.
    client: Client,
    /// Filter, URL and header templates, transform.
    shaper: Shaper,
    /// OAuth2 client credentials, when `auth.oauth2` is set.
    tokens: Option<TokenSource>,
    limiter: Option<DefaultDirectRateLimiter>,
    permits: Semaphore,
    breaker: Breaker,
    producers: dlq::Producers,
    telemetry: Arc<SinkTelemetry>,
    /// Fired on shutdown: a failed attempt is not retried (the record stays unfinished
    /// and is delivered after the restart).
    no_retry: CancellationToken,
    /// Deliveries started by the dispatcher that have not reached their first attempt.
    fresh: AtomicUsize,
    /// Signalled whenever one of them does (or gives up).
    fresh_left: Notify,
}

/// An attempt's turn: the breaker let it go, holding a concurrency permit (and the
/// OAuth2 token to send).
struct Go<'a> {
    authorization: Option<HeaderValue>,
    turn: Turn,
    _permit: SemaphorePermit<'a>,
}

/// A dispatcher's right to start one delivery: at most `concurrency` started deliveries
/// wait for their first attempt at a time. Records beyond that stay plain data in the
/// dispatcher's queue instead of futures parked on the semaphore, so memory and wakeups
/// follow the work in progress, not the backlog. Returned when the first attempt starts.
pub struct Ticket(Arc<Destination>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fresh.fetch_sub(1, Ordering::AcqRel);
        self.0.fresh_left.notify_one();
    }
}

impl Destination {
    pub fn new(
        sink: Sink,
        producers: dlq::Producers,
        telemetry: Arc<SinkTelemetry>,
    ) -> Result<Self, reqwest::Error> {
        let breaker = Breaker::new(
            sink.breaker.failures,
            sink.breaker.cooldown.0,
            telemetry.breaker.clone(),
            telemetry.name.clone(),
        );
        let (client, tokens) = Client::new(&sink, telemetry.clone())?;
        let no_retry = CancellationToken::new();
        Ok(Self {
            fresh: AtomicUsize::new(0),
            fresh_left: Notify::new(),
            limiter: sink.rate_limit.map(|r| r.limiter()),
            permits: Semaphore::new(sink.concurrency),
            client,
            // A jq worker that cannot start is waited for like a retry: not on shutdown.
            shaper: Shaper::new(&sink, telemetry.clone()).stopped_by(no_retry.clone()),
            no_retry,
            tokens,
            breaker,
            producers,
            telemetry,
            sink,
        })
    }

    /// From now on, failed attempts end the delivery as abandoned instead of waiting
    /// to retry (graceful shutdown).
    pub fn stop_retrying(&self) {
        self.no_retry.cancel();
    }

    /// A ticket to start one more delivery, when fewer than `concurrency` are waiting
    /// for their first attempt.
    pub fn ticket(self: &Arc<Self>) -> Option<Ticket> {
        let mut n = self.fresh.load(Ordering::Acquire);
        loop {
            if n >= self.sink.concurrency {
                return None;
            }
            match self
                .fresh
                .compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(Ticket(self.clone())),
                Err(now) => n = now,
            }
        }
    }

    /// Resolves when a ticket may be free again.
    pub async fn ticket_returned(&self) {
        self.fresh_left.notified().await
    }

    /// The sink's name.
    pub fn name(&self) -> &str {
        &self.sink.name
    }

    /// Which records must be delivered in order.
    pub fn ordering(&self) -> LaneOrdering {
        self.sink.ordering
    }

    /// Records held per partition before it is paused.
    pub fn buffer(&self) -> usize {
        self.sink.buffer
    }

    /// Deliveries (or, for a batching sink with jq programs, shapings) at once.
    pub fn concurrency(&self) -> usize {
        self.sink.concurrency
    }

    /// The sink's `batch` rules; `None`: one request per record.
    pub fn batch_rules(&self) -> Option<batch::Rules> {
        let b = self.sink.batch?;
        Some(batch::Rules {
            max_records: b.max_records,
            max_bytes: usize::try_from(b.max_bytes.0).unwrap_or(usize::MAX),
            max_wait: b.max_wait.0,
            layout: match b.format {
                BatchFormat::JsonArray => batch::Layout::JsonArray,
                BatchFormat::Ndjson => batch::Layout::Ndjson,
            },
            items: match b.items {
                BatchItems::Data => batch::Items::Data,
                BatchItems::Envelope => batch::Items::Envelope,
            },
        })
    }

    /// Whether this sink batches its records' values as they were polled (no transform,
    /// `format = "raw"`): the poll thread then checks each value as a batch item, while
    /// it is in cache ([`Record::check_item`]). Only saves work: an item is trusted only
    /// when its body is the very value checked.
    pub fn items_are_values(&self) -> bool {
        self.sink.batch.is_some()
            && self.sink.transform.is_none()
            && self.sink.format == Format::Raw
    }

    /// The sink's filter, templates and transform.
    pub fn shaper(&self) -> &Shaper {
        &self.shaper
    }

    /// Delivers a batch: `request` carries every one of `records` (in order; `items`
    /// their parts of the body, `lanes` their ordering lanes) in one body. The batch is
    /// retried as one request per the policy, and dead-lettered record by record when it
    /// gives up. A 2xx finishes every record, unless its body answers per item
    /// (`{"results":[{"status":…},…]}`, see [`batch::item_outcomes`]): then delivered
    /// items finish, failed ones are dead-lettered or retried as the status policy
    /// says, and the items behind a failed one of their lane go again with it, in a
    /// smaller batch. The webhook id is the first record's with a digest of every record
    /// the request carries ([`batch_id`]), so an identical batch sent again (after a
    /// restart) carries the same id.
    pub async fn deliver_batch<M: Member>(
        &self,
        members: &[M],
        mut request: Prepared<'_>,
        rules: &batch::Rules,
        stop: Stop<'_>,
        mut ticket: Option<Ticket>,
    ) -> Vec<Finish> {
        let mut finishes = vec![Finish::Abandoned; members.len()];
        let Some(first) = members.first().map(Member::record) else {
            return finishes;
        };
        request.content_type = Some(HeaderValue::from_static(rules.layout.content_type()));
        BatchSent {
            records: members.len(),
        }
        .emit(&self.telemetry);
        let cancel = stop.cancel;
        let key: RecordKey = (first.tp.topic, first.tp.partition, first.offset);
        let policy = self.policy();
        let mut state = Attempts::default();
        // Indexes of the records the request carries, in order.
        let mut pending: Vec<usize> = (0..members.len()).collect();
        let mut id = batch_id(pending.iter().map(|&i| members[i].record()));
        // Of the records the last attempt carried, those its per-item answer did not
        // fail, sent again only because an earlier one of their lane did.
        let mut behind: Vec<usize> = Vec::new();
        // Records split off a batch the destination found too large (413), the next to
        // send last: each part goes once the one before it is finished.
        let mut later: Vec<Vec<usize>> = Vec::new();
        'attempts: loop {
            if pending.is_empty() {
                // Every path that empties `pending` finished its records.
                let Some(next) = later.pop() else {
                    break;
                };
                pending = next;
                (request.body, id) = carried(rules, members, &pending);
                state = Attempts::default();
            }
            let lead = pending[0];
            if cancel.is_cancelled() {
                break;
            }
            let Some(go) = self.turn(&key, cancel).await else {
                break;
            };
            state.start(SystemTime::now());
            drop(ticket.take());
            let (turn, authorization) = (go.turn, go.authorization.clone());
            let Some((mut outcome, response, took)) = self
                .attempt(
                    members[lead].record(),
                    &request,
                    &id,
                    go,
                    stop.abort,
                    ANSWER_LIMIT,
                )
                .await
            else {
                break;
            };
            let token = authorization.is_some();
            behind.clear();
            let answer = match outcome {
                Outcome::Delivered => batch::answer(&response, pending.len()),
                _ => batch::BatchAnswer::Whole,
            };
            let malformed = answer == batch::BatchAnswer::Malformed;
            let statuses = match answer {
                batch::BatchAnswer::PerItem(statuses) => Some(statuses),
                batch::BatchAnswer::Whole => None,
                batch::BatchAnswer::Malformed => {
                    outcome = Outcome::Retryable {
                        reason: super::outcome::BAD_ANSWER,
                        status: None,
                        retry_after: None,
                    };
                    None
                }
            };
            // Only an excerpt outlives the attempt: a receiver's large answer is not held
            // through the backoff, nor carried into dead letters. A 2xx answer was read
            // unmasked for its per-item statuses; kept for an item that failed (its dead
            // letter, the recent failures) or as unreadable, it is masked as a failed
            // answer is.
            let item_failed = |s: &Vec<u16>| s.iter().any(|st| !(200..300).contains(st));
            let masked = match &statuses {
                Some(s) => outcome == Outcome::Delivered && item_failed(s),
                None => malformed,
            };
            let response = if masked {
                self.client.keep(response, authorization.as_ref())
            } else if response.len() > super::dlq::RESPONSE_EXCERPT {
                Bytes::copy_from_slice(&response[..super::dlq::RESPONSE_EXCERPT])
            } else {
                response
            };
            if outcome == Outcome::Delivered {
                let Some(statuses) = statuses else {
                    for i in pending.drain(..) {
                        finishes[i] = Finish::Delivered;
                    }
                    self.breaker.healthy();
                    continue;
                };
                self.breaker.healthy();
                let sent: Vec<Option<&M::Lane>> =
                    pending.iter().map(|&i| members[i].lane()).collect();
                let mut again = Vec::new();
                let mut retried: Option<Outcome> = None;
                // Every dead letter written here was acknowledged: the items behind one
                // may go on only then (a write cut short by shutdown leaves it
                // unfinished, and they would pass it).
                let mut written = true;
                for (&i, item) in pending.iter().zip(batch::item_outcomes(&statuses, &sent)) {
                    let status = match item {
                        batch::ItemOutcome::Delivered => {
                            finishes[i] = Finish::Delivered;
                            continue;
                        }
                        batch::ItemOutcome::Behind => {
                            again.push(i);
                            behind.push(i);
                            continue;
                        }
                        batch::ItemOutcome::Failed(status) => status,
                    };
                    let failed = StatusCode::from_u16(status)
                        .map(|s| {
                            self.sink
                                .status
                                .classify(s, &HeaderMap::new(), SystemTime::now())
                        })
                        .unwrap_or(Outcome::Permanent {
                            reason: "other",
                            status,
                        });
                    // What the policy would do with this item alone, without spending
                    // the batch's attempts on it.
                    let next = policy
                        .after(
                            &mut state.clone(),
                            attempted(&failed, turn, took, token),
                            rand::random(),
                        )
                        .next;
                    match next {
                        Next::DeadLetter { reason, error }
                            if matches!(failed, Outcome::Permanent { .. }) =>
                        {
                            let dl = after_attempts(
                                reason,
                                Some(status),
                                error,
                                &state,
                                response.clone(),
                            );
                            let record = members[i].record();
                            finishes[i] = self
                                .dead_letter(record, &record.webhook_id(), &dl, cancel)
                                .await;
                            written &= finishes[i] == Finish::DeadLettered;
                        }
                        _ => {
                            retried.get_or_insert(failed);
                            again.push(i);
                        }
                    }
                }
                if !written {
                    break;
                }
                pending = again;
                if pending.is_empty() {
                    continue;
                }
                (request.body, id) = carried(rules, members, &pending);
                match retried {
                    Some(failed) => outcome = failed,
                    // Only items behind a dead-lettered one: they go again at once, on
                    // attempts of their own (none of theirs failed).
                    None => {
                        state = Attempts::default();
                        continue 'attempts;
                    }
                }
            }
            let decision = policy.after(
                &mut state,
                attempted(&outcome, turn, took, token),
                rand::random(),
            );
            match decision.breaker {
                Health::Reachable => self.breaker.healthy(),
                Health::Failed => self.breaker.failed(None),
                Health::ProbeFailed => self.breaker.failed(Some(&key)),
            }
            let (error, wait, held) = match decision.next {
                Next::Delivered => {
                    for i in pending.drain(..) {
                        finishes[i] = Finish::Delivered;
                    }
                    continue;
                }
                Next::RefreshToken => {
                    if let (Some(tokens), Some(used)) = (&self.tokens, &authorization) {
                        tokens.refused(used);
                    }
                    continue;
                }
                // Too large for the destination: the first half goes alone, then the rest,
                // each split again while it is refused so (a record alone is
                // dead-lettered, or held without a DLQ).
                Next::DeadLetter { .. } | Next::Hold { .. }
                    if outcome.status() == Some(413) && pending.len() > 1 =>
                {
                    later.push(pending.split_off(pending.len() / 2));
                    (request.body, id) = carried(rules, members, &pending);
                    state = Attempts::default();
                    continue;
                }
                Next::DeadLetter { reason, error } => {
                    let dl = after_attempts(reason, outcome.status(), error, &state, response);
                    let (mut kept, mut written) = (Vec::new(), true);
                    for &i in &pending {
                        if behind.contains(&i) {
                            kept.push(i);
                            continue;
                        }
                        let record = members[i].record();
                        finishes[i] = self
                            .dead_letter(record, &record.webhook_id(), &dl, cancel)
                            .await;
                        // One cut short stays unfinished, and so do those after it: a
                        // later record of its key dead-lettered would pass it.
                        if finishes[i] != Finish::DeadLettered {
                            written = false;
                            break;
                        }
                    }
                    // Those the receiver took, sent again only to follow a failed one
                    // of their lane: that one is in the DLQ now, so they go again, on
                    // attempts of their own, and are not dead-lettered for its failure.
                    // (Not while one of them is unfinished: they would pass it.)
                    if !written {
                        break;
                    }
                    if kept.is_empty() {
                        pending.clear();
                        continue;
                    }
                    pending = kept;
                    (request.body, id) = carried(rules, members, &pending);
                    state = Attempts::default();
                    continue;
                }
                Next::Hold { error, wait } => (error, wait, true),
                Next::Retry { error, wait } => (error, wait, false),
            };
            if self.no_retry.is_cancelled() {
                break;
            }
            RetryScheduled {
                id: &id,
                error,
                answer: outcome.status().map(|st| (st, &response[..])),
                attempts: state.counted(),
                wait,
                held,
            }
            .emit(&self.telemetry);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.no_retry.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        self.finished_together(&finishes);
        finishes
    }

    /// [`Destination::finished`] for a batch's records: one counter update per end.
    fn finished_together(&self, finishes: &[Finish]) {
        for end in [Finish::Delivered, Finish::DeadLettered, Finish::Filtered] {
            let records = finishes.iter().filter(|f| **f == end).count() as u64;
            if records > 0 {
                self.finished_records(end, records);
            }
        }
    }

    /// Ends a record that is sent in no request: the filter let it through (`Ok`), or it
    /// cannot be shaped or be a batch item (`Err`: dead-lettered, or held without a DLQ).
    pub async fn settle(
        &self,
        record: &Record,
        shaped: Result<(), Refused>,
        cancel: &CancellationToken,
    ) -> Finish {
        let finish = match shaped {
            Ok(()) => Finish::Filtered,
            Err(refused) => self.refuse(record, refused, cancel).await,
        };
        self.finished(finish);
        finish
    }

    fn finished(&self, finish: Finish) {
        self.finished_records(finish, 1);
    }

    fn finished_records(&self, finish: Finish, records: u64) {
        let end = match finish {
            Finish::Delivered => RecordFinished::Delivered,
            Finish::DeadLettered => RecordFinished::DeadLettered,
            Finish::Filtered => RecordFinished::Filtered,
            Finish::Abandoned => return,
        };
        end.emit_records(&self.telemetry, records);
    }

    /// Delivers `record`, retrying as the policy says. Returns only when the record is
    /// finished or `cancel` fired.
    /// With a `ticket`, it is handed back when the first attempt starts. `cancel` stops
    /// waiting and retrying; `abort` also cuts off an attempt in progress.
    pub async fn deliver(&self, record: &Record, stop: Stop<'_>, ticket: Option<Ticket>) -> Finish {
        let Some(shaped) = self.shaper.shape_in_time(record, stop.cancel).await else {
            return Finish::Abandoned;
        };
        let finish = match shaped {
            Ok(Some(request)) => {
                let id = record.webhook_id();
                self.attempts(record, &request, &id, stop, ticket).await
            }
            Ok(None) => Finish::Filtered,
            Err(refused) => {
                drop(ticket);
                self.refuse(record, refused, stop.cancel).await
            }
        };
        self.finished(finish);
        finish
    }

    /// Delivers one record as the sink sends its records: alone, or, when the sink
    /// batches, as a batch of that one item (the body in the batch's layout, its answer
    /// read per item), so a receiver that takes only batches gets one. What `dlq
    /// redrive` sends.
    pub async fn deliver_as_the_sink_sends(&self, record: &Record, stop: Stop<'_>) -> Finish {
        let Some(rules) = self.batch_rules() else {
            return self.deliver(record, stop, None).await;
        };
        let Some(shaped) = self.shaper.shape_in_time(record, stop.cancel).await else {
            return Finish::Abandoned;
        };
        let refused = match shaped {
            Ok(Some(mut request)) => match record_item(&rules, record, &mut request.body) {
                Ok(item) => {
                    let alone = [Alone { record, item }];
                    request.body = Some(rebuild(&rules, alone.iter().map(Member::item)));
                    let finishes = self
                        .deliver_batch(&alone, request, &rules, stop, None)
                        .await;
                    return finishes.first().copied().unwrap_or(Finish::Abandoned);
                }
                Err(not_json) => not_json.into(),
            },
            Ok(None) => {
                self.finished(Finish::Filtered);
                return Finish::Filtered;
            }
            Err(refused) => refused,
        };
        let finish = self.refuse(record, refused, stop.cancel).await;
        self.finished(finish);
        finish
    }

    /// A record that cannot be shaped is never sent anywhere: dead-lettered at once, or
    /// without a DLQ held in its lane like any undeliverable record, until revoke or
    /// shutdown.
    async fn refuse(
        &self,
        record: &Record,
        refused: Refused,
        cancel: &CancellationToken,
    ) -> Finish {
        let id = record.webhook_id();
        let wait = match self.policy().refused() {
            Refusal::DeadLetter => {
                let now = SystemTime::now();
                let dl = DeadLetter {
                    reason: refused.reason,
                    status: None,
                    error: refused.error,
                    attempts: 0,
                    first_attempt: now,
                    last_attempt: now,
                    // No answer: what could not be filled in, for the operator.
                    response: refused.detail.map(Bytes::from).unwrap_or_default(),
                };
                return self.dead_letter(record, &id, &dl, cancel).await;
            }
            Refusal::Hold { wait } => wait,
        };
        loop {
            UnshapeableWithoutDlq {
                id: &id,
                error: refused.error,
            }
            .emit(&self.telemetry);
            tokio::select! {
                _ = cancel.cancelled() => return Finish::Abandoned,
                _ = self.no_retry.cancelled() => return Finish::Abandoned,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn policy(&self) -> Policy<'_> {
        Policy {
            retry: &self.sink.retry,
            dead_letters: self.sink.dlq_topic.is_some(),
        }
    }

    /// Attempts `request` (carrying `record`; `id` its webhook id) until the policy
    /// ([`super::policy`]) says it is finished, performing each step it returns.
    async fn attempts(
        &self,
        record: &Record,
        request: &Prepared<'_>,
        id: &str,
        stop: Stop<'_>,
        mut ticket: Option<Ticket>,
    ) -> Finish {
        let cancel = stop.cancel;
        let key: RecordKey = (record.tp.topic, record.tp.partition, record.offset);
        let policy = self.policy();
        let mut state = Attempts::default();
        loop {
            if cancel.is_cancelled() {
                return Finish::Abandoned;
            }
            let Some(go) = self.turn(&key, cancel).await else {
                return Finish::Abandoned;
            };
            state.start(SystemTime::now());
            drop(ticket.take());
            let (turn, authorization) = (go.turn, go.authorization.clone());
            let Some((outcome, response, took)) =
                self.attempt(record, request, id, go, stop.abort, 0).await
            else {
                return Finish::Abandoned;
            };
            let attempted = Attempted {
                outcome: &outcome,
                turn,
                took,
                token: authorization.is_some(),
            };
            let decision = policy.after(&mut state, attempted, rand::random());
            match decision.breaker {
                Health::Reachable => self.breaker.healthy(),
                Health::Failed => self.breaker.failed(None),
                Health::ProbeFailed => self.breaker.failed(Some(&key)),
            }
            let (error, wait, held) = match decision.next {
                Next::Delivered => return Finish::Delivered,
                Next::RefreshToken => {
                    if let (Some(tokens), Some(used)) = (&self.tokens, &authorization) {
                        tokens.refused(used);
                    }
                    continue;
                }
                Next::DeadLetter { reason, error } => {
                    let dl = after_attempts(reason, outcome.status(), error, &state, response);
                    return self.dead_letter(record, id, &dl, cancel).await;
                }
                Next::Hold { error, wait } => (error, wait, true),
                Next::Retry { error, wait } => (error, wait, false),
            };
            if self.no_retry.is_cancelled() {
                return Finish::Abandoned;
            }
            RetryScheduled {
                id,
                error,
                answer: outcome.status().map(|st| (st, &response[..])),
                attempts: state.counted(),
                wait,
                held,
            }
            .emit(&self.telemetry);
            tokio::select! {
                _ = cancel.cancelled() => return Finish::Abandoned,
                _ = self.no_retry.cancelled() => return Finish::Abandoned,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Waits until an attempt of the record at `key` may go: an OAuth2 token, the
    /// breaker's admission, a concurrency permit and a rate-limit token, none of which
    /// is the record's fault, so no attempt is spent on them. `None`: cancelled, or
    /// shutting down before the breaker let it go (it is delivered after the restart).
    async fn turn(&self, key: &RecordKey, cancel: &CancellationToken) -> Option<Go<'_>> {
        // While the token endpoint cannot give one, wait here, holding neither the
        // breaker's probe nor a concurrency slot (a token that goes stale during the
        // waits below is fetched again holding them: nothing else could be sent then).
        if let Some(tokens) = &self.tokens {
            tokio::select! {
                biased;
                a = tokens.authorization(cancel, &self.telemetry) => a?,
                _ = self.no_retry.cancelled() => return None,
            };
        }
        // On shutdown a record still waiting for the breaker gives up at once; one that
        // may go now still gets its attempt.
        let turn = match tokio::select! {
            biased;
            a = self.breaker.admit(cancel, key) => a,
            _ = self.no_retry.cancelled() => Admission::Cancelled,
        } {
            Admission::Attempt => Turn::Attempt,
            Admission::Probe { counts } => Turn::Probe { counts },
            Admission::Cancelled => return None,
        };
        let Some(permit) = self.slot(cancel).await else {
            // Nobody else may probe while this one is out: hand the turn back.
            self.release_probe(turn);
            return None;
        };
        // The token to send is taken when the turn has come (the cached one, unless it
        // went stale meanwhile): the breaker's cooldown, the rate limit or a full queue
        // can outlast the one waited for above.
        let authorization = match &self.tokens {
            None => None,
            Some(tokens) => match tokio::select! {
                biased;
                a = tokens.authorization(cancel, &self.telemetry) => a,
                _ = self.no_retry.cancelled() => None,
            } {
                Some(a) => Some(a),
                None => {
                    self.release_probe(turn);
                    return None;
                }
            },
        };
        Some(Go {
            authorization,
            turn,
            _permit: permit,
        })
    }

    /// One attempt on its turn, timed and counted; the permit is returned when it ends.
    /// `None`: cut off by `abort`. A revoked partition's attempt is cut off at the drain
    /// deadline: the new owner delivers the record again, and a late answer here must
    /// not land after that owner's later records of the same key.
    async fn attempt(
        &self,
        record: &Record,
        request: &Prepared<'_>,
        id: &str,
        go: Go<'_>,
        abort: &CancellationToken,
        answer_limit: usize,
    ) -> Option<(Outcome, Bytes, Duration)> {
        let started = Instant::now();
        self.telemetry.in_flight.inc();
        let attempted = tokio::select! {
            biased;
            r = self.client.send(record, request, id, go.authorization.as_ref(), answer_limit) => Some(r),
            _ = abort.cancelled() => None,
        };
        self.telemetry.in_flight.dec();
        let Some((outcome, response)) = attempted else {
            self.release_probe(go.turn);
            return None;
        };
        let took = started.elapsed();
        AttemptEnded {
            result: outcome.label(),
            seconds: took.as_secs_f64(),
        }
        .emit(&self.telemetry);
        Some((outcome, response, took))
    }

    /// A probe abandoned before it could report lets the next delivery probe.
    fn release_probe(&self, turn: Turn) {
        if let Turn::Probe { .. } = turn {
            self.breaker.release_probe();
        }
    }

    /// Waits for a concurrency permit, then a rate-limit token, so at most `concurrency`
    /// deliveries ever wait on the limiter and a burst never exceeds it; `None` when
    /// cancelled.
    async fn slot(&self, cancel: &CancellationToken) -> Option<SemaphorePermit<'_>> {
        // A free permit is taken without waiting, so the cancellation is not registered
        // (a lock and a list insert, and their undoing, per attempt). Free permits mean
        // nobody is queued for one (a released permit goes to the queue first), so this
        // never overtakes a waiting delivery.
        let permit = match self.permits.try_acquire() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => return None,
            Err(TryAcquireError::NoPermits) => tokio::select! {
                _ = cancel.cancelled() => return None,
                p = self.permits.acquire() => p.ok()?,
            },
        };
        if cancel.is_cancelled() {
            return None;
        }
        if let Some(limiter) = &self.limiter {
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = limiter.until_ready() => {}
            }
        }
        Some(permit)
    }

    /// Writes to the DLQ until the broker acknowledges (or cancellation). A dead letter
    /// refused for its size is written again alone, then cut (see `dlq`); any other
    /// failure is retried with backoff, the record unfinished meanwhile.
    ///
    /// Boxed: a delivery's future is as large as its largest wait, and is allocated and
    /// copied for every record, where few ever write a dead letter.
    fn dead_letter<'a>(
        &'a self,
        record: &'a Record,
        id: &'a str,
        dl: &'a DeadLetter,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Finish> {
        Box::pin(self.write_dead_letter(record, id, dl, cancel))
    }

    /// [`Destination::dead_letter`], unboxed.
    async fn write_dead_letter(
        &self,
        record: &Record,
        id: &str,
        dl: &DeadLetter,
        cancel: &CancellationToken,
    ) -> Finish {
        let Some(topic) = &self.sink.dlq_topic else {
            return Finish::Abandoned;
        };
        let mut wait = policy::DEAD_LETTER_RETRY;
        let mut way = dlq::Way::FIRST;
        loop {
            let fit = way.fit;
            let error = match dlq::write(&self.producers, topic, record, dl, self.name(), way).await
            {
                Ok(_) => {
                    DeadLettered {
                        id,
                        reason: dl.reason,
                        status: dl.status,
                        response: &dl.response,
                        attempts: dl.attempts,
                        dlq: topic,
                        cut: (fit != dlq::Fit::Whole).then_some(&fit as &dyn std::fmt::Debug),
                    }
                    .emit(&self.telemetry);
                    return Finish::DeadLettered;
                }
                Err(e) => e,
            };
            let next = producer::is_too_large(&error)
                .then(|| {
                    way.after_too_large(
                        record.value.len(),
                        record.key.as_ref().map_or(0, |k| k.len()),
                    )
                })
                .flatten();
            DeadLetterFailed {
                id,
                dlq: topic,
                error: &error,
                class: producer::failure_class(&error),
                cut_next: next.is_some_and(|n| n.fit != fit),
            }
            .emit(&self.telemetry);
            if let Some(next) = next {
                way = next;
                continue;
            }
            tokio::select! {
                _ = cancel.cancelled() => return Finish::Abandoned,
                _ = self.no_retry.cancelled() => return Finish::Abandoned,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = policy::dead_letter_backoff(wait);
        }
    }
}

fn attempted(outcome: &Outcome, turn: Turn, took: Duration, token: bool) -> Attempted<'_> {
    Attempted {
        outcome,
        turn,
        took,
        token,
    }
}

/// The body and webhook id of a request carrying `pending` of a batch's `members`.
fn carried<M: Member>(
    rules: &batch::Rules,
    members: &[M],
    pending: &[usize],
) -> (Option<Bytes>, String) {
    let body = rebuild(rules, pending.iter().map(|&i| members[i].item()));
    (
        Some(body),
        batch_id(pending.iter().map(|&i| members[i].record())),
    )
}

/// Most of a 2xx answer to a batch read for its per-item results.
const ANSWER_LIMIT: usize = 1 << 20;

/// A batch's webhook id: its first record's id and a digest of where every record it
/// carries is. The same batch sent again (after a crash, a rebalance) has the same id;
/// two batches share one only when they carry the same records, so a receiver that
/// drops a webhook-id it has seen never drops a batch with a record it has not.
fn batch_id<'a>(members: impl Iterator<Item = &'a Record>) -> String {
    use sha2::Digest;
    // Hashed in one call: a hundred records' three small updates each cost more in the
    // hasher's buffering than the hashing itself.
    let mut input = Vec::new();
    let mut first = None;
    for r in members {
        first.get_or_insert(r);
        input.extend_from_slice(r.tp.topic.as_bytes());
        input.extend_from_slice(&r.tp.partition.to_be_bytes());
        input.extend_from_slice(&r.offset.to_be_bytes());
    }
    let id = first.map(Record::webhook_id).unwrap_or_default();
    let digest = sha2::Sha256::digest(&input);
    format!("{id}-batch-{}", hex::encode(&digest[..8]))
}

/// The body of a smaller batch of the same items.
fn rebuild<'a>(rules: &batch::Rules, items: impl Iterator<Item = &'a [u8]>) -> Bytes {
    let mut open = batch::Open::new(std::time::Instant::now());
    for item in items {
        open.push(item, batch::Item::Value);
    }
    open.seal(rules).0
}

/// The dead letter of a record (or batch) whose attempts ended in `reason`: their count
/// and times come from `state`, the last answer's status and excerpt from the attempt.
fn after_attempts(
    reason: &'static str,
    status: Option<u16>,
    error: &'static str,
    state: &Attempts,
    response: Bytes,
) -> DeadLetter {
    DeadLetter {
        reason,
        status,
        error,
        attempts: state.counted(),
        first_attempt: state.first().unwrap_or_else(SystemTime::now),
        last_attempt: SystemTime::now(),
        response,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::connectors::{load_file, Connectors};
    use crate::egress::record::TopicPartition;
    use crate::telemetry::Metrics;

    /// The destination of the one sink in `text`, its DLQ producers offline: a
    /// dead-letter write would fail.
    fn destination_of(text: &str) -> Destination {
        let mut c = Connectors::default();
        load_file("orders.toml", text, &mut c).unwrap();
        let sink = c.sinks.remove(0);
        let offline = || {
            crate::kafka::producer::Producer::create(
                rdkafka::ClientConfig::new().set("bootstrap.servers", "127.0.0.1:1"),
            )
            .unwrap()
        };
        let producer = crate::egress::dlq::Producers {
            batched: offline(),
            alone: offline(),
        };
        let telemetry = Arc::new(SinkTelemetry::new(
            "orders".into(),
            Arc::new(Metrics::new()),
        ));
        Destination::new(sink, producer, telemetry).unwrap()
    }

    /// Every record's delivery future is allocated and copied into place, so it must
    /// not carry the space of waits only some records or sinks meet (a jq worker, a dead
    /// letter, an OAuth2 fetch, an open breaker, a failed answer's body): those are boxed
    /// where they are awaited. It was 3 KiB with them inline.
    #[tokio::test]
    async fn a_delivery_future_carries_no_rare_wait_inline() {
        let d = destination_of(
            "[sink]\nname = \"orders\"\ntopics = [\"orders\"]\nurl = \"http://127.0.0.1:9/\"\n",
        );
        let record = record_at(1);
        let (cancel, abort) = (CancellationToken::new(), CancellationToken::new());
        let stop = Stop {
            cancel: &cancel,
            abort: &abort,
        };
        let size = std::mem::size_of_val(&d.deliver(&record, stop, None));
        assert!(size <= 2560, "a delivery's future takes {size} bytes");
    }

    fn record_at(offset: i64) -> Record {
        Record {
            tp: TopicPartition {
                topic: "orders".into(),
                partition: 0,
            },
            offset,
            key: None,
            value: Bytes::from_static(b"{}"),
            headers: Vec::new(),
            epoch: 0,
            leader_epoch: -1,
            checked_item: None,
            null_headers: Vec::new(),
            null_value: false,
        }
    }

    /// `https://user:password@host/…` in a sink's URL: the credentials go as Basic
    /// authorization, never in the request line.
    #[tokio::test]
    async fn credentials_in_the_url_are_sent_as_basic_authorization() {
        let seen = Arc::new(Mutex::new(Vec::<(Option<String>, String)>::new()));
        let into = seen.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
                let auth = headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned());
                into.lock().unwrap().push((auth, uri.to_string()));
                async { "ok" }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://u:pw@{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let destination = destination_of(&format!(
            "[sink]\nname = \"orders\"\ntopics = [\"orders\"]\nurl = \"{url}\"\ntimeout = \"5s\"\n"
        ));
        let (cancel, abort) = (CancellationToken::new(), CancellationToken::new());
        let stop = Stop {
            cancel: &cancel,
            abort: &abort,
        };
        let finish = destination.deliver(&record_at(7), stop, None).await;
        assert_eq!(finish, Finish::Delivered);
        let seen = seen.lock().unwrap().clone();
        // base64("u:pw")
        assert_eq!(
            seen,
            vec![(Some("Basic dTpwdw==".to_owned()), "/hook".to_owned())]
        );
    }

    /// A record forwarded with an `Authorization` header of its own (a producer's, or a
    /// webhook sender's) never replaces the credentials of the sink's URL.
    #[tokio::test]
    async fn a_forwarded_authorization_never_replaces_the_urls_credentials() {
        let seen = Arc::new(Mutex::new(Vec::<Option<String>>::new()));
        let into = seen.clone();
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
            let auth = headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            into.lock().unwrap().push(auth);
            async { "ok" }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://u:pw@{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let destination = destination_of(&format!(
            "[sink]\nname = \"orders\"\ntopics = [\"orders\"]\nurl = \"{url}\"\ntimeout = \"5s\"\n\
             forward_record_headers = [\"*\"]\n"
        ));
        let mut record = record_at(7);
        record.headers = vec![
            ("Authorization".into(), Bytes::from_static(b"Bearer forged")),
            ("x-kept".into(), Bytes::from_static(b"1")),
        ];
        let (cancel, abort) = (CancellationToken::new(), CancellationToken::new());
        let stop = Stop {
            cancel: &cancel,
            abort: &abort,
        };
        assert_eq!(
            destination.deliver(&record, stop, None).await,
            Finish::Delivered
        );
        // base64("u:pw")
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Some("Basic dTpwdw==".to_owned())]
        );
    }

    /// Without a DLQ, a record that ran out of attempts is never dropped and never
    /// reported finished (so never committed): it keeps being attempted, at the maximum
    /// backoff, until its partition is given up.
    #[tokio::test]
    async fn out_of_attempts_without_a_dlq_retries_at_the_maximum_backoff_and_never_finishes() {
        let arrivals = Arc::new(Mutex::new(Vec::<Instant>::new()));
        let seen = arrivals.clone();
        let app = axum::Router::new().fallback(move || {
            seen.lock().unwrap().push(Instant::now());
            async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let text = format!(
            "[sink]\nname = \"orders\"\ntopics = [\"orders\"]\nurl = \"{url}\"\ntimeout = \"5s\"\n\
             retry = {{ max_attempts = 2, initial = \"10ms\", max = \"300ms\" }}\n\
             breaker = {{ failures = 0 }}\n"
        );
        let destination = destination_of(&text);
        assert!(destination.sink.dlq_topic.is_none());
        let record = record_at(7);
        let (cancel, abort) = (CancellationToken::new(), CancellationToken::new());
        let stop = Stop {
            cancel: &cancel,
            abort: &abort,
        };
        let deliver = destination.deliver(&record, stop, None);
        tokio::pin!(deliver);
        // Five attempts: two within the policy, three past it.
        let watch = async {
            while arrivals.lock().unwrap().len() < 5 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            finish = &mut deliver => panic!("ended without being delivered: {finish:?}"),
            () = watch => {}
        }
        let at = arrivals.lock().unwrap().clone();
        for (i, gap) in at.windows(2).map(|w| w[1] - w[0]).enumerate().skip(1) {
            // The sleep before each attempt past the second is exactly `retry.max`.
            assert!(
                gap >= Duration::from_millis(290),
                "attempt {} came {gap:?} after the one before",
                i + 2
            );
        }
        cancel.cancel();
        assert_eq!(deliver.await, Finish::Abandoned, "given up, not finished");
    }

    #[test]
    fn a_batch_id_names_exactly_the_records_it_carries() {
        let at = |offset| Record {
            tp: TopicPartition {
                topic: "orders".into(),
                partition: 0,
            },
            offset,
            key: None,
            value: Bytes::new(),
            headers: Vec::new(),
            epoch: 0,
            leader_epoch: -1,
            checked_item: None,
            null_headers: Vec::new(),
            null_value: false,
        };
        let (r10, r11, r12, r13) = (at(10), at(11), at(12), at(13));
        let first = batch_id([&r10, &r11, &r13].into_iter());
        // The same batch again (after a crash): the same id, so a receiver drops it.
        assert_eq!(first, batch_id([&r10, &r11, &r13].into_iter()));
        // Another batch with the same first record and size: another id, so a receiver
        // deduplicating on it cannot drop record 12 as seen.
        assert_ne!(first, batch_id([&r10, &r12, &r11].into_iter()));
        assert!(first.starts_with(&r10.webhook_id()) && first.contains("-batch-"));
        // The digest of each record's topic, partition and offset (big-endian), in
        // order: an id a receiver already stored stays the same across versions.
        assert_eq!(first, "orders-0-10-batch-03926ca216ade096");
    }
}
