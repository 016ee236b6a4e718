//! Batched delivery in the dispatcher (a sink with `batch` set): started records are
//! shaped, turned into batch items ([`crate::egress::batch`]) and collected into open
//! batches, one per partition state and per rendered URL and headers (records whose
//! templates render differently never share a request). A record joins with the next
//! waiting records of its lane ([`Partition::take_next`](crate::egress::partition::Partition::take_next))
//! while they fit, so a key's records travel together in offset order and its next
//! batch starts only once all of them finished. A batch is sealed when full, when its
//! `max_wait` is up, or at once on shutdown, then sent as one request (with a ticket,
//! like a single delivery); every record of it ends with the batch's outcome.
//!
//! A batch holds records of one partition only: revoking a partition then abandons
//! exactly its own records, never another partition's lane.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash, Hasher};
use std::time::Instant;

use super::bodies::Bodies;
use super::open_batches::{OpenBatches, Place};
use super::{Deliveries, Dispatcher, Done, Ended, Ready};
use crate::egress::batch::{Item, Open, Rules, Valued};
use crate::egress::delivery::{record_item, Finish, Member};
use crate::egress::memory;
use crate::egress::partition::LaneId;
use crate::egress::record::{Record, TopicPartition};
use crate::egress::request::{Prepared, Refused};

/// What shaping a record gave: `None` when cancelled first; `Ok(None)` filtered out.
/// Inline shaping borrows the sink's fixed URL: it is copied only for a record that
/// opens a batch.
pub(super) type Shaped<'a> = Option<Result<Option<Prepared<'a>>, Refused>>;

/// The dispatcher's batches.
pub(super) struct Batching {
    rules: Rules,
    /// Shaping runs no jq program: records are shaped inline, and a lane's next records
    /// may join (they must be shaped to know whether they render alike).
    inline: bool,
    /// Records being shaped on their own futures (jq programs), and how many may be at
    /// once (`concurrency`): each such shaping runs on a thread of its own.
    shaping: usize,
    max_shaping: usize,
    open: OpenBatches<OpenBatch>,
    /// Seeds the hash of a batch's [`Place`]: its URL and headers come from records.
    places: foldhash::quality::RandomState,
    /// Sealed batches waiting for a ticket, in the order they were sealed.
    sealed: VecDeque<Sealed>,
    /// Shutting down: every batch is sealed and sent at once.
    flushing: bool,
    /// Buffers of bodies that were sent, to seal the next batches into.
    bodies: Bodies,
}

/// A batch being filled.
struct OpenBatch {
    tp: TopicPartition,
    generation: u64,
    /// The URL and headers its records share (the body is the first record's, unused).
    request: Prepared<'static>,
    /// Its records with their items (kept to build a smaller batch of some of them).
    items: Open<Ready>,
}

/// A batch ready to be sent: its request carries the batch body.
struct Sealed {
    request: Prepared<'static>,
    members: Vec<(Ready, Item)>,
}

impl Batching {
    pub(super) fn new(rules: Rules, inline: bool, max_shaping: usize) -> Self {
        Self {
            rules,
            inline,
            shaping: 0,
            max_shaping: max_shaping.max(1),
            open: OpenBatches::default(),
            places: foldhash::quality::RandomState::default(),
            sealed: VecDeque::new(),
            flushing: false,
            bodies: Bodies::default(),
        }
    }

    pub(super) fn has_sealed(&self) -> bool {
        !self.sealed.is_empty()
    }

    /// When the next open batch must be sent.
    pub(super) fn next_due(&self) -> Option<Instant> {
        if self.flushing && !self.open.is_empty() {
            return Some(Instant::now());
        }
        let first = self.open.first()?;
        Some(self.open.get(first).items.due_at(&self.rules))
    }

    /// From now on every batch is sent at once.
    pub(super) fn flush(&mut self) {
        self.flushing = true;
    }

    fn seal(&mut self, i: usize) {
        let o = self.open.take(i);
        self.seal_batch(o);
    }

    fn seal_batch(&mut self, o: OpenBatch) {
        let (body, members) = o.items.seal_into(&self.rules, self.bodies.take());
        let mut request = o.request;
        request.body = Some(self.bodies.share(body));
        self.sealed.push_back(Sealed { request, members });
    }

