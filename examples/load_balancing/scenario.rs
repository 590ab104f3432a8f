//! The load-balancing scenario: eight SelfLets, skewed arrivals with a step half-way, four
//! configurations. Shared by the `load_balancing` example and its integration test.

use std::path::Path;
use std::time::Duration;

use selflet::behaviour::Behaviour;
use selflet::knowledge::Economics;
use selflet::{Agent, AgentHandle, Network, OfferModes, Service, SourceFile, Value};

/// SelfLets in the scenario.
pub(crate) const N: usize = 8;
/// Simulated seconds.
pub(crate) const DURATION_S: u64 = 600;
const PERIOD_S: u64 = 10;
const DEMAND: f64 = 0.1;
const THRESHOLD: f64 = 0.5;

/// What one configuration did.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) mean_utilization: f64,
    pub(crate) max_utilization: f64,
    pub(crate) peak_utilization: f64,
    pub(crate) jain: f64,
    pub(crate) over_threshold: f64,
    pub(crate) messages: u64,
    pub(crate) teachings: u64,
    // Per agent, one utilization per sample period.
    pub(crate) series: Vec<Vec<f64>>,
    pub(crate) requests: u64,
    pub(crate) answered: u64,
}

fn neighbours(i: usize) -> Vec<String> {
    [(i + 1) % N, (i + N - 1) % N, (i + N / 2) % N]
        .iter()
        .map(|j| format!("s{j}"))
        .collect()
}

fn rate(i: usize, t: u64) -> u32 {
    match i {
        0 | 1 if t < DURATION_S / 2 => 6,
        0 | 1 => 9,
        2 | 3 => 1,
        _ => 0,
    }
}

/// Runs one configuration (`none`, `round_robin`, `balance_profit`, `balance_neighbourhood`)
/// on whatever clock the runtime has.
pub(crate) async fn run(config: &str, root: &Path) -> Result<Report, Box<dyn std::error::Error>> {
    let net = Network::new();
    let work = || Behaviour::load(root.join("behaviors/work.yaml"));
    let mut agents: Vec<AgentHandle> = Vec::new();
    for i in 0..N {
        let mut b = Agent::builder(format!("s{i}"))
            .network(&net)
            .predictor_kinds(selflet::plugins::kinds())
            .negotiation(selflet::negotiation::Config {
                neighbours: neighbours(i),
                ..Default::default()
            })
            .economics(
                "work",
                Economics {
                    revenue: 1.0,
                    cost: 0.2,
                    threshold: Some(THRESHOLD),
                },
            );
        if i < 4 {
            b = b.behaviour(work()?).service(Service::new(
                "work",
                OfferModes::CAN_DO | OfferModes::CAN_TEACH,
            ));
        }
        let policy = match config {
            "balance_profit" | "balance_neighbourhood" => {
                Some(root.join(format!("policies/{config}.rhai")))
            }
            _ => None,
        };
        if let Some(p) = policy {
            b = b.policy(SourceFile::read(p)?);
        }
        let agent = b.spawn().await?;
        let params = Value::map([
            ("model", Value::from("holt")),
            ("alpha", Value::Float(0.5)),
            ("beta", Value::Float(0.3)),
            ("sample_period", Value::from(format!("{PERIOD_S}s"))),
        ]);
        agent.plug_predictor("load_forecast", "load", &params)?;
        agents.push(agent);
    }
    if config == "round_robin" {
        for (i, a) in agents.iter().enumerate().take(4) {
            // Alternate with the ring successor, teaching it the service if it lacks it.
            let next = format!("s{}", (i + 1) % N);
            if i == 3 {
                a.teach("work", &next).await?;
            }
            a.redirect("work", &next, 0.5);
        }
    }
    let samples: Vec<_> = agents
        .iter()
        .map(|a| a.subscribe("load.sample"))
        .collect::<Result<_, _>>()?;
    let mut report = Report {
        series: vec![Vec::new(); N],
        ..Report::default()
    };
    let start = tokio::time::Instant::now();
    let mut over = 0.0;
    let mut executed = 0.0;
    for t in 0..DURATION_S {
        for (i, a) in agents.iter().enumerate() {
            for _ in 0..rate(i, t) {
                report.requests += 1;
                if a.call("work", ()).await.is_ok() {
                    report.answered += 1;
                }
            }
        }
        tokio::time::sleep_until(start + Duration::from_secs(t + 1)).await;
    }
    for (i, sub) in samples.iter().enumerate() {
        while let Ok(ev) = sub.try_recv() {
            let u = ev
                .payload()
                .get("utilization")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            let n = ev
                .payload()
                .get("rates")
                .and_then(|r| r.get("work"))
                .and_then(Value::as_f64)
                .unwrap_or(0.0)
                * PERIOD_S as f64;
            report.series[i].push(u);
            executed += n;
            // M/M/1 response time of the requests run in that period.
            if u >= 1.0 || DEMAND / (1.0 - u) > THRESHOLD {
                over += n;
            }
        }
    }
    let all: Vec<f64> = report.series.iter().flatten().copied().collect();
    report.mean_utilization = all.iter().sum::<f64>() / all.len().max(1) as f64;
    report.peak_utilization = all.iter().copied().fold(0.0, f64::max);
    let means: Vec<f64> = report
        .series
        .iter()
        .map(|s| s.iter().sum::<f64>() / s.len().max(1) as f64)
        .collect();
    // The busiest SelfLet's average: how unevenly the load sits. (The single highest sample
    // is also kept: it includes the period in which the load step happens, before any
    // forecast can react.)
    report.max_utilization = means.iter().copied().fold(0.0, f64::max);
    let (sum, sq): (f64, f64) = (means.iter().sum(), means.iter().map(|x| x * x).sum());
    report.jain = if sq > 0.0 {
        sum * sum / (N as f64 * sq)
    } else {
        1.0
    };
    report.over_threshold = if executed > 0.0 { over / executed } else { 0.0 };
    let c = net_counters(&agents[0]);
    report.messages = c.0;
    report.teachings = c.1;
    for a in &agents {
        a.shutdown().await;
    }
    Ok(report)
}

/// Remote service messages (requests, replies, teachings; not adverts or load reports) and
/// teachings.
fn net_counters(a: &AgentHandle) -> (u64, u64) {
    let c = a.message_counters();
    let by = |k: &str| c.by_kind.get(k).copied().unwrap_or(0);
    let service = c.total() - by("advert") - by("discover") - by("load");
    (service, by("lesson") + by("teaching"))
}
