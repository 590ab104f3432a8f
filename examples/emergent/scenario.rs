//! The emergent-composition scenario: an entry SelfLet offering `web` in three variants, three
//! neighbours it can relocate or replicate `web` to, clients sending an open-loop workload in
//! phases, and a `ucb` learner choosing the composition window by window. Shared by the
//! `emergent` example and its integration test.
//!
//! Time is the paused tokio clock: a host's core is a one-permit semaphore held for the
//! request's work, so queues and load are real; a neighbour adds its link's latency to every
//! request it serves.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use selflet::behaviour::Behaviour;
use selflet::manifest::PredictorSpec;
use selflet::negotiation::Config;
use selflet::prediction::ParamError;
use selflet::prediction::learner::CompositionSpec;
use selflet::topic::{LearnerWindow, Payload};
use selflet::{Agent, AgentHandle, Manifest, Network, OfferModes, Service, Value};
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The observation window, the same on every host.
pub(crate) const WINDOW: Duration = Duration::from_secs(2);

/// The neighbours and their links' latency (milliseconds added to every request they serve).
pub(crate) const HOSTS: [(&str, f64); 3] = [("h1", 4.0), ("h2", 4.0), ("h3", 16.0)];

/// Clients sending the workload, each request from one of them at random: many users, so
/// that no single peer's cap on requests in flight is what limits the entry.
pub(crate) const CLIENTS: usize = 16;

/// A workload phase: request rate and the share of dynamic requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Phase {
    pub(crate) name: &'static str,
    /// Requests per second (Poisson arrivals).
    pub(crate) rate: f64,
    /// The share of requests that are dynamic.
    pub(crate) dynamic: f64,
}

/// Seed 000's three workloads: static-dominated (all-local should win), dynamic-heavy (a
/// distributed composition should win), and more and longer dynamic work (two distributed
/// compositions close).
pub(crate) const PHASES: [Phase; 3] = [
    Phase {
        name: "W1 static",
        rate: 50.0,
        dynamic: 0.05,
    },
    Phase {
        name: "W2 dynamic",
        rate: 100.0,
        dynamic: 0.5,
    },
    Phase {
        name: "W3 parallel",
        rate: 170.0,
        dynamic: 0.8,
    },
];

/// One run: which phases for how many windows, and which compositions the learner may use.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    /// Phases in order (indexes into [`PHASES`]) with their lengths in windows.
    pub(crate) schedule: Vec<(usize, u64)>,
    /// The compositions allowed (the others are vetoed); `None` for all.
    pub(crate) allowed: Option<Vec<String>>,
    /// Seeds the workload.
    pub(crate) seed: u64,
}

/// What one window saw.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WindowRecord {
    /// Index into the setup's schedule.
    pub(crate) segment: usize,
    /// The composition in force during the window.
    pub(crate) composition: String,
    /// Its reward (`None` if no request ended in it).
    pub(crate) reward: Option<f64>,
    /// The environment class the learner put it in.
    pub(crate) class: Option<i64>,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Trace {
    pub(crate) windows: Vec<WindowRecord>,
    pub(crate) requests: u64,
    pub(crate) answered: u64,
    /// Environment classes with at least one reward in their table.
    pub(crate) classes: usize,
}

fn behaviour(root: &Path, name: &str) -> Result<Behaviour, selflet::LoadError> {
    Behaviour::load(root.join(format!("examples/emergent/behaviors/{name}.yaml")))
}

/// A host's core: one request's work at a time, after the link's latency.
fn burn(
    latency_ms: f64,
) -> impl Fn(Value) -> futures_util::future::BoxFuture<'static, Result<Value, selflet::error::BoxError>>
+ Send
+ Sync
+ 'static {
    let core = Arc::new(Semaphore::new(1));
    move |input: Value| {
        let core = Arc::clone(&core);
        Box::pin(async move {
            let ms = input
                .get("ms")
                .and_then(Value::as_f64)
                .unwrap_or(0.0)
                .max(0.0);
            tokio::time::sleep(Duration::from_secs_f64(latency_ms / 1000.0)).await;
            let _turn = core.acquire().await?;
            tokio::time::sleep(Duration::from_secs_f64(ms / 1000.0)).await;
            Ok(Value::Float(ms))
        })
    }
}

