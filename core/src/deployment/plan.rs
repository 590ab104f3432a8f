//! Configurations, actions and the search for a plan: hill-climbing with a horizon, and an
//! exhaustive search over the same actions to compare it with on small cases.

use std::collections::BTreeMap;
use std::fmt;

/// Where a deployment's members run: each member's name and its host. Members the plan adds
/// have provisional names (`+1`, `+2`, …) until the actuator starts them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Configuration {
    members: BTreeMap<String, String>,
}

impl Configuration {
    /// A configuration from `(member, host)` pairs.
    ///
    /// ```
    /// use selflet_core::deployment::Configuration;
    /// let c = Configuration::from_pairs([("w1", "h1"), ("w2", "h1")]);
    /// assert_eq!(c.on("h1"), 2);
    /// ```
    pub fn from_pairs<M: Into<String>, H: Into<String>>(
        pairs: impl IntoIterator<Item = (M, H)>,
    ) -> Configuration {
        Configuration {
            members: pairs
                .into_iter()
                .map(|(m, h)| (m.into(), h.into()))
                .collect(),
        }
    }

    /// Each member and its host, by name.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members.iter().map(|(m, h)| (m.as_str(), h.as_str()))
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The host a member runs on.
    pub fn host_of(&self, member: &str) -> Option<&str> {
        self.members.get(member).map(String::as_str)
    }

    /// How many members run on `host`.
    pub fn on(&self, host: &str) -> usize {
        self.members.values().filter(|h| *h == host).count()
    }

    /// Whether a member is one a plan adds, not yet started.
    pub fn is_new(member: &str) -> bool {
        member.starts_with('+')
    }

    /// The configuration after `action` (an action that does not apply changes nothing).
    pub fn apply(&self, action: &Action) -> Configuration {
        let mut next = self.clone();
        match action {
            Action::Add { host } => {
                let n = next.members.keys().filter(|m| Self::is_new(m)).count();
                next.members.insert(format!("+{}", n + 1), host.clone());
            }
            Action::Remove { member } => {
                next.members.remove(member);
            }
            Action::Move { member, to } => {
                if let Some(h) = next.members.get_mut(member) {
                    h.clone_from(to);
                }
            }
        }
        next
    }

    /// The members per host, as a sorted list of `(host, count)`: two configurations with the
    /// same shape are the same to a search that does not care about names.
    fn shape(&self) -> Vec<(&str, usize)> {
        let mut out: BTreeMap<&str, usize> = BTreeMap::new();
        for h in self.members.values() {
            *out.entry(h).or_default() += 1;
        }
        out.into_iter().collect()
    }
}

/// One change to a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Start a new member on a host.
    Add {
        /// Where.
        host: String,
    },
    /// Stop a member.
    Remove {
        /// Which.
        member: String,
    },
    /// Stop a member and start its replacement on another host.
    Move {
        /// Which.
        member: String,
        /// Where to.
        to: String,
    },
}

impl Action {
    /// The kind, as logs and counters name it: `add`, `remove`, `move`.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Add { .. } => "add",
            Action::Remove { .. } => "remove",
            Action::Move { .. } => "move",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Add { host } => write!(f, "add on {host}"),
            Action::Remove { member } => write!(f, "remove {member}"),
            Action::Move { member, to } => write!(f, "move {member} to {to}"),
        }
    }
}

/// What a deployment is worth: the user's utility, migration cost and constraints.
pub trait Objective {
    /// The error an evaluation may end with.
    type Error;
    /// The utility of a configuration (higher is better).
    fn utility(&mut self, c: &Configuration) -> Result<f64, Self::Error>;
    /// The cost of reaching `to` from `from` by `actions`.
    fn cost(
        &mut self,
        from: &Configuration,
        actions: &[Action],
        to: &Configuration,
    ) -> Result<f64, Self::Error>;
    /// Whether a configuration satisfies every constraint.
    fn feasible(&mut self, c: &Configuration) -> Result<bool, Self::Error>;
}

/// The bounds of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    /// At most this many actions per plan (Rhizoma's horizon n: 2 or 3).
    pub horizon: usize,
    /// The hosts members may be added on or moved to.
    pub hosts: Vec<String>,
    /// Fewest members a plan may leave.
    pub min_members: usize,
    /// Most members a plan may reach.
    pub max_members: usize,
}

/// A plan: actions, and what they are expected to bring.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The actions, in order (at most the horizon).
    pub actions: Vec<Action>,
    /// The configuration they lead to.
    pub target: Configuration,
    /// The utility of the current configuration.
    pub utility_before: f64,
    /// The utility of the target.
    pub utility: f64,
    /// The migration cost of the actions.
    pub cost: f64,
}

