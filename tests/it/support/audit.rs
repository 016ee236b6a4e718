//! The commit auditor: while a run goes on, an independent client (rdkafka from the test,
//! never hookbridge's code) reads the group's committed offsets and their finished-offset
//! maps every 100 ms. Every offset below a committed one, and every offset a map says is
//! finished, must have been answered 2xx by the receiver (or be in the DLQ, or be a
//! record the sink's filter drops, by a rule the test restates) before the commit was
//! read: the receiver stamps each 2xx when it sends it, and a record answered after the
//! read counts as unfinished for that commit, however soon it was answered.
//!
//! What it cannot see: a commit made past a record that is then answered before the next
//! read (at most 100 ms later). A record that is never finished, or one still open at the
//! next read, fails the run within a sample, when the commit is made, not after a kill
//! that happens to land in its window.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// What was finished so far: `(partition, offset)` with the moment it was first answered
/// 2xx (or dead-lettered).
pub type Finished = HashMap<(i32, i64), Instant>;

/// How often the committed offsets are read. A commit is judged against the answers given
/// before it was read, so a violation is caught if it is still open at the next read; the
/// shorter the interval, the narrower the window in which one can close unseen.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The auditor's figures.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Rounds in which the committed offsets could be read.
    pub samples: usize,
    /// Rounds not judged: the committed offsets, or a dead-letter or filtered-record
    /// topic, could not be read as far as needed (a broker down, a leader moving).
    pub unjudged: usize,
    /// Longest time between two judged rounds: how long a commit past an unfinished
    /// record, answered meanwhile, could have gone unseen.
    pub longest_gap: Duration,
    /// Distinct committed (partition, offset, map) states checked.
    pub commits_checked: usize,
    /// Offsets checked below a watermark or inside a map.
    pub offsets_checked: usize,
    /// Commits whose map was read (base equal to the committed offset).
    pub maps_checked: usize,
    /// Commits below one already seen for the partition, never committed before: a
    /// member that lost a partition committing an older watermark over its new owner's.
    pub regressions: Vec<String>,
    /// Commits below one already seen for the partition that repeat a commit read
    /// before, exactly (offset and map): an earlier commit request applied late.
    pub replays: Vec<Replay>,
    pub violations: Vec<String>,
}

/// A partition's committed offset gone back to an earlier commit of its own (offset and
/// map alike), or to one at or past what was committed when the test marked a moment
/// ([`Auditor::mark`]: the coordinator's kill), until a commit at or past the highest
/// returned. librdkafka keeps a commit request it could not send to a coordinator that
/// died, and sends it to the new coordinator once the dead one answers again, after the
/// commits made since.
#[derive(Debug, Clone)]
pub struct Replay {
    pub partition: i32,
    pub back_to: i64,
    pub after: i64,
    pub read_at: Instant,
    /// Until the partition's commit was read at or past `after` again; `None`: never.
    pub lasted: Option<Duration>,
}

impl std::fmt::Display for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (p, back, after) = (self.partition, self.back_to, self.after);
        match self.lasted {
            Some(d) => write!(f, "partition {p}: back to its earlier commit {back} after {after} for {d:?}"),
            None => write!(f, "partition {p}: back to its earlier commit {back} after {after}, never committed past it again"),
        }
    }
}

impl Report {
    pub fn print(&self, scenario: &str) {
        eprintln!(
            "commit auditor ({scenario}): {} samples ({} rounds unjudged, longest gap between judged rounds {:?}), {} commits checked ({} with a finished map), {} offsets checked, {} violations, {} regressions, {} replayed commits",
            self.samples,
            self.unjudged,
            self.longest_gap,
            self.commits_checked,
            self.maps_checked,
            self.offsets_checked,
            self.violations.len(),
            self.regressions.len(),
            self.replays.len()
        );
        for r in self.regressions.iter().take(5) {
            eprintln!("  regression: {r}");
        }
        for r in self.replays.iter().take(5) {
            eprintln!("  replayed commit: {r}");
        }
        for v in self.violations.iter().take(10) {
            eprintln!("  violation: {v}");
        }
    }

