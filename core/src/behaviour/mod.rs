//! The Behaviour Manager: YAML statecharts, their validation and their interpreter.
//!
//! A SelfLet's main behaviour and each service it offers are behaviours: statecharts users
//! write in YAML (documented, with a JSON Schema, in `behaviors/README.md`). They are loaded at
//! run time — from files, from policies, from peers that teach them — so the interpreter runs
//! over data:
//!
//! ```yaml
//! behaviour: service1
//! requires: [service2, service3]
//! initial: call_s2
//! states:
//!   call_s2:
//!     do: { call: service2, args: { n: "input.n" }, save: r2 }
//!     on: { done: call_s3, error: failed }
//!   call_s3:
//!     do: { call: service3, save: r3 }
//!     on: { done: finish }
//!   finish: { final: true, output: "r2 + r3" }
//!   failed: { final: true, error: '"service2 failed"' }
//! ```
//!
//! Loading is in two stages: serde structs that mirror the file, then [validation](Behaviour::parse)
//! into a [`Behaviour`] whose expressions are compiled once. Every problem carries file, line
//! and column.
//!
//! # Semantics
//!
//! The points SCXML and XState users trip over, fixed here:
//!
//! * **run-to-completion**: an instance handles one trigger (its state's completion, an event,
//!   a timer) completely — exit actions, transition actions, entry actions — before the next;
//! * **first enabled transition wins**: for one trigger, transitions are tried in document
//!   order and the first whose guard holds is taken; for an event matched by several topic
//!   patterns, the most specific pattern (exact, then longest prefix) is tried first;
//! * **completion**: a state with a `do` completes when it finishes (`done`, or `error` if it
//!   fails); a state without one completes as soon as it is entered;
//! * **`always`** (eventless) transitions are tried on entering a state, before its `do`;
//! * **`after`** timers belong to their state: armed on entry, cancelled on exit (so a
//!   self-transition re-arms them);
//! * an event no transition of the current state takes is discarded;
//! * an instance that can no longer move (its `do` finished, no transition was enabled and it
//!   waits for no event or timer) ends with an error instead of hanging;
//! * a failing action or guard ends the instance with an error — unless the failing action is
//!   the state's `do` and the state has an `error` transition.
//!
//! # Containment
//!
//! Behaviours come from files, policies and peers, so none may hold the process. Validation
//! refuses states that are certain to loop without waiting (a cycle of states that complete at
//! once through unguarded transitions). At run time every instance yields to the runtime at
//! each transition, may take at most [`InstanceLimits::steps`] transitions per trigger (its
//! start, an event or a timer), and an instance that runs a service has a time limit
//! ([`InstanceLimits::time`], from the manifest's `limits` or the service's own `time_limit`).
//! Guards and expressions run in the Rhai sandbox under the same wall-clock budget as
//! policies. An instance past a limit ends with an [`ErrorKind::Limit`] error that names the
//! behaviour, its state and the limit, and is counted in
//! [`LoadCounters::stopped_by_limits`]; the agent's other work goes on.

mod format;
pub mod graph;
mod instance;
mod model;
mod parsed;
mod runtime;
mod validate;
mod vars;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use rhai::Engine;

pub use model::{Behaviour, ModelError, StateInfo};
pub(crate) use runtime::{BoxFuture, Runtime, RuntimeParts, ServiceCaller};
pub use runtime::{
    DEFAULT_SERVICE_TIME, DEFAULT_STEPS, InstanceLimits, LoadCounters, MAX_CALL_DEPTH,
};

use crate::error::BoxError;
use crate::script::{self, Limits};
use crate::source::{LoadError, SourceFile};
use crate::sync::{read, write};
use crate::value::{Map, Value};

impl Behaviour {
    /// Validates behaviour text. Every problem found is reported, each with its location.
    ///
    /// A source validated lately — the same name and text — gives the behaviour made of it
    /// then, sharing its model: reading one file for each of many agents, or learning one
    /// package many times, validates it once.
    pub fn parse(source: SourceFile) -> Result<Behaviour, LoadError> {
        parsed::parse(source, |s| validate::validate(s, &checker()))
    }

    /// Reads and validates a behaviour file.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Behaviour, LoadError> {
        Behaviour::parse(SourceFile::read(path)?)
    }

    /// A modified copy: the behaviour's YAML is read as a [`Value`] tree, `edit` changes it,
    /// and the result is validated like any file (under the name `<name> (modified)`). The
    /// original is untouched, whatever happens; an error of `edit` is reported as a problem
    /// of the modified file.
    pub fn modify(
        &self,
        edit: impl FnOnce(&mut Value) -> Result<(), BoxError>,
    ) -> Result<Behaviour, LoadError> {
        let name = format!("{} (modified)", self.source.name());
        let fail = |m: String| LoadError::from(SourceFile::new(name.clone(), "").error(m));
        let mut tree: Value =
            crate::source::from_yaml(self.source.text()).map_err(|e| fail(e.to_string()))?;
        edit(&mut tree).map_err(|e| fail(e.to_string()))?;
        let text = serde_saphyr::to_string(&tree).map_err(|e| fail(e.to_string()))?;
        Behaviour::parse(SourceFile::new(name.clone(), text))
    }

    /// A copy with a state added or replaced; `state` is the state's YAML as a value.
    pub fn with_state(&self, name: &str, state: Value) -> Result<Behaviour, LoadError> {
        self.modify(|tree| {
            states(tree)?.insert(name.to_owned(), state);
            Ok(())
        })
    }

    /// A copy without a state (transitions into it must be removed too, or validation fails).
    pub fn without_state(&self, name: &str) -> Result<Behaviour, LoadError> {
        self.modify(|tree| {
            states(tree)?
                .remove(name)
                .map(drop)
                .ok_or_else(|| format!("no state `{name}`").into())
        })
    }

    /// A copy where `from` goes to `to` on `trigger` (`done`, `error` or a topic), replacing
    /// the transitions it had on that trigger.
    pub fn with_transition(
        &self,
        from: &str,
        trigger: &str,
        to: &str,
    ) -> Result<Behaviour, LoadError> {
        self.modify(|tree| {
            let state = states(tree)?
                .get_mut(from)
                .ok_or_else(|| format!("no state `{from}`"))?;
            let Value::Map(state) = state else {
                return Err(format!("state `{from}` is not a map").into());
            };
            let on = state
                .entry("on".to_owned())
                .or_insert_with(|| Value::Map(Map::new()));
            let Value::Map(on) = on else {
                return Err(format!("`on` of state `{from}` is not a map").into());
            };
            on.insert(trigger.to_owned(), Value::from(to));
            Ok(())
        })
    }

    /// A copy where `from` no longer reacts to `trigger`.
    pub fn without_transition(&self, from: &str, trigger: &str) -> Result<Behaviour, LoadError> {
        self.modify(|tree| {
            let state = states(tree)?
                .get_mut(from)
                .ok_or_else(|| format!("no state `{from}`"))?;
            let removed = match state {
                Value::Map(s) => match s.get_mut("on") {
                    Some(Value::Map(on)) => on.remove(trigger).is_some(),
                    _ => false,
                },
                _ => false,
            };
            if removed {
                Ok(())
            } else {
                Err(format!("state `{from}` has no transition on `{trigger}`").into())
            }
        })
    }
}

