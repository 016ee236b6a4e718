//! Batched delivery: several records of a sink in one request. Pure (no tokio, rdkafka,
//! reqwest or metrics): what a record's part of a body is, when a batch is full or due,
//! the body it makes, and which records a receiver's answer finishes.
//!
//! The rules:
//! * A batch holds at most `max_records` items and `max_bytes` of body (one item larger
//!   than that goes alone: it is no larger than its own request would be), and is sent
//!   `max_wait` after its first item joined at the latest.
//! * Items are JSON: a `json-array` body is `[item,item,…]`, an `ndjson` body one item
//!   per line. An item is the record's body as is (`items = "data"`) or wrapped with what
//!   a receiver needs to tell records apart (`items = "envelope"`: its `webhook-id`,
//!   topic, partition and offset). A record whose body is not JSON cannot be an item: it
//!   is refused with reason `batch`, error `not-json` (dead-lettered: retrying cannot
//!   make it JSON; a `transform` can).
//! * Key order across batches is the partition core's ([`super::partition`]): records of
//!   one lane join a batch in offset order, and the lane's next batch starts only once
//!   every record of this one finished.
//! * Outcome: all-or-nothing by default, from the response status. A receiver may answer
//!   per item (`{"results":[{"status":200},…]}`, one entry per item, in order); then an
//!   item finishes only when it and every earlier item of its lane in the batch
//!   succeeded — a later record of a key is never finished (delivered or dead-lettered)
//!   ahead of an earlier one that must be sent again.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;

/// How a batch's body is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[item,item,…]`, `Content-Type: application/json`.
    JsonArray,
    /// One item per line, each ending in `\n`, `Content-Type: application/x-ndjson`.
    Ndjson,
}

impl Layout {
    pub fn content_type(self) -> &'static str {
        match self {
            Layout::JsonArray => "application/json",
            Layout::Ndjson => "application/x-ndjson",
        }
    }
}

/// What one item of a batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Items {
    /// The record's body as it would be sent alone.
    Data,
    /// `{"webhook_id":…,"topic":…,"partition":…,"offset":…,"data":<body>}`.
    Envelope,
}

/// A sink's `batch` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub max_records: usize,
    pub max_bytes: usize,
    pub max_wait: Duration,
    pub layout: Layout,
    pub items: Items,
}

/// Where an item came from, for its envelope.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub webhook_id: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// Why a record cannot be an item: the dead letter's reason is `batch`, this its error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotJson;

impl NotJson {
    pub const REASON: &'static str = "batch";
    pub const ERROR: &'static str = "not-json";
}

/// Whether `body` can be an item: one JSON document, in UTF-8 throughout.
pub fn can_be_item(body: &[u8]) -> bool {
    // The document check reads bytes: UTF-8 is checked here, or a Go producer's invalid
    // bytes would reach a strict receiver and fail the batch.
    simdutf8::basic::from_utf8(body).is_ok() && document::is_one_document(body)
}

/// A record's part of a batch body: JSON on one line. `None`: `body` is that already,
/// and is its item as it is (shared, not copied). `known_json`: [`can_be_item`] already
/// said yes to `body` (the poll thread checks a record's value while it is still in
/// cache).
pub fn item(
    rules: &Rules,
    origin: Origin<'_>,
    body: &[u8],
    known_json: bool,
) -> Result<Option<Bytes>, NotJson> {
    debug_assert!(
        !known_json || can_be_item(body),
        "a body known to be JSON is"
    );
    if !known_json && !can_be_item(body) {
        return Err(NotJson);
    }
    // JSON allows raw line breaks only as whitespace between tokens (inside strings they
    // are escaped), so a line-per-item body turns them into spaces: nothing else of the
    // record changes (re-serializing would sort keys and round large numbers).
    let spaced = (rules.layout == Layout::Ndjson
        && body.iter().any(|b| matches!(b, b'\n' | b'\r')))
    .then(|| {
        (body.iter())
            .map(|&b| if matches!(b, b'\n' | b'\r') { b' ' } else { b })
            .collect::<Vec<u8>>()
    });
    Ok(match rules.items {
        Items::Data => spaced.map(Bytes::from),
        Items::Envelope => Some(envelope(origin, spaced.as_deref().unwrap_or(body))),
    })
}

/// One item of a batch being filled or sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// Its member's value ([`Valued::value`]) as it is: never copied or cloned for the
    /// batch (a clone of a record's value would allocate a share count per record).
    Value,
    /// Bytes made for the batch (an envelope, a body on one line) or given to it (a
    /// transform's output).
    Made(Bytes),
}

impl Item {
    /// Its bytes, `value` being its member's value.
    pub fn bytes<'a>(&'a self, value: &'a [u8]) -> &'a [u8] {
        match self {
            Item::Value => value,
            Item::Made(b) => b,
        }
    }
}

impl From<Bytes> for Item {
    fn from(b: Bytes) -> Self {
        Item::Made(b)
    }
}

