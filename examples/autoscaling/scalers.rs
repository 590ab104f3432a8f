//! The autoscalers people run today, as central controllers over the same hosts: Kubernetes'
//! Horizontal Pod Autoscaler, and a predictive scaler sizing the pool from a load forecast.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use selflet::deployment::{Hosts, SimulatedHosts};
use tokio::time::Instant;

/// The HPA's settings, with the defaults Kubernetes ships.
#[derive(Debug, Clone)]
pub(crate) struct Hpa {
    /// Target utilization of the members' cores.
    pub(crate) target: f64,
    /// No change while |observed / target − 1| is within this (Kubernetes: 0.1).
    pub(crate) tolerance: f64,
    /// Scale down only to the highest recommendation of this window (Kubernetes: 300 s).
    pub(crate) stabilization: Duration,
    /// How often it runs (Kubernetes: 15 s).
    pub(crate) sync: Duration,
}

/// The forecast scaler's settings: the SelfLets' forecast (Holt on the arrival rate, plus the
/// backlog), sized to the target each period.
#[derive(Debug, Clone)]
pub(crate) struct Forecast {
    pub(crate) target: f64,
    pub(crate) service_s: f64,
    pub(crate) period: Duration,
    pub(crate) alpha: f64,
    pub(crate) beta: f64,
    /// Periods ahead.
    pub(crate) ahead: f64,
}

/// Hosts, fast first, and starting and stopping members on them without blocking the loop.
struct Pool {
    hosts: SimulatedHosts,
    order: Vec<String>,
    speeds: BTreeMap<String, f64>,
    starting: Arc<Mutex<BTreeSet<String>>>,
    actions: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl Pool {
    /// Members by host, and hosts with a member starting.
    async fn running(&self) -> (Vec<(String, String)>, usize) {
        let members = self.hosts.members().await.unwrap_or_default();
        (members, self.starting.lock().unwrap().len())
    }

    /// Moves toward `n` members: starts on the fastest free hosts, stops those on the
    /// slowest.
    async fn resize(&self, n: usize) {
        let (members, starting) = self.running().await;
        let current = members.len() + starting;
        if n > current {
            let busy: BTreeSet<String> = members.iter().map(|(_, h)| h.clone()).collect();
            let starting_on = self.starting.lock().unwrap().clone();
            let free = self
                .order
                .iter()
                .filter(|h| !busy.contains(*h) && !starting_on.contains(*h));
            for h in free.take(n - current) {
                self.starting.lock().unwrap().insert(h.clone());
                *self
                    .actions
                    .lock()
                    .unwrap()
                    .entry("add".into())
                    .or_default() += 1;
                let (hosts, starting, h) =
                    (self.hosts.clone(), Arc::clone(&self.starting), h.clone());
                tokio::spawn(async move {
                    let _ = hosts.start(&h).await;
                    starting.lock().unwrap().remove(&h);
                });
            }
        } else if n < current && !members.is_empty() {
            let mut by_speed = members.clone();
            by_speed.sort_by(|a, b| {
                self.speeds[&a.1]
                    .total_cmp(&self.speeds[&b.1])
                    .then(b.1.cmp(&a.1))
            });
            let remove = (current - n).min(members.len().saturating_sub(1));
            for (m, _) in by_speed.into_iter().take(remove) {
                if self.hosts.stop(&m).await.is_ok() {
                    *self
                        .actions
                        .lock()
                        .unwrap()
                        .entry("remove".into())
                        .or_default() += 1;
                }
            }
        }
    }
}

/// Runs a scaler until it is aborted; returns the actions it takes, as they happen.
pub(crate) fn spawn(
    kind: Scaler,
    hosts: SimulatedHosts,
    order: Vec<String>,
    speeds: BTreeMap<String, f64>,
) -> (
    tokio::task::JoinHandle<()>,
    Arc<Mutex<BTreeMap<String, u64>>>,
) {
    let actions: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let pool = Pool {
        hosts,
        order,
        speeds,
        starting: Arc::default(),
        actions: Arc::clone(&actions),
    };
    let task = tokio::spawn(async move {
        match kind {
            Scaler::Hpa(h) => hpa(pool, h).await,
            Scaler::Forecast(f) => forecast(pool, f).await,
        }
    });
    (task, actions)
}

/// Which scaler.
pub(crate) enum Scaler {
    Hpa(Hpa),
    Forecast(Forecast),
}

/// The HPA algorithm as Kubernetes documents it: desired = ceil(current × utilization /
/// target), nothing within the tolerance, scale-down to the highest recommendation of the
/// stabilization window; members still starting count as replicas at 0 % utilization when the
/// rule would scale up (as not-yet-ready pods do); at most max(4, 100 %) more per sync (the
/// default scale-up policy).
async fn hpa(pool: Pool, h: Hpa) {
    let mut recommendations: VecDeque<(Instant, usize)> = VecDeque::new();
    let mut tick = tokio::time::interval_at(Instant::now() + h.sync, h.sync);
    loop {
        tick.tick().await;
        let (members, starting) = pool.running().await;
        let status = pool.hosts.status().await.unwrap_or_default();
        let on: BTreeSet<&str> = members.iter().map(|(_, h)| h.as_str()).collect();
        let used: Vec<f64> = status
            .iter()
            .filter(|s| on.contains(s.name.as_str()))
            .map(|s| s.metrics.get("utilization").copied().unwrap_or(0.0))
            .collect();
        let current = members.len() + starting;
        if used.is_empty() {
            continue;
        }
        let mut ratio = used.iter().sum::<f64>() / used.len() as f64 / h.target;
        if ratio > 1.0 && starting > 0 {
            ratio = used.iter().sum::<f64>() / current as f64 / h.target;
        }
        let desired = if (ratio - 1.0).abs() <= h.tolerance {
            current
        } else {
            (current as f64 * ratio).ceil() as usize
        };
        let now = Instant::now();
        recommendations.push_back((now, desired));
        while recommendations
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > h.stabilization)
        {
            recommendations.pop_front();
        }
        let stabilized = if desired < current {
            recommendations
                .iter()
                .map(|(_, d)| *d)
                .max()
                .unwrap_or(desired)
                .min(current)
        } else {
            desired.min(current + (current.max(4)))
        };
        pool.resize(stabilized.clamp(1, pool.order.len())).await;
    }
}

