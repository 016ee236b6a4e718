//! `hookbridge dlq list` and `dlq show`: what a sink dead-lettered and why, without `kcat`.
//!
//! Both read the DLQ topic with a consumer that belongs to no group (partitions assigned,
//! nothing committed), so inspecting never moves a sink's or a redrive's offsets. `list`
//! reads every partition up to where it ended when the command started and keeps only
//! this sink's records, exactly as `dlq redrive` selects them (the shared reader in
//! [`super::dlq_read`] owns both rules). Every byte taken from a record is escaped before
//! it is printed ([`super::escape`]), and the sink's own secrets are masked
//! ([`crate::egress::redact`]).

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::SystemTime;

use rdkafka::message::{BorrowedMessage, Message};
use serde::Serialize;

use super::dlq_read::{self, Entry, Reader};
use super::escape::{escape, escape_str, Lines};
use super::OpsError;
use crate::config::load::Loaded;
use crate::connectors::Connectors;
use crate::egress::dlq::REASONS;
use crate::egress::record::{Record, Topic};
use crate::egress::redact::Redact;
use crate::kafka::envelope::DeadLetterEnvelope;

/// Bytes of the destination's response shown per listed record.
const LIST_RESPONSE_BYTES: usize = 120;

/// A destination's answer as a one-line field: the sink's secrets masked, escaped, cut
/// to [`LIST_RESPONSE_BYTES`]. The DLQ listing and the console's recent failures both
/// show answers this way.
fn response_line(redact: &Redact, raw: &bytes::Bytes) -> String {
    escape(&redact.bytes(raw), LIST_RESPONSE_BYTES, Lines::Escaped).0
}

/// The answers of sink `connector`'s recent failures as [`Summary::response`] shows a
/// dead letter's: masked, escaped, cut. Empty strings for an unknown sink.
pub fn response_lines(
    connectors: &Connectors,
    connector: &str,
    answers: &[&bytes::Bytes],
) -> Vec<String> {
    let Ok(sink) = super::sink(connectors, connector) else {
        return vec![String::new(); answers.len()];
    };
    let redact = Redact::of(sink);
    answers.iter().map(|a| response_line(&redact, a)).collect()
}

/// Which dead letters to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Dead-lettered at or after this time.
    pub since: Option<SystemTime>,
    /// One of [`REASONS`] ([`parse_reason`]).
    pub reason: Option<String>,
    pub status: Option<StatusFilter>,
    /// Only among the last this many records of each DLQ partition (the console's
    /// bound on one read); `None` reads every partition from its start.
    pub last_per_partition: Option<u64>,
    /// Only dead letters listed after this one, newest first (the console's next page).
    pub older_than: Option<PageKey>,
}

/// Where a dead letter is in a listing, newest first: when it was dead-lettered, then
/// where it is in the DLQ. Written `TIME_MS.PARTITION.OFFSET` in a page's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PageKey {
    pub time_ms: i64,
    pub dlq_partition: i32,
    pub dlq_offset: i64,
}

impl std::fmt::Display for PageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}.{}",
            self.time_ms, self.dlq_partition, self.dlq_offset
        )
    }
}

impl std::str::FromStr for PageKey {
    type Err = OpsError;

    fn from_str(text: &str) -> Result<Self, OpsError> {
        let bad = || {
            OpsError::Invalid(format!(
                "{text:?} is not a place in a listing (TIME_MS.PARTITION.OFFSET)"
            ))
        };
        let mut parts = text.split('.');
        let mut next = || parts.next().ok_or_else(bad);
        let key = PageKey {
            time_ms: next()?.parse().map_err(|_| bad())?,
            dlq_partition: next()?.parse().map_err(|_| bad())?,
            dlq_offset: next()?.parse().map_err(|_| bad())?,
        };
        match parts.next() {
            Some(_) => Err(bad()),
            None => Ok(key),
        }
    }
}

