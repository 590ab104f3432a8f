//! Upper-confidence-bound learning over a fixed list of actions, and the grouped-threshold
//! environment classifier of seed 000 (Porter & Rodrigues Filho): the pieces a learner of
//! compositions keeps one of per environment class.
//!
//! [`Ucb`] scores action k, tried n_k times out of n, with mean reward r̄_k in `[0, 1]`:
//!
//! | [`Bound`] | score |
//! |---|---|
//! | [`Bound::Tuned`] (default) | r̄_k + (1/c)·√((ln n / n_k)·min(¼, V_k)), V_k = var_k + √(2 ln n / n_k) — UCB1-Tuned (Auer et al. 2002) |
//! | [`Bound::Ucb1`] | r̄_k + (1/c)·√(2 ln n / n_k) |
//! | [`Bound::Printed`] | r̄_k + (1/c)·√(ln n / n_k)·¼·(2 ln n / n_k) — the formula as seed 000 prints it |
//!
//! c is the exploration constant the paper divides the bound by. Every action is tried once
//! first, in order, and ties go to the lowest index, so a run is repeatable. The printed
//! formula is kept because it is what the paper shows; its pieces are UCB1-Tuned's, garbled,
//! and it shrinks as (ln n)^{3/2} / n_k^{3/2}, faster than any confidence bound should, so it
//! stops exploring early.

use std::collections::BTreeMap;

use selflet_core::Value;
use selflet_core::error::BoxError;
use selflet_core::prediction::learner::{Decision, Learner as CompositionLearner};
use selflet_core::prediction::{ParamError, ParamErrorKind, param_f64, param_str};

/// Which confidence bound [`Ucb`] adds to an action's mean reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Bound {
    /// UCB1: √(2 ln n / n_k).
    Ucb1,
    /// UCB1-Tuned: √((ln n / n_k)·min(¼, V_k)), from the variance of the rewards seen.
    #[default]
    Tuned,
    /// The paper's printed formula, read literally.
    Printed,
}

impl Bound {
    /// The bound of this name: `ucb1`, `ucb1_tuned` or `printed`.
    pub fn from_name(name: &str) -> Option<Bound> {
        match name {
            "ucb1" => Some(Bound::Ucb1),
            "ucb1_tuned" => Some(Bound::Tuned),
            "printed" => Some(Bound::Printed),
            _ => None,
        }
    }
}

/// What has been seen of one action.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Arm {
    /// n_k: how often it was taken.
    pub pulls: u64,
    /// r̄_k: its mean reward.
    pub mean: f64,
    /// The mean of its squared rewards, for the variance.
    pub mean_square: f64,
}

impl Arm {
    /// The variance of its rewards.
    pub fn variance(&self) -> f64 {
        (self.mean_square - self.mean * self.mean).max(0.0)
    }
}

/// One UCB table: the statistics of a fixed list of actions.
///
/// ```
/// use selflet_plugins::ucb::{Bound, Ucb};
///
/// let mut ucb = Ucb::new(3, Bound::Tuned, 1.0);
/// // Each action once, in order ...
/// for k in 0..3 {
///     assert_eq!(ucb.choose(), k);
///     ucb.reward(k, [0.2, 0.9, 0.4][k]);
/// }
/// // ... then the one that did best.
/// assert_eq!(ucb.choose(), 1);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Ucb {
    bound: Bound,
    exploration: f64,
    arms: Vec<Arm>,
    total: u64,
}

impl Ucb {
    /// A table over `actions` actions. `exploration` (c > 0) divides the confidence bound:
    /// above 1 the learner explores less, below 1 more. A c that is not positive and finite
    /// is taken as 1.
    pub fn new(actions: usize, bound: Bound, exploration: f64) -> Ucb {
        let exploration = if exploration.is_finite() && exploration > 0.0 {
            exploration
        } else {
            1.0
        };
        Ucb {
            bound,
            exploration,
            arms: vec![Arm::default(); actions],
            total: 0,
        }
    }

