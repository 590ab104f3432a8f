//! Learners: plugins that choose, window by window, how a service is composed.
//!
//! A learner is plugged like a predictor — by kind and name, with parameters, from a manifest
//! (`learners:`), a policy (`plug_learner`) or the API — but instead of forecasting it decides.
//! For one service it is given the **compositions** the agent can run it in: each of the
//! service's variants (behaviours that implement it) × each placement (here; relocated to one
//! neighbour, taught the variant, all requests redirected there; replicated over several
//! neighbours, balanced round robin). At the end of every fixed observation window the agent
//! hands it the window's reward and the environment seen on the bus, and applies the
//! composition it picks (seed 000's control loop). Learners on different agents exchange
//! nothing.
//!
//! This module holds what every learner kind shares: the [`Learner`] trait, the parameters the
//! agent reads itself ([`CompositionSpec`]), the compositions and their names, and the reward
//! metric. `selflet-plugins` provides the `ucb` kind (UCB1, UCB1-Tuned, seed 000's printed
//! bound) with its grouped-threshold environment classifier.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{ParamError, ParamErrorKind, param_duration, param_str};
use crate::bus::Pattern;
use crate::error::BoxError;
use crate::name::is_valid_name;
use crate::sync::lock;
use crate::value::Value;

/// Labelled values describing the environment during one window (`memory: 150`), from the
/// numeric fields of the events on the learner's `environment` topic, averaged over the window.
pub type Observation = BTreeMap<String, f64>;

/// The most labels one observation keeps (the first ones seen in the window): whoever
/// publishes the environment topic decides its labels, and a learner stays bounded.
pub const MAX_LABELS: usize = 32;

/// What a learner decided at the end of a window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    /// The composition for the next window; `None` keeps the one in force (every
    /// composition was vetoed).
    pub composition: Option<String>,
    /// The environment class the window was put in, if the learner classifies.
    pub class: Option<usize>,
}

/// A learner: picks the composition for the next window from the reward of the last.
///
/// The agent calls [`window`](Learner::window) once before the first window (with no reward)
/// and then at the end of each window. It passes `allowed`, which says false for the
/// compositions a policy vetoed; a learner never picks one of those.
pub trait Learner: Send + 'static {
    /// Ends a window: `reward` (in 0..=1, higher is better; `None` before the first window
    /// and for a window in which nothing was measured) is for the composition the learner
    /// picked last, in `environment`.
    fn window(
        &mut self,
        environment: &Observation,
        reward: Option<f64>,
        allowed: &dyn Fn(&str) -> bool,
    ) -> Result<Decision, BoxError>;

    /// What the learner knows, for policies and operators: for example, per environment
    /// class, each composition's count and mean reward.
    fn tables(&self) -> Value;
}

/// Makes a learner of one kind from its compositions' names and its own parameters (those
/// the agent does not read itself: see [`CompositionSpec::KEYS`]).
pub type LearnerFactory =
    Arc<dyn Fn(&[String], &Value) -> Result<Box<dyn Learner>, ParamError> + Send + Sync + 'static>;

/// Where a composition runs the service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Placement {
    /// On this agent.
    Local,
    /// On one neighbour, taught the variant; every request is redirected there.
    Relocated(String),
    /// On several neighbours, taught the variant; requests are redirected to each in turn.
    Replicated(Vec<String>),
}

impl Placement {
    /// The neighbours the service runs on (none when local).
    pub fn neighbours(&self) -> &[String] {
        match self {
            Placement::Local => &[],
            Placement::Relocated(n) => std::slice::from_ref(n),
            Placement::Replicated(ns) => ns,
        }
    }
}

/// One way to run a service: which variant, where.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Composition {
    /// The behaviour that implements the service.
    pub variant: String,
    /// Where it runs.
    pub placement: Placement,
}

impl fmt::Display for Composition {
    /// `variant` when local, `variant@h1` relocated, `variant@h1+h2` replicated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.variant)?;
        for (i, n) in self.placement.neighbours().iter().enumerate() {
            f.write_str(if i == 0 { "@" } else { "+" })?;
            f.write_str(n)?;
        }
        Ok(())
    }
}