impl Plan {
    /// The objective's improvement: utility gained minus cost.
    pub fn gain(&self) -> f64 {
        self.utility - self.cost - self.utility_before
    }

    fn stay(c: &Configuration, utility: f64) -> Plan {
        Plan {
            actions: Vec::new(),
            target: c.clone(),
            utility_before: utility,
            utility,
            cost: 0.0,
        }
    }
}

impl Search {
    /// Every single action that applies to `c` within the bounds.
    pub fn moves(&self, c: &Configuration) -> Vec<Action> {
        let mut out = Vec::new();
        if c.len() < self.max_members {
            out.extend(self.hosts.iter().map(|h| Action::Add { host: h.clone() }));
        }
        for (m, at) in c.members() {
            if c.len() > self.min_members {
                out.push(Action::Remove {
                    member: m.to_owned(),
                });
            }
            out.extend(
                self.hosts
                    .iter()
                    .filter(|h| *h != at)
                    .map(|h| Action::Move {
                        member: m.to_owned(),
                        to: h.clone(),
                    }),
            );
        }
        out
    }

    /// Hill-climbing: from `current`, up to `horizon` times, take the single action that most
    /// improves utility − cost (among those leading to a feasible configuration; an
    /// infeasible one only while no feasible one has been found), stopping when none does.
    /// Returns the best feasible plan met on the way, the empty plan if none beats staying —
    /// and no plan at all (`Ok(None)`) when neither the current configuration nor any reached
    /// is feasible.
    pub fn hill_climb<O: Objective>(
        &self,
        current: &Configuration,
        obj: &mut O,
    ) -> Result<Option<Plan>, O::Error> {
        let before = obj.utility(current)?;
        let mut best = obj.feasible(current)?.then(|| Plan::stay(current, before));
        let mut at = current.clone();
        let mut path: Vec<Action> = Vec::new();
        let mut score = (best.is_some(), before);
        for _ in 0..self.horizon {
            let mut step: Option<Step> = None;
            for a in self.moves(&at) {
                let next = at.apply(&a);
                let mut actions = path.clone();
                actions.push(a.clone());
                let utility = obj.utility(&next)?;
                let cost = obj.cost(current, &actions, &next)?;
                let score = (obj.feasible(&next)?, utility - cost);
                if step.as_ref().is_none_or(|b| better(score, b.score)) {
                    step = Some(Step {
                        score,
                        action: a,
                        next,
                        utility,
                        cost,
                    });
                }
            }
            let Some(s) = step.filter(|s| better(s.score, score)) else {
                break;
            };
            path.push(s.action);
            at = s.next;
            score = s.score;
            if score.0 {
                let plan = Plan {
                    actions: path.clone(),
                    target: at.clone(),
                    utility_before: before,
                    utility: s.utility,
                    cost: s.cost,
                };
                keep_better(&mut best, plan);
            }
        }
        Ok(best)
    }

    /// The best feasible plan of at most `horizon` actions, trying every sequence (members on
    /// the same host count as one shape, so equal outcomes are evaluated once). Exponential in
    /// the horizon: for small cases, to measure what hill-climbing misses.
    pub fn exhaustive<O: Objective>(
        &self,
        current: &Configuration,
        obj: &mut O,
    ) -> Result<Option<Plan>, O::Error> {
        let before = obj.utility(current)?;
        let mut best = obj.feasible(current)?.then(|| Plan::stay(current, before));
        let mut seen = std::collections::HashSet::new();
        let mut frontier = vec![(current.clone(), Vec::<Action>::new())];
        for _ in 0..self.horizon {
            let mut next_frontier = Vec::new();
            for (at, path) in frontier {
                for a in self.moves(&at) {
                    let next = at.apply(&a);
                    let mut actions = path.clone();
                    actions.push(a);
                    let key = (
                        next.shape()
                            .into_iter()
                            .map(|(h, n)| (h.to_owned(), n))
                            .collect::<Vec<_>>(),
                        kinds(&actions),
                    );
                    if !seen.insert(key) {
                        continue;
                    }
                    if obj.feasible(&next)? {
                        let plan = Plan {
                            utility: obj.utility(&next)?,
                            cost: obj.cost(current, &actions, &next)?,
                            actions: actions.clone(),
                            target: next.clone(),
                            utility_before: before,
                        };
                        keep_better(&mut best, plan);
                    }
                    next_frontier.push((next, actions));
                }
            }
            frontier = next_frontier;
        }
        Ok(best)
    }
}

