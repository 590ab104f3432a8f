//! The console's picture of the system, built from reports: the agents, who calls and
//! teaches whom, and a timeline. Reports may come from other processes, so each is checked
//! and bounded before it changes anything; a report that fails a check changes nothing.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use selflet_core::name::is_valid_name;
use serde::Serialize;

use super::report::{Item, MAX_ITEMS, Report, now_ms};

/// Agents the view holds, at most; reports of more are refused.
pub const MAX_AGENTS: usize = 10_000;
/// Timeline entries kept (the oldest go first).
pub const TIMELINE: usize = 2_000;
/// Load samples kept per agent.
pub const LOAD_HISTORY: usize = 120;
/// Edges (pairs of agents that call or teach) the view holds, at most; new pairs beyond are
/// not drawn.
pub const MAX_EDGES: usize = 100_000;

const MAX_SERVICES: usize = 256;
const MAX_PROVIDERS: usize = 64;
const MAX_CALL_PEERS: usize = 1_024;
const MAX_TEXT: usize = 300;
const MAX_TOPIC: usize = 100;
const MODES: [&str; 4] = [
    "can_do",
    "can_teach",
    "knows_who_can_do",
    "knows_who_can_teach",
];

/// Why a report was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// A name in it is not a valid agent or service name.
    #[error("invalid name {0:?}")]
    Name(String),
    /// A list in it is longer than the console takes.
    #[error("too many {0}")]
    TooMany(&'static str),
    /// A field holds what it cannot (an unknown offer mode, a negative load, ...).
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// One agent as the console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AgentView {
    /// The agent.
    pub agent: String,
    /// Its lifecycle state, or `gone` once it left the network.
    pub state: String,
    /// What it offers.
    pub services: Vec<super::report::Offer>,
    /// Who it knows as providers: service → agents.
    pub providers: BTreeMap<String, Vec<String>>,
    /// Utilization samples, oldest first, with when each was reported (ms).
    pub load: VecDeque<(u64, f64)>,
}

/// An edge of the graph: calls from one agent to another, or what one taught another.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    /// Who calls, or who teaches.
    pub from: String,
    /// Who is called, or who learns.
    pub to: String,
    /// Calls made so far (0 for a teaching edge).
    pub calls: u64,
    /// Services taught along the edge.
    pub taught: BTreeSet<String>,
}

/// A timeline entry: an item and the agent it happened in, numbered in arrival order.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Arrival order, from 1.
    pub seq: u64,
    /// The agent it happened in.
    pub agent: String,
    /// What happened.
    #[serde(flatten)]
    pub item: Item,
}

/// A change to send to the pages watching.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Update {
    /// An agent's new state.
    Agent(AgentView),
    /// An edge's new totals.
    Edge(Edge),
    /// Something happened.
    Entry(Entry),
}

/// Everything the console shows.
#[derive(Debug, Default, Serialize)]
pub struct View {
    agents: BTreeMap<String, AgentView>,
    #[serde(serialize_with = "edges_as_list")]
    edges: BTreeMap<(String, String), Edge>,
    timeline: VecDeque<Entry>,
    #[serde(skip)]
    seq: u64,
}

fn edges_as_list<S: serde::Serializer>(
    edges: &BTreeMap<(String, String), Edge>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(edges.values())
}

impl View {
    /// Takes a report in, if it passes every check, and says what changed.
    pub fn accept(&mut self, report: Report) -> Result<Vec<Update>, Rejected> {
        check(&report)?;
        if !self.agents.contains_key(&report.agent) && self.agents.len() >= MAX_AGENTS {
            return Err(Rejected::TooMany("agents"));
        }
        let now = now_ms();
        let mut updates = Vec::new();
        for (provider, &count) in &report.calls {
            let Some(edge) = self.edge(&report.agent, provider) else {
                continue;
            };
            if count > edge.calls {
                edge.calls = count;
                updates.push(Update::Edge(edge.clone()));
            }
        }
        for mut item in report.items.into_iter().take(MAX_ITEMS) {
            // An agent's clock is its own word: far from ours, ours is shown.
            if item.at_ms.abs_diff(now) > 3_600_000 {
                item.at_ms = now;
            }
            truncate(&mut item.text, MAX_TEXT);
            if let Some(edge) = self.teaching(&report.agent, &item) {
                updates.push(Update::Edge(edge));
            }
            self.seq += 1;
            let entry = Entry {
                seq: self.seq,
                agent: report.agent.clone(),
                item,
            };
            if self.timeline.len() == TIMELINE {
                self.timeline.pop_front();
            }
            self.timeline.push_back(entry.clone());
            updates.push(Update::Entry(entry));
        }
        let view = self
            .agents
            .entry(report.agent.clone())
            .or_insert_with(|| AgentView {
                agent: report.agent.clone(),
                state: String::new(),
                services: Vec::new(),
                providers: BTreeMap::new(),
                load: VecDeque::new(),
            });
        view.state = report.state;
        view.services = report.services;
        view.providers = report.providers;
        if view.load.len() == LOAD_HISTORY {
            view.load.pop_front();
        }
        view.load.push_back((now, report.utilization));
        updates.insert(0, Update::Agent(view.clone()));
        Ok(updates)
    }

