//! Configuring an agent before it starts.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::ability::Abilities;
use crate::behaviour::{Behaviour, InstanceLimits};
use crate::bus::Bus;
use crate::error::BoxError;
use crate::knowledge::{DirectorySnapshot, Service};
use crate::manifest::{Manifest, Origin, PredictorSpec};
use crate::negotiation::Config as NegotiationConfig;
use crate::prediction::{Kinds, Predictor};
use crate::script::Limits;
use crate::source::SourceFile;
use crate::transport::{Network, Transport};
use crate::value::Value;

/// The default time in-flight work gets to finish at shutdown before it is cancelled.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Configures an agent; [`spawn`](AgentBuilder::spawn) starts it.
///
/// Settings layer: defaults, then a manifest ([`Agent::from_manifest`](crate::Agent::from_manifest)),
/// then whatever the builder methods set afterwards.
#[must_use = "an agent does nothing until it is spawned"]
pub struct AgentBuilder {
    pub(super) name: String,
    pub(super) goal: Option<String>,
    pub(super) attributes: BTreeMap<String, Value>,
    pub(super) facts: BTreeMap<String, Value>,
    pub(super) services: Vec<Service>,
    pub(super) requires: Vec<String>,
    pub(super) transport: Option<Arc<dyn Transport>>,
    pub(super) bus: Option<Bus>,
    pub(super) negotiation: NegotiationConfig,
    pub(super) grace: Duration,
    pub(super) main: Option<String>,
    pub(super) behaviours: Vec<Arc<Behaviour>>,
    pub(super) behaviour_files: Vec<std::path::PathBuf>,
    pub(super) scripts: Vec<SourceFile>,
    pub(super) script_files: Vec<std::path::PathBuf>,
    pub(super) abilities: Abilities,
    pub(super) limits: Limits,
    pub(super) ability_budget: Option<Duration>,
    pub(super) instance_limits: InstanceLimits,
    pub(super) policies: Vec<SourceFile>,
    pub(super) policy_files: Vec<std::path::PathBuf>,
    pub(super) kinds: Kinds,
    pub(super) predictors: Vec<Box<dyn Predictor>>,
    pub(super) predictor_specs: Vec<PredictorSpec>,
    pub(super) learner_specs: Vec<PredictorSpec>,
    pub(super) economics: BTreeMap<String, crate::knowledge::Economics>,
    pub(super) known_providers: Option<DirectorySnapshot>,
    // The manifest it was made from, to locate the problems found when it is checked.
    pub(super) origin: Option<Origin>,
}