    /// The action to take next: an untried one first, then the highest score.
    pub fn choose(&self) -> usize {
        self.choose_among(|_| true).unwrap_or(0)
    }

    /// The same among the actions `allowed` lets through; `None` if it lets none through.
    pub fn choose_among(&self, allowed: impl Fn(usize) -> bool) -> Option<usize> {
        let open = |k: &usize| allowed(*k);
        if let Some(untried) = (0..self.arms.len())
            .filter(open)
            .find(|&k| self.arms[k].pulls == 0)
        {
            return Some(untried);
        }
        let mut best: Option<(usize, f64)> = None;
        for k in (0..self.arms.len()).filter(open) {
            let arm = &self.arms[k];
            let score = arm.mean + self.confidence(arm) / self.exploration;
            if best.is_none_or(|(_, b)| score > b) {
                best = Some((k, score));
            }
        }
        best.map(|(k, _)| k)
    }

    fn confidence(&self, arm: &Arm) -> f64 {
        let ln_n = (self.total as f64).ln();
        let n_k = arm.pulls as f64;
        match self.bound {
            Bound::Ucb1 => (2.0 * ln_n / n_k).sqrt(),
            Bound::Tuned => {
                let v = arm.variance() + (2.0 * ln_n / n_k).sqrt();
                (ln_n / n_k * v.min(0.25)).sqrt()
            }
            Bound::Printed => (ln_n / n_k).sqrt() * 0.25 * (2.0 * ln_n / n_k),
        }
    }

    /// Records the reward of taking `action`, clamped to `[0, 1]` (a reward that is not a
    /// number counts as 0). An action outside the table is ignored.
    pub fn reward(&mut self, action: usize, reward: f64) {
        let r = if reward.is_nan() {
            0.0
        } else {
            reward.clamp(0.0, 1.0)
        };
        let Some(arm) = self.arms.get_mut(action) else {
            return;
        };
        arm.pulls += 1;
        let n = arm.pulls as f64;
        arm.mean += (r - arm.mean) / n;
        arm.mean_square += (r * r - arm.mean_square) / n;
        self.total += 1;
    }

    /// What has been seen of each action.
    pub fn arms(&self) -> &[Arm] {
        &self.arms
    }

    /// n: every reward recorded.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// An observation of the environment: labelled values, such as
/// `{"static_share": 0.8, "rate": 120}` — what the agent hands every learner.
pub use selflet_core::prediction::learner::Observation;

/// How many environment classes a classifier keeps. Observations come from bus events, which
/// peers can feed; past this, an observation that matches no class is refused.
pub const MAX_CLASSES: usize = 256;

/// Why an observation was not classified.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClassifyError {
    /// A value is not a finite number.
    #[error("the value of `{0}` is not a finite number")]
    NotFinite(String),
    /// It matches no class and there are [`MAX_CLASSES`] already.
    #[error("{MAX_CLASSES} environment classes already, and this matches none")]
    Full,
}

/// Seed 000's grouped-threshold classifier: an observation belongs to a class if it has the
/// same labels and each value lies within that label's threshold of the class's; otherwise it
/// starts a new class. A class keeps the values it started with, so it does not drift.
///
/// ```
/// use selflet_plugins::ucb::{Classifier, Observation};
///
/// let mut c = Classifier::new(0.1);
/// let obs = |share: f64| Observation::from([("static_share".to_owned(), share)]);
/// assert_eq!(c.classify(&obs(0.80)), Ok(0));
/// assert_eq!(c.classify(&obs(0.85)), Ok(0)); // within 0.1
/// assert_eq!(c.classify(&obs(0.30)), Ok(1)); // a new environment
/// assert_eq!(c.classify(&obs(0.78)), Ok(0)); // the first, seen again
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    default_threshold: f64,
    thresholds: BTreeMap<String, f64>,
    classes: Vec<Observation>,
}

