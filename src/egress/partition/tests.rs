use std::collections::{BTreeSet, HashMap, HashSet};

use bytes::Bytes;

use super::*;
use crate::egress::finished::{decode, encode};
use proptest::prelude::*;

fn lane(k: u8) -> Option<Bytes> {
    Some(Bytes::from(vec![k]))
}

#[test]
fn one_record_in_flight_per_lane_in_offset_order() {
    let mut p = Partition::<(), Bytes>::new(1, 100, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    p.admit(0, 0, lane(1), (), &mut out);
    p.admit(1, 0, lane(1), (), &mut out);
    p.admit(2, 0, lane(2), (), &mut out);
    let started: Vec<i64> = out
        .drain(..)
        .map(|s| match s {
            Step::Start { offset, .. } => offset,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(started, vec![0, 2]);
    p.finish(2, lane(2), &mut seq, &mut out);
    assert!(out.is_empty());
    assert_eq!(p.commit_snapshot(false).unwrap().base, 0);
    p.finish(0, lane(1), &mut seq, &mut out);
    assert!(matches!(out.as_slice(), [Step::Start { offset: 1, .. }]));
}

#[test]
fn a_full_buffer_pauses_holds_what_was_fetched_and_resume_rewinds_to_the_first_dropped_record() {
    let mut p = Partition::<(), Bytes>::new(1, 4, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    for o in 0..4 {
        p.admit(o, 0, None, (), &mut out);
    }
    assert_eq!(
        out.last(),
        Some(&Step::Start {
            offset: 3,
            lane: None,
            item: ()
        })
    );
    assert!(out.contains(&Step::Pause));
    out.clear();
    // Fetched before the pause took effect: held, up to half the buffer more.
    assert_eq!(p.admit(4, 0, None, (), &mut out), Admitted::Tracked);
    assert_eq!(p.admit(5, 0, None, (), &mut out), Admitted::Tracked);
    assert!(!out.contains(&Step::Pause), "paused once");
    out.clear();
    assert_eq!(p.admit(6, 0, None, (), &mut out), Admitted::Dropped);
    assert_eq!(p.admit(7, 0, None, (), &mut out), Admitted::Dropped);
    for o in 0..3 {
        p.finish(o, None, &mut seq, &mut out);
    }
    assert!(out.is_empty(), "still above half the buffer");
    p.finish(3, None, &mut seq, &mut out);
    assert_eq!(
        out,
        vec![Step::Resume(Some(Rewind {
            offset: 6,
            epoch: 1
        }))]
    );
    out.clear();
    assert_eq!(
        p.admit(7, 0, None, (), &mut out),
        Admitted::Stale,
        "stale copy"
    );
    assert_eq!(p.admit(6, 1, None, (), &mut out), Admitted::Tracked);
}

#[test]
fn a_pause_that_dropped_nothing_resumes_without_a_rewind() {
    let mut p = Partition::<(), Bytes>::new(1, 4, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    for o in 0..6 {
        assert_eq!(p.admit(o, 0, None, (), &mut out), Admitted::Tracked);
    }
    assert_eq!(out.iter().filter(|s| **s == Step::Pause).count(), 1);
    out.clear();
    for o in 0..4 {
        p.finish(o, None, &mut seq, &mut out);
    }
    assert_eq!(out, vec![Step::Resume(None)], "nothing to re-read");
    out.clear();
    assert_eq!(p.admit(6, 0, None, (), &mut out), Admitted::Tracked);
}

#[test]
fn once_a_record_is_dropped_every_later_one_is_until_the_resume() {
    // 6 is dropped at the hold limit; a finish then makes room below the limit, but 7
    // must not be tracked: a commit could otherwise pass 6, which is not tracked.
    let mut p = Partition::<(), Bytes>::new(1, 4, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    for o in 0..6 {
        p.admit(o, 0, None, (), &mut out);
    }
    assert_eq!(p.admit(6, 0, None, (), &mut out), Admitted::Dropped);
    p.finish(0, None, &mut seq, &mut out);
    assert_eq!(p.admit(7, 0, None, (), &mut out), Admitted::Dropped);
    for o in 1..6 {
        p.finish(o, None, &mut seq, &mut out);
    }
    let (snap, _) = p.commit(true, 4000).unwrap();
    assert_eq!(snap.base, 6, "the commit stops at the first dropped record");
}

#[test]
fn records_finished_before_are_skipped_on_resume() {
    let earlier = decode(
        encode(
            &Snapshot {
                base: 10,
                end: 20,
                unfinished: vec![10..11, 15..16],
                leader_epoch: -1,
            },
            4000,
        )
        .text
        .as_bytes(),
        10,
    );
    let mut p = Partition::<(), Bytes>::new(1, 100, earlier);
    let mut out = Vec::new();
    let admitted: Vec<Admitted> = (10..22)
        .map(|o| p.admit(o, 0, lane(o as u8), (), &mut out))
        .collect();
    let skipped = admitted.iter().filter(|a| **a == Admitted::Skipped).count();
    assert_eq!(skipped, 8);
    let snap = p.commit_snapshot(false).unwrap();
    assert_eq!(snap.base, 10);
    assert_eq!(snap.unfinished, vec![10..11, 15..16, 20..22]);
}

#[test]
fn a_revoked_partition_starts_nothing_and_keeps_its_watermark() {
    let mut p = Partition::<(), Bytes>::new(1, 100, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    p.admit(0, 0, lane(1), (), &mut out);
    p.admit(1, 0, lane(1), (), &mut out);
    p.revoke();
    out.clear();
    p.finish(0, lane(1), &mut seq, &mut out);
    assert!(out.is_empty());
    assert_eq!(p.admit(2, 0, lane(2), (), &mut out), Admitted::Ignored);
    assert_eq!(p.final_snapshot().unwrap().base, 1);
}

#[test]
fn a_position_past_transaction_markers_is_committed_once_nothing_is_unfinished() {
    let mut p = Partition::<(), Bytes>::new(1, 100, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    assert!(p.passed(4, 0), "only markers read since the assignment");
    assert_eq!(p.commit_snapshot(false).unwrap().base, 4);
    for o in 4..6 {
        p.admit(o, 0, None, (), &mut out);
    }
    // Records 4 and 5, then the transaction's commit marker at 6.
    assert!(!p.passed(7, 0), "record 5 is still unfinished");
    p.finish(5, None, &mut seq, &mut out);
    assert!(!p.passed(7, 0), "record 4 is still unfinished");
    p.finish(4, None, &mut seq, &mut out);
    assert_eq!(p.commit_snapshot(false).unwrap().base, 6);
    assert!(!p.passed(6, 0), "no further than the records");
    assert!(p.passed(7, 0));
    assert_eq!(p.commit_snapshot(false).unwrap().base, 7, "past the marker");
    assert!(!p.passed(5, 0), "an older position never takes it back");
    assert_eq!(p.commit_snapshot(true).unwrap().base, 7);
    p.revoke();
    assert!(!p.passed(9, 0), "not while being revoked");
}

/// The consumer's position only rises: after a log starts over (a topic made again) it
/// may still stand at the old log's end, past new records not read yet.
#[test]
fn positions_count_for_nothing_once_the_log_started_over() {
    let mut p = Partition::<(), Bytes>::new(1, 100, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    for o in 0..10 {
        p.admit(o, 0, None, (), &mut out);
        p.finish(o, None, &mut seq, &mut out);
    }
    assert!(p.passed(11, 0), "a marker at 10");
    // The new log's first record; its 1..20 are still to come.
    p.admit(0, 0, None, (), &mut out);
    p.finish(0, None, &mut seq, &mut out);
    assert_eq!(p.commit_snapshot(false).unwrap().base, 1);
    assert!(!p.passed(11, 0), "the old log's position");
    assert_eq!(p.commit_snapshot(true).unwrap().base, 1);

    // Truncated by a newer leader alike.
    let mut p = Partition::<(), Bytes>::new(1, 100, None);
    p.admit_from_leader(0, 0, 1, None, (), &mut out);
    p.admit_from_leader(1, 0, 1, None, (), &mut out);
    p.admit_from_leader(1, 0, 2, None, (), &mut out);
    for o in [0, 1, 1] {
        p.finish(o, None, &mut seq, &mut out);
    }
    assert!(!p.passed(5, 0));
}

#[test]
fn a_position_read_before_a_rewind_took_effect_is_ignored() {
    let mut p = Partition::<(), Bytes>::new(1, 2, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    for o in 0..3 {
        assert_eq!(p.admit(o, 0, None, (), &mut out), Admitted::Tracked);
    }
    assert_eq!(p.admit(3, 0, None, (), &mut out), Admitted::Dropped);
    assert_eq!(p.admit(4, 0, None, (), &mut out), Admitted::Dropped);
    for o in 0..3 {
        p.finish(o, None, &mut seq, &mut out);
    }
    assert_eq!(
        out.last(),
        Some(&Step::Resume(Some(Rewind {
            offset: 3,
            epoch: 1
        })))
    );
    // Read before the seek back to 3 took effect: records 3 and 4 were read, not kept.
    assert!(!p.passed(5, 0), "a position from before the rewind");
    assert_eq!(p.commit_snapshot(true).unwrap().base, 3);
    assert_eq!(p.admit(3, 1, None, (), &mut out), Admitted::Tracked);
    assert_eq!(p.admit(4, 1, None, (), &mut out), Admitted::Tracked);
    assert!(!p.passed(6, 1), "records 3 and 4 are unfinished");
    p.finish(3, None, &mut seq, &mut out);
    p.finish(4, None, &mut seq, &mut out);
    assert!(p.passed(6, 1), "read again, past a marker at 5");
    assert_eq!(p.commit_snapshot(false).unwrap().base, 6);
}

/// One operation of the random interleaving.
#[derive(Debug, Clone)]
enum Op {
    /// Poll the next record from the fetch position.
    Poll {
        key: u8,
    },
    /// A delivery ends: finished or abandoned.
    End {
        pick: prop::sample::Index,
        abandon: bool,
    },
    /// A batching sink joins the next waiting record of the lane of `key` to the batch
    /// its started records are in.
    Join {
        key: u8,
    },
    /// Take a commit snapshot.
    Commit,
    Revoke,
    /// The log holds a transaction marker at the fetch position: read, never handed over.
    Marker,
    /// The poll thread reports the consumer's position (one past what it read).
    Position,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..6).prop_map(|key| Op::Poll { key }),
        5 => (any::<prop::sample::Index>(), prop::bool::weighted(0.1)).prop_map(|(pick, abandon)| Op::End { pick, abandon }),
        2 => (0u8..6).prop_map(|key| Op::Join { key }),
        1 => Just(Op::Commit),
        1 => Just(Op::Revoke),
        1 => Just(Op::Marker),
        1 => Just(Op::Position),
    ]
}

/// A broker log with a fetch position that honours pause, resume and rewinds, the way the
/// poll thread and librdkafka do (records already fetched keep coming after a pause).
struct Model {
    keys: HashMap<i64, u8>,
    fetch: i64,
    fetch_epoch: u64,
    paused: bool,
    in_flight: Vec<(i64, Option<Bytes>)>,
    finished: BTreeSet<i64>,
    last_epoch: u64,
    /// Offsets holding a transaction marker, not a record.
    markers: BTreeSet<i64>,
}

impl Model {
    /// `take_next` on the lane of `key`: a record joined to the lane's batch must be the
    /// lane's next in offset order, with every earlier one finished or in that batch.
    fn join(&mut self, p: &mut Partition<(), Bytes>, key: u8) -> Result<(), TestCaseError> {
        let l = lane(key).expect("a lane");
        let peeked = p.peek_next(&l).map(|(o, _)| o);
        let taken = p.take_next(&l).map(|(o, _)| o);
        prop_assert_eq!(peeked, taken, "peek_next and take_next disagree");
        let Some(offset) = taken else { return Ok(()) };
        prop_assert!(
            self.in_flight.iter().any(|(_, x)| x.as_ref() == Some(&l)),
            "record {} joined a lane with nothing in flight",
            offset
        );
        prop_assert!(
            (0..offset).all(|o| self.keys.get(&o) != Some(&key)
                || self.finished.contains(&o)
                || self.in_flight.iter().any(|(f, _)| *f == o)),
            "record {} joined before an earlier one of its lane",
            offset
        );
        prop_assert!(
            self.in_flight
                .iter()
                .filter(|(_, x)| x.as_ref() == Some(&l))
                .all(|(f, _)| *f < offset),
            "record {} joined behind a later one",
            offset
        );
        self.in_flight.push((offset, Some(l)));
        Ok(())
    }

    fn apply(&mut self, steps: &mut Vec<Step<(), Bytes>>) -> Result<(), TestCaseError> {
        for step in steps.drain(..) {
            match step {
                Step::Start { offset, lane, .. } => {
                    if let Some(l) = &lane {
                        prop_assert!(
                            !self.in_flight.iter().any(|(_, x)| x.as_ref() == Some(l)),
                            "two records of one lane in flight"
                        );
                        prop_assert!(
                            (0..offset)
                                .all(|o| self.keys.get(&o).map(|k| vec![*k]) != Some(l.to_vec())
                                    || self.finished.contains(&o)),
                            "record {} started before an earlier one of its lane finished",
                            offset
                        );
                    }
                    self.in_flight.push((offset, lane));
                }
                Step::Pause => {
                    prop_assert!(!self.paused, "paused twice");
                    self.paused = true;
                }
                Step::Resume(rewind) => {
                    prop_assert!(self.paused, "resumed while not paused");
                    self.paused = false;
                    if let Some(r) = rewind {
                        prop_assert!(r.epoch > self.last_epoch, "epochs must increase");
                        self.last_epoch = r.epoch;
                        self.fetch = r.offset;
                        self.fetch_epoch = r.epoch;
                    }
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    /// Over any interleaving: never commit past an unfinished record, never claim an
    /// unfinished record finished in the map, one in flight per lane, epochs increase.
    #[test]
    fn never_commits_past_an_unfinished_record(ops in proptest::collection::vec(arb_op(), 1..300), buffer in 2usize..12) {
        let mut p = Partition::<(), Bytes>::new(1, buffer, None);
        let mut seq = Sequence::default();
        let mut out = Vec::new();
        let mut m = Model { keys: HashMap::new(), fetch: 0, fetch_epoch: 0, paused: false, in_flight: vec![], finished: BTreeSet::new(), last_epoch: 0, markers: BTreeSet::new() };
        let mut tracked: HashSet<i64> = HashSet::new();
        let mut revoked = false;
        for op in ops {
            match op {
                Op::Poll { key } => {
                    // A marker read again after a rewind is skipped again.
                    while m.markers.contains(&m.fetch) { m.fetch += 1; }
                    let o = m.fetch;
                    let key = *m.keys.entry(o).or_insert(key);
                    // After a pause librdkafka may still hand out a few records; the model
                    // keeps fetching and lets the core drop them.
                    let admitted = p.admit(o, m.fetch_epoch, lane(key), (), &mut out);
                    if admitted == Admitted::Tracked { tracked.insert(o); }
                    m.fetch += 1;
                    m.apply(&mut out)?;
                }
                Op::End { pick, abandon } => {
                    if m.in_flight.is_empty() { continue; }
                    let (o, l) = m.in_flight.remove(pick.index(m.in_flight.len()));
                    if abandon { p.abandon(o, l); } else { m.finished.insert(o); p.finish(o, l, &mut seq, &mut out); }
                    m.apply(&mut out)?;
                }
                Op::Commit => {
                    if let Some(s) = p.commit_snapshot(true) {
                        for &t in &tracked {
                            if !m.finished.contains(&t) { prop_assert!(s.base <= t, "commit {} passed unfinished {}", s.base, t); }
                        }
                        let e = encode(&s, 60);
                        if let Some(map) = decode(e.text.as_bytes(), s.base) {
                            for o in s.base..s.end {
                                if map.is_finished(o) { prop_assert!(m.finished.contains(&o) || !m.keys.contains_key(&o), "map claims {} finished", o); }
                            }
                        }
                    }
                }
                Op::Join { key } => m.join(&mut p, key)?,
                Op::Revoke => { p.revoke(); revoked = true; }
                // Only where the log has no record yet (a rewind reads the same log again).
                Op::Marker => {
                    if !m.keys.contains_key(&m.fetch) { m.markers.insert(m.fetch); m.fetch += 1; }
                }
                Op::Position => { p.passed(m.fetch, m.fetch_epoch); }
            }
        }
        if !revoked {
            // Everything in flight finishes; the watermark never passes a record that was
            // polled but dropped or abandoned.
            while let Some((o, l)) = m.in_flight.pop() { m.finished.insert(o); p.finish(o, l, &mut seq, &mut out); m.apply(&mut out)?; }
            if let Some(s) = p.final_snapshot() {
                let first_unfinished = (0..m.fetch).find(|o| !m.finished.contains(o) && !m.markers.contains(o));
                if let Some(u) = first_unfinished { prop_assert!(s.base <= u); }
            }
        }
    }
}

#[test]
fn an_inherited_map_over_three_quarters_of_the_budget_is_kept_whole() {
    // An earlier owner's map: every 50th record unfinished up to 35,000 (over ¾ of 4000 B).
    let earlier = Snapshot {
        base: 0,
        end: 35_000,
        unfinished: (0..700).map(|i| i * 50..i * 50 + 1).collect(),
        leader_epoch: -1,
    };
    let text = encode(&earlier, usize::MAX).text;
    assert!(text.len() > 3000 && text.len() <= 4000);
    let mut p = Partition::<(), Bytes>::new(1, 1000, decode(text.as_bytes(), 0));
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    for o in 0..10 {
        p.admit(o, 0, lane(1), (), &mut out);
    }
    out.clear();
    let (snap, encoded) = p.commit(true, 4000).unwrap();
    assert!(!out.contains(&Step::Pause));
    assert_eq!(snap.base, 0);
    assert!(!encoded.truncated, "it was written within the budget");
    let carried = decode(encoded.text.as_bytes(), 0).expect("a map");
    assert!(carried.is_finished(20_001) && !carried.is_finished(20_000));
    // Still skipped after the commit: the takeover does not redeliver them.
    assert_eq!(p.admit(10, 0, lane(1), (), &mut out), Admitted::Skipped);
    p.finish(0, lane(1), &mut seq, &mut out);
    assert!(!p.is_paused());
}

#[test]
fn a_key_stuck_in_retry_never_pauses_the_rest_of_its_partition() {
    // 1 % of the traffic on one key whose head never finishes; every other record
    // finishes at once. The map soon outgrows the budget (its old pause point was about
    // 600 scattered unfinished records, ~60k offsets): it is cut, the partition flows.
    let mut p = Partition::<(), Bytes>::new(1, 5000, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    let stuck = lane(0);
    let mut truncated = 0;
    for o in 0..200_000i64 {
        let key = if o % 100 == 0 {
            stuck.clone()
        } else {
            lane(1 + (o % 7) as u8)
        };
        assert_eq!(
            p.admit(o, 0, key.clone(), (), &mut out),
            Admitted::Tracked,
            "offset {o}"
        );
        for step in out.drain(..) {
            match step {
                Step::Start { offset, lane, .. } if lane != stuck => {
                    p.finish(offset, lane, &mut seq, &mut Vec::new())
                }
                Step::Start { .. } => {}
                other => panic!("offset {o}: {other:?}"),
            }
        }
        if o % 1000 == 999 {
            let (snap, encoded) = p.commit(false, 4000).expect("progress to commit");
            assert_eq!(snap.base, 0, "the stuck head holds the watermark");
            assert!(encoded.text.len() <= 4000);
            truncated += usize::from(encoded.truncated);
            let map = decode(encoded.text.as_bytes(), 0).expect("a map");
            assert!((0..=o).step_by(100).all(|s| !map.is_finished(s)));
        }
    }
    assert!(truncated > 0, "the test reaches the budget");
    assert!(!p.is_paused());
}

#[test]
fn records_of_a_newer_leader_epoch_than_the_map_are_delivered_not_skipped() {
    // The earlier owner finished 10..20 under leader epoch 3.
    let earlier = Snapshot {
        base: 10,
        end: 20,
        unfinished: std::iter::once(10..11).collect(),
        leader_epoch: 3,
    };
    let text = encode(&earlier, 4000).text;
    assert!(text.starts_with("hb2:"), "{text}");
    let mut p = Partition::<(), Bytes>::new(1, 100, decode(text.as_bytes(), 10));
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    assert_eq!(
        p.admit_from_leader(10, 0, 3, lane(1), (), &mut out),
        Admitted::Tracked
    );
    assert_eq!(
        p.admit_from_leader(11, 0, 3, lane(2), (), &mut out),
        Admitted::Skipped
    );
    // An unclean leader election reused offsets 12..: new records under epoch 4.
    assert_eq!(
        p.admit_from_leader(12, 0, 4, lane(3), (), &mut out),
        Admitted::Tracked
    );
    assert_eq!(
        p.admit_from_leader(13, 0, 3, lane(4), (), &mut out),
        Admitted::Tracked,
        "the map is not trusted past a newer epoch"
    );
    p.finish(10, lane(1), &mut seq, &mut out);
    let (snap, encoded) = p.commit(true, 4000).unwrap();
    assert_eq!(
        snap.leader_epoch, 4,
        "the map written now knows the newer epoch"
    );
    assert_eq!(snap.base, 12);
    assert!(encoded.text.starts_with("hb2:R:12:4:"), "{}", encoded.text);
}

#[test]
fn maps_without_an_epoch_are_still_read_and_trusted_by_offset() {
    let old = "hb1:R:10:1.9";
    let mut p = Partition::<(), Bytes>::new(1, 100, decode(old.as_bytes(), 10));
    let mut out = Vec::new();
    assert_eq!(
        p.admit_from_leader(11, 0, 9, lane(1), (), &mut out),
        Admitted::Skipped
    );
    assert_eq!(p.admit(12, 0, lane(1), (), &mut out), Admitted::Skipped);
}

#[test]
fn a_spent_memory_budget_pauses_until_it_has_room_and_rewinds() {
    let mut p = Partition::<(), Bytes>::new(1, 100, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    p.memory_spent(&mut out);
    assert!(out.is_empty() && !p.is_paused(), "nothing held: no pause");
    p.admit(0, 0, lane(1), (), &mut out);
    p.admit(1, 0, lane(2), (), &mut out);
    out.clear();
    p.memory_spent(&mut out);
    assert_eq!(out, vec![Step::Pause]);
    out.clear();
    assert_eq!(p.admit(2, 0, lane(3), (), &mut out), Admitted::Dropped);
    // Finishing some of its records does not resume it: the budget is process-wide.
    p.finish(0, lane(1), &mut seq, &mut out);
    assert!(out.is_empty() && p.is_paused());
    p.memory_freed(&mut seq, &mut out);
    assert!(matches!(
        out.as_slice(),
        [Step::Resume(Some(Rewind { offset: 2, .. }))]
    ));
    assert!(!p.is_paused());
}

#[test]
fn a_partition_holding_nothing_takes_records_while_the_budget_is_spent() {
    // Another partition's stuck key may hold the budget for good: this one still makes
    // progress, a few records at a time.
    let mut p = Partition::<(), Bytes>::new(1, 100, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    p.admit(0, 0, lane(1), (), &mut out);
    out.clear();
    p.memory_spent(&mut out);
    assert_eq!(p.admit(1, 0, lane(1), (), &mut out), Admitted::Dropped);
    out.clear();
    p.finish(0, lane(1), &mut seq, &mut out);
    assert!(matches!(
        out.as_slice(),
        [Step::Resume(Some(Rewind { offset: 1, .. }))]
    ));
}

#[test]
fn a_partition_paused_for_both_reasons_resumes_when_both_cleared() {
    let mut p = Partition::<(), Bytes>::new(1, 2, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    p.admit(0, 0, None, (), &mut out);
    p.admit(1, 0, None, (), &mut out);
    assert_eq!(out.iter().filter(|s| **s == Step::Pause).count(), 1);
    out.clear();
    p.memory_spent(&mut out);
    assert!(out.is_empty(), "already paused");
    p.finish(0, None, &mut seq, &mut out);
    assert!(out.is_empty(), "the memory budget still holds it");
    p.memory_freed(&mut seq, &mut out);
    assert_eq!(out, vec![Step::Resume(None)]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// The same invariants with what the review found the first property never used: an
    /// earlier owner's map (records it finished are skipped, never delivered again, and
    /// never the reason the watermark passes an unfinished one), commits cut to a small
    /// metadata budget, and pauses for the memory budget.
    #[test]
    fn with_an_inherited_map_a_budget_and_memory_pauses_nothing_is_skipped_wrongly(
        ops in proptest::collection::vec(arb_op(), 1..300),
        buffer in 2usize..12,
        earlier in proptest::collection::vec(any::<bool>(), 0..40),
        budget in 12usize..120,
        memory in proptest::collection::vec(any::<bool>(), 0..300),
        map_epoch in -1i32..3,
        first_epoch in 0i32..3,
        leader_changes in proptest::collection::vec(0i64..80, 0..3),
    ) {
        // The partition leader epoch each record was written under: it steps up at each
        // leader change (offsets go on). A record newer than the earlier owner's map must
        // never be skipped by it.
        let epoch_of = |o: i64| first_epoch + leader_changes.iter().filter(|c| **c <= o).count() as i32;
        let earlier_finished: BTreeSet<i64> = (0i64..).zip(&earlier).filter(|(_, f)| **f).map(|(o, _)| o).collect();
        let mut unfinished: Vec<std::ops::Range<i64>> = Vec::new();
        for (o, f) in (0i64..).zip(&earlier) {
            if !*f {
                match unfinished.last_mut() {
                    Some(r) if r.end == o => r.end = o + 1,
                    _ => unfinished.push(o..o + 1),
                }
            }
        }
        let snap = Snapshot { base: 0, end: earlier.len() as i64, unfinished, leader_epoch: map_epoch };
        let inherited = decode(encode(&snap, usize::MAX).text.as_bytes(), 0);
        let mut p = Partition::<(), Bytes>::new(1, buffer, inherited);
        let mut seq = Sequence::default();
        let mut out = Vec::new();
        let mut m = Model { keys: HashMap::new(), fetch: 0, fetch_epoch: 0, paused: false, in_flight: vec![], finished: BTreeSet::new(), last_epoch: 0, markers: BTreeSet::new() };
        let mut tracked: HashSet<i64> = HashSet::new();
        let mut memory = memory.into_iter();
        let mut revoked = false;
        for op in ops {
            match memory.next() {
                Some(true) => { p.memory_spent(&mut out); m.apply(&mut out)?; }
                Some(false) => { p.memory_freed(&mut seq, &mut out); m.apply(&mut out)?; }
                None => {}
            }
            match op {
                Op::Poll { key } => {
                    // A marker read again after a rewind is skipped again.
                    while m.markers.contains(&m.fetch) { m.fetch += 1; }
                    let o = m.fetch;
                    let key = *m.keys.entry(o).or_insert(key);
                    match p.admit_from_leader(o, m.fetch_epoch, epoch_of(o), lane(key), (), &mut out) {
                        Admitted::Tracked => { tracked.insert(o); }
                        Admitted::Skipped => {
                            prop_assert!(earlier_finished.contains(&o), "skipped {} the earlier owner did not finish", o);
                            prop_assert!(map_epoch < 0 || epoch_of(o) <= map_epoch, "skipped {} of epoch {} newer than the map's {}", o, epoch_of(o), map_epoch);
                            m.finished.insert(o);
                        }
                        Admitted::Dropped | Admitted::Stale | Admitted::Ignored => {}
                    }
                    m.fetch += 1;
                    m.apply(&mut out)?;
                }
                Op::End { pick, abandon } => {
                    if m.in_flight.is_empty() { continue; }
                    let (o, l) = m.in_flight.remove(pick.index(m.in_flight.len()));
                    if abandon { p.abandon(o, l); } else { m.finished.insert(o); p.finish(o, l, &mut seq, &mut out); }
                    m.apply(&mut out)?;
                }
                Op::Commit => {
                    if let Some((s, e)) = p.commit(true, budget) {
                        prop_assert!(e.text.len() <= budget);
                        for &t in &tracked {
                            if !m.finished.contains(&t) { prop_assert!(s.base <= t, "commit {} passed unfinished {}", s.base, t); }
                        }
                        if let Some(map) = decode(e.text.as_bytes(), s.base) {
                            for o in s.base..map.end() {
                                if map.is_finished(o) {
                                    prop_assert!(
                                        m.finished.contains(&o) || earlier_finished.contains(&o) || !m.keys.contains_key(&o),
                                        "map claims {} finished", o
                                    );
                                }
                            }
                        }
                    }
                }
                Op::Join { key } => m.join(&mut p, key)?,
                Op::Revoke => { p.revoke(); revoked = true; }
                // Only where the log has no record yet (a rewind reads the same log again).
                Op::Marker => {
                    if !m.keys.contains_key(&m.fetch) { m.markers.insert(m.fetch); m.fetch += 1; }
                }
                Op::Position => { p.passed(m.fetch, m.fetch_epoch); }
            }
        }
        if !revoked {
            while let Some((o, l)) = m.in_flight.pop() { m.finished.insert(o); p.finish(o, l, &mut seq, &mut out); m.apply(&mut out)?; }
            if let Some(s) = p.final_snapshot() {
                let first_unfinished = (0..m.fetch).find(|o| !m.finished.contains(o) && !earlier_finished.contains(o) && !m.markers.contains(o));
                if let Some(u) = first_unfinished { prop_assert!(s.base <= u); }
            }
        }
    }
}

#[test]
fn a_log_truncated_under_a_member_reading_it_never_maps_or_finishes_the_new_records() {
    let mut p = Partition::<(), Bytes>::new(1, 1000, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    // 100..120 read under leader epoch 8; 110..120 finish, 100..110 still delivering.
    for o in 100..120 {
        p.admit_from_leader(o, 0, 8, Some(Bytes::from(format!("old{o}"))), (), &mut out);
    }
    for o in 110..120 {
        p.finish(o, Some(Bytes::from(format!("old{o}"))), &mut seq, &mut out);
    }
    // An unclean leader election truncates the log to 105; new records from 105 are
    // written under epoch 9 and read by this member.
    for o in 105..118 {
        assert_eq!(
            p.admit_from_leader(o, 0, 9, Some(Bytes::from(format!("new{o}"))), (), &mut out),
            Admitted::Tracked
        );
    }
    // The old records at 105 (the first truncated offset) and 107 finish: the new
    // records there are not finished by them.
    p.finish(107, Some(Bytes::from("old107")), &mut seq, &mut out);
    for o in 100..=105 {
        p.finish(o, Some(Bytes::from(format!("old{o}"))), &mut seq, &mut out);
    }
    let (snap, encoded) = p.commit(true, 4000).unwrap();
    assert_eq!(
        snap.base, 105,
        "nothing of the new log is committed unfinished"
    );
    let map = decode(encoded.text.as_bytes(), snap.base);
    for o in 105..125 {
        assert!(
            !map.as_ref().is_some_and(|m| m.skips(o, 9)),
            "the next owner would skip the new record ({o}, 9): {}",
            encoded.text
        );
    }
    // Once the old records there are done, the new ones count as usual.
    for o in 106..110 {
        if o != 107 {
            p.finish(o, Some(Bytes::from(format!("old{o}"))), &mut seq, &mut out);
        }
    }
    for o in 105..118 {
        p.finish(o, Some(Bytes::from(format!("new{o}"))), &mut seq, &mut out);
    }
    let (snap, _) = p.commit(true, 4000).unwrap();
    assert_eq!(snap.base, 118);
}

#[test]
fn a_log_that_starts_over_below_the_watermark_brings_the_commit_back_down() {
    // 0..100 delivered and committable at 100; the topic is deleted and created again,
    // and the consumer's position reset to the new log's start.
    let mut p = Partition::<(), Bytes>::new(1, 1000, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    for o in 0..100 {
        p.admit_from_leader(o, 0, 6, lane(o as u8), (), &mut out);
        p.finish(o, lane(o as u8), &mut seq, &mut out);
    }
    assert_eq!(p.commit(true, 4000).unwrap().0.base, 100);
    // The new log's records are delivered, and nothing past them is committed.
    for o in 0..50 {
        let admitted = p.admit_from_leader(o, 0, 0, lane(o as u8), (), &mut out);
        assert_eq!(admitted, Admitted::Tracked);
    }
    assert_eq!(
        p.commit(true, 4000).unwrap().0.base,
        0,
        "the first new record is owed"
    );
    for o in 0..50 {
        p.finish(o, lane(o as u8), &mut seq, &mut out);
    }
    let (snap, _) = p.commit(true, 4000).unwrap();
    assert_eq!(snap.base, 50);
    assert_eq!(
        snap.leader_epoch, 0,
        "the new log's epoch, not the old one's"
    );
}

#[test]
fn a_record_polled_behind_unfinished_ones_of_the_same_log_holds_the_commit() {
    // The poll thread took 101..110 ahead of 100 (held in the consumer's own queue): 100
    // arrives below unfinished records. Forgetting them would let the commit pass them.
    let mut p = Partition::<(), Bytes>::new(1, 1000, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    for o in 101..110 {
        p.admit(o, 0, lane(o as u8), (), &mut out);
    }
    p.finish(101, lane(101), &mut seq, &mut out);
    assert_eq!(p.admit(100, 0, lane(100), (), &mut out), Admitted::Tracked);
    assert_eq!(p.commit(true, 4000).unwrap().0.base, 100);
    p.finish(100, lane(100), &mut seq, &mut out);
    assert_eq!(
        p.commit(true, 4000).unwrap().0.base,
        102,
        "102..110 still delivering"
    );
    for o in 102..110 {
        p.finish(o, lane(o as u8), &mut seq, &mut out);
    }
    assert_eq!(p.commit(true, 4000).unwrap().0.base, 110);
    // Behind finished ones only, it lowers the commit for a while: delivered twice at
    // worst after a crash, never passed.
    assert_eq!(p.admit(99, 0, lane(99), (), &mut out), Admitted::Tracked);
    assert_eq!(p.commit(true, 4000).unwrap().0.base, 99);
    p.finish(99, lane(99), &mut seq, &mut out);
    p.admit(110, 0, lane(110), (), &mut out);
    assert_eq!(p.commit(true, 4000).unwrap().0.base, 110);
}

#[test]
fn an_earlier_owner_s_map_is_dropped_for_records_below_it() {
    // The map says 100..103 was finished; the position was reset under it to 0 (the
    // topic made again): the new log's 100..103 are delivered, not skipped.
    let earlier = Snapshot {
        base: 100,
        end: 103,
        unfinished: Vec::new(),
        leader_epoch: -1,
    };
    let map = decode(encode(&earlier, 100).text.as_bytes(), 100).unwrap();
    let mut p = Partition::<(), Bytes>::new(1, 1000, Some(map));
    let mut out = Vec::new();
    p.admit(0, 0, lane(0), (), &mut out);
    assert_eq!(p.admit(101, 0, lane(1), (), &mut out), Admitted::Tracked);
}

#[test]
fn an_old_record_abandoned_after_a_truncation_does_not_hold_the_new_one_at_its_offset() {
    let mut p = Partition::<(), Bytes>::new(1, 1000, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    p.admit_from_leader(10, 0, 1, lane(1), (), &mut out);
    p.admit_from_leader(11, 0, 1, lane(2), (), &mut out);
    p.finish(10, lane(1), &mut seq, &mut out);
    // Truncated to 11; the old 11 will never finish (no DLQ for its permanent failure).
    p.admit_from_leader(11, 0, 2, lane(3), (), &mut out);
    p.abandon(11, lane(2));
    p.finish(11, lane(3), &mut seq, &mut out);
    assert_eq!(p.commit(true, 4000).unwrap().0.base, 12);
}

/// One operation of the lifecycle property below: everything the dispatcher can do to a
/// partition, including a revoke followed by a reassignment that inherits the map the
/// revoked owner committed.
#[derive(Debug, Clone)]
enum Act {
    Poll {
        key: u8,
    },
    /// A copy fetched before the latest rewind arrives late.
    Stale {
        back: u8,
    },
    End {
        pick: prop::sample::Index,
        abandon: bool,
    },
    /// A periodic commit with the map cut to `budget` bytes.
    Commit {
        force: bool,
        budget: u8,
    },
    Memory {
        spent: bool,
    },
    /// The log's leader changes: records written from now on carry a newer leader epoch.
    NewLeader,
    /// A batching sink joins the next waiting record of an in-flight record's lane to
    /// its batch.
    Join {
        pick: prop::sample::Index,
    },
    /// Revoke, let the deliveries in flight end late, and reassign from the commit.
    Reassign {
        finish_late: bool,
    },
}

fn arb_act() -> impl Strategy<Value = Act> {
    prop_oneof![
        8 => (0u8..6).prop_map(|key| Act::Poll { key }),
        1 => (1u8..8).prop_map(|back| Act::Stale { back }),
        6 => (any::<prop::sample::Index>(), prop::bool::weighted(0.2))
            .prop_map(|(pick, abandon)| Act::End { pick, abandon }),
        3 => (any::<bool>(), 4u8..24).prop_map(|(force, budget)| Act::Commit { force, budget }),
        2 => any::<bool>().prop_map(|spent| Act::Memory { spent }),
        1 => Just(Act::NewLeader),
        3 => any::<prop::sample::Index>().prop_map(|pick| Act::Join { pick }),
        1 => any::<bool>().prop_map(|finish_late| Act::Reassign { finish_late }),
    ]
}

/// Which of the rarer paths one case reached.
#[derive(Debug, Default, Clone, Copy)]
struct Reach {
    commit: bool,
    commit_cut: bool,
    rewind: bool,
    held_while_paused: bool,
    dropped_past_the_hold: bool,
    memory_pause: bool,
    stale_ignored: bool,
    reassigned: bool,
    inherited_skip: bool,
    inherited_with_epoch_skip: bool,
    map_dropped_by_newer_epoch: bool,
    batch_joined: bool,
}

/// The lifecycle property: any interleaving of polls, late stale copies, ends, commits
/// (forced or not, cut to a small budget), memory pauses, leader changes, revokes and
/// reassignments that resume from the committed map. Checked: the commit never passes an
/// unfinished record, never goes back within one assignment, a map never claims an
/// unfinished record finished, a skipped record was finished before and not written under
/// a newer leader epoch than its map, stale copies are ignored, a revoked partition
/// starts and resumes nothing, one record per lane in flight, epochs only increase.
fn lifecycle(
    acts: Vec<Act>,
    buffer: usize,
    budget: usize,
    earlier: Vec<bool>,
    earlier_epoch: i32,
) -> Result<Reach, TestCaseError> {
    let mut reach = Reach::default();
    // Ground truth: offsets finished for real, by an earlier owner or by this model.
    let mut finished: BTreeSet<i64> = (0i64..)
        .zip(&earlier)
        .filter(|(_, f)| **f)
        .map(|(o, _)| o)
        .collect();
    let mut unfinished: Vec<std::ops::Range<i64>> = Vec::new();
    for (o, f) in (0i64..).zip(&earlier) {
        if !*f {
            match unfinished.last_mut() {
                Some(r) if r.end == o => r.end = o + 1,
                _ => unfinished.push(o..o + 1),
            }
        }
    }
    let snap = Snapshot {
        base: 0,
        end: earlier.len() as i64,
        unfinished,
        leader_epoch: earlier_epoch,
    };
    let mut map = decode(encode(&snap, usize::MAX).text.as_bytes(), 0);
    // The log: key and leader epoch of every offset written so far.
    let mut log: HashMap<i64, (u8, i32)> = HashMap::new();
    let mut leader = earlier_epoch.max(0);
    let mut generation = 1;
    let mut p = Partition::<(), Bytes>::new(generation, buffer, map.clone());
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    let mut m = Model {
        keys: HashMap::new(),
        fetch: 0,
        fetch_epoch: 0,
        paused: false,
        in_flight: vec![],
        finished: BTreeSet::new(),
        last_epoch: 0,
        markers: BTreeSet::new(),
    };
    let mut tracked: HashSet<i64> = HashSet::new();
    let mut last_commit: Option<i64> = None;
    let mut map_dropped = false;
    let mut polled_end = 0i64;
    for act in acts {
        match act {
            Act::Poll { key } => {
                let o = m.fetch;
                polled_end = polled_end.max(o + 1);
                let paused_for_buffer = p.is_paused() && !p.is_memory_paused();
                let (key, epoch) = *log.entry(o).or_insert((key, leader));
                m.keys.insert(o, key);
                let admitted =
                    p.admit_from_leader(o, m.fetch_epoch, epoch, lane(key), (), &mut out);
                match admitted {
                    Admitted::Tracked => {
                        tracked.insert(o);
                        reach.held_while_paused |= paused_for_buffer;
                    }
                    Admitted::Skipped => {
                        prop_assert!(finished.contains(&o), "skipped {} never finished", o);
                        let map = map.as_ref().expect("a skip needs a map");
                        prop_assert!(!map.rewritten(epoch), "skipped {} of a newer epoch", o);
                        prop_assert!(!map_dropped, "skipped {} after the map was dropped", o);
                        m.finished.insert(o);
                        reach.inherited_skip = true;
                        reach.inherited_with_epoch_skip |= earlier_epoch >= 0 || generation > 1;
                    }
                    Admitted::Dropped => reach.dropped_past_the_hold |= paused_for_buffer,
                    Admitted::Stale | Admitted::Ignored => {
                        prop_assert!(false, "a current copy of {} ignored", o)
                    }
                }
                // A dropped record is not looked at: it is re-read on resume.
                if admitted != Admitted::Dropped
                    && map.as_ref().is_some_and(|mp| mp.rewritten(epoch))
                    && !map_dropped
                {
                    map_dropped = true;
                    reach.map_dropped_by_newer_epoch = true;
                }
                prop_assert!(
                    p.outstanding() <= buffer + buffer / 2,
                    "{} tracked, buffer {}",
                    p.outstanding(),
                    buffer
                );
                m.fetch += 1;
                m.apply(&mut out)?;
            }
            Act::Stale { back } => {
                if m.fetch_epoch == 0 {
                    continue;
                }
                let o = (m.fetch - i64::from(back)).max(0);
                let (key, epoch) = log.get(&o).copied().unwrap_or((0, leader));
                let admitted =
                    p.admit_from_leader(o, m.fetch_epoch - 1, epoch, lane(key), (), &mut out);
                prop_assert_eq!(admitted, Admitted::Stale);
                prop_assert!(out.is_empty(), "a stale copy changed something: {:?}", out);
                reach.stale_ignored = true;
            }
            Act::End { pick, abandon } => {
                if m.in_flight.is_empty() {
                    continue;
                }
                let (o, l) = m.in_flight.remove(pick.index(m.in_flight.len()));
                if abandon {
                    p.abandon(o, l);
                } else {
                    m.finished.insert(o);
                    finished.insert(o);
                    p.finish(o, l, &mut seq, &mut out);
                }
                let before = m.last_epoch;
                m.apply(&mut out)?;
                reach.rewind |= m.last_epoch > before;
            }
            Act::Commit { force, budget } => {
                let budget = usize::from(budget);
                let Some((s, e)) = p.commit(force, budget) else {
                    continue;
                };
                reach.commit = true;
                reach.commit_cut |= e.truncated;
                prop_assert!(e.text.len() <= budget);
                prop_assert!(last_commit.is_none_or(|c| c <= s.base), "commit went back");
                last_commit = Some(s.base);
                for &t in &tracked {
                    if !finished.contains(&t) {
                        prop_assert!(s.base <= t, "commit {} passed unfinished {}", s.base, t);
                    }
                }
                // Nor a record polled and dropped (or never tracked at all): every offset
                // below the furthest poll was fetched, so the first one not finished
                // bounds the commit.
                if let Some(u) = (0..polled_end).find(|o| !finished.contains(o)) {
                    prop_assert!(s.base <= u, "commit {} passed unfinished {}", s.base, u);
                }
                if let Some(carried) = decode(e.text.as_bytes(), s.base) {
                    for o in s.base..carried.end() {
                        if carried.is_finished(o) {
                            prop_assert!(
                                finished.contains(&o) || !log.contains_key(&o),
                                "map claims {} finished",
                                o
                            );
                        }
                    }
                }
            }
            Act::Memory { spent } => {
                if spent {
                    p.memory_spent(&mut out);
                    reach.memory_pause |= p.is_memory_paused();
                } else {
                    p.memory_freed(&mut seq, &mut out);
                }
                let before = m.last_epoch;
                m.apply(&mut out)?;
                reach.rewind |= m.last_epoch > before;
            }
            Act::NewLeader => leader += 1,
            Act::Join { pick } => {
                let Some((_, Some(l))) = (!m.in_flight.is_empty())
                    .then(|| m.in_flight[pick.index(m.in_flight.len())].clone())
                else {
                    continue;
                };
                let before = m.in_flight.len();
                m.join(&mut p, l[0])?;
                reach.batch_joined |= m.in_flight.len() > before;
            }
            Act::Reassign { finish_late } => {
                p.revoke();
                // Outcomes of the revoked assignment arrive late: they change its
                // watermark, never start, pause or resume anything.
                for (o, l) in std::mem::take(&mut m.in_flight) {
                    if finish_late {
                        finished.insert(o);
                        p.finish(o, l, &mut seq, &mut out);
                    } else {
                        p.abandon(o, l);
                    }
                    prop_assert!(out.is_empty(), "a revoked partition acted: {:?}", out);
                }
                // Nothing seen: the next owner starts where this one did, with its map.
                if let Some(s) = p.final_snapshot() {
                    for &t in &tracked {
                        if !finished.contains(&t) {
                            prop_assert!(s.base <= t, "final {} passed unfinished {}", s.base, t);
                        }
                    }
                    // The next owner resumes from the commit and the map within the budget.
                    let e = encode(&s, budget);
                    map = decode(e.text.as_bytes(), s.base);
                    map_dropped = false;
                    m.fetch = s.base;
                }
                generation += 1;
                p = Partition::new(generation, buffer, map.clone());
                m.fetch_epoch = 0;
                m.paused = false;
                m.finished.clear();
                m.keys.clear();
                tracked.clear();
                last_commit = None;
                reach.reassigned = true;
            }
        }
    }
    // Everything in flight finishes: the watermark reaches the first unfinished record.
    while let Some((o, l)) = m.in_flight.pop() {
        finished.insert(o);
        m.finished.insert(o);
        p.finish(o, l, &mut seq, &mut out);
        m.apply(&mut out)?;
    }
    if let Some(s) = p.final_snapshot() {
        if let Some(u) = (0..m.fetch).find(|o| !finished.contains(o)) {
            prop_assert!(s.base <= u);
        }
    }
    Ok(reach)
}

fn arb_lifecycle() -> impl Strategy<Value = (Vec<Act>, usize, usize, Vec<bool>, i32)> {
    (
        proptest::collection::vec(arb_act(), 100..300),
        2usize..9,
        8usize..28,
        proptest::collection::vec(prop::bool::weighted(0.7), 0..40),
        -1i32..3,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn a_partition_keeps_the_commit_promise_over_its_whole_lifecycle(
        (acts, buffer, budget, earlier, epoch) in arb_lifecycle()
    ) {
        lifecycle(acts, buffer, budget, earlier, epoch)?;
    }
}

/// The lifecycle property reaches each rarer path in most cases, so a change of weights
/// cannot quietly make it shorter than it looks. Measured over 300 cases with
/// `cargo test --lib the_lifecycle_property_reaches -- --nocapture` (percent of cases):
/// commit 100, commit cut to the budget 99, revoke and reassign 100, inherited map skip 93,
/// skip by a map with a leader epoch 87, map dropped by a newer leader epoch 81, rewind 78,
/// memory pause 100, record held while paused for the buffer 80, record dropped past the
/// hold 61, record joined to a batch 73, stale copy ignored 51
/// (the first property above, as
/// audited in issue 22: rewinds in ~14 % of cases; inherited maps, stale epochs and
/// `commit()` never).
#[test]
fn the_lifecycle_property_reaches_every_path_in_most_cases() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    // A fixed seed: the figures above are reproducible and the test cannot flake.
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strategy = arb_lifecycle();
    let cases = 300;
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    for _ in 0..cases {
        let (acts, buffer, budget, earlier, epoch) =
            strategy.new_tree(&mut runner).unwrap().current();
        let r = lifecycle(acts, buffer, budget, earlier, epoch).unwrap();
        for (name, hit) in [
            ("commit", r.commit),
            ("commit cut to the budget", r.commit_cut),
            ("rewind", r.rewind),
            (
                "record held while paused for the buffer",
                r.held_while_paused,
            ),
            ("record dropped past the hold", r.dropped_past_the_hold),
            ("memory pause", r.memory_pause),
            ("stale copy ignored", r.stale_ignored),
            ("revoke and reassign", r.reassigned),
            ("inherited map skip", r.inherited_skip),
            (
                "skip by a map with a leader epoch",
                r.inherited_with_epoch_skip,
            ),
            (
                "map dropped by a newer leader epoch",
                r.map_dropped_by_newer_epoch,
            ),
            ("record joined to a batch", r.batch_joined),
        ] {
            *counts.entry(name).or_default() += usize::from(hit);
        }
    }
    let mut names: Vec<_> = counts.into_iter().collect();
    names.sort();
    for (name, n) in &names {
        println!("{name}: {}%", n * 100 / cases);
    }
    for (name, n) in names {
        assert!(n * 2 > cases, "{name} reached in only {n} of {cases} cases");
    }
}

#[test]
fn records_joined_to_a_batch_leave_together_and_the_lane_waits_for_all_of_them() {
    let mut p = Partition::<(), Bytes>::new(1, 100, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    for o in 0..4 {
        p.admit(o, 0, lane(1), (), &mut out);
    }
    assert!(matches!(out.as_slice(), [Step::Start { offset: 0, .. }]));
    out.clear();
    let l = lane(1).unwrap();
    assert_eq!(p.peek_next(&l).map(|(o, _)| o), Some(1));
    assert_eq!(p.take_next(&l).map(|(o, _)| o), Some(1));
    assert_eq!(p.take_next(&l).map(|(o, _)| o), Some(2));
    assert_eq!(p.in_flight(), 3);
    // The batch's records finish one by one; the lane's next starts after the last.
    p.finish(1, lane(1), &mut seq, &mut out);
    p.finish(0, lane(1), &mut seq, &mut out);
    assert!(out.is_empty(), "record 2 of the batch is still in flight");
    p.finish(2, lane(1), &mut seq, &mut out);
    assert!(matches!(out.as_slice(), [Step::Start { offset: 3, .. }]));
    assert_eq!(p.commit_snapshot(false).unwrap().base, 3);
    // Nothing waits: nothing to join, and an unknown lane has nothing either.
    assert!(p.take_next(&l).is_none() && p.take_next(&lane(9).unwrap()).is_none());
}

#[test]
fn a_lane_with_an_abandoned_record_never_starts_again() {
    let mut p = Partition::<(), Bytes>::new(1, 100, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    for o in 0..3 {
        p.admit(o, 0, lane(1), (), &mut out);
    }
    let l = lane(1).unwrap();
    assert_eq!(p.take_next(&l).map(|(o, _)| o), Some(1));
    out.clear();
    // Record 0 stops unfinished; record 1 of its batch finishes: 2 must not overtake 0.
    p.abandon(0, lane(1));
    p.finish(1, lane(1), &mut seq, &mut out);
    p.admit(3, 0, lane(1), (), &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert!(p.take_next(&l).is_none());
    assert_eq!(p.commit_snapshot(false).unwrap().base, 0);
}

#[test]
fn a_partition_reports_its_generation_and_the_records_it_holds() {
    // The dispatcher drops outcomes of an earlier assignment by generation and reports
    // what is outstanding; a wrong answer here goes unseen by the rules above.
    let mut p = Partition::<(), Bytes>::new(7, 100, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    assert_eq!(p.generation(), 7);
    assert_eq!((p.outstanding(), p.in_flight()), (0, 0));
    p.admit(0, 0, lane(1), (), &mut out);
    p.admit(1, 0, lane(1), (), &mut out);
    p.admit(2, 0, lane(2), (), &mut out);
    assert_eq!((p.outstanding(), p.in_flight()), (3, 2));
    p.finish(0, lane(1), &mut seq, &mut out);
    assert_eq!((p.outstanding(), p.in_flight()), (2, 2));
    p.finish(1, lane(1), &mut seq, &mut out);
    p.finish(2, lane(2), &mut seq, &mut out);
    assert_eq!((p.outstanding(), p.in_flight()), (0, 0));
}

#[test]
fn a_revoked_partition_never_pauses_for_memory() {
    // Being handed over, it fetches nothing more: a pause (and the resume it would
    // wait for) would be a command for a partition this member no longer reads.
    let mut p = Partition::<(), Bytes>::new(1, 100, None);
    let mut out = Vec::new();
    p.admit(0, 0, None, (), &mut out);
    assert!(!p.is_revoked());
    p.revoke();
    assert!(p.is_revoked());
    out.clear();
    p.memory_spent(&mut out);
    assert!(out.is_empty(), "{out:?}");
    assert!(!p.is_memory_paused() && !p.is_paused());
}

#[test]
fn a_record_read_again_under_the_same_leader_epoch_is_no_truncation() {
    // Only a newer leader epoch below the highest offset seen means the log was cut; a
    // copy of a record read again keeps the inherited map (its records stay skipped).
    let earlier = Snapshot {
        base: 3,
        end: 8,
        unfinished: std::iter::once(3..5).collect(),
        leader_epoch: 4,
    };
    let map = decode(encode(&earlier, 100).text.as_bytes(), 3).unwrap();
    let mut p = Partition::<(), Bytes>::new(1, 100, Some(map));
    let mut out = Vec::new();
    p.admit_from_leader(3, 0, 4, lane(1), (), &mut out);
    p.admit_from_leader(4, 0, 4, lane(2), (), &mut out);
    p.admit_from_leader(3, 0, 4, lane(1), (), &mut out);
    assert_eq!(
        p.admit_from_leader(5, 0, 4, lane(3), (), &mut out),
        Admitted::Skipped
    );
}

#[test]
fn records_of_unknown_leader_epoch_commit_a_map_without_one() {
    // `admit` is for records whose epoch is unknown: their map must not claim one, or
    // a later owner would take every record of a newer epoch for a rewritten log.
    let mut p = Partition::<(), Bytes>::new(1, 100, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    p.admit(0, 0, lane(1), (), &mut out);
    p.admit(1, 0, lane(2), (), &mut out);
    p.finish(1, lane(2), &mut seq, &mut out);
    let (snap, encoded) = p.commit(true, 1000).unwrap();
    assert_eq!(snap.leader_epoch, -1);
    assert!(encoded.text.starts_with("hb1:"), "{}", encoded.text);
}

#[test]
fn a_new_leader_writing_on_at_the_next_offset_is_no_truncation() {
    // A leader change that loses nothing continues the log at the next offset: the
    // inherited map (written under that newer epoch) still holds for its records.
    let earlier = Snapshot {
        base: 3,
        end: 8,
        unfinished: std::iter::once(3..5).collect(),
        leader_epoch: 5,
    };
    let map = decode(encode(&earlier, 100).text.as_bytes(), 3).unwrap();
    let mut p = Partition::<(), Bytes>::new(1, 100, Some(map));
    let mut out = Vec::new();
    p.admit_from_leader(3, 0, 4, lane(1), (), &mut out);
    p.admit_from_leader(4, 0, 4, lane(2), (), &mut out);
    assert_eq!(
        p.admit_from_leader(5, 0, 5, lane(3), (), &mut out),
        Admitted::Skipped
    );
}

#[test]
fn a_commit_is_due_only_when_something_changed_unless_forced() {
    // The periodic commit asks every partition each interval: an unchanged one must not
    // send the same offset again, and a forced one (revoke, shutdown) always answers.
    let mut p = Partition::<(), Bytes>::new(1, 100, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    assert!(p.commit(false, 100).is_none(), "nothing seen yet");
    p.admit(0, 0, lane(1), (), &mut out);
    p.admit(1, 0, lane(2), (), &mut out);
    assert_eq!(p.commit(false, 100).unwrap().0.base, 0);
    assert!(p.commit(false, 100).is_none(), "nothing changed");
    assert_eq!(p.commit(true, 100).unwrap().0.base, 0, "forced");
    p.finish(1, lane(2), &mut seq, &mut out);
    let (snap, _) = p.commit(false, 100).unwrap();
    assert_eq!(
        (snap.base, snap.finished_above()),
        (0, 1),
        "the map changed"
    );
    assert!(p.commit(false, 100).is_none());
    p.finish(0, lane(1), &mut seq, &mut out);
    assert_eq!(p.commit(false, 100).unwrap().0.base, 2);
}

#[test]
fn an_emptied_lane_queue_is_kept_for_the_next_lane_within_its_bounds() {
    let mut p = Partition::<(), Bytes>::new(1, 1000, None);
    let mut seq = Sequence::default();
    let mut out = Vec::new();
    // Lane 0 stays in flight throughout, so the partition is never idle until the end.
    p.admit(1000, 0, lane(0), (), &mut out);
    // A lane that never queued anything leaves no queue worth keeping.
    p.admit(0, 0, lane(1), (), &mut out);
    p.finish(0, lane(1), &mut seq, &mut out);
    assert!(p.spare.is_empty(), "a queue that never grew is not kept");
    // Lane 1 queues three records behind its first, then drains completely.
    for o in 1..5 {
        p.admit(o, 0, lane(1), (), &mut out);
    }
    for o in 1..5 {
        p.finish(o, lane(1), &mut seq, &mut out);
    }
    assert_eq!(p.spare.len(), 1, "its emptied queue is kept");
    let capacity = p.spare[0].capacity();
    assert!(capacity >= 3);
    p.admit(5, 0, lane(2), (), &mut out);
    assert!(p.spare.is_empty(), "the new lane took it");
    assert_eq!(
        p.lanes[&Bytes::from(vec![2u8])].waiting.capacity(),
        capacity
    );
    p.finish(5, lane(2), &mut seq, &mut out);
    assert_eq!(p.spare.len(), 1, "and it came back");
    p.spare.clear();

    // A queue that grew past SPARE_CAPACITY is not kept.
    let big = 6 + SPARE_CAPACITY as i64 + 1;
    for o in 6..=big {
        p.admit(o, 0, lane(3), (), &mut out);
    }
    for o in 6..=big {
        p.finish(o, lane(3), &mut seq, &mut out);
    }
    assert!(p.spare.is_empty());

    // At most SPARE_LANES are kept.
    let keys = 10..10 + SPARE_LANES as u8 + 4;
    for (i, key) in keys.clone().enumerate() {
        p.admit(100 + 2 * i as i64, 0, lane(key), (), &mut out);
        p.admit(101 + 2 * i as i64, 0, lane(key), (), &mut out);
    }
    for (i, key) in keys.enumerate() {
        p.finish(100 + 2 * i as i64, lane(key), &mut seq, &mut out);
        p.finish(101 + 2 * i as i64, lane(key), &mut seq, &mut out);
    }
    assert_eq!(p.spare.len(), SPARE_LANES);

    // Once no lane is in flight, the partition keeps none.
    p.finish(1000, lane(0), &mut seq, &mut out);
    assert!(
        p.spare.is_empty(),
        "an idle partition holds no spare queues"
    );
}

#[test]
fn a_key_names_one_lane_and_other_keys_others() {
    let seed = std::collections::hash_map::RandomState::new();
    let keys: Vec<Vec<u8>> = (0..1000u32).map(|k| format!("k{k}").into_bytes()).collect();
    let lanes: HashSet<LaneId> = keys.iter().map(|k| LaneId::of(&seed, k)).collect();
    assert_eq!(lanes.len(), keys.len(), "a thousand keys, a thousand lanes");
    assert_eq!(LaneId::of(&seed, b"k7"), LaneId::of(&seed, b"k7"));
    // An empty key (not a missing one) is a key like any other.
    assert!(!lanes.contains(&LaneId::of(&seed, b"")));
    // Another sink's keys name other lanes: no producer can aim at one.
    let other = std::collections::hash_map::RandomState::new();
    assert_ne!(LaneId::of(&seed, b"k7"), LaneId::of(&other, b"k7"));
}
