//! Configuring an agent before it starts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;

use crate::ability::Abilities;
use crate::agent::AgentError;
use crate::agent::handle::{AgentHandle, AgentInner};
use crate::agent::handle::{Lifecycle, Tracker};
use crate::behaviour::{Behaviour, Behaviours, InstanceLimits, Runtime, RuntimeParts};
use crate::bus::Bus;
use crate::error::BoxError;
use crate::knowledge::{Knowledge, Service};
use crate::manifest::Manifest;
use crate::manifest::PredictorSpec;
use crate::name::is_valid_name;
use crate::negotiation::{Config as NegotiationConfig, Negotiator, Parts as NegotiationParts};
use crate::policy::Policies;
use crate::prediction::{Kinds, Predictor, Predictors};
use crate::script::{self, Limits};
use crate::source::SourceFile;
use crate::transport::{Network, Transport};
use crate::value::Value;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The default time in-flight work gets to finish at shutdown before it is cancelled.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Configures an agent; [`spawn`](AgentBuilder::spawn) starts it.
///
/// Settings layer: defaults, then a manifest ([`Agent::from_manifest`](crate::Agent::from_manifest)),
/// then whatever the builder methods set afterwards.
#[must_use = "an agent does nothing until it is spawned"]
pub struct AgentBuilder {
    name: String,
    goal: Option<String>,
    attributes: BTreeMap<String, Value>,
    facts: BTreeMap<String, Value>,
    services: Vec<Service>,
    requires: Vec<String>,
    transport: Option<Arc<dyn Transport>>,
    bus: Option<Bus>,
    negotiation: NegotiationConfig,
    grace: Duration,
    main: Option<String>,
    behaviours: Vec<Behaviour>,
    behaviour_files: Vec<std::path::PathBuf>,
    scripts: Vec<SourceFile>,
    script_files: Vec<std::path::PathBuf>,
    abilities: Abilities,
    limits: Limits,
    instance_limits: InstanceLimits,
    policies: Vec<SourceFile>,
    policy_files: Vec<std::path::PathBuf>,
    kinds: Kinds,
    predictors: Vec<Box<dyn Predictor>>,
    predictor_specs: Vec<PredictorSpec>,
    economics: BTreeMap<String, crate::knowledge::Economics>,
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
            instance_limits: InstanceLimits::default(),
            policies: Vec::new(),
            policy_files: Vec::new(),
            kinds: Kinds::default(),
            predictors: Vec::new(),
            predictor_specs: Vec::new(),
            economics: BTreeMap::new(),
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
        b.negotiation.neighbours.clone_from(&m.network.neighbours);
        b.negotiation.teachers.clone_from(&m.trust.teachers);
        if let Some(t) = m.negotiation.timeout {
            b.negotiation.timeout = t;
        }
        if let Some(r) = m.negotiation.retries {
            b.negotiation.retries = r;
        }
        if let Some(c) = m.negotiation.choice {
            b.negotiation.choice = c.strategy();
        }
        b
    }

    /// Installs a behaviour.
    pub fn behaviour(mut self, behaviour: Behaviour) -> Self {
        self.behaviours.push(behaviour);
        self
    }

    /// Names the main behaviour, which runs from start to stop and restarts whenever it ends.
    pub fn main(mut self, behaviour: impl Into<String>) -> Self {
        self.main = Some(behaviour.into());
        self
    }

    /// Registers a native ability: an async function from a [`Value`] to a [`Value`].
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

    /// The limits scripts and expressions of this agent run under.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
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

    /// How long in-flight work may take to finish at shutdown before it is cancelled.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Starts the agent on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// An invalid name, a name already taken on the network, or no tokio runtime. Nothing is
    /// started when an error is returned.
    pub async fn spawn(self) -> Result<AgentHandle, AgentError> {
        if !is_valid_name(&self.name) {
            return Err(AgentError::InvalidName(self.name));
        }
        tokio::runtime::Handle::try_current().map_err(|_| AgentError::NoRuntime)?;
        // Everything that can be wrong with the agent's files is found before anything starts.
        let abilities = self.abilities.with_limits(self.limits);
        let mut scripts = self.scripts;
        for f in &self.script_files {
            scripts.push(SourceFile::read(f)?);
        }
        for s in scripts {
            abilities.load_script(s)?;
        }
        let behaviours = Behaviours::default();
        for b in self.behaviours {
            behaviours.install(b);
        }
        for f in &self.behaviour_files {
            behaviours.install(Behaviour::load(f)?);
        }
        if let Some(m) = &self.main
            && behaviours.get(m).is_none()
        {
            return Err(AgentError::Config(format!(
                "the main behaviour `{m}` is not among the agent's behaviours"
            )));
        }
        for s in &self.services {
            if let Some(b) = &s.behaviour
                && behaviours.get(b).is_none()
            {
                return Err(AgentError::Config(format!(
                    "service `{}` is implemented by behaviour `{b}`, which the agent does not have",
                    s.name
                )));
            }
        }
        let mut plugged = self.predictors;
        for spec in &self.predictor_specs {
            let params = Value::Map(spec.params.clone());
            plugged.push(self.kinds.make(&spec.kind, &spec.name, &params)?);
        }
        let transport = self.transport.unwrap_or_else(|| Arc::new(Network::new()));
        let membership = transport.join(&self.name)?;
        let bus = self.bus.unwrap_or_else(|| Bus::new(&self.name));
        let knowledge = Knowledge::new(bus.clone());
        for (k, v) in self.attributes {
            knowledge.set_attribute(&k, v);
        }
        for (service, e) in self.economics {
            knowledge.set_economics(&service, e);
        }
        let policies = Policies::new(
            knowledge.clone(),
            bus.clone(),
            behaviours.clone(),
            self.limits,
        )
        .ok_or_else(|| AgentError::Config("the agent's bus closed while it was built".into()))?;
        let mut sources = self.policies;
        for f in &self.policy_files {
            sources.push(SourceFile::read(f)?);
        }
        for s in sources {
            policies.load(s)?;
        }
        let cancel = CancellationToken::new();
        let stop_loops = CancellationToken::new();
        let tasks = TaskTracker::new();
        let predictors =
            Predictors::new(bus.clone(), self.kinds, stop_loops.clone(), tasks.clone());
        let runtime = Runtime::new(RuntimeParts {
            agent: self.name.clone(),
            bus: bus.clone(),
            abilities: abilities.clone(),
            behaviours: behaviours.clone(),
            engine: script::shared(&self.limits),
            budget: self.limits.budget,
            limits: self.instance_limits,
            cancel: cancel.clone(),
        });
        let negotiator = Negotiator::new(NegotiationParts {
            agent: self.name.clone(),
            transport: Arc::clone(&transport),
            knowledge: knowledge.clone(),
            bus: bus.clone(),
            runtime: runtime.clone(),
            behaviours: behaviours.clone(),
            abilities: abilities.clone(),
            config: self.negotiation,
        })
        .install();
        let inner = Arc::new(AgentInner {
            name: self.name.as_str().into(),
            goal: self.goal,
            bus,
            knowledge,
            abilities,
            runtime,
            policies,
            predictors,
            negotiator,
            main: Mutex::new(None),
            main_running: AtomicBool::new(false),
            sampler_running: AtomicBool::new(false),
            stop_loops,
            lifecycle: Mutex::new(Tracker::new()),
            state: watch::Sender::new(Lifecycle::Created),
            tasks,
            cancel,
            membership: Mutex::new(Some(membership)),
            grace: self.grace,
        });
        let handle = AgentHandle::from_inner(inner);
        handle
            .start(self.facts, self.services, self.requires, self.main, plugged)
            .await;
        Ok(handle)
    }
}