    /// Marks every agent not in `present` as gone (it left the network).
    pub fn keep_present(&mut self, present: &BTreeSet<String>) -> Vec<Update> {
        self.agents
            .values_mut()
            .filter(|a| a.state != "gone" && !present.contains(&a.agent))
            .map(|a| {
                a.state = "gone".into();
                Update::Agent(a.clone())
            })
            .collect()
    }

    /// The agents, by name.
    pub fn agents(&self) -> &BTreeMap<String, AgentView> {
        &self.agents
    }

    /// The timeline, oldest first.
    pub fn timeline(&self) -> &VecDeque<Entry> {
        &self.timeline
    }

    /// The edges.
    pub fn edges(&self) -> impl Iterator<Item = &Edge> {
        self.edges.values()
    }

    /// The edge from `from` to `to`, made if there is room for it.
    fn edge(&mut self, from: &str, to: &str) -> Option<&mut Edge> {
        let key = (from.to_owned(), to.to_owned());
        if !self.edges.contains_key(&key) && self.edges.len() >= MAX_EDGES {
            return None;
        }
        Some(self.edges.entry(key).or_insert_with(|| Edge {
            from: from.to_owned(),
            to: to.to_owned(),
            calls: 0,
            taught: BTreeSet::new(),
        }))
    }

    /// The teaching edge an item adds to, if it tells of a teaching. Teacher and learner
    /// both tell of it; the edge counts each service once.
    fn teaching(&mut self, agent: &str, item: &Item) -> Option<Edge> {
        let (peer, service) = (item.peer.as_deref()?, item.service.clone()?);
        let (teacher, learner) = match item.topic.as_str() {
            "service.learned" => (peer, agent),
            "service.taught" => (agent, peer),
            _ => return None,
        };
        let edge = self.edge(teacher, learner)?;
        let room = edge.taught.len() < MAX_SERVICES;
        (room && edge.taught.insert(service)).then(|| edge.clone())
    }
}

fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let cut = (0..=max)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(cut);
    }
}

/// Every check a report must pass before it changes the view.
fn check(r: &Report) -> Result<(), Rejected> {
    let name = |n: &str| {
        if is_valid_name(n) {
            Ok(())
        } else {
            Err(Rejected::Name(n.chars().take(64).collect()))
        }
    };
    name(&r.agent)?;
    if r.state.len() > 32 || !r.state.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return Err(Rejected::Invalid("state"));
    }
    if !r.utilization.is_finite() || r.utilization < 0.0 {
        return Err(Rejected::Invalid("utilization"));
    }
    if r.services.len() > MAX_SERVICES || r.providers.len() > MAX_SERVICES {
        return Err(Rejected::TooMany("services"));
    }
    if r.calls.len() > MAX_CALL_PEERS {
        return Err(Rejected::TooMany("call peers"));
    }
    if r.items.len() > MAX_ITEMS {
        return Err(Rejected::TooMany("items"));
    }
    for o in &r.services {
        name(&o.service)?;
        if let Some(t) = &o.teacher {
            name(t)?;
        }
        if o.modes.len() > MODES.len() || !o.modes.iter().all(|m| MODES.contains(&m.as_str())) {
            return Err(Rejected::Invalid("offer modes"));
        }
    }
    for (service, agents) in &r.providers {
        name(service)?;
        if agents.len() > MAX_PROVIDERS {
            return Err(Rejected::TooMany("providers"));
        }
        agents.iter().try_for_each(|a| name(a))?;
    }
    r.calls.keys().try_for_each(|a| name(a))?;
    for item in &r.items {
        if item.topic.len() > MAX_TOPIC
            || !item
                .topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(Rejected::Invalid("topic"));
        }
        if let Some(t) = &item.trace
            && (t.len() != 16 || !t.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(Rejected::Invalid("trace"));
        }
        item.peer
            .iter()
            .chain(&item.service)
            .try_for_each(|n| name(n))?;
    }
    Ok(())
}