/// The predictive scaler: the same Holt forecast of arrivals as the SelfLets' objective, the
/// pool sized each period so that its fastest hosts carry it at the target utilization.
async fn forecast(pool: Pool, f: Forecast) {
    let mut holt: Option<(f64, f64)> = None;
    let mut tick = tokio::time::interval_at(Instant::now() + f.period, f.period);
    loop {
        tick.tick().await;
        let status = pool.hosts.status().await.unwrap_or_default();
        let rate: f64 = status
            .iter()
            .map(|s| s.metrics.get("arrivals").copied().unwrap_or(0.0))
            .sum();
        let queued: f64 = status
            .iter()
            .map(|s| s.metrics.get("queue").copied().unwrap_or(0.0))
            .sum();
        let (level, trend) = match holt {
            None => (rate, 0.0),
            Some((l, b)) => {
                let level = f.alpha * rate + (1.0 - f.alpha) * (l + b);
                (level, f.beta * (level - l) + (1.0 - f.beta) * b)
            }
        };
        holt = Some((level, trend));
        let ahead = (level + f.ahead * trend).max(rate);
        let need = (ahead + queued / f.period.as_secs_f64()) * f.service_s / f.target;
        let mut capacity = 0.0;
        let mut n = 0;
        for h in &pool.order {
            if capacity >= need {
                break;
            }
            capacity += pool.speeds[h];
            n += 1;
        }
        pool.resize(n.max(1)).await;
    }
}
