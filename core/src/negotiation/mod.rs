//! The Negotiation Manager: services between agents, in their offer modes.
//!
//! Every offered service has a combination of offer modes (can do, can teach, knows who can
//! do, knows who can teach). A request names the service, the acceptable modes in order of
//! preference, and an input; the provider answers with the result, a teaching package, a
//! referral or a refusal, trying the requester's modes in order among those it offers. An
//! agent that only knows who offers a service needs no implementation of it: it answers with
//! a referral from its provider directory.
//!
//! # One call path
//!
//! Whether a call starts in application code ([`AgentHandle::call`](crate::AgentHandle::call)),
//! in a behaviour's `call:` or in a peer's request, one function decides where it runs
//! (`call.rs`): here, if the agent has an enabled implementation — unless part of the
//! service's load is redirected to a neighbour, which then runs it, or, if that fails, here
//! after all —; otherwise at a provider (`requester.rs`), chosen by the agent's
//! [`ProviderChoice`], retried on the next one after a failure, following referrals a bounded
//! number of hops; and if a provider teaches it, it runs here from then on.
//!
//! # Hostile peers
//!
//! What arrives from peers is checked before it is believed (see [`Refusal`]): adverts,
//! loads, discovery and lessons only from current members this agent talks to; replies only
//! from the agent asked; teaching only in answer to a request that asked for it, for the
//! service asked, or as a lesson from a trusted, authenticated teacher — validated whole and
//! installed at once or not at all, never replacing what the agent has unless a policy allows
//! an upgrade (`teaching.rs`). What peers can make an agent store is capped; every refusal is
//! counted.
//!
//! Every call ends with a result, an error or a time-out; a provider that leaves the network
//! (on transports that tell, such as Zenoh) is forgotten and the requests waiting for it fail
//! at once. The events it publishes are in [`crate::topic`] (`service.*`, `neighbour.*`).

mod call;
mod gossip;
mod membership;
mod outcome;
mod provider;
mod requester;
mod serve;
mod teaching;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

pub use crate::choice::{Choice, FirstKnown, LeastRecentlyFailed, ProviderChoice, RoundRobin};
pub use gossip::GossipConfig;
pub use outcome::{
    Attempt, AttemptError, CallError, CallOptions, ForgetError, LearnError, Outcome, TeachError,
};
pub use teaching::MAX_PACKAGE_SCRIPTS;

use crate::ability::Abilities;
use crate::behaviour::{Behaviours, Runtime};
use crate::bus::Bus;
use crate::choice::{ChoiceCell, QualityMetric};
use crate::knowledge::Knowledge;
use crate::name::Name;
use crate::transport::{Envelope, Message, Refusal, Refusals, Reply, Transport};

/// How many referral hops a request follows by default.
pub const DEFAULT_REFERRAL_HOPS: u32 = 3;

/// How many providers one referral may name; the rest are ignored.
pub const MAX_REFERRAL: usize = 16;

/// How many services one advert may list; a longer advert is refused whole.
pub const MAX_ADVERT_SERVICES: usize = 256;

/// How many requests of one peer an agent serves at once; more are refused.
pub const MAX_IN_FLIGHT_PER_PEER: usize = 64;

/// Members an agent advertises to when its neighbourhood is the whole network: all of them
/// up to this many, otherwise this many drawn at random (the rest find it by discovery). So
/// starting N agents that offer services costs O(N) messages, not O(N²).
pub const ADVERT_FANOUT: usize = 64;

/// The highest utilization a load report may carry (seconds of work per second: a saturated
/// agent reports more than 1, never this much).
pub const MAX_UTILIZATION: f64 = 1e6;

/// How many agents referrals may add to a closed neighbourhood.
pub const MAX_INTRODUCED: usize = 1024;

