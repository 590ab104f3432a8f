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

mod scenario;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Parser;
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
    std::fs::write(&args.svg, svg(&without, &with, args.duration))?;
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
fn svg(without: &Run, with: &Run, duration: u64) -> String {
    let (w, h, left, right, top, bottom) = (760.0, 420.0, 70.0, 20.0, 40.0, 50.0);
    let max_y = without
        .series
        .iter()
        .chain(&with.series)
        .map(|(_, y)| *y)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x = |t: f64| left + (w - left - right) * t / duration.max(1) as f64;
    let y = |v: f64| h - bottom - (h - top - bottom) * v / max_y;
    let line = |r: &Run| {
        r.series
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v as f64)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"22\" font-size=\"15\">Cumulative remote requests, A asking B (Table 1 of the prediction paper)</text>\n"
    );
    // Axes and ticks.
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>",
        h - bottom,
        w - right,
        h - bottom
    );
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>",
        h - bottom
    );
    for i in 0..=6 {
        let t = duration as f64 * i as f64 / 6.0;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{:.0}</text>",
            x(t),
            h - bottom + 18.0,
            t
        );
        let v = max_y * i as f64 / 6.0;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}</text>",
            left - 6.0,
            y(v) + 4.0,
            v
        );
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#eee\"/>",
            y(v),
            w - right,
            y(v)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">time (s)</text>",
        (left + w - right) / 2.0,
        h - 12.0
    );
    let _ = writeln!(
        s,
        "<text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">requests</text>",
        (top + h - bottom) / 2.0,
        (top + h - bottom) / 2.0
    );
    let _ = writeln!(
        s,
        "<polyline fill=\"none\" stroke=\"#c0392b\" stroke-width=\"2\" points=\"{}\"/>",
        line(without)
    );
    let _ = writeln!(
        s,
        "<polyline fill=\"none\" stroke=\"#2471a3\" stroke-width=\"2\" points=\"{}\"/>",
        line(with)
    );
    for (service, t) in &with.learned {
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{top}\" x2=\"{:.1}\" y2=\"{}\" stroke=\"#2471a3\" stroke-dasharray=\"4 3\"/>",
            x(*t),
            x(*t),
            h - bottom
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" fill=\"#2471a3\">{service} learned</text>",
            x(*t) + 3.0,
            top + 14.0
                + 14.0
                    * with
                        .learned
                        .iter()
                        .position(|(n, _)| n == service)
                        .unwrap_or(0) as f64
        );
    }
    let lx = w - right - 230.0;
    let _ = writeln!(
        s,
        "<line x1=\"{lx}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#c0392b\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">without the policy</text>",
        h - bottom - 40.0,
        lx + 24.0,
        h - bottom - 40.0,
        lx + 30.0,
        h - bottom - 36.0
    );
    let _ = writeln!(
        s,
        "<line x1=\"{lx}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#2471a3\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">with the policy</text>",
        h - bottom - 22.0,
        lx + 24.0,
        h - bottom - 22.0,
        lx + 30.0,
        h - bottom - 18.0
    );
    s.push_str("</svg>\n");
    s
}
