//! Rhizoma's failure-adaptivity experiment (seed 003, §6.4–6.5) with real SelfLets on
//! simulated hosts: sixteen hosts in four regions, four members that manage their own
//! deployment, a CPU spike on most European and North American hosts, a coordinator crash.
//! Shared by the `rhizoma` example and its integration test.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use selflet::deployment::{self, Decision, Hosts, SimulatedHosts, Strategy};
use selflet::{Agent, Network, SourceFile, Value};

/// A point, in milliseconds of latency.
type Point = (f64, f64);

/// Regions, their centre and the direction their hosts spread away from the others.
const REGIONS: [(&str, Point, Point); 4] = [
    ("na", (0.0, 0.0), (0.0, 1.0)),
    ("sa", (0.0, -150.0), (0.0, -1.0)),
    ("eu", (200.0, 50.0), (1.0, 0.0)),
    ("as", (-250.0, 50.0), (-1.0, 0.0)),
];
/// Hosts per region; the k-th lies `SPREAD · (k − 1)` ms further out.
const PER_REGION: usize = 4;
const SPREAD: f64 = 75.0;
pub(crate) const CORES: usize = 2;
/// The hosts the CPU spike hits (every European and North American host but the farthest),
/// and their speed meanwhile.
pub(crate) const SPIKED: [&str; 6] = ["eu1", "eu2", "eu3", "na1", "na2", "na3"];
pub(crate) const SPIKE_SPEED: f64 = 0.2;
/// Where the members start: not the best hosts, so the first periods redeploy.
const FIRST: [&str; 4] = ["na3", "sa3", "eu3", "as3"];

/// One run's settings.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) minutes: u64,
    /// The CPU spike: first minute and length.
    pub(crate) spike: (u64, u64),
    /// When the coordinator crashes, if it does.
    pub(crate) crash_at: Option<u64>,
    /// Migration cost per member started (the paper's addCostParam).
    pub(crate) add_cost: f64,
    pub(crate) horizon: usize,
    pub(crate) strategy: Strategy,
}

impl Setup {
    /// The paper's 8 h run.
    pub(crate) fn paper() -> Setup {
        Setup {
            minutes: 480,
            spike: (150, 120),
            crash_at: Some(60),
            add_cost: 0.012,
            horizon: 2,
            strategy: Strategy::HillClimbing,
        }
    }
}

/// The deployment at one minute.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) minute: f64,
    pub(crate) members: Vec<(String, String)>,
    /// Mean free CPU (cores) of the members' hosts.
    pub(crate) free: f64,
    /// Largest latency between two members' hosts, ms.
    pub(crate) diameter: f64,
}

/// What a run did.
#[derive(Debug)]
pub(crate) struct Trace {
    pub(crate) setup: Setup,
    pub(crate) samples: Vec<Sample>,
    pub(crate) decisions: Vec<(f64, Decision)>,
    /// The crashed coordinator and when (minutes).
    pub(crate) crashed: Option<(f64, String)>,
}

/// A host's region and position.
pub(crate) fn layout() -> Vec<(String, &'static str, f64, f64)> {
    let mut out = Vec::new();
    for (region, (cx, cy), (dx, dy)) in REGIONS {
        for k in 0..PER_REGION {
            let off = SPREAD * k as f64;
            out.push((
                format!("{region}{}", k + 1),
                region,
                cx + dx * off,
                cy + dy * off,
            ));
        }
    }
    out
}

fn position(host: &str) -> (f64, f64) {
    layout()
        .into_iter()
        .find(|(h, ..)| h == host)
        .map_or((0.0, 0.0), |(_, _, x, y)| (x, y))
}

