//! Micro-benchmarks of the egress partition core, the per-record work of the dispatcher:
//!
//! * `partition/cycle/<ordering>`: admit a batch of records, finish them in the order
//!   their deliveries would end, take a commit snapshot and encode its finished map.
//! * `partition/encode/<shape>`: encoding a commit's finished-offset map.
//!
//! `cargo bench --bench partition`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hookbridge::egress::finished::{encode, Snapshot};
use hookbridge::egress::partition::{Partition, Sequence, Step};

const BATCH: i64 = 1024;

/// Keys as the bench load uses them: 1000 keys round-robin.
fn keys() -> Vec<Bytes> {
    (0..1000).map(|k| Bytes::from(format!("k{k}"))).collect()
}

fn cycle(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("partition/cycle");
    group.throughput(Throughput::Elements(BATCH as u64));
    for ordering in ["key", "partition", "none"] {
        group.bench_function(BenchmarkId::from_parameter(ordering), |b| {
            let mut p = Partition::<(), Bytes>::new(1, 4 * BATCH as usize, None);
            let mut seq = Sequence::default();
            let mut steps = Vec::with_capacity(BATCH as usize);
            let mut next = 0i64;
            b.iter(|| {
                let mut started = Vec::with_capacity(BATCH as usize);
                for o in next..next + BATCH {
                    let lane = match ordering {
                        "key" => Some(keys[(o % 1000) as usize].clone()),
                        "partition" => Some(Bytes::new()),
                        _ => None,
                    };
                    p.admit(o, 0, lane, (), &mut steps);
                    collect(&mut steps, &mut started);
                }
                // Deliveries end (and start their lane's next record) until none is left.
                while let Some((o, lane)) = started.pop() {
                    p.finish(o, lane, &mut seq, &mut steps);
                    collect(&mut steps, &mut started);
                }
                next += BATCH;
                let snap = p.commit_snapshot(false);
                black_box(snap.map(|s| encode(&s, 4000)));
            });
        });
    }
    group.finish();
}

fn collect(steps: &mut Vec<Step<(), Bytes>>, started: &mut Vec<(i64, Option<Bytes>)>) {
    for s in steps.drain(..) {
        if let Step::Start { offset, lane, .. } = s {
            started.push((offset, lane));
        }
    }
}

fn encoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("partition/encode");
    // 64 deliveries in flight among finished records (a busy partition).
    let busy = Snapshot {
        base: 1_000_000,
        end: 1_002_000,
        unfinished: (0..64)
            .map(|i| 1_000_000 + i * 31..1_000_000 + i * 31 + 1)
            .collect(),
        leader_epoch: 7,
    };
    // Every other record unfinished: the bitmap fallback.
    let scattered = Snapshot {
        base: 0,
        end: 8_000,
        unfinished: (0..4_000).map(|i| i * 2..i * 2 + 1).collect(),
        leader_epoch: 7,
    };
    for (name, snap) in [("busy", &busy), ("scattered", &scattered)] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(encode(black_box(snap), 4000)))
        });
    }
    group.finish();
}

criterion_group!(benches, cycle, encoding);
criterion_main!(benches);
