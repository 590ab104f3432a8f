//! The deployment manager every member runs: each period it elects the coordinator (the
//! lowest-named live member), and the coordinator measures, plans and acts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use super::hosts::{HostStatus, Hosts};
use super::objective::ScriptObjective;
use super::plan::{Action, Configuration, Objective, Plan, Search};
use crate::agent::AgentHandle;
use crate::source::{LoadError, SourceFile};
use crate::sync::lock;
use crate::topic;
use crate::value::Value;

/// How the coordinator searches for a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Hill-climbing over single actions, up to the horizon (Rhizoma's).
    #[default]
    HillClimbing,
    /// Every plan up to the horizon: exponential, for small cases.
    Exhaustive,
}

/// A deployment manager's settings.
#[derive(Clone)]
pub struct Config {
    /// How often the coordinator plans (and every member checks who coordinates).
    pub period: Duration,
    /// At most this many actions per plan.
    pub horizon: usize,
    /// Fewest members a plan may leave.
    pub min_members: usize,
    /// Most members a plan may reach.
    pub max_members: usize,
    /// A plan runs only if its gain (utility − cost − utility now) exceeds this — unless the
    /// current configuration breaks a constraint, when any feasible plan runs.
    pub threshold: f64,
    /// Wall-clock time one search may take, all its script evaluations together.
    pub budget: Duration,
    /// Hill-climbing or exhaustive search.
    pub strategy: Strategy,
    /// Services the coordinator teaches each member it starts (if that member lacks them).
    pub teach: Vec<String>,
    /// Utility, cost and constraints (see [`ScriptObjective`]).
    pub objective: SourceFile,
    /// The objective's parameters: its state (`this`) starts as this map.
    pub params: Value,
    /// Where decisions are recorded (shared by clones of the config, so one log can follow a
    /// deployment whose coordinator changes).
    pub log: DecisionLog,
}

