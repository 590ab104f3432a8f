//! Learners (seed 000): a `ucb` learner composing a service from its variants and placements,
//! on the in-process network and the paused clock — what it applies, that no request is lost
//! while it switches, what policies read and veto, and what it refuses or survives.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use selflet::behaviour::Behaviour;
use selflet::negotiation::Config;
use selflet::prediction::Kinds;
use selflet::prediction::learner::{Decision, Learner, Observation, PlugError};
use selflet::topic::{Executed, Payload};
use selflet::{Agent, AgentHandle, Manifest, Network, OfferModes, Service, SourceFile, Value};

/// A variant of `web` that answers its name after `ms` milliseconds.
fn variant(name: &str, ms: u64) -> Behaviour {
    let text = format!(
        "behaviour: {name}\ninitial: w\nstates:\n  w: {{ after: {{ {ms}ms: done }} }}\n  done: {{ final: true, output: '\"{name}\"' }}\n"
    );
    Behaviour::parse(SourceFile::new(format!("{name}.yaml"), text)).unwrap()
}

fn params(yaml: &str) -> Value {
    serde_saphyr::from_str(yaml).unwrap()
}

/// `h1`: a neighbour that accepts lessons of `web` from `entry`, and re-lessons.
async fn neighbour(net: &Network, name: &str) -> AgentHandle {
    let h = Agent::builder(name)
        .network(net)
        .negotiation(Config {
            neighbours: vec!["entry".into()],
            teachers: Some(vec!["entry".into()]),
            ..Config::default()
        })
        .spawn()
        .await
        .unwrap();
    h.knowledge().allow_upgrade("web", true);
    h
}

/// `entry`, offering `web` in variants `slow` and `fast`, with the learner `compose`.
async fn entry(net: &Network, learner: &str, policy: Option<&str>) -> AgentHandle {
    let mut b = Agent::builder("entry")
        .network(net)
        .predictor_kinds(selflet::plugins::kinds())
        .behaviour(variant("slow", 30))
        .behaviour(variant("fast", 5))
        .service(Service {
            behaviour: Some("slow".into()),
            ..Service::new("web", OfferModes::CAN_DO)
        })
        .negotiation(Config {
            neighbours: vec!["client".into(), "h1".into(), "h2".into()],
            ..Config::default()
        })
        .learner("ucb", "compose", params(learner));
    if let Some(p) = policy {
        b = b.policy(SourceFile::new("veto.rhai", p));
    }
    b.spawn().await.unwrap()
}

const LEARNER: &str = "{service: web, variants: [slow, fast], neighbours: [h1, h2], window: 1s, \
                       reward: {best: 0ms, worst: 100ms}, exploration: 12}";