/// How an agent negotiates: time-outs, retries, whom it learns from, whom it talks to.
#[derive(Clone)]
pub struct Config {
    /// How long to wait for each reply.
    pub timeout: Duration,
    /// How many other providers to try after a failure or time-out. When every provider it
    /// knew of a service turns out to be gone, a request discovers once more before giving up
    /// (not with gossip on, which tells of providers only round by round).
    pub retries: u32,
    /// Agents it accepts teaching from; `None` accepts any agent whose messages its transport
    /// authenticates.
    pub teachers: Option<Vec<String>>,
    /// Its neighbourhood: the agents it advertises to, discovers among and accepts requests,
    /// adverts and loads from; empty means every agent. A neighbour's referral adds the agent
    /// it refers to.
    pub neighbours: Vec<String>,
    /// Which known provider to ask.
    pub choice: Arc<dyn ProviderChoice>,
    /// How long a failure puts a provider behind the others.
    pub cool_down: Duration,
    /// How many referrals in a row a request follows.
    pub referral_hops: u32,
    /// Gossip of provider knowledge, instead of adverts and discovery; off by default.
    pub gossip: Option<GossipConfig>,
    /// How the quality of a call is measured, for learned provider choice and for the quality
    /// this agent advertises when it gossips.
    pub quality: QualityMetric,
    /// Seeds the random draws of gossip (with the agent's name), so that a run can be
    /// repeated.
    pub seed: u64,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("teachers", &self.teachers)
            .field("neighbours", &self.neighbours)
            .field("referral_hops", &self.referral_hops)
            .field("choice", &self.choice.name())
            .field("gossip", &self.gossip)
            .field("quality", &self.quality)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: Duration::from_secs(5),
            retries: 2,
            teachers: None,
            neighbours: Vec::new(),
            choice: default_choice(),
            cool_down: Duration::from_secs(30),
            referral_hops: DEFAULT_REFERRAL_HOPS,
            gossip: None,
            quality: QualityMetric::default(),
            seed: random_u64(),
        }
    }
}

/// The default provider choice, least recently failed with its default cool-down. It keeps no
/// state, so every agent shares one rather than each allocating its own.
fn default_choice() -> Arc<dyn ProviderChoice> {
    static DEFAULT: OnceLock<Arc<LeastRecentlyFailed>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| Arc::new(LeastRecentlyFailed::default()))
        .clone()
}

/// A request waiting for its reply: whom it asked, and where the answer goes.
struct Pending {
    provider: Name,
    tx: oneshot::Sender<Result<Reply, AttemptError>>,
}

/// The parts a negotiator works with.
pub(crate) struct Parts {
    pub(crate) agent: Arc<str>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) knowledge: Knowledge,
    pub(crate) bus: Bus,
    pub(crate) runtime: Runtime,
    pub(crate) behaviours: Behaviours,
    pub(crate) abilities: Abilities,
    pub(crate) config: Config,
    pub(crate) choice: ChoiceCell,
}

/// Whom an agent has met and which services it is looking for: state that changes rarely,
/// under one lock, since each of thousands of idle agents holds it.
#[derive(Default)]
struct Contacts {
    // Agents this one has exchanged adverts with.
    peers: BTreeSet<Name>,
    // Agents a neighbour referred this one to, in a closed neighbourhood.
    introduced: BTreeSet<String>,
    // The services being discovered, each with the time its answers are waited for until.
    #[expect(
        clippy::box_collection,
        reason = "one pointer instead of an inline map in every idle agent: most never discover"
    )]
    discovering: Option<Box<BTreeMap<String, tokio::time::Instant>>>,
}

/// One agent's negotiation part.
pub(crate) struct Negotiator {
    agent: Arc<str>,
    transport: Arc<dyn Transport>,
    knowledge: Knowledge,
    bus: Bus,
    runtime: Runtime,
    behaviours: Behaviours,
    abilities: Abilities,
    config: Config,
    choice: ChoiceCell,
    // B-trees rather than hash maps: an empty one is half the size, and thousands of idle
    // agents each hold four.
    pending: Mutex<BTreeMap<u64, Pending>>,
    next_id: AtomicU64,
    self_ref: OnceLock<Weak<Negotiator>>,
    contacts: Mutex<Contacts>,
    in_flight: Mutex<provider::InFlight>,
    waited: provider::WaitMarks,
    serving: OnceLock<serve::Serving>,
    advertised: AtomicBool,
    stopping: AtomicBool,
    // Wakes requests waiting for discovery when the directory hears of a provider.
    heard: Notify,
    refusals: Refusals,
}