/// How a window's reward is measured; rewards are in 0..=1, higher is better.
#[derive(Debug, Clone, PartialEq)]
pub enum RewardMetric {
    /// The mean response time of the service's requests served in the window, normalised
    /// between `best` (reward 1) and `worst` (reward 0) and inverted: seed 000's reward.
    ResponseTime {
        /// A response time this short or shorter earns 1.
        best: Duration,
        /// A response time this long or longer earns 0.
        worst: Duration,
    },
    /// The mean of a numeric field of the events on a topic in the window, normalised between
    /// `low` and `high` (inverted when lower is better).
    Field {
        /// The topic the values come from.
        topic: Pattern,
        /// The payload field.
        field: String,
        /// The value that earns 0 (or 1 when `lower_is_better`).
        low: f64,
        /// The value that earns 1 (or 0 when `lower_is_better`).
        high: f64,
        /// Whether a lower value is better (a cost).
        lower_is_better: bool,
    },
}

impl RewardMetric {
    /// The reward of a window whose measured mean is `mean` (seconds for response times).
    ///
    /// ```
    /// use std::time::Duration;
    /// use selflet_core::prediction::learner::RewardMetric;
    ///
    /// let m = RewardMetric::ResponseTime {
    ///     best: Duration::from_millis(10),
    ///     worst: Duration::from_millis(110),
    /// };
    /// assert_eq!(m.reward(0.060), 0.5);
    /// assert_eq!(m.reward(0.001), 1.0);
    /// assert_eq!(m.reward(9.0), 0.0);
    /// ```
    pub fn reward(&self, mean: f64) -> f64 {
        let (low, high, invert) = match self {
            RewardMetric::ResponseTime { best, worst } => {
                (best.as_secs_f64(), worst.as_secs_f64(), true)
            }
            RewardMetric::Field {
                low,
                high,
                lower_is_better,
                ..
            } => (*low, *high, *lower_is_better),
        };
        let x = ((mean - low) / (high - low)).clamp(0.0, 1.0);
        let r = if invert { 1.0 - x } else { x };
        if r.is_finite() { r } else { 0.0 }
    }

    fn from_params(params: &Value) -> Result<RewardMetric, ParamError> {
        let Some(r) = params.get("reward") else {
            return Ok(RewardMetric::ResponseTime {
                best: Duration::ZERO,
                worst: Duration::from_secs(1),
            });
        };
        if !matches!(r, Value::Map(_)) {
            return Err(ParamError::wrong_type("reward", "a map", r));
        }
        let Some(topic) = r.get("topic") else {
            let best = param_duration(r, "best", Duration::ZERO)?;
            let worst = param_duration(r, "worst", Duration::from_secs(1))?;
            if worst <= best {
                return Err(ParamError::out_of_range(
                    "reward",
                    "`worst` must be longer than `best`",
                ));
            }
            return Ok(RewardMetric::ResponseTime { best, worst });
        };
        let topic = topic
            .as_str()
            .ok_or_else(|| ParamError::wrong_type("reward.topic", "a topic", topic))?;
        let topic = Pattern::parse(topic)
            .map_err(|e| ParamError::new("reward.topic", ParamErrorKind::Invalid, e.to_string()))?;
        let field = param_str(r, "field", "")?.to_owned();
        let low = super::param_f64(r, "low", 0.0)?;
        let high = super::param_f64(r, "high", 1.0)?;
        if field.is_empty() || !(low.is_finite() && high.is_finite() && low < high) {
            return Err(ParamError::out_of_range(
                "reward",
                "a `field` and finite `low` < `high`",
            ));
        }
        let lower_is_better = match r.get("lower_is_better") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                return Err(ParamError::wrong_type(
                    "reward.lower_is_better",
                    "a bool",
                    v,
                ));
            }
        };
        Ok(RewardMetric::Field {
            topic,
            field,
            low,
            high,
            lower_is_better,
        })
    }
}