    /// Seals the batches that are due, first due first.
    fn seal_due(&mut self, now: Instant) {
        while let Some(i) = self.open.first() {
            if !self.flushing && self.open.get(i).items.due_at(&self.rules) > now {
                break;
            }
            self.seal(i);
        }
    }

    /// Where a request of partition state (`tp`, `generation`) goes: requests [`alike`]
    /// of one partition state have the same place.
    fn place(&self, tp: &TopicPartition, generation: u64, request: &Prepared<'_>) -> Place {
        let mut h = self.places.build_hasher();
        (tp, generation, request.url.as_str()).hash(&mut h);
        // A name's values in their order (`alike` tells `x: a, x: b` from `x: b, x: a`),
        // summed over the names, so the same headers added in another order are alike.
        let headers = (request.headers.keys())
            .map(|name| {
                let mut h = self.places.build_hasher();
                name.hash(&mut h);
                for value in request.headers.get_all(name) {
                    value.as_bytes().hash(&mut h);
                }
                h.finish()
            })
            .fold(0u64, u64::wrapping_add);
        headers.hash(&mut h);
        h.finish()
    }

    /// Takes out the unsent records of one partition state, open or sealed.
    fn purge(&mut self, tp: &TopicPartition, generation: u64) -> Vec<(i64, Option<LaneId>)> {
        let ours = |t: &TopicPartition, g: u64| t == tp && g == generation;
        let mut out = Vec::new();
        for o in self.open.take_where(|o| ours(&o.tp, o.generation)) {
            out.extend(o.items.into_keys().map(|m| (m.offset, m.lane)));
        }
        self.sealed.retain_mut(|s| {
            let Some((first, _)) = s.members.first() else {
                return false;
            };
            if !ours(&first.tp, first.generation) {
                return true;
            }
            out.extend(s.members.drain(..).map(|(m, _)| (m.offset, m.lane)));
            false
        });
        out
    }
}

impl Valued for Ready {
    fn value(&self) -> &[u8] {
        &self.record.value
    }
}

impl Member for (Ready, Item) {
    fn record(&self) -> &Record {
        &self.0.record
    }

    fn item(&self) -> &[u8] {
        self.1.bytes(&self.0.record.value)
    }

    type Lane = LaneId;

    fn lane(&self) -> Option<&LaneId> {
        self.0.lane.as_ref()
    }
}

impl Ready {
    pub(super) fn done(self, finish: Finish) -> Done {
        Done {
            bytes: memory::record_bytes(&self.record),
            tp: self.tp,
            generation: self.generation,
            offset: self.offset,
            lane: self.lane,
            finish,
        }
    }
}

/// Whether two requests go to the same place with the same headers.
fn alike(a: &Prepared<'_>, b: &Prepared<'_>) -> bool {
    a.url == b.url && a.headers == b.headers
}

impl Dispatcher {
    /// [`Dispatcher::start_ready`] for a batching sink: every ready record is shaped
    /// (inline, or on its own future when jq programs run) and placed in a batch.
    pub(super) fn collect_ready(&mut self, deliveries: &mut Deliveries) {
        let Some(inline) = self.batching.as_ref().map(|b| b.inline) else {
            return;
        };
        loop {
            if !inline
                && self
                    .batching
                    .as_ref()
                    .is_some_and(|b| b.shaping >= b.max_shaping)
            {
                break; // the rest wait for a shaping to end
            }
            let Some(r) = self.ready.pop_front() else {
                break;
            };
            if inline {
                let destination = self.destination.clone();
                let shaped = destination.shaper().shape(&r.record);
                self.place(r, Some(shaped), deliveries);
            } else {
                if let Some(b) = self.batching.as_mut() {
                    b.shaping += 1;
                }
                let destination = self.destination.clone();
                deliveries.push(Box::pin(async move {
                    let shaped = (destination.shaper())
                        .shape_in_time(&r.record, &r.stops.cancel)
                        .await
                        .map(|res| res.map(|o| o.map(Prepared::into_owned)));
                    Ended::Shaped(Box::new(r), shaped)
                }));
            }
        }
        self.send_sealed(deliveries);
    }

    /// A record's shaping on its own future ended: it is placed, and a waiting record
    /// may be shaped in its stead.
    pub(super) fn shaped(
        &mut self,
        r: Ready,
        shaped: Shaped<'static>,
        deliveries: &mut Deliveries,
    ) {
        if let Some(b) = self.batching.as_mut() {
            b.shaping = b.shaping.saturating_sub(1);
        }
        self.place(r, shaped, deliveries);
        self.collect_ready(deliveries);
    }

