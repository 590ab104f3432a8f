//! Policies: matching, priorities, conditions, actions, the sandbox, hot reload, errors.

use std::time::Duration;

use selflet::behaviour::Behaviour;
use selflet::policy::Policies;
use selflet::{Agent, AgentHandle, OfferModes, Service, SourceFile, Value};

fn src(name: &str, text: &str) -> SourceFile {
    SourceFile::new(name, text)
}

async fn agent(policy: &str) -> AgentHandle {
    Agent::builder("p")
        .behaviour(
            Behaviour::parse(src(
                "s.yaml",
                "behaviour: s\ninitial: a\nstates:\n  a: { final: true, output: '\"s\"' }\n",
            ))
            .unwrap(),
        )
        .service(Service::new("s", OfferModes::CAN_DO))
        .policy(src("p.rhai", policy))
        .spawn()
        .await
        .unwrap()
}

/// Publishes and gives the policy task time to act (the clock is paused, so this is exact).
async fn publish(a: &AgentHandle, topic: &str, payload: impl Into<Value>) {
    a.publish(topic, payload).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
}

async fn drain(sub: &selflet::Subscription) -> Vec<Value> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    let mut out = Vec::new();
    while let Ok(ev) = sub.try_recv() {
        out.push(ev.payload().clone());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn rules_match_exact_topics_and_prefixes_and_run_by_priority() {
    let a = agent(
        r#"
        rule("low").on("x.*").priority(1).then(|ev| publish("out", "low"));
        rule("high").on("x.y").priority(5).then(|ev| publish("out", "high"));
        rule("first of equals").on("x.y").then(|ev| publish("out", "a"));
        rule("second of equals").on(["x.y", "z"]).then(|ev| publish("out", "b"));
        "#,
    )
    .await;
    let out = a.subscribe("out").unwrap();
    publish(&a, "x.y", ()).await;
    assert_eq!(
        drain(&out).await,
        ["high", "low", "a", "b"].map(Value::from)
    );
    publish(&a, "x.other", ()).await;
    assert_eq!(drain(&out).await, [Value::from("low")]);
    publish(&a, "z", ()).await;
    assert_eq!(drain(&out).await, [Value::from("b")]);
    publish(&a, "unrelated", ()).await;
    assert!(drain(&out).await.is_empty());
    let stats = a.policies().stats();
    assert_eq!(stats["low"].fired, 2);
    assert_eq!(stats["second of equals"].evaluated, 2);
}

#[tokio::test(start_paused = true)]
async fn conditions_see_the_event_and_the_knowledge() {
    let a = agent(
        r#"
        rule("hot").on("temp").when(|ev| ev.value > fact("limit")).then(|ev| set_fact("alarm", ev.value));
        "#,
    )
    .await;
    a.set_fact("limit", 30).await;
    publish(&a, "temp", 25).await;
    assert_eq!(a.fact("alarm"), None);
    publish(&a, "temp", 35).await;
    assert_eq!(a.fact("alarm"), Some(Value::Int(35)));
    // The event's topic and source are there too.
    let b =
        agent(r#"rule("r").on("t.*").then(|ev| set_fact("seen", ev.topic + "@" + ev.source));"#)
            .await;
    publish(&b, "t.u", ()).await;
    assert_eq!(b.fact("seen"), Some(Value::from("t.u@p")));
}

#[tokio::test(start_paused = true)]
async fn each_action_has_its_effect() {
    let a = agent(
        r#"
        rule("facts").on("go").then(|ev| { set_fact("x", 1); set_fact("y", 2); remove_fact("y"); });
        rule("offer").on("go").then(|ev| set_offer_modes("s", ["can_do", "can_teach"]));
        rule("ask").on("go").then(|ev| set_ask_modes("s", "can_teach"));
        rule("ability").on("go").then(|ev| install_ability("triple.rhai", "fn triple(x) { x * 3 }"));
        rule("behaviour").on("go").then(|ev| install_behaviour("behaviour: t\ninitial: a\nstates:\n  a: { do: { ability: triple, args: input, save: r }, on: { done: f } }\n  f: { final: true, output: r }\n"));
        rule("service").on("go").then(|ev| install_service("t", "t", "can_do"));
        rule("modify").on("go").then(|ev| add_state("s", "a", #{ final: true, output: "\"changed\"" }));
        rule("main").on("go").then(|ev| set_main_behaviour("s"));
        rule("neighbour").on("go").then(|ev| disable_neighbour("b"));
        rule("announce").on("go").then(|ev| publish("done", #{ by: agent_name() }));
        rule("policy").on("go").then(|ev| install_policy("extra.rhai", `rule("extra").on("ping").then(|ev| set_fact("pong", true));`));
        rule("disable").on("stop").then(|ev| disable_behaviour("t"));
        "#,
    )
    .await;
    let done = a.subscribe("done").unwrap();
    publish(&a, "go", ()).await;
    let k = a.knowledge();
    assert_eq!(a.fact("x"), Some(Value::Int(1)));
    assert_eq!(a.fact("y"), None);
    assert_eq!(
        k.service("s").unwrap().modes,
        OfferModes::CAN_DO | OfferModes::CAN_TEACH
    );
    assert_eq!(*k.ask_modes("s"), [selflet::OfferMode::CanTeach]);
    assert_eq!(a.run_behaviour("t", 5).await.unwrap(), Value::Int(15));
    assert!(k.can_run("t"));
    assert_eq!(
        a.run_behaviour("s", ()).await.unwrap(),
        Value::from("changed")
    );
    assert_eq!(a.main_behaviour().as_deref(), Some("s"));
    assert!(!k.neighbour_enabled("b"));
    assert_eq!(drain(&done).await, [Value::map([("by", Value::from("p"))])]);
    publish(&a, "ping", ()).await;
    assert_eq!(a.fact("pong"), Some(Value::Bool(true)));
    publish(&a, "stop", ()).await;
    assert!(a.run_behaviour("t", 1).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_failing_rule_changes_nothing_and_the_others_go_on() {
    let a = agent(
        r#"
        rule("loops").on("go").priority(3).then(|ev| { set_fact("partial", true); loop { } });
        rule("hoards").on("go").priority(2).then(|ev| { let s = "x"; loop { s += s; } });
        rule("errs").on("go").priority(1).then(|ev| { set_fact("partial", true); throw "nope"; });
        rule("fine").on("go").then(|ev| set_fact("fine", true));
        "#,
    )
    .await;
    publish(&a, "go", ()).await;
    assert_eq!(
        a.fact("partial"),
        None,
        "a failing rule's queued actions are discarded"
    );
    assert_eq!(a.fact("fine"), Some(Value::Bool(true)));
    let stats = a.policies().stats();
    for r in ["loops", "hoards", "errs"] {
        assert_eq!(stats[r].failed, 1, "{r}");
    }
    // The agent and its rules keep working.
    publish(&a, "go", ()).await;
    assert_eq!(a.policies().stats()["fine"].fired, 2);
    assert_eq!(a.lifecycle(), selflet::Lifecycle::Running);
}

#[tokio::test(start_paused = true)]
async fn hot_reload_replaces_a_file_and_a_bad_file_leaves_the_old_version() {
    let a = agent(r#"rule("v").on("go").then(|ev| set_fact("v", 1));"#).await;
    publish(&a, "go", ()).await;
    assert_eq!(a.fact("v"), Some(Value::Int(1)));
    a.load_policy(src(
        "p.rhai",
        r#"rule("v").on("go").then(|ev| set_fact("v", 2));"#,
    ))
    .unwrap();
    publish(&a, "go", ()).await;
    assert_eq!(a.fact("v"), Some(Value::Int(2)));
    let err = a
        .load_policy(src(
            "p.rhai",
            "rule(\"v\").on(\"go\").then(|ev| set_fact(\"v\", 3);\n",
        ))
        .unwrap_err();
    assert_eq!(err.problems()[0].line(), 1);
    publish(&a, "go", ()).await;
    a.set_fact("v", 0).await;
    publish(&a, "go", ()).await;
    assert_eq!(
        a.fact("v"),
        Some(Value::Int(2)),
        "the old version still runs"
    );
    assert!(a.policies().remove("p.rhai"));
    a.set_fact("v", 0).await;
    publish(&a, "go", ()).await;
    assert_eq!(a.fact("v"), Some(Value::Int(0)));
}

#[tokio::test(start_paused = true)]
async fn events_with_no_rule_on_their_topic_run_no_script() {
    let a = agent(r#"rule("r").on("go").then(|ev| set_fact("n", (fact("n") ?? 0) + 1));"#).await;
    for _ in 0..5 {
        publish(&a, "other", ()).await;
    }
    assert_eq!(a.policies().stats()["r"].evaluated, 0);
    // The policy queue does not even receive them.
    assert_eq!(a.bus().topic_stats("other").unwrap().delivered, 0);
}

#[test]
fn compile_errors_and_unknown_functions_are_located() {
    let err = Policies::check(&src(
        "bad.rhai",
        "rule(\"a\")\n  .on(\"x\")\n  .then(|ev| {\n",
    ))
    .unwrap_err();
    assert_eq!(err.problems()[0].file(), "bad.rhai");
    let err = Policies::check(&src("typo.rhai", "rule(\"a\").on(\"service.executed\")\n  .then(|ev| request_servce(ev.service, \"can_teach\"));\n")).unwrap_err();
    let p = &err.problems()[0];
    assert_eq!((p.line(), p.column()), (2, 14));
    assert!(p.message().contains("request_servce"), "{}", p.message());
    let warnings = Policies::check(&src(
        "w.rhai",
        "rule(\"a\").on(\"made.up\").then(|ev| log(ev));\n",
    ))
    .unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].to_string().starts_with("w.rhai:1:1: warning:"),
        "{}",
        warnings[0]
    );
    let err = Policies::check(&src("t.rhai", "rule(\"a\").then(|ev| log(ev));\n")).unwrap_err();
    assert!(err.problems()[0].message().contains("no topic"));
}

#[test]
fn shipped_policies_check_clean() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rhai") {
            continue;
        }
        let source = SourceFile::read(&path).unwrap();
        let warnings = Policies::check(&source).unwrap_or_else(|e| panic!("{e}"));
        // The home-energy policy reacts to its behaviour's own `energy.*` events.
        assert!(
            warnings.iter().all(|w| w.message.contains("energy.")),
            "{}: {warnings:?}",
            path.display()
        );
        checked += 1;
    }
    assert_eq!(checked, 4, "every policy in policies/");
}

#[tokio::test(start_paused = true)]
async fn policies_plug_and_unplug_predictors_and_request_services() {
    let a = agent(
        r#"
        rule("plug").on("go").then(|ev| plug_predictor("rhai", "echo", #{
            consumes: "sample",
            source: "fn update(ev) { emit(\"prediction.echo\", ev.value); }",
        }));
        rule("unplug").on("stop").then(|ev| unplug_predictor("echo"));
        rule("ask").on("need").then(|ev| request_service("nowhere", "can_teach"));
        "#,
    )
    .await;
    let echoes = a.subscribe("prediction.echo").unwrap();
    let failed = a.subscribe("service.failed").unwrap();
    publish(&a, "go", ()).await;
    assert_eq!(a.predictors().descriptors().len(), 1);
    publish(&a, "sample", 7).await;
    assert_eq!(echoes.try_recv().unwrap().payload(), &Value::Int(7));
    publish(&a, "stop", ()).await;
    assert!(a.predictors().descriptors().is_empty());
    // A request for a service nobody offers ends with an error, reported on the bus.
    publish(&a, "need", ()).await;
    let f = failed.try_recv().expect("the request failed visibly");
    assert_eq!(f.payload().get("service"), Some(&Value::from("nowhere")));
}

#[tokio::test(start_paused = true)]
async fn the_first_rule_of_an_agent_without_policies_runs_even_when_loaded_from_another_thread() {
    let a = Agent::builder("plain").spawn().await.unwrap();
    let out = a.subscribe("out").unwrap();
    // No rule yet: nothing reads events for rules.
    assert_eq!(a.queue_depths().policy, 0);
    let loader = a.clone();
    std::thread::spawn(move || {
        loader
            .load_policy(src(
                "late.rhai",
                r#"rule("late").on("in").then(|ev| publish("out", "heard"));"#,
            ))
            .unwrap()
    })
    .join()
    .unwrap();
    publish(&a, "in", ()).await;
    assert_eq!(drain(&out).await, [Value::from("heard")]);
    a.shutdown().await;
}
