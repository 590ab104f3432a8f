//! The behaviour interpreter, construct by construct, on a paused clock.

use std::time::Duration;

use selflet::behaviour::{Behaviour, ErrorKind};
use selflet::{Agent, AgentHandle, OfferModes, Service, SourceFile, Value};

fn behaviour(text: &str) -> Behaviour {
    Behaviour::parse(SourceFile::new("t.yaml", text)).unwrap_or_else(|e| panic!("{e}"))
}

async fn agent_with(bs: &[&str]) -> AgentHandle {
    let mut b = Agent::builder("t").ability("double", |v: Value| async move {
        Ok(Value::Int(v.as_int().ok_or("not an int")? * 2))
    });
    b = b.ability("explode", |_v: Value| async move { panic!("boom") });
    for text in bs {
        b = b.behaviour(behaviour(text));
    }
    b.spawn().await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn set_ability_and_final_output() {
    let a = agent_with(&["behaviour: b\ninitial: s\nvars: { k: 10 }\nstates:\n  s:\n    entry: { set: { k: \"k + input\" } }\n    do: { ability: double, args: \"k\", save: r }\n    on: { done: f }\n  f: { final: true, output: \"r + 1\" }\n"]).await;
    assert_eq!(a.run_behaviour("b", 5).await.unwrap(), Value::Int(31));
}

#[tokio::test(start_paused = true)]
async fn guards_pick_the_first_enabled_transition_in_document_order() {
    let a = agent_with(&["behaviour: b\ninitial: s\nstates:\n  s:\n    on:\n      done:\n        - { target: big, guard: \"input > 100\" }\n        - { target: mid, guard: \"input > 10\" }\n        - { target: mid2, guard: \"input > 10\" }\n        - small\n  big: { final: true, output: '\"big\"' }\n  mid: { final: true, output: '\"mid\"' }\n  mid2: { final: true, output: '\"mid2\"' }\n  small: { final: true, output: '\"small\"' }\n"]).await;
    assert_eq!(a.run_behaviour("b", 500).await.unwrap(), Value::from("big"));
    assert_eq!(a.run_behaviour("b", 50).await.unwrap(), Value::from("mid"));
    assert_eq!(a.run_behaviour("b", 5).await.unwrap(), Value::from("small"));
}

#[tokio::test(start_paused = true)]
async fn a_final_error_state_ends_the_instance_with_that_error() {
    let a = agent_with(&["behaviour: b\ninitial: s\nstates:\n  s: { on: { done: bad } }\n  bad: { final: true, error: '\"nope: \" + input' }\n"]).await;
    let e = a.run_behaviour("b", 3).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Final);
    assert_eq!(e.state(), "bad");
    assert!(e.message().contains("nope: 3"));
}

#[tokio::test(start_paused = true)]
async fn a_failing_do_takes_the_error_transition_or_ends_the_instance() {
    let a = agent_with(&[
        "behaviour: caught\ninitial: s\nstates:\n  s:\n    do: { ability: explode }\n    on: { done: ok, error: handled }\n  ok: { final: true, output: '\"ok\"' }\n  handled: { final: true, output: 'event' }\n",
        "behaviour: uncaught\ninitial: s\nstates:\n  s:\n    do: { ability: double, args: '\"x\"' }\n    on: { done: ok }\n  ok: { final: true }\n",
    ]).await;
    let out = a.run_behaviour("caught", ()).await.unwrap();
    assert!(out.as_str().unwrap().contains("panicked"), "{out}");
    let e = a.run_behaviour("uncaught", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Action);
    assert!(e.message().contains("not an int"));
    // The agent is still fine.
    assert_eq!(a.lifecycle(), selflet::Lifecycle::Running);
}

#[tokio::test(start_paused = true)]
async fn a_guard_that_errs_or_is_not_a_bool_ends_the_instance() {
    let a = agent_with(&["behaviour: b\ninitial: s\nstates:\n  s: { on: { done: { target: f, guard: \"input\" } } }\n  f: { final: true }\n"]).await;
    let e = a.run_behaviour("b", 3).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Guard);
}

