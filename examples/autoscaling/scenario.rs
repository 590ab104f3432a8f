//! One configuration against one trace: SelfLets on simulated hosts serve the trace's
//! requests on the paused clock. Shared by the `autoscaling` example and its test.
//!
//! Hosts are one-core machines, half fast (speed 1) and half slow (speed 0.5), as a cloud of
//! two instance types. A request is `service_s` seconds of work at nominal speed (drawn
//! exponentially, the same draws in every configuration), queued for its member's core. A
//! front (the load balancer every deployment has) sends each request to the member with the
//! fewest requests outstanding.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use selflet::behaviour::{Behaviour, InstanceLimits};
use selflet::deployment::{self, Host, Hosts, SimulatedHosts};
use selflet::knowledge::Economics;
use selflet::{Agent, AgentHandle, CallError, Network, OfferModes, Service, SourceFile, Value};
use tokio::time::Instant;

use crate::trace::Trace;

/// The configurations compared.
pub(crate) const CONFIGS: [&str; 6] = [
    "peak_pool",
    "mean_pool",
    "balance_only",
    "hpa",
    "forecast_scaler",
    "self_deploy",
];

/// The model's parameters.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    /// Mean work per request, seconds at nominal speed.
    pub(crate) service_s: f64,
    /// A response slower than this violates the service level.
    pub(crate) threshold_s: f64,
    /// Seconds from asking for a new member to its serving.
    pub(crate) startup_s: f64,
    /// Utilization every configuration is sized or planned for.
    pub(crate) target: f64,
    /// The deployment manager's period and horizon.
    pub(crate) period_s: u64,
    pub(crate) horizon: usize,
    /// Hosts available (half fast, half slow).
    pub(crate) hosts: usize,
    pub(crate) seed: u64,
    /// The Horizontal Pod Autoscaler's tolerance, scale-down stabilization window and sync
    /// period.
    pub(crate) hpa_tolerance: f64,
    pub(crate) hpa_stabilization_s: f64,
    pub(crate) hpa_sync_s: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            service_s: 10.0,
            threshold_s: 30.0,
            startup_s: 30.0,
            target: 0.6,
            period_s: 60,
            horizon: 2,
            hosts: 24,
            seed: 1,
            hpa_tolerance: 0.1,
            hpa_stabilization_s: 300.0,
            hpa_sync_s: 15.0,
        }
    }
}

/// What one configuration did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Report {
    pub(crate) config: String,
    pub(crate) requests: usize,
    pub(crate) selflet_hours: f64,
    pub(crate) mean_rt_s: f64,
    pub(crate) p95_rt_s: f64,
    /// Share of requests slower than the threshold.
    pub(crate) over_threshold: f64,
    pub(crate) lost: usize,
    pub(crate) actions: BTreeMap<String, u64>,
    /// Per minute: arrivals, SelfLets alive (mean), mean response time of the requests that
    /// arrived in it.
    pub(crate) series: Vec<(f64, f64, f64, f64)>,
}

/// A fixed pool's size: enough of the first hosts (fast ones first) that `rate`
/// requests per second load them to the target.
pub(crate) fn pool_size(rate: f64, p: &Params) -> usize {
    let need = rate * p.service_s / p.target;
    let mut capacity = 0.0;
    let mut n = 0;
    while capacity < need && n < p.hosts {
        capacity += speed(n, p);
        n += 1;
    }
    n.max(1)
}

/// The first half of the hosts are fast, the rest slow: fixed pools take the fast ones first,
/// as an operator would.
fn speed(i: usize, p: &Params) -> f64 {
    if i < p.hosts / 2 { 1.0 } else { 0.5 }
}

fn host_name(i: usize) -> String {
    format!("h{:02}", i + 1)
}

/// Shared by the spawner and the run: members still booting, and whether the first pool is
/// in place (members started after it boot first).
#[derive(Default)]
struct Booting {
    now: AtomicUsize,
    pool_started: std::sync::atomic::AtomicBool,
}