/// Sends `per_window` requests a window for `windows` windows; returns (sent, answered).
async fn load(client: &AgentHandle, windows: u32, per_window: u32) -> (u64, u64) {
    let answered = Arc::new(AtomicU64::new(0));
    let mut sent = 0;
    for _ in 0..windows * per_window {
        tokio::time::sleep(Duration::from_secs(1) / per_window).await;
        let (c, a) = (client.clone(), Arc::clone(&answered));
        sent += 1;
        tokio::spawn(async move {
            if c.call("web", ()).await.is_ok() {
                a.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    (sent, answered.load(Ordering::Relaxed))
}

async fn client(net: &Network) -> AgentHandle {
    Agent::builder("client")
        .network(net)
        .require("web")
        .negotiation(Config {
            neighbours: vec!["entry".into()],
            ..Config::default()
        })
        .spawn()
        .await
        .unwrap()
}

/// Counts the requests an agent ran for peers.
fn executed(agent: &AgentHandle) -> Arc<AtomicU64> {
    let n = Arc::new(AtomicU64::new(0));
    let sub = agent.subscribe(Executed::TOPIC).unwrap();
    let count = Arc::clone(&n);
    tokio::spawn(async move {
        while sub.recv().await.is_some() {
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    n
}

#[tokio::test(start_paused = true)]
async fn the_learner_tries_every_composition_settles_on_the_best_and_loses_no_request() {
    let net = Network::new();
    let (h1, h2) = (neighbour(&net, "h1").await, neighbour(&net, "h2").await);
    let e = entry(&net, LEARNER, None).await;
    let c = client(&net).await;
    let windows = e.subscribe("learner.window").unwrap();
    let (ran_h1, ran_h2) = (executed(&h1), executed(&h2));
    let info = e.learners().get("compose").unwrap();
    assert_eq!(
        info.compositions,
        [
            "slow",
            "slow@h1",
            "slow@h2",
            "slow@h1+h2",
            "fast",
            "fast@h1",
            "fast@h2",
            "fast@h1+h2"
        ]
    );
    let (sent, answered) = load(&c, 40, 20).await;
    assert_eq!(
        answered, sent,
        "every request is answered across the switches"
    );
    let mut used = Vec::new();
    while let Ok(ev) = windows.try_recv() {
        let w = selflet::topic::LearnerWindow::from_value(ev.payload()).unwrap();
        used.push(w.previous);
    }
    for comp in &info.compositions {
        assert!(used.contains(comp), "{comp} was tried: {used:?}");
    }
    // Placements are real: the neighbours ran what was redirected to them, and were
    // re-taught when the variant changed.
    assert!(ran_h1.load(Ordering::Relaxed) > 0 && ran_h2.load(Ordering::Relaxed) > 0);
    assert!(h1.learned()["web"].upgrades >= 1, "{:?}", h1.learned());
    // After exploration, a fast composition nearly always.
    let late = &used[info.compositions.len()..];
    let fast = late.iter().filter(|c| c.starts_with("fast")).count();
    assert!(fast * 10 >= late.len() * 9, "{late:?}");
    let tables = e.learners().tables("compose").unwrap();
    let Some(Value::List(classes)) = tables.get("classes") else {
        panic!("{tables:?}")
    };
    assert_eq!(classes.len(), 1, "one environment, one table: {tables:?}");
}

#[tokio::test(start_paused = true)]
async fn a_policy_reads_the_tables_and_its_vetoes_keep_the_service_here() {
    let policy = r#"
        rule("stay here")
            .on("learner.window")
            .then(|ev| {
                for c in learner("compose").compositions {
                    if c.contains("@") { veto("compose", c); }
                }
                set_fact("windows", learner("compose").windows);
                set_fact("tables", learner_tables("compose").classes.len());
            });
    "#;
    let net = Network::new();
    let (h1, _h2) = (neighbour(&net, "h1").await, neighbour(&net, "h2").await);
    let e = entry(&net, LEARNER, Some(policy)).await;
    let c = client(&net).await;
    let windows = e.subscribe("learner.window").unwrap();
    let (sent, answered) = load(&c, 12, 10).await;
    assert_eq!(answered, sent);
    let info = e.learners().get("compose").unwrap();
    assert_eq!(info.vetoed.len(), 6, "{info:?}");
    // A veto holds from the learner's next decision: the first window ran `slow` here and
    // the learner had already picked `slow@h1` for the second; from the third on, only
    // local compositions.
    let mut used = Vec::new();
    while let Ok(ev) = windows.try_recv() {
        used.push(
            ev.payload()
                .get("previous")
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(used[..2], ["slow", "slow@h1"]);
    assert!(used[2..].iter().all(|c| !c.contains('@')), "{used:?}");
    assert_eq!(h1.learned()["web"].upgrades, 0, "taught once, never again");
    assert!(e.fact("windows").and_then(|v| v.as_int()).unwrap() >= 10);
    assert_eq!(e.fact("tables"), Some(Value::Int(1)));
    // Lifting the vetoes lets the learner relocate again; unplugging keeps what is in force.
    for comp in &info.compositions {
        assert!(e.learners().veto("compose", comp, false));
    }
    assert!(!e.learners().veto("compose", "no_such@h9", true));
    assert!(e.learners().unplug("compose"));
    assert!(e.learners().get("compose").is_none());
    assert!(e.knowledge().service("web").unwrap().behaviour.is_some());
}

#[tokio::test(start_paused = true)]
async fn learner_problems_are_refused_before_anything_runs() {
    let net = Network::new();
    let e = entry(&net, LEARNER, None).await;
    let refuse = |p: &str| params(p);
    for (kind, p, what) in [
        ("ucb", refuse("{service: nope}"), "service"),
        (
            "ucb",
            refuse("{service: web, variants: [slow, missing]}"),
            "behaviour",
        ),
        (
            "ucb",
            refuse("{service: web, variants: [slow], bound: ucb9}"),
            "bound",
        ),
        (
            "ucb",
            refuse("{service: web, variants: [slow], exploration: 0}"),
            "exploration",
        ),
        (
            "ucb",
            refuse("{service: web, variants: [slow], surprise: 1}"),
            "surprise",
        ),
        (
            "ucb",
            refuse("{service: web, variants: [slow], window: 0s}"),
            "window",
        ),
        (
            "ucb",
            refuse("{service: web, variants: [slow], veto: [slow@h9]}"),
            "veto",
        ),
        (
            "bandit",
            refuse("{service: web, variants: [slow]}"),
            "bandit",
        ),
    ] {
        let err = e.plug_learner(kind, "other", &p).await.unwrap_err();
        assert!(err.to_string().contains(what), "{err}");
    }
    let err = e
        .plug_learner("ucb", "compose", &params(LEARNER))
        .await
        .unwrap_err();
    assert_eq!(err, PlugError::Taken("compose".into()));
    // A veto given at plugging holds from the first decision.
    let only_fast = params("{service: web, variants: [slow, fast], window: 1s, veto: [slow]}");
    e.plug_learner("ucb", "only_fast", &only_fast)
        .await
        .unwrap();
    assert_eq!(
        e.knowledge().service("web").unwrap().behaviour.as_deref(),
        Some("fast")
    );
    assert!(e.learners().unplug("only_fast"));
    // A manifest's learner is checked with the rest of it, and located.
    let text = "name: m\nservices:\n  web: { modes: [knows_who_can_do] }\nlearners:\n  - kind: ucb\n    params: { service: web, variants: [gone] }\n";
    let m = Manifest::parse(&SourceFile::new("m.yaml", text), ".".as_ref()).unwrap();
    let err = Agent::from_manifest(&m)
        .predictor_kinds(selflet::plugins::kinds())
        .check()
        .unwrap_err();
    assert!(err.to_string().contains("m.yaml:5:"), "{err}");
}

/// A learner kind that panics at its second window.
struct Boom(u32);

impl Learner for Boom {
    fn window(
        &mut self,
        _: &Observation,
        _: Option<f64>,
        _: &dyn Fn(&str) -> bool,
    ) -> Result<Decision, selflet::error::BoxError> {
        self.0 += 1;
        assert!(self.0 < 2, "a learner bug");
        Ok(Decision {
            composition: Some("fast".into()),
            class: None,
        })
    }
    fn tables(&self) -> Value {
        Value::Null
    }
}

#[tokio::test(start_paused = true)]
async fn a_learner_that_panics_is_unplugged_and_the_agent_goes_on() {
    let kinds = Kinds::default();
    kinds.register_learner(
        "boom",
        Arc::new(|_, _| Ok(Box::new(Boom(0)) as Box<dyn Learner>)),
    );
    kinds.register_learner(
        "boom_now",
        Arc::new(|_, _| Ok(Box::new(Boom(1)) as Box<dyn Learner>)),
    );
    let net = Network::new();
    let e = Agent::builder("entry")
        .network(&net)
        .predictor_kinds(kinds)
        .behaviour(variant("slow", 30))
        .behaviour(variant("fast", 5))
        .service(Service {
            behaviour: Some("slow".into()),
            ..Service::new("web", OfferModes::CAN_DO)
        })
        .spawn()
        .await
        .unwrap();
    let spec = params("{service: web, variants: [slow, fast], window: 1s}");
    let err = e.plug_learner("boom_now", "b", &spec).await.unwrap_err();
    assert_eq!(err, PlugError::Panicked("b".into()));
    assert!(e.learners().get("b").is_none(), "not plugged");
    e.plug_learner(
        "boom",
        "b",
        &params("{service: web, variants: [slow, fast], window: 1s}"),
    )
    .await
    .unwrap();
    assert_eq!(
        e.knowledge().service("web").unwrap().behaviour.as_deref(),
        Some("fast")
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(e.learners().get("b").is_none(), "unplugged after its panic");
    let c = client(&net).await;
    assert_eq!(c.call("web", ()).await.unwrap(), Value::from("fast"));
}

#[tokio::test(start_paused = true)]
async fn environment_observations_stay_bounded_whatever_is_published() {
    let net = Network::new();
    let spec =
        "{service: web, variants: [slow, fast], window: 1s, environment: env.noise, threshold: 0}";
    let e = entry(&net, spec, None).await;
    // Every window a new environment, with more labels than a learner keeps.
    for i in 0..400 {
        let labels: Vec<(String, Value)> = (0..100)
            .map(|l| (format!("l{l:03}"), Value::Float(f64::from(i))))
            .collect();
        let mut payload: selflet::value::Map = labels.into_iter().collect();
        payload.insert("nan".into(), Value::Float(f64::NAN));
        e.publish("env.noise", Value::Map(payload)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let tables = e.learners().tables("compose").unwrap();
    let Some(Value::List(classes)) = tables.get("classes") else {
        panic!("{tables:?}")
    };
    assert_eq!(classes.len(), selflet::plugins::ucb::MAX_CLASSES);
    let labels = |c: &Value| match c.get("environment") {
        Some(Value::Map(m)) => m.len(),
        _ => 0,
    };
    assert!(
        classes
            .iter()
            .all(|c| labels(c) <= selflet::prediction::learner::MAX_LABELS)
    );
    // Past the cap the learner keeps what is in force, and the agent still serves.
    assert!(e.learners().get("compose").unwrap().windows >= 399);
    let c = client(&net).await;
    assert!(c.call("web", ()).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_reward_can_be_any_numeric_field_of_an_event() {
    let net = Network::new();
    let spec = "{service: web, variants: [slow, fast], window: 1s, exploration: 12, \
                reward: {topic: frame.done, field: ms, low: 10, high: 110, lower_is_better: true}}";
    let e = entry(&net, spec, None).await;
    // The application reports a cost per frame, which here depends on the variant in force:
    // `slow` is the cheaper one by this measure. Reports fall between window ends, never on
    // one, so each is counted in the window of the variant it measured.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..400 {
        let variant = e.knowledge().service("web").unwrap().behaviour.unwrap();
        let ms = if variant == "slow" { 20.0 } else { 80.0 };
        e.publish("frame.done", Value::map([("ms", Value::Float(ms))]))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tables = e.learners().tables("compose").unwrap();
    let mean = |c: &str| {
        let Some(Value::List(classes)) = tables.get("classes") else {
            panic!("{tables:?}")
        };
        classes[0]
            .get("actions")
            .and_then(|a| a.get(c))
            .cloned()
            .unwrap()
    };
    let (slow, fast) = (mean("slow"), mean("fast"));
    let m = |v: &Value| v.get("mean").and_then(Value::as_f64).unwrap();
    let n = |v: &Value| v.get("pulls").and_then(Value::as_int).unwrap();
    assert!(
        (m(&slow) - 0.9).abs() < 0.05 && (m(&fast) - 0.3).abs() < 0.05,
        "{tables:?}"
    );
    assert!(n(&slow) > 5 * n(&fast), "{tables:?}");
}