/// Keeps `candidate` in `best` if it beats what is there on utility − cost.
fn keep_better(best: &mut Option<Plan>, candidate: Plan) {
    let value = |p: &Plan| p.utility - p.cost;
    if best.as_ref().is_none_or(|b| value(&candidate) > value(b)) {
        *best = Some(candidate);
    }
}

/// The best next action of a hill-climbing step.
struct Step {
    score: (bool, f64),
    action: Action,
    next: Configuration,
    utility: f64,
    cost: f64,
}

/// How many actions of each kind a path has: two paths to the same shape cost the same when
/// they have the same kinds.
fn kinds(actions: &[Action]) -> [usize; 3] {
    let mut out = [0; 3];
    for a in actions {
        out[match a {
            Action::Add { .. } => 0,
            Action::Remove { .. } => 1,
            Action::Move { .. } => 2,
        }] += 1;
    }
    out
}

/// Feasible beats infeasible; then the higher objective.
fn better(a: (bool, f64), b: (bool, f64)) -> bool {
    match (a.0, b.0) {
        (true, false) => true,
        (false, true) => false,
        _ => a.1 > b.1 + 1e-12,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Utility: one point per member on a fast host, half on a slow one, minus a crowding
    /// penalty; a host holds at most two members; adding costs 0.1.
    struct Toy;

    impl Objective for Toy {
        type Error = ();
        fn utility(&mut self, c: &Configuration) -> Result<f64, ()> {
            let mut u = 0.0;
            for (_, h) in c.members() {
                u += if h.starts_with("fast") { 1.0 } else { 0.5 };
            }
            Ok(u - 0.2 * (c.len() as f64).powi(2))
        }
        fn cost(&mut self, _: &Configuration, a: &[Action], _: &Configuration) -> Result<f64, ()> {
            Ok(0.1 * a.iter().filter(|a| matches!(a, Action::Add { .. })).count() as f64)
        }
        fn feasible(&mut self, c: &Configuration) -> Result<bool, ()> {
            Ok(c.members().all(|(_, h)| c.on(h) <= 2))
        }
    }

    fn search(horizon: usize) -> Search {
        Search {
            horizon,
            hosts: vec!["fast1".into(), "slow1".into(), "slow2".into()],
            min_members: 1,
            max_members: 6,
        }
    }

    #[test]
    fn hill_climbing_moves_members_to_the_better_host() {
        // From one member on a slow host, the best first step is to move it (0.3 → 0.8),
        // and the second to add another beside it (→ 1.2 − 0.1 for the addition).
        let c = Configuration::from_pairs([("a", "slow1")]);
        let plan = search(2).hill_climb(&c, &mut Toy).unwrap().unwrap();
        assert_eq!(
            plan.actions,
            vec![
                Action::Move {
                    member: "a".into(),
                    to: "fast1".into()
                },
                Action::Add {
                    host: "fast1".into()
                }
            ]
        );
        assert_eq!(plan.target.on("fast1"), 2);
        assert!((plan.gain() - 0.8).abs() < 1e-9);
        // With a horizon of one, only the move.
        let plan = search(1).hill_climb(&c, &mut Toy).unwrap().unwrap();
        assert_eq!(plan.actions.len(), 1);
        assert_eq!(plan.target.host_of("a"), Some("fast1"));
    }

    #[test]
    fn no_plan_changes_more_members_than_the_horizon() {
        let c = Configuration::from_pairs([("a", "slow1"), ("b", "slow1"), ("c", "slow2")]);
        for h in 0..4 {
            let plan = search(h).hill_climb(&c, &mut Toy).unwrap().unwrap();
            assert!(plan.actions.len() <= h);
            let plan = search(h).exhaustive(&c, &mut Toy).unwrap().unwrap();
            assert!(plan.actions.len() <= h);
        }
    }

    #[test]
    fn exhaustive_search_is_never_worse_than_hill_climbing() {
        let c = Configuration::from_pairs([("a", "slow1"), ("b", "slow1"), ("c", "slow2")]);
        for h in 1..4 {
            let hc = search(h).hill_climb(&c, &mut Toy).unwrap().unwrap();
            let ex = search(h).exhaustive(&c, &mut Toy).unwrap().unwrap();
            assert!(ex.gain() >= hc.gain() - 1e-9, "horizon {h}");
        }
    }

    #[test]
    fn an_infeasible_configuration_is_never_a_target() {
        // Three members on one host: over its limit of two; every plan must fix it.
        let c = Configuration::from_pairs([("a", "fast1"), ("b", "fast1"), ("c", "fast1")]);
        let plan = search(1).hill_climb(&c, &mut Toy).unwrap().unwrap();
        assert!(Toy.feasible(&plan.target).unwrap());
        assert!(!plan.actions.is_empty());
    }
}