fn member(
    root: &Path,
    config: &str,
    net: &Network,
    host: &Host,
    name: &str,
    p: &Params,
) -> Result<selflet::AgentBuilder, Box<dyn std::error::Error + Send + Sync>> {
    let host = host.clone();
    let mut b = Agent::builder(name)
        .network(net)
        .ability("transcode", move |input: Value| {
            let host = host.clone();
            async move {
                let s = input.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
                host.work(s).await;
                Ok::<_, selflet::error::BoxError>(Value::Bool(true))
            }
        })
        // A request may queue long for the core; a member being stopped finishes its queue;
        // a redirected request may wait long.
        .ability_budget(Duration::from_secs(3600))
        .instance_limits(InstanceLimits {
            time: Some(Duration::from_secs(3600)),
            ..InstanceLimits::default()
        })
        .shutdown_grace(Duration::from_secs(3600))
        .negotiation(selflet::negotiation::Config {
            timeout: Duration::from_secs(3600),
            ..Default::default()
        });
    // Every member is started from the same image, application included.
    b = b
        .behaviour(Behaviour::load(
            root.join("examples/autoscaling/behaviors/video.yaml"),
        )?)
        .service(
            Service::new("video", OfferModes::CAN_DO | OfferModes::CAN_TEACH)
                .time_limit(Duration::from_secs(3600)),
        );
    if config == "balance_only" {
        b = b
            .predictor_kinds(selflet::plugins::kinds())
            .economics(
                "video",
                Economics {
                    revenue: 1.0,
                    cost: 0.2,
                    threshold: Some(p.threshold_s),
                },
            )
            .policy(SourceFile::read(root.join("policies/balance_profit.rhai"))?);
    }
    Ok(b)
}

fn deployment_config(root: &Path, p: &Params) -> Result<deployment::Config, selflet::LoadError> {
    let mut c = deployment::Config::new(SourceFile::read(
        root.join("examples/autoscaling/objective.rhai"),
    )?);
    c.period = Duration::from_secs(p.period_s);
    c.horizon = p.horizon;
    c.min_members = 1;
    c.max_members = p.hosts;
    c.params = Value::map([
        ("service_s", Value::Float(p.service_s)),
        ("target", Value::Float(p.target)),
        ("price", Value::Float(0.01)),
        ("add_cost", Value::Float(0.01)),
        ("alpha", Value::Float(0.3)),
        ("beta", Value::Float(0.3)),
        ("ahead", Value::Float(1.0 + p.startup_s / p.period_s as f64)),
        ("period_s", Value::Float(p.period_s as f64)),
    ]);
    Ok(c)
}

/// Runs `config` against `trace` on the paused clock.
pub(crate) async fn run(
    root: &Path,
    trace: &Trace,
    config: &str,
    p: &Params,
) -> Result<Report, Box<dyn std::error::Error>> {
    let net = Network::new();
    let booting = Arc::new(Booting::default());
    let dconfig = deployment_config(root, p)?;
    let log = dconfig.log.clone();
    let spawner = {
        let (root, config, net, p, booting) = (
            root.to_path_buf(),
            config.to_owned(),
            net.clone(),
            p.clone(),
            Arc::clone(&booting),
        );
        Arc::new(move |hosts: SimulatedHosts, host: Host, name: String| {
            let (root, config, net, p, booting, dconfig) = (
                root.clone(),
                config.clone(),
                net.clone(),
                p.clone(),
                Arc::clone(&booting),
                dconfig.clone(),
            );
            Box::pin(async move {
                // The first members are there from the start; the ones a plan adds boot.
                let added = booting.pool_started.load(Ordering::Relaxed);
                if added {
                    booting.now.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_secs_f64(p.startup_s)).await;
                    booting.now.fetch_sub(1, Ordering::Relaxed);
                }
                let b = member(&root, &config, &net, &host, &name, &p)?;
                let a = b.spawn().await?;
                if config == "balance_only" {
                    let params = Value::map([
                        ("model", Value::from("holt")),
                        ("sample_period", Value::from(format!("{}s", p.period_s))),
                    ]);
                    a.plug_predictor("load_forecast", "load", &params)?;
                }
                if config == "self_deploy" {
                    deployment::manage(&a, Arc::new(hosts), dconfig)?;
                }
                Ok(a)
            }) as futures_util::future::BoxFuture<'static, _>
        })
    };
    let hosts = SimulatedHosts::new(spawner);
    for i in 0..p.hosts {
        let kind = if speed(i, p) < 1.0 { "slow" } else { "fast" };
        let h = hosts.add_host(&host_name(i), 1, &[("kind", Value::from(kind))]);
        h.set_speed(speed(i, p));
    }
    let size = match config {
        "peak_pool" => pool_size(trace.peak_rate(600.0), p),
        _ => pool_size(trace.mean_rate(), p),
    };
    for i in 0..size {
        hosts.start(&host_name(i)).await?;
    }
    booting.pool_started.store(true, Ordering::Relaxed);
    let scaler = scaler(config, p).map(|s| {
        let order: Vec<String> = (0..p.hosts).map(host_name).collect();
        let speeds = (0..p.hosts).map(|i| (host_name(i), speed(i, p))).collect();
        crate::scalers::spawn(s, hosts.clone(), order, speeds)
    });
    let report = replay(trace, config, p, &hosts, &booting).await;
    let mut report = report?;
    if let Some((task, actions)) = scaler {
        task.abort();
        report.actions = actions.lock().unwrap().clone();
    }
    if config == "self_deploy" {
        for d in log.decisions().iter().filter(|d| d.executed) {
            for a in d.plan.iter().flat_map(|p| &p.actions) {
                *report.actions.entry(a.kind().to_owned()).or_default() += 1;
            }
            *report.actions.entry("teach".into()).or_default() += d.taught as u64;
        }
    }
    for (m, _) in hosts.members().await? {
        if let Some(a) = hosts.member(&m) {
            if config == "balance_only" {
                let c = a.message_counters();
                let by = |k: &str| c.by_kind.get(k).copied().unwrap_or(0);
                *report.actions.entry("teach".into()).or_default() += by("teaching") + by("lesson");
            }
            a.shutdown().await;
        }
    }
    Ok(report)
}