impl Filter {
    fn admits(&self, s: &Summary) -> bool {
        self.since
            .is_none_or(|t| s.time_ms >= crate::clock::millis_of(t))
            && self.reason.as_deref().is_none_or(|r| s.reason == r)
            && self.status.is_none_or(|f| f.admits(s.status))
            && self.older_than.is_none_or(|k| s.page_key() < k)
    }
}

/// `--status`: one HTTP status (`400`), a class (`4xx`), or `none` (no HTTP answer:
/// timeouts, refused connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Exact(u16),
    Class(u16),
    NoAnswer,
}

impl StatusFilter {
    fn admits(self, status: Option<u16>) -> bool {
        match (self, status) {
            (StatusFilter::Exact(want), Some(s)) => s == want,
            (StatusFilter::Class(c), Some(s)) => s / 100 == c,
            (StatusFilter::NoAnswer, None) => true,
            _ => false,
        }
    }
}

/// A reason to list by: one of those a dead letter carries ([`REASONS`]), in any case;
/// the error names `option` and lists them, where a misspelt one would match nothing.
pub fn parse_reason(option: &str, text: &str) -> Result<String, OpsError> {
    let t = text.trim().to_ascii_lowercase();
    if REASONS.contains(&t.as_str()) {
        return Ok(t);
    }
    Err(OpsError::Invalid(format!(
        "{option} {text:?}: a dead letter's reason is one of {}",
        REASONS.join(", ")
    )))
}

impl FromStr for StatusFilter {
    type Err = OpsError;

    fn from_str(text: &str) -> Result<Self, OpsError> {
        let t = text.trim().to_ascii_lowercase();
        let bad = || {
            OpsError::Invalid(format!(
                "--status {text:?}: expected an HTTP status (400), a class (4xx) or none"
            ))
        };
        if t == "none" {
            return Ok(StatusFilter::NoAnswer);
        }
        if let Some(class) = t.strip_suffix("xx") {
            return match class.parse::<u16>() {
                Ok(c @ 1..=5) => Ok(StatusFilter::Class(c)),
                _ => Err(bad()),
            };
        }
        match t.parse::<u16>() {
            Ok(s @ 100..=599) => Ok(StatusFilter::Exact(s)),
            _ => Err(bad()),
        }
    }
}

/// One dead letter as listed: where it is, where it came from and why it failed.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Where the dead letter is: `dlq show --at <dlq_partition>:<dlq_offset>`.
    pub dlq_partition: i32,
    pub dlq_offset: i64,
    /// When it was dead-lettered (RFC 3339).
    pub time: String,
    #[serde(skip)]
    pub time_ms: i64,
    /// The original record.
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
    pub error: String,
    pub status: Option<u16>,
    pub attempts: u32,
    /// The start of the destination's answer, escaped.
    pub response: String,
}

impl Summary {
    /// Where the record came from is the envelope's (the same place [`Entry::read`]
    /// gives the record).
    fn new(msg: &BorrowedMessage<'_>, env: &DeadLetterEnvelope, redact: &Redact) -> Self {
        let time_ms = dlq_time_ms(msg, env);
        Summary {
            dlq_partition: msg.partition(),
            dlq_offset: msg.offset(),
            time: rfc3339_ms(time_ms),
            time_ms,
            topic: env.origin.topic.clone(),
            partition: env.origin.partition,
            offset: env.origin.offset,
            // Escaped here, so every form of a summary (text, `--json`, the console)
            // carries the same safe text: anyone who can write to the DLQ topic writes
            // these headers.
            reason: shown(&env.reason),
            error: shown(&env.error),
            status: env.status,
            attempts: env.attempts,
            response: response_line(redact, &env.response),
        }
    }

    /// `P:OFFSET` in the DLQ topic, what `dlq show --at` takes.
    pub fn at(&self) -> String {
        format!("{}:{}", self.dlq_partition, self.dlq_offset)
    }

    /// Where it is in a listing.
    pub fn page_key(&self) -> PageKey {
        PageKey {
            time_ms: self.time_ms,
            dlq_partition: self.dlq_partition,
            dlq_offset: self.dlq_offset,
        }
    }
}

