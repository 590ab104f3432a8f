//! How long a load takes on this machine as the memory it roams over grows: a pointer chase
//! through a random cycle of 64-byte lines, so that every load waits for the one before and
//! no prefetcher can guess the next.
//!
//! Worlds of many agents touch every agent every round, in an order no cache can predict; the
//! size at which these loads go to memory is about how large a world can be before its rounds
//! run at memory's pace (see `examples/self_assembly/README.md`).
//!
//! ```sh
//! cargo run --release --example cache_latency
//! ```

use std::hint::black_box;
use std::time::Instant;

/// One cache line (the alignment makes it 64 bytes), holding the index of the next line to
/// visit.
#[repr(align(64))]
#[derive(Clone, Copy)]
struct Line {
    next: usize,
}

fn main() {
    println!("working set   ns per load");
    let mut kb = 256;
    while kb <= 128 * 1024 {
        println!("{:>8} KB   {:>8.1}", kb, nanos_per_load(kb * 1024 / 64));
        kb *= 2;
    }
}

/// The mean time of a load, chasing a random cycle through `lines` lines.
fn nanos_per_load(lines: usize) -> f64 {
    let mut order: Vec<usize> = (0..lines).collect();
    fastrand::Rng::with_seed(42).shuffle(&mut order);
    let mut memory = vec![Line { next: 0 }; lines];
    for (i, &line) in order.iter().enumerate() {
        memory[line].next = order[(i + 1) % lines];
    }
    let chase = |steps: usize, mut at: usize| {
        for _ in 0..steps {
            at = memory[at].next;
        }
        at
    };
    // Once round the cycle first, so that what fits in a cache is in it.
    let at = chase(lines, order[0]);
    let steps = 20_000_000;
    let start = Instant::now();
    black_box(chase(steps, at));
    start.elapsed().as_secs_f64() * 1e9 / steps as f64
}
