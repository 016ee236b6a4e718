//! The finished-offset map carried in each commit's metadata, so a member that takes a
//! partition over (after a crash or a rebalance) skips records finished above the
//! committed watermark instead of delivering them again.
//!
//! The committed offset stays the contiguous watermark (the first unfinished record);
//! the metadata only ever *adds* knowledge, and every doubt falls on the side of
//! redelivery: metadata that is absent, foreign, undecodable, written for another offset
//! or over its budget means "nothing known to be finished" (replay, never skip).
//!
//! Encoding (ASCII, versioned): `hb1:R:<base>:<runs>` — base36 run lengths separated by
//! `.`, alternating unfinished and finished and starting with an unfinished run (possibly
//! empty) at `base`; or `hb1:B:<base>:<span>:<bits>` — a URL-safe base64 bitmap, bit `i`
//! set when `base + i` is finished. Version 2 (`hb2:R:<base>:<epoch>:<runs>`,
//! `hb2:B:<base>:<epoch>:<span>:<bits>`) adds the highest partition leader epoch of the
//! records the map covers: after an unclean leader election reuses offsets, the new
//! records carry a higher epoch, and a map must not skip them (see
//! [`FinishedMap::skips`]). It is written whenever the epoch is known; `hb1` maps (and
//! `hb2` with no epoch) are still read and trusted by offset alone, as before. Run-length is written while it fits the budget, the
//! bitmap when only it does. Offsets past the
//! end of the map are unknown (treated as unfinished); gaps inside it (compaction,
//! transaction markers) read as finished, which is right: there is nothing to deliver.

use std::ops::Range;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

const VERSION: &str = "hb1";
/// The version that carries a leader epoch.
const VERSION_EPOCH: &str = "hb2";
/// No map spans more offsets than this; anything larger is treated as foreign.
const MAX_SPAN: i64 = 1 << 26;

/// A commit position and what is known about the records above it: everything in
/// `base..end` is finished except the `unfinished` ranges (sorted, disjoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub base: i64,
    pub end: i64,
    pub unfinished: Vec<Range<i64>>,
    /// Highest partition leader epoch of the records covered; -1 when unknown.
    pub leader_epoch: i32,
}

impl Snapshot {
    /// Finished records above the watermark (what a restart skips).
    pub fn finished_above(&self) -> i64 {
        let unfinished: i64 = self.unfinished.iter().map(|r| r.end - r.start).sum();
        (self.end - self.base) - unfinished
    }

    /// Adds what an earlier map knew about offsets this snapshot has not reached yet.
    pub fn extend_with(&mut self, earlier: &FinishedMap) {
        if earlier.end <= self.end || self.end < earlier.base {
            return;
        }
        self.leader_epoch = self.leader_epoch.max(earlier.leader_epoch);
        let from = self.end;
        for r in &earlier.unfinished {
            let r = r.start.max(from)..r.end;
            if r.is_empty() {
                continue;
            }
            match self.unfinished.last_mut() {
                Some(last) if last.end >= r.start => last.end = last.end.max(r.end),
                _ => self.unfinished.push(r),
            }
        }
        self.end = earlier.end;
    }
}

/// Alternating run lengths (unfinished first) for `base..end` with `unfinished` ranges.
fn normalise(base: i64, end: i64, unfinished: &[Range<i64>]) -> Vec<i64> {
    let mut runs = Vec::with_capacity(unfinished.len() * 2 + 1);
    let mut at = base;
    for (i, r) in unfinished.iter().enumerate() {
        if i == 0 && r.start > at {
            runs.push(0); // no unfinished run at the base
        }
        if r.start > at {
            runs.push(r.start - at); // finished
        }
        runs.push(r.end - r.start); // unfinished
        at = r.end;
    }
    if unfinished.is_empty() {
        runs.push(0);
    }
    if end > at {
        runs.push(end - at);
    }
    runs
}

/// An encoded map and whether it had to be cut short to fit the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub text: String,
    /// Length the full map would have had: what back-pressure watches.
    pub full_len: usize,
    pub truncated: bool,
}