/// What `dlq list` found.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub connector: String,
    pub dlq: String,
    /// This sink's dead letters that pass the filter.
    pub matched: usize,
    /// Records of other sinks sharing the topic, not listed.
    pub other_sinks: usize,
    /// Records without a readable dead-letter envelope, not listed.
    pub unreadable: usize,
    /// Only the last this many records of each partition were read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_per_partition: Option<u64>,
    /// The newest `limit` matches, oldest first.
    pub records: Vec<Summary>,
}

/// Lists the newest `limit` dead letters of sink `connector` that pass `filter`.
/// Blocking: it polls Kafka.
pub fn list(
    loaded: &Loaded,
    connectors: &Connectors,
    connector: &str,
    filter: &Filter,
    limit: usize,
) -> Result<Listing, OpsError> {
    let dlq = dlq_topic(connectors, connector)?;
    let redact = Redact::of(super::sink(connectors, connector)?);
    let consumer = dlq_read::groupless_consumer(loaded, &[])?;
    let mut reader = Reader::at_start(&consumer, &dlq)?;
    dlq_read::assign_tail(&consumer, &reader, filter.last_per_partition)?;
    let mut listing = Listing {
        connector: connector.to_owned(),
        dlq: dlq.clone(),
        matched: 0,
        other_sinks: 0,
        unreadable: 0,
        last_per_partition: filter.last_per_partition,
        records: Vec::new(),
    };
    let mut newest = Newest::new(limit);
    while let Some(msg) = reader.next(&consumer)? {
        match Entry::read(&msg, connector) {
            Entry::Mine(mine) => {
                let s = Summary::new(&msg, &mine.1, &redact);
                if filter.admits(&s) {
                    listing.matched += 1;
                    newest.push(s);
                }
            }
            Entry::Unplaced(env) => {
                let s = Summary::new(&msg, &env, &redact);
                if filter.admits(&s) {
                    listing.matched += 1;
                    newest.push(s);
                }
            }
            Entry::OtherSink => listing.other_sinks += 1,
            Entry::Unreadable(_) => listing.unreadable += 1,
        }
    }
    listing.records = newest.into_sorted();
    Ok(listing)
}

/// Keeps the newest `limit` summaries in bounded memory, however long the DLQ.
struct Newest {
    limit: usize,
    kept: Vec<Summary>,
}

impl Newest {
    fn new(limit: usize) -> Self {
        Newest {
            limit,
            kept: Vec::new(),
        }
    }

    fn push(&mut self, s: Summary) {
        self.kept.push(s);
        if self.kept.len() >= self.limit.saturating_mul(2).max(64) {
            self.trim();
        }
    }

    fn trim(&mut self) {
        self.kept.sort_by_key(Summary::page_key);
        let extra = self.kept.len().saturating_sub(self.limit);
        self.kept.drain(..extra);
    }

    fn into_sorted(mut self) -> Vec<Summary> {
        self.trim();
        self.kept
    }
}

impl Listing {
    /// The table `dlq list` prints.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<24} {:<10} {:<32} {:<10} {:<6} {:>8}  RESPONSE",
            "TIME", "AT", "ORIGIN", "REASON", "STATUS", "ATTEMPTS"
        );
        for s in &self.records {
            let origin = format!("{} [{}] @{}", escape_str(&s.topic), s.partition, s.offset);
            let status = s.status.map_or_else(|| s.error.clone(), |c| c.to_string());
            let _ = writeln!(
                out,
                "{:<24} {:<10} {:<32} {:<10} {:<6} {:>8}  {}",
                s.time,
                s.at(),
                origin,
                escape_str(&s.reason),
                escape_str(&status),
                s.attempts,
                s.response
            );
        }
        let _ = writeln!(
            out,
            "{} of {} matching dead letter(s) of sink {:?} in {} shown, newest last; other sinks' records: {}; unreadable: {}",
            self.records.len(),
            self.matched,
            self.connector,
            self.dlq,
            self.other_sinks,
            self.unreadable
        );
        out
    }
}

/// `--at P:OFFSET`: a record's place in the DLQ topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub partition: i32,
    pub offset: i64,
}