/// The central scaler of `config`, if it has one.
fn scaler(config: &str, p: &Params) -> Option<crate::scalers::Scaler> {
    use crate::scalers::{Forecast, Hpa, Scaler};
    match config {
        "hpa" => Some(Scaler::Hpa(Hpa {
            target: p.target,
            tolerance: p.hpa_tolerance,
            stabilization: Duration::from_secs_f64(p.hpa_stabilization_s),
            sync: Duration::from_secs_f64(p.hpa_sync_s),
        })),
        "forecast_scaler" => Some(Scaler::Forecast(Forecast {
            target: p.target,
            service_s: p.service_s,
            period: Duration::from_secs(p.period_s),
            alpha: 0.3,
            beta: 0.3,
            ahead: 1.0 + p.startup_s / p.period_s as f64,
        })),
        _ => None,
    }
}

/// One request's fate.
struct Done {
    arrived: f64,
    rt: Option<f64>,
}

async fn replay(
    trace: &Trace,
    config: &str,
    p: &Params,
    hosts: &SimulatedHosts,
    booting: &Booting,
) -> Result<Report, Box<dyn std::error::Error>> {
    let mut rng = fastrand::Rng::with_seed(p.seed);
    let work: Vec<f64> = trace
        .arrivals
        .iter()
        .map(|_| -p.service_s * (1.0 - rng.f64()).ln())
        .collect();
    let start = Instant::now();
    let outstanding: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let done: Arc<Mutex<Vec<Done>>> = Arc::default();
    let sample = Duration::from_secs(10);
    let mut next_sample = start + sample;
    let mut alive_samples: Vec<(f64, f64)> = Vec::new();
    let mut calls = tokio::task::JoinSet::new();
    let mut i = 0;
    // Until every request has arrived and been answered.
    while i < trace.arrivals.len() || !calls.is_empty() {
        let next_arrival = trace
            .arrivals
            .get(i)
            .map(|t| start + Duration::from_secs_f64(*t));
        let wake = next_arrival.map_or(next_sample, |a| a.min(next_sample));
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            Some(_) = calls.join_next(), if !calls.is_empty() => continue,
        }
        if Instant::now() >= next_sample {
            let alive = hosts.members().await?.len() + booting.now.load(Ordering::Relaxed);
            alive_samples.push((
                next_sample.duration_since(start).as_secs_f64(),
                alive as f64,
            ));
            next_sample += sample;
        }
        while let Some(t) = trace.arrivals.get(i) {
            if start + Duration::from_secs_f64(*t) > Instant::now() {
                break;
            }
            let (arrived, seconds) = (*t, work[i]);
            let (outstanding, done, hosts) =
                (Arc::clone(&outstanding), Arc::clone(&done), hosts.clone());
            calls.spawn(async move {
                let began = Instant::now();
                let rt = serve(&hosts, &outstanding, seconds)
                    .await
                    .map(|_| began.elapsed().as_secs_f64());
                done.lock().unwrap().push(Done { arrived, rt });
            });
            i += 1;
        }
    }
    let done = std::mem::take(&mut *done.lock().unwrap());
    Ok(summarize(
        config,
        trace,
        p,
        &done,
        &alive_samples,
        sample.as_secs_f64(),
    ))
}

