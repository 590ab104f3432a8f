//! Properties over what users write and peers send: no input makes selflet panic, every
//! behaviour that validates ends under its limits, and a refused teaching package leaves
//! the learner exactly as it was.
//!
//! Cases per property: `PROPTEST_CASES` (64 unless set; CI uses the default). A longer run:
//! `PROPTEST_CASES=5000 cargo test --release --test properties`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use selflet::behaviour::{Behaviour, InstanceLimits};
use selflet::transport::{Envelope, Message, TeachingPackage, Transport};
use selflet::{Agent, Manifest, Network, OfferModes, Service, SourceFile, Value};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Durations as users and attackers write them.
fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => (0u64..5000).prop_map(|n| format!("{n}ms")),
        12 => (0u64..100).prop_map(|n| format!("{n}s")),
        1 => "[0-9]{1,25}(ms|s|m|h)",
        1 => "[0-9.]{1,8}[a-z]{0,3}",
        1 => Just("18446744073709551615h".to_owned()),
        1 => Just("1e400s".to_owned()),
    ]
}

/// Expressions, valid or not, cheap or not.
fn expression() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => Just("true".to_owned()),
        12 => Just("false".to_owned()),
        12 => Just("x > 2".to_owned()),
        12 => Just("x + 1".to_owned()),
        1 => Just("input".to_owned()),
        1 => Just("event".to_owned()),
        1 => Just("1 +".to_owned()),
        1 => Just("x / 0".to_owned()),
        1 => Just("\"s\" * 100000000".to_owned()),
        1 => "[a-z0-9+*/ ().]{0,12}",
    ]
}

const STATES: [&str; 5] = ["a", "b", "c", "d", "f"];

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        100 => (0..STATES.len()).prop_map(|i| STATES[i].to_owned()),
        1 => Just("nowhere".to_owned()),
    ]
}

fn transition() -> impl Strategy<Value = String> {
    (target(), proptest::option::of(expression())).prop_map(|(t, g)| match g {
        None => t,
        Some(g) => format!("{{ target: {t}, guard: {} }}", yaml_str(&g)),
    })
}

fn yaml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// One state's YAML, with a random selection of what a state can have.
fn state() -> impl Strategy<Value = String> {
    let activity = prop_oneof![
        Just(String::new()),
        expression().prop_map(|e| format!("do: {{ set: {{ x: {} }} }}, ", yaml_str(&e))),
        Just("do: { ability: echo, args: \"x\", save: x }, ".to_owned()),
        Just("do: { ability: missing }, ".to_owned()),
        Just("do: { publish: go.on, payload: \"x\" }, ".to_owned()),
    ];
    let list = |s| proptest::collection::vec(s, 0..3);
    (
        activity,
        list(transition()),
        list(transition()),
        list(transition()),
        proptest::option::of((duration(), transition())),
        proptest::bool::weighted(0.2),
        proptest::option::of(expression()),
    )
        .prop_map(|(act, done, error, always, after, is_final, output)| {
            if is_final {
                return match output {
                    Some(o) => format!("{{ final: true, output: {} }}", yaml_str(&o)),
                    None => "{ final: true }".to_owned(),
                };
            }
            // An event to every state keeps them all reachable, whatever else is drawn.
            let mut s = format!("{{ {act}on: {{ \"to.any\": [a], \"to.b\": b, \"to.c\": c, \"to.d\": d, \"to.f\": f, ");
            for (trigger, ts) in [("done", &done), ("error", &error), ("go.on", &done)] {
                if !ts.is_empty() {
                    s.push_str(&format!("\"{trigger}\": [{}], ", ts.join(", ")));
                }
            }
            s.push_str("}, ");
            if !always.is_empty() {
                s.push_str(&format!("always: [{}], ", always.join(", ")));
            }
            if let Some((d, t)) = after {
                s.push_str(&format!("after: {{ \"{d}\": {t} }}, "));
            }
            s.push('}');
            s
        })
}

