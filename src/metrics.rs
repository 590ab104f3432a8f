//! Prometheus metrics of running agents, through the [`metrics`](https://docs.rs/metrics)
//! facade.
//!
//! [`serve`] installs a Prometheus exporter answering scrapes on an address (what
//! `selflet run --metrics 127.0.0.1:9464` does); [`watch`] makes an agent report to whatever
//! recorder is installed. Nothing is added to an agent's hot paths: what the agent already
//! counts (its bus's topics, its rules, its refusals, its busy time) is read once per period,
//! and the events metrics need beyond that (`service.*`, `prediction.*`, `deployment.*`,
//! `neighbour.*`) reach a `drop-oldest` subscription that never holds a publisher up.
//!
//! Every metric but the transport's has an `agent` label; the other labels are bounded by what the agent itself
//! offers, calls and runs — never a peer's word or a request id:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `selflet_bus_events_published_total`, `…_delivered_total`, `…_dropped_total` | counter | `group` (a topic's first segment) |
//! | `selflet_calls_served_total`, `selflet_call_duration_seconds` | counter, histogram | `service` (run here, for a peer) |
//! | `selflet_calls_out_total`, `selflet_calls_failed_total` | counter | `service` (asked of a provider; failed here or there) |
//! | `selflet_teachings_given_total`, `selflet_teachings_learned_total` | counter | `service` |
//! | `selflet_redirects_total` | counter | `service` (handed on to the neighbour its load is redirected to) |
//! | `selflet_rule_evaluations_total`, `selflet_rule_firings_total`, `selflet_rule_errors_total` | counter | `rule` |
//! | `selflet_predictions_total` | counter | `topic` (`prediction.*`) |
//! | `selflet_utilization` | gauge | — (seconds of work per second over the last period) |
//! | `selflet_refusals_total` | counter | `reason` |
//! | `selflet_neighbours_joined_total`, `selflet_neighbours_left_total` | counter | — |
//! | `selflet_deployment_decisions_total` | counter | `executed` |
//! | `selflet_messages_sent_total` | counter | — (by this agent, over its transport) |
//! | `selflet_transport_messages_total` | counter | `kind` only, no `agent` (carried by the process's transport, for all its agents) |
//! | `selflet_queue_depth` | gauge | `queue` (`inbox`: deliveries from peers waiting; `policy`: events waiting for the rules) |

use std::net::SocketAddr;
use std::time::Duration;

use metrics::{Label, counter, gauge, histogram};
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};
use selflet_core::bus::{Overflow, Pattern, SubscribeOptions};
use selflet_core::topic::{self, Payload};
use selflet_core::{AgentHandle, Event, Lifecycle, Value};

/// Installs the Prometheus exporter as the process's recorder, answering scrapes on `addr`
/// (any path). Call it from inside a tokio runtime, once per process.
pub fn serve(addr: SocketAddr) -> Result<PrometheusHandle, BuildError> {
    let (recorder, exporter) = PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0, 60.0,
        ])?
        .build()?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)?;
    tokio::spawn(exporter);
    Ok(handle)
}

/// Makes `agent` report its metrics every `period` (and its events as they happen) until it
/// stops.
pub fn watch(agent: &AgentHandle, period: Duration) {
    let options = SubscribeOptions {
        capacity: 1024,
        overflow: Overflow::DropOldest,
    };
    let patterns = ["service.*", "prediction.*", "deployment.*", "neighbour.*"]
        .iter()
        .filter_map(|p| Pattern::parse(p).ok())
        .collect();
    let Ok(events) = agent.bus().subscribe_many(patterns, options) else {
        return;
    };
    let a = agent.clone();
    // It ends when stopping begins, as the agent's own loops do: shutdown need not wait for it.
    let mut lifecycle = agent.lifecycle_changes();
    agent.spawn_task(move |cancel| async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut busy = (tokio::time::Instant::now(), a.load_counters().busy_seconds);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = lifecycle.wait_for(|l| *l != Lifecycle::Running) => break,
                _ = tick.tick() => {
                    totals(&a);
                    busy = utilization(&a, busy);
                }
                ev = events.recv() => match ev {
                    Some(ev) => event(a.name(), &ev),
                    None => break,
                },
            }
        }
        totals(&a);
    });
}