    /// Prints, then fails on any violation, any commit going back (replayed or not), or
    /// a run where nothing was ever committed.
    pub fn assert_clean(&self, scenario: &str) {
        self.assert_clean_but_replays_within(scenario, Duration::ZERO);
    }

    /// [`Report::assert_clean`], except that one replayed earlier commit per partition
    /// (a coordinator's failover, see [`Replay`]) passes when a later commit superseded
    /// it within `within`: hookbridge commits an unchanged position again every 5 s.
    pub fn assert_clean_but_replays_within(&self, scenario: &str, within: Duration) {
        self.print(scenario);
        let mut partitions: Vec<i32> = self.replays.iter().map(|r| r.partition).collect();
        partitions.sort_unstable();
        let replays = partitions.len();
        partitions.dedup();
        assert_eq!(
            partitions.len(),
            replays,
            "{scenario}: a partition's committed offset went back more than once"
        );
        let lasting = self
            .replays
            .iter()
            .find(|r| r.lasted.is_none_or(|d| within.is_zero() || d > within));
        assert!(
            lasting.is_none(),
            "{scenario}: committed offsets went back to an earlier commit: {}",
            lasting.map(ToString::to_string).unwrap_or_default()
        );
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
    mark: Arc<AtomicBool>,
    report: Arc<Mutex<Report>>,
    task: tokio::task::JoinHandle<()>,
}

impl Auditor {
    /// `finished` gives the records answered 2xx so far.
    pub fn start(
        brokers: &str,
        group: &str,
        topic: &str,
        partitions: u32,
        finished: impl Fn() -> Finished + Send + 'static,
    ) -> Self {
        Self::start_with_dlq(brokers, group, topic, partitions, finished, None)
    }

    /// As [`start`](Self::start), and a record found in `dlq` (read by a client of the
    /// auditor's own from its `hookbridge-dlq-topic`/`-partition`/`-offset` headers) counts
    /// as finished from its produce timestamp, which precedes the broker's ack.
    pub fn start_with_dlq(
        brokers: &str,
        group: &str,
        topic: &str,
        partitions: u32,
        finished: impl Fn() -> Finished + Send + 'static,
        dlq: Option<&str>,
    ) -> Self {
        let readers = dlq
            .map(|d| TopicReader::dead_letters(brokers, d, topic))
            .into_iter()
            .collect();
        Self::start_reading(brokers, group, topic, partitions, finished, readers)
    }

    /// As [`start`](Self::start) for a sink whose `filter` drops the records for which
    /// `dropped(value)` holds: a client of the auditor's own reads `topic` and counts such
    /// a record as finished from its produce timestamp (a filtered record is finished
    /// without a request, so the receiver never answers it). `dropped` restates the
    /// sink's filter independently of hookbridge's jq.
    #[allow(dead_code)] // used by the chaos suite, which shares these fixtures
    pub fn start_filtered(
        brokers: &str,
        group: &str,
        topic: &str,
        partitions: u32,
        finished: impl Fn() -> Finished + Send + 'static,
        dropped: fn(&[u8]) -> bool,
    ) -> Self {
        let readers = vec![TopicReader::filtered(brokers, topic, dropped)];
        Self::start_reading(brokers, group, topic, partitions, finished, readers)
    }