/// A behaviour's YAML: often valid, sometimes invalid, sometimes looping.
fn behaviour_yaml() -> impl Strategy<Value = String> {
    proptest::collection::vec(state(), STATES.len() - 1).prop_map(|states| {
        let mut y = "behaviour: gen\nvars: { x: 0 }\ninitial: a\nstates:\n".to_owned();
        for (name, s) in STATES.iter().zip(states) {
            y.push_str(&format!("  {name}: {s}\n"));
        }
        y.push_str("  f: { final: true, output: x }\n");
        y
    })
}

/// Rhai scripts of abilities, valid or not, cheap or not.
fn script() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("fn echo(i) { i }".to_owned()),
        Just("fn echo(i) { loop { } }".to_owned()),
        Just("fn echo(i) { echo(i) }".to_owned()),
        Just("fn spare_capacity(i) { 0 }".to_owned()),
        Just("fn echo(i) {".to_owned()),
        Just("let x = 1;".to_owned()),
        "[a-z(){}; ]{0,30}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        (-1e12f64..1e12).prop_map(Value::Float),
        "[a-z]{0,8}".prop_map(|s| Value::from(s.as_str())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
            // Keys in any order, some repeated: a map is built by sorting once.
            proptest::collection::vec(("[a-c]{1,2}", inner), 0..4)
                .prop_map(|entries| Value::Map(entries.into_iter().collect())),
        ]
    })
}