/// Why a learner was not plugged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlugError {
    /// No learner kind of that name is registered.
    #[error("no learner kind `{kind}` (known: {})", known.join(", "))]
    UnknownKind {
        /// The kind asked for.
        kind: String,
        /// The kinds there are.
        known: Vec<String>,
    },
    /// The parameters were refused.
    #[error("learner `{name}`: {error}")]
    Params {
        /// The instance.
        name: String,
        /// What is wrong.
        #[source]
        error: ParamError,
    },
    /// The agent does not run the service, or lacks one of its variants.
    #[error("learner `{name}`: the agent has no {what} `{missing}`")]
    Missing {
        /// The instance.
        name: String,
        /// `service` or `behaviour`.
        what: &'static str,
        /// The name it lacks.
        missing: String,
    },
    /// A learner of that name is already plugged.
    #[error("a learner named `{0}` is already plugged")]
    Taken(String),
    /// The learner panicked at its first decision; it was not plugged.
    #[error("learner `{0}` panicked at its first decision")]
    Panicked(String),
    /// The agent has stopped.
    #[error("the agent has stopped")]
    Stopped,
}

/// The most compositions one learner may have: each is a row of every class's table.
pub const MAX_COMPOSITIONS: usize = 1024;

/// What the agent reads from a learner's parameters: the service, its variants and
/// placements, the observation window, the reward and the environment.
///
/// ```
/// use selflet_core::Value;
/// use selflet_core::prediction::learner::CompositionSpec;
///
/// let params: Value = serde_saphyr::from_str(
///     "{ service: web, variants: [plain, cached], neighbours: [h1, h2], window: 5s }",
/// ).unwrap();
/// let spec = CompositionSpec::from_params(&params)?;
/// let names: Vec<String> = spec.compositions().iter().map(|c| c.to_string()).collect();
/// assert_eq!(names, [
///     "plain", "plain@h1", "plain@h2", "plain@h1+h2",
///     "cached", "cached@h1", "cached@h2", "cached@h1+h2",
/// ]);
/// # Ok::<(), selflet_core::prediction::ParamError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CompositionSpec {
    /// The service composed.
    pub service: String,
    /// Behaviours implementing it, the first the one in force when the learner is plugged.
    pub variants: Vec<String>,
    /// Neighbours it may be relocated to or replicated over.
    pub neighbours: Vec<String>,
    /// Whether to offer replicated placements (over the first 2, 3, … of the neighbours).
    pub replicate: bool,
    /// The observation window.
    pub window: Duration,
    /// How a window's reward is measured.
    pub reward: RewardMetric,
    /// Where the environment's labelled values come from, if anywhere.
    pub environment: Option<Pattern>,
    /// Compositions vetoed from the start (`veto: [...]`), by name.
    pub vetoed: Vec<String>,
}

