//! Balancing actions: redirecting part of a service's requests to a neighbour (or several, in
//! turn), teaching it first, and stopping when the load falls — with no request lost.

use std::time::Duration;

use selflet::behaviour::Behaviour;
use selflet::{Agent, AgentHandle, Network, OfferModes, Service, SourceFile, Value};

fn work() -> Behaviour {
    Behaviour::parse(SourceFile::new(
        "work.yaml",
        "behaviour: work\ninitial: w\nstates:\n  w: { demand: 0.1, on: { done: f } }\n  f: { final: true, output: '\"ok\"' }\n",
    ))
    .unwrap()
}

fn count(sub: &selflet::Subscription) -> usize {
    std::iter::from_fn(|| sub.try_recv().ok()).count()
}

/// An agent that offers `work`, can-do.
async fn worker(net: &Network, name: &str) -> AgentHandle {
    Agent::builder(name)
        .network(net)
        .behaviour(work())
        .service(Service::new("work", OfferModes::CAN_DO))
        .spawn()
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_redirect_sends_exactly_its_fraction_and_never_loses_a_request() {
    let net = Network::new();
    let hot = worker(&net, "hot").await;
    let idle = worker(&net, "idle").await;
    let served_by_idle = idle.subscribe("service.executed").unwrap();
    hot.redirect("work", "idle", 0.5);
    for _ in 0..10 {
        assert_eq!(hot.call("work", ()).await.unwrap(), Value::from("ok"));
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(count(&served_by_idle), 5);
    assert_eq!(hot.load_counters().runs["work"], 5);
    // The neighbour goes away: redirected requests run here instead.
    idle.shutdown().await;
    for _ in 0..4 {
        assert_eq!(hot.call("work", ()).await.unwrap(), Value::from("ok"));
    }
    assert_eq!(hot.load_counters().runs["work"], 9);
    hot.redirect("work", "idle", 0.0);
    assert_eq!(hot.knowledge().redirect("work"), None);
}

#[tokio::test(start_paused = true)]
async fn a_service_replicated_over_neighbours_is_balanced_round_robin() {
    let net = Network::new();
    let policy = r#"
        rule("replicate").on("replicate").then(|ev| redirect("work", ["b", "c"], 1.0));
        rule("report").on("report").then(|ev| set_fact("where", redirected("work").neighbours));
        rule("bad").on("bad").then(|ev| redirect("work", ["b", 7], 1.0));
    "#;
    let a = Agent::builder("a")
        .network(&net)
        .behaviour(work())
        .service(Service::new("work", OfferModes::CAN_DO))
        .policy(SourceFile::new("replicate.rhai", policy))
        .spawn()
        .await
        .unwrap();
    let (b, c) = (worker(&net, "b").await, worker(&net, "c").await);
    let (on_b, on_c) = (
        b.subscribe("service.executed").unwrap(),
        c.subscribe("service.executed").unwrap(),
    );
    for topic in ["replicate", "report", "bad"] {
        a.publish(topic, ()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        a.fact("where"),
        Some(Value::List(vec![Value::from("b"), Value::from("c")]))
    );
    assert_eq!(
        a.policies().stats()["bad"].failed,
        1,
        "a neighbour is a name"
    );
    for _ in 0..6 {
        assert_eq!(a.call("work", ()).await.unwrap(), Value::from("ok"));
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!((count(&on_b), count(&on_c)), (3, 3));
    assert_eq!(
        a.load_counters().runs.get("work"),
        None,
        "a ran none itself"
    );
}

const SHED: &str = r#"
rule("shed load").on("load.sample")
    .when(|ev| ev.utilization > 0.6 && !is_redirecting("work") && has_service("work"))
    .then(|ev| {
        let loads = loads();
        let best = "";
        let lowest = 2.0;
        for n in loads.keys() {
            if n != agent_name() && loads[n] < lowest { lowest = loads[n]; best = n; }
        }
        if best != "" {
            teach("work", best);
            redirect("work", best, 0.5);
        }
    });
rule("stop shedding").on("load.sample")
    .when(|ev| ev.utilization < 0.3 && is_redirecting("work"))
    .then(|ev| stop_redirect("work"));
"#;

async fn balanced(net: &Network, name: &str, offers: bool) -> AgentHandle {
    let mut b = Agent::builder(name)
        .network(net)
        .policy(SourceFile::new("shed.rhai", SHED));
    if offers {
        b = b.behaviour(work()).service(Service::new(
            "work",
            OfferModes::CAN_DO | OfferModes::CAN_TEACH,
        ));
    }
    b.spawn().await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_hot_selflet_teaches_an_idle_neighbour_sheds_load_to_it_and_stops_when_load_falls() {
    let net = Network::new();
    let hot = balanced(&net, "hot", true).await;
    let idle = balanced(&net, "idle", false).await;
    let samples = hot.subscribe("load.sample").unwrap();
    let mut answered = 0;
    // 60 s at 10 requests a second (utilization 1.0 at 0.1 s each), then 60 s at 2.
    for second in 0..120 {
        let rate = if second < 60 { 10 } else { 2 };
        for _ in 0..rate {
            assert_eq!(hot.call("work", ()).await.unwrap(), Value::from("ok"));
            answered += 1;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        if second == 45 {
            assert!(
                idle.knowledge().can_run("work"),
                "the idle neighbour was taught the service"
            );
            assert_eq!(
                hot.knowledge().redirect("work").map(|r| r.to),
                Some(vec!["idle".to_owned()])
            );
        }
    }
    assert_eq!(answered, 60 * 10 + 60 * 2, "every request was answered");
    let utilizations: Vec<f64> = std::iter::from_fn(|| samples.try_recv().ok())
        .filter_map(|e| e.payload().get("utilization").and_then(Value::as_f64))
        .collect();
    // Saturated before shedding, about half once the neighbour takes half, low at the end.
    assert!(utilizations[0] > 0.9, "{utilizations:?}");
    assert!(
        utilizations[3..6].iter().all(|u| (u - 0.5).abs() < 0.11),
        "{utilizations:?}"
    );
    assert!(utilizations.last().unwrap() < &0.3, "{utilizations:?}");
    assert_eq!(
        hot.knowledge().redirect("work"),
        None,
        "redirecting stopped when the load fell"
    );
    assert!(idle.load_counters().runs.get("work").copied().unwrap_or(0) > 100);
}
