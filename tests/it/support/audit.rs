//! The commit auditor: while a run goes on, an independent client (rdkafka from the test,
//! never hookbridge's code) reads the group's committed offsets and their finished-offset
//! maps every 300 ms. Every offset below a committed one, and every offset a map says is
//! finished, must at that moment have been answered 2xx by the receiver (or be in the
//! DLQ). A commit past unfinished work is caught when it is made, by reading, not by a
//! kill that happens to land in its window.
//!
//! Committed offsets are read before the finished set, so a record finished after the
//! commit can only hide a violation, never invent one.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// What was finished at one moment: `(partition, offset)` pairs.
pub type Finished = HashSet<(i32, i64)>;

/// The auditor's figures.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Rounds in which the committed offsets could be read.
    pub samples: usize,
    /// Distinct committed (partition, offset, map) states checked.
    pub commits_checked: usize,
    /// Offsets checked below a watermark or inside a map.
    pub offsets_checked: usize,
    /// Commits whose map was read (base equal to the committed offset).
    pub maps_checked: usize,
    /// Commits below one already seen for the partition: a member that lost a partition
    /// committing an older watermark over its new owner's.
    pub regressions: Vec<String>,
    pub violations: Vec<String>,
}

impl Report {
    pub fn print(&self, scenario: &str) {
        eprintln!(
            "commit auditor ({scenario}): {} samples, {} commits checked ({} with a finished map), {} offsets checked, {} violations, {} regressions",
            self.samples,
            self.commits_checked,
            self.maps_checked,
            self.offsets_checked,
            self.violations.len(),
            self.regressions.len()
        );
        for r in self.regressions.iter().take(5) {
            eprintln!("  regression: {r}");
        }
        for v in self.violations.iter().take(10) {
            eprintln!("  violation: {v}");
        }
    }

    /// Prints, then fails on any violation or on a run where nothing was ever committed.
    pub fn assert_clean(&self, scenario: &str) {
        self.print(scenario);
        assert!(
            self.violations.is_empty(),
            "{scenario}: {} commits past unfinished records, first: {}",
            self.violations.len(),
            self.violations[0]
        );
        assert!(
            self.regressions.is_empty(),
            "{scenario}: committed offsets went backwards: {}",
            self.regressions[0]
        );
        assert!(
            self.commits_checked > 0,
            "{scenario}: the auditor saw no commit"
        );
    }
}

/// Samples a group's commits on `topic` until [`finish`](Self::finish).
pub struct Auditor {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<Report>>,
    task: tokio::task::JoinHandle<()>,
}

