//! Policy evaluation: an event with one matching rule (condition + one action) against a
//! native Rust closure doing the same check and queueing the same action, and an event with
//! no rule on its topic. And rhai's own floor: the rule's two closures called through rhai's
//! public API on a plain engine, with the same event map and functions that do nothing — what
//! any rule written as rhai closures costs before selflet does anything. And under that, the
//! rule written inline (no closures, one entry into the engine), with the event made into the
//! map every rule sees: the least this rule costs in rhai in any form.

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
    let (engine, ast, when, then) = plain_rhai();
    let ev = plain_event();
    g.bench_function("rhai_closures_alone", |b| {
        b.iter(|| {
            let holds = when
                .call::<bool>(&engine, &ast, (ev.clone(),))
                .expect("condition");
            let done = holds.then(|| {
                then.call::<rhai::Dynamic>(&engine, &ast, (ev.clone(),))
                    .expect("action")
            });
            black_box(done)
        })
    });
    let (engine, inline) = plain_rhai_inline();
    let mut scope = rhai::Scope::new();
    g.bench_function("rhai_inline_alone", |b| {
        b.iter(|| {
            scope.push("ev", plain_event());
            let done = engine.eval_ast_with_scope::<rhai::Dynamic>(&mut scope, &inline);
            scope.rewind(0);
            black_box(done.expect("the rule"))
        })
    });
    g.finish();
}

/// The rule's condition and action as closures of a plain rhai engine, beside functions of
/// the same signatures that do nothing.
fn plain_rhai() -> (rhai::Engine, rhai::AST, rhai::FnPtr, rhai::FnPtr) {
    let mut engine = rhai::Engine::new();
    engine.register_fn("has_service", |_: &str| false);
    engine.register_fn("request_service", |_: &str, _: &str| ());
    let ast = engine
        .compile(
            r#"[|ev| ev.support >= 0.2 && !has_service(ev.item),
                |ev| request_service(ev.item, "can_teach")]"#,
        )
        .expect("compiles");
    let closures: rhai::Array = engine.eval_ast(&ast).expect("two closures");
    let mut closures = closures.into_iter().map(|c| c.cast::<rhai::FnPtr>());
    let (when, then) = (
        closures.next().expect("when"),
        closures.next().expect("then"),
    );
    (engine, ast, when, then)
}

/// The same rule as one inline statement, over an `ev` the caller puts in scope.
fn plain_rhai_inline() -> (rhai::Engine, rhai::AST) {
    let mut engine = rhai::Engine::new();
    engine.register_fn("has_service", |_: &str| false);
    engine.register_fn("request_service", |_: &str, _: &str| ());
    let ast = engine
        .compile(
            r#"if ev.support >= 0.2 && !has_service(ev.item) {
                   request_service(ev.item, "can_teach")
               }"#,
        )
        .expect("compiles");
    (engine, ast)
}

/// The event as a rule sees it: payload fields, topic and source, shared.
fn plain_event() -> rhai::Dynamic {
    let mut map = rhai::Map::new();
    map.insert("item".into(), "service1".into());
    map.insert("support".into(), rhai::Dynamic::from_float(0.4));
    map.insert("topic".into(), "prediction.frequent".into());
    map.insert("source".into(), "bench".into());
    rhai::Dynamic::from_map(map).into_shared()
}

criterion_group!(benches, policy);
criterion_main!(benches);