impl CompositionSpec {
    /// The parameter keys the agent reads; the others go to the learner kind.
    pub const KEYS: &'static [&'static str] = &[
        "service",
        "variants",
        "neighbours",
        "replicate",
        "window",
        "reward",
        "environment",
        "veto",
    ];

    /// Reads the spec from a learner's parameters.
    pub fn from_params(params: &Value) -> Result<CompositionSpec, ParamError> {
        let service = param_str(params, "service", "")?.to_owned();
        if !is_valid_name(&service) {
            return Err(ParamError::out_of_range(
                "service",
                "the name of a service the agent offers",
            ));
        }
        let variants = names(params, "variants")?.unwrap_or_else(|| vec![service.clone()]);
        let neighbours = names(params, "neighbours")?.unwrap_or_default();
        let replicate = match params.get("replicate") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(ParamError::wrong_type("replicate", "a bool", v)),
        };
        let window = param_duration(params, "window", Duration::from_secs(10))?;
        if window < Duration::from_millis(1) {
            return Err(ParamError::out_of_range("window", "at least 1ms"));
        }
        let environment = match params.get("environment") {
            None => None,
            Some(Value::Str(s)) => Some(Pattern::parse(s).map_err(|e| {
                ParamError::new("environment", ParamErrorKind::Invalid, e.to_string())
            })?),
            Some(v) => return Err(ParamError::wrong_type("environment", "a topic", v)),
        };
        let mut spec = CompositionSpec {
            service,
            variants,
            neighbours,
            replicate,
            window,
            reward: RewardMetric::from_params(params)?,
            environment,
            vetoed: Vec::new(),
        };
        if spec.count() > MAX_COMPOSITIONS {
            return Err(ParamError::out_of_range(
                "variants",
                format!("at most {MAX_COMPOSITIONS} compositions in all"),
            ));
        }
        spec.vetoed = spec.vetoes(params)?;
        Ok(spec)
    }

    /// The `veto` list: names of this spec's compositions.
    fn vetoes(&self, params: &Value) -> Result<Vec<String>, ParamError> {
        let Some(v) = params.get("veto") else {
            return Ok(Vec::new());
        };
        let Value::List(items) = v else {
            return Err(ParamError::wrong_type("veto", "a list of compositions", v));
        };
        let names: Vec<String> = self
            .compositions()
            .iter()
            .map(ToString::to_string)
            .collect();
        items
            .iter()
            .map(|item| match item.as_str() {
                Some(c) if names.iter().any(|n| n == c) => Ok(c.to_owned()),
                _ => Err(ParamError::new(
                    "veto",
                    ParamErrorKind::Invalid,
                    format!(
                        "{item} is not one of the compositions ({})",
                        names.join(", ")
                    ),
                )),
            })
            .collect()
    }

    fn count(&self) -> usize {
        let n = self.neighbours.len();
        let replicated = if self.replicate {
            n.saturating_sub(1)
        } else {
            0
        };
        self.variants.len() * (1 + n + replicated)
    }

    /// Every composition, variant by variant: local, relocated to each neighbour, replicated
    /// over the first 2, 3, … neighbours.
    pub fn compositions(&self) -> Vec<Composition> {
        let mut placements = vec![Placement::Local];
        placements.extend(self.neighbours.iter().cloned().map(Placement::Relocated));
        if self.replicate {
            for k in 2..=self.neighbours.len() {
                placements.push(Placement::Replicated(self.neighbours[..k].to_vec()));
            }
        }
        self.variants
            .iter()
            .flat_map(|v| {
                placements.iter().map(|p| Composition {
                    variant: v.clone(),
                    placement: p.clone(),
                })
            })
            .collect()
    }

    /// The parameters without the keys the agent reads: what the learner kind gets.
    pub fn learner_params(params: &Value) -> Value {
        match params {
            Value::Map(m) => Value::Map(
                m.iter()
                    .filter(|(k, _)| !Self::KEYS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// The learners plugged into one agent: what policies and operators read, and their vetoes.
/// Cloning gives another handle to the same learners.
#[derive(Clone, Default)]
pub struct Learners {
    table: Arc<Mutex<BTreeMap<String, Arc<Plugged>>>>,
}

impl fmt::Debug for Learners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(lock(&self.table).keys()).finish()
    }
}

/// One plugged learner, shared by the agent's window loop and whoever reads it.
pub(crate) struct Plugged {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) spec: CompositionSpec,
    pub(crate) compositions: Vec<Composition>,
    pub(crate) names: Vec<String>,
    pub(crate) learner: Mutex<Box<dyn Learner>>,
    pub(crate) vetoed: Mutex<BTreeSet<String>>,
    pub(crate) state: Mutex<PluggedState>,
    pub(crate) stop: CancellationToken,
}

/// Where a plugged learner stands.
#[derive(Default)]
pub(crate) struct PluggedState {
    pub(crate) current: Option<usize>,
    pub(crate) windows: u64,
    /// The variant each neighbour was last taught.
    pub(crate) taught: BTreeMap<String, String>,
}

/// What a plugged learner is and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnerInfo {
    /// The instance name.
    pub name: String,
    /// The kind it was made from.
    pub kind: String,
    /// The service it composes.
    pub service: String,
    /// Every composition, in table order.
    pub compositions: Vec<String>,
    /// The composition in force.
    pub current: Option<String>,
    /// Windows ended so far.
    pub windows: u64,
    /// The compositions policies vetoed.
    pub vetoed: Vec<String>,
}

impl LearnerInfo {
    /// As a map, for policies.
    pub fn to_value(&self) -> Value {
        let list = |l: &[String]| Value::List(l.iter().map(|s| Value::from(s.as_str())).collect());
        Value::map([
            ("name", Value::from(self.name.as_str())),
            ("kind", Value::from(self.kind.as_str())),
            ("service", Value::from(self.service.as_str())),
            ("compositions", list(&self.compositions)),
            ("current", Value::from(self.current.clone())),
            ("windows", Value::Int(self.windows as i64)),
            ("vetoed", list(&self.vetoed)),
        ])
    }
}