impl Config {
    /// The defaults (a period of a minute, horizon 2, 1 to 64 members, threshold 0, budget
    /// 1 s, hill-climbing) with an objective.
    pub fn new(objective: SourceFile) -> Config {
        Config {
            period: Duration::from_secs(60),
            horizon: 2,
            min_members: 1,
            max_members: 64,
            threshold: 0.0,
            budget: Duration::from_secs(1),
            strategy: Strategy::HillClimbing,
            teach: Vec::new(),
            objective,
            params: Value::Map(Default::default()),
            log: DecisionLog::default(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("period", &self.period)
            .field("horizon", &self.horizon)
            .field("min_members", &self.min_members)
            .field("max_members", &self.max_members)
            .field("threshold", &self.threshold)
            .field("strategy", &self.strategy)
            .field("objective", &self.objective.name())
            .finish_non_exhaustive()
    }
}

/// One period's decision of a coordinator.
#[derive(Debug, Clone)]
pub struct Decision {
    /// When.
    pub at: Instant,
    /// Who decided.
    pub coordinator: String,
    /// The configuration it found.
    pub before: Configuration,
    /// Whether `before` satisfied the constraints.
    pub feasible_before: bool,
    /// The best plan found (none: no feasible configuration within the horizon, or an error).
    pub plan: Option<Plan>,
    /// Whether the plan ran.
    pub executed: bool,
    /// Why nothing ran, or which actions failed.
    pub note: String,
    /// The members the plan started.
    pub started: Vec<String>,
    /// Teachings given to them (services × members that learned).
    pub taught: usize,
}

/// Decisions, in order, shared by the managers that record them.
#[derive(Debug, Clone, Default)]
pub struct DecisionLog(Arc<Mutex<Vec<Decision>>>);

impl DecisionLog {
    /// Every decision so far.
    pub fn decisions(&self) -> Vec<Decision> {
        lock(&self.0).clone()
    }

    fn push(&self, d: Decision) {
        lock(&self.0).push(d);
    }
}

/// Starts the deployment manager on a member: it runs until the agent stops.
///
/// Every member of a deployment runs one; each period each asks the hosts who the members
/// are, and the lowest-named member still on the network coordinates: it reads the hosts'
/// status, searches for a plan, runs it if it gains enough, and records the decision (in the
/// log, on its bus as `deployment.decision`, and in its trace). A coordinator that dies is
/// replaced within the time the transport takes to notice plus one period; a new coordinator
/// observes for one period before it acts. The objective's
/// state (what `observe` keeps) lives at the coordinator and starts over at a takeover.
pub fn manage(agent: &AgentHandle, hosts: Arc<dyn Hosts>, config: Config) -> Result<(), LoadError> {
    let mut objective = ScriptObjective::compile(&config.objective)?;
    objective.set_state(&config.params);
    let a = agent.clone();
    let stop = agent.loops_token();
    agent.spawn_task(|_| async move {
        let mut m = Manager {
            agent: a,
            hosts,
            config,
            objective,
            coordinating: false,
            last_coordinator: String::new(),
            start: Instant::now(),
        };
        let mut tick = tokio::time::interval_at(Instant::now() + m.config.period, m.config.period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if m.period().await.is_break() {
                break;
            }
        }
    });
    Ok(())
}

struct Manager {
    agent: AgentHandle,
    hosts: Arc<dyn Hosts>,
    config: Config,
    objective: ScriptObjective,
    coordinating: bool,
    last_coordinator: String,
    start: Instant,
}

impl Manager {
    async fn period(&mut self) -> std::ops::ControlFlow<()> {
        let me = self.agent.name().to_owned();
        let Ok(members) = self.hosts.members().await else {
            return std::ops::ControlFlow::Continue(());
        };
        let transport = self.agent.transport();
        let coordinator = members
            .iter()
            .map(|(m, _)| m.as_str())
            .filter(|m| *m == me || transport.is_member(m))
            .min()
            .unwrap_or(&me)
            .to_owned();
        if coordinator != me {
            self.coordinating = false;
            self.last_coordinator = coordinator;
            return std::ops::ControlFlow::Continue(());
        }
        let took_over = !self.coordinating;
        if took_over {
            self.coordinating = true;
            let previous = std::mem::take(&mut self.last_coordinator);
            tracing::info!(agent = %me, %previous, "deployment coordinator");
            let _ = self
                .agent
                .bus()
                .emit(&topic::DeploymentCoordinator {
                    coordinator: me.clone(),
                    previous,
                })
                .await;
        }
        let d = self.decide(took_over).await;
        let leaving = d.executed
            && d.plan.as_ref().is_some_and(|p| {
                p.actions.iter().any(
                    |a| matches!(a, Action::Remove { member } | Action::Move { member, .. } if *member == me),
                )
            });
        self.record(d).await;
        if leaving {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    }

    /// Measures, plans, and acts if the plan is worth it — except in the period it took over,
    /// which it only observes: a coordinator that took over from one that just acted would
    /// otherwise act on the same measurements again in the same instant, and its objective's
    /// state (forecasts) starts over.
    async fn decide(&mut self, took_over: bool) -> Decision {
        let me = self.agent.name().to_owned();
        let mut d = Decision {
            at: Instant::now(),
            coordinator: me,
            before: Configuration::default(),
            feasible_before: true,
            plan: None,
            executed: false,
            note: String::new(),
            started: Vec::new(),
            taught: 0,
        };
        let status = match self.hosts.status().await {
            Ok(s) => s,
            Err(e) => {
                d.note = format!("hosts: {e}");
                return d;
            }
        };
        // A member its host still lists but the network says is gone has failed: it is not
        // part of the configuration (its host may not know yet).
        let transport = self.agent.transport();
        let me = d.coordinator.clone();
        d.before = Configuration::from_pairs(status.iter().flat_map(|h| {
            h.members
                .iter()
                .filter(|m| **m == me || transport.is_member(m))
                .map(move |m| (m.clone(), h.name.clone()))
        }));
        match self.plan(&d.before, &status) {
            Ok((feasible, plan)) => {
                d.feasible_before = feasible;
                d.plan = plan;
            }
            Err(e) => {
                d.note = e.to_string();
                return d;
            }
        }
        let Some(plan) = d.plan.clone() else {
            d.note = "no feasible configuration within the horizon".into();
            return d;
        };
        if took_over {
            d.note = "took over this period: observing".into();
            return d;
        }
        if plan.actions.is_empty() || (d.feasible_before && plan.gain() <= self.config.threshold) {
            d.note = format!("gain {:.4} not above the threshold", plan.gain());
            return d;
        }
        d.executed = true;
        let (started, taught, failed) = self.act(&plan).await;
        d.started = started;
        d.taught = taught;
        d.note = failed.join("; ");
        d
    }

    fn plan(
        &mut self,
        current: &Configuration,
        status: &[HostStatus],
    ) -> Result<(bool, Option<Plan>), super::ObjectiveError> {
        let search = Search {
            horizon: self.config.horizon,
            hosts: status
                .iter()
                .filter(|h| h.up)
                .map(|h| h.name.clone())
                .collect(),
            min_members: self.config.min_members,
            max_members: self.config.max_members,
        };
        let time_s = self.start.elapsed().as_secs_f64();
        let mut p = self
            .objective
            .period(current, status, time_s, self.config.budget)?;
        let feasible = p.feasible(current)?;
        let plan = match self.config.strategy {
            Strategy::HillClimbing => search.hill_climb(current, &mut p)?,
            Strategy::Exhaustive => search.exhaustive(current, &mut p)?,
        };
        Ok((feasible, plan))
    }

    /// Runs a plan: every member it starts at once (additions and moves' replacements: a
    /// start may take a while, and they should not queue behind each other), then the stops
    /// — this member's own last. A move whose replacement did not start keeps its member.
    /// Returns the members started, the teachings given and what failed.
    async fn act(&self, plan: &Plan) -> (Vec<String>, usize, Vec<String>) {
        let me = self.agent.name();
        let mut failed = Vec::new();
        let starts = plan.actions.iter().filter_map(|a| match a {
            Action::Add { host } | Action::Move { to: host, .. } => Some(async move {
                let started = self.hosts.start(host).await;
                let taught = match &started {
                    Ok(name) => self.teach(name).await,
                    Err(_) => 0,
                };
                (a, started, taught)
            }),
            Action::Remove { .. } => None,
        });
        let mut started = Vec::new();
        let mut kept = Vec::new();
        let mut taught = 0;
        for (a, r, t) in futures_util::future::join_all(starts).await {
            taught += t;
            match r {
                Ok(name) => started.push(name),
                Err(e) => {
                    failed.push(format!("{a}: {e}"));
                    kept.push(a);
                }
            }
        }
        let mut stops: Vec<(&Action, &String)> = plan
            .actions
            .iter()
            .filter(|a| !kept.contains(a))
            .filter_map(|a| match a {
                Action::Remove { member } | Action::Move { member, .. } => Some((a, member)),
                Action::Add { .. } => None,
            })
            .collect();
        stops.sort_by_key(|(_, m)| *m == me);
        for (a, m) in stops {
            if let Err(e) = self.hosts.stop(m).await {
                failed.push(format!("{a}: {e}"));
            }
        }
        (started, taught, failed)
    }

    /// Teaches a new member the services of the config; returns how many it learned.
    async fn teach(&self, member: &str) -> usize {
        let mut taught = 0;
        for s in &self.config.teach {
            match self.agent.teach(s, member).await {
                Ok(()) => taught += 1,
                Err(e) => {
                    tracing::warn!(agent = %self.agent.name(), %member, service = %s, error = %e, "teaching a new member failed");
                }
            }
        }
        taught
    }

    async fn record(&self, d: Decision) {
        let (actions, utility_before, utility, cost) = match &d.plan {
            Some(p) => (
                Value::List(
                    p.actions
                        .iter()
                        .map(|a| Value::from(a.to_string()))
                        .collect(),
                ),
                p.utility_before,
                p.utility,
                p.cost,
            ),
            None => (Value::List(Vec::new()), 0.0, 0.0, 0.0),
        };
        let ev = topic::DeploymentDecision {
            coordinator: d.coordinator.clone(),
            members: d.before.len() as i64,
            actions,
            utility_before,
            utility,
            cost,
            executed: d.executed,
            note: d.note.clone(),
        };
        if d.executed {
            tracing::info!(agent = %d.coordinator, actions = %ev.actions, utility_before, utility, cost, note = %d.note, "deployment plan executed");
        } else {
            tracing::debug!(agent = %d.coordinator, note = %d.note, "deployment unchanged");
        }
        let _ = self.agent.bus().emit(&ev).await;
        self.config.log.push(d);
    }
}
