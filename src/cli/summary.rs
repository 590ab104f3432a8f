//! What the agents of `selflet run` did, told from their buses: remote requests, services run
//! for others, services learned, neighbours come and gone. Logged every minute, printed in
//! full when the run ends, one `key=value` line per agent so scripts can read it too.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::collections::BTreeMap;

use selflet::AgentHandle;
use selflet::bus::{Bus, Overflow, Pattern, SubscribeOptions};
use selflet::topic::{
    Executed, NeighbourJoined, NeighbourLeft, Payload, RequestOutgoing, ServiceFailed,
    ServiceLearned,
};
use selflet::transport::MessageCounters;
use selflet::transport::Refusal;
use tokio::time::Instant;

/// How often a running `selflet run` says what its agents did lately.
const STATUS_PERIOD: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Tally {
    remote_requests: u64,
    last_remote_request: Option<Duration>,
    served: u64,
    learned: Vec<(String, String, Duration)>,
    joined: Vec<String>,
    left: Vec<String>,
    // Calls that failed, by the provider that failed them.
    failed: BTreeMap<String, u64>,
    // Remote requests, by the provider asked.
    asked: BTreeMap<String, u64>,
}

pub(super) struct Summary {
    start: Instant,
    agents: Vec<(String, Arc<Mutex<Tally>>)>,
}

impl Tally {
    /// Counts one event of the agent's bus, read with the topic table's payload types.
    fn count(&mut self, ev: &selflet::bus::Event, at: Duration) {
        let p = ev.payload();
        match ev.topic() {
            RequestOutgoing::TOPIC => {
                self.remote_requests += 1;
                self.last_remote_request = Some(at);
                if let Some(r) = RequestOutgoing::from_value(p) {
                    *self.asked.entry(r.provider).or_default() += 1;
                }
            }
            Executed::TOPIC => self.served += 1,
            ServiceLearned::TOPIC => {
                if let Some(l) = ServiceLearned::from_value(p) {
                    self.learned.push((l.service, l.teacher, at));
                }
            }
            NeighbourJoined::TOPIC => {
                if let Some(j) = NeighbourJoined::from_value(p) {
                    self.joined.push(j.agent);
                }
            }
            ServiceFailed::TOPIC => {
                if let Some(f) = ServiceFailed::from_value(p)
                    && !f.provider.is_empty()
                {
                    *self.failed.entry(f.provider).or_default() += 1;
                }
            }
            NeighbourLeft::TOPIC => {
                if let Some(l) = NeighbourLeft::from_value(p) {
                    self.left.push(l.agent);
                }
            }
            _ => {}
        }
    }
}

impl Summary {
    /// Starts counting what happens on the buses of agents about to be spawned, so that
    /// nothing from their start on is missed.
    pub(super) fn watch(buses: &[Bus]) -> Summary {
        let start = Instant::now();
        let mut tallies = Vec::new();
        // A reporter that falls behind loses events; it never holds an agent up.
        let options = SubscribeOptions {
            capacity: 4096,
            overflow: Overflow::DropOldest,
        };
        for bus in buses {
            let tally = Arc::new(Mutex::new(Tally::default()));
            tallies.push((bus.agent().to_owned(), Arc::clone(&tally)));
            for pattern in ["service.", "neighbour."].map(|p| Pattern::Prefix(p.into())) {
                let Ok(events) = bus.subscribe_with(pattern, options) else {
                    continue;
                };
                let tally = Arc::clone(&tally);
                tokio::spawn(async move {
                    while let Some(ev) = events.recv().await {
                        let at = ev.time().duration_since(start);
                        let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                        t.count(&ev, at);
                    }
                });
            }
        }
        let summary = Summary {
            start,
            agents: tallies,
        };
        summary.spawn_status();
        summary
    }

    fn spawn_status(&self) {
        let agents = self.agents.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(STATUS_PERIOD);
            tick.tick().await;
            let mut before: Vec<u64> = vec![0; agents.len()];
            loop {
                tick.tick().await;
                for ((name, tally), last) in agents.iter().zip(before.iter_mut()) {
                    let t = tally.lock().unwrap_or_else(|e| e.into_inner());
                    tracing::info!(
                        agent = %name,
                        remote_requests = t.remote_requests - *last,
                        served = t.served,
                        learned = t.learned.len(),
                        "in the last {}s",
                        STATUS_PERIOD.as_secs()
                    );
                    *last = t.remote_requests;
                }
            }
        });
    }

    /// Prints one line per agent and one for the messages this process sent.
    pub(super) fn print(&self, agents: &[AgentHandle], counters: MessageCounters) {
        let secs = |d: Duration| format!("{:.2}s", d.as_secs_f64());
        println!(
            "summary: ran={} agents={}",
            secs(self.start.elapsed()),
            self.agents.len()
        );
        for (name, tally) in &self.agents {
            let t = tally.lock().unwrap_or_else(|e| e.into_inner());
            let learned: Vec<String> = t
                .learned
                .iter()
                .map(|(s, from, at)| format!("{s}@{}<-{from}", secs(*at)))
                .collect();
            let agent = agents.iter().find(|a| a.name() == name);
            let refused = agent.map(|a| refusals(&a.refusals())).unwrap_or_default();
            let limited = agent.map_or(0, |a| a.load_counters().stopped_by_limits);
            // Events the agent's slow subscribers lost (drop-oldest queues), all topics.
            let dropped: u64 =
                agent.map_or(0, |a| a.bus().stats().iter().map(|(_, s)| s.dropped).sum());
            // Each learner's composition in force, after how many windows.
            let composed: Vec<String> = agent
                .map(|a| a.learners().info())
                .unwrap_or_default()
                .into_iter()
                .map(|l| {
                    let current = l.current.unwrap_or_else(|| "-".into());
                    format!("{}:{current}/{}w", l.name, l.windows)
                })
                .collect();
            println!(
                "summary: agent={name} remote_requests={} last_remote_request={} served={} learned=[{}] joined=[{}] left=[{}] failed=[{}] asked=[{}] refused=[{refused}] composed=[{}] stopped_by_limits={limited} events_dropped={dropped}",
                t.remote_requests,
                t.last_remote_request.map_or("-".into(), secs),
                t.served,
                learned.join(","),
                t.joined.join(","),
                t.left.join(","),
                counts(&t.failed),
                counts(&t.asked),
                composed.join(","),
            );
        }
        let kinds: Vec<String> = counters
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        println!(
            "summary: sent [{}] undelivered={} rejected={} refused=[{}]",
            kinds.join(" "),
            counters.undelivered,
            counters.rejected,
            refusals(&counters.refused)
        );
    }
}

/// Counts by agent as `agent:n,...`.
fn counts(by_agent: &BTreeMap<String, u64>) -> String {
    by_agent
        .iter()
        .map(|(p, n)| format!("{p}:{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Refusals as `reason=n,...`.
fn refusals(r: &BTreeMap<Refusal, u64>) -> String {
    r.iter()
        .map(|(why, n)| format!("{why}={n}"))
        .collect::<Vec<_>>()
        .join(",")
}