impl Classifier {
    /// A classifier whose labels all have `threshold`.
    pub fn new(threshold: f64) -> Classifier {
        Classifier {
            default_threshold: threshold.abs(),
            thresholds: BTreeMap::new(),
            classes: Vec::new(),
        }
    }

    /// The same with `label`'s own threshold.
    pub fn with_threshold(mut self, label: impl Into<String>, threshold: f64) -> Classifier {
        self.thresholds.insert(label.into(), threshold.abs());
        self
    }

    /// The class of `observation`: the closest class it matches (distance: the largest
    /// value's difference relative to its threshold), or a new one.
    pub fn classify(&mut self, observation: &Observation) -> Result<usize, ClassifyError> {
        if let Some((label, _)) = observation.iter().find(|(_, v)| !v.is_finite()) {
            return Err(ClassifyError::NotFinite(label.clone()));
        }
        let closest = self
            .classes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| self.distance(c, observation).map(|d| (i, d)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((i, _)) = closest {
            return Ok(i);
        }
        if self.classes.len() >= MAX_CLASSES {
            return Err(ClassifyError::Full);
        }
        self.classes.push(observation.clone());
        Ok(self.classes.len() - 1)
    }

    /// How far `o` is from `class`, in thresholds, if it matches it.
    fn distance(&self, class: &Observation, o: &Observation) -> Option<f64> {
        if class.len() != o.len() {
            return None;
        }
        let mut worst: f64 = 0.0;
        for ((label, c), (other, v)) in class.iter().zip(o) {
            if label != other {
                return None;
            }
            let t = self
                .thresholds
                .get(label)
                .copied()
                .unwrap_or(self.default_threshold);
            let d = (v - c).abs();
            if d > t {
                return None;
            }
            worst = worst.max(if t == 0.0 { 0.0 } else { d / t });
        }
        Some(worst)
    }

    /// The classes, by index: the observation each started with.
    pub fn classes(&self) -> &[Observation] {
        &self.classes
    }
}

/// Why a [`Learner`] was not made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LearnerError {
    /// It was given no action.
    #[error("a learner needs at least one action")]
    NoActions,
    /// Two actions have the same name.
    #[error("the action `{0}` is listed twice")]
    Duplicate(String),
}

/// Seed 000's control loop over named actions: at the end of each observation window, the
/// environment seen picks the class (a new class gets a fresh table), the window's reward is
/// recorded for the action taken in that class's table, and that table picks the next action.
/// Tables of different classes share nothing, and a class seen again reuses its table.
///
/// ```
/// use selflet_core::prediction::learner::Learner as _;
/// use selflet_plugins::ucb::{Bound, Classifier, Learner, Observation};
///
/// let mut l = Learner::new(["local", "remote"], Bound::Tuned, 1.0, Classifier::new(0.1))?;
/// let busy = Observation::from([("load".to_owned(), 0.9)]);
/// let pick = |d: selflet_core::prediction::learner::Decision| d.composition.unwrap();
/// // Before the first window: untried actions first, in order.
/// assert_eq!(pick(l.window(&busy, None, &|_| true)?), "local");
/// assert_eq!(pick(l.window(&busy, Some(0.3), &|_| true)?), "remote");
/// assert_eq!(pick(l.window(&busy, Some(0.8), &|_| true)?), "remote"); // it did better
/// // A policy can veto an action: the learner picks among the others.
/// assert_eq!(pick(l.window(&busy, Some(0.8), &|a| a != "remote")?), "local");
/// # Ok::<(), selflet_core::error::BoxError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Learner {
    actions: Vec<String>,
    bound: Bound,
    exploration: f64,
    classifier: Classifier,
    tables: Vec<Ucb>,
    taken: Option<usize>,
    last_class: Option<usize>,
}

