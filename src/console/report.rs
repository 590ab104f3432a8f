//! What an agent tells the console: a [`Report`] each period, with what happened since the
//! last one as [`Item`]s. In one process the console reads agents directly; across processes
//! the same reports travel as JSON on the agents' status keys.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use selflet_core::bus::{Overflow, Pattern, SubscribeOptions, Subscription};
use selflet_core::topic::{self, Payload};
use selflet_core::{AgentHandle, Event, Value};
use serde::{Deserialize, Serialize};

/// One agent's state, and what happened in it since its previous report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The agent.
    pub agent: String,
    /// When the report was made: milliseconds since the Unix epoch, on the agent's clock.
    pub at_ms: u64,
    /// Its lifecycle state (`running`, `stopping`, ...).
    pub state: String,
    /// What it offers, and how.
    pub services: Vec<Offer>,
    /// Who it knows as providers of the services it needs: service → agents.
    pub providers: BTreeMap<String, Vec<String>>,
    /// Seconds of work per second over the last period.
    pub utilization: f64,
    /// Calls it has made, by provider, since it started.
    pub calls: BTreeMap<String, u64>,
    /// What happened since the previous report, oldest first.
    pub items: Vec<Item>,
}

/// A service an agent offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    /// The service.
    pub service: String,
    /// Its offer modes (`can_do`, `can_teach`, ...).
    pub modes: Vec<String>,
    /// Who taught it, if it was learned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<String>,
}

/// Something that happened in an agent: a call, a prediction, a rule firing, a teaching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// When: milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The bus topic it was published on.
    pub topic: String,
    /// The trace it belongs to (16 hex digits), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// The other agent involved (provider, requester, teacher, learner), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The service it is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// What it says, in one line.
    pub text: String,
}

/// The topics that make items. Calls are many: each report carries at most
/// [`MAX_CALL_ITEMS`] of them (the `calls` counts have them all).
const ITEM_TOPICS: [&str; 8] = [
    "service.*",
    "prediction.*",
    "policy.*",
    "deployment.*",
    "neighbour.*",
    "learner.*",
    "load.*",
    "agent.lifecycle",
];

/// Call items per report, at most: enough to follow a chain, too few to flood the page.
pub const MAX_CALL_ITEMS: usize = 16;

/// Topics reported at the next tick rather than at once: there are many of them.
const CALL_TOPICS: [&str; 4] = [
    topic::RequestOutgoing::TOPIC,
    topic::RequestIncoming::TOPIC,
    topic::Executed::TOPIC,
    topic::LoadSample::TOPIC,
];

/// Events kept between reports, at most (the oldest go first).
const MAX_PENDING: usize = 1024;

/// Items per report, at most; the oldest beyond are dropped.
pub const MAX_ITEMS: usize = 64;

/// Makes an agent's reports.
pub struct Reporter {
    agent: AgentHandle,
    events: Subscription,
    pending: std::collections::VecDeque<Event>,
    calls: BTreeMap<String, u64>,
    busy: (tokio::time::Instant, f64),
}

impl Reporter {
    /// Starts listening to `agent`'s events; `None` if its bus is closed.
    pub fn new(agent: &AgentHandle) -> Option<Reporter> {
        let options = SubscribeOptions {
            capacity: 1024,
            overflow: Overflow::DropOldest,
        };
        let patterns = ITEM_TOPICS
            .iter()
            .filter_map(|p| Pattern::parse(p).ok())
            .collect();
        let events = agent.bus().subscribe_many(patterns, options).ok()?;
        Some(Reporter {
            agent: agent.clone(),
            events,
            pending: std::collections::VecDeque::new(),
            calls: BTreeMap::new(),
            busy: (
                tokio::time::Instant::now(),
                agent.load_counters().busy_seconds,
            ),
        })
    }

    /// The agent reported on.
    pub fn agent(&self) -> &AgentHandle {
        &self.agent
    }

    /// Waits for the next event and keeps it for the next report; says whether it should be
    /// reported at once (anything but a call), `None` once the agent's bus is closed.
    pub async fn wait(&mut self) -> Option<bool> {
        let ev = self.events.recv().await?;
        let urgent = !CALL_TOPICS.contains(&ev.topic());
        if self.pending.len() == MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(ev);
        Some(urgent)
    }

    /// The report of now, with every event kept or waiting.
    pub fn report(&mut self) -> Report {
        let mut items = Vec::new();
        let mut call_items = 0;
        let mut events = std::mem::take(&mut self.pending);
        events.extend(std::iter::from_fn(|| self.events.try_recv().ok()));
        for ev in events {
            let Some(item) = self.item(&ev) else { continue };
            if ev.topic() == topic::RequestOutgoing::TOPIC {
                call_items += 1;
                if call_items > MAX_CALL_ITEMS {
                    continue;
                }
            }
            items.push(item);
        }
        if items.len() > MAX_ITEMS {
            items.drain(..items.len() - MAX_ITEMS);
        }
        Report {
            agent: self.agent.name().to_owned(),
            at_ms: now_ms(),
            state: self.agent.lifecycle().name().to_owned(),
            services: offers(&self.agent),
            providers: providers(&self.agent),
            utilization: self.utilization(),
            calls: self.calls.clone(),
            items,
        }
    }

