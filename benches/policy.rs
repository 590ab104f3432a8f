//! Policy evaluation: an event with one matching rule (condition + one action) against a
//! native Rust closure doing the same check and queueing the same action, and an event with
//! no rule on its topic.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use selflet::bus::Pattern;
use selflet::policy::Action;
use selflet::{Agent, SourceFile, Value};

fn policy(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let agent = rt
        .block_on(
            Agent::builder("bench")
                .policy(SourceFile::new(
                    "bench.rhai",
                    r#"rule("learn").on("prediction.frequent")
                        .when(|ev| ev.support >= 0.2 && !has_service(ev.item))
                        .then(|ev| request_service(ev.item, "can_teach"));"#,
                ))
                .spawn(),
        )
        .expect("agent");
    let bus = agent.bus().clone();
    let sub = bus
        .subscribe(Pattern::parse("*").expect("pattern"))
        .expect("open");
    let payload = Value::map([
        ("item", Value::from("service1")),
        ("support", Value::Float(0.4)),
    ]);
    rt.block_on(async {
        bus.publish("prediction.frequent", payload.clone())
            .await
            .expect("open");
        bus.publish("no.rule.here", payload.clone())
            .await
            .expect("open");
    });
    let matching = sub.try_recv().expect("queued");
    let unmatched = sub.try_recv().expect("queued");
    let policies = agent.policies().clone();
    assert_eq!(policies.evaluate(&matching).len(), 1, "the rule fires");

    let mut g = c.benchmark_group("policy");
    g.bench_function("rhai_rule_matching", |b| {
        b.iter(|| black_box(policies.evaluate(black_box(&matching))))
    });
    let knowledge = agent.knowledge().clone();
    let native = |ev: &selflet::Event| -> Vec<Action> {
        let p = ev.payload();
        let item = p.get("item").and_then(Value::as_str).unwrap_or_default();
        let support = p.get("support").and_then(Value::as_f64).unwrap_or_default();
        if support >= 0.2 && !knowledge.can_run(item) {
            vec![Action::RequestService {
                service: item.to_owned(),
                modes: vec![selflet::OfferMode::CanTeach],
                input: Value::Null,
            }]
        } else {
            Vec::new()
        }
    };
    g.bench_function("native_closure", |b| {
        b.iter(|| black_box(native(black_box(&matching))))
    });
    g.bench_function("rhai_no_rule_on_topic", |b| {
        b.iter(|| black_box(policies.evaluate(black_box(&unmatched))))
    });
    g.finish();
}

criterion_group!(benches, policy);
criterion_main!(benches);