async fn host(
    net: &Network,
    root: &Path,
    name: &str,
    latency_ms: f64,
) -> Result<AgentHandle, Box<dyn std::error::Error>> {
    let h = Agent::builder(name)
        .network(net)
        .behaviour(behaviour(root, "cpu")?)
        .service(Service::new("cpu", OfferModes::CAN_DO))
        .ability("burn", burn(latency_ms))
        .negotiation(Config {
            neighbours: vec!["entry".into()],
            teachers: Some(vec!["entry".into()]),
            ..Config::default()
        })
        .spawn()
        .await?;
    // The entry re-teaches `web` whenever it switches variant there.
    h.knowledge().allow_upgrade("web", true);
    Ok(h)
}

/// The entry, from its manifest, with its core; its learner may use only the `allowed`
/// compositions (the others vetoed from the start), if given.
async fn entry(
    net: &Network,
    root: &Path,
    allowed: Option<&[String]>,
) -> Result<AgentHandle, Box<dyn std::error::Error>> {
    let mut m = manifest(root)?;
    if let (Some(allowed), Some(learner)) = (allowed, m.learners.first_mut()) {
        let vetoed = composition_names(learner)?
            .into_iter()
            .filter(|c| !allowed.contains(c))
            .map(Value::from)
            .collect();
        learner.params.insert("veto".into(), Value::List(vetoed));
    }
    let e = Agent::from_manifest(&m)
        .network(net)
        .predictor_kinds(selflet::plugins::kinds())
        .ability("burn", burn(0.0))
        .spawn()
        .await?;
    Ok(e)
}

fn manifest(root: &Path) -> Result<Manifest, selflet::LoadError> {
    Manifest::load(root.join("examples/emergent/entry.yaml"))
}

/// The names of a learner's compositions, from its parameters.
fn composition_names(learner: &PredictorSpec) -> Result<Vec<String>, ParamError> {
    let spec = CompositionSpec::from_params(&Value::from(learner.params.clone()))?;
    Ok(spec
        .compositions()
        .iter()
        .map(ToString::to_string)
        .collect())
}

/// Requests sent and answered, and the dynamic ones sent in the current window.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    answered: AtomicU64,
    window_sent: AtomicU64,
    window_dynamic: AtomicU64,
}

/// The names of every composition the learner has, in its table order.
pub(crate) fn compositions(root: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let m = manifest(root)?;
    let learner = m.learners.first().ok_or("entry.yaml names no learner")?;
    Ok(composition_names(learner)?)
}

