//! The objective written in Rhai: utility, migration cost and constraints over measured
//! values.
//!
//! ```rhai
//! fn observe(c) { this.seen = (this.seen ?? 0) + 1; }   // optional: once per period
//! fn utility(c) { ... }                                  // required: a number
//! fn cost(p) { 0.012 * p.added }                         // optional: 0 by default
//! fn constraint(c) { true }                              // optional: true by default
//! ```
//!
//! `c` is a candidate configuration and what was measured:
//! `#{ members: [#{name, host, new}], hosts: #{<host>: #{up, capacity, load, free, count,
//! <metric>…, <attribute>…}}, time_s }`, where `count` is how many of the candidate's members
//! run there and `free` is `capacity − load`. `p` is a plan:
//! `#{ added, removed, moved, actions: ["add on h1", …], from: c, to: c }`. All four functions
//! run with `this` bound to the script's state, a map that starts as the deployment's
//! `params` and that `observe` may change (the others only read it).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rhai::{AST, CallFnOptions, Dynamic, Engine, Map, Scope};

use super::{Action, Configuration, HostStatus};
use crate::script::{self, Limits};
use crate::source::{LoadError, SourceFile};

/// A failed evaluation of the objective.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ObjectiveError {
    /// A function failed, or returned what it should not.
    #[error("{file}: `{function}`: {message}")]
    Script {
        /// The script's file.
        file: String,
        /// Which function.
        function: &'static str,
        /// What happened, and where.
        message: String,
    },
    /// The search as a whole ran past its time budget.
    #[error("the plan's time budget of {0:?} ran out")]
    OutOfTime(Duration),
}

/// A compiled objective script.
pub struct ScriptObjective {
    engine: Engine,
    ast: AST,
    file: String,
    state: Dynamic,
    limits: Limits,
    has: [bool; 3],
}

impl std::fmt::Debug for ScriptObjective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptObjective")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl ScriptObjective {
    /// Compiles the script; errors name its file, line and column.
    ///
    /// ```
    /// use selflet_core::SourceFile;
    /// use selflet_core::deployment::ScriptObjective;
    /// let bad = SourceFile::new("u.rhai", "fn utility(c) { 1.0 +* }");
    /// let err = ScriptObjective::compile(&bad).unwrap_err();
    /// assert_eq!(err.problems()[0].line(), 1);
    /// let none = SourceFile::new("u.rhai", "fn cost(p) { 0.0 }");
    /// assert!(ScriptObjective::compile(&none).is_err()); // no `utility`
    /// ```
    pub fn compile(source: &SourceFile) -> Result<ScriptObjective, LoadError> {
        let limits = Limits::default();
        let engine = script::engine(&limits);
        let mut ast = engine
            .compile(source.text())
            .map_err(|e| source.error_at_script(e.position(), e.to_string()))?;
        ast.set_source(source.name());
        let has = |name: &str| {
            ast.iter_functions()
                .any(|f| f.name == name && f.params.len() == 1)
        };
        if !has("utility") {
            return Err(source.error("the script defines no `fn utility(c)`").into());
        }
        let has = [has("cost"), has("constraint"), has("observe")];
        Ok(ScriptObjective {
            engine,
            ast,
            file: source.name().to_owned(),
            state: Dynamic::from_map(Map::new()),
            limits,
            has,
        })
    }

    /// Replaces the state (`this`): parameters, or what a previous coordinator kept.
    pub fn set_state(&mut self, state: &crate::value::Value) {
        self.state = state.to_dynamic();
    }

    /// The state `observe` keeps, as scripts see it.
    pub fn state(&self) -> &Dynamic {
        &self.state
    }

    /// Binds the measured values of one period, with a time budget for all the evaluations
    /// of its search, and runs `observe`.
    pub fn period(
        &mut self,
        current: &Configuration,
        hosts: &[HostStatus],
        time_s: f64,
        budget: Duration,
    ) -> Result<Period<'_>, ObjectiveError> {
        let mut p = Period {
            hosts: hosts.iter().map(|h| (h.name.clone(), h.to_map())).collect(),
            time_s,
            deadline: Instant::now() + budget,
            budget,
            obj: self,
        };
        if p.obj.has[2] {
            let c = p.view(current);
            let _ = p.call("observe", c, true)?;
        }
        Ok(p)
    }
}