    /// Places a shaped record in its batch (joined by its lane's next records when they
    /// may), or ends it without a request.
    pub(super) fn place(&mut self, r: Ready, shaped: Shaped<'_>, deliveries: &mut Deliveries) {
        // Shaped after its partition was revoked or given up: it ends unfinished now
        // rather than waiting in a batch for `max_wait`.
        let live = (self.partitions.get(&r.tp))
            .is_some_and(|p| p.core.generation() == r.generation && !p.core.is_revoked());
        let Some(b) = self.batching.as_mut() else {
            return;
        };
        let request = match shaped.filter(|_| live) {
            // Its partition is gone, or the shaping was cancelled.
            None => {
                deliveries.push(Box::pin(
                    async move { Ended::One(r.done(Finish::Abandoned)) },
                ));
                return;
            }
            Some(Ok(None)) => return self.settle(r, Ok(()), deliveries),
            Some(Err(refused)) => return self.settle(r, Err(refused), deliveries),
            Some(Ok(Some(request))) => request,
        };
        let mut request = request;
        let item = match record_item(&b.rules, &r.record, &mut request.body) {
            Ok(item) => item,
            Err(not_json) => return self.settle(r, Err(not_json.into()), deliveries),
        };
        let place = b.place(&r.tp, r.generation, &request);
        let joins = |o: &OpenBatch| {
            o.tp == r.tp
                && o.generation == r.generation
                && alike(&o.request, &request)
                && o.items.fits(&b.rules, item.bytes(&r.record.value).len())
        };
        let i = match b.open.at(place) {
            Some(i) if joins(b.open.get(i)) => i,
            // None there, or one full, or (a hash collision) another place's: a place
            // holds one batch, and the one displaced is sealed as it is.
            _ => {
                let batch = OpenBatch {
                    tp: r.tp.clone(),
                    generation: r.generation,
                    request: request.into_owned(),
                    items: Open::new(Instant::now()),
                };
                let (i, displaced) = b.open.open(place, batch);
                if let Some(o) = displaced {
                    b.seal_batch(o);
                }
                i
            }
        };
        let (tp, generation, lane) = (r.tp.clone(), r.generation, r.lane);
        let stops = r.stops.clone();
        b.open.get_mut(i).items.push(r, item);
        // The lane's next records join while they render alike and fit: they are sent
        // after it in the same body, in offset order.
        if let (true, Some(lane)) = (b.inline, lane) {
            let shaper = self.destination.shaper();
            while let Some(p) =
                (self.partitions.get_mut(&tp)).filter(|p| p.core.generation() == generation)
            {
                if b.open.get(i).items.is_full(&b.rules) {
                    break;
                }
                let Some((_, next)) = p.core.peek_next(&lane) else {
                    break;
                };
                let Ok(Some(mut next_request)) = shaper.shape(next) else {
                    break;
                };
                if !alike(&b.open.get(i).request, &next_request) {
                    break;
                }
                let Ok(item) = record_item(&b.rules, next, &mut next_request.body) else {
                    break;
                };
                if !(b.open.get(i).items).fits(&b.rules, item.bytes(&next.value).len()) {
                    break;
                }
                let Some((offset, record)) = p.core.take_next(&lane) else {
                    break;
                };
                let joined = Ready {
                    tp: tp.clone(),
                    generation,
                    stops: stops.clone(),
                    offset,
                    lane: Some(lane),
                    record,
                };
                b.open.get_mut(i).items.push(joined, item);
            }
        }
        if b.flushing || b.open.get(i).items.is_full(&b.rules) {
            b.seal(i);
        }
    }

    /// Ends a record without a request: filtered out, or refused (dead-lettered).
    fn settle(&mut self, r: Ready, shaped: Result<(), Refused>, deliveries: &mut Deliveries) {
        let destination = self.destination.clone();
        deliveries.push(Box::pin(async move {
            let finish = destination.settle(&r.record, shaped, &r.stops.cancel).await;
            Ended::One(r.done(finish))
        }));
    }

