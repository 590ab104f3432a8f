//! Behaviours are code from users and peers: a runaway instance is cut off by its limits,
//! its caller gets an error that names it, and the agent's other work goes on.

use std::time::Duration;

use selflet::behaviour::{Behaviour, ErrorKind, InstanceLimits};
use selflet::negotiation::{AttemptError, CallError};
use selflet::{Agent, AgentHandle, Network, OfferModes, Service, SourceFile, Value};

fn behaviour(text: &str) -> Behaviour {
    Behaviour::parse(SourceFile::new("b.yaml", text)).unwrap()
}

/// Loops for ever without waiting; its guard hides that from validation.
const SPIN: &str = "behaviour: spin\ninitial: a\nstates:\n  a: { on: { done: [ { target: a, guard: \"true\" }, f ] } }\n  f: { final: true }\n";

/// Waits a second, again and again: each timer is a new trigger, so only time stops it.
const TICK: &str = "behaviour: tick\ninitial: a\nstates:\n  a: { after: { 1s: a }, on: { never.happens: f } }\n  f: { final: true }\n";

const DOUBLE: &str =
    "behaviour: double\ninitial: d\nstates:\n  d: { final: true, output: \"input * 2\" }\n";

async fn provider(net: &Network, steps: u32) -> AgentHandle {
    Agent::builder("b")
        .network(net)
        .behaviour(behaviour(SPIN))
        .behaviour(behaviour(TICK))
        .behaviour(behaviour(DOUBLE))
        .service(Service::new("spin", OfferModes::CAN_DO))
        .service(Service::new("tick", OfferModes::CAN_DO).time_limit(Duration::from_secs(5)))
        .service(Service::new("double", OfferModes::CAN_DO))
        .instance_limits(InstanceLimits {
            steps,
            ..InstanceLimits::default()
        })
        .spawn()
        .await
        .unwrap()
}

/// The reason the provider gave for the one attempt of a call.
fn failure(err: &CallError) -> String {
    match err.attempts() {
        [a] => match &a.error {
            AttemptError::Failed(reason) => reason.clone(),
            other => panic!("not a failure: {other}"),
        },
        _ => panic!("one attempt expected: {err}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_runaway_instance_is_stopped_by_its_step_limit_and_its_caller_told_why() {
    let net = Network::new();
    let b = provider(&net, 10_000).await;
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    let err = a.call("spin", ()).await.unwrap_err();
    let reason = failure(&err);
    for part in ["behaviour `spin`", "state `a`", "limit `steps`"] {
        assert!(reason.contains(part), "{reason}");
    }
    assert_eq!(b.load_counters().stopped_by_limits, 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn while_an_instance_spins_the_agent_serves_its_other_calls() {
    let net = Network::new();
    // A budget large enough that the runaway is still running when the other call is made.
    let _b = provider(&net, 100_000_000).await;
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    let spinning = {
        let a = a.clone();
        tokio::spawn(async move { a.call("spin", ()).await })
    };
    // On one thread: the spinning instance has to yield for this call to be answered.
    assert_eq!(a.call("double", 21).await.unwrap(), Value::Int(42));
    assert!(!spinning.is_finished(), "the runaway still runs");
    spinning.abort();
}

#[tokio::test(start_paused = true)]
async fn an_instance_past_its_time_limit_is_stopped_and_its_caller_told_why() {
    let net = Network::new();
    let _b = provider(&net, 10_000).await;
    let a = Agent::builder("a")
        .network(&net)
        .negotiation(selflet::negotiation::Config {
            timeout: Duration::from_secs(60),
            ..Default::default()
        })
        .spawn()
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    let err = a.call("tick", ()).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(5), "its own limit");
    let reason = failure(&err);
    assert!(reason.contains("limit `time`"), "{reason}");
    assert!(reason.contains("behaviour `tick`"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn a_main_behaviour_stopped_by_its_limits_is_restarted() {
    let main = behaviour(
        "behaviour: main\ninitial: a\nstates:\n  a: { on: { done: [ { target: a, guard: \"true\" }, f ] } }\n  f: { final: true }\n",
    );
    let agent = Agent::builder("m")
        .behaviour(main)
        .main("main")
        .instance_limits(InstanceLimits {
            steps: 100,
            time: None,
        })
        .spawn()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let stopped = agent.load_counters().stopped_by_limits;
    assert!(
        (3..=5).contains(&stopped),
        "restarted after each pause: {stopped}"
    );
    assert_eq!(
        agent.run_behaviour("main", ()).await.unwrap_err().kind(),
        ErrorKind::Limit
    );
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_instance_reacting_to_its_own_events_keeps_to_its_step_budget() {
    let ping = behaviour(
        "behaviour: ping\ninitial: a\nstates:\n  a: { entry: { publish: ping.me }, on: { ping.me: a, stop.it: f } }\n  f: { final: true }\n",
    );
    let agent = Agent::builder("p")
        .behaviour(ping)
        .instance_limits(InstanceLimits {
            steps: 100,
            time: None,
        })
        .spawn()
        .await
        .unwrap();
    let err = agent.run_behaviour("ping", ()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Limit, "{err}");
    agent.shutdown().await;
}

/// Calls `to` with its input, and answers what it answers.
fn relay(name: &str, to: &str) -> Behaviour {
    behaviour(&format!(
        "behaviour: {name}\nrequires: [{to}]\ninitial: c\nstates:\n  c: {{ do: {{ call: {to}, args: input, save: r }}, on: {{ done: f, error: e }} }}\n  f: {{ final: true, output: r }}\n  e: {{ final: true, error: event }}\n"
    ))
}

/// Two agents whose services call each other's for ever: each call is answered as it is
/// delivered, one inside the other on the caller's stack, until their nesting is bounded and
/// the rest goes on as tasks; the providers' limits on requests in flight then refuse, and
/// the first call ends with an error instead of the process with a stack overflow.
#[tokio::test(start_paused = true)]
async fn agents_calling_each_other_for_ever_end_the_call_with_an_error_not_the_process() {
    let net = Network::new();
    let spawn = |name: &'static str, to: &'static str| {
        Agent::builder(name)
            .network(&net)
            .behaviour(relay(name, to))
            .behaviour(behaviour(DOUBLE))
            .service(Service::new(name, OfferModes::CAN_DO))
            .service(Service::new("double", OfferModes::CAN_DO))
            .spawn()
    };
    let ping = spawn("ping", "pong").await.unwrap();
    let pong = spawn("pong", "ping").await.unwrap();
    let caller = Agent::builder("caller")
        .network(&net)
        .spawn()
        .await
        .unwrap();
    let err = caller.call("ping", Value::Int(1)).await.unwrap_err();
    assert!(matches!(err, CallError::Unavailable { .. }), "{err}");
    // Both still answer.
    assert_eq!(
        ping.call_at("pong", "double", Value::Int(2)).await.unwrap(),
        Value::Int(4)
    );
    assert_eq!(
        pong.call_at("ping", "double", Value::Int(3)).await.unwrap(),
        Value::Int(6)
    );
}
