//! What the Rhizoma runs show: adaptation to the CPU spike, the cost sweep, constraint safety,
//! the horizon, re-election — as checks with their figures.

use std::collections::BTreeSet;

use selflet::Value;
use selflet::deployment::Configuration;

use crate::check::Check;
use crate::scenario::{CORES, MIN_FREE, SPIKE_SPEED, SPIKED, Trace, satisfies};

/// A run's figures.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub(crate) add_cost: f64,
    /// Plans executed.
    pub(crate) redeployments: usize,
    pub(crate) coordinator_changes: usize,
    /// Hosts that ever ran a member.
    pub(crate) distinct_hosts: usize,
    /// The same three over the first two hours (the paper: 18, 3, 10).
    pub(crate) first_2h: (usize, usize, usize),
    /// Mean utility the coordinators measured.
    pub(crate) mean_utility: f64,
    /// Mean free CPU of the members' hosts before the spike, at its lowest during it, and
    /// minutes until it is back to 70 % of before.
    pub(crate) free_before: f64,
    pub(crate) free_lowest: f64,
    pub(crate) recovery_min: Option<f64>,
    /// Mean diameter before, during and after the spike.
    pub(crate) diameter: (f64, f64, f64),
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { s / n as f64 }
}

fn coordinator_changes(t: &Trace, until: f64) -> usize {
    let coords: Vec<&str> = t
        .decisions
        .iter()
        .filter(|(m, _)| *m <= until)
        .map(|(_, d)| d.coordinator.as_str())
        .collect();
    coords.windows(2).filter(|w| w[0] != w[1]).count()
}

fn counts(t: &Trace, until: f64) -> (usize, usize, usize) {
    let redeployments = t
        .decisions
        .iter()
        .filter(|(m, d)| *m <= until && d.executed)
        .count();
    let hosts: BTreeSet<&str> = t
        .samples
        .iter()
        .filter(|s| s.minute <= until)
        .flat_map(|s| s.members.iter().map(|(_, h)| h.as_str()))
        .collect();
    (redeployments, coordinator_changes(t, until), hosts.len())
}

pub(crate) fn summarize(t: &Trace) -> Summary {
    let (start, len) = t.setup.spike;
    let (start, end) = (start as f64, (start + len) as f64);
    let window = |from: f64, to: f64| {
        t.samples
            .iter()
            .filter(move |s| s.minute >= from && s.minute < to)
    };
    let free_before = mean(window(start - 30.0, start).map(|s| s.free));
    let free_lowest = window(start, end)
        .map(|s| s.free)
        .fold(f64::INFINITY, f64::min);
    let recovery_min = window(start, end)
        .find(|s| s.free >= 0.7 * free_before)
        .map(|s| s.minute - start);
    let all = counts(t, f64::INFINITY);
    Summary {
        add_cost: t.setup.add_cost,
        redeployments: all.0,
        coordinator_changes: all.1,
        distinct_hosts: all.2,
        first_2h: counts(t, 120.0),
        mean_utility: mean(
            t.decisions
                .iter()
                .map(|(_, d)| d.plan.as_ref().map_or(0.0, |p| p.utility_before)),
        ),
        free_before,
        free_lowest,
        recovery_min,
        diameter: (
            mean(window(start - 30.0, start).map(|s| s.diameter)),
            mean(window(start + 10.0, end).map(|s| s.diameter)),
            mean(window(end + 15.0, end + 45.0).map(|s| s.diameter)),
        ),
    }
}

/// Free CPU the configuration in force at `minute` would have during the spike, frozen.
fn frozen_free(t: &Trace, minute: f64) -> (f64, f64) {
    let Some(s) = t.samples.iter().find(|s| s.minute >= minute) else {
        return (0.0, 0.0);
    };
    let during = |h: &str| {
        if SPIKED.contains(&h) {
            CORES as f64 * SPIKE_SPEED
        } else {
            CORES as f64
        }
    };
    let before = CORES as f64;
    let spiked = mean(s.members.iter().map(|(_, h)| during(h)));
    (before, spiked)
}

