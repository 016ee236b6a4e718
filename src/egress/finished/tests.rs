use super::*;
use proptest::prelude::*;

fn snap(base: i64, end: i64, unfinished: &[(i64, i64)]) -> Snapshot {
    Snapshot {
        base,
        end,
        unfinished: unfinished.iter().map(|&(a, b)| a..b).collect(),
        leader_epoch: -1,
    }
}

fn truly_finished(s: &Snapshot, o: i64) -> bool {
    o >= s.base && o < s.end && !s.unfinished.iter().any(|r| r.contains(&o))
}

#[test]
fn run_length_round_trip() {
    let s = snap(100, 110, &[(100, 101), (104, 106)]);
    let e = encode(&s, 4000);
    assert_eq!(e.text, "hb1:R:100:1.3.2.4");
    let m = decode(e.text.as_bytes(), 100).unwrap();
    let finished: Vec<i64> = (95..115).filter(|&o| m.is_finished(o)).collect();
    assert_eq!(finished, vec![101, 102, 103, 106, 107, 108, 109]);
    assert_eq!(m.finished_count(), 7);
}

#[test]
fn a_map_starting_with_finished_records_has_an_empty_first_run() {
    let s = snap(10, 20, &[(15, 16)]);
    let e = encode(&s, 4000);
    assert_eq!(e.text, "hb1:R:10:0.5.1.4");
    let m = decode(e.text.as_bytes(), 10).unwrap();
    assert!(m.is_finished(10) && !m.is_finished(15) && m.is_finished(19));
    // The empty first run is no range: the map's ranges stay what its readers assume.
    assert_eq!(m.unfinished, vec![15..16]);
}

#[test]
fn nothing_above_the_watermark_is_an_empty_string() {
    assert_eq!(encode(&snap(5, 5, &[]), 4000).text, "");
    assert_eq!(decode(b"", 5), None);
}

#[test]
fn scattered_offsets_fall_back_to_the_bitmap() {
    let unfinished: Vec<(i64, i64)> = (0..200).map(|i| (i * 2, i * 2 + 1)).collect();
    let s = snap(0, 400, &unfinished);
    assert!(
        encode(&s, 4000).text.starts_with("hb1:R:0:"),
        "run-length while it fits"
    );
    let e = encode(&s, 300);
    assert!(e.text.starts_with("hb1:B:0:"), "{}", e.text);
    let m = decode(e.text.as_bytes(), 0).unwrap();
    for o in 0..400 {
        assert_eq!(m.is_finished(o), o % 2 == 1, "offset {o}");
    }
}

#[test]
fn metadata_for_another_offset_or_foreign_is_ignored() {
    let e = encode(&snap(100, 110, &[(100, 101)]), 4000);
    assert_eq!(decode(e.text.as_bytes(), 99), None, "other snapshot");
    for foreign in [
        &b"some other consumer's notes"[..],
        b"hb2:R:100:1.3",
        b"hb1:R:100:1.-3",
        b"hb1:R:100:1..3",
        b"hb1:R:100:zzzzzzzzzzzzzzzzz",
        b"hb1:B:100:8:AA:extra",
        b"hb1:B:100:9:AA",
        b"hb1:X:100:1",
        b"\xff\xfe\x00",
        b"hb1:R:100:",
        // More digits than any run hookbridge writes, even if the value is small.
        b"hb1:R:100:0000000000001",
    ] {
        assert_eq!(
            decode(foreign, 100),
            None,
            "{:?}",
            String::from_utf8_lossy(foreign)
        );
    }
}

#[test]
fn an_oversized_map_is_cut_to_the_budget_and_never_claims_more() {
    let unfinished: Vec<(i64, i64)> = (0..3000).map(|i| (i * 7, i * 7 + 3)).collect();
    let s = snap(0, 21_000, &unfinished);
    let e = encode(&s, 200);
    assert!(e.truncated && e.text.len() <= 200 && e.full_len > 200);
    let m = decode(e.text.as_bytes(), 0).unwrap();
    assert!(m.end() < 21_000);
    for o in 0..21_000 {
        if m.is_finished(o) {
            assert!(truly_finished(&s, o));
        }
    }
}