    fn start_reading(
        brokers: &str,
        group: &str,
        topic: &str,
        partitions: u32,
        finished: impl Fn() -> Finished + Send + 'static,
        readers: Vec<TopicReader>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let mark = Arc::new(AtomicBool::new(false));
        let marked = mark.clone();
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
            let mut judge = Judge::default();
            let mut readers = readers;
            let mut last_round = false;
            let mut judged_at = Instant::now();
            loop {
                if flag.load(Ordering::SeqCst) {
                    last_round = true;
                }
                if let Ok(committed) = reader.committed_offsets(tpl.clone(), Duration::from_secs(2))
                {
                    // Every commit read here was made before this instant, so only a 2xx
                    // answered by now can justify it; one answered later is a violation
                    // even though it is in the set by the time the set is read.
                    let read_at = Instant::now();
                    let mut done = finished();
                    // Read the DLQ (or the filtered records) up to its high watermark as
                    // of now, which covers every dead letter acknowledged before the
                    // commit was read; if it cannot be read that far, this sample is not
                    // judged.
                    let mut ready = true;
                    for r in readers.iter_mut() {
                        ready &= r.catch_up();
                        for (k, t) in &r.found {
                            let e = done.entry(*k).or_insert(*t);
                            *e = (*e).min(*t);
                        }
                    }
                    let commits: Vec<(i32, i64, String)> = committed
                        .elements()
                        .iter()
                        .filter_map(|e| match e.offset() {
                            Offset::Offset(c) => Some((e.partition(), c, e.metadata().to_owned())),
                            _ => None,
                        })
                        .collect();
                    let mut report = out.lock().expect("lock");
                    if marked.swap(false, Ordering::SeqCst) {
                        judge.mark(read_at);
                    }
                    if ready {
                        judge.sample(&commits, read_at, &done, &mut report);
                        report.longest_gap = report.longest_gap.max(read_at - judged_at);
                        judged_at = read_at;
                    } else {
                        report.unjudged += 1;
                    }
                } else {
                    out.lock().expect("lock").unjudged += 1;
                }
                if last_round {
                    return;
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
        });
        Auditor {
            stop,
            mark,
            report: shared,
            task,
        }
    }

