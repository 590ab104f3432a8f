//! The two-agent teaching scenario of the prediction paper, run from the files in
//! `examples/teaching/`: load the manifests, run A and B on one in-process network, and read
//! the counters. Shared by the `teaching` example and its integration test.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use selflet::{Agent, Manifest, Network, Value};

/// What can be changed from the command line.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Simulated (or, in real time, wall-clock) seconds to run.
    pub(crate) duration_s: u64,
    /// Seconds between two of A's goals (the paper's A runs about 400 goals in 900 s).
    pub(crate) period_s: f64,
    /// Overrides of A's Space-Saving parameters (`k`, `min_events`, `min_support`, ...).
    pub(crate) predictor: BTreeMap<String, Value>,
    /// Run A with its policy.
    pub(crate) with_policy: bool,
    /// Times at which to take a row of the table.
    pub(crate) checkpoints: Vec<u64>,
    /// Have both agents report to the installed metrics recorder (`selflet::metrics`).
    pub(crate) metrics: bool,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    /// Seconds since the start.
    pub(crate) t_s: u64,
    /// Goals A completed (its main behaviour reached a final state).
    pub(crate) goals_a: u64,
    /// Services B executed for A.
    pub(crate) goals_b: u64,
    /// Remote service requests sent: the paper's messages "due to the request for remote
    /// services".
    pub(crate) messages: u64,
    /// Every message carried, replies, teachings and adverts included.
    pub(crate) all_messages: u64,
}

/// The result of one run.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// One row per checkpoint.
    pub(crate) rows: Vec<Row>,
    /// When A learned each service, in seconds.
    pub(crate) learned: Vec<(String, f64)>,
    /// Cumulative remote requests, sampled every second.
    pub(crate) series: Vec<(f64, u64)>,
}

fn manifest(dir: &Path, name: &str) -> Result<Manifest, Box<dyn std::error::Error>> {
    Ok(Manifest::load(dir.join(name))?)
}

/// Runs the scenario on whatever clock the current runtime has (paused or not).
pub(crate) async fn run(dir: &Path, s: &Settings) -> Result<Run, Box<dyn std::error::Error>> {
    let net = Network::new();
    let kinds = selflet::plugins::kinds();
    let mut a_manifest = manifest(dir, "a.yaml")?;
    if !s.with_policy {
        a_manifest.policies.clear();
    }
    for p in &mut a_manifest.predictors {
        for (k, v) in &s.predictor {
            p.params.insert(k.clone(), v.clone());
        }
    }
    let b = Agent::from_manifest(&manifest(dir, "b.yaml")?)
        .network(&net)
        .predictor_kinds(kinds.clone())
        .spawn()
        .await?;
    let a = Agent::from_manifest(&a_manifest)
        .network(&net)
        .predictor_kinds(kinds)
        .spawn()
        .await?;
    if s.metrics {
        selflet::metrics::watch(&a, Duration::from_secs(1));
        selflet::metrics::watch(&b, Duration::from_secs(1));
    }
    // The request period is the main behaviour's `after` timer: set it in the behaviour itself.
    let main = a.main_behaviour().ok_or("A has no main behaviour")?;
    let looped = a
        .behaviours()
        .get(&main)
        .ok_or("A's main behaviour is not installed")?;
    let period = format!("{}s", s.period_s);
    let changed = looped.modify(|tree| {
        let Value::Map(root) = tree else {
            return Err("not a map".into());
        };
        let Some(Value::Map(states)) = root.get_mut("states") else {
            return Err("no states".into());
        };
        let Some(Value::Map(wait)) = states.get_mut("wait") else {
            return Err("no `wait` state".into());
        };
        wait.insert(
            "after".into(),
            Value::map([(period.as_str(), Value::from("use"))]),
        );
        Ok(())
    })?;
    a.install_behaviour(changed);

    let goals_a = a.subscribe("behaviour.done")?;
    let executed = b.subscribe("service.executed")?;
    let learned_events = a.subscribe("service.learned")?;
    let start = tokio::time::Instant::now();
    let mut run = Run {
        rows: Vec::new(),
        learned: Vec::new(),
        series: Vec::new(),
    };
    let (mut n_a, mut n_b) = (0u64, 0u64);
    for second in 1..=s.duration_s {
        tokio::time::sleep_until(start + Duration::from_secs(second)).await;
        while let Ok(ev) = goals_a.try_recv() {
            if ev.payload().get("behaviour") == Some(&Value::from(main.as_str())) {
                n_a += 1;
            }
        }
        while executed.try_recv().is_ok() {
            n_b += 1;
        }
        while let Ok(ev) = learned_events.try_recv() {
            let service = ev
                .payload()
                .get("service")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned();
            let t = ev.time().duration_since(start).as_secs_f64();
            tracing::info!(%service, t_s = t, "A learned a service");
            run.learned.push((service, t));
        }
        let counters = net_counters(&a);
        run.series.push((second as f64, counters.0));
        if s.checkpoints.contains(&second) {
            run.rows.push(Row {
                t_s: second,
                goals_a: n_a,
                goals_b: n_b,
                messages: counters.0,
                all_messages: counters.1,
            });
        }
    }
    a.shutdown().await;
    b.shutdown().await;
    Ok(run)
}

/// Remote requests, and every message, carried so far.
fn net_counters(a: &selflet::AgentHandle) -> (u64, u64) {
    let c = a.message_counters();
    (c.by_kind.get("request").copied().unwrap_or(0), c.total())
}
