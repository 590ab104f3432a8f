//! The agent's side of its policies: feeding them events and applying the actions they take.

use crate::agent::AgentHandle;
use crate::behaviour::{Behaviour, BehaviourError};
use crate::knowledge::UnknownService;
use crate::negotiation::{ForgetError, TeachError};
use crate::policy::{Action, BehaviourChange, Fired, Policies};
use crate::prediction::PredictionError;
use crate::source::{LoadError, SourceFile};
use crate::topic;
use crate::trace;
use tracing::Instrument;

/// Why an action of the SelfLet action list could not be applied. Nothing of it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    /// What the action names does not exist.
    #[error("no {what} `{name}`")]
    NotFound {
        /// `behaviour`, `service`, `policy`, `predictor`, ...
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// What it installs does not validate.
    #[error(transparent)]
    Invalid(#[from] LoadError),
    /// A behaviour it names cannot run.
    #[error(transparent)]
    Behaviour(#[from] BehaviourError),
    /// Teaching failed.
    #[error(transparent)]
    Teach(#[from] TeachError),
    /// Forgetting failed.
    #[error(transparent)]
    Forget(#[from] ForgetError),
    /// Plugging a predictor failed.
    #[error(transparent)]
    Prediction(#[from] PredictionError),
    /// A learner could not be plugged.
    #[error(transparent)]
    Learner(#[from] crate::prediction::learner::PlugError),
    /// The agent has stopped.
    #[error("the agent has stopped")]
    Stopped,
}

impl From<UnknownService> for ActionError {
    fn from(e: UnknownService) -> ActionError {
        ActionError::NotFound {
            what: "service",
            name: e.0,
        }
    }
}

fn not_found(what: &'static str, name: String) -> ActionError {
    ActionError::NotFound { what, name }
}

impl AgentHandle {
    /// The agent's policies: load, replace and remove policy files while it runs.
    pub fn policies(&self) -> &Policies {
        &self.inner().policies
    }

    /// Loads (or replaces) a policy file. A file that does not compile changes nothing.
    pub fn load_policy(&self, source: SourceFile) -> Result<Vec<String>, LoadError> {
        let rules = self.policies().load(source)?;
        self.ensure_load_sampler();
        Ok(rules)
    }

    /// Feeds events to the rules and applies what fires, until the agent stops: from when the
    /// first rule is loaded, so that an agent without policies keeps no task for them.
    pub(crate) fn start_policies(&self) {
        // Weak: the policies keep the listener, and the agent keeps the policies. The runtime
        // is the agent's: a rule may be loaded from a thread outside it.
        let agent = self.weak();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.policies().when_listening(move || {
            if let Some(inner) = agent.upgrade() {
                AgentHandle::from_inner(inner).feed_policies(&runtime);
            }
        });
    }

    fn feed_policies(&self, runtime: &tokio::runtime::Handle) {
        let tasks = &self.inner().tasks;
        let Some(events) = self.policies().events().filter(|_| !tasks.is_closed()) else {
            return;
        };
        let agent = self.clone();
        let cancel = self.loops_token();
        let feed = async move {
            loop {
                let event = tokio::select! {
                    _ = cancel.cancelled() => break,
                    ev = events.recv() => match ev {
                        Some(ev) => ev,
                        None => break,
                    },
                };
                for fired in agent.policies().evaluate(&event) {
                    // The actions continue the trace of the event the rule reacted to, or
                    // start one: a teaching or a redirect they cause is one chain with it.
                    let id = event.trace().unwrap_or_default();
                    let span = tracing::info_span!("rule", agent = %agent.name(), rule = %fired.rule, trace = %id);
                    let carried = trace::scope(id, agent.carry_out(event.topic(), fired));
                    // Boxed: most agents never fire a rule, and the action list's future is
                    // large.
                    Box::pin(carried.instrument(span)).await;
                }
            }
        };
        tasks.spawn_on(feed, runtime);
    }

    /// Says that a rule fired, then applies its actions in order.
    async fn carry_out(&self, on: &str, fired: Fired) {
        let event = || topic::PolicyFired {
            rule: fired.rule.clone(),
            on: on.to_owned(),
            actions: fired.actions.iter().map(ToString::to_string).collect(),
        };
        let _ = self.bus().emit_with(event).await;
        for action in fired.actions {
            if let Err(e) = self.apply(action).await {
                tracing::warn!(agent = %self.name(), rule = %fired.rule, "policy action failed: {e}");
            }
        }
    }

    /// Applies one action of the SelfLet action list.
    ///
    /// # Errors
    ///
    /// What the action refers to does not exist, what it installs does not validate, or the
    /// part it needs is not wired in this agent.
    pub async fn apply(&self, action: Action) -> Result<(), ActionError> {
        let k = self.knowledge();
        match action {
            Action::SetOfferModes { service, modes } => {
                k.set_modes(&service, modes).await?;
                Ok(())
            }
            Action::SetAskModes { service, modes } => {
                k.set_ask_modes(&service, modes);
                Ok(())
            }
            Action::InstallService(service) => {
                if let Some(b) = &service.behaviour
                    && self.behaviours().get(b).is_none()
                {
                    return Err(not_found("behaviour", b.clone()));
                }
                k.offer(service).await;
                Ok(())
            }
            Action::InstallAbility { name, script } => {
                self.abilities()
                    .load_script(SourceFile::new(name, script))?;
                Ok(())
            }
            Action::InstallBehaviour { yaml } => {
                let b = Behaviour::parse(SourceFile::new("<installed by a policy>", yaml))?;
                self.install_behaviour(b);
                Ok(())
            }
            Action::ModifyBehaviour { behaviour, change } => {
                let current = self
                    .behaviours()
                    .get(&behaviour)
                    .ok_or_else(|| not_found("behaviour", behaviour.clone()))?;
                let modified = match change {
                    BehaviourChange::AddState { name, state } => current.with_state(&name, state),
                    BehaviourChange::RemoveState { name } => current.without_state(&name),
                    BehaviourChange::AddTransition { from, trigger, to } => {
                        current.with_transition(&from, &trigger, &to)
                    }
                    BehaviourChange::RemoveTransition { from, trigger } => {
                        current.without_transition(&from, &trigger)
                    }
                }?;
                self.install_behaviour(modified);
                Ok(())
            }
            Action::EnableBehaviour { behaviour, enabled } => {
                if self.behaviours().set_enabled(&behaviour, enabled) {
                    Ok(())
                } else {
                    Err(not_found("behaviour", behaviour))
                }
            }
            Action::SetMainBehaviour { behaviour } => Ok(self.set_main_behaviour(&behaviour)?),
            Action::SetNeighbour { agent, enabled } => {
                k.set_neighbour_enabled(&agent, enabled);
                Ok(())
            }
            Action::SetFact { key, value } => {
                k.set_fact(&key, value).await;
                Ok(())
            }
            Action::RemoveFact { key } => {
                k.remove_fact(&key).await;
                Ok(())
            }
            Action::Publish { topic, payload } => self
                .publish(&topic, payload)
                .await
                .map_err(|_| ActionError::Stopped),
            Action::InstallPolicy { name, script } => {
                self.load_policy(SourceFile::new(name, script))?;
                Ok(())
            }
            Action::RemovePolicy { name } => {
                if self.policies().remove(&name) {
                    Ok(())
                } else {
                    Err(not_found("policy", name))
                }
            }
            Action::RequestService {
                service,
                modes,
                input,
            } => {
                // A request can take a time-out or more: it runs as agent work of its own, so
                // the policy engine goes on with the next event.
                // It stays in the rule's trace: the teaching it may bring is part of the chain.
                let agent = self.clone();
                let id = trace::current().unwrap_or_default();
                let span = tracing::Span::current();
                self.spawn_task(move |_| {
                    let request = async move {
                        match agent.request_service(&service, &modes, input).await {
                            Ok(outcome) => tracing::info!(agent = %agent.name(), %service, ?outcome, "requested service obtained"),
                            Err(e) => tracing::warn!(agent = %agent.name(), %service, "request failed: {e}"),
                        }
                    };
                    trace::scope(id, request).instrument(span)
                });
                Ok(())
            }
            Action::Redirect {
                service,
                neighbours,
                fraction,
            } => {
                self.redirect_over(&service, &neighbours, fraction);
                Ok(())
            }
            Action::Teach { service, neighbour } => Ok(self.teach(&service, &neighbour).await?),
            Action::ForgetService { service } => {
                self.forget(&service).await?;
                Ok(())
            }
            Action::SetChoice(choice) => {
                self.set_choice(choice.strategy(fastrand::u64(..)));
                Ok(())
            }
            Action::AllowUpgrade { service, allowed } => {
                k.allow_upgrade(&service, allowed);
                Ok(())
            }
            Action::PlugPredictor { kind, name, params } => {
                Ok(self.plug_predictor(&kind, &name, &params)?)
            }
            Action::UnplugPredictor { name } => {
                if self.predictors().unplug(&name) {
                    Ok(())
                } else {
                    Err(not_found("predictor", name))
                }
            }
            Action::PlugLearner { kind, name, params } => {
                Ok(self.plug_learner(&kind, &name, &params).await?)
            }
            Action::UnplugLearner { name } => {
                if self.learners().unplug(&name) {
                    Ok(())
                } else {
                    Err(not_found("learner", name))
                }
            }
            Action::Veto {
                learner,
                composition,
                vetoed,
            } => {
                if self.learners().veto(&learner, &composition, vetoed) {
                    Ok(())
                } else {
                    Err(not_found(
                        "learner composition",
                        format!("{learner}: {composition}"),
                    ))
                }
            }
            Action::Log { message } => {
                tracing::info!(agent = %self.name(), "{message}");
                Ok(())
            }
        }
    }
}