fn labels(agent: &str, extra: &[(&'static str, String)]) -> Vec<Label> {
    let mut out = vec![Label::new("agent", agent.to_owned())];
    out.extend(extra.iter().map(|(k, v)| Label::new(*k, v.clone())));
    out
}

/// The topics counted by service, and their counters: each payload names its `service`.
const SERVICE_COUNTERS: [(&str, &str); 5] = [
    (topic::RequestOutgoing::TOPIC, "selflet_calls_out_total"),
    (topic::ServiceFailed::TOPIC, "selflet_calls_failed_total"),
    (topic::ServiceTaught::TOPIC, "selflet_teachings_given_total"),
    (
        topic::ServiceLearned::TOPIC,
        "selflet_teachings_learned_total",
    ),
    (topic::ServiceRedirected::TOPIC, "selflet_redirects_total"),
];

/// One event's worth.
fn event(agent: &str, ev: &Event) {
    let p = ev.payload();
    let service_label = |s: String| labels(agent, &[("service", s)]);
    match ev.topic() {
        topic::Executed::TOPIC => {
            if let Some(e) = topic::Executed::from_value(p) {
                let l = service_label(e.service);
                counter!("selflet_calls_served_total", l.clone()).increment(1);
                histogram!("selflet_call_duration_seconds", l).record(e.seconds);
            }
        }
        t if let Some((_, metric)) = SERVICE_COUNTERS.iter().find(|(topic, _)| *topic == t) => {
            if let Some(service) = p.get("service").and_then(Value::as_str) {
                counter!(*metric, service_label(service.to_owned())).increment(1);
            }
        }
        topic::NeighbourJoined::TOPIC => {
            counter!("selflet_neighbours_joined_total", labels(agent, &[])).increment(1)
        }
        topic::NeighbourLeft::TOPIC => {
            counter!("selflet_neighbours_left_total", labels(agent, &[])).increment(1)
        }
        topic::DeploymentDecision::TOPIC => {
            if let Some(d) = topic::DeploymentDecision::from_value(p) {
                let l = labels(agent, &[("executed", d.executed.to_string())]);
                counter!("selflet_deployment_decisions_total", l).increment(1);
            }
        }
        t if t.starts_with("prediction.") => {
            counter!(
                "selflet_predictions_total",
                labels(agent, &[("topic", t.to_owned())])
            )
            .increment(1);
        }
        _ => {}
    }
}

/// What the agent counts itself, as absolute totals.
fn totals(a: &AgentHandle) {
    let name = a.name();
    let mut groups: std::collections::BTreeMap<String, (u64, u64, u64)> = Default::default();
    for (t, s) in a.bus().stats() {
        let g = groups
            .entry(t.split('.').next().unwrap_or("").to_owned())
            .or_default();
        g.0 += s.published;
        g.1 += s.delivered;
        g.2 += s.dropped;
    }
    for (g, (p, d, x)) in groups {
        let l = labels(name, &[("group", g)]);
        counter!("selflet_bus_events_published_total", l.clone()).absolute(p);
        counter!("selflet_bus_events_delivered_total", l.clone()).absolute(d);
        counter!("selflet_bus_events_dropped_total", l).absolute(x);
    }
    for (rule, s) in a.policies().stats() {
        let l = labels(name, &[("rule", rule)]);
        counter!("selflet_rule_evaluations_total", l.clone()).absolute(s.evaluated);
        counter!("selflet_rule_firings_total", l.clone()).absolute(s.fired);
        counter!("selflet_rule_errors_total", l).absolute(s.failed);
    }
    for (reason, n) in a.refusals() {
        counter!(
            "selflet_refusals_total",
            labels(name, &[("reason", reason.to_string())])
        )
        .absolute(n);
    }
    let sent: u64 = a
        .message_counters()
        .by_pair
        .iter()
        .filter(|((from, _), _)| from == name)
        .map(|(_, n)| n)
        .sum();
    counter!("selflet_messages_sent_total", labels(name, &[])).absolute(sent);
    // The transport's own count, for all the agents that share it: the same series from each.
    for (kind, n) in a.message_counters().by_kind {
        let l = vec![Label::new("kind", kind)];
        counter!("selflet_transport_messages_total", l).absolute(n);
    }
    let depths = a.queue_depths();
    for (queue, depth) in [("inbox", depths.inbox), ("policy", depths.policy)] {
        gauge!(
            "selflet_queue_depth",
            labels(name, &[("queue", queue.into())])
        )
        .set(depth as f64);
    }
}

/// Sets the agent's utilization over the time since `before` (when, busy seconds then);
/// returns now's.
fn utilization(
    a: &AgentHandle,
    before: (tokio::time::Instant, f64),
) -> (tokio::time::Instant, f64) {
    let now = (tokio::time::Instant::now(), a.load_counters().busy_seconds);
    let secs = now.0.duration_since(before.0).as_secs_f64();
    if secs > 0.0 {
        let u = (now.1 - before.1) / secs;
        metrics::gauge!("selflet_utilization", labels(a.name(), &[])).set(u);
    }
    now
}