    /// Marks this moment (a coordinator killed): a commit going back to at least what
    /// was committed by the next sample is a [`Replay`], not a regression.
    #[allow(dead_code)] // used by the chaos suite, which shares these fixtures
    pub fn mark(&self) {
        self.mark.store(true, Ordering::SeqCst);
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

    /// Waits until `more` samples beyond those taken so far have been judged (at least
    /// `more` × 100 ms), so commits made until now have been read.
    #[allow(dead_code)] // used by the chaos suite, which shares these fixtures
    pub async fn wait_samples(&self, more: usize) {
        let target = self.report.lock().expect("lock").samples + more;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.report.lock().expect("lock").samples < target {
            assert!(Instant::now() < deadline, "the auditor stopped sampling");
            tokio::time::sleep(Duration::from_millis(50)).await;
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

/// Which records of a topic count as finished, with their position in the audited topic.
type Pick = Box<dyn Fn(&rdkafka::message::BorrowedMessage<'_>) -> Option<(i32, i64)> + Send>;

/// A topic (the DLQ, or the audited topic itself for filtered records), read from the
/// start by a client that never joins a group.
struct TopicReader {
    consumer: BaseConsumer,
    topic: String,
    pick: Pick,
    /// Next offset to read, per partition.
    next: BTreeMap<i32, i64>,
    found: Finished,
}

impl TopicReader {
    /// Dead letters of records of `source`, at the position their headers name.
    fn dead_letters(brokers: &str, dlq: &str, source: &str) -> Self {
        let source = source.to_owned();
        let pick: Pick = Box::new(move |m| {
            use rdkafka::message::{Headers, Message};
            let header = |name: &str| {
                m.headers().and_then(|hs| {
                    hs.iter()
                        .find(|h| h.key == name)
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                })
            };
            if header("hookbridge-dlq-topic").as_deref() != Some(source.as_str()) {
                return None;
            }
            Some((
                header("hookbridge-dlq-partition")?.parse().ok()?,
                header("hookbridge-dlq-offset")?.parse().ok()?,
            ))
        });
        Self::new(brokers, dlq, pick)
    }

    /// Records of `topic` whose value `dropped` says the sink's filter drops.
    #[allow(dead_code)] // used by the chaos suite, which shares these fixtures
    fn filtered(brokers: &str, topic: &str, dropped: fn(&[u8]) -> bool) -> Self {
        let pick: Pick = Box::new(move |m| {
            use rdkafka::message::Message;
            dropped(m.payload().unwrap_or_default()).then(|| (m.partition(), m.offset()))
        });
        Self::new(brokers, topic, pick)
    }

    fn new(brokers: &str, topic: &str, pick: Pick) -> Self {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("audit-{topic}"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // The watermark queries of each sample wait behind a fetch on the same
            // connection: a long fetch wait would stretch every sample to seconds.
            .set("fetch.wait.max.ms", "10")
            .set("log_level", "0")
            .create()
            .expect("auditor topic client");
        TopicReader {
            consumer,
            topic: topic.to_owned(),
            pick,
            next: BTreeMap::new(),
            found: Finished::new(),
        }
    }

    /// Reads every record below each partition's current high watermark; false when
    /// it could not within a few seconds.
    fn catch_up(&mut self) -> bool {
        use rdkafka::message::Message;
        if self.next.is_empty() {
            let Ok(md) = self
                .consumer
                .fetch_metadata(Some(&self.topic), Duration::from_secs(2))
            else {
                return false;
            };
            let Some(t) = md.topics().first() else {
                return false;
            };
            if t.partitions().is_empty() {
                return false;
            }
            let mut tpl = TopicPartitionList::new();
            for p in t.partitions() {
                tpl.add_partition_offset(&self.topic, p.id(), Offset::Beginning)
                    .expect("offset");
                self.next.insert(p.id(), 0);
            }
            self.consumer.assign(&tpl).expect("assign the topic");
        }
        let mut high = BTreeMap::new();
        for p in self.next.keys() {
            let Ok((_, h)) =
                self.consumer
                    .fetch_watermarks(&self.topic, *p, Duration::from_secs(2))
            else {
                return false;
            };
            high.insert(*p, h);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while high.iter().any(|(p, h)| self.next[p] < *h) {
            if Instant::now() > deadline {
                return false;
            }
            let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            self.next.insert(m.partition(), m.offset() + 1);
            let Some((p, o)) = (self.pick)(&m) else {
                continue;
            };
            // The produce timestamp, as an Instant: never later than the broker's ack.
            let at = m
                .timestamp()
                .to_millis()
                .and_then(|ms| {
                    let wall = std::time::UNIX_EPOCH + Duration::from_millis(ms as u64);
                    let age = std::time::SystemTime::now().duration_since(wall).ok()?;
                    Instant::now().checked_sub(age)
                })
                .unwrap_or_else(Instant::now);
            self.found.entry((p, o)).or_insert(at);
        }
        true
    }
}

/// The auditor's memory between samples, and the rule it applies to each commit.
#[derive(Default)]
struct Judge {
    seen: HashSet<(i32, i64, String)>,
    /// Each unfinished offset is reported once, however many commits pass it.
    reported: HashSet<(i32, i64)>,
    /// Offsets below this were already found finished (finished never shrinks).
    verified: BTreeMap<i32, i64>,
    highest: BTreeMap<i32, i64>,
    /// Per partition, the replay not yet superseded (its index in the report).
    replaying: BTreeMap<i32, usize>,
    /// Per partition, the highest commit read when the test marked a moment, and when.
    marked: BTreeMap<i32, i64>,
    marked_at: Option<Instant>,
}

/// How long after a mark a commit going back to at least the marked one is a replay: a
/// coordinator's restart and the commit it kept, not a member's stale position later.
const MARK_HOLDS: Duration = Duration::from_secs(30);

impl Judge {
    fn mark(&mut self, now: Instant) {
        self.marked = self.highest.clone();
        self.marked_at = Some(now);
    }

    /// Judges the commits read at `read_at`: only records answered at or before it count
    /// as finished.
    fn sample(
        &mut self,
        commits: &[(i32, i64, String)],
        read_at: Instant,
        done: &Finished,
        report: &mut Report,
    ) {
        let finished = |p: i32, o: i64| done.get(&(p, o)).is_some_and(|t| *t <= read_at);
        report.samples += 1;
        for (p, c, map) in commits {
            let (p, c) = (*p, *c);
            let top = self.highest.entry(p).or_insert(c);
            if c < *top {
                let since_mark = self.marked_at.map(|t| read_at.saturating_duration_since(t));
                let replayed = self.seen.contains(&(p, c, map.clone()))
                    || (since_mark.is_some_and(|d| d <= MARK_HOLDS)
                        && self.marked.get(&p).is_some_and(|m| c >= *m));
                if !replayed {
                    report
                        .regressions
                        .push(format!("partition {p}: committed {c} after {top}"));
                } else if let std::collections::btree_map::Entry::Vacant(open) =
                    self.replaying.entry(p)
                {
                    open.insert(report.replays.len());
                    report.replays.push(Replay {
                        partition: p,
                        back_to: c,
                        after: *top,
                        read_at,
                        lasted: None,
                    });
                }
            } else if let Some(i) = self.replaying.remove(&p) {
                let r = &mut report.replays[i];
                r.lasted = Some(read_at.saturating_duration_since(r.read_at));
            }
            *top = c.max(*top);
            if !self.seen.insert((p, c, map.clone())) {
                continue;
            }
            report.commits_checked += 1;
            let from = self.verified.get(&p).copied().unwrap_or(0);
            let mut ok_upto = from;
            for o in from..c {
                report.offsets_checked += 1;
                if finished(p, o) {
                    if ok_upto == o {
                        ok_upto = o + 1;
                    }
                } else if self.reported.insert((p, o)) {
                    report.violations.push(format!(
                        "partition {p}: committed {c} but offset {o} was neither answered 2xx nor dead-lettered before the commit was read"
                    ));
                }
            }
            self.verified.insert(p, ok_upto.max(from));
            if let Some(claimed) = finished_in_map(map, c) {
                report.maps_checked += 1;
                for o in claimed {
                    report.offsets_checked += 1;
                    if !finished(p, o) && self.reported.insert((p, o)) {
                        report.violations.push(format!(
                            "partition {p}: map at {c} says offset {o} is finished; it was not when the map was read"
                        ));
                    }
                }
            }
        }
    }
}

/// The offsets a finished-offset map (`hb1:R:…`, `hb1:B:…`, or `hb2` with a leader epoch
/// after the base) says are finished, when it was written for `committed` (readers
/// ignore any other). Decoded here from the format docs/configuration.md describes, independently of
/// hookbridge's decoder; `None` for no or unreadable metadata.
fn finished_in_map(meta: &str, committed: i64) -> Option<Vec<i64>> {
    let (version, rest) = meta.split_once(':')?;
    let (kind, rest) = rest.split_once(':')?;
    let (base, rest) = rest.split_once(':')?;
    let rest = match version {
        "hb1" => rest,
        // The epoch (possibly empty) only says which records the map may skip.
        "hb2" => rest.split_once(':')?.1,
        _ => return None,
    };
    let base: i64 = base.parse().ok()?;
    if base != committed {
        return None;
    }
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

    /// A record answered after the commit that covers it was read is a violation, even
    /// if it is in the finished set by the time the set is read.
    #[test]
    fn a_record_answered_after_the_commit_was_read_is_a_violation() {
        let t0 = Instant::now();
        let read_at = t0 + Duration::from_millis(10);
        let mut done = Finished::new();
        done.insert((0, 0), t0);
        done.insert((0, 1), read_at + Duration::from_millis(1));
        let mut report = Report::default();
        Judge::default().sample(&[(0, 2, String::new())], read_at, &done, &mut report);
        assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
        assert!(report.violations[0].contains("offset 1"));

        // The same record answered before the read is fine.
        done.insert((0, 1), t0);
        let mut report = Report::default();
        Judge::default().sample(&[(0, 2, String::new())], read_at, &done, &mut report);
        assert!(report.violations.is_empty());
        assert_eq!(report.offsets_checked, 2);
    }

    /// A commit going back to one read before (offset and map) is a replay, lasting until
    /// the partition is read at its highest again; going back anywhere else is a
    /// regression. Only a replay superseded in time passes the lenient check.
    #[test]
    fn going_back_to_an_earlier_commit_is_a_replay_and_anywhere_else_a_regression() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let done: Finished = (0..40).map(|o| ((0, o), t0)).collect();
        let mut judge = Judge::default();
        let mut report = Report::default();
        let mut read = |c: i64, map: &str, ms: u64, report: &mut Report| {
            judge.sample(&[(0, c, map.to_owned())], at(ms), &done, report)
        };
        read(10, "a", 0, &mut report);
        read(20, "b", 100, &mut report);
        read(10, "a", 200, &mut report);
        read(10, "a", 300, &mut report);
        assert!(report.regressions.is_empty(), "{:?}", report.regressions);
        assert_eq!(report.replays.len(), 1, "one replay while it lasts");
        assert!(report.replays[0].lasted.is_none());
        read(20, "b", 900, &mut report);
        assert_eq!(report.replays[0].lasted, Some(Duration::from_millis(700)));
        assert_eq!(
            (report.replays[0].back_to, report.replays[0].after),
            (10, 20)
        );
        // The same offset with another map was never committed: a regression.
        read(10, "c", 1000, &mut report);
        assert_eq!(report.regressions.len(), 1, "{:?}", report.regressions);
        assert_eq!(report.replays.len(), 1);
        // Past a mark at 20, a commit never read before counts as replayed when it is not
        // below the mark; below it, a regression.
        judge.mark(at(1050));
        let mut read = |c: i64, map: &str, ms: u64, report: &mut Report| {
            judge.sample(&[(0, c, map.to_owned())], at(ms), &done, report)
        };
        read(30, "d", 1100, &mut report);
        read(25, "e", 1200, &mut report);
        read(30, "d", 1300, &mut report);
        assert_eq!(report.replays.len(), 2, "{:?}", report.replays);
        assert_eq!(report.replays[1].lasted, Some(Duration::from_millis(100)));
        read(15, "f", 1400, &mut report);
        assert_eq!(report.regressions.len(), 2, "{:?}", report.regressions);
        // Long after the mark, going back to at least it is a regression again.
        read(40, "g", 1500, &mut report);
        read(35, "h", 1050 + 31_000, &mut report);
        assert_eq!(report.regressions.len(), 3, "{:?}", report.regressions);
        assert_eq!(report.replays.len(), 2);
        let twice = Report {
            replays: report.replays.clone(),
            commits_checked: 1,
            ..Report::default()
        };
        let again = std::panic::catch_unwind(|| {
            twice.assert_clean_but_replays_within("twice", Duration::from_secs(60))
        });
        assert!(again.is_err(), "one replay per partition passes, not two");

        let replayed = Report {
            replays: report.replays[..1].to_vec(),
            commits_checked: 1,
            ..Report::default()
        };
        replayed.assert_clean_but_replays_within("superseded in time", Duration::from_secs(1));
        let strict = std::panic::catch_unwind(|| replayed.assert_clean("strict"));
        assert!(strict.is_err(), "a replay fails the strict check");
        let slow = std::panic::catch_unwind(|| {
            replayed.assert_clean_but_replays_within("too slow", Duration::from_millis(500))
        });
        assert!(slow.is_err(), "a replay lasting past the limit fails");
        let mut open = replayed.clone();
        open.replays[0].lasted = None;
        let never = std::panic::catch_unwind(|| {
            open.assert_clean_but_replays_within("never superseded", Duration::from_secs(60))
        });
        assert!(never.is_err(), "a replay never superseded fails");
    }

    #[test]
    fn maps_decode_as_the_readme_describes() {
        // unfinished 2, finished 3, unfinished 1, finished 1 from base 10
        assert_eq!(
            finished_in_map("hb1:R:10:2.3.1.1", 10),
            Some(vec![12, 13, 14, 16])
        );
        assert_eq!(finished_in_map("hb1:R:10:2.3", 9), None);
        // Version 2 carries a leader epoch (possibly empty) after the base.
        assert_eq!(
            finished_in_map("hb2:R:10:4:2.3.1.1", 10),
            Some(vec![12, 13, 14, 16])
        );
        assert_eq!(finished_in_map("hb2:R:10::2.3", 10), Some(vec![12, 13, 14]));
        // bits 1 and 2 of a span of 4 → 0b0110
        let bits = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0b0110u8]);
        assert_eq!(
            finished_in_map(&format!("hb1:B:5:4:{bits}"), 5),
            Some(vec![6, 7])
        );
        assert_eq!(
            finished_in_map(&format!("hb2:B:5:3:4:{bits}"), 5),
            Some(vec![6, 7])
        );
        assert_eq!(position("orders-x-3-42"), Some((3, 42)));
    }
}