/// Sends a request to the member with the fewest outstanding; one that refuses it because it
/// is stopping (as a load balancer sees a draining instance refuse a connection) is left for
/// the next. `None` if the request was lost.
async fn serve(
    hosts: &SimulatedHosts,
    outstanding: &Mutex<HashMap<String, usize>>,
    seconds: f64,
) -> Option<()> {
    loop {
        let Ok((name, member)) = pick(hosts, outstanding).await else {
            tracing::warn!("request lost: no member is running");
            return None;
        };
        *outstanding.lock().unwrap().entry(name.clone()).or_default() += 1;
        let r = member
            .call("video", Value::map([("seconds", Value::Float(seconds))]))
            .await;
        if let Some(n) = outstanding.lock().unwrap().get_mut(&name) {
            *n = n.saturating_sub(1);
        }
        match r {
            Ok(_) => return Some(()),
            Err(CallError::Stopped) => continue,
            Err(e) => {
                tracing::warn!(member = %name, error = %e, "request lost");
                return None;
            }
        }
    }
}

/// The member with the fewest requests outstanding (the first by name on a tie).
async fn pick(
    hosts: &SimulatedHosts,
    outstanding: &Mutex<HashMap<String, usize>>,
) -> Result<(String, AgentHandle), Box<dyn std::error::Error>> {
    let members = hosts.members().await?;
    let counts = outstanding.lock().unwrap();
    let best = members
        .iter()
        .map(|(m, _)| m)
        .min_by_key(|m| (counts.get(*m).copied().unwrap_or(0), (*m).clone()))
        .ok_or("no member is running")?;
    let handle = hosts.member(best).ok_or("a member left as it was picked")?;
    Ok((best.clone(), handle))
}

fn summarize(
    config: &str,
    trace: &Trace,
    p: &Params,
    done: &[Done],
    alive: &[(f64, f64)],
    sample_s: f64,
) -> Report {
    let mut rts: Vec<f64> = done.iter().filter_map(|d| d.rt).collect();
    rts.sort_by(f64::total_cmp);
    let n = rts.len().max(1) as f64;
    let minutes = (trace.span() / 60.0).ceil() as usize + 1;
    let mut series = vec![(0.0, 0.0, 0.0, 0.0); minutes];
    let mut rt_sum = vec![(0.0, 0usize); minutes];
    for (m, s) in series.iter_mut().enumerate() {
        s.0 = m as f64;
    }
    for d in done {
        let m = ((d.arrived / 60.0) as usize).min(minutes - 1);
        series[m].1 += 1.0;
        if let Some(rt) = d.rt {
            rt_sum[m].0 += rt;
            rt_sum[m].1 += 1;
        }
    }
    let mut alive_sum = vec![(0.0, 0usize); minutes];
    for (t, a) in alive {
        let m = ((t / 60.0) as usize).min(minutes - 1);
        alive_sum[m].0 += a;
        alive_sum[m].1 += 1;
    }
    for (m, s) in series.iter_mut().enumerate() {
        s.2 = alive_sum[m].0 / alive_sum[m].1.max(1) as f64;
        s.3 = rt_sum[m].0 / rt_sum[m].1.max(1) as f64;
    }
    Report {
        config: config.to_owned(),
        requests: done.len(),
        selflet_hours: alive.iter().map(|(_, a)| a * sample_s).sum::<f64>() / 3600.0,
        mean_rt_s: rts.iter().sum::<f64>() / n,
        p95_rt_s: rts
            .get(((rts.len() as f64 * 0.95).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0),
        over_threshold: rts.iter().filter(|r| **r > p.threshold_s).count() as f64 / n,
        lost: done.iter().filter(|d| d.rt.is_none()).count(),
        actions: BTreeMap::new(),
        series,
    }
}
