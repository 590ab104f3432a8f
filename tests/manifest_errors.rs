//! Agent manifests: what loads, and where the errors point.

use std::path::Path;

use selflet::{Agent, LoadError, Manifest, OfferModes, SourceFile, Value};

fn parse(text: &str) -> Result<Manifest, LoadError> {
    Manifest::parse(&SourceFile::new("m.yaml", text), Path::new("."))
}

/// The (line, column, message) of each problem.
fn problems(text: &str) -> Vec<(usize, usize, String)> {
    let err = parse(text).expect_err("the manifest should be refused");
    assert!(!err.problems().is_empty());
    err.problems()
        .iter()
        .map(|p| {
            assert_eq!(p.file(), "m.yaml");
            (p.line(), p.column(), p.message().to_owned())
        })
        .collect()
}

#[test]
fn a_complete_manifest_loads() {
    let m = parse(
        "name: a\n\
         goal: use service1\n\
         main: main\n\
         services:\n  service1: { modes: [can_do, can_teach], requires: [service2] }\n\
         requires: [service3]\n\
         predictors:\n  - kind: space_saving\n    params: { k: 64, min_support: 0.2 }\n\
         attributes: { room: kitchen }\n\
         facts: { threshold: 3 }\n\
         network: { neighbours: [b] }\n",
    )
    .unwrap();
    assert_eq!(m.name, "a");
    assert_eq!(m.main.as_deref(), Some("main"));
    assert_eq!(
        m.services[0].modes,
        OfferModes::CAN_DO | OfferModes::CAN_TEACH
    );
    assert_eq!(m.services[0].behaviour.as_deref(), Some("service1"));
    assert_eq!(m.services[0].requires, ["service2"]);
    assert_eq!(m.requires, ["service3"]);
    assert_eq!(m.predictors[0].name, "space_saving");
    assert_eq!(m.predictors[0].params.get("k"), Some(&Value::Int(64)));
    assert_eq!(m.attributes.get("room"), Some(&Value::from("kitchen")));
    assert_eq!(m.network.neighbours, ["b"]);
}

#[test]
fn unknown_keys_are_refused_at_their_position() {
    let p = problems("name: a\ngaol: oops\n");
    assert_eq!(p[0].0, 2);
    assert_eq!(p[0].1, 1);
    assert!(p[0].2.contains("unknown field `gaol`"), "{}", p[0].2);
    assert!(
        p[0].2.contains("goal"),
        "the message lists what was expected"
    );

    let p = problems("name: a\nservices:\n  s1:\n    modes: [can_do]\n    mode: x\n");
    assert_eq!((p[0].0, p[0].1), (5, 5));
}

#[test]
fn unknown_offer_modes_are_refused_with_the_expected_ones() {
    let p = problems("name: a\nservices:\n  s1: { modes: [can_do, can_fly] }\n");
    assert_eq!((p[0].0, p[0].1), (3, 25));
    assert!(
        p[0].2.contains("can_fly") && p[0].2.contains("can_teach"),
        "{}",
        p[0].2
    );
}

#[test]
fn wrong_types_and_duplicate_keys_are_located() {
    let p = problems("name: a\nrequires: 3\n");
    assert_eq!(p[0].0, 2);
    let p = problems("name: a\nfacts: { x: 1 }\nfacts: { y: 2 }\n");
    assert_eq!(p[0].0, 3);
    assert!(p[0].2.to_lowercase().contains("duplicate"), "{}", p[0].2);
}

#[test]
fn a_missing_name_is_reported() {
    let p = problems("goal: nothing\n");
    assert!(p[0].2.contains("name"), "{}", p[0].2);
}

#[test]
fn every_semantic_problem_is_reported_at_once_with_its_location() {
    let p = problems(
        "name: 9a\nbehaviours: [missing.yaml]\nservices:\n  s1: { modes: [] }\nrequires: [ok, 'bad name']\n",
    );
    let at: Vec<_> = p.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(at, [(1, 7), (5, 16), (2, 14), (4, 16)]);
    assert!(p[0].2.contains("invalid agent name `9a`"));
    assert!(p[2].2.contains("missing.yaml"));
    assert!(p[3].2.contains("at least one offer mode"));
}

#[test]
fn two_predictors_of_one_kind_need_distinct_names() {
    let p = problems("name: a\npredictors:\n  - kind: ewma\n  - kind: ewma\n");
    assert_eq!((p[0].0, p[0].1), (4, 11));
    parse("name: a\npredictors:\n  - kind: ewma\n  - kind: ewma\n    name: slow\n").unwrap();
}

#[test]
fn display_is_file_line_column_message() {
    let err = parse("name: a\ngaol: x\n").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("m.yaml:2:1: unknown field `gaol`"),
        "{err}"
    );
}

#[tokio::test]
async fn an_agent_built_from_a_manifest_has_its_services_facts_and_attributes() {
    let m = parse(
        "name: kitchen\nservices:\n  report: { modes: [can_do] }\nrequires: [capacity]\nattributes: { room: kitchen }\nfacts: { threshold: 3 }\n",
    )
    .unwrap();
    let report = selflet::behaviour::Behaviour::parse(SourceFile::new(
        "report.yaml",
        "behaviour: report\ninitial: done\nstates:\n  done: { final: true, output: \"42\" }\n",
    ))
    .unwrap();
    let agent = Agent::from_manifest(&m)
        .behaviour(report)
        .spawn()
        .await
        .unwrap();
    assert_eq!(
        agent.run_behaviour("report", ()).await.unwrap(),
        Value::Int(42)
    );
    let k = agent.knowledge();
    assert_eq!(k.service("report").unwrap().modes, OfferModes::CAN_DO);
    assert_eq!(k.requires(), ["capacity"]);
    assert_eq!(k.attribute("room"), Some(Value::from("kitchen")));
    assert_eq!(agent.fact("threshold"), Some(Value::Int(3)));
    agent.shutdown().await;
}

