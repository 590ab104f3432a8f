//! One run of seed 001's self-assembly experiment, with real SelfLets.
//!
//! N agents on one in-process network, each hosting one component: a service `t<k>` of type
//! k ∈ 1..=w, depending on a random subset of the higher types (each included with
//! probability ½). Every round (1 s of the paused clock) each agent calls one provider of each
//! type it depends on — through the agent's ordinary call path, so its provider choice picks
//! the provider and learns from the answer — and then settles its own quality for the round:
//!
//! * its load is the number of calls it received this round (its consumers);
//! * its local quality is `L(load)` (Fig. 1's solid curve, or the dashed one once changed);
//! * it is *fully resolved* if every dependency was answered by a fully resolved provider;
//!   its quality is then `min(L(load), quality of each dependency)`, otherwise ⊥ = 0.
//!
//! A provider answers a call with its settled quality for that round, so a consumer observes
//! the quality its provider actually had with it among its load; and each agent advertises,
//! through gossip, its latest quality. ξ (eq. 3), ζ (eq. 4) and the fraction fully resolved
//! are taken over each round's settled qualities.
#![allow(dead_code)] // the test uses part of it

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use selflet::behaviour::Behaviour;
use selflet::choice::{Choice, QualityMetric};
use selflet::negotiation::{CallOptions, Config as NegotiationConfig, GossipConfig};
use selflet::transport::{
    Envelope, JoinError, Membership, Message, MessageCounters, SendError, Transport,
};
use selflet::{Agent, AgentHandle, Network, OfferModes, Service, SourceFile, Value};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

/// One round of the experiment.
pub(crate) const ROUND: Duration = Duration::from_secs(1);

/// How long after a round starts its calls have all arrived: calls take no time on the paused
/// clock, so a millisecond is enough for every consumer's call to be counted in the load.
const SETTLE: Duration = Duration::from_millis(1);

/// A call that is not answered by then counts as a failure (none is, in-process).
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// What happens at the change round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Scenario {
    /// Nothing.
    Static,
    /// Half the agents leave.
    Leave,
    /// As many new agents as there are join.
    Join,
    /// Half the components switch to the dashed curve.
    Quality,
}

impl Scenario {
    /// Every scenario.
    pub(crate) const ALL: [Scenario; 4] = [
        Scenario::Static,
        Scenario::Leave,
        Scenario::Join,
        Scenario::Quality,
    ];

    /// The name used on the command line and in the JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::Static => "static",
            Scenario::Leave => "leave",
            Scenario::Join => "join",
            Scenario::Quality => "quality",
        }
    }

    /// The scenario of that name.
    pub(crate) fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Fig. 1's load-dependent quality L, as a function of the number of consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve {
    /// 1 up to 6 consumers, then 0.15 less per consumer, down to 0.05.
    Solid,
    /// The same slope from 4 consumers: a component that lost a third of its capacity.
    Dashed,
}

impl Curve {
    /// L(load).
    pub(crate) fn quality(self, load: u32) -> f64 {
        let flat = match self {
            Curve::Solid => 6,
            Curve::Dashed => 4,
        };
        if load <= flat {
            1.0
        } else {
            (1.0 - 0.15 * f64::from(load - flat)).max(0.05)
        }
    }
}

/// One run's settings.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    /// N: agents at the start.
    pub(crate) agents: usize,
    /// w: service types.
    pub(crate) types: usize,
    /// Rounds, numbered from 1.
    pub(crate) rounds: u64,
    /// The round the scenario's change happens before.
    pub(crate) change_at: u64,
    /// How many agents leave, join or change.
    pub(crate) churn: usize,
    /// What changes.
    pub(crate) scenario: Scenario,
    /// The agents' provider choice.
    pub(crate) choice: Choice,
    /// Gossip: period, fan-out, N_K.
    pub(crate) gossip: GossipConfig,
    /// Seeds the network's generation, the agents' draws and the churn.
    pub(crate) seed: u64,
}

impl Params {
    /// The paper's experiment: N = 1000, w = 10, 2000 rounds, half the network changing
    /// before round 1000; gossip every round to 3 members, keeping 5 providers per type.
    pub(crate) fn paper(scenario: Scenario, choice: Choice, seed: u64) -> Params {
        Params {
            agents: 1000,
            types: 10,
            rounds: 2000,
            change_at: 1000,
            churn: 500,
            scenario,
            choice,
            gossip: GossipConfig {
                period: ROUND,
                fanout: 3,
                known: 5,
            },
            seed,
        }
    }
}