    /// Seals the due batches and sends what tickets allow.
    pub(super) fn send_due(&mut self, deliveries: &mut Deliveries) {
        if let Some(b) = self.batching.as_mut() {
            b.seal_due(Instant::now());
        }
        self.send_sealed(deliveries);
    }

    /// Sends sealed batches while tickets are free.
    pub(super) fn send_sealed(&mut self, deliveries: &mut Deliveries) {
        let Some(b) = self.batching.as_mut() else {
            return;
        };
        let rules = b.rules;
        while !b.sealed.is_empty() {
            let Some(ticket) = self.destination.ticket() else {
                return;
            };
            let Some(Sealed { request, members }) = b.sealed.pop_front() else {
                return;
            };
            let destination = self.destination.clone();
            deliveries.push(Box::pin(async move {
                // A batch holds records of one partition state: the first's stops are all's.
                let Some(stops) = members.first().map(|(m, _)| m.stops.clone()) else {
                    return Ended::Many(Vec::new());
                };
                let finishes = (destination)
                    .deliver_batch(&members, request, &rules, stops.stop(), Some(ticket))
                    .await;
                Ended::Many(
                    (members.into_iter().zip(finishes))
                        .map(|((m, _), finish)| m.done(finish))
                        .collect(),
                )
            }));
        }
    }

    /// Takes the unsent batched records of one partition state out.
    pub(super) fn purge_batches(
        &mut self,
        tp: &TopicPartition,
        generation: u64,
    ) -> Vec<(i64, Option<LaneId>)> {
        (self.batching.as_mut()).map_or_else(Vec::new, |b| b.purge(tp, generation))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::borrow::Cow;
    use std::time::Duration;

    use axum::http::{HeaderMap, HeaderName, HeaderValue};

    use super::{alike, Batching};
    use crate::egress::batch::{Items, Layout, Rules};
    use crate::egress::record::TopicPartition;
    use crate::egress::request::Prepared;

    /// JSON arrays of up to 10 records and 1 MiB, sent 10 ms after they open.
    pub(in crate::egress::dispatcher) fn rules() -> Rules {
        Rules {
            max_records: 10,
            max_bytes: 1 << 20,
            max_wait: Duration::from_millis(10),
            layout: Layout::JsonArray,
            items: Items::Data,
        }
    }

    fn batching() -> Batching {
        Batching::new(rules(), true, 1)
    }

    /// A request to `url` with `headers` added in their order (`append`, as forwarded
    /// record headers are).
    fn request(url: &str, headers: &[(&'static str, &'static str)]) -> Prepared<'static> {
        let mut map = HeaderMap::new();
        for &(name, value) in headers {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        Prepared {
            url: Cow::Owned(url.parse().unwrap()),
            headers: map,
            body: None,
            content_type: None,
        }
    }

    #[test]
    fn requests_have_one_place_exactly_when_they_may_share_a_batch() {
        let b = batching();
        let tp = |partition| TopicPartition {
            topic: "t".into(),
            partition,
        };
        let (x, y) = (("x-a", "1"), ("x-b", "2"));
        let (x2, x3) = (("x-a", "2"), ("x-a", "3"));
        let cases = [
            // Alike: the same headers added in another order.
            (
                request("http://h/a", &[x, y]),
                request("http://h/a", &[y, x]),
                true,
            ),
            (
                request("http://h/a", &[x, x2]),
                request("http://h/a", &[x, x2]),
                true,
            ),
            // Not alike: a name's values in another order, another value, another URL.
            (
                request("http://h/a", &[x2, x3]),
                request("http://h/a", &[x3, x2]),
                false,
            ),
            (
                request("http://h/a", &[x]),
                request("http://h/a", &[x2]),
                false,
            ),
            (
                request("http://h/a", &[x]),
                request("http://h/b", &[x]),
                false,
            ),
        ];
        for (one, other, same) in &cases {
            assert_eq!(alike(one, other), *same);
            let places = (b.place(&tp(0), 1, one), b.place(&tp(0), 1, other));
            assert_eq!(places.0 == places.1, *same, "{:?}", one.headers);
        }
        let r = &cases[0].0;
        assert_ne!(
            b.place(&tp(0), 1, r),
            b.place(&tp(1), 1, r),
            "another partition"
        );
        assert_ne!(
            b.place(&tp(0), 1, r),
            b.place(&tp(0), 2, r),
            "another assignment"
        );
    }
}