pub(crate) fn checks(main: &Trace, sweep: &[Trace]) -> Vec<Check> {
    let s = summarize(main);
    let mut out = Vec::new();
    let recovered = s.recovery_min.is_some_and(|m| m <= 10.0);
    out.push(Check::new(
        "the deployment moves away from the CPU spike within a few periods",
        recovered,
        format!(
            "mean free CPU {:.2} cores before, lowest {:.2} during; back to 70 % after {}",
            s.free_before,
            s.free_lowest,
            s.recovery_min
                .map_or("never".into(), |m| format!("{m:.1} min")),
        ),
    ));
    let (before, frozen) = frozen_free(main, main.setup.spike.0 as f64 - 30.0);
    out.push(Check::new(
        "the configuration in force before the spike, frozen, loses more than 30 % of its free CPU in it",
        frozen < 0.7 * before,
        format!("{before:.2} → {frozen:.2} cores ({:+.0} %)", 100.0 * (frozen / before - 1.0)),
    ));
    let (d0, d1, d2) = s.diameter;
    out.push(Check::new(
        "the overlay's diameter rises during the spike and comes back after it",
        d1 > 1.2 * d0 && (d2 - d0).abs() <= 0.1 * d0,
        format!(
            "{d0:.0} ms before, {d1:.0} ms during ({:+.0} %; paper ≈ +80 %), {d2:.0} ms after",
            100.0 * (d1 / d0 - 1.0)
        ),
    ));
    let mut by_cost: Vec<(f64, usize)> = sweep
        .iter()
        .map(|t| (t.setup.add_cost, summarize(t).redeployments))
        .collect();
    by_cost.sort_by(|a, b| a.0.total_cmp(&b.0));
    out.push(Check::new(
        "redeployments fall as the migration cost rises",
        by_cost.windows(2).all(|w| w[1].1 <= w[0].1)
            && by_cost.first().map(|f| f.1) > by_cost.last().map(|l| l.1),
        by_cost
            .iter()
            .map(|(c, n)| format!("cost {c}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
            + ", cost ∞ (the first configuration): 0",
    ));
    let (mut plans, mut unsafe_plans, mut longest) = (0, 0, 0);
    for t in std::iter::once(main).chain(sweep) {
        for (m, d) in &t.decisions {
            let Some(p) = d.plan.as_ref().filter(|_| d.executed) else {
                continue;
            };
            plans += 1;
            longest = longest.max(p.actions.len());
            let spiking =
                *m >= t.setup.spike.0 as f64 && *m < (t.setup.spike.0 + t.setup.spike.1) as f64;
            if !satisfies(&pairs(&p.target), |h| free_at(h, spiking)) {
                unsafe_plans += 1;
            }
        }
    }
    let horizon = main.setup.horizon;
    out.push(Check::new(
        "every executed configuration satisfies the constraints",
        plans > 0 && unsafe_plans == 0,
        format!("{plans} plans executed, {unsafe_plans} broke a constraint (checked here, not by the script)"),
    ));
    out.push(Check::new(
        "each plan changes at most n members",
        longest <= horizon,
        format!("longest plan {longest} actions, n = {horizon}"),
    ));
    out.push(reelection(main));
    out
}

fn free_at(host: &str, spiking: bool) -> f64 {
    if spiking && SPIKED.contains(&host) {
        CORES as f64 * SPIKE_SPEED
    } else {
        CORES as f64
    }
}

fn pairs(c: &Configuration) -> Vec<(String, String)> {
    c.members()
        .map(|(m, h)| (m.to_owned(), h.to_owned()))
        .collect()
}

/// After the coordinator crashes, the lowest live member decides within one period (the
/// in-process network tells at once that a member left: failure detection takes no time).
fn reelection(t: &Trace) -> Check {
    let Some((at, crashed)) = &t.crashed else {
        return Check::new(
            "the coordinator is re-elected after a crash",
            false,
            "no crash in this run",
        );
    };
    let next = t
        .decisions
        .iter()
        .find(|(m, d)| m >= at && d.coordinator != *crashed);
    match next {
        Some((m, d)) => {
            let lowest = d.before.members().map(|(n, _)| n).min() == Some(d.coordinator.as_str());
            Check::new(
                "the coordinator is re-elected after a crash within the failure-detection time plus one period",
                m - at <= 1.0 && lowest,
                format!(
                    "`{crashed}` crashed at {at:.2} min; `{}` (the lowest live member: {lowest}) decided {:.0} s later; period 60 s",
                    d.coordinator,
                    (m - at) * 60.0
                ),
            )
        }
        None => Check::new(
            "the coordinator is re-elected after a crash",
            false,
            format!("`{crashed}` crashed; nobody decided after"),
        ),
    }
}

pub(crate) fn json(main: &Trace, sweep: &[Trace], checks: &[Check]) -> Value {
    let run = |t: &Trace| {
        let s = summarize(t);
        Value::map([
            ("add_cost", Value::Float(s.add_cost)),
            ("redeployments", Value::Int(s.redeployments as i64)),
            (
                "coordinator_changes",
                Value::Int(s.coordinator_changes as i64),
            ),
            ("distinct_hosts", Value::Int(s.distinct_hosts as i64)),
            ("mean_utility", Value::Float(s.mean_utility)),
            ("free_before", Value::Float(s.free_before)),
            ("free_lowest", Value::Float(s.free_lowest)),
            (
                "recovery_min",
                s.recovery_min.map_or(Value::Null, Value::Float),
            ),
            (
                "diameter_ms",
                Value::List(vec![
                    Value::Float(s.diameter.0),
                    Value::Float(s.diameter.1),
                    Value::Float(s.diameter.2),
                ]),
            ),
        ])
    };
    Value::map([
        ("main", run(main)),
        ("sweep", Value::List(sweep.iter().map(run).collect())),
        (
            "checks",
            Value::List(checks.iter().map(Check::to_value).collect()),
        ),
        ("min_free", Value::Float(MIN_FREE)),
    ])
}

/// Whether hill-climbing stops short of what an exhaustive search over the same horizon
/// finds, from the configuration hill-climbing settles in before the spike (one member per
/// region, each on its region's innermost host): the paper's local maximum.
pub(crate) async fn local_maximum(
    root: &std::path::Path,
) -> Result<Check, Box<dyn std::error::Error>> {
    use selflet::deployment::{Hosts, ScriptObjective, Search, SimulatedHosts};
    let source = selflet::SourceFile::read(root.join("examples/rhizoma/objective.rhai"))?;
    let mut objective = ScriptObjective::compile(&source)?;
    objective.set_state(&Value::map([
        ("add_cost", Value::Float(0.0)),
        ("min_free", Value::Float(MIN_FREE)),
        ("cores", Value::Float(CORES as f64)),
    ]));
    let hosts = SimulatedHosts::new(std::sync::Arc::new(|_, _, _| {
        Box::pin(async { Err("this check starts no member".into()) })
    }));
    for (name, region, x, y) in crate::scenario::layout() {
        let attrs = [
            ("region", Value::from(region)),
            ("x", Value::Float(x)),
            ("y", Value::Float(y)),
        ];
        hosts.add_host(&name, CORES, &attrs);
    }
    let status = hosts.status().await?;
    let settled =
        Configuration::from_pairs([("a", "as1"), ("e", "eu1"), ("n", "na1"), ("s", "sa1")]);
    let search = Search {
        horizon: 2,
        hosts: status.iter().map(|h| h.name.clone()).collect(),
        min_members: 4,
        max_members: 8,
    };
    let budget = std::time::Duration::from_secs(60);
    let mut p = objective.period(&settled, &status, 0.0, budget)?;
    let hill = search
        .hill_climb(&settled, &mut p)?
        .map_or(0.0, |p| p.gain());
    let best = search.exhaustive(&settled, &mut p)?;
    let (gain, actions) = best.map_or((0.0, String::new()), |p| {
        let a: Vec<String> = p.actions.iter().map(ToString::to_string).collect();
        (p.gain(), a.join(", "))
    });
    Ok(Check::new(
        "at cost 0, hill-climbing settles in a local maximum that an exhaustive search of the same horizon escapes",
        hill <= 1e-9 && gain > 1e-9,
        format!(
            "from as1/eu1/na1/sa1: hill-climbing gains {hill:.3}; exhaustive gains {gain:.3} by `{actions}`"
        ),
    ))
}
