//! The two-agent teaching demo: Table 1 of the prediction paper.
//!
//! A needs Service 1, which B offers; B implements it by calling its Services 2 and 3; all are
//! offered can-do and can-teach. A's Space-Saving predictor watches A's outgoing requests, and
//! A's policy asks for a frequent service in can-teach mode. Both configurations (with and
//! without the policy) run for 900 simulated seconds on a paused clock; the table shows, after
//! 180, 300, 540 and 900 s, the goals executed by A and by B and the remote messages.
//!
//! ```text
//! cargo run --release --example teaching              # the table, and teaching.svg
//! cargo run --release --example teaching -- --json    # the same, machine-readable
//! cargo run --release --example teaching -- --realtime --duration 120   # watch it live
//! ```

#[path = "../support/plot.rs"]
mod plot;
mod scenario;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Parser;
use plot::Chart;
use scenario::{Run, Settings};
use selflet::Value;

/// The teaching demo: Table 1 of the prediction paper, with and without the policy.
#[derive(Debug, Parser)]
struct Args {
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Run on the wall clock, with logs, instead of a paused clock.
    #[arg(long)]
    realtime: bool,
    /// Seconds to run.
    #[arg(long, default_value_t = 900)]
    duration: u64,
    /// Seconds between two of A's goals.
    #[arg(long, default_value_t = 2.25)]
    period: f64,
    /// Space-Saving counters.
    #[arg(long)]
    k: Option<i64>,
    /// Requests to observe in the window before a service can be frequent.
    #[arg(long)]
    min_events: Option<i64>,
    /// Support a service needs to be frequent.
    #[arg(long)]
    min_support: Option<f64>,
    /// The predictor's window length, such as 300s.
    #[arg(long)]
    window_size: Option<String>,
    /// Where to write the plot.
    #[arg(long, default_value = "teaching.svg")]
    svg: PathBuf,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.realtime {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .init();
    }
    let mut predictor = BTreeMap::new();
    if let Some(k) = args.k {
        predictor.insert("k".to_owned(), Value::Int(k));
    }
    if let Some(m) = args.min_events {
        predictor.insert("min_events".to_owned(), Value::Int(m));
    }
    if let Some(s) = args.min_support {
        predictor.insert("min_support".to_owned(), Value::Float(s));
    }
    if let Some(w) = &args.window_size {
        predictor.insert("window_size".to_owned(), Value::from(w.as_str()));
    }
    let mut checkpoints: Vec<u64> = [180, 300, 540, 900]
        .into_iter()
        .filter(|t| *t <= args.duration)
        .collect();
    if checkpoints.last() != Some(&args.duration) {
        checkpoints.push(args.duration);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/teaching");
    let settings = |with_policy| Settings {
        duration_s: args.duration,
        period_s: args.period,
        predictor: predictor.clone(),
        with_policy,
        checkpoints: checkpoints.clone(),
        metrics: false,
    };
    let run = |with_policy: bool| -> Result<Run, Box<dyn std::error::Error>> {
        let mut rt = tokio::runtime::Builder::new_current_thread();
        rt.enable_time();
        if !args.realtime {
            rt.start_paused(true);
        }
        rt.build()?
            .block_on(scenario::run(&dir, &settings(with_policy)))
    };
    let without = run(false)?;
    let with = run(true)?;
    if args.json {
        println!("{}", json(&without, &with));
    } else {
        print!("{}", table(&without, &with, args.period));
    }
    plot(&args.svg, &without, &with)?;
    if !args.json {
        println!("\nplot written to {}", args.svg.display());
    }
    Ok(())
}

fn table(without: &Run, with: &Run, period: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Two SelfLets, A asking B for service1 every {period}s (Table 1 of the prediction paper)
"
    );
    let _ = writeln!(
        out,
        "{:>10} | {:>12} | {:>12} | {:>15} | {:>12}",
        "time (s)", "goals by A", "goals by B", "remote requests", "all messages"
    );
    for (title, run) in [
        ("without the self-optimizing policy", without),
        ("with the self-optimizing policy", with),
    ] {
        let _ = writeln!(out, "{:-<72}\n{title}", "");
        for r in &run.rows {
            let _ = writeln!(
                out,
                "{:>10} | {:>12} | {:>12} | {:>15} | {:>12}",
                r.t_s, r.goals_a, r.goals_b, r.messages, r.all_messages
            );
        }
    }
    let _ = writeln!(out, "{:-<72}", "");
    if with.learned.is_empty() {
        let _ = writeln!(out, "A learned nothing.");
    }
    for (service, t) in &with.learned {
        let _ = writeln!(out, "A learned {service} at {t:.1} s");
    }
    out
}

fn json(without: &Run, with: &Run) -> String {
    let rows = |r: &Run| {
        Value::List(
            r.rows
                .iter()
                .map(|x| {
                    Value::map([
                        ("t_s", Value::Int(x.t_s as i64)),
                        ("goals_a", Value::Int(x.goals_a as i64)),
                        ("goals_b", Value::Int(x.goals_b as i64)),
                        ("messages", Value::Int(x.messages as i64)),
                        ("all_messages", Value::Int(x.all_messages as i64)),
                    ])
                })
                .collect(),
        )
    };
    let learned = Value::List(
        with.learned
            .iter()
            .map(|(s, t)| {
                Value::map([
                    ("service", Value::from(s.as_str())),
                    ("t_s", Value::Float((t * 10.0).round() / 10.0)),
                ])
            })
            .collect(),
    );
    let v = Value::map([
        ("with_policy", rows(with)),
        ("without_policy", rows(without)),
        ("learned", learned),
    ]);
    v.to_json().map(|j| j.to_string()).unwrap_or_default()
}

/// A line chart of cumulative remote requests for both runs, learning moments marked.
fn plot(
    path: &std::path::Path,
    without: &Run,
    with: &Run,
) -> Result<(), Box<dyn std::error::Error>> {
    let points = |r: &Run| r.series.iter().map(|(t, v)| (*t, *v as f64)).collect();
    let mut chart = Chart::new(
        "Cumulative remote requests, A asking B (Table 1 of the prediction paper)",
        "time (s)",
        "requests",
    )
    .line("without the policy", points(without))
    .line("with the policy", points(with));
    chart.marks = with
        .learned
        .iter()
        .map(|(service, t)| (*t, format!("{service} learned")))
        .collect();
    plot::svg(path, &[chart], 1, (760, 420))
}