impl Learners {
    /// The plugged learners.
    pub fn info(&self) -> Vec<LearnerInfo> {
        let all: Vec<Arc<Plugged>> = lock(&self.table).values().cloned().collect();
        all.iter().map(|p| p.info()).collect()
    }

    /// One plugged learner.
    pub fn get(&self, name: &str) -> Option<LearnerInfo> {
        self.plugged(name).map(|p| p.info())
    }

    /// What a learner knows (its kind's [`Learner::tables`]), if it is plugged.
    pub fn tables(&self, name: &str) -> Option<Value> {
        let p = self.plugged(name)?;
        let tables = lock(&p.learner).tables();
        Some(tables)
    }

    /// Vetoes a composition of a learner (or lifts the veto): from the next window on, the
    /// learner picks among the others, and if every composition is vetoed the one in force
    /// stays. False if there is no such learner or composition.
    pub fn veto(&self, learner: &str, composition: &str, vetoed: bool) -> bool {
        let Some(p) = self.plugged(learner) else {
            return false;
        };
        if !p.names.iter().any(|n| n == composition) {
            return false;
        }
        let mut set = lock(&p.vetoed);
        if vetoed {
            set.insert(composition.to_owned());
        } else {
            set.remove(composition);
        }
        true
    }

    /// Unplugs a learner; the composition in force stays. False if there was none of that
    /// name.
    pub fn unplug(&self, name: &str) -> bool {
        let p = lock(&self.table).remove(name);
        p.inspect(|p| p.stop.cancel()).is_some()
    }

    pub(crate) fn plugged(&self, name: &str) -> Option<Arc<Plugged>> {
        lock(&self.table).get(name).cloned()
    }

    /// Adds a learner unless one of its name is plugged.
    pub(crate) fn insert(&self, p: Arc<Plugged>) -> Result<(), PlugError> {
        let mut table = lock(&self.table);
        if table.contains_key(&p.name) {
            return Err(PlugError::Taken(p.name.clone()));
        }
        table.insert(p.name.clone(), p);
        Ok(())
    }
}

/// What the agent has, for checking a learner's service and variants.
pub(crate) struct Has<'a> {
    pub(crate) service: &'a dyn Fn(&str) -> bool,
    pub(crate) behaviour: &'a dyn Fn(&str) -> bool,
}

impl Plugged {
    /// Reads a learner's parameters, checks the agent has its service and variants, and makes
    /// it from its kind — the same checks whether a manifest is checked or a learner plugged.
    pub(crate) fn new(
        kinds: &super::Kinds,
        kind: &str,
        name: &str,
        params: &Value,
        has: &Has<'_>,
    ) -> Result<Plugged, PlugError> {
        let bad = |error| PlugError::Params {
            name: name.to_owned(),
            error,
        };
        if !is_valid_name(name) {
            return Err(bad(ParamError::out_of_range("name", "a valid name")));
        }
        let spec = CompositionSpec::from_params(params).map_err(bad)?;
        let missing = |what, missing: &str| PlugError::Missing {
            name: name.to_owned(),
            what,
            missing: missing.to_owned(),
        };
        if !(has.service)(&spec.service) {
            return Err(missing("service", &spec.service));
        }
        if let Some(v) = spec.variants.iter().find(|v| !(has.behaviour)(v)) {
            return Err(missing("behaviour", v));
        }
        let compositions = spec.compositions();
        let names: Vec<String> = compositions.iter().map(ToString::to_string).collect();
        let own = CompositionSpec::learner_params(params);
        let learner = kinds.make_learner(kind, name, &names, &own)?;
        let vetoed = spec.vetoed.iter().cloned().collect();
        Ok(Plugged {
            name: name.to_owned(),
            kind: kind.to_owned(),
            spec,
            compositions,
            names,
            learner: Mutex::new(learner),
            vetoed: Mutex::new(vetoed),
            state: Mutex::default(),
            stop: CancellationToken::new(),
        })
    }

    fn info(&self) -> LearnerInfo {
        let state = lock(&self.state);
        LearnerInfo {
            name: self.name.clone(),
            kind: self.kind.clone(),
            service: self.spec.service.clone(),
            compositions: self.names.clone(),
            current: state.current.map(|i| self.names[i].clone()),
            windows: state.windows,
            vetoed: lock(&self.vetoed).iter().cloned().collect(),
        }
    }
}

