//! The validated model of a behaviour: what the interpreter runs.

use std::time::Duration;

use rhai::AST;

use crate::bus::Pattern;
use crate::source::SourceFile;
use crate::value::Value;

/// A validated, compiled behaviour: a statechart ready to run.
///
/// Made by [`Behaviour::parse`] or [`Behaviour::load`]; only validated behaviours exist, so
/// only validated behaviours run. Expressions are compiled once, here, not at every step.
/// Cheap to share (`Arc<Behaviour>`): running instances keep the version they started with.
#[derive(Debug)]
pub struct Behaviour {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) requires: Vec<String>,
    pub(crate) input: Vec<String>,
    pub(crate) output: Option<Expr>,
    pub(crate) vars: Vec<(String, Value)>,
    pub(crate) initial: usize,
    pub(crate) states: Vec<State>,
    pub(crate) topics: Vec<Pattern>,
    pub(crate) source: SourceFile,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) name: String,
    pub(crate) entry: Vec<Action>,
    pub(crate) activity: Option<Action>,
    pub(crate) exit: Vec<Action>,
    pub(crate) final_: Option<Final>,
    pub(crate) on_done: Vec<Transition>,
    pub(crate) on_error: Vec<Transition>,
    pub(crate) on_event: Vec<(Pattern, Vec<Transition>)>,
    pub(crate) after: Vec<(Duration, Vec<Transition>)>,
    pub(crate) always: Vec<Transition>,
    pub(crate) demand: Option<f64>,
}

impl State {
    /// Whether anything but the state's own completion can move it on.
    pub(crate) fn waits_for_more(&self) -> bool {
        !self.on_event.is_empty() || !self.after.is_empty()
    }
}

#[derive(Debug)]
pub(crate) enum Final {
    Output(Option<Expr>),
    Error(Expr),
}

#[derive(Debug)]
pub(crate) struct Transition {
    pub(crate) target: usize,
    pub(crate) guard: Option<Expr>,
    pub(crate) actions: Vec<Action>,
    pub(crate) probability: Option<f64>,
}

#[derive(Debug)]
pub(crate) struct Expr {
    pub(crate) text: String,
    pub(crate) ast: AST,
}

#[derive(Debug)]
pub(crate) enum Args {
    None,
    Expr(Expr),
    Map(Vec<(String, Expr)>),
}

#[derive(Debug)]
pub(crate) enum Action {
    Call {
        service: String,
        args: Args,
        save: Option<String>,
    },
    Ability {
        name: String,
        args: Args,
        save: Option<String>,
    },
    Set(Vec<(String, Expr)>),
    Publish {
        topic: String,
        payload: Args,
    },
    Log(Expr),
}

/// One state's annotations for the load-balancing model.
#[derive(Debug, Clone, PartialEq)]
pub struct StateInfo {
    /// The state's name.
    pub name: String,
    /// Seconds of work the state generates per visit (`demand`).
    pub demand: Option<f64>,
    /// Whether it is final.
    pub is_final: bool,
    /// Outgoing transitions: trigger, target state, probability.
    pub transitions: Vec<(String, String, Option<f64>)>,
}

impl Behaviour {
    /// The behaviour's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The names of the inputs it documents.
    pub fn inputs(&self) -> &[String] {
        &self.input
    }

    /// The services it calls.
    pub fn requires(&self) -> &[String] {
        &self.requires
    }

    /// The scripted or native abilities its states use.
    pub fn abilities(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .states
            .iter()
            .flat_map(|s| {
                s.entry
                    .iter()
                    .chain(&s.activity)
                    .chain(&s.exit)
                    .chain(s.transitions().flat_map(|(_, t)| &t.actions))
            })
            .filter_map(|a| match a {
                Action::Ability { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The names of its states, in document order.
    pub fn state_names(&self) -> Vec<&str> {
        self.states.iter().map(|s| s.name.as_str()).collect()
    }

    /// The initial state's name.
    pub fn initial(&self) -> &str {
        &self.states[self.initial].name
    }

    /// The states with their annotations (`demand`, transition `probability`).
    pub fn state_info(&self) -> Vec<StateInfo> {
        self.states
            .iter()
            .map(|s| StateInfo {
                name: s.name.clone(),
                demand: s.demand,
                is_final: s.final_.is_some(),
                transitions: s
                    .transitions()
                    .map(|(trigger, t)| {
                        (trigger, self.states[t.target].name.clone(), t.probability)
                    })
                    .collect(),
            })
            .collect()
    }

    /// The source it was validated from (what a teacher sends).
    pub fn source(&self) -> &SourceFile {
        &self.source
    }
}

impl State {
    /// Every outgoing transition with a label for its trigger, in document order by kind.
    pub(crate) fn transitions(&self) -> impl Iterator<Item = (String, &Transition)> {
        let done = self.on_done.iter().map(|t| ("done".to_owned(), t));
        let error = self.on_error.iter().map(|t| ("error".to_owned(), t));
        let events = self
            .on_event
            .iter()
            .flat_map(|(p, ts)| ts.iter().map(move |t| (p.to_string(), t)));
        let after = self
            .after
            .iter()
            .flat_map(|(d, ts)| ts.iter().map(move |t| (format!("after {d:?}"), t)));
        let always = self.always.iter().map(|t| ("always".to_owned(), t));
        done.chain(error).chain(events).chain(after).chain(always)
    }
}
