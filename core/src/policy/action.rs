//! The SelfLet action list: what a policy can do to its agent.
//!
//! Rules do not change the agent while they run: each action function queues an [`Action`],
//! and the agent applies a rule's actions, in order, after the rule returned without error.
//! A rule that fails therefore changes nothing.

use crate::choice::Choice;
use crate::knowledge::Service;
use crate::offer::{OfferMode, OfferModes};
use crate::value::Value;

/// A change to a behaviour, from the "modify a behaviour" action.
#[derive(Debug, Clone, PartialEq)]
pub enum BehaviourChange {
    /// Add or replace a state (its YAML as a value).
    AddState {
        /// The state's name.
        name: String,
        /// The state, as it would be written in YAML.
        state: Value,
    },
    /// Remove a state.
    RemoveState {
        /// The state's name.
        name: String,
    },
    /// Make `from` go to `to` on `trigger`.
    AddTransition {
        /// The source state.
        from: String,
        /// `done`, `error` or a topic.
        trigger: String,
        /// The target state.
        to: String,
    },
    /// Remove `from`'s transitions on `trigger`.
    RemoveTransition {
        /// The source state.
        from: String,
        /// `done`, `error` or a topic.
        trigger: String,
    },
}

/// One action of the SelfLet action list, as queued by a policy rule.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Ask for a service in one of the given modes, in order of preference.
    RequestService {
        /// The service.
        service: String,
        /// Preferred modes.
        modes: Vec<OfferMode>,
        /// The input, for `can_do`.
        input: Value,
    },
    /// Change how a service is offered.
    SetOfferModes {
        /// The service.
        service: String,
        /// The new modes.
        modes: OfferModes,
    },
    /// Change how a service is asked for, by default.
    SetAskModes {
        /// The service.
        service: String,
        /// Modes, in order of preference.
        modes: Vec<OfferMode>,
    },
    /// Offer a service implemented by an installed behaviour.
    InstallService(Service),
    /// Install scripted abilities from Rhai source.
    InstallAbility {
        /// A name for the script (shown in errors).
        name: String,
        /// The Rhai source.
        script: String,
    },
    /// Install (or replace) a behaviour from YAML source.
    InstallBehaviour {
        /// The YAML source.
        yaml: String,
    },
    /// Modify an installed behaviour.
    ModifyBehaviour {
        /// The behaviour.
        behaviour: String,
        /// The change.
        change: BehaviourChange,
    },
    /// Enable or disable a behaviour.
    EnableBehaviour {
        /// The behaviour.
        behaviour: String,
        /// Whether it may start new instances.
        enabled: bool,
    },
    /// Change the main behaviour.
    SetMainBehaviour {
        /// The behaviour.
        behaviour: String,
    },
    /// Enable or disable interaction with a neighbour.
    SetNeighbour {
        /// The neighbour agent.
        agent: String,
        /// Whether to talk to it.
        enabled: bool,
    },
    /// Set a knowledge fact.
    SetFact {
        /// The key.
        key: String,
        /// The value.
        value: Value,
    },
    /// Remove a knowledge fact.
    RemoveFact {
        /// The key.
        key: String,
    },
    /// Publish an event on the agent's bus.
    Publish {
        /// The topic.
        topic: String,
        /// The payload.
        payload: Value,
    },
    /// Plug a predictor in.
    PlugPredictor {
        /// The predictor kind.
        kind: String,
        /// The instance name.
        name: String,
        /// Its parameters.
        params: Value,
    },
    /// Unplug a predictor.
    UnplugPredictor {
        /// The instance name.
        name: String,
    },
    /// Plug a learner in.
    PlugLearner {
        /// The learner kind.
        kind: String,
        /// The instance name.
        name: String,
        /// Its parameters.
        params: Value,
    },
    /// Unplug a learner.
    UnplugLearner {
        /// The instance name.
        name: String,
    },
    /// Veto a learner's composition, or lift the veto.
    Veto {
        /// The learner.
        learner: String,
        /// The composition, as the learner names it (`variant@h1+h2`).
        composition: String,
        /// Veto (true) or lift it (false).
        vetoed: bool,
    },
    /// Add or replace a policy file.
    InstallPolicy {
        /// The policy's name.
        name: String,
        /// The Rhai source.
        script: String,
    },
    /// Remove a policy file.
    RemovePolicy {
        /// The policy's name.
        name: String,
    },
    /// Redirect a fraction of a service's incoming requests to neighbours, in turn (0 or no
    /// neighbour stops).
    Redirect {
        /// The service.
        service: String,
        /// The neighbours.
        neighbours: Vec<String>,
        /// The fraction, 0 to 1.
        fraction: f64,
    },
    /// Forget a learned service (its behaviour and the abilities its lesson installed).
    ForgetService {
        /// The service.
        service: String,
    },
    /// Let later lessons replace what was taught of a service (or stop letting them).
    AllowUpgrade {
        /// The service.
        service: String,
        /// Whether upgrades are allowed.
        allowed: bool,
    },
    /// Switch provider choice to this strategy (what the previous one learned is dropped).
    SetChoice(Choice),
    /// Teach a service to a neighbour, unasked.
    Teach {
        /// The service.
        service: String,
        /// The neighbour.
        neighbour: String,
    },
    /// Write a line to the agent's log.
    Log {
        /// The message.
        message: String,
    },
}