/// A member of a batch: what its [`Item::Value`] is.
pub trait Valued {
    fn value(&self) -> &[u8];
}

impl Valued for &[u8] {
    fn value(&self) -> &[u8] {
        self
    }
}

fn envelope(origin: Origin<'_>, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + origin.topic.len() + 96);
    out.put_slice(b"{\"webhook_id\":");
    put_json_string(&mut out, origin.webhook_id);
    out.put_slice(b",\"topic\":");
    put_json_string(&mut out, origin.topic);
    out.put_slice(
        format!(
            ",\"partition\":{},\"offset\":{}",
            origin.partition, origin.offset
        )
        .as_bytes(),
    );
    out.put_slice(b",\"data\":");
    out.put_slice(data.trim_ascii());
    out.put_u8(b'}');
    out.freeze()
}

fn put_json_string(out: &mut BytesMut, s: &str) {
    // Serializing a &str cannot fail.
    let quoted = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
    out.put_slice(quoted.as_bytes());
}

/// A batch being filled: its items in the order they joined.
#[derive(Debug)]
pub struct Open<K> {
    items: Vec<(K, Item)>,
    bytes: usize,
    since: Instant,
}

impl<K> Open<K> {
    /// A batch whose first item joins at `now`. Its list grows as items join: a sink
    /// may hold thousands of batches of one record (a URL with `{key}` in it), and room
    /// reserved for `max_records` in each would be memory no budget counts.
    pub fn new(now: Instant) -> Self {
        Self {
            items: Vec::new(),
            bytes: 0,
            since: now,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether an item of `len` bytes may join without going past the limits. An empty
    /// batch takes any item, however large.
    pub fn fits(&self, rules: &Rules, len: usize) -> bool {
        self.items.is_empty()
            || (self.items.len() < rules.max_records
                && self.bytes + 1 + len + framing(rules.layout) <= rules.max_bytes)
    }

    /// Adds an item (check [`Open::fits`] first).
    pub fn push(&mut self, key: K, item: impl Into<Item>)
    where
        K: Valued,
    {
        let item = item.into();
        self.bytes += item.bytes(key.value()).len() + 1;
        self.items.push((key, item));
    }

    /// No more may join: the record count is reached.
    pub fn is_full(&self, rules: &Rules) -> bool {
        self.items.len() >= rules.max_records
    }

    /// When it must be sent, full or not.
    pub fn due_at(&self, rules: &Rules) -> Instant {
        self.since + rules.max_wait
    }

    /// The items' keys, in item order, without building a body (a batch given up).
    pub fn into_keys(self) -> impl Iterator<Item = K> {
        self.items.into_iter().map(|(key, _)| key)
    }

    /// The request body, and the items with their keys in item order.
    pub fn seal(self, rules: &Rules) -> (Bytes, Vec<(K, Item)>)
    where
        K: Valued,
    {
        let (body, items) = self.seal_into(rules, Vec::new());
        (Bytes::from(body), items)
    }

    /// [`Open::seal`] into `body` (cleared first), so a buffer of an earlier batch is
    /// written again instead of a fresh one being allocated and faulted in. The items
    /// come back in the list they were collected in: nothing is moved to another.
    pub fn seal_into(self, rules: &Rules, mut body: Vec<u8>) -> (Vec<u8>, Vec<(K, Item)>)
    where
        K: Valued,
    {
        body.clear();
        let counted = self.bytes + framing(rules.layout);
        let empty = self.items.is_empty();
        body.reserve(counted);
        if rules.layout == Layout::JsonArray {
            body.push(b'[');
        }
        for (i, (key, item)) in self.items.iter().enumerate() {
            match rules.layout {
                Layout::JsonArray if i > 0 => body.push(b','),
                _ => {}
            }
            body.extend_from_slice(item.bytes(key.value()));
            if rules.layout == Layout::Ndjson {
                body.push(b'\n');
            }
        }
        if rules.layout == Layout::JsonArray {
            body.push(b']');
        }
        // `fits` keeps `max_bytes` by this count: the body is exactly as long.
        debug_assert!(
            empty || body.len() == counted,
            "a body is as long as counted"
        );
        (body, self.items)
    }
}

/// Bytes a layout adds to a body beyond each item and one separator byte per item (what
/// [`Open::push`] counts): a JSON array's two brackets, less the comma its first item
/// does not have; an NDJSON body's newlines are its separators.
fn framing(layout: Layout) -> usize {
    match layout {
        Layout::JsonArray => 1,
        Layout::Ndjson => 0,
    }
}

/// A JSON object's `results` member, if it has one (any other member is ignored).
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow, default)]
    results: Option<&'a serde_json::value::RawValue>,
}

#[derive(Deserialize)]
struct ItemAnswer {
    status: u16,
}

