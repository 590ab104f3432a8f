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
//!
//! The scenarios of one seed and strategy are the same world until the change, so a run can
//! play them once: [`trunk`] hands a [`Snapshot`] of every agent at the change point, and
//! [`branch`] starts the other scenarios from it, each agent spawned again with the providers
//! it knew and a copy of what its strategy had learned.
#![allow(dead_code)] // the test uses part of it

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use selflet::behaviour::Behaviour;
use selflet::choice::{Choice, ProviderChoice, QualityMetric};
use selflet::knowledge::DirectorySnapshot;
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
    index: usize,
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
    trunk(p, progress, None).await
}

/// A run from its first round. At the change point, before the change, `at_change` (if any)
/// is handed a [`Snapshot`] of the world, from which the other scenarios can [`branch`].
pub(crate) async fn trunk(
    p: &Params,
    progress: &(dyn Fn() + Sync),
    at_change: Option<&(dyn Fn(Snapshot) + Sync)>,
) -> Result<Run, selflet::AgentError> {
    let world = World::new(p, 1, Vec::new(), Traffic::default())?;
    let mut rng = fastrand::Rng::with_seed(p.seed);
    let mut members = Vec::with_capacity(p.agents + p.churn);
    for i in 0..p.agents {
        let deps = draw_deps(p, i, &mut rng);
        let choice = p.choice.strategy(agent_seed(p.seed, i));
        members.push(world.spawn((i, deps), choice, 1, None).await?);
    }
    world.play(members, &mut rng, progress, at_change).await
}