#[test]
fn shipped_manifests_load_and_their_agents_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for dir in ["examples/home", "examples/teaching"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let m = Manifest::load(&path).unwrap_or_else(|e| panic!("{e}"));
            selflet::Agent::from_manifest(&m)
                .predictor_kinds(selflet::plugins::kinds())
                .check()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            checked += 1;
        }
    }
    assert_eq!(checked, 4, "grid, kitchen, a and b");
}

#[test]
fn zenoh_settings_load_with_defaults_for_what_is_not_said() {
    let m = parse(
        "name: a\nnetwork:\n  zenoh:\n    listen: [tcp/127.0.0.1:7447]\n    namespace: home\n",
    )
    .unwrap();
    let z = m.network.zenoh.expect("zenoh settings");
    assert_eq!(z.listen, vec!["tcp/127.0.0.1:7447"]);
    assert_eq!(z.namespace, "home");
    assert_eq!(z.mode, selflet::transport::ZenohMode::Peer);
    assert!(
        !z.multicast_scouting,
        "multicast scouting is off by default"
    );
    assert!(parse("name: a\n").unwrap().network.zenoh.is_none());
}

#[test]
fn bad_zenoh_settings_are_located() {
    let found = problems(
        "name: a\nnetwork:\n  zenoh:\n    mode: router\n    connect: [udp/127.0.0.1:7447, tcp/host]\n    namespace: 'a/b'\n",
    );
    let at: Vec<(usize, usize)> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(at, vec![(4, 11), (5, 15), (5, 35), (6, 16)], "{found:?}");
    assert!(found[0].2.contains("expected peer or client"), "{found:?}");
    assert!(found[1].2.contains("`udp` is not supported"), "{found:?}");
    assert!(found[2].2.contains("needs a host and a port"), "{found:?}");
    assert!(found[3].2.contains("invalid namespace"), "{found:?}");
}

#[test]
fn provider_choice_gossip_and_quality_load_in_short_and_full_forms() {
    use selflet::choice::{Choice, Learning, QualityMetric};
    use std::time::Duration;

    let m =
        parse("name: a\nnegotiation: { choice: greedy, gossip: true, quality: response_time }\n")
            .unwrap();
    assert_eq!(m.negotiation.choice, Some(Choice::Greedy));
    assert_eq!(m.negotiation.gossip, Some(Default::default()));
    assert_eq!(m.negotiation.quality, Some(QualityMetric::default()));

    let m = parse(
        "name: a\nnegotiation:\n  choice: { kind: two_layer_rl, initial_trust: 0.5, window: 8 }\n  \
         gossip: { period: 2s, fanout: 4, known: 7 }\n  quality: { output: score }\n",
    )
    .unwrap();
    let learning = Learning {
        initial_trust: 0.5,
        window: 8,
    };
    assert_eq!(m.negotiation.choice, Some(Choice::TwoLayerRl(learning)));
    let g = m.negotiation.gossip.unwrap();
    assert_eq!(
        (g.period, g.fanout, g.known),
        (Duration::from_secs(2), 4, 7)
    );
    assert_eq!(
        m.negotiation.quality,
        Some(QualityMetric::Output {
            field: "score".into()
        })
    );
    let m = parse("name: a\nnegotiation: { gossip: false, quality: { response_time: 250ms } }\n")
        .unwrap();
    assert_eq!(m.negotiation.gossip, None);
    assert_eq!(
        m.negotiation.quality,
        Some(QualityMetric::ResponseTime {
            reference: Duration::from_millis(250)
        })
    );
}

#[test]
fn bad_provider_choice_gossip_and_quality_are_located() {
    let found = problems(
        "name: a\nnegotiation:\n  choice: { kind: two_layer_rl, initial_trust: 1.5 }\n  \
         gossip: { fanout: 0 }\n  quality: { output: q, response_time: 1s }\n",
    );
    let at: Vec<(usize, usize)> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(at, vec![(3, 11), (4, 11), (5, 12)], "{found:?}");
    assert!(found[0].2.contains("`initial_trust` is 1.5"), "{found:?}");
    assert!(found[1].2.contains("`fanout` is 0"), "{found:?}");
    assert!(found[2].2.contains("`quality` is"), "{found:?}");

    let found = problems("name: a\nnegotiation: { choice: smartest }\n");
    assert_eq!((found[0].0, found[0].1), (2, 24), "{found:?}");
    assert!(
        found[0].2.contains("unknown provider choice `smartest`")
            && found[0].2.contains("two_layer_rl"),
        "{found:?}"
    );
    let found = problems("name: a\nnegotiation: { choice: { kind: greedy, window: 3 } }\n");
    assert!(
        found[0]
            .2
            .contains("`greedy` takes no `initial_trust` or `window`"),
        "{found:?}"
    );
}
