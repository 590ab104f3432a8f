//! Checking an agent's parts, and starting it.
//!
//! Everything that can be wrong with what an agent is given — its files, their
//! cross-references, its predictors — is found by [`AgentBuilder::check`], which is also the
//! first thing [`AgentBuilder::spawn`] does; only then does the agent join its network. So a
//! manifest `selflet check` accepts starts, and an agent that fails to start was never seen
//! by its peers.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::AgentError;
use super::builder::AgentBuilder;
use super::handle::{AgentHandle, AgentInner, Tracker};
use crate::ability::Abilities;
use crate::behaviour::{Behaviour, Behaviours, Runtime, RuntimeParts};
use crate::bus::Bus;
use crate::choice::ChoiceCell;
use crate::knowledge::Knowledge;
use crate::manifest::PredictorSpec;
use crate::name::is_valid_name;
use crate::negotiation::{Negotiator, Parts as NegotiationParts};
use crate::policy::Policies;
use crate::prediction::learner::{Has, PlugError, Plugged};
use crate::prediction::{Predictor, Predictors};
use crate::script;
use crate::source::{LoadError, SourceFile};
use crate::transport::Network;
use crate::value::Value;

/// The parts made before the agent joined its network, and its place there.
struct Wired {
    name: Arc<str>,
    bus: Bus,
    knowledge: Knowledge,
    choice: ChoiceCell,
    policies: Policies,
    learners: crate::prediction::learner::Learners,
    transport: Arc<dyn crate::transport::Transport>,
    membership: crate::transport::Membership,
}

/// What checking found usable: the loaded parts, ready to wire.
struct Checked {
    abilities: Abilities,
    behaviours: Behaviours,
    policies: Vec<SourceFile>,
    predictors: Vec<Box<dyn Predictor>>,
}

impl AgentBuilder {
    /// Checks everything [`spawn`](AgentBuilder::spawn) would check, starting nothing: the
    /// name, the behaviour, ability and policy files, the main behaviour and each service's
    /// behaviour, the predictors' kinds and parameters. For an agent from a manifest, every
    /// problem is located in the file it is in.
    ///
    /// ```
    /// use selflet_core::{Agent, Manifest, SourceFile};
    ///
    /// let text = "name: a\nmain: missing\n";
    /// let m = Manifest::parse(&SourceFile::new("a.yaml", text), ".".as_ref())?;
    /// let err = Agent::from_manifest(&m).check().unwrap_err();
    /// assert!(err.to_string().contains("a.yaml:2:7"), "{err}");
    /// # Ok::<(), selflet_core::LoadError>(())
    /// ```
    pub fn check(mut self) -> Result<(), AgentError> {
        self.check_all().map(drop)
    }

    /// Loads and checks the agent's parts.
    fn load_parts(&self) -> Result<Checked, AgentError> {
        if !is_valid_name(&self.name) {
            return Err(AgentError::InvalidName(self.name.clone()));
        }
        let mut problems = Vec::new();
        let mut keep = |r: Result<(), LoadError>| {
            if let Err(e) = r {
                problems.push(e);
            }
        };
        let abilities = self
            .abilities
            .clone()
            .with_limits(self.limits, self.ability_budget);
        for s in &self.scripts {
            keep(abilities.load_script(s.clone()).map(drop));
        }
        for f in &self.script_files {
            keep(SourceFile::read(f).and_then(|s| abilities.load_script(s).map(drop)));
        }
        let behaviours = Behaviours::default();
        for f in &self.behaviour_files {
            keep(Behaviour::load(f).map(|b| drop(behaviours.install(b))));
        }
        let mut policies = self.policies.clone();
        for f in &self.policy_files {
            keep(SourceFile::read(f).map(|s| policies.push(s)));
        }
        for p in &policies {
            keep(Policies::check(p).map(drop));
        }
        if let Some(first) = problems.into_iter().reduce(merge) {
            return Err(AgentError::Load(first));
        }
        Ok(Checked {
            abilities,
            behaviours,
            policies,
            predictors: Vec::new(),
        })
    }