/// `p`'s scenario, from `from`'s change point on: the agents present then, each knowing what
/// it knew and choosing as its strategy had learned to, then `p`'s change. The rounds before
/// are `from`'s.
pub(crate) async fn branch(
    p: &Params,
    from: &Snapshot,
    progress: &(dyn Fn() + Sync),
) -> Result<Run, selflet::AgentError> {
    let world = World::new(p, p.change_at, from.tallies.clone(), from.traffic)?;
    // The branch's own draws, for its change and its learners: apart from the trunk's, the
    // other branches' and every other seed's (seeds are small numbers).
    let salt = (p.scenario as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
    let mut rng = fastrand::Rng::with_seed(p.seed ^ salt);
    let mut members = Vec::with_capacity(p.agents + p.churn);
    for a in &from.agents {
        let seed = agent_seed(p.seed ^ salt, a.index);
        let learned = a.choice.as_ref().and_then(|c| c.fork(seed));
        let choice = learned.unwrap_or_else(|| p.choice.strategy(seed));
        let agent = (a.index, a.deps.clone());
        let member = world.spawn(agent, choice, p.change_at, Some(a)).await?;
        members.push(member);
    }
    world.change(&mut members, &mut rng).await?;
    world.play(members, &mut rng, progress, None).await
}

/// Agent `i`'s dependencies: each higher type than its own with probability ½.
fn draw_deps(p: &Params, i: usize, rng: &mut fastrand::Rng) -> Vec<String> {
    let kind = i % p.types + 1;
    (kind + 1..=p.types)
        .filter(|_| rng.bool())
        .map(|t| format!("t{t}"))
        .collect()
}

/// Seeds agent `i`'s provider choice.
fn agent_seed(seed: u64, i: usize) -> u64 {
    seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn summarize(tallies: &[Tally], traffic: Traffic) -> Run {
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
    run.gossip_entries = traffic.entries as f64 / agent_rounds;
    run.gossip_messages = traffic.messages as f64 / agent_rounds;
    run.calls = traffic.calls;
    run
}

/// The world of a run at its change point, before the change: every agent present, with
/// what it knows of providers and what its strategy learned, and the rounds so far. The
/// scenarios of one seed and strategy are the same world until then, so the others
/// [`branch`] from it rather than play those rounds again.
pub(crate) struct Snapshot {
    agents: Vec<Saved>,
    tallies: Vec<Tally>,
    traffic: Traffic,
}

/// One agent, as a snapshot keeps it.
struct Saved {
    index: usize,
    deps: Vec<String>,
    settled: Settled,
    providers: DirectorySnapshot,
    // `None` for a strategy that cannot be copied: the branch starts a new one.
    choice: Option<Arc<dyn ProviderChoice>>,
}

/// Gossip entries and messages sent, and service calls made.
#[derive(Debug, Clone, Copy, Default)]
struct Traffic {
    entries: u64,
    messages: u64,
    calls: u64,
}

impl std::ops::Add for Traffic {
    type Output = Traffic;

    fn add(self, o: Traffic) -> Traffic {
        Traffic {
            entries: self.entries + o.entries,
            messages: self.messages + o.messages,
            calls: self.calls + o.calls,
        }
    }
}

/// What every agent of a run shares.
struct World {
    net: Arc<Counting>,
    tallies: Arc<Mutex<Vec<Tally>>>,
    // The traffic of the rounds before `first`, in a branch.
    before: Traffic,
    // The first round this world plays, and when it starts.
    first: u64,
    start: Instant,
    params: Params,
    provide: Arc<Behaviour>,
}

type Member = (AgentHandle, Arc<Node>);

impl World {
    /// A world that plays from round `first` on, with `tallies` and `before` of the rounds
    /// before it.
    fn new(
        p: &Params,
        first: u64,
        mut tallies: Vec<Tally>,
        before: Traffic,
    ) -> Result<World, selflet::AgentError> {
        tallies.resize(p.rounds as usize + 1, Tally::default());
        // Gossip runs on whole seconds from the spawn. From the first round, it is half a
        // round away from the round's start; in a branch, which starts at the trunk's
        // snapshot, a quarter of a round after the round before settled, it is a quarter.
        // Either way each round's calls see the gossip of the round before.
        let lead = if first == 1 { ROUND / 2 } else { ROUND * 3 / 4 };
        Ok(World {
            net: Arc::new(Counting::new()),
            tallies: Arc::new(Mutex::new(tallies)),
            before,
            first,
            start: Instant::now() + lead,
            params: p.clone(),
            // Parsed once: every agent runs the same behaviour, and shares the one copy.
            provide: Arc::new(Behaviour::parse(SourceFile::new(
                "provide.yaml",
                include_str!("provide.yaml"),
            ))?),
        })
    }

    /// When round `round` starts.
    fn at(&self, round: u64) -> Instant {
        self.start + ROUND * u32::try_from(round - self.first).unwrap_or(u32::MAX)
    }

    /// Plays the rounds, hands `at_change` a snapshot at the change point and makes the
    /// change; then stops every agent and sums up.
    async fn play(
        &self,
        mut members: Vec<Member>,
        rng: &mut fastrand::Rng,
        progress: &(dyn Fn() + Sync),
        at_change: Option<&(dyn Fn(Snapshot) + Sync)>,
    ) -> Result<Run, selflet::AgentError> {
        let p = &self.params;
        for round in self.first..=p.rounds {
            if round + 1 == p.change_at {
                // A quarter of a round in, the round is settled and the gossip after it (at
                // half a round) has not started: nothing is in flight.
                sleep_until(self.at(round) + ROUND / 4).await;
                if let Some(take) = at_change {
                    take(self.snapshot(&members));
                }
                self.change(&mut members, rng).await?;
            }
            // Half a round after it started, round `round` is settled.
            sleep_until(self.at(round) + ROUND / 2).await;
            progress();
        }
        for (handle, node) in &members {
            node.present.store(false, Ordering::Relaxed);
            handle.shutdown().await;
        }
        let tallies = self.tallies.lock().expect("tallies").clone();
        Ok(summarize(&tallies[1..], self.before + self.traffic()))
    }

    fn traffic(&self) -> Traffic {
        let net = &self.net;
        Traffic {
            entries: net.entries.load(Ordering::Relaxed),
            messages: net.messages.load(Ordering::Relaxed),
            calls: net.counters().by_kind.get("request").copied().unwrap_or(0),
        }
    }

    /// The world now, between two rounds.
    fn snapshot(&self, members: &[Member]) -> Snapshot {
        let agents = members
            .iter()
            .map(|(handle, node)| Saved {
                index: node.index,
                deps: node.deps.clone(),
                settled: *node.settled.borrow(),
                providers: handle.knowledge().providers().snapshot(),
                // A copy, as the trunk goes on learning; each branch forks its own from it.
                choice: handle.choice().fork(0),
            })
            .collect();
        Snapshot {
            agents,
            tallies: self.tallies.lock().expect("tallies").clone(),
            traffic: self.before + self.traffic(),
        }
    }

    /// Agent `i`, of type `i mod w + 1` with `deps`, choosing with `choice`; driven from
    /// round `from`. A `saved` agent starts knowing what it knew, at the quality it had
    /// settled.
    async fn spawn(
        &self,
        (i, deps): (usize, Vec<String>),
        choice: Arc<dyn ProviderChoice>,
        from: u64,
        saved: Option<&Saved>,
    ) -> Result<Member, selflet::AgentError> {
        let p = &self.params;
        let service = format!("t{}", i % p.types + 1);
        let (settled, _) = watch::channel(saved.map_or_else(Settled::default, |s| s.settled));
        let node = Arc::new(Node {
            index: i,
            service: service.clone(),
            deps: deps.clone(),
            load: [AtomicU32::new(0), AtomicU32::new(0)],
            dashed: AtomicBool::new(false),
            present: AtomicBool::new(true),
            settled,
        });
        let config = NegotiationConfig {
            timeout: CALL_TIMEOUT,
            choice,
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
        let mut builder = Agent::builder(format!("s{i}"))
            .transport(Arc::clone(&self.net) as Arc<dyn Transport>)
            .behaviour(Arc::clone(&self.provide))
            .service(offer)
            .ability("serve", move |input| serve(Arc::clone(&serving), input))
            .negotiation(config);
        if let Some(s) = saved {
            builder = builder.known_providers(s.providers.clone());
        }
        let handle = builder.spawn().await?;
        if let Some(s) = saved {
            // What it advertises, as the driver set it when the round settled.
            handle.knowledge().set_quality(&service, s.settled.quality);
        }
        let driver = Driver {
            handle: handle.clone(),
            node: Arc::clone(&node),
            tallies: Arc::clone(&self.tallies),
            start: self.start,
            base: self.first,
            rounds: p.rounds,
        };
        tokio::spawn(driver.drive(from));
        Ok((handle, node))
    }

    /// The scenario's change, before round `change_at`.
    async fn change(
        &self,
        members: &mut Vec<Member>,
        rng: &mut fastrand::Rng,
    ) -> Result<(), selflet::AgentError> {
        let p = &self.params;
        match p.scenario {
            Scenario::Static => {}
            Scenario::Leave => {
                rng.shuffle(members);
                for (handle, node) in members.drain(..p.churn.min(members.len())) {
                    node.present.store(false, Ordering::Relaxed);
                    handle.shutdown().await;
                }
            }
            Scenario::Join => {
                let first = members.len();
                for i in first..first + p.churn {
                    let deps = draw_deps(p, i, rng);
                    let choice = p.choice.strategy(agent_seed(p.seed, i));
                    members.push(self.spawn((i, deps), choice, p.change_at, None).await?);
                }
            }
            Scenario::Quality => {
                let mut order: Vec<usize> = (0..members.len()).collect();
                rng.shuffle(&mut order);
                for &i in order.iter().take(p.churn) {
                    members[i].1.dashed.store(true, Ordering::Relaxed);
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
    // When round `base` starts.
    start: Instant,
    base: u64,
    rounds: u64,
}

impl Driver {
    async fn drive(self, first: u64) {
        for round in first..=self.rounds {
            let at = self.start + ROUND * u32::try_from(round - self.base).unwrap_or(u32::MAX);
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