/// What a receiver's 2xx body says about a batch's items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchAnswer {
    /// Not an answer per item (no body, not a JSON object, no `results` list of
    /// statuses: a search or bulk API's own non-empty `results` too): the 2xx finishes
    /// every item.
    Whole,
    /// `{"results":[{"status":…},…]}` with exactly one entry per item, in order.
    PerItem(Vec<u16>),
    /// A `results` list of statuses that is not one status per item (an entry missing,
    /// a status that is not a number from 0 to 65535, …), or an empty one: which items
    /// the receiver took cannot be known, so the batch is sent again, never taken as
    /// delivered.
    Malformed,
}

/// The UTF-8 byte order mark some servers put before a JSON body.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads a receiver's 2xx body to a batch of `items`.
pub fn answer(body: &[u8], items: usize) -> BatchAnswer {
    let body = body.strip_prefix(BOM).unwrap_or(body);
    let results = match serde_json::from_slice::<Answer<'_>>(body) {
        Ok(Answer {
            results: Some(results),
        }) => results,
        Ok(_) => return BatchAnswer::Whole,
        // Not JSON, yet an object whose results carry statuses (cut short by the
        // receiver itself): it may have answered per item.
        Err(_) if may_answer_per_item(body) => return BatchAnswer::Malformed,
        Err(_) => return BatchAnswer::Whole,
    };
    if let Ok(r) = serde_json::from_str::<Vec<ItemAnswer>>(results.get()) {
        if r.len() == items {
            return BatchAnswer::PerItem(r.iter().map(|a| a.status).collect());
        }
    }
    // A list of objects of which one names a status, or none at all for the items
    // sent: an answer per item gone wrong.
    let entries = serde_json::from_str::<Vec<serde_json::Value>>(results.get());
    let names_status = |e: &serde_json::Value| e.get("status").is_some();
    match entries {
        Ok(entries) if entries.iter().any(names_status) => BatchAnswer::Malformed,
        Ok(entries) if entries.is_empty() => BatchAnswer::Malformed,
        _ => BatchAnswer::Whole,
    }
}

/// Whether a body that is not JSON starts as an answer per item: an object naming
/// `results` and a `status`.
pub fn may_answer_per_item(body: &[u8]) -> bool {
    let body = body.strip_prefix(BOM).unwrap_or(body);
    let has = |name: &[u8]| body.windows(name.len()).any(|w| w == name);
    body.trim_ascii_start().starts_with(b"{") && has(b"\"results\"") && has(b"\"status\"")
}

/// Whether a JSON body names `results` as a member of its top-level object, read in
/// pieces as it streams (an answer too long to keep is scanned to its end): strings
/// and nesting are followed, so an echoed item's own `results` does not count.
#[derive(Debug, Default)]
pub struct TopLevelResults {
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// The string being read, while it is at the top level and could be the name.
    name: Vec<u8>,
    could_be: bool,
    /// A top-level string equal to `results` just ended: a `:` makes it the name.
    named: bool,
    found: bool,
}

impl TopLevelResults {
    pub fn feed(&mut self, bytes: &[u8]) {
        const NAME: &[u8] = b"results";
        for &b in bytes {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                    self.could_be = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                    self.named = self.could_be && self.name == NAME;
                } else if self.could_be && self.name.len() < NAME.len() {
                    self.name.push(b);
                } else {
                    self.could_be = false;
                }
                continue;
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    self.could_be = self.depth == 1;
                    self.name.clear();
                    self.named = false;
                }
                b'{' | b'[' => {
                    self.depth = self.depth.saturating_add(1);
                    self.named = false;
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    self.named = false;
                }
                b':' => {
                    self.found |= self.named;
                    self.named = false;
                }
                b' ' | b'\t' | b'\n' | b'\r' => {}
                _ => self.named = false,
            }
        }
    }

    pub fn found(&self) -> bool {
        self.found
    }
}

/// What a per-item answer means for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Finished: it and every earlier item of its lane succeeded.
    Delivered,
    /// It failed with this status: the sink's status policy decides (retry or DLQ).
    Failed(u16),
    /// An earlier item of its lane did not succeed: whatever its own answer, it is sent
    /// again after that one, so the receiver sees its lane in order again.
    Behind,
}

/// Each item's outcome from per-item `statuses`, items in batch order with their lanes
/// (`None`: no order to keep).
pub fn item_outcomes<L: PartialEq>(statuses: &[u16], lanes: &[Option<L>]) -> Vec<ItemOutcome> {
    let mut out: Vec<ItemOutcome> = Vec::with_capacity(statuses.len());
    for (i, (&status, lane)) in statuses.iter().zip(lanes).enumerate() {
        let earlier_unfinished = lane.as_ref().is_some_and(|l| {
            (0..i).any(|j| lanes[j].as_ref() == Some(l) && out[j] != ItemOutcome::Delivered)
        });
        // Behind an unfinished one of its lane, whatever its own answer: its failure may
        // be because of the earlier one ("update" before "create"), and sent alone it
        // would only have gone after it.
        out.push(if earlier_unfinished {
            ItemOutcome::Behind
        } else if !(200..300).contains(&status) {
            ItemOutcome::Failed(status)
        } else {
            ItemOutcome::Delivered
        });
    }
    out
}

mod document;

#[cfg(test)]
mod tests;