/// The objective over one period's measured values: what a search evaluates.
pub struct Period<'a> {
    obj: &'a mut ScriptObjective,
    hosts: BTreeMap<String, Map>,
    time_s: f64,
    deadline: Instant,
    budget: Duration,
}

impl Period<'_> {
    fn view(&self, c: &Configuration) -> Dynamic {
        let mut hosts = Map::new();
        for (name, h) in &self.hosts {
            let mut h = h.clone();
            h.insert("count".into(), Dynamic::from_int(c.on(name) as i64));
            hosts.insert(name.as_str().into(), Dynamic::from_map(h));
        }
        let members: rhai::Array = c
            .members()
            .map(|(m, h)| {
                let mut e = Map::new();
                e.insert("name".into(), m.into());
                e.insert("host".into(), h.into());
                e.insert("new".into(), Configuration::is_new(m).into());
                Dynamic::from_map(e)
            })
            .collect();
        let mut out = Map::new();
        out.insert("members".into(), Dynamic::from_array(members));
        out.insert("hosts".into(), Dynamic::from_map(hosts));
        out.insert("time_s".into(), Dynamic::from_float(self.time_s));
        Dynamic::from_map(out)
    }

    fn call(
        &mut self,
        function: &'static str,
        arg: Dynamic,
        keep_state: bool,
    ) -> Result<Dynamic, ObjectiveError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ObjectiveError::OutOfTime(self.budget));
        }
        let o = &mut *self.obj;
        let mut this = if keep_state {
            std::mem::take(&mut o.state)
        } else {
            o.state.clone()
        };
        let options = CallFnOptions::new()
            .eval_ast(false)
            .bind_this_ptr(&mut this);
        let out = script::with_budget(left.min(o.limits.budget), || {
            o.engine.call_fn_with_options::<Dynamic>(
                options,
                &mut Scope::new(),
                &o.ast,
                function,
                (arg,),
            )
        });
        if keep_state {
            o.state = this;
        }
        out.map_err(|e| ObjectiveError::Script {
            file: o.file.clone(),
            function,
            message: script::describe(&e),
        })
    }

    fn number(&mut self, function: &'static str, arg: Dynamic) -> Result<f64, ObjectiveError> {
        let v = self.call(function, arg, false)?;
        let x = v
            .as_float()
            .ok()
            .or_else(|| v.as_int().ok().map(|i| i as f64))
            .filter(|x| x.is_finite());
        x.ok_or_else(|| ObjectiveError::Script {
            file: self.obj.file.clone(),
            function,
            message: format!("returned `{v}`, not a finite number"),
        })
    }
}

impl super::Objective for Period<'_> {
    type Error = ObjectiveError;

    fn utility(&mut self, c: &Configuration) -> Result<f64, ObjectiveError> {
        let v = self.view(c);
        self.number("utility", v)
    }

    fn cost(
        &mut self,
        from: &Configuration,
        actions: &[Action],
        to: &Configuration,
    ) -> Result<f64, ObjectiveError> {
        if !self.obj.has[0] {
            return Ok(0.0);
        }
        let count = |k: &str| actions.iter().filter(|a| a.kind() == k).count() as i64;
        let mut p = Map::new();
        p.insert("added".into(), Dynamic::from_int(count("add")));
        p.insert("removed".into(), Dynamic::from_int(count("remove")));
        p.insert("moved".into(), Dynamic::from_int(count("move")));
        let names: rhai::Array = actions.iter().map(|a| a.to_string().into()).collect();
        p.insert("actions".into(), Dynamic::from_array(names));
        p.insert("from".into(), self.view(from));
        p.insert("to".into(), self.view(to));
        self.number("cost", Dynamic::from_map(p))
    }

    fn feasible(&mut self, c: &Configuration) -> Result<bool, ObjectiveError> {
        if !self.obj.has[1] {
            return Ok(true);
        }
        let v = self.view(c);
        let out = self.call("constraint", v, false)?;
        out.as_bool().map_err(|t| ObjectiveError::Script {
            file: self.obj.file.clone(),
            function: "constraint",
            message: format!("returned a {t}, not true or false"),
        })
    }
}
