//! From the YAML's shape to the model the interpreter runs, with every problem located.

use std::collections::{BTreeSet, HashMap, VecDeque};

use rhai::Engine;
use serde_saphyr::{Location, Spanned};

use super::format::{RawAction, RawArgs, RawBehaviour, RawTransition};
use super::model::{Action, Args, Behaviour, Expr, Final, State, Transition};
use crate::bus::Pattern;
use crate::name::is_valid_name;
use crate::source::{LoadError, Located, SourceFile};

/// Names a behaviour's variables may not take: the interpreter sets them.
const RESERVED: [&str; 2] = ["input", "event"];

struct Checker<'a> {
    source: &'a SourceFile,
    engine: &'a Engine,
    problems: Vec<Located>,
}

impl Checker<'_> {
    fn at(&mut self, loc: &Location, message: impl Into<String>) {
        self.problems
            .push(self.source.error_at_location(loc, message));
    }

    fn expr(&mut self, text: &Spanned<String>) -> Option<Expr> {
        match self.engine.compile_expression(&text.value) {
            Ok(ast) => Some(Expr {
                text: text.value.clone(),
                ast,
            }),
            Err(e) => {
                self.at(
                    &text.referenced,
                    format!("expression `{}` does not compile: {}", text.value, e.0),
                );
                None
            }
        }
    }

    fn var_name(&mut self, name: &Spanned<String>) {
        let ok = name
            .value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            self.at(
                &name.referenced,
                format!(
                    "`{}` is not a variable name (letters, digits and `_`)",
                    name.value
                ),
            );
        } else if RESERVED.contains(&name.value.as_str()) {
            self.at(
                &name.referenced,
                format!(
                    "`{}` is set by the interpreter and cannot be assigned",
                    name.value
                ),
            );
        }
    }

    fn args(&mut self, args: &Option<RawArgs>) -> Args {
        match args {
            None => Args::None,
            Some(RawArgs::Expr(e)) => self.expr(e).map_or(Args::None, Args::Expr),
            Some(RawArgs::Map(m)) => Args::Map(
                m.0.iter()
                    .filter_map(|(k, v)| Some((k.value.clone(), self.expr(v)?)))
                    .collect(),
            ),
        }
    }

    fn action(
        &mut self,
        a: &RawAction,
        requires: &BTreeSet<String>,
        at: &Location,
    ) -> Option<Action> {
        let kinds = [
            a.call.is_some(),
            a.ability.is_some(),
            a.set.is_some(),
            a.publish.is_some(),
            a.log.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            self.at(
                at,
                "an action has exactly one of `call`, `ability`, `set`, `publish`, `log`",
            );
            return None;
        }
        let takes_args = a.call.is_some() || a.ability.is_some();
        if !takes_args && (a.args.is_some() || a.save.is_some()) {
            self.at(
                at,
                "`args` and `save` belong to `call` and `ability` actions",
            );
        }
        if a.publish.is_none() && a.payload.is_some() {
            self.at(at, "`payload` belongs to `publish` actions");
        }
        if let Some(s) = &a.save {
            self.var_name(s);
        }
        let save = a.save.as_ref().map(|s| s.value.clone());
        if let Some(service) = &a.call {
            if !requires.contains(&service.value) {
                self.at(
                    &service.referenced,
                    format!(
                        "service `{}` is called but not listed in `requires`",
                        service.value
                    ),
                );
            }
            return Some(Action::Call {
                service: service.value.clone(),
                args: self.args(&a.args),
                save,
            });
        }
        if let Some(name) = &a.ability {
            if !is_valid_name(&name.value) {
                self.at(
                    &name.referenced,
                    format!("invalid ability name `{}`", name.value),
                );
            }
            return Some(Action::Ability {
                name: name.value.clone(),
                args: self.args(&a.args),
                save,
            });
        }
        if let Some(set) = &a.set {
            let mut out = Vec::new();
            for (k, v) in &set.0 {
                self.var_name(k);
                if let Some(e) = self.expr(v) {
                    out.push((k.value.clone(), e));
                }
            }
            return Some(Action::Set(out));
        }
        if let Some(topic) = &a.publish {
            if !matches!(Pattern::parse(&topic.value), Ok(Pattern::Exact(_))) {
                self.at(
                    &topic.referenced,
                    format!("`{}` is not a topic (dotted name, no `*`)", topic.value),
                );
            }
            return Some(Action::Publish {
                topic: topic.value.clone(),
                payload: self.args(&a.payload),
            });
        }
        let log = a.log.as_ref()?;
        self.expr(log).map(Action::Log)
    }

    fn actions(
        &mut self,
        list: &[RawAction],
        requires: &BTreeSet<String>,
        at: &Location,
    ) -> Vec<Action> {
        list.iter()
            .filter_map(|a| self.action(a, requires, at))
            .collect()
    }
}

