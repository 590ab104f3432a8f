//! The validated model of a behaviour: what the interpreter runs.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use rhai::AST;

use crate::bus::Pattern;
use crate::source::SourceFile;
use crate::value::Value;

/// A validated, compiled behaviour: a statechart ready to run.
///
/// Made by [`Behaviour::parse`] or [`Behaviour::load`]; only validated behaviours exist, so
/// only validated behaviours run. Expressions are compiled once, here, not at every step.
///
/// A behaviour never changes once validated (the `with_…` and `modify` methods make new
/// ones), so its model is shared: cloning a behaviour, or handing the same one to many
/// agents, copies a pointer. Running instances keep the version they started with.
#[derive(Debug, Clone)]
pub struct Behaviour(Arc<Model>);

/// What a behaviour is made of, behind [`Behaviour`]: the interpreter's and the validator's
/// view. Public only because `Behaviour` dereferences to it; nothing of it is reachable from
/// outside the crate.
#[derive(Debug)]
pub struct Model {
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

impl Behaviour {
    pub(crate) fn new(model: Model) -> Behaviour {
        Behaviour(Arc::new(model))
    }

    /// Whether `other` is this very behaviour, not only an equal one.
    #[cfg(test)]
    pub(crate) fn shares_model_with(&self, other: &Behaviour) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

// The interpreter and the validator read the model's parts directly.
impl Deref for Behaviour {
    type Target = Model;

    fn deref(&self) -> &Model {
        &self.0
    }
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

/// Whether `text` is a variable name: letters, digits and `_`, not starting with a digit.
pub(crate) fn is_variable_name(text: &str) -> bool {
    text.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[derive(Debug)]
pub(crate) struct Expr {
    pub(crate) text: String,
    pub(crate) ast: AST,
    /// The variable, when the whole expression is one (`input`, `out`): read from the scope
    /// without running the engine, which is most of what the commonest expressions cost.
    pub(crate) variable: Option<String>,
}

impl Expr {
    pub(crate) fn new(text: &str, ast: AST) -> Expr {
        let t = text.trim();
        // Keywords that are values on their own are left to the engine.
        let variable =
            (is_variable_name(t) && !matches!(t, "true" | "false" | "this")).then(|| t.to_owned());
        Expr {
            text: text.to_owned(),
            ast,
            variable,
        }
    }
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

/// Why a behaviour's load model cannot be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// A state's annotated probabilities add up to more than 1.
    #[error("the probabilities of state `{0}` add up to more than 1")]
    Probabilities(String),
    /// Under these probabilities some execution never ends.
    #[error(
        "under its probabilities, behaviour `{0}` does not end (the routing equations have no solution)"
    )]
    NoEnd(String),
}

impl Behaviour {
    /// Expected visits to each state per execution, in document order: the solution of the
    /// routing equations `v = e + Pᵀv` (`e` the initial state, `P` the transition
    /// probabilities). Probabilities a state does not annotate share what its annotated ones
    /// leave, equally — except `error` transitions, exceptional, which get 0 unless annotated.
    pub fn expected_visits(&self) -> Result<Vec<f64>, ModelError> {
        let states = self.state_info();
        let n = states.len();
        let index = |name: &str| states.iter().position(|s| s.name == name);
        // a[i][j]: coefficient of v_j in the equation of state i, (I − Pᵀ) v = e.
        let mut a = vec![vec![0.0; n]; n];
        for (i, row) in a.iter_mut().enumerate() {
            row[i] = 1.0;
        }
        for (i, s) in states.iter().enumerate() {
            for (target, p) in routing(s)? {
                if let Some(j) = index(&target) {
                    a[j][i] -= p;
                }
            }
        }
        let mut e = vec![0.0; n];
        e[self.initial] = 1.0;
        solve(a, e).ok_or_else(|| ModelError::NoEnd(self.name.clone()))
    }

    /// Seconds of work one execution generates: `Σᵢ vᵢ dᵢ` over the states' `demand`.
    pub fn demand(&self) -> Result<f64, ModelError> {
        let v = self.expected_visits()?;
        Ok(self
            .states
            .iter()
            .zip(v)
            .map(|(s, v)| v * s.demand.unwrap_or(0.0))
            .sum())
    }
}

/// A state's outgoing probabilities by target.
fn routing(s: &StateInfo) -> Result<Vec<(String, f64)>, ModelError> {
    if s.is_final {
        return Ok(Vec::new());
    }
    let annotated: f64 = s.transitions.iter().filter_map(|(_, _, p)| *p).sum();
    if annotated > 1.0 + 1e-9 {
        return Err(ModelError::Probabilities(s.name.clone()));
    }
    let sharing = s
        .transitions
        .iter()
        .filter(|(trigger, _, p)| p.is_none() && trigger != "error")
        .count();
    let share = if sharing == 0 {
        0.0
    } else {
        (1.0 - annotated).max(0.0) / sharing as f64
    };
    Ok(s.transitions
        .iter()
        .map(|(trigger, target, p)| {
            let p = p.unwrap_or(if trigger == "error" { 0.0 } else { share });
            (target.clone(), p)
        })
        .collect())
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting; `None` if singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            if f != 0.0 {
                let (upper, lower) = a.split_at_mut(row);
                for (x, p) in lower[0][col..].iter_mut().zip(&upper[col][col..]) {
                    *x -= f * p;
                }
                b[row] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    x.iter().all(|v| v.is_finite() && *v >= -1e-9).then_some(x)
}