    fn utilization(&mut self) -> f64 {
        let now = tokio::time::Instant::now();
        let busy = self.agent.load_counters().busy_seconds;
        let (then, before) = std::mem::replace(&mut self.busy, (now, busy));
        let span = now.duration_since(then).as_secs_f64();
        if span <= 0.0 {
            return 0.0;
        }
        ((busy - before) / span).max(0.0)
    }

    /// The item an event makes (and the call it counts), if it makes one.
    fn item(&mut self, ev: &Event) -> Option<Item> {
        let p = ev.payload();
        let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let (peer, text) = match ev.topic() {
            topic::RequestOutgoing::TOPIC => {
                let provider = s("provider");
                *self.calls.entry(provider.clone()).or_default() += 1;
                (
                    Some(provider.clone()),
                    format!("asks {provider} for {}", s("service")),
                )
            }
            topic::Executed::TOPIC => (
                Some(s("requester")),
                format!("ran {} for {}", s("service"), s("requester")),
            ),
            topic::ServiceLearned::TOPIC => (
                Some(s("teacher")),
                format!("learned {} from {}", s("service"), s("teacher")),
            ),
            topic::ServiceTaught::TOPIC => (
                Some(s("learner")),
                format!("taught {} to {}", s("service"), s("learner")),
            ),
            topic::ServiceFailed::TOPIC => (
                non_empty(s("provider")),
                format!("{} failed: {}", s("service"), s("error")),
            ),
            topic::ServiceRedirected::TOPIC => (
                Some(s("to")),
                format!("redirected {} to {}", s("service"), s("to")),
            ),
            topic::PolicyFired::TOPIC => (None, policy_text(p)),
            topic::DeploymentDecision::TOPIC => (None, deployment_text(p)),
            topic::RequestIncoming::TOPIC | topic::LoadSample::TOPIC => return None,
            t if t.starts_with("prediction.") => (None, prediction_text(t, p)),
            _ => (None, short(p)),
        };
        Some(Item {
            at_ms: now_ms(),
            topic: ev.topic().to_owned(),
            trace: ev.trace().map(|t| t.to_string()),
            peer,
            service: non_empty(s("service")),
            text,
        })
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn policy_text(p: &Value) -> String {
    let Some(f) = topic::PolicyFired::from_value(p) else {
        return short(p);
    };
    format!(
        "rule \"{}\" on {}: {}",
        f.rule,
        f.on,
        if f.actions.is_empty() {
            "no action".to_owned()
        } else {
            f.actions.join("; ")
        }
    )
}

fn deployment_text(p: &Value) -> String {
    let Some(d) = topic::DeploymentDecision::from_value(p) else {
        return short(p);
    };
    let actions = match &d.actions {
        Value::List(a) if !a.is_empty() => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| short(x), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "no change".to_owned(),
    };
    let verdict = if d.executed {
        "executed"
    } else {
        "not executed"
    };
    format!(
        "plan {verdict}: {actions} (utility {:.3} → {:.3}, cost {:.3}, {} members){}",
        d.utility_before,
        d.utility,
        d.cost,
        d.members,
        if d.note.is_empty() {
            String::new()
        } else {
            format!(": {}", d.note)
        }
    )
}

fn prediction_text(topic: &str, p: &Value) -> String {
    let num = |k: &str| p.get(k).and_then(Value::as_f64);
    match (p.get("item").and_then(Value::as_str), num("support")) {
        (Some(item), Some(support)) => format!("{item} is frequent (support {support:.2})"),
        _ => match num("utilization").or(num("predicted")) {
            Some(u) => format!("{topic}: {u:.2}"),
            None => short(p),
        },
    }
}

/// A payload in one short line.
fn short(p: &Value) -> String {
    let mut text = serde_json::to_string(p).unwrap_or_default();
    if text.len() > 160 {
        let cut = (0..=157)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Every service the agent has, offered or run for itself only (no modes).
fn offers(agent: &AgentHandle) -> Vec<Offer> {
    let learned = agent.learned();
    agent
        .knowledge()
        .services()
        .into_iter()
        .map(|s| Offer {
            teacher: learned.get(&s.name).map(|l| l.teacher.clone()),
            modes: s.modes.iter().map(|m| m.to_string()).collect(),
            service: s.name,
        })
        .collect()
}

fn providers(agent: &AgentHandle) -> BTreeMap<String, Vec<String>> {
    let dir = agent.knowledge().providers();
    dir.services()
        .into_iter()
        .map(|s| {
            let agents = dir
                .providers(&s)
                .into_iter()
                .map(|p| p.agent.into())
                .collect();
            (s, agents)
        })
        .collect()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}