#[test]
fn extending_keeps_what_an_earlier_map_knew_beyond_the_new_end() {
    let earlier = decode(
        encode(&snap(100, 200, &[(100, 101), (150, 151)]), 4000)
            .text
            .as_bytes(),
        100,
    )
    .unwrap();
    // The restarted member has re-seen records up to 120; 100 is still in flight.
    let mut now = snap(100, 120, &[(100, 101)]);
    now.extend_with(&earlier);
    assert_eq!(now.end, 200);
    assert_eq!(now.unfinished, vec![100..101, 150..151]);
    // A snapshot that starts before the earlier map learns nothing from it.
    let mut before = snap(50, 60, &[(50, 51)]);
    before.extend_with(&earlier);
    assert_eq!(before.end, 60);
}

fn arb_snapshot() -> impl Strategy<Value = Snapshot> {
    (
        0i64..1_000_000,
        proptest::collection::vec((0i64..40, 1i64..40), 0..60),
        0i64..50,
    )
        .prop_map(|(base, gaps, tail)| {
            let mut at = base;
            let mut unfinished = Vec::new();
            for (i, (finished, unf)) in gaps.into_iter().enumerate() {
                // The watermark's own snapshots start unfinished; merged ones may not.
                at += if i == 0 {
                    finished % 2
                } else {
                    finished.max(1)
                };
                unfinished.push(at..at + unf);
                at += unf;
            }
            Snapshot {
                base,
                end: at + tail,
                unfinished,
                leader_epoch: -1,
            }
        })
}

proptest! {
    #[test]
    fn round_trip_is_exact(s in arb_snapshot()) {
        let e = encode(&s, usize::MAX);
        prop_assert!(!e.truncated);
        if s.end == s.base {
            prop_assert_eq!(e.text, "");
        } else {
            let m = decode(e.text.as_bytes(), s.base).expect("own encoding decodes");
            for o in (s.base - 2)..(s.end + 2) {
                prop_assert_eq!(m.is_finished(o), truly_finished(&s, o), "offset {}", o);
            }
        }
    }

    #[test]
    fn a_budgeted_map_fits_and_never_claims_an_unfinished_record(s in arb_snapshot(), budget in 0usize..120) {
        let e = encode(&s, budget);
        prop_assert!(e.text.len() <= budget);
        if let Some(m) = decode(e.text.as_bytes(), s.base) {
            for o in (s.base - 2)..(s.end + 2) {
                if m.is_finished(o) { prop_assert!(truly_finished(&s, o), "offset {}", o); }
            }
        }
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), base in any::<i64>()) {
        let _ = decode(&bytes, base);
        let mut text = b"hb1:R:".to_vec();
        text.extend_from_slice(&bytes);
        let _ = decode(&text, base);
    }
}

#[test]
fn a_map_longer_than_a_reader_accepts_is_cut_and_still_decodes() {
    // One stuck record, then more finished records than a map may span.
    let s = snap(1000, 1000 + (1 << 26) + 10, &[(1000, 1001)]);
    let e = encode(&s, 4000);
    assert!(e.truncated);
    let m = decode(e.text.as_bytes(), 1000).expect("a cut map still decodes");
    assert!(!m.is_finished(1000) && m.is_finished(1001));
    assert!(
        !m.is_finished(1000 + (1 << 26) + 5),
        "past the cut reads as unfinished"
    );
}

#[test]
fn offsets_near_the_end_of_the_range_never_overflow() {
    assert_eq!(
        decode(b"hb1:B:9223372036854775800:z:AAAAAAA", 9223372036854775800),
        None
    );
    assert_eq!(
        decode(b"hb1:R:9223372036854775800:1.zzzzz", 9223372036854775800),
        None
    );
}