/// The largest latency between the hosts of `members`.
pub(crate) fn diameter(members: &[(String, String)]) -> f64 {
    let mut d: f64 = 0.0;
    for (i, (_, a)) in members.iter().enumerate() {
        for (_, b) in &members[i + 1..] {
            let (p, q) = (position(a), position(b));
            d = d.max(((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt());
        }
    }
    d
}

/// Whether a configuration meets the constraints, checked here independently of the script:
/// at least four members, one per host, at most ceil(n/4) per region, diameter < 1000 ms,
/// and no member on a host with less than `min_free` free cores.
pub(crate) fn satisfies(members: &[(String, String)], free: impl Fn(&str) -> f64) -> bool {
    let n = members.len();
    let most = n.div_ceil(4);
    let hosts: std::collections::BTreeSet<&str> = members.iter().map(|(_, h)| h.as_str()).collect();
    let per_region = |r: &str| members.iter().filter(|(_, h)| h.starts_with(r)).count();
    n >= 4
        && hosts.len() == n
        && REGIONS.iter().all(|(r, ..)| per_region(r) <= most)
        && diameter(members) < 1000.0
        && members.iter().all(|(_, h)| free(h) >= MIN_FREE)
}

/// The node constraint's floor of free CPU, in cores.
pub(crate) const MIN_FREE: f64 = 0.3;

/// Runs one setup on the paused clock.
pub(crate) async fn run(root: &Path, setup: &Setup) -> Result<Trace, Box<dyn std::error::Error>> {
    let objective = SourceFile::read(root.join("examples/rhizoma/objective.rhai"))?;
    let mut config = deployment::Config::new(objective);
    config.period = Duration::from_secs(60);
    config.horizon = setup.horizon;
    config.strategy = setup.strategy;
    config.min_members = 4;
    config.max_members = 8;
    config.params = Value::map([
        ("add_cost", Value::Float(setup.add_cost)),
        ("min_free", Value::Float(MIN_FREE)),
        ("cores", Value::Float(CORES as f64)),
    ]);
    let log = config.log.clone();
    let net = Network::new();
    let hosts = SimulatedHosts::new(Arc::new(move |hosts, _host, name| {
        let (net, config) = (net.clone(), config.clone());
        Box::pin(async move {
            let a = Agent::builder(name).network(&net).spawn().await?;
            deployment::manage(&a, Arc::new(hosts), config)?;
            Ok(a)
        })
    }));
    for (name, region, x, y) in layout() {
        hosts.add_host(
            &name,
            CORES,
            &[
                ("region", Value::from(region)),
                ("x", Value::Float(x)),
                ("y", Value::Float(y)),
            ],
        );
    }
    for h in FIRST {
        hosts.start(h).await?;
    }
    let start = tokio::time::Instant::now();
    let minutes = |t: tokio::time::Instant| t.duration_since(start).as_secs_f64() / 60.0;
    let mut trace = Trace {
        setup: setup.clone(),
        samples: Vec::new(),
        decisions: Vec::new(),
        crashed: None,
    };
    // Events at a quarter past the minute, samples at half past: never on a manager's tick.
    for minute in 0..setup.minutes {
        let at = |s: u64| start + Duration::from_secs(minute * 60 + s);
        tokio::time::sleep_until(at(15)).await;
        if minute == setup.spike.0 || minute == setup.spike.0 + setup.spike.1 {
            let speed = if minute == setup.spike.0 {
                SPIKE_SPEED
            } else {
                1.0
            };
            for h in SPIKED {
                if let Some(h) = hosts.host(h) {
                    h.set_speed(speed);
                }
            }
        }
        if setup.crash_at == Some(minute) {
            let coordinator = hosts.members().await?.into_iter().map(|(m, _)| m).min();
            if let Some(c) = coordinator {
                hosts.crash(&c).await?;
                trace.crashed = Some((minutes(tokio::time::Instant::now()), c));
            }
        }
        tokio::time::sleep_until(at(30)).await;
        let members = hosts.members().await?;
        let free = |h: &str| hosts.host(h).map_or(0.0, |h| CORES as f64 * h.speed());
        let mean_free =
            members.iter().map(|(_, h)| free(h)).sum::<f64>() / members.len().max(1) as f64;
        trace.samples.push(Sample {
            minute: minute as f64 + 0.5,
            diameter: diameter(&members),
            free: mean_free,
            members,
        });
    }
    trace.decisions = log
        .decisions()
        .into_iter()
        .map(|d| (minutes(d.at), d))
        .collect();
    for (m, _) in hosts.members().await? {
        if let Some(a) = hosts.member(&m) {
            a.shutdown().await;
        }
    }
    Ok(trace)
}
