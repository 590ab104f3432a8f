//! Autoscaling on real traces: the arrivals of the Java SelfLet cloud evaluation replayed on
//! the paused clock against four SelfLet populations — a fixed pool sized for the peak, one
//! sized for the mean, the mean pool with the load-balancing chapter's predictive policies,
//! and self-deployment (members that add, remove and move themselves on a forecast).
//!
//! ```text
//! cargo run --release --example autoscaling
//! cargo run --release --example autoscaling -- --trace my.csv --speedup 2 --json
//! ```
//!
//! Prints, per trace, SelfLet-hours, mean and p95 response time, the share over the
//! threshold, requests lost and actions by kind; writes `autoscaling-<trace>.svg` (load,
//! SelfLets alive and response time over time). `--json` prints one object per trace, one per
//! line. See `examples/autoscaling/README.md`.

#[path = "../support/check.rs"]
mod check;
#[path = "../support/plot.rs"]
mod plot;
mod report;
mod scalers;
mod scenario;
mod trace;

use std::path::{Path, PathBuf};

use clap::Parser;
use scenario::{CONFIGS, Params};
use trace::Trace;

/// Autoscaling on real traces.
#[derive(Parser, Debug)]
struct Args {
    /// A trace: a CSV with a `timestamp` column in Unix milliseconds (repeatable; the two
    /// shipped traces by default).
    #[arg(long)]
    trace: Vec<PathBuf>,
    /// Compresses the trace's time: 2 replays it twice as fast (and twice as intense).
    #[arg(long, default_value_t = 1.0)]
    speedup: f64,
    /// Replays every K-th request, K times faster: the same rates and shape in 1/K of the
    /// time (a quick run; the test uses 3).
    #[arg(long, default_value_t = 1)]
    thin: usize,
    /// Seconds a new SelfLet takes before it serves.
    #[arg(long, default_value_t = 30.0)]
    startup_delay: f64,
    /// Mean work per request, seconds on a fast host.
    #[arg(long, default_value_t = 10.0)]
    service_time: f64,
    /// Response time over which a request violates the service level, seconds.
    #[arg(long, default_value_t = 30.0)]
    threshold: f64,
    /// The HPA's tolerance (Kubernetes' default 0.1).
    #[arg(long, default_value_t = 0.1)]
    hpa_tolerance: f64,
    /// The HPA's scale-down stabilization window, seconds (Kubernetes' default 300).
    #[arg(long, default_value_t = 300.0)]
    hpa_stabilization: f64,
    /// The HPA's sync period, seconds (Kubernetes' default 15).
    #[arg(long, default_value_t = 15.0)]
    hpa_sync: f64,
    /// Seeds the requests' work.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object per trace instead of tables.
    #[arg(long)]
    json: bool,
    /// Where to write the plots.
    #[arg(long, default_value = ".")]
    plots: PathBuf,
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // `RUST_LOG=selflet=info` shows every deployment decision as it is made.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let traces = if args.trace.is_empty() {
        vec![
            root.join("examples/autoscaling/traces/selflet-cloud-bimodal.csv"),
            root.join("examples/autoscaling/traces/selflet-cloud-step.csv"),
        ]
    } else {
        args.trace.clone()
    };
    let params = Params {
        service_s: args.service_time,
        threshold_s: args.threshold,
        startup_s: args.startup_delay,
        seed: args.seed,
        hpa_tolerance: args.hpa_tolerance,
        hpa_stabilization_s: args.hpa_stabilization,
        hpa_sync_s: args.hpa_sync,
        ..Params::default()
    };
    let wall = std::time::Instant::now();
    for path in &traces {
        let t = Trace::load(path, args.speedup)?.thinned(args.thin);
        let mut reports = Vec::new();
        for c in CONFIGS {
            reports.push(scenario::run(root, &t, c, &params).await?);
        }
        let checks = report::checks(&reports, &params);
        if args.json {
            println!(
                "{}",
                report::json(&t, &params, &reports, &checks).to_json()?
            );
        } else {
            report::print(&t, &params, &reports);
            check::print(&checks);
            println!();
        }
        let svg = args.plots.join(format!("autoscaling-{}.svg", t.name));
        report::plot(&svg, &t, &reports)?;
        if !args.json {
            println!("plot: {}\n", svg.display());
        }
    }
    if !args.json {
        println!("{:.1} s wall clock", wall.elapsed().as_secs_f64());
    }
    Ok(())
}
