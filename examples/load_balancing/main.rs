//! Predictive load balancing among eight SelfLets (the load-balancing chapter).
//!
//! Eight SelfLets in a ring with chords (each talks to its two ring neighbours and the one
//! opposite). `s0`..`s3` offer `work` (0.1 s of demand per request, threshold 0.5 s, so a
//! SelfLet above 80 % utilization violates it); `s4`..`s7` do not, and must be taught it.
//! Requests arrive at `s0` and `s1` (hot: 6/s, then 9/s after half the run) and at `s2`,
//! `s3` (1/s). Each SelfLet forecasts its load (`load_forecast`, Holt) and tells its
//! neighbours its utilization. Four configurations: no balancing; a round-robin baseline
//! (every SelfLet offering `work` alternates its requests with its ring successor); and the
//! two policies of `policies/`. All on a paused clock.
//!
//! Reported per configuration: mean utilization (over SelfLets and sample periods), max
//! utilization (the busiest SelfLet's average), peak utilization (the highest single
//! sample), Jain's fairness index of the SelfLets' average utilizations, the fraction of
//! requests whose M/M/1 response time exceeded the threshold, remote service messages, and
//! teachings.
//!
//! ```text
//! cargo run --release --example load_balancing            # the table, and load_balancing.svg
//! cargo run --release --example load_balancing -- --json
//! ```

#[path = "../support/plot.rs"]
mod plot;
mod scenario;

use std::collections::BTreeMap;
use std::path::Path;

use plot::Chart;
use scenario::{DURATION_S, Report};
use selflet::Value;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let json = std::env::args().any(|a| a == "--json");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let configs = [
        "none",
        "round_robin",
        "balance_profit",
        "balance_neighbourhood",
    ];
    let mut reports = BTreeMap::new();
    for c in configs {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()?;
        reports.insert(c, rt.block_on(scenario::run(c, root))?);
    }
    if json {
        let v = Value::map([(
            "configs",
            Value::Map(
                reports
                    .iter()
                    .map(|(k, r)| {
                        let m = Value::map([
                            ("mean_utilization", Value::Float(r.mean_utilization)),
                            ("max_utilization", Value::Float(r.max_utilization)),
                            ("peak_utilization", Value::Float(r.peak_utilization)),
                            ("jain", Value::Float(r.jain)),
                            ("over_threshold", Value::Float(r.over_threshold)),
                            ("messages", Value::Int(r.messages as i64)),
                            ("teachings", Value::Int(r.teachings as i64)),
                        ]);
                        (k.to_string(), m)
                    })
                    .collect(),
            ),
        )]);
        println!("{}", v.to_json()?);
    } else {
        println!(
            "Eight SelfLets, s0 and s1 hot (6/s, then 9/s), s2 and s3 at 1/s; 0.1 s per request, threshold 0.5 s\n"
        );
        println!(
            "{:>22} | {:>9} | {:>8} | {:>9} | {:>6} | {:>14} | {:>8} | {:>9}",
            "configuration",
            "mean util",
            "max util",
            "peak util",
            "Jain",
            "over threshold",
            "messages",
            "teachings"
        );
        for c in configs {
            let r = &reports[c];
            println!(
                "{:>22} | {:>9.3} | {:>8.3} | {:>9.3} | {:>6.3} | {:>13.1}% | {:>8} | {:>9}",
                c,
                r.mean_utilization,
                r.max_utilization,
                r.peak_utilization,
                r.jain,
                100.0 * r.over_threshold,
                r.messages,
                r.teachings
            );
            assert_eq!(r.requests, r.answered, "every request was answered");
        }
    }
    plot(&reports, &configs)?;
    if !json {
        println!("\nplot written to load_balancing.svg");
    }
    Ok(())
}

/// Per-SelfLet utilization over time, one panel per configuration.
fn plot(
    reports: &BTreeMap<&str, Report>,
    configs: &[&str],
) -> Result<(), Box<dyn std::error::Error>> {
    let charts: Vec<Chart> = configs
        .iter()
        .map(|c| {
            let report = &reports[c];
            let mut chart = Chart::new(*c, "time (s)", "utilization");
            for (i, series) in report.series.iter().enumerate() {
                let n = series.len().max(2) as f64 - 1.0;
                let points = series
                    .iter()
                    .enumerate()
                    .map(|(k, u)| (DURATION_S as f64 * k as f64 / n, u.min(1.2)))
                    .collect();
                chart = chart.line(format!("s{i}"), points);
            }
            chart.y_max = Some(1.2);
            chart.guide = Some((0.8, "0.8".into()));
            chart
        })
        .collect();
    plot::svg(
        std::path::Path::new("load_balancing.svg"),
        &charts,
        2,
        (420, 260),
    )
}