/// What one run measured, per round (index 0 is round 1).
#[derive(Debug, Clone, Default)]
pub(crate) struct Run {
    /// ξ: mean quality of the fully resolved components (0 when none is).
    pub(crate) xi: Vec<f64>,
    /// ζ: Jain's fairness of their qualities.
    pub(crate) zeta: Vec<f64>,
    /// Fully resolved components / components present.
    pub(crate) resolved: Vec<f64>,
    /// Gossip entries sent per agent per round, over the whole run.
    pub(crate) gossip_entries: f64,
    /// Gossip messages sent per agent per round, over the whole run.
    pub(crate) gossip_messages: f64,
    /// Service calls made, over the whole run.
    pub(crate) calls: u64,
}

/// One round's sums, as agents settle.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    present: u32,
    full: u32,
    sum: f64,
    squares: f64,
}

/// A component's quality for one round, once settled.
#[derive(Debug, Clone, Copy, Default)]
struct Settled {
    round: u64,
    quality: f64,
    resolved: bool,
}

/// One agent's component: what its driver and its `serve` ability share.
struct Node {
    service: String,
    deps: Vec<String>,
    // Calls received, for this round and the next (a caller may reach it before its own
    // round starts).
    load: [AtomicU32; 2],
    dashed: AtomicBool,
    present: AtomicBool,
    settled: watch::Sender<Settled>,
}

impl Node {
    fn curve(&self) -> Curve {
        if self.dashed.load(Ordering::Relaxed) {
            Curve::Dashed
        } else {
            Curve::Solid
        }
    }
}

/// Runs the experiment on the current (paused-clock) runtime. `progress` is told of each
/// round done.
pub(crate) async fn run(
    p: &Params,
    progress: &(dyn Fn() + Sync),
) -> Result<Run, selflet::AgentError> {
    let net = Arc::new(Counting::new());
    let tallies = Arc::new(Mutex::new(vec![Tally::default(); p.rounds as usize + 1]));
    let mut rng = fastrand::Rng::with_seed(p.seed);
    // Round r starts at start + (r - 1) s; gossip runs on whole seconds from the spawn, half a
    // round away, so each round's calls see the gossip of the round before.
    let start = Instant::now() + ROUND / 2;
    let world = World {
        net: Arc::clone(&net),
        tallies: Arc::clone(&tallies),
        start,
        params: p.clone(),
        // Parsed once: every agent runs the same behaviour, and shares the one copy.
        provide: Arc::new(Behaviour::parse(SourceFile::new(
            "provide.yaml",
            include_str!("provide.yaml"),
        ))?),
    };
    let mut nodes = Vec::with_capacity(p.agents + p.churn);
    for i in 0..p.agents {
        nodes.push(world.spawn(i, 1, &mut rng).await?);
    }
    for round in 1..=p.rounds {
        // Half a round after it started, round `round` is settled.
        sleep_until(world.at(round) + ROUND / 2).await;
        progress();
        if round + 1 == p.change_at {
            world.change(&mut nodes, &mut rng).await?;
        }
    }
    for (handle, node) in &nodes {
        node.present.store(false, Ordering::Relaxed);
        handle.shutdown().await;
    }
    let tallies = tallies.lock().expect("tallies").clone();
    Ok(summarize(p, &tallies[1..], &net))
}

fn summarize(p: &Params, tallies: &[Tally], net: &Counting) -> Run {
    let mut run = Run::default();
    let mut agent_rounds = 0.0;
    for t in tallies {
        let full = f64::from(t.full);
        run.xi.push(if t.full == 0 { 0.0 } else { t.sum / full });
        run.zeta.push(if t.squares == 0.0 {
            0.0
        } else {
            t.sum * t.sum / (full * t.squares)
        });
        run.resolved.push(if t.present == 0 {
            0.0
        } else {
            full / f64::from(t.present)
        });
        agent_rounds += f64::from(t.present);
    }
    let _ = p;
    run.gossip_entries = net.entries.load(Ordering::Relaxed) as f64 / agent_rounds;
    run.gossip_messages = net.messages.load(Ordering::Relaxed) as f64 / agent_rounds;
    run.calls = net.counters().by_kind.get("request").copied().unwrap_or(0);
    run
}