    /// The cross-references between the parts: the main behaviour and every service's
    /// behaviour are among the behaviours.
    fn check_references(&self, behaviours: &Behaviours) -> Result<(), AgentError> {
        let mut missing = Vec::new();
        if let Some(m) = &self.main
            && behaviours.get(m).is_none()
        {
            let at = self.origin.as_ref().and_then(|o| o.main);
            missing.push((at, "the main behaviour".to_owned(), m.clone()));
        }
        for s in &self.services {
            if let Some(b) = &s.behaviour
                && behaviours.get(b).is_none()
            {
                let at = self
                    .origin
                    .as_ref()
                    .and_then(|o| o.services.get(&s.name).copied());
                missing.push((at, format!("service `{}`", s.name), b.clone()));
            }
        }
        let Some((_, needed_by, behaviour)) = missing.first().cloned() else {
            return Ok(());
        };
        match &self.origin {
            Some(o) => {
                let problems = missing
                    .into_iter()
                    .map(|(at, by, b)| {
                        o.error(
                            at,
                            format!("{by} is implemented by behaviour `{b}`, which the agent does not have (list its file under `behaviours`, or offer the service in knows-who modes only)"),
                        )
                    })
                    .collect();
                Err(AgentError::Load(LoadError::Invalid(problems)))
            }
            None => Err(AgentError::MissingBehaviour {
                needed_by,
                behaviour,
            }),
        }
    }

    /// The predictors the manifest names, made from their kinds.
    fn make_predictors(&self) -> Result<Vec<Box<dyn Predictor>>, AgentError> {
        let mut made = Vec::new();
        let mut problems = Vec::new();
        for spec in &self.predictor_specs {
            let params = Value::from(spec.params.clone());
            match self.kinds.make(&spec.kind, &spec.name, &params) {
                Ok(p) => made.push(p),
                Err(e) => match &self.origin {
                    Some(o) => problems.push(o.error(Some(spec.at), e.to_string())),
                    None => return Err(AgentError::Prediction(e)),
                },
            }
        }
        if !problems.is_empty() {
            return Err(AgentError::Load(LoadError::Invalid(problems)));
        }
        Ok(made)
    }

    /// The learners the manifest (or builder) names: parameters, kinds, and that the agent
    /// has each one's service and variants.
    fn check_learners(&self, behaviours: &Behaviours) -> Result<(), AgentError> {
        let mut problems = Vec::new();
        for spec in &self.learner_specs {
            let params = Value::from(spec.params.clone());
            let Err(e) = self.check_learner(spec, &params, behaviours) else {
                continue;
            };
            match &self.origin {
                Some(o) => problems.push(o.error(Some(spec.at), e.to_string())),
                None => return Err(AgentError::Learner(e)),
            }
        }
        if !problems.is_empty() {
            return Err(AgentError::Load(LoadError::Invalid(problems)));
        }
        Ok(())
    }

    fn check_learner(
        &self,
        spec: &PredictorSpec,
        params: &Value,
        behaviours: &Behaviours,
    ) -> Result<(), PlugError> {
        let has = Has {
            service: &|s| self.services.iter().any(|o| o.name == s),
            behaviour: &|b| behaviours.get(b).is_some(),
        };
        Plugged::new(&self.kinds, &spec.kind, &spec.name, params, &has).map(drop)
    }

    /// Everything checked, in one pass: files, then references, then predictors.
    fn check_all(&mut self) -> Result<Checked, AgentError> {
        let checked = self.load_parts()?;
        // Behaviours given as values were validated when they were made.
        for b in std::mem::take(&mut self.behaviours) {
            checked.behaviours.install(b);
        }
        self.check_references(&checked.behaviours)?;
        self.check_learners(&checked.behaviours)?;
        Ok(Checked {
            predictors: self.make_predictors()?,
            ..checked
        })
    }

