//! The autoscaling comparison: table, checks, JSON and plot.

use std::path::Path;

use selflet::Value;

use crate::check::Check;
use crate::plot::{self, Chart};
use crate::scenario::{Params, Report};
use crate::trace::Trace;

fn get<'a>(reports: &'a [Report], config: &str) -> Option<&'a Report> {
    reports.iter().find(|r| r.config == config)
}

fn actions(r: &Report) -> String {
    if r.actions.is_empty() {
        return "—".into();
    }
    r.actions
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn print(t: &Trace, p: &Params, reports: &[Report]) {
    println!(
        "{}: {} requests over {:.2} h (mean {:.2}/s, peak {:.2}/s over 10 min); work {:.0} s per request, threshold {:.0} s, start-up {:.0} s",
        t.name,
        t.arrivals.len(),
        t.span() / 3600.0,
        t.mean_rate(),
        t.peak_rate(600.0),
        p.service_s,
        p.threshold_s,
        p.startup_s
    );
    println!(
        "{:<14}{:>14}{:>12}{:>11}{:>11}{:>7}  actions",
        "config", "SelfLet-hours", "mean rt s", "p95 rt s", "over thr.", "lost"
    );
    for r in reports {
        println!(
            "{:<14}{:>14.1}{:>12.1}{:>11.1}{:>10.1}%{:>7}  {}",
            r.config,
            r.selflet_hours,
            r.mean_rt_s,
            r.p95_rt_s,
            100.0 * r.over_threshold,
            r.lost,
            actions(r)
        );
    }
}

/// The criteria: self-deployment uses ≥ 30 % fewer SelfLet-hours than the peak pool,
/// with a mean response time within 10 % of it and fewer violations than the mean pool; and
/// no configuration loses a request; and self-deployment against the HPA.
pub(crate) fn checks(reports: &[Report], p: &Params) -> Vec<Check> {
    let (Some(peak), Some(mean), Some(sd)) = (
        get(reports, "peak_pool"),
        get(reports, "mean_pool"),
        get(reports, "self_deploy"),
    ) else {
        return vec![Check::new(
            "all four configurations ran",
            false,
            "one is missing",
        )];
    };
    let saved = 1.0 - sd.selflet_hours / peak.selflet_hours;
    vec![
        Check::new(
            "self-deployment uses at least 30 % fewer SelfLet-hours than the pool sized for the peak",
            saved >= 0.3,
            format!(
                "{:.1} h against {:.1} h ({:.0} % fewer)",
                sd.selflet_hours,
                peak.selflet_hours,
                100.0 * saved
            ),
        ),
        Check::new(
            "with a mean response time within 10 % of the peak pool's",
            sd.mean_rt_s <= 1.1 * peak.mean_rt_s,
            format!(
                "{:.1} s against {:.1} s ({:+.0} %)",
                sd.mean_rt_s,
                peak.mean_rt_s,
                100.0 * (sd.mean_rt_s / peak.mean_rt_s - 1.0)
            ),
        ),
        Check::new(
            "and fewer threshold violations than the pool sized for the mean",
            sd.over_threshold < mean.over_threshold,
            format!(
                "{:.1} % against {:.1} %",
                100.0 * sd.over_threshold,
                100.0 * mean.over_threshold
            ),
        ),
        match get(reports, "hpa") {
            Some(hpa) => Check::new(
                "self-deployment uses fewer SelfLet-hours than Kubernetes' HPA at no worse p95",
                sd.selflet_hours < hpa.selflet_hours && sd.p95_rt_s <= hpa.p95_rt_s,
                format!(
                    "{:.1} h against {:.1} h ({:+.0} %); p95 {:.1} s against {:.1} s (the work alone: {:.1} s)",
                    sd.selflet_hours,
                    hpa.selflet_hours,
                    100.0 * (sd.selflet_hours / hpa.selflet_hours - 1.0),
                    sd.p95_rt_s,
                    hpa.p95_rt_s,
                    // The 95th percentile of the work alone (exponential), with no queueing.
                    p.service_s * 20f64.ln(),
                ),
            ),
            None => Check::new("the HPA ran", false, "it is missing"),
        },
        Check::new(
            "no configuration loses a request",
            reports.iter().all(|r| r.lost == 0 && r.requests > 0),
            reports
                .iter()
                .map(|r| format!("{} {}/{}", r.config, r.lost, r.requests))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ]
}

pub(crate) fn json(t: &Trace, p: &Params, reports: &[Report], checks: &[Check]) -> Value {
    let configs = reports.iter().map(|r| {
        let actions = r
            .actions
            .iter()
            .map(|(k, n)| (k.clone(), Value::Int(*n as i64)));
        (
            r.config.clone(),
            Value::map([
                ("selflet_hours", Value::Float(r.selflet_hours)),
                ("mean_rt_s", Value::Float(r.mean_rt_s)),
                ("p95_rt_s", Value::Float(r.p95_rt_s)),
                ("over_threshold", Value::Float(r.over_threshold)),
                ("lost", Value::Int(r.lost as i64)),
                ("actions", Value::map(actions)),
            ]),
        )
    });
    Value::map([
        ("trace", Value::from(t.name.as_str())),
        ("requests", Value::Int(t.arrivals.len() as i64)),
        (
            "params",
            Value::map([
                ("service_s", Value::Float(p.service_s)),
                ("threshold_s", Value::Float(p.threshold_s)),
                ("startup_s", Value::Float(p.startup_s)),
                ("target", Value::Float(p.target)),
                ("hosts", Value::Int(p.hosts as i64)),
                ("seed", Value::Int(p.seed as i64)),
            ]),
        ),
        ("configs", Value::map(configs)),
        (
            "checks",
            Value::List(checks.iter().map(Check::to_value).collect()),
        ),
    ])
}

pub(crate) fn plot(
    path: &Path,
    t: &Trace,
    reports: &[Report],
) -> Result<(), Box<dyn std::error::Error>> {
    let Some(first) = reports.first() else {
        return Ok(());
    };
    let load: Vec<(f64, f64)> = first.series.iter().map(|s| (s.0, s.1)).collect();
    let top = Chart::new(
        format!("{}: requests per minute", t.name),
        "minute",
        "requests",
    )
    .line("arrivals", load);
    let mut alive = Chart::new("SelfLets alive", "minute", "SelfLets");
    let mut rt = Chart::new(
        "mean response time of the requests arriving each minute",
        "minute",
        "s",
    );
    for r in reports {
        alive = alive.line(
            r.config.clone(),
            r.series.iter().map(|s| (s.0, s.2)).collect(),
        );
        rt = rt.line(
            r.config.clone(),
            r.series.iter().map(|s| (s.0, s.3)).collect(),
        );
    }
    plot::svg(path, &[top, alive, rt], 1, (1000, 280))
}
