//! Agent lifecycle: spawn, run, graceful and idempotent shutdown, many agents per process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use selflet::agent::AgentError;
use selflet::topic::{Lifecycle as LifecycleEvent, Payload};
use selflet::transport::{Envelope, JoinError, Message, Transport};
use selflet::{Agent, Lifecycle, Network, Value};

#[tokio::test]
async fn an_agent_goes_through_its_lifecycle_and_announces_it() {
    let agent = Agent::builder("a")
        .goal("test")
        .fact("x", 1)
        .spawn()
        .await
        .unwrap();
    assert_eq!(agent.lifecycle(), Lifecycle::Running);
    assert_eq!(agent.goal(), Some("test"));
    assert_eq!(agent.fact("x"), Some(Value::Int(1)));
    let announcements = agent.subscribe(LifecycleEvent::TOPIC).unwrap();
    let mut changes = agent.lifecycle_changes();
    agent.shutdown().await;
    assert_eq!(agent.lifecycle(), Lifecycle::Stopped);
    let ev = announcements.recv().await.unwrap();
    assert_eq!(ev.payload().get("state"), Some(&Value::from("stopping")));
    assert!(
        announcements.recv().await.is_none(),
        "the bus closes at the end of shutdown"
    );
    assert!(changes.has_changed().unwrap());
    assert_eq!(*changes.borrow_and_update(), Lifecycle::Stopped);
}

#[tokio::test]
async fn shutdown_is_idempotent_and_concurrent_calls_all_wait_for_the_stop() {
    let agent = Agent::builder("a").spawn().await.unwrap();
    let other = agent.clone();
    let waiter = agent.clone();
    let w = tokio::spawn(async move { waiter.stopped().await });
    tokio::join!(agent.shutdown(), other.shutdown());
    assert_eq!(agent.lifecycle(), Lifecycle::Stopped);
    agent.shutdown().await;
    w.await.unwrap();
    assert_eq!(other.lifecycle(), Lifecycle::Stopped);
}