/// An agent whose every change a package could make can be compared before and after.
fn snapshot(a: &selflet::AgentHandle) -> (Vec<String>, Vec<String>, BTreeSet<String>) {
    (
        a.behaviours().names(),
        a.abilities().names(),
        a.knowledge()
            .services()
            .into_iter()
            .map(|s| s.name)
            .collect(),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn durations_never_panic_and_stay_within_a_year(text in duration()) {
        if let Ok(d) = selflet::duration::parse(&text) {
            prop_assert!(d <= selflet::duration::MAX);
        }
    }

    #[test]
    fn a_map_value_holds_what_a_btree_map_of_the_same_entries_holds(
        entries in proptest::collection::vec(("[a-d]{1,2}", any::<i64>()), 0..40),
    ) {
        let entries: Vec<(String, Value)> =
            entries.into_iter().map(|(k, v)| (k, Value::Int(v))).collect();
        let expected: std::collections::BTreeMap<String, Value> = entries.iter().cloned().collect();
        let expected: Vec<(String, Value)> = expected.into_iter().collect();
        // Collected, deserialized from a JSON object with the keys in the given order, and
        // inserted one at a time: the last value of a key wins, keys come out sorted.
        let collected = Value::map(entries.iter().cloned());
        let json = format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{k:?}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let parsed: Value = serde_json::from_str(&json).unwrap();
        let mut inserted = selflet::value::Map::new();
        for (k, v) in entries.iter().cloned() {
            inserted.insert(k, v);
        }
        for map in [collected, parsed, Value::Map(inserted)] {
            let Value::Map(m) = map else { panic!("not a map") };
            let got: Vec<(String, Value)> = m.into_iter().collect();
            prop_assert_eq!(&got, &expected);
        }
    }

    #[test]
    fn envelopes_from_any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = serde_json::from_slice::<Envelope>(&bytes);
    }

    #[test]
    fn envelopes_round_trip_through_json(
        // Up to 40 characters of any kind: names held inline (up to 24 bytes) and on the heap.
        from in "\\PC{0,40}",
        id in any::<u64>(),
        input in value(),
        hops in 0u8..3,
    ) {
        let env = Envelope {
            trace: 0,
            from: from.into(),
            to: "b".into(),
            id,
            body: Message::Request {
                service: "s".into(),
                modes: vec![selflet::OfferMode::CanDo],
                input,
                hops,
            },
        };
        let json = serde_json::to_string(&env).unwrap();
        let back: Envelope = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, env);
    }

    #[test]
    fn manifests_from_any_text_never_panic(text in "[a-z:{}\\[\\], \n0-9_-]{0,120}") {
        let _ = Manifest::parse(&SourceFile::new("m.yaml", text), Path::new("."));
    }

    #[test]
    fn manifests_of_the_right_shape_never_panic(
        name in "[a-z][a-z0-9_-]{0,10}|[0-9]+|",
        timeout in duration(),
        steps in any::<u32>(),
        modes in proptest::collection::vec(
            prop_oneof![Just("can_do"), Just("can_teach"), Just("knows_who_can_do"), Just("maybe")],
            0..3,
        ),
    ) {
        let text = format!(
            "name: {name}\nservices:\n  s: {{ modes: [{}], time_limit: \"{timeout}\" }}\nnegotiation: {{ timeout: \"{timeout}\" }}\nlimits: {{ steps: {steps}, service_time: \"{timeout}\" }}\n",
            modes.join(", ")
        );
        if let Ok(m) = Manifest::parse(&SourceFile::new("m.yaml", text), Path::new(".")) {
            let _ = Agent::from_manifest(&m).check();
        }
    }

    #[test]
    fn behaviours_that_validate_run_to_an_end_under_their_limits(yaml in behaviour_yaml()) {
        let Ok(b) = Behaviour::parse(SourceFile::new("gen.yaml", yaml.clone())) else {
            return Ok(());
        };
        runtime().block_on(async {
            let agent = Agent::builder("p")
                .behaviour(b)
                .ability_script(SourceFile::new("echo.rhai", "fn echo(i) { i }"))
                .instance_limits(InstanceLimits { steps: 200, time: Some(Duration::from_secs(30)) })
                .spawn()
                .await
                .unwrap();
            // Events it may wait for come, then nothing: it ends by itself or by its limits.
            let run = agent.run_behaviour("gen", Value::Int(3));
            let poke = async {
                for _ in 0..3 {
                    let _ = agent.publish("go.on", 1).await;
                    let _ = agent.publish("to.f", 1).await;
                    tokio::task::yield_now().await;
                }
                std::future::pending::<()>().await
            };
            let ended = tokio::select! {
                r = run => Some(r),
                _ = poke => None,
            };
            assert!(ended.is_some(), "{yaml}");
            agent.shutdown().await;
        });
    }

    #[test]
    fn a_refused_package_leaves_the_learner_exactly_as_it_was(
        yaml in behaviour_yaml(),
        scripts in proptest::collection::vec(script(), 0..3),
        service in prop_oneof![Just("gen"), Just("own"), Just("1bad")],
    ) {
        runtime().block_on(async {
            let net = Network::new();
            let own = Behaviour::parse(SourceFile::new(
                "own.yaml",
                "behaviour: own\ninitial: s\nstates:\n  s: { final: true, output: \"1\" }\n",
            ))
            .unwrap();
            let learner = Agent::builder("learner")
                .network(&net)
                .behaviour(own)
                .service(Service::new("own", OfferModes::CAN_DO))
                .ability("spare_capacity", |_input: Value| async { Ok(Value::Int(800)) })
                .spawn()
                .await
                .unwrap();
            let _teacher = net.join("teacher").unwrap();
            let before = snapshot(&learner);
            let pkg = TeachingPackage {
                service: service.to_owned(),
                behaviour: "gen".into(),
                behaviour_source: yaml,
                scripts: scripts
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| (format!("s{i}.rhai"), s))
                    .collect(),
                requires: vec![],
            };
            let _ = net.send(Envelope {
                trace: 0,
                from: "teacher".into(),
                to: "learner".into(),
                id: 0,
                body: Message::Lesson(Box::new(pkg)),
            });
            tokio::time::sleep(Duration::from_millis(10)).await;
            if learner.learned().is_empty() {
                assert_eq!(snapshot(&learner), before, "a refused package changed the learner");
            } else {
                // Taught code runs contained, like any other.
                let call = learner.call("gen", 3);
                let _ = tokio::time::timeout(Duration::from_secs(120), call)
                    .await
                    .expect("a taught service's run ends under its limits");
            }
            assert_eq!(
                learner.abilities().call("spare_capacity", Value::Null).await.unwrap(),
                Value::Int(800)
            );
            learner.shutdown().await;
        });
    }
}
