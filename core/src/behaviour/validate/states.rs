//! One state at a time: its transitions, its triggers, whether and how it is final.

use std::collections::BTreeSet;

use serde_saphyr::Spanned;

use super::super::format::{RawBehaviour, RawState, RawTransition};
use super::super::model::{Final, State, Transition};
use super::Index;
use super::actions::Checker;
use crate::bus::Pattern;

/// The shortest `after` timer.
const MIN_TIMER: std::time::Duration = std::time::Duration::from_millis(1);

/// A state's transitions by trigger, as read.
#[derive(Default)]
struct Triggers {
    on_done: Vec<Transition>,
    on_error: Vec<Transition>,
    on_event: Vec<(Pattern, Vec<Transition>)>,
    after: Vec<(std::time::Duration, Vec<Transition>)>,
    always: Vec<Transition>,
    // Every state a transition goes to, for the reachability check.
    targets: Vec<usize>,
}

impl Checker<'_> {
    /// Every state, with the states each has a transition to.
    pub(super) fn states(
        &mut self,
        raw: &RawBehaviour,
        index: &Index<'_>,
        requires: &BTreeSet<String>,
    ) -> (Vec<State>, Vec<Vec<usize>>) {
        raw.states
            .0
            .iter()
            .map(|(name, s)| self.state(name, s, index, requires))
            .unzip()
    }

    fn state(
        &mut self,
        name: &Spanned<String>,
        s: &RawState,
        index: &Index<'_>,
        requires: &BTreeSet<String>,
    ) -> (State, Vec<usize>) {
        let at = &name.referenced;
        let t = self.triggers(s, index, requires);
        let total: f64 = t
            .on_done
            .iter()
            .chain(&t.on_error)
            .filter_map(|t| t.probability)
            .sum();
        if total > 1.0 + 1e-9 {
            self.at(at, format!("the probabilities of state `{}`'s completion transitions add up to {total}, more than 1", name.value));
        }
        let final_ = self.final_(name, s, !t.targets.is_empty());
        if let Some(d) = &s.demand
            && d.value < 0.0
        {
            self.at(
                &d.referenced,
                "a demand is a non-negative number of seconds",
            );
        }
        let state = State {
            name: name.value.clone(),
            entry: self.actions(&s.entry.0, requires, at),
            activity: s
                .activity
                .as_ref()
                .and_then(|a| self.action(a, requires, at)),
            exit: self.actions(&s.exit.0, requires, at),
            final_,
            on_done: t.on_done,
            on_error: t.on_error,
            on_event: t.on_event,
            after: t.after,
            always: t.always,
            demand: s.demand.as_ref().map(|d| d.value),
        };
        (state, t.targets)
    }

    /// The state's transitions, by trigger: `done`, `error`, topics, timers, `always`.
    fn triggers(
        &mut self,
        s: &RawState,
        index: &Index<'_>,
        requires: &BTreeSet<String>,
    ) -> Triggers {
        let mut t = Triggers::default();
        for (trigger, list) in &s.on.0 {
            let ts = self.transitions(&list.0, index, requires, &mut t.targets);
            match trigger.value.as_str() {
                "done" => t.on_done = ts,
                "error" => t.on_error = ts,
                topic => match Pattern::parse(topic) {
                    Ok(p) => t.on_event.push((p, ts)),
                    Err(e) => self.at(
                        &trigger.referenced,
                        format!("`{topic}` is neither `done`, `error` nor a topic pattern: {e}"),
                    ),
                },
            }
        }
        // The most specific pattern wins when several match one event; document order breaks ties.
        t.on_event.sort_by_key(|(p, _)| match p {
            Pattern::Exact(_) => 0,
            Pattern::Prefix(x) => usize::MAX / 2 - x.len(),
            Pattern::All => usize::MAX,
        });
        for (d, list) in &s.after.0 {
            let ts = self.transitions(&list.0, index, requires, &mut t.targets);
            match crate::duration::parse(&d.value) {
                // A timer resets the instance's step budget, as any trigger does: one that
                // did not wait would make a loop of them a busy loop with no budget at all.
                Ok(dur) if dur < MIN_TIMER => self.at(
                    &d.referenced,
                    format!(
                        "a timer waits at least 1ms, not `{}` (for no wait, use `always`)",
                        d.value
                    ),
                ),
                Ok(dur) => t.after.push((dur, ts)),
                Err(e) => self.at(&d.referenced, e.to_string()),
            }
        }
        t.always = self.transitions(&s.always.0, index, requires, &mut t.targets);
        t
    }

    /// Transitions to known states, with their guards and actions compiled.
    fn transitions(
        &mut self,
        list: &[RawTransition],
        index: &Index<'_>,
        requires: &BTreeSet<String>,
        targets: &mut Vec<usize>,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        for t in list {
            let Some(&target) = index.get(t.target.value.as_str()) else {
                let message = format!("transition to unknown state `{}`", t.target.value);
                self.at(&t.target.referenced, message);
                continue;
            };
            targets.push(target);
            if let Some(p) = &t.probability
                && !(0.0..=1.0).contains(&p.value)
            {
                self.at(&p.referenced, "a probability is between 0 and 1");
            }
            out.push(Transition {
                target,
                guard: t.guard.as_ref().and_then(|g| self.expr(g)),
                actions: self.actions(&t.actions.0, requires, &t.target.referenced),
                probability: t.probability.as_ref().map(|p| p.value),
            });
        }
        out
    }

    /// How the state ends the instance, if it is final; a non-final state needs a way out.
    fn final_(
        &mut self,
        name: &Spanned<String>,
        s: &RawState,
        has_transitions: bool,
    ) -> Option<Final> {
        let at = &name.referenced;
        let is_final = s.is_final || s.output.is_some() || s.error.is_some();
        if !is_final {
            if s.on.0.is_empty() && s.after.0.is_empty() && s.always.0.is_empty() {
                let message = format!(
                    "state `{}` is not final and has no transition out",
                    name.value
                );
                self.at(at, message);
            }
            return None;
        }
        if has_transitions || s.activity.is_some() {
            let message = format!(
                "final state `{}` has no `do` and no transitions",
                name.value
            );
            self.at(at, message);
        }
        match (&s.output, &s.error) {
            (Some(_), Some(_)) => {
                let message = format!(
                    "final state `{}` has an `output` or an `error`, not both",
                    name.value
                );
                self.at(at, message);
                None
            }
            (_, Some(e)) => self.expr(e).map(Final::Error),
            (Some(o), None) => Some(Final::Output(self.expr(o))),
            (None, None) => Some(Final::Output(None)),
        }
    }
}