pub(crate) fn validate(source: SourceFile, engine: &Engine) -> Result<Behaviour, LoadError> {
    let raw: RawBehaviour =
        serde_saphyr::from_str(source.text()).map_err(|e| source.yaml_error(&e))?;
    let mut c = Checker {
        source: &source,
        engine,
        problems: Vec::new(),
    };
    if !is_valid_name(&raw.behaviour.value) {
        c.at(&raw.behaviour.referenced, format!("invalid behaviour name `{}`: a name starts with a letter and has only letters, digits, `_` and `-`", raw.behaviour.value));
    }
    let requires: BTreeSet<String> = raw.requires.iter().map(|r| r.value.clone()).collect();
    for r in &raw.requires {
        if !is_valid_name(&r.value) {
            c.at(&r.referenced, format!("invalid service name `{}`", r.value));
        }
    }
    if raw.states.0.is_empty() {
        c.at(
            &raw.initial.referenced,
            "a behaviour has at least one state",
        );
    }
    let index: HashMap<&str, usize> = raw
        .states
        .0
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.value.as_str(), i))
        .collect();
    let initial = match index.get(raw.initial.value.as_str()) {
        Some(i) => *i,
        None => {
            c.at(
                &raw.initial.referenced,
                format!(
                    "initial state `{}` is not one of the states",
                    raw.initial.value
                ),
            );
            0
        }
    };
    let output = raw.output.as_ref().and_then(|o| c.expr(o));
    let mut states = Vec::new();
    let mut edges: Vec<Vec<usize>> = Vec::new();
    for (name, s) in &raw.states.0 {
        let at = &name.referenced;
        let mut targets = Vec::new();
        let mut transitions = |c: &mut Checker<'_>, list: &[RawTransition]| -> Vec<Transition> {
            let mut out = Vec::new();
            for t in list {
                let Some(&target) = index.get(t.target.value.as_str()) else {
                    c.at(
                        &t.target.referenced,
                        format!("transition to unknown state `{}`", t.target.value),
                    );
                    continue;
                };
                targets.push(target);
                if let Some(p) = &t.probability
                    && !(0.0..=1.0).contains(&p.value)
                {
                    c.at(&p.referenced, "a probability is between 0 and 1");
                }
                out.push(Transition {
                    target,
                    guard: t.guard.as_ref().and_then(|g| c.expr(g)),
                    actions: c.actions(&t.actions.0, &requires, &t.target.referenced),
                    probability: t.probability.as_ref().map(|p| p.value),
                });
            }
            out
        };
        let (mut on_done, mut on_error, mut on_event) = (Vec::new(), Vec::new(), Vec::new());
        for (trigger, list) in &s.on.0 {
            let ts = transitions(&mut c, &list.0);
            match trigger.value.as_str() {
                "done" => on_done = ts,
                "error" => on_error = ts,
                topic => match Pattern::parse(topic) {
                    Ok(p) => on_event.push((p, ts)),
                    Err(e) => c.at(
                        &trigger.referenced,
                        format!("`{topic}` is neither `done`, `error` nor a topic pattern: {e}"),
                    ),
                },
            }
        }
        // The most specific pattern wins when several match one event; document order breaks ties.
        on_event.sort_by_key(|(p, _): &(Pattern, Vec<Transition>)| match p {
            Pattern::Exact(_) => 0,
            Pattern::Prefix(x) => usize::MAX / 2 - x.len(),
            Pattern::All => usize::MAX,
        });
        let mut after = Vec::new();
        for (d, list) in &s.after.0 {
            let ts = transitions(&mut c, &list.0);
            match crate::duration::parse(&d.value) {
                Ok(dur) => after.push((dur, ts)),
                Err(e) => c.at(&d.referenced, e.to_string()),
            }
        }
        let always = transitions(&mut c, &s.always.0);
        let total: f64 = on_done
            .iter()
            .chain(&on_error)
            .filter_map(|t| t.probability)
            .sum();
        if total > 1.0 + 1e-9 {
            c.at(at, format!("the probabilities of state `{}`'s completion transitions add up to {total}, more than 1", name.value));
        }
        let is_final = s.is_final || s.output.is_some() || s.error.is_some();
        let final_ = if is_final {
            if !targets.is_empty() || s.activity.is_some() {
                c.at(
                    at,
                    format!(
                        "final state `{}` has no `do` and no transitions",
                        name.value
                    ),
                );
            }
            match (&s.output, &s.error) {
                (Some(_), Some(_)) => {
                    c.at(
                        at,
                        format!(
                            "final state `{}` has an `output` or an `error`, not both",
                            name.value
                        ),
                    );
                    None
                }
                (_, Some(e)) => c.expr(e).map(Final::Error),
                (Some(o), None) => Some(Final::Output(c.expr(o))),
                (None, None) => Some(Final::Output(None)),
            }
        } else {
            if s.on.0.is_empty() && s.after.0.is_empty() && s.always.0.is_empty() {
                c.at(
                    at,
                    format!(
                        "state `{}` is not final and has no transition out",
                        name.value
                    ),
                );
            }
            None
        };
        if let Some(d) = &s.demand
            && d.value < 0.0
        {
            c.at(
                &d.referenced,
                "a demand is a non-negative number of seconds",
            );
        }
        let entry = c.actions(&s.entry.0, &requires, at);
        let activity = s.activity.as_ref().and_then(|a| c.action(a, &requires, at));
        let exit = c.actions(&s.exit.0, &requires, at);
        edges.push(targets);
        states.push(State {
            name: name.value.clone(),
            entry,
            activity,
            exit,
            final_,
            on_done,
            on_error,
            on_event,
            after,
            always,
            demand: s.demand.as_ref().map(|d| d.value),
        });
    }
    if !raw.states.0.is_empty() {
        if !states.iter().any(|s| s.final_.is_some()) && c.problems.is_empty() {
            c.at(
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
                c.at(
                    &name.referenced,
                    format!(
                        "state `{}` cannot be reached from the initial state",
                        name.value
                    ),
                );
            }
        }
        if c.problems.is_empty()
            && let Some(first) = certain_loop(&states).first()
        {
            let names: Vec<&str> = certain_loop(&states)
                .iter()
                .map(|&i| states[i].name.as_str())
                .collect();
            c.at(
                &raw.states.0[*first].0.referenced,
                format!(
                    "states [{}] loop for ever without waiting: each completes at once and takes an unguarded transition to another of them (add a guard, an event or a timer)",
                    names.join(", ")
                ),
            );
        }
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
    Ok(Behaviour {
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
    })
}