/// Encodes `snap` in at most `budget` bytes. When the full map does not fit, trailing
/// runs are dropped: the records they covered read as unfinished (redelivered), never
/// the other way round.
pub fn encode(snap: &Snapshot, budget: usize) -> Encoded {
    if snap.end <= snap.base {
        return Encoded {
            text: String::new(),
            full_len: 0,
            truncated: false,
        };
    }
    if snap.end - snap.base > MAX_SPAN {
        // A reader refuses longer maps: say what fits, the rest reads as unfinished.
        let end = snap.base + MAX_SPAN;
        let clipped = Snapshot {
            base: snap.base,
            leader_epoch: snap.leader_epoch,
            end,
            unfinished: (snap.unfinished.iter())
                .filter(|r| r.start < end)
                .map(|r| r.start..r.end.min(end))
                .collect(),
        };
        return Encoded {
            truncated: true,
            ..encode(&clipped, budget)
        };
    }
    let runs = normalise(snap.base, snap.end, &snap.unfinished);
    let prefix = prefix(snap.base, snap.leader_epoch);
    let rle = encode_runs(&prefix, &runs, usize::MAX);
    // Run-length is readable and usually tiny; the bitmap is the fallback for maps of
    // many short runs, built only when it would be shorter.
    let bitmap = encode_bitmap(snap, &prefix, rle.len());
    let full_len = bitmap.as_ref().map_or(rle.len(), String::len);
    let text = if rle.len() <= budget {
        rle
    } else {
        match bitmap.filter(|b| b.len() <= budget) {
            Some(b) => b,
            None => {
                return Encoded {
                    text: encode_runs(&prefix, &runs, budget),
                    full_len,
                    truncated: true,
                }
            }
        }
    };
    Encoded {
        text,
        full_len,
        truncated: false,
    }
}

/// `<version>:<kind>:<base>:` and, when the leader epoch is known, `<epoch>:` after the
/// kind and base; `{}` marks where the kind goes.
fn prefix(base: i64, leader_epoch: i32) -> String {
    if leader_epoch >= 0 {
        format!("{VERSION_EPOCH}:{{}}:{base}:{leader_epoch}:")
    } else {
        format!("{VERSION}:{{}}:{base}:")
    }
}

/// RLE text; stops before the run that would pass `budget` (ending on whole runs).
fn encode_runs(prefix: &str, runs: &[i64], budget: usize) -> String {
    let mut text = prefix.replacen("{}", "R", 1);
    let header = text.len();
    if header > budget {
        return String::new();
    }
    for (i, run) in runs.iter().enumerate() {
        let piece = to_base36(*run as u64);
        let extra = piece.len() + usize::from(i > 0);
        if text.len() + extra > budget {
            break;
        }
        if i > 0 {
            text.push('.');
        }
        text.push_str(&piece);
    }
    if text.len() == header {
        return String::new(); // not even one run fits: say nothing
    }
    text
}

/// The bitmap text, when it would be shorter than `shorter_than` bytes.
fn encode_bitmap(snap: &Snapshot, prefix: &str, shorter_than: usize) -> Option<String> {
    let span = snap.end - snap.base;
    if span > MAX_SPAN {
        return None;
    }
    let span = span as usize;
    let header = prefix.len() + 1 + to_base36(span as u64).len();
    if header + (span.div_ceil(8) * 4).div_ceil(3) >= shorter_than {
        return None;
    }
    let mut bits = vec![0xFFu8; span.div_ceil(8)];
    for r in &snap.unfinished {
        for o in r.clone() {
            let i = (o - snap.base) as usize;
            bits[i / 8] &= !(1 << (i % 8));
        }
    }
    // Bits past the span stay set but are ignored on decode.
    Some(format!(
        "{}{}:{}",
        prefix.replacen("{}", "B", 1),
        to_base36(span as u64),
        URL_SAFE_NO_PAD.encode(&bits)
    ))
}

fn to_base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    // u64::MAX has 13 base36 digits: a fixed buffer, filled from its end, so a loop that
    // failed to end would stop at its edge instead of growing without bound.
    let mut buf = [0u8; 13];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = DIGITS[(n % 36) as usize];
        n /= 36;
        if n == 0 {
            break;
        }
    }
    buf[at..].iter().map(|&d| char::from(d)).collect()
}

fn from_base36(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 12 {
        return None;
    }
    let mut n: i64 = 0;
    for c in s.bytes() {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'z' => c - b'a' + 10,
            _ => return None,
        };
        n = n.checked_mul(36)?.checked_add(i64::from(d))?;
    }
    Some(n)
}