/// What every agent of a run shares.
struct World {
    net: Arc<Counting>,
    tallies: Arc<Mutex<Vec<Tally>>>,
    start: Instant,
    params: Params,
    provide: Arc<Behaviour>,
}

type Member = (AgentHandle, Arc<Node>);

impl World {
    /// When round `round` starts.
    fn at(&self, round: u64) -> Instant {
        self.start + ROUND * u32::try_from(round - 1).unwrap_or(u32::MAX)
    }

    /// Agent `i`: type `i mod w + 1`, its dependencies drawn, driven from round `first`.
    async fn spawn(
        &self,
        i: usize,
        first: u64,
        rng: &mut fastrand::Rng,
    ) -> Result<Member, selflet::AgentError> {
        let p = &self.params;
        let kind = i % p.types + 1;
        let deps: Vec<String> = (kind + 1..=p.types)
            .filter(|_| rng.bool())
            .map(|t| format!("t{t}"))
            .collect();
        let service = format!("t{kind}");
        let (settled, _) = watch::channel(Settled::default());
        let node = Arc::new(Node {
            service: service.clone(),
            deps: deps.clone(),
            load: [AtomicU32::new(0), AtomicU32::new(0)],
            dashed: AtomicBool::new(false),
            present: AtomicBool::new(true),
            settled,
        });
        let config = NegotiationConfig {
            timeout: CALL_TIMEOUT,
            choice: p
                .choice
                .strategy(p.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            gossip: Some(p.gossip),
            quality: QualityMetric::Output {
                field: "quality".into(),
            },
            seed: p.seed,
            ..NegotiationConfig::default()
        };
        let offer = Service {
            behaviour: Some("provide".into()),
            ..Service::new(&service, OfferModes::CAN_DO).requiring(deps)
        };
        let serving = Arc::clone(&node);
        let handle = Agent::builder(format!("s{i}"))
            .transport(Arc::clone(&self.net) as Arc<dyn Transport>)
            .behaviour(Arc::clone(&self.provide))
            .service(offer)
            .ability("serve", move |input| serve(Arc::clone(&serving), input))
            .negotiation(config)
            .spawn()
            .await?;
        let driver = Driver {
            handle: handle.clone(),
            node: Arc::clone(&node),
            tallies: Arc::clone(&self.tallies),
            start: self.start,
            rounds: p.rounds,
        };
        tokio::spawn(driver.drive(first));
        Ok((handle, node))
    }

    /// The scenario's change, half a round before round `change_at`.
    async fn change(
        &self,
        nodes: &mut Vec<Member>,
        rng: &mut fastrand::Rng,
    ) -> Result<(), selflet::AgentError> {
        let p = &self.params;
        match p.scenario {
            Scenario::Static => {}
            Scenario::Leave => {
                rng.shuffle(nodes);
                for (handle, node) in nodes.drain(..p.churn.min(nodes.len())) {
                    node.present.store(false, Ordering::Relaxed);
                    handle.shutdown().await;
                }
            }
            Scenario::Join => {
                let first = nodes.len();
                for i in first..first + p.churn {
                    nodes.push(self.spawn(i, p.change_at, rng).await?);
                }
            }
            Scenario::Quality => {
                let mut order: Vec<usize> = (0..nodes.len()).collect();
                rng.shuffle(&mut order);
                for &i in order.iter().take(p.churn) {
                    nodes[i].1.dashed.store(true, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }
}

/// The `serve` ability: counts the caller in this round's load, and answers with the
/// component's quality once the round is settled.
async fn serve(node: Arc<Node>, input: Value) -> Result<Value, selflet::error::BoxError> {
    let round = input
        .get("round")
        .and_then(Value::as_int)
        .and_then(|r| u64::try_from(r).ok())
        .ok_or("`serve` needs the round")?;
    node.load[(round % 2) as usize].fetch_add(1, Ordering::Relaxed);
    let mut settled = node.settled.subscribe();
    let s = *settled
        .wait_for(|s| s.round >= round)
        .await
        .map_err(|_| "the component is gone")?;
    Ok(Value::map([
        ("quality", Value::Float(s.quality)),
        ("resolved", Value::Bool(s.resolved)),
    ]))
}

/// Plays one agent's part in every round: call each dependency, then settle.
struct Driver {
    handle: AgentHandle,
    node: Arc<Node>,
    tallies: Arc<Mutex<Vec<Tally>>>,
    start: Instant,
    rounds: u64,
}

impl Driver {
    async fn drive(self, first: u64) {
        for round in first..=self.rounds {
            let at = self.start + ROUND * u32::try_from(round - 1).unwrap_or(u32::MAX);
            sleep_until(at).await;
            if !self.node.present.load(Ordering::Relaxed) {
                return;
            }
            self.node.load[((round + 1) % 2) as usize].store(0, Ordering::Relaxed);
            let answers = join_all(self.node.deps.iter().map(|d| self.call(d, round))).await;
            sleep_until(at + SETTLE).await;
            let load = self.node.load[(round % 2) as usize].load(Ordering::Relaxed);
            let local = self.node.curve().quality(load);
            let resolved = answers.iter().all(|a| matches!(a, Some((_, true))));
            let quality = if resolved {
                answers.iter().flatten().map(|a| a.0).fold(local, f64::min)
            } else {
                0.0
            };
            self.node.settled.send_replace(Settled {
                round,
                quality,
                resolved,
            });
            self.handle
                .knowledge()
                .set_quality(&self.node.service, quality);
            self.tally(round, quality, resolved);
        }
    }

    /// One dependency's provider, through the agent's call path: its quality and whether it
    /// is fully resolved, or `None` if no provider is known yet or the call failed.
    async fn call(&self, service: &str, round: u64) -> Option<(f64, bool)> {
        if !self.handle.knowledge().providers().knows(service) {
            // Nothing in Known for this type yet: Select_K has nothing to bind.
            return None;
        }
        let options = CallOptions {
            timeout: Some(CALL_TIMEOUT),
        };
        let input = Value::map([("round", Value::Int(round as i64))]);
        let out = self.handle.call_with(service, input, options).await.ok()?;
        let quality = out.get("quality").and_then(Value::as_f64)?;
        let resolved = out.get("resolved").and_then(Value::as_bool)?;
        Some((quality, resolved && quality > 0.0))
    }

    fn tally(&self, round: u64, quality: f64, resolved: bool) {
        let mut tallies = self.tallies.lock().expect("tallies");
        let Some(t) = tallies.get_mut(round as usize) else {
            return;
        };
        t.present += 1;
        if resolved {
            t.full += 1;
            t.sum += quality;
            t.squares += quality * quality;
        }
    }
}

/// The in-process network, counting the gossip it carries (entries and messages).
struct Counting {
    net: Network,
    entries: AtomicU64,
    messages: AtomicU64,
}

impl Counting {
    fn new() -> Counting {
        Counting {
            net: Network::new(),
            entries: AtomicU64::new(0),
            messages: AtomicU64::new(0),
        }
    }
}

impl Transport for Counting {
    fn join(&self, agent: &str) -> Result<Membership, JoinError> {
        self.net.join(agent)
    }

    fn send(&self, envelope: Envelope) -> Result<(), SendError> {
        if let Message::Gossip { entries } = &envelope.body {
            self.messages.fetch_add(1, Ordering::Relaxed);
            self.entries
                .fetch_add(entries.len() as u64, Ordering::Relaxed);
        }
        self.net.send(envelope)
    }

    fn publish(&self, service: &str, envelope: Envelope) -> usize {
        self.net.publish(service, envelope)
    }

    fn broadcast(&self, envelope: Envelope) -> usize {
        self.net.broadcast(envelope)
    }

    fn offer(&self, agent: &str, service: &str, offered: bool) {
        self.net.offer(agent, service, offered);
    }

    fn members(&self) -> Vec<selflet::name::Name> {
        self.net.members()
    }

    fn sample(&self, k: usize, rng: &mut fastrand::Rng) -> Vec<selflet::name::Name> {
        self.net.sample(k, rng)
    }

    fn is_member(&self, agent: &str) -> bool {
        self.net.is_member(agent)
    }

    fn authenticates(&self, agent: &str) -> bool {
        self.net.authenticates(agent)
    }

    fn counters(&self) -> MessageCounters {
        self.net.counters()
    }
}