/// Runs one setup on whatever clock the runtime has (the paused one, for speed).
pub(crate) async fn run(root: &Path, setup: &Setup) -> Result<Trace, Box<dyn std::error::Error>> {
    let net = Network::new();
    let mut hosts = Vec::new();
    for (name, latency) in HOSTS {
        hosts.push(host(&net, root, name, latency).await?);
    }
    let entry = entry(&net, root, setup.allowed.as_deref()).await?;
    // Read at the end: room for every window, so the learner never waits for this reader.
    let all = setup.schedule.iter().map(|s| s.1 as usize).sum::<usize>() + 16;
    let options = selflet::SubscribeOptions {
        capacity: all,
        overflow: selflet::Overflow::Wait,
    };
    let windows = entry.subscribe_with(LearnerWindow::TOPIC, options)?;
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let c = Agent::builder(format!("client{i}"))
            .network(&net)
            .require("web")
            .negotiation(Config {
                neighbours: vec!["entry".into()],
                ..Config::default()
            })
            .spawn()
            .await?;
        clients.push(c);
    }
    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let probe = tokio::spawn(probe(entry.clone(), Arc::clone(&counters), start));
    let mut rng = fastrand::Rng::with_seed(setup.seed);
    let mut at = start;
    for &(phase, length) in &setup.schedule {
        let end = at + WINDOW * length as u32;
        drive(&clients, &counters, &mut rng, PHASES[phase], end).await;
        at = end;
    }
    probe.abort();
    // Let the last requests end.
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Window i of the learner is [i, i + 1) windows after it was plugged, which is when the
    // workload started: the schedule says which segment it is in.
    let segments = setup
        .schedule
        .iter()
        .enumerate()
        .flat_map(|(i, &(_, length))| std::iter::repeat_n(i, length as usize));
    let mut records = Vec::new();
    for segment in segments {
        let Some(w) = windows
            .recv()
            .await
            .and_then(|e| LearnerWindow::from_value(e.payload()))
        else {
            break;
        };
        records.push(WindowRecord {
            segment,
            composition: w.previous,
            reward: w.reward.as_f64(),
            class: w.class.as_int(),
        });
    }
    let classes = entry
        .learners()
        .tables("compose")
        .and_then(|t| match t.get("classes") {
            Some(Value::List(l)) => Some(
                l.iter()
                    .filter(|c| c.get("total").and_then(Value::as_int).unwrap_or(0) > 0)
                    .count(),
            ),
            _ => None,
        })
        .unwrap_or(0);
    let trace = Trace {
        windows: records,
        requests: counters.sent.load(Ordering::Relaxed),
        answered: counters.answered.load(Ordering::Relaxed),
        classes,
    };
    for a in hosts.iter().chain(&clients).chain([&entry]) {
        a.shutdown().await;
    }
    Ok(trace)
}

/// Sends Poisson arrivals of phase `p` until `end`, each request its own task from a random
/// client.
async fn drive(
    clients: &[AgentHandle],
    counters: &Arc<Counters>,
    rng: &mut fastrand::Rng,
    p: Phase,
    end: Instant,
) {
    loop {
        let gap = -(1.0 - rng.f64()).ln() / p.rate;
        let next = Instant::now() + Duration::from_secs_f64(gap);
        if next >= end {
            tokio::time::sleep_until(end).await;
            return;
        }
        tokio::time::sleep_until(next).await;
        let dynamic = rng.f64() < p.dynamic;
        counters.sent.fetch_add(1, Ordering::Relaxed);
        counters.window_sent.fetch_add(1, Ordering::Relaxed);
        counters
            .window_dynamic
            .fetch_add(u64::from(dynamic), Ordering::Relaxed);
        let client = clients[rng.usize(..clients.len())].clone();
        let counters = Arc::clone(counters);
        tokio::spawn(async move {
            let input = Value::map([("dynamic", Value::Bool(dynamic))]);
            // A request fails only when its composition cannot keep up (measuring an
            // overloaded composition alone): the entry refuses past a client's 64 requests in
            // flight, or a forwarded request finds no reply in time.
            if client.call("web", input).await.is_ok() {
                counters.answered.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

/// The entry's monitoring: just before each window ends, the request rate and dynamic share
/// seen in it, published on the entry's bus as `workload.mix` — the learner's environment.
async fn probe(entry: AgentHandle, counters: Arc<Counters>, start: Instant) {
    let lead = Duration::from_millis(10);
    let mut tick = tokio::time::interval_at(start + WINDOW - lead, WINDOW);
    let mut opened = start;
    loop {
        tick.tick().await;
        let sent = counters.window_sent.swap(0, Ordering::Relaxed);
        let dynamic = counters.window_dynamic.swap(0, Ordering::Relaxed);
        let now = Instant::now();
        let secs = (now - opened).as_secs_f64().max(1e-3);
        opened = now;
        let share = if sent == 0 {
            0.0
        } else {
            dynamic as f64 / sent as f64
        };
        let mix = Value::map([
            ("rate", Value::Float(sent as f64 / secs)),
            ("dynamic_share", Value::Float(share)),
        ]);
        let _ = entry.publish("workload.mix", mix).await;
    }
}