/// What a commit's metadata says was finished at or above the committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedMap {
    base: i64,
    end: i64,
    /// Sorted, disjoint.
    unfinished: Vec<Range<i64>>,
    /// Highest leader epoch of the records the map covers; -1 when not recorded.
    leader_epoch: i32,
}

impl FinishedMap {
    /// True when the record at `offset` was finished before: it must not be delivered again.
    pub fn is_finished(&self, offset: i64) -> bool {
        if offset < self.base || offset >= self.end {
            return false;
        }
        // First unfinished range ending after `offset`.
        let i = self.unfinished.partition_point(|r| r.end <= offset);
        self.unfinished.get(i).is_none_or(|r| r.start > offset)
    }

    /// True when the record at `offset`, written under `leader_epoch`, is one the map
    /// says was finished. A record of a newer leader epoch than the map knew sits at an
    /// offset an unclean leader election reused: it is a new record, never skipped. An
    /// unknown epoch on either side trusts the offset, as maps without epochs did.
    pub fn skips(&self, offset: i64, leader_epoch: i32) -> bool {
        self.is_finished(offset) && !self.rewritten(leader_epoch)
    }

    /// A record of this leader epoch was written after the map was: the offsets the map
    /// covers may have been reused.
    pub fn rewritten(&self, leader_epoch: i32) -> bool {
        self.leader_epoch >= 0 && leader_epoch > self.leader_epoch
    }

    /// The committed offset the map starts at.
    pub fn base(&self) -> i64 {
        self.base
    }

    /// One past the last offset the map covers.
    pub fn end(&self) -> i64 {
        self.end
    }

    /// Finished offsets covered by the map.
    #[cfg(test)]
    pub fn finished_count(&self) -> i64 {
        let unfinished: i64 = self.unfinished.iter().map(|r| r.end - r.start).sum();
        (self.end - self.base) - unfinished
    }
}

/// Decodes commit metadata for a partition committed at `committed`. Anything but a
/// well-formed map written for exactly that offset is `None`: replay, never skip.
pub fn decode(metadata: &[u8], committed: i64) -> Option<FinishedMap> {
    let text = std::str::from_utf8(metadata).ok()?;
    let mut parts = text.split(':');
    let with_epoch = match parts.next()? {
        VERSION => false,
        VERSION_EPOCH => true,
        _ => return None,
    };
    let kind = parts.next()?;
    let base: i64 = parts.next()?.parse().ok()?;
    if base != committed || base < 0 {
        return None; // written for another offset: a different snapshot
    }
    let leader_epoch = if with_epoch {
        let e: i32 = parts.next()?.parse().ok()?;
        if e < 0 {
            return None;
        }
        e
    } else {
        -1
    };
    let map = match kind {
        "R" => decode_runs(base, parts.next()?, leader_epoch)?,
        "B" => decode_bitmap(base, parts.next()?, parts.next()?, leader_epoch)?,
        _ => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(map)
}

fn decode_runs(base: i64, runs: &str, leader_epoch: i32) -> Option<FinishedMap> {
    let mut unfinished = Vec::new();
    let mut at = base;
    for (i, run) in runs.split('.').enumerate() {
        let n = from_base36(run)?;
        let next = at.checked_add(n)?;
        if next - base > MAX_SPAN {
            return None;
        }
        if i % 2 == 0 && n > 0 {
            unfinished.push(at..next);
        }
        at = next;
    }
    Some(FinishedMap {
        base,
        end: at,
        unfinished,
        leader_epoch,
    })
}

fn decode_bitmap(base: i64, span: &str, bits: &str, leader_epoch: i32) -> Option<FinishedMap> {
    let span = from_base36(span)?;
    if span > MAX_SPAN {
        return None;
    }
    let end = base.checked_add(span)?;
    let bytes = URL_SAFE_NO_PAD.decode(bits).ok()?;
    if bytes.len() != (span as usize).div_ceil(8) {
        return None;
    }
    let mut unfinished: Vec<Range<i64>> = Vec::new();
    for i in 0..span {
        if bytes[(i / 8) as usize] & (1 << (i % 8)) == 0 {
            let o = base + i;
            match unfinished.last_mut() {
                Some(r) if r.end == o => r.end = o + 1,
                _ => unfinished.push(o..o + 1),
            }
        }
    }
    Some(FinishedMap {
        base,
        end,
        unfinished,
        leader_epoch,
    })
}

#[cfg(test)]
mod tests;