#[test]
fn a_map_with_a_leader_epoch_round_trips_and_refuses_newer_records() {
    let mut s = snap(100, 110, &[(100, 101)]);
    s.leader_epoch = 7;
    let e = encode(&s, 4000);
    assert_eq!(e.text, "hb2:R:100:7:1.9");
    let m = decode(e.text.as_bytes(), 100).unwrap();
    assert!(m.skips(105, 7) && m.skips(105, 6) && m.skips(105, -1));
    assert!(!m.skips(105, 8), "a newer leader epoch reused the offset");
    assert!(decode(b"hb2:R:100:-1:1.9", 100).is_none());
    let old = decode(b"hb1:R:100:1.9", 100).unwrap();
    assert!(
        old.skips(105, 8),
        "an hb1 map is trusted by offset, as before"
    );
    // The bitmap form carries it too.
    let scattered = Snapshot {
        base: 0,
        end: 400,
        unfinished: (0..200).map(|i| i * 2..i * 2 + 1).collect(),
        leader_epoch: 2,
    };
    let e = encode(&scattered, 500);
    assert!(e.text.starts_with("hb2:B:0:2:"), "{}", e.text);
    let m = decode(e.text.as_bytes(), 0).unwrap();
    assert!(m.skips(1, 2) && !m.skips(1, 3) && !m.skips(0, 2));
}

#[test]
fn finished_above_counts_what_lies_between_the_unfinished_ranges() {
    // What a restart skips, and what the finished-above metric shows.
    assert_eq!(
        snap(100, 110, &[(100, 102), (105, 106)]).finished_above(),
        7
    );
    assert_eq!(snap(100, 110, &[]).finished_above(), 10);
    assert_eq!(snap(100, 100, &[]).finished_above(), 0);
}

#[test]
fn a_bitmap_away_from_offset_zero_covers_exactly_its_span() {
    let unfinished: Vec<(i64, i64)> = (0..200).map(|i| (1000 + i * 2, 1000 + i * 2 + 1)).collect();
    let s = snap(1000, 1400, &unfinished);
    let e = encode(&s, 300);
    assert!(e.text.starts_with("hb1:B:1000:"), "{}", e.text);
    let m = decode(e.text.as_bytes(), 1000).unwrap();
    assert_eq!(m.end(), 1400);
    for o in 1000..1500 {
        assert_eq!(m.is_finished(o), o < 1400 && o % 2 == 1, "offset {o}");
    }
}

#[test]
fn full_len_is_the_shorter_whole_encoding() {
    // What back-pressure and the map-size metric watch: the shorter of the two whole
    // encodings, whichever the budget lets through.
    let sparse: Vec<(i64, i64)> = (0..200).map(|i| (i * 40, i * 40 + 1)).collect();
    let s = snap(0, 8000, &sparse);
    let e = encode(&s, 1 << 20);
    assert!(e.text.starts_with("hb1:R:0:"), "{}", e.text);
    assert_eq!(
        e.full_len,
        e.text.len(),
        "run-length is the shorter one here"
    );
    let scattered: Vec<(i64, i64)> = (0..200).map(|i| (i * 2, i * 2 + 1)).collect();
    let s = snap(0, 400, &scattered);
    let e = encode(&s, 1 << 20);
    assert!(
        e.full_len < e.text.len(),
        "the bitmap is the shorter one here"
    );
    let fitted = encode(&s, e.full_len);
    assert!(
        !fitted.truncated && fitted.text.len() == e.full_len,
        "{fitted:?}"
    );
}

#[test]
fn a_bitmap_keeps_runs_of_unfinished_records_whole() {
    // Runs of three unfinished records: every one of them must read as unfinished, or a
    // takeover would skip records never delivered.
    let runs: Vec<(i64, i64)> = (0..100).map(|i| (i * 4, i * 4 + 3)).collect();
    let s = snap(0, 400, &runs);
    let e = encode(&s, 300);
    assert!(e.text.starts_with("hb1:B:0:"), "{}", e.text);
    let m = decode(e.text.as_bytes(), 0).unwrap();
    for o in 0..400 {
        assert_eq!(m.is_finished(o), o % 4 == 3, "offset {o}");
    }
}

#[test]
fn a_snapshot_with_nothing_past_the_earlier_map_s_base_carries_the_whole_map() {
    // Right after a takeover nothing is received yet: the watermark is the earlier map's
    // base, and a commit then must carry that map on, or the next owner redelivers it all.
    let earlier = snap(100, 110, &[(100, 101), (104, 106)]);
    let map = decode(encode(&earlier, 4000).text.as_bytes(), 100).unwrap();
    let mut now = snap(100, 100, &[]);
    now.extend_with(&map);
    assert_eq!(now, earlier);
}