impl Learner {
    /// A learner over `actions` (at least one, names unique).
    pub fn new<S: Into<String>>(
        actions: impl IntoIterator<Item = S>,
        bound: Bound,
        exploration: f64,
        classifier: Classifier,
    ) -> Result<Learner, LearnerError> {
        let actions: Vec<String> = actions.into_iter().map(Into::into).collect();
        if actions.is_empty() {
            return Err(LearnerError::NoActions);
        }
        for (i, a) in actions.iter().enumerate() {
            if actions[..i].contains(a) {
                return Err(LearnerError::Duplicate(a.clone()));
            }
        }
        Ok(Learner {
            actions,
            bound,
            exploration,
            classifier,
            tables: Vec::new(),
            taken: None,
            last_class: None,
        })
    }

    fn class_of(&mut self, environment: &Observation) -> Result<usize, ClassifyError> {
        let class = self.classifier.classify(environment)?;
        while self.tables.len() <= class {
            let fresh = Ucb::new(self.actions.len(), self.bound, self.exploration);
            self.tables.push(fresh);
        }
        Ok(class)
    }

    /// The `ucb` learner kind, from the parameters the agent passes on: `bound` (`ucb1`,
    /// `ucb1_tuned` (default) or `printed`), `exploration` (c > 0, default 1), `threshold`
    /// (the classifier's, default 0.1) and `thresholds` (per label).
    pub fn from_params(actions: &[String], params: &Value) -> Result<Learner, ParamError> {
        let bound = param_str(params, "bound", "ucb1_tuned")?;
        let bound = Bound::from_name(bound)
            .ok_or_else(|| ParamError::out_of_range("bound", "one of ucb1, ucb1_tuned, printed"))?;
        let exploration = param_f64(params, "exploration", 1.0)?;
        if !(exploration.is_finite() && exploration > 0.0) {
            return Err(ParamError::out_of_range("exploration", "a positive number"));
        }
        let threshold = param_f64(params, "threshold", 0.1)?;
        if !(threshold.is_finite() && threshold >= 0.0) {
            return Err(ParamError::out_of_range("threshold", "a number ≥ 0"));
        }
        let mut classifier = Classifier::new(threshold);
        match params.get("thresholds") {
            None => {}
            Some(Value::Map(m)) => {
                for (label, t) in m {
                    let t = t
                        .as_f64()
                        .filter(|t| t.is_finite() && *t >= 0.0)
                        .ok_or_else(|| ParamError::wrong_type("thresholds", "numbers ≥ 0", t))?;
                    classifier = classifier.with_threshold(label.clone(), t);
                }
            }
            Some(v) => return Err(ParamError::wrong_type("thresholds", "a map", v)),
        }
        let known = ["bound", "exploration", "threshold", "thresholds"];
        if let Value::Map(m) = params
            && let Some(k) = m.keys().find(|k| !known.contains(&k.as_str()))
        {
            return Err(ParamError::new(
                k,
                ParamErrorKind::Invalid,
                format!("not a parameter of `ucb` (it takes {})", known.join(", ")),
            ));
        }
        Learner::new(actions.iter().cloned(), bound, exploration, classifier)
            .map_err(|e| ParamError::new("variants", ParamErrorKind::Invalid, e.to_string()))
    }

    /// The actions, in table order.
    pub fn actions(&self) -> &[String] {
        &self.actions
    }

    /// One table per environment class, by class index.
    pub fn tables(&self) -> &[Ucb] {
        &self.tables
    }

    /// The classifier, with the classes seen.
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }
}