/// A list of distinct valid names, if given.
fn names(params: &Value, key: &str) -> Result<Option<Vec<String>>, ParamError> {
    let Some(v) = params.get(key) else {
        return Ok(None);
    };
    let wrong = || ParamError::wrong_type(key, "a list of names", v);
    let Value::List(items) = v else {
        return Err(wrong());
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let name = item
            .as_str()
            .filter(|s| is_valid_name(s))
            .ok_or_else(wrong)?;
        if out.iter().any(|n| n == name) {
            return Err(ParamError::new(
                key,
                ParamErrorKind::Invalid,
                format!("`{name}` is listed twice"),
            ));
        }
        out.push(name.to_owned());
    }
    if out.is_empty() {
        return Err(ParamError::out_of_range(key, "at least one name"));
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(yaml: &str) -> Value {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn compositions_are_variants_times_placements() {
        let spec = CompositionSpec::from_params(&params(
            "{service: s, variants: [a, b, c], neighbours: [h1, h2, h3]}",
        ))
        .unwrap();
        let all = spec.compositions();
        // Local, three relocations, replication over two and over three.
        assert_eq!(all.len(), 3 * 6);
        assert_eq!(all[5].to_string(), "a@h1+h2+h3");
        assert_eq!(spec.count(), all.len());
        let no_rep = CompositionSpec::from_params(&params(
            "{service: s, neighbours: [h1, h2], replicate: false}",
        ))
        .unwrap();
        let names: Vec<String> = no_rep
            .compositions()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(names, ["s", "s@h1", "s@h2"]);
    }

    #[test]
    fn bad_parameters_name_the_key() {
        for (yaml, key) in [
            ("{variants: [a]}", "service"),
            ("{service: s, variants: []}", "variants"),
            ("{service: s, variants: [a, a]}", "variants"),
            ("{service: s, neighbours: ['bad name']}", "neighbours"),
            ("{service: s, window: 0s}", "window"),
            ("{service: s, reward: {best: 1s, worst: 10ms}}", "reward"),
            ("{service: s, reward: {topic: t}}", "reward"),
            ("{service: s, environment: 3}", "environment"),
            ("{service: s, replicate: yes please}", "replicate"),
        ] {
            let err = CompositionSpec::from_params(&params(yaml)).unwrap_err();
            assert_eq!(err.key(), key, "{yaml}: {err}");
        }
    }

    #[test]
    fn a_veto_list_names_compositions_of_the_spec() {
        let ok = params("{service: s, neighbours: [h1], veto: [s@h1]}");
        assert_eq!(CompositionSpec::from_params(&ok).unwrap().vetoed, ["s@h1"]);
        for bad in [
            "{service: s, veto: [s@h1]}",
            "{service: s, veto: s}",
            "{service: s, veto: [3]}",
        ] {
            let err = CompositionSpec::from_params(&params(bad)).unwrap_err();
            assert_eq!(err.key(), "veto", "{bad}: {err}");
        }
    }

    #[test]
    fn too_many_compositions_are_refused() {
        let neighbours: Vec<String> = (0..40).map(|i| format!("h{i}")).collect();
        let variants: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
        let yaml = format!(
            "{{service: s, variants: [{}], neighbours: [{}]}}",
            variants.join(","),
            neighbours.join(",")
        );
        assert!(CompositionSpec::from_params(&params(&yaml)).is_err());
    }

    #[test]
    fn learner_params_drop_the_keys_the_agent_reads() {
        let p = params("{service: s, window: 2s, bound: tuned, exploration: 2}");
        let rest = CompositionSpec::learner_params(&p);
        assert_eq!(rest, params("{bound: tuned, exploration: 2}"));
    }

    #[test]
    fn field_rewards_normalise_and_invert_costs() {
        let p = params(
            "{service: s, reward: {topic: frame, field: ms, low: 10, high: 110, lower_is_better: true}}",
        );
        let m = CompositionSpec::from_params(&p).unwrap().reward;
        assert_eq!(m.reward(35.0), 0.75);
        assert_eq!(m.reward(f64::NAN), 0.0);
    }
}