#[test]
fn an_unfinished_run_across_the_snapshot_s_end_stays_one_run() {
    // 118 and 119 are in flight here; the earlier map says 120..125 were unfinished too.
    let earlier = snap(100, 130, &[(100, 101), (115, 125)]);
    let map = decode(encode(&earlier, 4000).text.as_bytes(), 100).unwrap();
    let mut now = snap(100, 120, &[(118, 120)]);
    now.extend_with(&map);
    assert_eq!(now.unfinished, vec![118..125]);
    // Two touching ranges would encode as two unfinished runs in a row, and the second
    // would read as finished: records never delivered, skipped by the next owner.
    let m = decode(encode(&now, 4000).text.as_bytes(), 100).unwrap();
    let finished: Vec<i64> = (115..130).filter(|&o| m.is_finished(o)).collect();
    assert_eq!(finished, vec![115, 116, 117, 125, 126, 127, 128, 129]);
}

#[test]
fn a_map_ending_on_unfinished_records_has_no_empty_last_run() {
    let e = encode(&snap(100, 110, &[(108, 110)]), 4000);
    assert_eq!(e.text, "hb1:R:100:0.8.2");
}

#[test]
fn a_map_cut_at_the_longest_span_drops_what_starts_at_the_cut() {
    // The unfinished range starts exactly where the cut is: nothing of it is kept, and
    // the cut map ends on its finished run.
    let cut = MAX_SPAN;
    let e = encode(&snap(0, cut + 10, &[(cut, cut + 5)]), 4000);
    assert!(e.truncated);
    assert_eq!(e.text, format!("hb1:R:0:0.{}", to_base36(cut as u64)));
}

#[test]
fn a_map_cut_to_its_budget_keeps_every_run_that_fits_exactly() {
    // Whole: "hb1:R:100:1.3.2.2m" (18 bytes), and a bitmap of 100 offsets is longer.
    let s = snap(100, 200, &[(100, 101), (104, 106)]);
    assert_eq!(encode(&s, 4000).text, "hb1:R:100:1.3.2.2m");
    let e = encode(&s, 15);
    assert!(e.truncated);
    assert_eq!(
        e.text, "hb1:R:100:1.3.2",
        "the third run fills the budget exactly"
    );
    let m = decode(e.text.as_bytes(), 100).unwrap();
    let finished: Vec<i64> = (100..200).filter(|&o| m.is_finished(o)).collect();
    assert_eq!(finished, vec![101, 102, 103]);
}

#[test]
fn full_len_is_never_a_longer_bitmap() {
    // Run-length "hb1:R:0:1.1.1.1.18" (18 bytes); the bitmap "hb1:B:0:1c:" + 8 would be
    // 19. The full length back-pressure watches is the shorter one.
    let s = snap(0, 48, &[(0, 1), (2, 3), (4, 48)]);
    let e = encode(&s, 4000);
    assert_eq!(
        e,
        Encoded {
            text: "hb1:R:0:1.1.1.1.18".into(),
            full_len: 18,
            truncated: false,
        }
    );
}

#[test]
fn a_map_of_the_first_leader_epoch_is_trusted() {
    // Epoch 0 is every partition's first leader: its maps are as good as any.
    let mut s = snap(100, 110, &[(100, 101)]);
    s.leader_epoch = 0;
    let e = encode(&s, 4000);
    assert_eq!(e.text, "hb2:R:100:0:1.9");
    let m = decode(e.text.as_bytes(), 100).expect("epoch 0 is a leader epoch");
    assert!(m.skips(105, 0) && !m.skips(105, 1));
}

#[test]
fn a_decoded_bitmap_holds_each_run_of_unfinished_records_as_one_range() {
    let s = snap(0, 40, &[(0, 3), (5, 6), (8, 12), (20, 40)]);
    let text = encode_bitmap(&s, &prefix(0, -1), usize::MAX).expect("a bitmap");
    let m = decode(text.as_bytes(), 0).unwrap();
    assert_eq!(m.unfinished, s.unfinished);
}