impl Negotiator {
    pub(crate) fn new(p: Parts) -> Negotiator {
        Negotiator {
            agent: p.agent,
            transport: p.transport,
            knowledge: p.knowledge,
            bus: p.bus,
            runtime: p.runtime,
            behaviours: p.behaviours,
            abilities: p.abilities,
            config: p.config,
            choice: p.choice,
            pending: Mutex::default(),
            // Ids start at random, so that a reply recorded in an earlier run of this agent
            // cannot answer a request of this one.
            next_id: AtomicU64::new(random_u64() >> 1),
            self_ref: OnceLock::new(),
            contacts: Mutex::default(),
            in_flight: Mutex::default(),
            waited: provider::WaitMarks::default(),
            serving: OnceLock::new(),
            advertised: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            heard: Notify::new(),
            refusals: Refusals::default(),
        }
    }

    /// Puts the negotiator behind an `Arc` and makes it the runtime's way to services.
    pub(crate) fn install(self) -> Arc<Negotiator> {
        let this = Arc::new(self);
        let _ = this.self_ref.set(Arc::downgrade(&this));
        let weak: Weak<dyn crate::behaviour::ServiceCaller> = Arc::downgrade(&this) as _;
        this.runtime.set_caller(weak);
        this
    }

    pub(crate) fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// The seed of this agent's gossip draws: the configured seed mixed with its name, so
    /// agents of one run draw differently.
    pub(crate) fn gossip_seed(&self) -> u64 {
        use std::hash::BuildHasher;
        foldhash::fast::FixedState::with_seed(self.config.seed).hash_one(&self.agent)
    }

    pub(crate) fn choice(&self) -> &ChoiceCell {
        &self.choice
    }

    pub(crate) fn gossip_period(&self) -> Option<Duration> {
        self.config.gossip.map(|g| g.period)
    }

    /// What this agent refused from its peers, by reason.
    pub(crate) fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    /// Ends every call still waiting for a reply: the agent is stopping.
    pub(crate) fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Release);
        crate::sync::lock(&self.pending).clear();
    }

    /// Whether this agent talks to `agent`: it is another agent, in the neighbourhood (or
    /// introduced to it by a neighbour), and not disabled by a policy.
    fn talks_to(&self, agent: &str) -> bool {
        agent != &*self.agent
            && self.knowledge.neighbour_enabled(agent)
            && (self.config.neighbours.is_empty()
                || self.config.neighbours.iter().any(|n| n == agent)
                || crate::sync::lock(&self.contacts).introduced.contains(agent))
    }

    /// [`talks_to`](Self::talks_to) for a list of agents: when this agent has no
    /// neighbourhood and has silenced no one (the usual case), it is only "not itself", and
    /// the knowledge's lock is read once rather than once per agent.
    fn talks_to_each(&self) -> impl Fn(&str) -> bool + '_ {
        let open = self.config.neighbours.is_empty() && !self.knowledge.silences_anyone();
        move |agent| {
            if open {
                agent != &*self.agent
            } else {
                self.talks_to(agent)
            }
        }
    }

    fn envelope(&self, to: impl Into<Name>, id: u64, body: Message) -> Envelope {
        Envelope {
            trace: crate::trace::current_raw(),
            from: Name::from(&*self.agent),
            to: to.into(),
            id,
            body,
        }
    }

    fn refuse(&self, why: Refusal, from: &str, what: &str) {
        self.refusals.count(why);
        tracing::debug!(agent = %self.agent, %from, refusal = %why, "{what} refused");
    }
}

/// 64 random bits from the standard library's per-process random hash keys: enough to make
/// request ids unpredictable across runs, without a dependency.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}