#[tokio::test]
async fn a_stopped_agent_refuses_events_and_subscriptions_and_hands_payloads_back() {
    let agent = Agent::builder("a").spawn().await.unwrap();
    agent.shutdown().await;
    let err = agent.publish("t", 42).await.unwrap_err();
    assert_eq!(err.0, Value::Int(42));
    assert!(agent.subscribe("t").is_err());
    assert!(!agent.spawn_task(|_| async {}));
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_in_flight_work_finish_within_the_grace_period() {
    let agent = Agent::builder("a")
        .shutdown_grace(Duration::from_secs(5))
        .spawn()
        .await
        .unwrap();
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    assert!(agent.spawn_task(|_| async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        f.store(true, Ordering::SeqCst);
    }));
    agent.shutdown().await;
    assert!(finished.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn work_still_running_after_the_grace_period_is_cancelled() {
    let agent = Agent::builder("a")
        .shutdown_grace(Duration::from_secs(1))
        .spawn()
        .await
        .unwrap();
    let cancelled = Arc::new(AtomicBool::new(false));
    let c = cancelled.clone();
    agent.spawn_task(|token| async move {
        tokio::select! {
            _ = token.cancelled() => c.store(true, Ordering::SeqCst),
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    });
    let started = tokio::time::Instant::now();
    agent.shutdown().await;
    assert!(cancelled.load(Ordering::SeqCst));
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[tokio::test]
async fn names_are_validated_and_unique_on_a_network() {
    let net = Network::new();
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    assert!(matches!(
        Agent::builder("a").network(&net).spawn().await,
        Err(AgentError::Join(JoinError::NameTaken(_)))
    ));
    assert!(matches!(
        Agent::builder("no spaces").spawn().await,
        Err(AgentError::InvalidName(_))
    ));
    // A different network is a different namespace.
    let elsewhere = Agent::builder("a").spawn().await.unwrap();
    a.shutdown().await;
    // The name is free again once its agent stopped.
    let again = Agent::builder("a").network(&net).spawn().await.unwrap();
    again.shutdown().await;
    elsewhere.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_agents_spawn_and_shut_down_in_one_process() {
    let net = Network::new();
    let mut agents = Vec::new();
    for i in 0..1000 {
        agents.push(
            Agent::builder(format!("agent-{i}"))
                .network(&net)
                .fact("i", i)
                .spawn()
                .await
                .unwrap(),
        );
    }
    assert_eq!(net.members().len(), 1000);
    assert!(agents.iter().all(|a| a.lifecycle() == Lifecycle::Running));
    let stops: Vec<_> = agents
        .iter()
        .cloned()
        .map(|a| tokio::spawn(async move { a.shutdown().await }))
        .collect();
    for s in stops {
        s.await.unwrap();
    }
    assert!(agents.iter().all(|a| a.lifecycle() == Lifecycle::Stopped));
    assert!(net.members().is_empty());
}

#[test]
fn public_handles_are_send_and_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<selflet::AgentHandle>();
    check::<selflet::Bus>();
    check::<selflet::Knowledge>();
    check::<selflet::Network>();
    check::<selflet::Event>();
}

#[test]
fn spawning_outside_a_tokio_runtime_is_an_error_not_a_panic() {
    let fut = Agent::builder("a").spawn();
    let result = futures_lite_block_on(fut);
    assert!(matches!(result, Err(AgentError::NoRuntime)));
}

/// Polls a future to completion on this thread, with no tokio runtime around it.
fn futures_lite_block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[tokio::test]
async fn an_agent_given_a_closed_bus_does_not_start() {
    let bus = selflet::bus::Bus::new("a");
    bus.close();
    let err = selflet::Agent::builder("a")
        .bus(bus)
        .spawn()
        .await
        .unwrap_err();
    assert!(matches!(err, selflet::AgentError::BusClosed), "{err}");
}

/// An agent named `name` with one behaviour, `b.yaml` holding `yaml`.
async fn with_behaviour(name: &str, yaml: &str) -> selflet::AgentHandle {
    let b = selflet::behaviour::Behaviour::parse(selflet::SourceFile::new("b.yaml", yaml));
    Agent::builder(name)
        .behaviour(b.unwrap())
        .spawn()
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_idle_agent_keeps_only_the_topics_it_published_on() {
    // A topic costs every agent a few hundred bytes: an agent that never ran a behaviour has
    // none of the behaviour topics, and gets them when it runs one.
    let a = with_behaviour(
        "idle",
        "behaviour: b\ninitial: s\nstates:\n  s: { final: true }\n",
    )
    .await;
    let topics = |a: &selflet::AgentHandle| -> Vec<String> {
        a.bus().stats().into_iter().map(|(t, _)| t).collect()
    };
    assert_eq!(topics(&a), ["agent.lifecycle"]);
    let watching = a.subscribe("behaviour.*").unwrap();
    a.run_behaviour("b", Value::Null).await.unwrap();
    let after = topics(&a);
    assert!(after.iter().any(|t| t == "behaviour.done"), "{after:?}");
    assert!(after.iter().any(|t| t == "behaviour.state"), "{after:?}");
    let mut seen = Vec::new();
    while let Ok(ev) = watching.try_recv() {
        seen.push(ev.topic().to_owned());
    }
    assert!(seen.iter().any(|t| t == "behaviour.done"), "{seen:?}");
    let done = a.bus().topic_stats("behaviour.done").unwrap();
    assert_eq!((done.published, done.delivered), (1, 1));
}

#[tokio::test]
async fn behaviour_events_nobody_watches_are_counted_as_published() {
    // The Prometheus exporter reports each topic group's published count without subscribing
    // to `behaviour.*`: a run nobody watched must still show there.
    let two_states =
        "behaviour: b\ninitial: s\nstates:\n  s: { on: { done: t } }\n  t: { final: true }\n";
    let a = with_behaviour("unwatched", two_states).await;
    for _ in 0..2 {
        a.run_behaviour("b", Value::Null).await.unwrap();
    }
    let published = |topic| {
        a.bus()
            .topic_stats(topic)
            .map(|s| (s.published, s.delivered))
    };
    assert_eq!(published("behaviour.done"), Some((2, 0)));
    assert_eq!(published("behaviour.transition"), Some((2, 0)));
    assert_eq!(
        published("behaviour.state"),
        Some((4, 0)),
        "two states entered a run"
    );
}

#[tokio::test(start_paused = true)]
async fn an_agent_nobody_sends_anything_keeps_no_task_and_its_first_delivery_starts_one() {
    // Most of thousands of agents in one process are idle: a task waiting on each inbox would
    // cost every one of them its memory.
    let metrics = tokio::runtime::Handle::current().metrics();
    let net = Network::new();
    let before = metrics.num_alive_tasks();
    let mut agents = Vec::new();
    for i in 0..20 {
        let a = Agent::builder(format!("a{i}")).network(&net).spawn();
        agents.push(a.await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(metrics.num_alive_tasks(), before, "idle agents keep tasks");

    let load = |utilization| Envelope {
        trace: 0,
        from: "a1".into(),
        to: "a0".into(),
        id: 0,
        body: Message::Load { utilization },
    };
    net.send(load(0.5)).unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(metrics.num_alive_tasks(), before + 1);
    assert_eq!(agents[0].knowledge().loads().get("a1"), Some(&0.5));
    // Later deliveries are served by the same task.
    net.send(load(0.7)).unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(metrics.num_alive_tasks(), before + 1);
    assert_eq!(agents[0].knowledge().loads().get("a1"), Some(&0.7));
    for a in &agents {
        a.shutdown().await;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        metrics.num_alive_tasks(),
        before,
        "a stopped agent's task ends"
    );
}
