//! Statechart transitions per second in one agent: a two-state loop with a guard on every
//! transition and a variable update on every other one. Nobody subscribes to the behaviour
//! topics, as in an agent whose policies do not watch states. The loop takes 20,001
//! transitions on one trigger, beyond the default step budget: the agent's budget is raised,
//! as it would be for any such computation.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use selflet::behaviour::{Behaviour, InstanceLimits};
use selflet::{Agent, SourceFile, Value};

const LAPS: i64 = 10_000;

fn transitions(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let spin = Behaviour::parse(SourceFile::new(
        "spin.yaml",
        "behaviour: spin\ninitial: a\nvars: { n: 0 }\nstates:\n  a:\n    on:\n      done:\n        - { target: b, guard: \"n < input\" }\n        - end\n  b:\n    entry: { set: { n: \"n + 1\" } }\n    on: { done: { target: a, guard: \"n <= input\" } }\n  end: { final: true, output: n }\n",
    ))
    .expect("valid behaviour");
    let agent = rt
        .block_on(
            Agent::builder("bench")
                .behaviour(spin)
                .instance_limits(InstanceLimits {
                    steps: u32::MAX,
                    time: None,
                })
                .spawn(),
        )
        .expect("agent");
    let mut g = c.benchmark_group("behaviour");
    // Two transitions per lap, plus the last one to `end`.
    g.throughput(Throughput::Elements(2 * LAPS as u64 + 1));
    g.bench_function("transitions", |b| {
        b.to_async(&rt).iter(|| async {
            let out = agent.run_behaviour("spin", LAPS).await.expect("runs");
            assert_eq!(out, Value::Int(LAPS));
        });
    });
    g.finish();
}

criterion_group!(benches, transitions);
criterion_main!(benches);