impl FromStr for At {
    type Err = OpsError;

    fn from_str(text: &str) -> Result<Self, OpsError> {
        let bad = || {
            OpsError::Invalid(format!(
                "--at {text:?}: expected PARTITION:OFFSET in the dlq topic, such as 0:42 (dlq list shows it)"
            ))
        };
        let (p, o) = text.trim().split_once(':').ok_or_else(bad)?;
        Ok(At {
            partition: p.parse().ok().filter(|p| *p >= 0).ok_or_else(bad)?,
            offset: o.parse().ok().filter(|o| *o >= 0).ok_or_else(bad)?,
        })
    }
}

/// One dead letter in full: every header, the key and the start of the body, escaped.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    pub dlq: String,
    pub dlq_partition: i32,
    pub dlq_offset: i64,
    pub time: String,
    /// The dead-letter envelope; `None` when the record has no readable one.
    pub summary: Option<Summary>,
    /// Every header of the dead-letter record, in order, values escaped (`None`: null,
    /// as a producer may write one).
    pub headers: Vec<(String, Option<String>)>,
    pub key: Option<String>,
    /// Size of the body in bytes.
    pub body_bytes: usize,
    /// The first `preview` bytes of the body, escaped.
    pub body: String,
    /// The body is longer than the preview.
    pub body_truncated: bool,
}

/// Reads the dead letter at `at` in sink `connector`'s DLQ. A record that is not there, or
/// is another sink's, is [`OpsError::NotFound`]. Blocking: it polls Kafka.
pub fn show(
    loaded: &Loaded,
    connectors: &Connectors,
    connector: &str,
    at: At,
    preview: usize,
) -> Result<Shown, OpsError> {
    let dlq = dlq_topic(connectors, connector)?;
    let redact = Redact::of(super::sink(connectors, connector)?);
    let consumer = dlq_read::groupless_consumer(loaded, dlq_read::READ_ONE)?;
    let msg = dlq_read::read_one(&consumer, &dlq, at)?;
    let (raw, _) = Record::from_message(&msg, Topic::new(msg.topic()));
    let summary = match Entry::read(&msg, connector) {
        Entry::Mine(mine) => Some(Summary::new(&msg, &mine.1, &redact)),
        Entry::Unplaced(env) => Some(Summary::new(&msg, &env, &redact)),
        Entry::OtherSink => {
            return Err(dlq_read::not_found(
                &dlq,
                at,
                &format!(
                    "the record there was dead-lettered by another sink ({})",
                    escape_str(crate::kafka::envelope::connector(&raw.headers).unwrap_or("?"))
                ),
            ))
        }
        Entry::Unreadable(_) => None,
    };
    let (body, body_truncated) = escape(&redact.bytes(&raw.value), preview, Lines::Kept);
    Ok(Shown {
        dlq: dlq.clone(),
        dlq_partition: at.partition,
        dlq_offset: at.offset,
        time: rfc3339_ms(msg.timestamp().to_millis().unwrap_or(0)),
        summary,
        headers: (raw.headers.iter().zip(raw.headers_as_produced()))
            .map(|((k, v), (_, produced))| {
                let v = produced.map(|_| escape(&redact.bytes(v), usize::MAX, Lines::Escaped).0);
                (escape_str(k), v)
            })
            .collect(),
        key: raw
            .key
            .as_ref()
            .map(|k| escape(&redact.bytes(k), usize::MAX, Lines::Escaped).0),
        body_bytes: raw.value.len(),
        body,
        body_truncated,
    })
}

