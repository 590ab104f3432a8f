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

mod scenario;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use scenario::{DURATION_S, N, Report};
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
    std::fs::write("load_balancing.svg", svg(&reports, &configs))?;
    if !json {
        println!("\nplot written to load_balancing.svg");
    }
    Ok(())
}

/// Per-SelfLet utilization over time, one panel per configuration.
fn svg(reports: &BTreeMap<&str, Report>, configs: &[&str]) -> String {
    let (pw, ph) = (380.0, 220.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        2.0 * pw,
        2.0 * ph + 20.0
    );
    let colours = [
        "#c0392b", "#e67e22", "#27ae60", "#2471a3", "#8e44ad", "#16a085", "#7f8c8d", "#d4ac0d",
    ];
    for (p, c) in configs.iter().enumerate() {
        let (ox, oy) = ((p % 2) as f64 * pw, (p / 2) as f64 * ph + 20.0);
        let (l, r, t, b) = (ox + 40.0, ox + pw - 10.0, oy + 20.0, oy + ph - 30.0);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"13\">{c}</text>",
            l,
            oy + 14.0
        );
        let _ = writeln!(
            s,
            "<rect x=\"{l}\" y=\"{t}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>",
            r - l,
            b - t
        );
        let y = |u: f64| b - (b - t) * u.min(1.2) / 1.2;
        let _ = writeln!(
            s,
            "<line x1=\"{l}\" y1=\"{:.1}\" x2=\"{r}\" y2=\"{:.1}\" stroke=\"#999\" stroke-dasharray=\"4 3\"/><text x=\"{}\" y=\"{:.1}\" fill=\"#999\">0.8</text>",
            y(0.8),
            y(0.8),
            l - 24.0,
            y(0.8) + 4.0
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\">1.0</text><text x=\"{}\" y=\"{:.1}\">0</text>",
            l - 24.0,
            y(1.0) + 4.0,
            l - 14.0,
            b
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">time (s), 0 to {DURATION_S}</text>",
            (l + r) / 2.0,
            b + 16.0
        );
        let report = &reports[c];
        for (i, series) in report.series.iter().enumerate() {
            let n = series.len().max(2) as f64 - 1.0;
            let pts: Vec<String> = series
                .iter()
                .enumerate()
                .map(|(k, u)| format!("{:.1},{:.1}", l + (r - l) * k as f64 / n, y(*u)))
                .collect();
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>",
                colours[i % colours.len()],
                pts.join(" ")
            );
        }
    }
    for i in 0..N {
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"12\" fill=\"{}\">s{i}</text>",
            10.0 + 40.0 * i as f64,
            colours[i % colours.len()]
        );
    }
    s.push_str("</svg>\n");
    s
}