fn states(tree: &mut Value) -> Result<&mut Map, BoxError> {
    match tree {
        Value::Map(m) => match m.get_mut("states") {
            Some(Value::Map(s)) => Ok(s),
            _ => Err("the behaviour has no `states` map".into()),
        },
        _ => Err("a behaviour is a map".into()),
    }
}

/// The engine validation compiles expressions with: only compilation limits matter there.
fn checker() -> Arc<Engine> {
    script::shared(&Limits::default())
}

/// What kind of failure ended a behaviour instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No behaviour of that name is installed, or it is disabled.
    NotFound,
    /// An action failed (a service call, an ability, an expression).
    Action,
    /// A guard failed or did not give a bool.
    Guard,
    /// The instance reached a final state with an `error`.
    Final,
    /// The instance could no longer move.
    Stuck,
    /// The instance went past one of its [`InstanceLimits`].
    Limit,
    /// The agent stopped while the instance ran.
    Cancelled,
}

/// A behaviour instance that ended without an output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("behaviour `{behaviour}` failed in state `{state}`: {message}")]
pub struct BehaviourError {
    behaviour: String,
    state: String,
    kind: ErrorKind,
    message: String,
}

impl BehaviourError {
    pub(crate) fn new(
        behaviour: &str,
        state: &str,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        BehaviourError {
            behaviour: behaviour.into(),
            state: state.into(),
            kind,
            message: message.into(),
        }
    }
    /// The behaviour.
    pub fn behaviour(&self) -> &str {
        &self.behaviour
    }
    /// The state it was in.
    pub fn state(&self) -> &str {
        &self.state
    }
    /// What kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// What happened.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The behaviour repository of one agent. Cloning gives another handle to the same one.
#[derive(Clone, Default)]
pub struct Behaviours {
    table: Arc<RwLock<BTreeMap<String, Entry>>>,
}

#[derive(Clone)]
struct Entry {
    behaviour: Arc<Behaviour>,
    enabled: bool,
}

impl fmt::Debug for Behaviours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(read(&self.table).keys()).finish()
    }
}

impl Behaviours {
    /// Installs a behaviour, replacing (and returning) the one of the same name. Instances
    /// already running keep the version they started with.
    ///
    /// An `Arc<Behaviour>` is installed as it is: agents that run the same behaviour can share
    /// one parsed copy.
    pub fn install(&self, b: impl Into<Arc<Behaviour>>) -> Option<Arc<Behaviour>> {
        let b = b.into();
        let name = b.name.clone();
        let entry = Entry {
            behaviour: b,
            enabled: true,
        };
        write(&self.table).insert(name, entry).map(|e| e.behaviour)
    }

    /// Removes a behaviour; returns it.
    pub fn remove(&self, name: &str) -> Option<Arc<Behaviour>> {
        write(&self.table).remove(name).map(|e| e.behaviour)
    }

    /// A behaviour, enabled or not.
    pub fn get(&self, name: &str) -> Option<Arc<Behaviour>> {
        read(&self.table)
            .get(name)
            .map(|e| Arc::clone(&e.behaviour))
    }

    /// Whether an enabled behaviour of that name is installed.
    pub fn contains(&self, name: &str) -> bool {
        read(&self.table).get(name).is_some_and(|e| e.enabled)
    }

    /// Enables or disables a behaviour; a disabled one starts no new instance. Returns whether
    /// it exists.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> bool {
        write(&self.table)
            .get_mut(name)
            .map(|e| e.enabled = enabled)
            .is_some()
    }

    /// The installed behaviours' names.
    pub fn names(&self) -> Vec<String> {
        read(&self.table).keys().cloned().collect()
    }

    pub(crate) fn runnable(&self, name: &str) -> Result<Arc<Behaviour>, BehaviourError> {
        match read(&self.table).get(name) {
            Some(e) if e.enabled => Ok(Arc::clone(&e.behaviour)),
            Some(_) => Err(BehaviourError::new(
                name,
                "",
                ErrorKind::NotFound,
                "the behaviour is disabled",
            )),
            None => Err(BehaviourError::new(
                name,
                "",
                ErrorKind::NotFound,
                "no such behaviour is installed",
            )),
        }
    }
}
