//! From the YAML's shape to the model the interpreter runs, with every problem located.
//!
//! The checks come in layers: the behaviour's header (`actions.rs` checks names and
//! expressions), then each state (`states.rs`), then the whole graph — a final state, every
//! state reachable, no states certain to loop without waiting (`loops.rs`).

mod actions;
mod loops;
mod states;

use std::collections::{BTreeSet, HashMap, VecDeque};

use rhai::Engine;

use super::format::RawBehaviour;
use super::model::{Behaviour, Model, State};
use crate::name::{NAME_RULE, is_valid_name};
use crate::source::{LoadError, SourceFile};
use actions::Checker;

/// Where each state is, by name.
type Index<'a> = HashMap<&'a str, usize>;

pub(crate) fn validate(source: SourceFile, engine: &Engine) -> Result<Behaviour, LoadError> {
    let raw: RawBehaviour =
        crate::source::from_yaml(source.text()).map_err(|e| source.yaml_error(&e))?;
    let mut c = Checker {
        source: &source,
        engine,
        problems: Vec::new(),
    };
    let requires = c.header(&raw);
    let index: Index<'_> = raw
        .states
        .0
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.value.as_str(), i))
        .collect();
    let initial = c.initial(&raw, &index);
    let output = raw.output.as_ref().and_then(|o| c.expr(o));
    let (states, edges) = c.states(&raw, &index, &requires);
    if !raw.states.0.is_empty() {
        c.graph(&raw, &states, &edges, initial);
    }
    let vars = raw
        .vars
        .0
        .iter()
        .map(|(k, v)| {
            c.var_name(k);
            (k.value.clone(), v.clone())
        })
        .collect();
    for i in &raw.input {
        c.var_name(i);
    }
    if !c.problems.is_empty() {
        return Err(LoadError::Invalid(c.problems));
    }
    let topics = states
        .iter()
        .flat_map(|s| s.on_event.iter().map(|(p, _)| p.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(Behaviour::new(Model {
        name: raw.behaviour.value,
        description: raw.description,
        requires: raw.requires.into_iter().map(|r| r.value).collect(),
        input: raw.input.into_iter().map(|i| i.value).collect(),
        output,
        vars,
        initial,
        states,
        topics,
        source,
    }))
}

impl Checker<'_> {
    /// The behaviour's name, the services it requires (returned), and that it has states.
    fn header(&mut self, raw: &RawBehaviour) -> BTreeSet<String> {
        if !is_valid_name(&raw.behaviour.value) {
            let message = format!(
                "invalid behaviour name `{}`: {NAME_RULE}",
                raw.behaviour.value
            );
            self.at(&raw.behaviour.referenced, message);
        }
        for r in &raw.requires {
            if !is_valid_name(&r.value) {
                self.at(&r.referenced, format!("invalid service name `{}`", r.value));
            }
        }
        if raw.states.0.is_empty() {
            self.at(
                &raw.initial.referenced,
                "a behaviour has at least one state",
            );
        }
        raw.requires.iter().map(|r| r.value.clone()).collect()
    }

    /// The initial state's index.
    fn initial(&mut self, raw: &RawBehaviour, index: &Index<'_>) -> usize {
        match index.get(raw.initial.value.as_str()) {
            Some(i) => *i,
            None => {
                let message = format!(
                    "initial state `{}` is not one of the states",
                    raw.initial.value
                );
                self.at(&raw.initial.referenced, message);
                0
            }
        }
    }

    /// The whole graph: a final state, every state reachable from the initial one, and no
    /// states certain to loop without waiting.
    fn graph(
        &mut self,
        raw: &RawBehaviour,
        states: &[State],
        edges: &[Vec<usize>],
        initial: usize,
    ) {
        if !states.iter().any(|s| s.final_.is_some()) && self.problems.is_empty() {
            self.at(
                &raw.initial.referenced,
                "a behaviour has at least one final state (`final: true`)",
            );
        }
        let mut seen = vec![false; states.len()];
        let mut queue = VecDeque::from([initial]);
        seen[initial] = true;
        while let Some(i) = queue.pop_front() {
            for &t in &edges[i] {
                if !std::mem::replace(&mut seen[t], true) {
                    queue.push_back(t);
                }
            }
        }
        for ((name, _), reached) in raw.states.0.iter().zip(&seen) {
            if !reached {
                let message = format!(
                    "state `{}` cannot be reached from the initial state",
                    name.value
                );
                self.at(&name.referenced, message);
            }
        }
        let looping = loops::certain_loop(states);
        if self.problems.is_empty()
            && let Some(first) = looping.first()
        {
            let names: Vec<&str> = looping.iter().map(|&i| states[i].name.as_str()).collect();
            let message = format!(
                "states [{}] loop for ever without waiting: each completes at once and takes an unguarded transition to another of them (add a guard, an event or a timer)",
                names.join(", ")
            );
            self.at(&raw.states.0[*first].0.referenced, message);
        }
    }
}