/// The states that, once entered, are certain to move on without waiting (no event, no
/// timer, no call or ability to wait for), and only to one another: an instance that enters
/// one of them never ends. Empty when there is none.
///
/// A state is certain to move on when one of its `always` transitions has no guard, or when
/// it has no `do` that waits (or none at all) and one of its `done` transitions has no guard.
/// The transitions it may take are those up to the first unguarded one, plus its `error`
/// transitions, since a failing action would take them. The looping states are then the
/// largest set of such states whose possible transitions all stay inside the set.
fn certain_loop(states: &[State]) -> Vec<usize> {
    let successors: Vec<Option<Vec<usize>>> = states.iter().map(certain_successors).collect();
    let mut looping: Vec<bool> = successors.iter().map(Option::is_some).collect();
    loop {
        let mut changed = false;
        for (i, next) in successors.iter().enumerate() {
            if looping[i] && next.iter().flatten().any(|&t| !looping[t]) {
                looping[i] = false;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    (0..states.len()).filter(|&i| looping[i]).collect()
}

/// Where a state may go without waiting, if it is certain to go somewhere at once.
fn certain_successors(s: &State) -> Option<Vec<usize>> {
    if s.final_.is_some() {
        return None;
    }
    let up_to_unguarded = |ts: &[Transition]| -> Option<Vec<usize>> {
        let k = ts.iter().position(|t| t.guard.is_none())?;
        Some(ts[..=k].iter().map(|t| t.target).collect())
    };
    let errors = s.on_error.iter().map(|t| t.target);
    if let Some(mut next) = up_to_unguarded(&s.always) {
        next.extend(errors);
        return Some(next);
    }
    let waits = matches!(
        s.activity,
        Some(Action::Call { .. } | Action::Ability { .. })
    );
    if waits {
        return None;
    }
    let mut next = up_to_unguarded(&s.on_done)?;
    next.extend(s.always.iter().map(|t| t.target));
    next.extend(errors);
    Some(next)
}
