//! Space-Saving updates against its two well-kept peers and exact counting, in one run.
//!
//! A Zipf(1.1) stream of 10 million items over a million keys; nanoseconds per update for
//! k = 100, 1,024 and 10,000. Peers: `topk` (Filtered Space-Saving, k counters) and
//! `datasketches` (frequent items / Misra-Gries, map size the power of two whose 0.75 load
//! holds at least k items); reference: exact counting in a `HashMap` with the same hasher.

#[path = "../plugins/tests/support/zipf.rs"]
mod zipf;

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use selflet::plugins::space_saving::SpaceSaving;

const ITEMS: usize = 10_000_000;
const KEYS: usize = 1_000_000;

fn updates(c: &mut Criterion) {
    let stream = zipf::Zipf::new(KEYS, 1.1, 7).stream(ITEMS);
    let mut exact: HashMap<u64, u64, foldhash::fast::RandomState> = HashMap::default();
    for &x in &stream {
        *exact.entry(x).or_insert(0) += 1;
    }
    eprintln!(
        "distinct keys in the stream: {} (the exact map's size; Space-Saving keeps k)",
        exact.len()
    );

    let mut g = c.benchmark_group("space_saving");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ITEMS as u64));
    for k in [100usize, 1024, 10_000] {
        g.bench_with_input(BenchmarkId::new("selflet", k), &k, |b, &k| {
            b.iter(|| {
                let mut s = SpaceSaving::new(k);
                for &x in &stream {
                    s.update(x);
                }
                black_box(s.n())
            });
        });
        g.bench_with_input(
            BenchmarkId::new("topk_filtered_space_saving", k),
            &k,
            |b, &k| {
                b.iter(|| {
                    let mut s = topk::FilteredSpaceSaving::new(k);
                    for &x in &stream {
                        s.insert(x, 1);
                    }
                    black_box(s.count())
                });
            },
        );
        let map_size = ((k as f64 / 0.75).ceil() as usize)
            .next_power_of_two()
            .max(8);
        g.bench_with_input(
            BenchmarkId::new("datasketches_frequent_items", k),
            &k,
            |b, _| {
                b.iter(|| {
                    let mut s =
                        datasketches::frequencies::FrequentItemsSketch::<u64>::new(map_size)
                            .expect("power of two");
                    for &x in &stream {
                        s.update(x);
                    }
                    black_box(s.total_weight())
                });
            },
        );
    }
    g.bench_function("exact_hashmap", |b| {
        b.iter(|| {
            let mut m: HashMap<u64, u64, foldhash::fast::RandomState> = HashMap::default();
            for &x in &stream {
                *m.entry(x).or_insert(0) += 1;
            }
            black_box(m.len())
        });
    });
    g.finish();
}

criterion_group!(benches, updates);
criterion_main!(benches);