impl Shown {
    /// What `dlq show` prints.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "dead letter {}:{} in {} (written {})",
            self.dlq_partition, self.dlq_offset, self.dlq, self.time
        );
        match &self.summary {
            Some(s) => {
                let status = s
                    .status
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into());
                let _ = writeln!(
                    out,
                    "origin:   {} [{}] @{}\nreason:   {} ({}), status {status}, {} attempt(s)\nresponse: {}",
                    escape_str(&s.topic),
                    s.partition,
                    s.offset,
                    escape_str(&s.reason),
                    escape_str(&s.error),
                    s.attempts,
                    s.response
                );
            }
            None => {
                let _ = writeln!(out, "not a hookbridge dead letter: no readable envelope");
            }
        }
        let _ = writeln!(out, "key:      {}", self.key.as_deref().unwrap_or("(none)"));
        let _ = writeln!(out, "headers:");
        for (k, v) in &self.headers {
            let _ = writeln!(out, "  {k}: {}", v.as_deref().unwrap_or("(null)"));
        }
        let cut = if self.body_truncated {
            ", preview cut"
        } else {
            ""
        };
        let _ = writeln!(out, "body ({} bytes{cut}):\n{}", self.body_bytes, self.body);
        out
    }
}

/// The DLQ topic of sink `connector`.
pub(crate) fn dlq_topic(connectors: &Connectors, connector: &str) -> Result<String, OpsError> {
    super::sink(connectors, connector)?
        .dlq_topic
        .clone()
        .ok_or_else(|| OpsError::NoDlq(connector.to_owned()))
}

/// When a record was dead-lettered: its broker timestamp, else the envelope's last attempt.
fn dlq_time_ms(msg: &BorrowedMessage<'_>, env: &DeadLetterEnvelope) -> i64 {
    msg.timestamp()
        .to_millis()
        .unwrap_or_else(|| crate::clock::millis_of(env.last_attempt))
}

/// Characters of a dead letter's reason or error a summary keeps: hookbridge writes a
/// word or two; a hand-written header of megabytes would fill every listing line and
/// page that shows it (`dlq show` prints the headers whole).
const SUMMARY_FIELD: usize = 256;

/// A dead letter's reason or error as every listing and report line shows it: escaped
/// (anyone who may write to the DLQ topic writes these headers) and cut to
/// [`SUMMARY_FIELD`] characters.
pub(crate) fn shown(text: &str) -> String {
    short(escape_str(text))
}

/// `text` up to [`SUMMARY_FIELD`] characters, saying how much more there was.
fn short(text: String) -> String {
    match text.char_indices().nth(SUMMARY_FIELD) {
        None => text,
        Some((end, _)) => format!("{}… ({} more bytes)", &text[..end], text.len() - end),
    }
}

