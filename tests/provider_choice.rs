//! Gossip of provider knowledge and learned provider choice (seed 001), on the in-process
//! network and the paused clock: what gossip feeds the directory, what it refuses, and a
//! learner that moves away from a provider that became slow.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use selflet::behaviour::Behaviour;
use selflet::choice::{Choice, QualityMetric};
use selflet::negotiation::{Config, GossipConfig};
use selflet::transport::{Envelope, GossipEntry, Membership, Message, Refusal, Transport};
use selflet::{Agent, AgentHandle, Network, OfferModes, Service, SourceFile, Value};

/// A service `work` whose behaviour answers what the native ability `work` returns.
fn work_behaviour() -> Behaviour {
    Behaviour::parse(SourceFile::new(
        "work.yaml",
        "behaviour: work\ninitial: s\nstates:\n  s: { do: { ability: work, save: out }, on: { done: f } }\n  f: { final: true, output: out }\n",
    ))
    .unwrap()
}

fn gossiping(choice: Choice) -> Config {
    Config {
        gossip: Some(GossipConfig::default()),
        choice: choice.strategy(7),
        quality: QualityMetric::ResponseTime {
            reference: Duration::from_millis(100),
        },
        ..Config::default()
    }
}

/// A provider of `work` that answers its own name after `delay` milliseconds.
async fn provider(net: &Network, name: &str, delay: Arc<AtomicU64>) -> AgentHandle {
    let me = name.to_owned();
    Agent::builder(name)
        .network(net)
        .behaviour(work_behaviour())
        .service(Service::new("work", OfferModes::CAN_DO))
        .ability("work", move |_input: Value| {
            let (me, delay) = (me.clone(), Arc::clone(&delay));
            async move {
                let ms = delay.load(Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(Value::from(me))
            }
        })
        .negotiation(gossiping(Choice::FirstKnown))
        .spawn()
        .await
        .unwrap()
}

async fn consumer(net: &Network, choice: Choice) -> AgentHandle {
    Agent::builder("c")
        .network(net)
        .require("work")
        .negotiation(gossiping(choice))
        .spawn()
        .await
        .unwrap()
}

fn gossip(net: &Network, from: &str, to: &str, entries: Vec<GossipEntry>) {
    let _ = net.send(Envelope {
        trace: 0,
        from: from.into(),
        to: to.into(),
        id: 0,
        body: Message::Gossip {
            entries: entries.into(),
        },
    });
}

fn entry(agent: &str, service: &str, quality: f64) -> GossipEntry {
    GossipEntry {
        agent: agent.into(),
        service: service.into(),
        modes: OfferModes::CAN_DO,
        quality: Some(quality),
    }
}

/// Names on the network that no agent answers for: members gossip can tell of.
fn members(net: &Network, names: impl IntoIterator<Item = String>) -> Vec<Membership> {
    names.into_iter().map(|n| net.join(&n).unwrap()).collect()
}

/// The providers of `work` that gossip put in `c`'s Known set, sorted.
fn known(c: &AgentHandle) -> Vec<String> {
    known_of(c, "work")
}

/// The providers of `service` that gossip put in `c`'s Known set, sorted.
fn known_of(c: &AgentHandle, service: &str) -> Vec<String> {
    let mut known: Vec<String> = c
        .knowledge()
        .providers()
        .gossiped_of(service)
        .into_iter()
        .map(|(agent, _, _)| agent.into())
        .collect();
    known.sort();
    known
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test(start_paused = true)]
async fn gossip_alone_finds_a_provider_and_the_call_goes_through() {
    let net = Network::new();
    let _p = provider(&net, "p", Arc::new(AtomicU64::new(0))).await;
    let c = consumer(&net, Choice::TwoLayerRl(Default::default())).await;
    // With gossip on, nobody broadcasts adverts: the consumer learns of `p` from gossip,
    // within a few periods, and its call waits for that rather than failing.
    let out = tokio::time::timeout(Duration::from_secs(10), c.call("work", Value::Null))
        .await
        .expect("the call ends")
        .expect("gossip told of a provider");
    assert_eq!(out, Value::from("p"));
    // Having served, `p` gossips the quality it served with.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let known = c.knowledge().providers().gossiped_of("work");
    assert_eq!(known.len(), 1, "{known:?}");
    assert_eq!(known[0].0, "p");
    assert!(
        known[0].2.is_some_and(|q| q > 0.9),
        "p advertised the quality it served with: {known:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn two_layer_rl_moves_its_binding_away_from_a_provider_that_becomes_slow() {
    let net = Network::new();
    let delays = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let _p1 = provider(&net, "p1", Arc::clone(&delays[0])).await;
    let _p2 = provider(&net, "p2", Arc::clone(&delays[1])).await;
    let c = consumer(&net, Choice::TwoLayerRl(Default::default())).await;
    // Both providers known and both fast: the binding holds whichever was picked first.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(c.knowledge().providers().gossiped_of("work").len(), 2);
    let mut last = Value::Null;
    for _ in 0..10 {
        last = c.call("work", Value::Null).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let bound = if last == Value::from("p1") { 0 } else { 1 };
    // The bound provider becomes slow: 400 ms against a 100 ms reference, quality 0.2.
    delays[bound].store(400, Ordering::Relaxed);
    let mut served = Vec::new();
    for _ in 0..30 {
        served.push(c.call("work", Value::Null).await.unwrap());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let other = Value::from(if bound == 0 { "p2" } else { "p1" });
    let moved = served[20..].iter().filter(|s| **s == other).count();
    assert_eq!(
        moved, 10,
        "the learner should have moved to the fast provider: {served:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_answer_brings_the_providers_latest_advertisement_before_gossip_does() {
    let net = Network::new();
    let delay = Arc::new(AtomicU64::new(0));
    let p = provider(&net, "p", Arc::clone(&delay)).await;
    let c = consumer(&net, Choice::TwoLayerRl(Default::default())).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let advertised = || c.knowledge().providers().advertised("work", "p");
    assert_eq!(advertised(), Some(1.0), "idle, `p` gossips its best");
    // `p` becomes slow: the call it answers is worth less than it advertised, and the answer
    // says what it advertises from now on, before its next gossip could.
    delay.store(400, Ordering::Relaxed);
    c.call("work", Value::Null).await.unwrap();
    let now = p.knowledge().quality("work");
    assert!(now.is_some_and(|q| q < 0.5), "{now:?}");
    assert_eq!(advertised(), now);
}

#[tokio::test(start_paused = true)]
async fn oversized_or_malformed_gossip_is_refused_whole() {
    let net = Network::new();
    let c = consumer(&net, Choice::TwoLayerRl(Default::default())).await;
    let _m = members(&net, ["mallory".to_owned(), "p".to_owned()]);
    let too_many: Vec<GossipEntry> = (0..=selflet::transport::MAX_GOSSIP_ENTRIES)
        .map(|_| entry("p", "work", 0.9))
        .collect();
    gossip(&net, "mallory", "c", too_many);
    // One bad entry spoils the message: the good one beside it is not kept either.
    gossip(
        &net,
        "mallory",
        "c",
        vec![entry("p", "work", 0.9), entry("p", "work", 1.5)],
    );
    gossip(
        &net,
        "mallory",
        "c",
        vec![entry("p", "work", 0.9), entry("p", "work", f64::NAN)],
    );
    gossip(
        &net,
        "mallory",
        "c",
        vec![entry("p", "work", 0.9), entry("not a name", "work", 0.9)],
    );
    settle().await;
    assert!(c.knowledge().providers().providers("work").is_empty());
    let refused = c.refusals();
    assert_eq!(refused.get(&Refusal::OverCap), Some(&1), "{refused:?}");
    assert_eq!(refused.get(&Refusal::Malformed), Some(&3), "{refused:?}");
}

#[tokio::test(start_paused = true)]
async fn gossip_keeps_only_needed_services_of_members_from_members() {
    let net = Network::new();
    let c = consumer(&net, Choice::TwoLayerRl(Default::default())).await;
    let _m = members(&net, ["mallory".to_owned(), "p".to_owned()]);
    // From a name that is not on the network: refused before it is read.
    gossip(&net, "ghost", "c", vec![entry("p", "work", 0.9)]);
    // A service it does not need, a provider that is not a member, and itself.
    gossip(
        &net,
        "mallory",
        "c",
        vec![
            entry("p", "other", 0.9),
            entry("nobody", "work", 0.9),
            entry("c", "work", 0.9),
        ],
    );
    settle().await;
    assert!(c.knowledge().providers().services().is_empty());
    assert_eq!(c.refusals().get(&Refusal::NotMember), Some(&1));
    gossip(&net, "mallory", "c", vec![entry("p", "work", 0.9)]);
    settle().await;
    assert_eq!(
        c.knowledge().providers().gossiped_of("work"),
        vec![("p".into(), OfferModes::CAN_DO, Some(0.9))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_disabled_neighbour_is_neither_asked_nor_learned_of_by_gossip() {
    let net = Network::new();
    let fast = Arc::new(AtomicU64::new(0));
    let (_p, _q) = (
        provider(&net, "p", Arc::clone(&fast)).await,
        provider(&net, "q", Arc::clone(&fast)).await,
    );
    let c = consumer(&net, Choice::FirstKnown).await;
    let _m = members(&net, ["mallory".to_owned()]);
    c.knowledge().set_neighbour_enabled("p", false);
    // Gossip tells of both; only `q` is kept, and every call goes to it.
    gossip(
        &net,
        "mallory",
        "c",
        vec![entry("p", "work", 1.0), entry("q", "work", 0.5)],
    );
    settle().await;
    assert_eq!(known(&c), ["q"]);
    for _ in 0..3 {
        assert_eq!(c.call("work", Value::Null).await.unwrap(), Value::from("q"));
    }
    // Enabled again, `p` is learned of and, heard of first in a new message, asked first.
    c.knowledge().set_neighbour_enabled("p", true);
    c.knowledge().providers().forget("q");
    gossip(&net, "mallory", "c", vec![entry("p", "work", 1.0)]);
    settle().await;
    assert_eq!(known(&c), ["p"]);
    assert_eq!(c.call("work", Value::Null).await.unwrap(), Value::from("p"));
}

#[tokio::test(start_paused = true)]
async fn the_known_set_keeps_the_best_few_providers_per_service() {
    let net = Network::new();
    let c = consumer(&net, Choice::TwoLayerRl(Default::default())).await;
    let names: Vec<String> = (0..21).map(|i| format!("p{i}")).collect();
    let _m = members(&net, names.iter().cloned().chain(["mallory".to_owned()]));
    // p0 … p19 advertise 0.05, 0.10, … 1.0, in a scrambled order, over several messages.
    for chunk in [
        7, 3, 19, 0, 12, 5, 16, 1, 9, 14, 2, 18, 6, 11, 4, 17, 8, 13, 10, 15,
    ]
    .chunks(4)
    {
        let entries = chunk
            .iter()
            .map(|&i| entry(&names[i], "work", (i + 1) as f64 / 20.0))
            .collect();
        gossip(&net, "mallory", "c", entries);
    }
    settle().await;
    let n_k = GossipConfig::default().known;
    assert_eq!(n_k, 5);
    assert_eq!(known(&c), ["p15", "p16", "p17", "p18", "p19"]);
    // A newcomer as good as the worst takes its place, so Known keeps changing among equals.
    gossip(&net, "mallory", "c", vec![entry("p20", "work", 0.8)]);
    settle().await;
    assert_eq!(known(&c), ["p16", "p17", "p18", "p19", "p20"]);
}

#[tokio::test(start_paused = true)]
async fn one_message_of_several_services_in_any_order_keeps_the_best_of_each() {
    let net = Network::new();
    let c = Agent::builder("c")
        .network(&net)
        .require("work")
        .require("store")
        .negotiation(gossiping(Choice::TwoLayerRl(Default::default())))
        .spawn()
        .await
        .unwrap();
    let names: Vec<String> = (0..8).map(|i| format!("p{i}")).collect();
    let _m = members(&net, names.iter().cloned().chain(["mallory".to_owned()]));
    // Runs of each service and single entries alternating, better providers last.
    let order = [
        (0, "work"),
        (1, "work"),
        (0, "store"),
        (2, "work"),
        (1, "store"),
        (3, "work"),
        (2, "store"),
        (4, "work"),
        (5, "work"),
        (3, "store"),
        (6, "work"),
        (4, "store"),
        (5, "store"),
        (6, "store"),
        (7, "store"),
        (7, "work"),
    ];
    let entries = order
        .iter()
        .map(|&(i, service)| entry(&names[i], service, (i + 1) as f64 / 10.0))
        .collect();
    gossip(&net, "mallory", "c", entries);
    settle().await;
    assert_eq!(known_of(&c, "work"), ["p3", "p4", "p5", "p6", "p7"]);
    assert_eq!(known_of(&c, "store"), ["p3", "p4", "p5", "p6", "p7"]);
}

#[tokio::test(start_paused = true)]
async fn a_provider_in_use_is_not_displaced_by_gossip_of_better_ones() {
    let net = Network::new();
    let _slow = provider(&net, "slow", Arc::new(AtomicU64::new(90))).await;
    let c = Agent::builder("c")
        .network(&net)
        .require("work")
        .negotiation(Config {
            gossip: Some(GossipConfig {
                known: 1,
                ..GossipConfig::default()
            }),
            ..gossiping(Choice::TwoLayerRl(Default::default()))
        })
        .spawn()
        .await
        .unwrap();
    let _m = members(&net, ["mallory".to_owned(), "fast".to_owned()]);
    assert_eq!(
        c.call("work", Value::Null).await.unwrap(),
        Value::from("slow")
    );
    // A better provider told of while `slow` is in use does not take its place ...
    gossip(&net, "mallory", "c", vec![entry("fast", "work", 0.99)]);
    settle().await;
    assert_eq!(known(&c), ["slow"]);
    // ... but once `slow` has gone unused for three gossip periods, it does.
    tokio::time::sleep(Duration::from_secs(4)).await;
    gossip(&net, "mallory", "c", vec![entry("fast", "work", 0.99)]);
    settle().await;
    assert_eq!(known(&c), ["fast"]);
}

#[tokio::test(start_paused = true)]
async fn with_gossip_a_call_whose_providers_are_gone_ends_at_once() {
    let net = Network::new();
    let p = provider(&net, "p", Arc::new(AtomicU64::new(0))).await;
    let c = consumer(&net, Choice::TwoLayerRl(Default::default())).await;
    assert_eq!(c.call("work", Value::Null).await.unwrap(), Value::from("p"));
    p.shutdown().await;
    // Gossip tells of providers round by round: the call does not wait for the next ones.
    let answer = tokio::time::timeout(Duration::from_millis(100), c.call("work", Value::Null))
        .await
        .expect("the call ends at once");
    assert!(answer.is_err(), "{answer:?}");
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_does_not_gossip_ignores_gossip() {
    let net = Network::new();
    let c = Agent::builder("c")
        .network(&net)
        .require("work")
        .spawn()
        .await
        .unwrap();
    let _m = members(&net, ["mallory".to_owned(), "p".to_owned()]);
    gossip(&net, "mallory", "c", vec![entry("p", "work", 0.9)]);
    settle().await;
    assert!(c.knowledge().providers().services().is_empty());
    assert!(c.refusals().is_empty());
}

#[tokio::test(start_paused = true)]
async fn policies_read_and_switch_the_provider_choice() {
    let net = Network::new();
    let policy = r#"
        rule("greedy").on("greedy").then(|ev| set_choice("greedy"));
        rule("cautious").on("cautious").then(|ev| set_choice("two_layer_rl", #{ initial_trust: 0.5, window: 3 }));
        rule("bad").on("bad").then(|ev| set_choice("two_layer_rl", #{ initial_trust: 2.0 }));
        rule("unknown").on("unknown").then(|ev| set_choice("smartest"));
        rule("which").on("which").then(|ev| set_fact("choice", choice()));
    "#;
    let a = Agent::builder("a")
        .network(&net)
        .policy(SourceFile::new("p.rhai", policy))
        .spawn()
        .await
        .unwrap();
    let publish = |topic: &'static str| {
        let a = a.clone();
        async move {
            a.publish(topic, ()).await.unwrap();
            settle().await;
        }
    };
    publish("which").await;
    assert_eq!(a.fact("choice"), Some(Value::from("least_recently_failed")));
    publish("greedy").await;
    assert_eq!(a.choice().name(), "greedy");
    publish("cautious").await;
    publish("which").await;
    assert_eq!(a.fact("choice"), Some(Value::from("two_layer_rl")));
    // A bad parameter or name fails the rule and changes nothing.
    publish("bad").await;
    publish("unknown").await;
    assert_eq!(a.choice().name(), "two_layer_rl");
    let stats = a.policies().stats();
    assert_eq!((stats["bad"].failed, stats["unknown"].failed), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn round_robin_asks_each_provider_in_turn() {
    let net = Network::new();
    let mut providers = Vec::new();
    for name in ["p1", "p2", "p3"] {
        providers.push(provider(&net, name, Arc::new(AtomicU64::new(0))).await);
    }
    let c = consumer(&net, Choice::RoundRobin).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(c.knowledge().providers().providers("work").len(), 3);
    let mut served = std::collections::BTreeMap::new();
    for _ in 0..9 {
        let who = c.call("work", Value::Null).await.unwrap();
        *served.entry(who.as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(
        served.into_iter().collect::<Vec<_>>(),
        [
            ("p1".to_owned(), 3),
            ("p2".to_owned(), 3),
            ("p3".to_owned(), 3)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_agent_alone_gossips_to_no_one_not_even_itself() {
    let net = Network::new();
    let _p = provider(&net, "p", Arc::new(AtomicU64::new(0))).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(net.counters().by_kind.get("gossip"), None);
    let _q = provider(&net, "q", Arc::new(AtomicU64::new(0))).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sent = net.counters().by_kind.get("gossip").copied().unwrap_or(0);
    assert!(
        (8..=12).contains(&sent),
        "each tells the other once a period: {sent}"
    );
}