impl std::fmt::Display for Action {
    /// One line saying what the action does, as the console's timeline and the logs show it
    /// (the sources an action installs are not repeated).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let modes = |m: &[OfferMode]| m.iter().map(ToString::to_string).collect::<Vec<_>>();
        match self {
            Action::RequestService {
                service, modes: m, ..
            } => {
                write!(f, "request {service} as {}", modes(m).join(" or "))
            }
            Action::SetOfferModes { service, modes } => write!(f, "offer {service} as {modes}"),
            Action::SetAskModes { service, modes: m } => {
                write!(f, "ask for {service} as {}", modes(m).join(" or "))
            }
            Action::InstallService(s) => write!(f, "offer new service {}", s.name),
            Action::InstallAbility { name, .. } => write!(f, "install abilities {name}"),
            Action::InstallBehaviour { .. } => write!(f, "install a behaviour"),
            Action::ModifyBehaviour { behaviour, .. } => write!(f, "modify behaviour {behaviour}"),
            Action::EnableBehaviour { behaviour, enabled } => {
                write!(f, "{} behaviour {behaviour}", on_off(*enabled))
            }
            Action::SetMainBehaviour { behaviour } => write!(f, "main behaviour {behaviour}"),
            Action::SetNeighbour { agent, enabled } => {
                write!(f, "{} neighbour {agent}", on_off(*enabled))
            }
            Action::SetFact { key, .. } => write!(f, "set fact {key}"),
            Action::RemoveFact { key } => write!(f, "remove fact {key}"),
            Action::Publish { topic, .. } => write!(f, "publish {topic}"),
            Action::PlugPredictor { kind, name, .. } => write!(f, "plug predictor {name} ({kind})"),
            Action::UnplugPredictor { name } => write!(f, "unplug predictor {name}"),
            Action::PlugLearner { kind, name, .. } => write!(f, "plug learner {name} ({kind})"),
            Action::UnplugLearner { name } => write!(f, "unplug learner {name}"),
            Action::Veto {
                learner,
                composition,
                vetoed,
            } => {
                let what = if *vetoed { "veto" } else { "lift veto on" };
                write!(f, "{what} {composition} of {learner}")
            }
            Action::InstallPolicy { name, .. } => write!(f, "install policy {name}"),
            Action::RemovePolicy { name } => write!(f, "remove policy {name}"),
            Action::Redirect {
                service,
                neighbours,
                fraction,
            } => write!(
                f,
                "redirect {:.0} % of {service} to {}",
                fraction * 100.0,
                neighbours.join(", ")
            ),
            Action::ForgetService { service } => write!(f, "forget {service}"),
            Action::AllowUpgrade { service, allowed } => {
                write!(
                    f,
                    "{} upgrades of {service}",
                    if *allowed { "allow" } else { "refuse" }
                )
            }
            Action::SetChoice(c) => write!(f, "provider choice {c:?}"),
            Action::Teach { service, neighbour } => write!(f, "teach {service} to {neighbour}"),
            Action::Log { message } => write!(f, "log {message:?}"),
        }
    }
}

fn on_off(enabled: bool) -> &'static str {
    if enabled { "enable" } else { "disable" }
}