#[tokio::test(start_paused = true)]
async fn timers_fire_after_their_delay_and_belong_to_their_state() {
    let a = agent_with(&["behaviour: b\ninitial: wait\nstates:\n  wait:\n    after: { 2s: early, 10s: late }\n  early:\n    after: { 3s: done }\n  late: { final: true, output: '\"late\"' }\n  done: { final: true, output: '\"done\"' }\n"]).await;
    let start = tokio::time::Instant::now();
    assert_eq!(a.run_behaviour("b", ()).await.unwrap(), Value::from("done"));
    // 2 s in `wait`, then 3 s in `early`: the 10 s timer of `wait` died with its state.
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn events_move_an_instance_and_exact_topics_beat_prefixes() {
    let a = agent_with(&["behaviour: b\ninitial: wait\nstates:\n  wait:\n    on:\n      sensor.*: generic\n      sensor.door: { target: door, guard: \"event.open == true\" }\n    after: { 60s: timeout }\n  generic: { final: true, output: '\"generic\"' }\n  door: { final: true, output: '\"door\"' }\n  timeout: { final: true, output: '\"timeout\"' }\n"]).await;
    let run = {
        let a = a.clone();
        tokio::spawn(async move { a.run_behaviour("b", ()).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The guard fails: the event is discarded (the prefix transition is not tried instead).
    a.publish("sensor.door", Value::map([("open", Value::Bool(false))]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.publish("sensor.door", Value::map([("open", Value::Bool(true))]))
        .await
        .unwrap();
    assert_eq!(run.await.unwrap().unwrap(), Value::from("door"));

    let run = {
        let a = a.clone();
        tokio::spawn(async move { a.run_behaviour("b", ()).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.publish("sensor.window", ()).await.unwrap();
    assert_eq!(run.await.unwrap().unwrap(), Value::from("generic"));
}

#[tokio::test(start_paused = true)]
async fn eventless_transitions_run_and_their_loops_are_bounded() {
    let a = agent_with(&[
        "behaviour: count\ninitial: s\nvars: { n: 0 }\nstates:\n  s:\n    always:\n      - { target: s, guard: \"n < 10\", do: { set: { n: \"n + 1\" } } }\n      - { target: f }\n  f: { final: true, output: n }\n",
        // A guard validation cannot see through: the loop is stopped at run time.
        "behaviour: spin\ninitial: s\nstates:\n  s: { always: { target: s, guard: \"true\" }, on: { done: f } }\n  f: { final: true }\n",
    ]).await;
    assert_eq!(a.run_behaviour("count", ()).await.unwrap(), Value::Int(10));
    let err = a.run_behaviour("spin", ()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Limit);
    assert_eq!(err.state(), "s");
    assert!(err.message().contains("limit `steps`"), "{err}");
    assert_eq!(a.load_counters().stopped_by_limits, 1);
}

#[tokio::test(start_paused = true)]
async fn an_instance_that_can_no_longer_move_ends_with_an_error() {
    let a = agent_with(&["behaviour: b\ninitial: s\nstates:\n  s: { on: { done: { target: f, guard: \"false\" } } }\n  f: { final: true }\n"]).await;
    assert_eq!(
        a.run_behaviour("b", ()).await.unwrap_err().kind(),
        ErrorKind::Stuck
    );
}

#[tokio::test(start_paused = true)]
async fn publish_actions_and_state_events_reach_the_bus() {
    let a = agent_with(&["behaviour: b\ninitial: s\nstates:\n  s:\n    entry: { publish: my.topic, payload: { v: \"input * 2\" } }\n    on: { done: f }\n  f: { final: true }\n"]).await;
    let mine = a.subscribe("my.topic").unwrap();
    let states = a.subscribe("behaviour.state").unwrap();
    let transitions = a.subscribe("behaviour.transition").unwrap();
    a.run_behaviour("b", 21).await.unwrap();
    assert_eq!(
        mine.recv().await.unwrap().payload().get("v"),
        Some(&Value::Int(42))
    );
    let entered: Vec<_> = [states.recv().await.unwrap(), states.recv().await.unwrap()]
        .iter()
        .map(|e| e.payload().get("state").cloned().unwrap())
        .collect();
    assert_eq!(entered, [Value::from("s"), Value::from("f")]);
    let t = transitions.recv().await.unwrap();
    assert_eq!(t.payload().get("trigger"), Some(&Value::from("done")));
}

#[tokio::test(start_paused = true)]
async fn service_calls_run_local_implementations() {
    let root = env!("CARGO_MANIFEST_DIR");
    let load = |f: &str| Behaviour::load(format!("{root}/behaviors/{f}.yaml")).unwrap();
    let both = OfferModes::CAN_DO | OfferModes::CAN_TEACH;
    let a = Agent::builder("b")
        .behaviour(load("service1"))
        .behaviour(load("service2"))
        .behaviour(load("service3"))
        .service(Service::new("service2", both))
        .service(Service::new("service3", both))
        .spawn()
        .await
        .unwrap();
    let input = Value::map([("n", Value::Int(5))]);
    // service2(5) = 10, service3(5) = 6.
    assert_eq!(
        a.run_behaviour("service1", input.clone()).await.unwrap(),
        Value::Int(16)
    );
    // Without service3, the call fails and service1's error state reports it.
    a.behaviours().set_enabled("service3", false);
    let e = a.run_behaviour("service1", input).await.unwrap_err();
    assert!(e.message().contains("service3"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn many_instances_run_concurrently() {
    let a = agent_with(&["behaviour: b\ninitial: s\nstates:\n  s: { after: { 1s: f } }\n  f: { final: true, output: input }\n"]).await;
    let start = tokio::time::Instant::now();
    let runs: Vec<_> = (0..100)
        .map(|i| {
            let a = a.clone();
            tokio::spawn(async move { a.run_behaviour("b", i).await })
        })
        .collect();
    for (i, r) in runs.into_iter().enumerate() {
        assert_eq!(r.await.unwrap().unwrap(), Value::Int(i as i64));
    }
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn replacing_a_behaviour_while_it_runs_lets_running_instances_finish_on_the_old_version() {
    let v1 = "behaviour: b\ninitial: s\nstates:\n  s: { after: { 5s: f } }\n  f: { final: true, output: '\"v1\"' }\n";
    let a = agent_with(&[v1]).await;
    let old = {
        let a = a.clone();
        tokio::spawn(async move { a.run_behaviour("b", ()).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let current = a.behaviours().get("b").unwrap();
    let v2 = current
        .with_state(
            "f",
            Value::map([
                ("final", Value::Bool(true)),
                ("output", Value::from("\"v2\"")),
            ]),
        )
        .unwrap();
    a.install_behaviour(v2);
    assert_eq!(old.await.unwrap().unwrap(), Value::from("v1"));
    assert_eq!(a.run_behaviour("b", ()).await.unwrap(), Value::from("v2"));
}

#[tokio::test(start_paused = true)]
async fn modifications_add_and_remove_states_and_transitions_and_invalid_ones_change_nothing() {
    let a = agent_with(&["behaviour: b\ninitial: s\nstates:\n  s: { on: { done: f } }\n  f: { final: true, output: '\"f\"' }\n"]).await;
    let b = a.behaviours().get("b").unwrap();
    // Each step is validated on its own: a new state nothing leads to yet is refused...
    let err = b
        .with_state("g", Value::map([("final", Value::Bool(true))]))
        .unwrap_err();
    assert!(err.to_string().contains("cannot be reached"), "{err}");
    // ...so several changes that only make sense together go through one `modify`.
    let g = b
        .modify(|tree| {
            let Value::Map(root) = tree else {
                return Err("not a map".into());
            };
            let Some(Value::Map(states)) = root.get_mut("states") else {
                return Err("no states".into());
            };
            states.remove("f");
            let g = Value::map([
                ("final", Value::Bool(true)),
                ("output", Value::from("\"g\"")),
            ]);
            states.insert("g".into(), g);
            states.insert(
                "s".into(),
                Value::map([("on", Value::map([("done", Value::from("g"))]))]),
            );
            Ok(())
        })
        .unwrap();
    a.install_behaviour(g);
    assert_eq!(a.run_behaviour("b", ()).await.unwrap(), Value::from("g"));
    // Removing the only transition of `s` leaves it stuck: validation refuses, nothing changes.
    let current = a.behaviours().get("b").unwrap();
    let err = current.without_transition("s", "done").unwrap_err();
    assert!(err.to_string().contains("no transition out"), "{err}");
    assert_eq!(a.run_behaviour("b", ()).await.unwrap(), Value::from("g"));
}

#[tokio::test(start_paused = true)]
async fn the_main_behaviour_restarts_whenever_it_ends() {
    let a = Agent::builder("m")
        .behaviour(behaviour("behaviour: tick\ninitial: s\nstates:\n  s:\n    after: { 1s: f }\n    exit: { publish: tick }\n  f: { final: true }\n"))
        .main("tick")
        .spawn()
        .await
        .unwrap();
    let ticks = a.subscribe("tick").unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let mut n = 0;
    while ticks.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, 3);
    a.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_looping_scripted_ability_is_cut_off_and_the_agent_goes_on() {
    let a = Agent::builder("s")
        .ability_script(SourceFile::new("loop.rhai", "fn forever(x) { loop { x += 1; } }\nfn inc(x) { x + 1 }\n"))
        .behaviour(behaviour("behaviour: b\ninitial: s\nstates:\n  s: { do: { ability: forever, args: \"1\" }, on: { done: f } }\n  f: { final: true }\n"))
        .spawn()
        .await
        .unwrap();
    let e = a.run_behaviour("b", ()).await.unwrap_err();
    assert!(
        e.message().contains("limit") || e.message().contains("budget"),
        "{e}"
    );
    assert_eq!(
        a.abilities().call("inc", Value::Int(1)).await.unwrap(),
        Value::Int(2)
    );
}