impl CompositionLearner for Learner {
    /// The first call (no action taken yet) picks the first untried allowed action; an empty
    /// observation (nothing seen on the environment topic yet) counts as the last class.
    fn window(
        &mut self,
        environment: &Observation,
        reward: Option<f64>,
        allowed: &dyn Fn(&str) -> bool,
    ) -> Result<Decision, BoxError> {
        let last = self.last_class;
        let class = match last {
            Some(c) if environment.is_empty() => c,
            _ => self.class_of(environment)?,
        };
        self.last_class = Some(class);
        let table = &mut self.tables[class];
        if let (Some(k), Some(r)) = (self.taken, reward) {
            table.reward(k, r);
        }
        let actions = &self.actions;
        let next = table.choose_among(|k| allowed(&actions[k]));
        if next.is_some() {
            self.taken = next;
        }
        Ok(Decision {
            composition: next.map(|k| self.actions[k].clone()),
            class: Some(class),
        })
    }

    /// `{classes: [{environment: {label: value}, total: n, actions: {name: {pulls, mean}}}]}`.
    fn tables(&self) -> Value {
        let classes = self
            .tables
            .iter()
            .enumerate()
            .map(|(c, t)| {
                let env = self
                    .classifier
                    .classes()
                    .get(c)
                    .cloned()
                    .unwrap_or_default();
                let env = Value::Map(env.into_iter().map(|(k, v)| (k, Value::Float(v))).collect());
                let actions = self
                    .actions
                    .iter()
                    .zip(t.arms())
                    .map(|(name, arm)| {
                        let stats = Value::map([
                            ("pulls", Value::Int(arm.pulls as i64)),
                            ("mean", Value::Float(arm.mean)),
                        ]);
                        (name.clone(), stats)
                    })
                    .collect();
                Value::map([
                    ("environment", env),
                    ("total", Value::Int(t.total() as i64)),
                    ("actions", Value::Map(actions)),
                ])
            })
            .collect();
        Value::map([("classes", Value::List(classes))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rewards around each action's mean, ± `noise`, from a fixed sequence.
    fn play(ucb: &mut Ucb, means: &[f64], noise: f64, rounds: usize) -> Vec<u64> {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..rounds {
            let k = ucb.choose();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            ucb.reward(k, means[k] + noise * (2.0 * u - 1.0));
        }
        ucb.arms().iter().map(|a| a.pulls).collect()
    }

    #[test]
    fn every_bound_settles_on_the_best_action() {
        let means = [0.3, 0.5, 0.7, 0.62];
        for bound in [Bound::Ucb1, Bound::Tuned, Bound::Printed] {
            let mut ucb = Ucb::new(means.len(), bound, 1.0);
            let pulls = play(&mut ucb, &means, 0.1, 3000);
            assert!(pulls.iter().all(|&p| p >= 1), "{bound:?}: {pulls:?}");
            // UCB1's bound ignores how little rewards vary: it keeps trying the close
            // second (0.62) for longer.
            let share = if bound == Bound::Ucb1 { 0.65 } else { 0.9 };
            assert!(
                pulls[2] as f64 >= share * 3000.0,
                "{bound:?} should mostly take action 2: {pulls:?}"
            );
        }
    }

    #[test]
    fn tuned_explores_less_than_ucb1_when_rewards_vary_little() {
        let means = [0.3, 0.5, 0.7, 0.62];
        let wasted = |bound| {
            let mut ucb = Ucb::new(means.len(), bound, 1.0);
            let pulls = play(&mut ucb, &means, 0.05, 3000);
            3000 - pulls[2]
        };
        let (tuned, ucb1) = (wasted(Bound::Tuned), wasted(Bound::Ucb1));
        assert!(
            tuned < ucb1,
            "tuned {tuned} vs ucb1 {ucb1} pulls of other actions"
        );
    }

    #[test]
    fn a_larger_exploration_constant_explores_less() {
        let means = [0.3, 0.5, 0.7, 0.62];
        let wasted = |c| {
            let mut ucb = Ucb::new(means.len(), Bound::Ucb1, c);
            3000 - play(&mut ucb, &means, 0.1, 3000)[2]
        };
        assert!(wasted(4.0) < wasted(1.0));
    }

    #[test]
    fn rewards_are_clamped_and_strays_ignored() {
        let mut ucb = Ucb::new(2, Bound::Tuned, f64::NAN);
        ucb.reward(0, 7.0);
        ucb.reward(1, f64::NAN);
        ucb.reward(5, 1.0);
        assert_eq!(ucb.arms()[0].mean, 1.0);
        assert_eq!(ucb.arms()[1].mean, 0.0);
        assert_eq!(ucb.total(), 2);
    }

    #[test]
    fn classes_need_the_same_labels_and_values_within_each_threshold() {
        let mut c = Classifier::new(10.0).with_threshold("share", 0.1);
        let obs = |pairs: &[(&str, f64)]| -> Observation {
            pairs.iter().map(|(l, v)| (l.to_string(), *v)).collect()
        };
        assert_eq!(c.classify(&obs(&[("share", 0.8), ("rate", 100.0)])), Ok(0));
        assert_eq!(c.classify(&obs(&[("share", 0.75), ("rate", 108.0)])), Ok(0));
        assert_eq!(c.classify(&obs(&[("share", 0.8), ("rate", 120.0)])), Ok(1));
        assert_eq!(c.classify(&obs(&[("share", 0.8)])), Ok(2));
        assert_eq!(
            c.classify(&obs(&[("share", f64::INFINITY)])),
            Err(ClassifyError::NotFinite("share".into()))
        );
        assert_eq!(c.classes().len(), 3);
    }

    #[test]
    fn each_environment_has_its_own_table_and_a_returning_one_reuses_it() {
        let env = |x: f64| Observation::from([("mix".to_owned(), x)]);
        let best_in = |x: f64| if x < 0.5 { 0 } else { 2 };
        let mut l = Learner::new(["a", "b", "c"], Bound::Tuned, 1.0, Classifier::new(0.1)).unwrap();
        let mut step = |env: &Observation, reward| {
            let d = CompositionLearner::window(&mut l, env, reward, &|_| true).unwrap();
            d.composition.unwrap()
        };
        let mut taken = step(&env(0.2), None);
        let actions = ["a", "b", "c"];
        for phase in [0.2, 0.8, 0.2] {
            for _ in 0..200 {
                let k = actions.iter().position(|a| *a == taken).unwrap();
                let reward = if k == best_in(phase) { 0.9 } else { 0.4 };
                taken = step(&env(phase), Some(reward));
            }
            assert_eq!(taken, actions[best_in(phase)], "phase {phase}");
        }
        assert_eq!(l.tables().len(), 2, "two environments, two tables");
        // Back in the first environment, its table went on from where it was: every action
        // had been tried there, so nearly all its new windows went to the best one.
        let first = &l.tables()[0];
        assert_eq!(first.total(), 400);
        assert!(first.arms()[0].pulls > 350, "{:?}", first.arms());
    }

    #[test]
    fn learners_refuse_empty_or_duplicate_actions() {
        let c = || Classifier::new(1.0);
        let none: [&str; 0] = [];
        assert_eq!(
            Learner::new(none, Bound::Tuned, 1.0, c()),
            Err(LearnerError::NoActions)
        );
        assert_eq!(
            Learner::new(["a", "b", "a"], Bound::Tuned, 1.0, c()),
            Err(LearnerError::Duplicate("a".into()))
        );
    }

    #[test]
    fn the_number_of_classes_is_bounded() {
        let mut c = Classifier::new(0.5);
        for i in 0..MAX_CLASSES {
            let o = Observation::from([("x".to_owned(), i as f64 * 10.0)]);
            assert_eq!(c.classify(&o), Ok(i));
        }
        let o = Observation::from([("x".to_owned(), -100.0)]);
        assert_eq!(c.classify(&o), Err(ClassifyError::Full));
        // A known environment is still recognised.
        let o = Observation::from([("x".to_owned(), 20.2)]);
        assert_eq!(c.classify(&o), Ok(2));
    }
}
