//! Actions, expressions and names inside a behaviour, checked and compiled.

use std::collections::BTreeSet;

use rhai::Engine;
use serde_saphyr::{Location, Spanned};

use super::super::format::{RawAction, RawArgs};
use super::super::model::{Action, Args, Expr, is_variable_name};
use crate::bus::Pattern;
use crate::name::is_valid_name;
use crate::source::{Located, SourceFile};

/// Names a behaviour's variables may not take: the interpreter sets them.
const RESERVED: [&str; 2] = ["input", "event"];

pub(super) struct Checker<'a> {
    pub(super) source: &'a SourceFile,
    pub(super) engine: &'a Engine,
    pub(super) problems: Vec<Located>,
}

impl Checker<'_> {
    pub(super) fn at(&mut self, loc: &Location, message: impl Into<String>) {
        self.problems
            .push(self.source.error_at_location(loc, message));
    }

    pub(super) fn expr(&mut self, text: &Spanned<String>) -> Option<Expr> {
        match self.engine.compile_expression(&text.value) {
            Ok(ast) => Some(Expr::new(&text.value, ast)),
            Err(e) => {
                self.at(
                    &text.referenced,
                    format!("expression `{}` does not compile: {}", text.value, e.0),
                );
                None
            }
        }
    }

    pub(super) fn var_name(&mut self, name: &Spanned<String>) {
        if !is_variable_name(&name.value) {
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

    pub(super) fn action(
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

    pub(super) fn actions(
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