/// A record's time as RFC 3339; one RFC 3339 cannot hold (a producer may set any
/// timestamp) as the milliseconds it is.
fn rfc3339_ms(ms: i64) -> String {
    crate::clock::rfc3339_millis(crate::clock::at_millis(ms))
        .unwrap_or_else(|| format!("{ms} ms since 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_keeps_the_start_of_a_long_reason_or_error() {
        assert_eq!(short("permanent".into()), "permanent");
        let long = "é".repeat(SUMMARY_FIELD + 3);
        let cut = short(long.clone());
        assert!(cut.starts_with(&"é".repeat(SUMMARY_FIELD)));
        assert!(cut.ends_with("… (6 more bytes)"), "{cut}");
        assert_eq!(short("é".repeat(SUMMARY_FIELD)), "é".repeat(SUMMARY_FIELD));
    }

    #[test]
    fn a_reason_is_one_a_dead_letter_carries_or_is_refused_with_the_list() {
        for r in REASONS {
            assert_eq!(parse_reason("--reason", r).unwrap(), r);
        }
        assert_eq!(
            parse_reason("--reason", " Exhausted ").unwrap(),
            "exhausted"
        );
        assert_eq!(
            REASONS,
            [
                "permanent",
                "exhausted",
                "template",
                "filter",
                "transform",
                "tombstone",
                "batch"
            ]
        );
        for bad in ["permanant", "4xx", "", "filtered"] {
            let e = parse_reason("reason", bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("reason {bad:?}:")), "{e}");
            assert!(e.contains("permanent, exhausted, template"), "{e}");
        }
    }

    #[test]
    fn status_and_at_parse_or_say_what_is_expected() {
        assert_eq!(
            "400".parse::<StatusFilter>().ok(),
            Some(StatusFilter::Exact(400))
        );
        assert_eq!(
            "5XX".parse::<StatusFilter>().ok(),
            Some(StatusFilter::Class(5))
        );
        assert_eq!(
            "none".parse::<StatusFilter>().ok(),
            Some(StatusFilter::NoAnswer)
        );
        for bad in ["9xx", "42", "abc", ""] {
            let e = bad.parse::<StatusFilter>().unwrap_err().to_string();
            assert!(e.contains("expected an HTTP status"), "{e}");
        }
        assert!(StatusFilter::Class(4).admits(Some(404)));
        assert!(!StatusFilter::Class(4).admits(None));
        assert!(StatusFilter::NoAnswer.admits(None));

        assert_eq!(
            "2:17".parse::<At>().ok(),
            Some(At {
                partition: 2,
                offset: 17
            })
        );
        for bad in ["17", "a:1", "1:-1", "-1:3"] {
            let e = bad.parse::<At>().unwrap_err().to_string();
            assert!(e.contains("PARTITION:OFFSET"), "{e}");
        }
    }

    fn summary(time_ms: i64, offset: i64) -> Summary {
        Summary {
            dlq_partition: 0,
            dlq_offset: offset,
            time: rfc3339_ms(time_ms),
            time_ms,
            topic: "orders".into(),
            partition: 0,
            offset,
            reason: "permanent".into(),
            error: "4xx".into(),
            status: Some(400),
            attempts: 1,
            response: String::new(),
        }
    }

    #[test]
    fn only_the_newest_matches_are_kept() {
        let mut newest = Newest::new(3);
        for i in (0..500).rev() {
            newest.push(summary(1_000 + i, i));
        }
        let kept: Vec<i64> = newest.into_sorted().iter().map(|s| s.dlq_offset).collect();
        assert_eq!(kept, vec![497, 498, 499]);
    }

    #[test]
    fn filters_combine() {
        let s = summary(5_000, 1);
        let f =
            |reason: Option<&str>, status: Option<StatusFilter>, since_ms: Option<u64>| Filter {
                since: since_ms.map(|ms| crate::clock::at_millis(ms as i64)),
                reason: reason.map(str::to_owned),
                status,
                last_per_partition: None,
                older_than: None,
            };
        assert!(f(None, None, None).admits(&s));
        assert!(f(Some("permanent"), Some(StatusFilter::Class(4)), Some(5_000)).admits(&s));
        assert!(!f(Some("exhausted"), None, None).admits(&s));
        assert!(!f(None, Some(StatusFilter::Exact(500)), None).admits(&s));
        assert!(!f(None, None, Some(5_001)).admits(&s));
    }

    /// The console's next page: dead letters after a place in the listing (newest
    /// first), that place written in the page's address and read back.
    #[test]
    fn a_page_lists_the_dead_letters_older_than_the_last_one_shown() {
        let key: PageKey = "5000.1.7".parse().unwrap();
        assert_eq!(key.to_string(), "5000.1.7");
        for bad in ["", "5000.1", "5000.1.7.8", "a.1.7", "5000:1:7"] {
            assert!(bad.parse::<PageKey>().is_err(), "{bad}");
        }
        let older = |k| Filter {
            since: None,
            reason: None,
            status: None,
            last_per_partition: None,
            older_than: Some(k),
        };
        let at = summary(5_000, 7).page_key();
        assert!(!older(at).admits(&summary(5_000, 7)), "not the one shown");
        assert!(
            older(at).admits(&summary(5_000, 6)),
            "same time, earlier in the DLQ"
        );
        assert!(older(at).admits(&summary(4_999, 9)));
        assert!(!older(at).admits(&summary(5_001, 1)));
        let mut newest = Newest::new(2);
        for i in 0..10 {
            let s = summary(1_000 + i, i);
            if older(summary(1_006, 6).page_key()).admits(&s) {
                newest.push(s);
            }
        }
        let page: Vec<i64> = newest.into_sorted().iter().map(|s| s.dlq_offset).collect();
        assert_eq!(page, vec![4, 5]);
    }
}
