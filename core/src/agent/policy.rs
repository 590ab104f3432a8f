//! The agent's side of its policies: feeding them events and applying the actions they take.

use crate::agent::AgentHandle;
use crate::behaviour::Behaviour;
use crate::policy::{Action, BehaviourChange, Policies};
use crate::source::{LoadError, SourceFile};

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

    /// Feeds events to the rules and applies what fires, until the agent stops.
    pub(crate) fn start_policies(&self) {
        let agent = self.clone();
        let events = self.policies().events();
        let cancel = self.loops_token();
        self.spawn_task(|_| async move {
            loop {
                let event = tokio::select! {
                    _ = cancel.cancelled() => break,
                    ev = events.recv() => match ev {
                        Some(ev) => ev,
                        None => break,
                    },
                };
                for fired in agent.policies().evaluate(&event) {
                    for action in fired.actions {
                        if let Err(e) = agent.apply(action).await {
                            tracing::warn!(agent = %agent.name(), rule = %fired.rule, "policy action failed: {e}");
                        }
                    }
                }
            }
        });
    }

    /// Applies one action of the SelfLet action list.
    ///
    /// # Errors
    ///
    /// What the action refers to does not exist, what it installs does not validate, or the
    /// part it needs is not wired in this agent.
    pub async fn apply(&self, action: Action) -> Result<(), String> {
        let k = self.knowledge();
        match action {
            Action::SetOfferModes { service, modes } => k
                .set_modes(&service, modes)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Action::SetAskModes { service, modes } => {
                k.set_ask_modes(&service, modes);
                Ok(())
            }
            Action::InstallService(service) => {
                if let Some(b) = &service.behaviour
                    && self.behaviours().get(b).is_none()
                {
                    return Err(format!(
                        "service `{}` needs behaviour `{b}`, which is not installed",
                        service.name
                    ));
                }
                k.offer(service).await;
                Ok(())
            }
            Action::InstallAbility { name, script } => self
                .abilities()
                .load_script(SourceFile::new(name, script))
                .map(drop)
                .map_err(|e| e.to_string()),
            Action::InstallBehaviour { yaml } => {
                let b = Behaviour::parse(SourceFile::new("<installed by a policy>", yaml))
                    .map_err(|e| e.to_string())?;
                self.install_behaviour(b);
                Ok(())
            }
            Action::ModifyBehaviour { behaviour, change } => {
                let current = self
                    .behaviours()
                    .get(&behaviour)
                    .ok_or_else(|| format!("no behaviour `{behaviour}`"))?;
                let modified = match change {
                    BehaviourChange::AddState { name, state } => current.with_state(&name, state),
                    BehaviourChange::RemoveState { name } => current.without_state(&name),
                    BehaviourChange::AddTransition { from, trigger, to } => {
                        current.with_transition(&from, &trigger, &to)
                    }
                    BehaviourChange::RemoveTransition { from, trigger } => {
                        current.without_transition(&from, &trigger)
                    }
                }
                .map_err(|e| e.to_string())?;
                self.install_behaviour(modified);
                Ok(())
            }
            Action::EnableBehaviour { behaviour, enabled } => {
                if self.behaviours().set_enabled(&behaviour, enabled) {
                    Ok(())
                } else {
                    Err(format!("no behaviour `{behaviour}`"))
                }
            }
            Action::SetMainBehaviour { behaviour } => self
                .set_main_behaviour(&behaviour)
                .map_err(|e| e.to_string()),
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
                .map_err(|e| e.to_string()),
            Action::InstallPolicy { name, script } => self
                .load_policy(SourceFile::new(name, script))
                .map(drop)
                .map_err(|e| e.to_string()),
            Action::RemovePolicy { name } => {
                if self.policies().remove(&name) {
                    Ok(())
                } else {
                    Err(format!("no policy `{name}`"))
                }
            }
            Action::RequestService {
                service,
                modes,
                input,
            } => {
                // A request can take a time-out or more: it runs as agent work of its own, so
                // the policy engine goes on with the next event.
                let agent = self.clone();
                self.spawn_task(|_| async move {
                    match agent.request_service(&service, &modes, input).await {
                        Ok(outcome) => tracing::info!(agent = %agent.name(), %service, ?outcome, "requested service obtained"),
                        Err(e) => tracing::warn!(agent = %agent.name(), %service, "request failed: {e}"),
                    }
                });
                Ok(())
            }
            Action::Redirect {
                service,
                neighbour,
                fraction,
            } => {
                self.redirect(&service, &neighbour, fraction);
                Ok(())
            }
            Action::Teach { service, neighbour } => self.teach(&service, &neighbour).await,
            Action::PlugPredictor { kind, name, params } => self
                .plug_predictor(&kind, &name, &params)
                .map_err(|e| e.to_string()),
            Action::UnplugPredictor { name } => {
                if self.predictors().unplug(&name) {
                    Ok(())
                } else {
                    Err(format!("no predictor `{name}`"))
                }
            }
            Action::Log { message } => {
                tracing::info!(agent = %self.name(), "{message}");
                Ok(())
            }
        }
    }
}