impl std::fmt::Debug for AgentBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentBuilder")
            .field("name", &self.name)
            .field("main", &self.main)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl AgentBuilder {
    pub(crate) fn new(name: String) -> AgentBuilder {
        AgentBuilder {
            name,
            goal: None,
            attributes: BTreeMap::new(),
            facts: BTreeMap::new(),
            services: Vec::new(),
            requires: Vec::new(),
            transport: None,
            bus: None,
            negotiation: NegotiationConfig::default(),
            grace: DEFAULT_SHUTDOWN_GRACE,
            main: None,
            behaviours: Vec::new(),
            behaviour_files: Vec::new(),
            scripts: Vec::new(),
            script_files: Vec::new(),
            abilities: Abilities::default(),
            limits: Limits::default(),
            ability_budget: None,
            instance_limits: InstanceLimits::default(),
            policies: Vec::new(),
            policy_files: Vec::new(),
            kinds: Kinds::default(),
            predictors: Vec::new(),
            predictor_specs: Vec::new(),
            learner_specs: Vec::new(),
            economics: BTreeMap::new(),
            known_providers: None,
            origin: None,
        }
    }

    pub(crate) fn from_manifest(m: &Manifest) -> AgentBuilder {
        let mut b = AgentBuilder::new(m.name.clone());
        b.goal.clone_from(&m.goal);
        b.attributes.clone_from(&m.attributes);
        b.facts.clone_from(&m.facts);
        b.services.clone_from(&m.services);
        b.economics.clone_from(&m.economics);
        b.requires.clone_from(&m.requires);
        b.main.clone_from(&m.main);
        b.behaviour_files.clone_from(&m.behaviours);
        b.script_files.clone_from(&m.abilities);
        b.policy_files.clone_from(&m.policies);
        b.predictor_specs.clone_from(&m.predictors);
        b.learner_specs.clone_from(&m.learners);
        b.negotiation.neighbours.clone_from(&m.network.neighbours);
        b.negotiation.teachers.clone_from(&m.trust.teachers);
        if let Some(t) = m.negotiation.timeout {
            b.negotiation.timeout = t;
        }
        if let Some(r) = m.negotiation.retries {
            b.negotiation.retries = r;
        }
        if let Some(c) = m.negotiation.choice {
            b.negotiation.choice = c.strategy(b.negotiation.seed);
        }
        b.negotiation.gossip = m.negotiation.gossip;
        if let Some(q) = &m.negotiation.quality {
            b.negotiation.quality = q.clone();
        }
        if let Some(h) = m.negotiation.referral_hops {
            b.negotiation.referral_hops = h;
        }
        b.instance_limits = m.limits;
        b.origin = Some(m.origin.clone());
        b
    }

    /// Installs a behaviour. Given an `Arc<Behaviour>`, agents share one parsed copy: many
    /// agents that run the same behaviour parse it once and keep it once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use selflet_core::behaviour::Behaviour;
    /// use selflet_core::{Agent, Network, SourceFile};
    ///
    /// let text = "behaviour: hello\ninitial: done\nstates:\n  done: { final: true }\n";
    /// let hello = Arc::new(Behaviour::parse(SourceFile::new("hello.yaml", text))?);
    /// let net = Network::new();
    /// for i in 0..3 {
    ///     let agent = Agent::builder(format!("a{i}"))
    ///         .network(&net)
    ///         .behaviour(Arc::clone(&hello))
    ///         .spawn()
    ///         .await?;
    ///     assert!(Arc::ptr_eq(&agent.behaviours().get("hello").unwrap(), &hello));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn behaviour(mut self, behaviour: impl Into<Arc<Behaviour>>) -> Self {
        self.behaviours.push(behaviour.into());
        self
    }

    /// Names the main behaviour, which runs from start to stop and restarts whenever it ends.
    pub fn main(mut self, behaviour: impl Into<String>) -> Self {
        self.main = Some(behaviour.into());
        self
    }

    /// Registers a native ability: an async function from a [`Value`] to a [`Value`].
    ///
    /// A request answered without waiting is answered on the thread that delivers it — the
    /// caller's within a process, the one receiving for every agent of the process over Zenoh
    /// — so an ability that computes for long, like any code on a tokio worker, should hand
    /// the work to `tokio::task::spawn_blocking` (or yield): an ability that waits is answered
    /// on a task of the agent's from then on.
    ///
    /// ```
    /// # async fn f() -> Result<(), selflet_core::AgentError> {
    /// use selflet_core::{Agent, Value};
    ///
    /// let agent = Agent::builder("meter")
    ///     .ability("read_energy", |_input: Value| async { Ok(Value::from(1250)) })
    ///     .spawn()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn ability<F, Fut>(self, name: &str, f: F) -> Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, BoxError>> + Send + 'static,
    {
        self.abilities.register(name, f);
        self
    }

    /// Adds a file of scripted abilities (Rhai functions of one argument).
    pub fn ability_script(mut self, script: SourceFile) -> Self {
        self.scripts.push(script);
        self
    }

    /// Adds a policy file (Rhai rules).
    pub fn policy(mut self, source: SourceFile) -> Self {
        self.policies.push(source);
        self
    }

    /// The predictor kinds manifests and policies may name (by default only this crate's;
    /// `selflet::kinds()` adds the plugins').
    pub fn predictor_kinds(mut self, kinds: Kinds) -> Self {
        self.kinds = kinds;
        self
    }

    /// Plugs a predictor in at start.
    pub fn predictor(mut self, predictor: Box<dyn Predictor>) -> Self {
        self.predictors.push(predictor);
        self
    }

    /// Plugs a learner of a registered kind in at start, once the agent runs (see
    /// [`AgentHandle::plug_learner`](crate::AgentHandle::plug_learner)); `spawn` checks its
    /// parameters, service and variants first.
    pub fn learner(mut self, kind: &str, name: &str, params: Value) -> Self {
        let params = match params {
            Value::Map(m) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        self.learner_specs.push(PredictorSpec {
            kind: kind.to_owned(),
            name: name.to_owned(),
            params,
            at: (0, 0),
        });
        self
    }

    /// The limits scripts and expressions of this agent run under.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How long one run of a native ability may take before it is dropped (30 s unless set):
    /// raise it for abilities that wait for long work, such as a queue for a machine.
    pub fn ability_budget(mut self, budget: Duration) -> Self {
        self.ability_budget = Some(budget);
        self
    }

    /// The limits every behaviour instance of this agent runs under: steps per trigger, and
    /// the time limit of a service run (services may set their own).
    pub fn instance_limits(mut self, limits: InstanceLimits) -> Self {
        self.instance_limits = limits;
        self
    }

    /// Describes what the agent is for.
    pub fn goal(mut self, goal: impl Into<String>) -> Self {
        self.goal = Some(goal.into());
        self
    }

    /// Sets an attribute.
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Sets an initial fact.
    pub fn fact(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.facts.insert(key.into(), value.into());
        self
    }

    /// Offers a service.
    pub fn service(mut self, service: Service) -> Self {
        self.services.retain(|s| s.name != service.name);
        self.services.push(service);
        self
    }

    /// Sets a service's revenue, cost and response-time threshold (the load-balancing model's
    /// numbers, which policies read).
    pub fn economics(
        mut self,
        service: impl Into<String>,
        economics: crate::knowledge::Economics,
    ) -> Self {
        self.economics.insert(service.into(), economics);
        self
    }

    /// Declares a service the agent needs from others.
    pub fn require(mut self, service: impl Into<String>) -> Self {
        self.requires.push(service.into());
        self
    }

    /// Joins an in-process network (by default the agent is alone on a network of its own).
    pub fn network(self, network: &Network) -> Self {
        self.transport(Arc::new(network.clone()))
    }

    /// The bus the agent uses (by default a new one). Subscribing to it before `spawn` sees
    /// every event from the agent's first on, such as the neighbours already on the network.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use selflet_core::Agent;
    /// use selflet_core::bus::{Bus, Pattern};
    ///
    /// let bus = Bus::new("a");
    /// let lifecycle = bus.subscribe(Pattern::parse("agent.lifecycle")?)?;
    /// let a = Agent::builder("a").bus(bus).spawn().await?;
    /// let first = lifecycle.recv().await.expect("an event");
    /// assert_eq!(first.payload().get("state"), Some(&"starting".into()));
    /// # a.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn bus(mut self, bus: Bus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Joins the agents on a transport.
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// How the agent negotiates: time-outs, retries, teachers it trusts, neighbours, provider
    /// choice.
    pub fn negotiation(mut self, config: NegotiationConfig) -> Self {
        self.negotiation = config;
        self
    }

    /// Starts knowing the providers `snapshot` lists, as the agent it was taken from knew
    /// them ([`ProviderDirectory::snapshot`](crate::knowledge::ProviderDirectory::snapshot)).
    /// With a copy of that agent's provider choice in [`negotiation`](Self::negotiation)
    /// ([`ProviderChoice::fork`](crate::choice::ProviderChoice::fork)), an agent that takes
    /// over from another — a replica, a member started again — goes on from what it knew of
    /// its providers instead of learning them anew.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use selflet_core::{Agent, OfferModes};
    ///
    /// let old = Agent::builder("old").spawn().await?;
    /// old.knowledge().providers().heard("resize", "b", OfferModes::CAN_DO)?;
    /// let snapshot = old.knowledge().providers().snapshot();
    /// old.shutdown().await;
    /// let new = Agent::builder("new").known_providers(snapshot).spawn().await?;
    /// assert!(new.knowledge().providers().knows("resize"));
    /// # Ok(()) }
    /// ```
    pub fn known_providers(mut self, snapshot: DirectorySnapshot) -> Self {
        self.known_providers = Some(snapshot);
        self
    }

    /// How long in-flight work may take to finish at shutdown before it is cancelled.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}