    /// Starts the agent on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// Anything [`check`](AgentBuilder::check) finds, a name already taken on the network, or
    /// no tokio runtime. Nothing is started, and the agent was never visible to others, when
    /// an error is returned.
    pub async fn spawn(mut self) -> Result<AgentHandle, AgentError> {
        tokio::runtime::Handle::try_current().map_err(|_| AgentError::NoRuntime)?;
        let checked = self.check_all()?;
        // One copy of the name for every part that keeps it.
        let name: Arc<str> = self.name.as_str().into();
        let bus = self
            .bus
            .clone()
            .unwrap_or_else(|| Bus::named(Arc::clone(&name)));
        let knowledge = Knowledge::new(bus.clone());
        if let Some(snapshot) = &self.known_providers {
            knowledge.providers().restore(snapshot);
        }
        let choice = ChoiceCell::new(Arc::clone(&self.negotiation.choice));
        let learners = crate::prediction::learner::Learners::default();
        if bus.is_closed() {
            return Err(AgentError::BusClosed);
        }
        let policies = Policies::new(
            knowledge.clone(),
            bus.clone(),
            checked.behaviours.clone(),
            choice.clone(),
            learners.clone(),
            self.limits,
        );
        for s in &checked.policies {
            policies.load(s.clone())?;
        }
        // Only now, with nothing left to fail but the name, does the agent show itself.
        let transport = self
            .transport
            .clone()
            .unwrap_or_else(|| Arc::new(Network::new()));
        let membership = transport.join(&self.name)?;
        for (k, v) in &self.attributes {
            knowledge.set_attribute(k, v.clone());
        }
        for (service, e) in &self.economics {
            knowledge.set_economics(service, *e);
        }
        let parts = Wired {
            name,
            bus,
            knowledge,
            choice,
            policies,
            learners,
            transport,
            membership,
        };
        let handle = AgentHandle::from_inner(self.wire(parts, &checked));
        let mut plugged = self.predictors;
        plugged.extend(checked.predictors);
        handle
            .start(self.facts, self.services, self.requires, self.main, plugged)
            .await;
        for spec in &self.learner_specs {
            let params = Value::from(spec.params.clone());
            // Checked above; what can still fail is the agent stopping meanwhile.
            if let Err(e) = handle.plug_learner(&spec.kind, &spec.name, &params).await {
                tracing::warn!(agent = %self.name, "{e}");
            }
        }
        Ok(handle)
    }

    /// The agent's parts, wired to each other: the runtime its behaviours run on, the
    /// negotiator that is its one way to services, its predictors, and its lifecycle.
    fn wire(&self, w: Wired, checked: &Checked) -> Arc<AgentInner> {
        let cancel = CancellationToken::new();
        let stop_loops = CancellationToken::new();
        let tasks = TaskTracker::new();
        let predictors = Predictors::new(
            w.bus.clone(),
            self.kinds.clone(),
            stop_loops.clone(),
            tasks.clone(),
        );
        let runtime = Runtime::new(RuntimeParts {
            agent: Arc::clone(&w.name),
            bus: w.bus.clone(),
            abilities: checked.abilities.clone(),
            behaviours: checked.behaviours.clone(),
            engine: script::shared(&self.limits),
            budget: self.limits.budget,
            limits: self.instance_limits,
            cancel: cancel.clone(),
        });
        let negotiator = Negotiator::new(NegotiationParts {
            agent: Arc::clone(&w.name),
            transport: w.transport,
            knowledge: w.knowledge.clone(),
            bus: w.bus.clone(),
            runtime: runtime.clone(),
            behaviours: checked.behaviours.clone(),
            abilities: checked.abilities.clone(),
            config: self.negotiation.clone(),
            choice: w.choice,
        })
        .install();
        Arc::new(AgentInner {
            name: w.name,
            goal: self.goal.clone(),
            bus: w.bus,
            knowledge: w.knowledge,
            abilities: checked.abilities.clone(),
            runtime,
            policies: w.policies,
            predictors,
            learners: w.learners,
            negotiator,
            main: Mutex::new(None),
            main_running: AtomicBool::new(false),
            sampler_running: AtomicBool::new(false),
            stop_loops,
            lifecycle: Mutex::new(Tracker::new()),
            state: super::lifecycle::Announced::new(),
            tasks,
            cancel,
            membership: Mutex::new(Some(w.membership)),
            grace: self.grace,
        })
    }
}

/// Two load errors as one, their problems together.
fn merge(a: LoadError, b: LoadError) -> LoadError {
    match (a, b) {
        (LoadError::Invalid(mut x), LoadError::Invalid(y)) => {
            x.extend(y);
            LoadError::Invalid(x)
        }
        (read @ LoadError::Read { .. }, _) | (_, read @ LoadError::Read { .. }) => read,
    }
}