impl Auditor {
    /// `finished` gives the records answered 2xx (or dead-lettered) so far.
    pub fn start(
        brokers: &str,
        group: &str,
        topic: &str,
        partitions: u32,
        finished: impl Fn() -> Finished + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let shared = Arc::new(Mutex::new(Report::default()));
        let out = shared.clone();
        let (brokers, group, topic) = (brokers.to_owned(), group.to_owned(), topic.to_owned());
        let task = tokio::task::spawn_blocking(move || {
            // Never subscribes, so it never joins the group: it only asks the coordinator
            // what is committed (OffsetFetch).
            let reader: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .set("log_level", "0")
                .create()
                .expect("auditor client");
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions as i32 {
                tpl.add_partition(&topic, p);
            }
            let mut seen: HashSet<(i32, i64, String)> = HashSet::new();
            // Each unfinished offset is reported once, however many commits pass it.
            let mut reported: HashSet<(i32, i64)> = HashSet::new();
            // Offsets below this were already found finished (finished never shrinks).
            let mut verified: BTreeMap<i32, i64> = BTreeMap::new();
            let mut highest: BTreeMap<i32, i64> = BTreeMap::new();
            let mut last_round = false;
            loop {
                if flag.load(Ordering::SeqCst) {
                    last_round = true;
                }
                if let Ok(committed) = reader.committed_offsets(tpl.clone(), Duration::from_secs(2))
                {
                    let done = finished();
                    let mut report = out.lock().expect("lock");
                    report.samples += 1;
                    for e in committed.elements() {
                        let Offset::Offset(c) = e.offset() else {
                            continue;
                        };
                        let p = e.partition();
                        let map = e.metadata().to_owned();
                        let top = highest.entry(p).or_insert(c);
                        if c < *top {
                            report
                                .regressions
                                .push(format!("partition {p}: committed {c} after {top}"));
                        }
                        *top = c.max(*top);
                        if !seen.insert((p, c, map.clone())) {
                            continue;
                        }
                        report.commits_checked += 1;
                        let from = verified.get(&p).copied().unwrap_or(0);
                        let mut ok_upto = from;
                        for o in from..c {
                            report.offsets_checked += 1;
                            if done.contains(&(p, o)) {
                                if ok_upto == o {
                                    ok_upto = o + 1;
                                }
                            } else if reported.insert((p, o)) {
                                report.violations.push(format!(
                                    "partition {p}: committed {c} but offset {o} was neither answered 2xx nor dead-lettered"
                                ));
                            }
                        }
                        verified.insert(p, ok_upto.max(from));
                        if let Some(claimed) = finished_in_map(&map, c) {
                            report.maps_checked += 1;
                            for o in claimed {
                                report.offsets_checked += 1;
                                if !done.contains(&(p, o)) && reported.insert((p, o)) {
                                    report.violations.push(format!(
                                        "partition {p}: map at {c} says offset {o} is finished; it was not"
                                    ));
                                }
                            }
                        }
                    }
                }
                if last_round {
                    return;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        Auditor {
            stop,
            report: shared,
            task,
        }
    }

    /// Panics at once if a commit past an unfinished record was seen: call it while
    /// waiting for a run to end, so a loss fails the run when it is committed rather
    /// than after a delivery timeout.
    pub fn fail_fast(&self, scenario: &str) {
        let r = self.report.lock().expect("lock").clone();
        if let Some(first) = r.violations.first() {
            r.print(scenario);
            panic!("{scenario}: commit past an unfinished record: {first}");
        }
    }

    /// One last sample, then the figures.
    pub async fn finish(mut self) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        (&mut self.task).await.expect("auditor");
        let r = self.report.lock().expect("lock").clone();
        r
    }
}

impl Drop for Auditor {
    /// A test that fails before [`finish`](Self::finish) stops the sampler too: its
    /// runtime waits for blocking tasks when it shuts down.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The offsets a finished-offset map (`hb1:R:…` or `hb1:B:…`) says are finished, when it
/// was written for `committed` (readers ignore any other). Decoded here from the README's
/// format, independently of hookbridge's decoder; `None` for no or unreadable metadata.
fn finished_in_map(meta: &str, committed: i64) -> Option<Vec<i64>> {
    let mut parts = meta.splitn(4, ':');
    if parts.next()? != "hb1" {
        return None;
    }
    let kind = parts.next()?;
    let base: i64 = parts.next()?.parse().ok()?;
    if base != committed {
        return None;
    }
    let rest = parts.next()?;
    let mut out = Vec::new();
    match kind {
        "R" => {
            let mut at = base;
            for (i, run) in rest.split('.').enumerate() {
                let n = i64::from_str_radix(run, 36).ok()?;
                if i % 2 == 1 {
                    out.extend(at..at + n);
                }
                at += n;
            }
        }
        "B" => {
            let (span, bits) = rest.split_once(':')?;
            let span = i64::from_str_radix(span, 36).ok()?;
            let bits = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(bits)
                .ok()?;
            for i in 0..span {
                if bits.get((i / 8) as usize)? & (1 << (i % 8)) != 0 {
                    out.push(base + i);
                }
            }
        }
        _ => return None,
    }
    Some(out)
}

/// `(partition, offset)` of a delivery, from its `webhook-id` (`<topic>-<partition>-<offset>`).
pub fn position(webhook_id: &str) -> Option<(i32, i64)> {
    let mut it = webhook_id.rsplitn(3, '-');
    let offset = it.next()?.parse().ok()?;
    let partition = it.next()?.parse().ok()?;
    Some((partition, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_decode_as_the_readme_describes() {
        // unfinished 2, finished 3, unfinished 1, finished 1 from base 10
        assert_eq!(
            finished_in_map("hb1:R:10:2.3.1.1", 10),
            Some(vec![12, 13, 14, 16])
        );
        assert_eq!(finished_in_map("hb1:R:10:2.3", 9), None);
        // bits 1 and 2 of a span of 4 → 0b0110
        let bits = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0b0110u8]);
        assert_eq!(
            finished_in_map(&format!("hb1:B:5:4:{bits}"), 5),
            Some(vec![6, 7])
        );
        assert_eq!(position("orders-x-3-42"), Some((3, 42)));
    }
}
