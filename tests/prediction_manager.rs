//! The prediction manager: plugins by name, plug and unplug, isolation, the agent's load samples.

use std::time::Duration;

use selflet::behaviour::Behaviour;
use selflet::prediction::{Descriptor, Emitter, Predictor};
use selflet::{Agent, AgentHandle, Event, SourceFile, Value};

fn frequent_service_policy() -> SourceFile {
    SourceFile::read(format!(
        "{}/policies/teach_frequent.rhai",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

fn counter(name: &str) -> Box<dyn Predictor> {
    struct Counter {
        d: Descriptor,
        n: i64,
    }
    impl Predictor for Counter {
        fn descriptor(&self) -> &Descriptor {
            &self.d
        }
        fn update(
            &mut self,
            ev: &Event,
            out: &mut Emitter,
        ) -> Result<(), selflet::error::BoxError> {
            match ev.payload().as_str() {
                Some("panic") => panic!("a bug in a predictor"),
                Some("err") => return Err("a bad sample".into()),
                _ => {}
            }
            self.n += 1;
            out.emit(
                "prediction.count",
                Value::map([
                    ("n", Value::Int(self.n)),
                    ("by", Value::from(self.d.name.as_str())),
                ]),
            );
            Ok(())
        }
    }
    Box::new(Counter {
        d: Descriptor {
            name: name.into(),
            kind: "counter".into(),
            consumes: vec![selflet::Pattern::parse("sample").unwrap()],
            produces: vec!["prediction.count".into()],
            params: Value::Null,
        },
        n: 0,
    })
}

async fn last_count(sub: &selflet::Subscription, by: &str) -> Option<i64> {
    settle().await;
    let mut last = None;
    while let Ok(ev) = sub.try_recv() {
        if ev.payload().get("by") == Some(&Value::from(by)) {
            last = ev.payload().get("n").and_then(Value::as_int);
        }
    }
    last
}

#[tokio::test(start_paused = true)]
async fn plugging_and_unplugging_leaves_other_predictors_state_alone() {
    let a = Agent::builder("a")
        .predictor(counter("one"))
        .spawn()
        .await
        .unwrap();
    let counts = a.subscribe("prediction.count").unwrap();
    a.publish("sample", 1).await.unwrap();
    a.publish("sample", 2).await.unwrap();
    assert_eq!(last_count(&counts, "one").await, Some(2));
    a.predictors().plug(counter("two")).unwrap();
    assert!(
        a.predictors().plug(counter("two")).is_err(),
        "names are unique"
    );
    a.publish("sample", 3).await.unwrap();
    settle().await;
    let (mut one, mut two) = (None, None);
    while let Ok(ev) = counts.try_recv() {
        let n = ev.payload().get("n").and_then(Value::as_int);
        match ev.payload().get("by").and_then(Value::as_str) {
            Some("one") => one = n,
            Some("two") => two = n,
            _ => {}
        }
    }
    assert_eq!((one, two), (Some(3), Some(1)));
    assert!(a.predictors().unplug("two"));
    a.publish("sample", 4).await.unwrap();
    assert_eq!(
        last_count(&counts, "one").await,
        Some(4),
        "`one` kept its state"
    );
    assert_eq!(a.predictors().stats("one").unwrap().events, 4);
    a.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_predictor_that_errs_is_reported_and_one_that_panics_is_unplugged_alone() {
    let a = Agent::builder("a")
        .predictor(counter("fragile"))
        .predictor(counter("sturdy"))
        .spawn()
        .await
        .unwrap();
    let errors = a.subscribe("prediction.error").unwrap();
    let failures = a.subscribe("prediction.failed").unwrap();
    let counts = a.subscribe("prediction.count").unwrap();
    a.publish("sample", "err").await.unwrap();
    settle().await;
    assert_eq!(
        errors.try_recv().unwrap().payload().get("error"),
        Some(&Value::from("a bad sample"))
    );
    assert_eq!(a.predictors().stats("fragile").unwrap().errors, 1);
    a.publish("sample", "panic").await.unwrap();
    settle().await;
    let failed: Vec<_> = std::iter::from_fn(|| failures.try_recv().ok()).collect();
    // Both got the event; both panicked and are out; the agent goes on.
    assert_eq!(failed.len(), 2);
    assert!(
        failed[0]
            .payload()
            .get("error")
            .unwrap()
            .as_str()
            .unwrap()
            .contains("a bug")
    );
    assert!(a.predictors().descriptors().is_empty());
    // A fresh one works.
    a.predictors().plug(counter("fresh")).unwrap();
    a.publish("sample", 1).await.unwrap();
    assert_eq!(last_count(&counts, "fresh").await, Some(1));
    assert_eq!(a.lifecycle(), selflet::Lifecycle::Running);
}

#[tokio::test(start_paused = true)]
async fn a_rhai_predictor_keeps_state_and_emits() {
    let params = Value::map([
        ("consumes", Value::from("sample")),
        ("threshold", Value::Int(3)),
        (
            "source",
            Value::from(
                "fn init(p) { #{ n: 0, at: p.threshold } }\nfn update(ev) { this.n += 1; if this.n == this.at { emit(\"prediction.burst\", #{ n: this.n, topic: ev.topic }); } }\n",
            ),
        ),
    ]);
    let a = Agent::builder("a").spawn().await.unwrap();
    a.plug_predictor("rhai", "burst", &params).unwrap();
    let bursts = a.subscribe("prediction.burst").unwrap();
    for i in 0..5 {
        a.publish("sample", i).await.unwrap();
    }
    settle().await;
    let ev = bursts.try_recv().unwrap();
    assert_eq!(ev.payload().get("n"), Some(&Value::Int(3)));
    assert_eq!(ev.payload().get("topic"), Some(&Value::from("sample")));
    assert!(bursts.try_recv().is_err());
    let bad = a.plug_predictor(
        "rhai",
        "broken",
        &Value::map([("source", Value::from("fn nope() {}"))]),
    );
    assert!(bad.unwrap_err().to_string().contains("update"));
    assert!(a.plug_predictor("no_such_kind", "x", &Value::Null).is_err());
}

async fn with_manifest(predictors: &str, net: &selflet::Network) -> AgentHandle {
    let text = format!("name: a\npredictors:\n{predictors}");
    let m = selflet::Manifest::parse(&SourceFile::new("a.yaml", text), std::path::Path::new("."))
        .unwrap();
    Agent::from_manifest(&m)
        .network(net)
        .predictor_kinds(selflet::plugins::kinds())
        .policy(frequent_service_policy())
        .spawn()
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn space_saving_named_in_a_manifest_sees_real_requests_and_the_teaching_rule_fires() {
    let net = selflet::Network::new();
    let load = |n: &str| {
        Behaviour::load(format!("{}/behaviors/{n}.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    let teach = selflet::OfferModes::CAN_DO | selflet::OfferModes::CAN_TEACH;
    let _b = Agent::builder("b")
        .network(&net)
        .behaviour(load("service2"))
        .behaviour(load("service3"))
        .service(selflet::Service::new("service2", teach))
        .service(selflet::Service::new(
            "service3",
            selflet::OfferModes::CAN_DO,
        ))
        .spawn()
        .await
        .unwrap();
    let a = with_manifest("  - kind: space_saving\n    params: { k: 16, min_events: 10, min_support: 0.3, window: tumbling, window_size: 60s }\n", &net).await;
    let frequent = a.subscribe("prediction.frequent").unwrap();
    let learned = a.subscribe("service.learned").unwrap();
    let input = Value::map([("n", Value::Int(1))]);
    for i in 0..12 {
        // Two thirds service2, one third service3.
        let service = if i % 3 == 2 { "service3" } else { "service2" };
        a.call(service, input.clone()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let frequent_items: Vec<Value> = std::iter::from_fn(|| frequent.try_recv().ok())
        .map(|e| e.payload().get("item").cloned().unwrap())
        .collect();
    assert!(
        frequent_items.contains(&Value::from("service2")),
        "{frequent_items:?}"
    );
    // Listing 1 asked for the frequent service in can-teach mode, and a learned it.
    assert_eq!(
        learned.recv().await.unwrap().payload().get("service"),
        Some(&Value::from("service2"))
    );
    assert!(a.knowledge().can_run("service2"));
    assert!(a.policies().stats()["learn frequent remote services"].fired >= 1);
    // service3 is frequent too but b does not teach it: the request is refused, nothing learned.
    assert!(!a.knowledge().can_run("service3"));
}

#[tokio::test(start_paused = true)]
async fn the_agent_samples_its_load_and_load_forecast_predicts_it() {
    let net = selflet::Network::new();
    let a = with_manifest("  - kind: load_forecast\n    params: { model: holt, alpha: 0.5, beta: 0.3, horizon: 2, sample_period: 10s }\n", &net).await;
    let busy = Behaviour::parse(SourceFile::new(
        "work.yaml",
        "behaviour: work\ninitial: w\nstates:\n  w: { demand: 0.5, on: { done: f } }\n  f: { final: true }\n",
    ))
    .unwrap();
    a.install_behaviour(busy);
    let samples = a.subscribe("load.sample").unwrap();
    let forecasts = a.subscribe("prediction.load").unwrap();
    // Four runs of 0.5 s of work per 10 s period: utilization 0.2, rate 0.4/s.
    for _ in 0..6 {
        for _ in 0..4 {
            a.run_behaviour("work", ()).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    let s = samples.try_recv().unwrap();
    assert_eq!(s.payload().get("utilization"), Some(&Value::Float(0.2)));
    assert_eq!(
        s.payload().get("rates").unwrap().get("work"),
        Some(&Value::Float(0.4))
    );
    let mut last = None;
    while let Ok(ev) = forecasts.try_recv() {
        last = Some(ev);
    }
    let f = last.expect("forecasts were published");
    let u = f.payload().get("utilization").unwrap().as_f64().unwrap();
    assert!(
        (u - 0.2).abs() < 1e-9,
        "a steady load forecasts itself: {u}"
    );
    assert_eq!(f.payload().get("horizon_s"), Some(&Value::Float(20.0)));
}
