//! Rhizoma's experiment (seed 003) with real SelfLets managing their own deployment: sixteen
//! simulated hosts in four regions, a CPU spike on most European and North American hosts
//! from minute 150 to 270, the coordinator crashing at minute 60, and the migration cost swept.
//!
//! ```text
//! cargo run --release --example rhizoma
//! cargo run --release --example rhizoma -- --minutes 480 --json
//! ```
//!
//! Each member runs the deployment manager; the lowest-named live one coordinates and plans at
//! most n add / remove / move actions per minute over `examples/rhizoma/objective.rhai`
//! (utility − migration cost under constraints). Prints a table per run and the checks,
//! writes `rhizoma.svg`. See `examples/rhizoma/README.md`.

mod analysis;
#[path = "../support/check.rs"]
mod check;
#[path = "../support/plot.rs"]
mod plot;
mod scenario;

use std::path::{Path, PathBuf};

use clap::Parser;
use plot::Chart;
use scenario::{Setup, Trace};
use selflet::deployment::Strategy;

/// Rhizoma's experiment with real SelfLets.
#[derive(Parser, Debug)]
struct Args {
    /// Simulated minutes per run (the spike and crash keep their minutes).
    #[arg(long, default_value_t = 480)]
    minutes: u64,
    /// Most actions per plan (the paper: 2 or 3).
    #[arg(long, default_value_t = 2)]
    horizon: usize,
    /// Search every plan up to the horizon instead of hill-climbing.
    #[arg(long)]
    exhaustive: bool,
    /// Print the results as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Where to write the plot.
    #[arg(long, default_value = "rhizoma.svg")]
    plot: PathBuf,
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let wall = std::time::Instant::now();
    let setup = Setup {
        minutes: args.minutes,
        horizon: args.horizon,
        strategy: if args.exhaustive {
            Strategy::Exhaustive
        } else {
            Strategy::HillClimbing
        },
        ..Setup::paper()
    };
    let main = scenario::run(root, &setup).await?;
    let mut sweep = Vec::new();
    for cost in [0.0, 0.012, 0.09] {
        let s = Setup {
            add_cost: cost,
            crash_at: None,
            ..setup.clone()
        };
        sweep.push(scenario::run(root, &s).await?);
    }
    let mut checks = analysis::checks(&main, &sweep);
    checks.push(analysis::local_maximum(root).await?);
    if args.json {
        println!("{}", analysis::json(&main, &sweep, &checks).to_json()?);
    } else {
        print_table(&main, &sweep);
        println!();
        check::print(&checks);
        println!("\n{:.1} s wall clock", wall.elapsed().as_secs_f64());
    }
    plot(&args.plot, &main)?;
    if !args.json {
        println!("plot: {}", args.plot.display());
    }
    Ok(())
}

fn print_table(main: &Trace, sweep: &[Trace]) {
    println!(
        "{:<28}{:>8}{:>8}{:>8}{:>12}{:>10}{:>10}{:>10}{:>22}",
        "run",
        "redepl.",
        "coord.",
        "hosts",
        "first 2 h",
        "utility",
        "free min",
        "recovery",
        "diameter b/d/a (ms)"
    );
    let row = |label: String, t: &Trace| {
        let s = analysis::summarize(t);
        let (r, c, h) = s.first_2h;
        println!(
            "{label:<28}{:>8}{:>8}{:>8}{:>12}{:>10.3}{:>10.2}{:>10}{:>22}",
            s.redeployments,
            s.coordinator_changes,
            s.distinct_hosts,
            format!("{r}/{c}/{h}"),
            s.mean_utility,
            s.free_lowest,
            s.recovery_min.map_or("—".into(), |m| format!("{m:.1} min")),
            format!(
                "{:.0}/{:.0}/{:.0}",
                s.diameter.0, s.diameter.1, s.diameter.2
            ),
        );
    };
    row(
        format!("cost {}, crash at 60 min", main.setup.add_cost),
        main,
    );
    for t in sweep {
        row(format!("cost {}", t.setup.add_cost), t);
    }
    println!(
        "first 2 h: redeployments / coordinator changes / distinct hosts (paper: 18 / 3 / 10)"
    );
}

fn plot(path: &Path, t: &Trace) -> Result<(), Box<dyn std::error::Error>> {
    let free: Vec<(f64, f64)> = t.samples.iter().map(|s| (s.minute, s.free)).collect();
    let diameter: Vec<(f64, f64)> = t.samples.iter().map(|s| (s.minute, s.diameter)).collect();
    let members: Vec<(f64, f64)> = t
        .samples
        .iter()
        .map(|s| (s.minute, s.members.len() as f64))
        .collect();
    let (a, n) = t.setup.spike;
    let mark = |c: &mut Chart| {
        c.marks.push((a as f64, "spike".into()));
        c.marks.push(((a + n) as f64, "spike ends".into()));
        if let Some((m, _)) = &t.crashed {
            c.marks.push((*m, "coordinator crash".into()));
        }
    };
    let mut top =
        Chart::new("mean free CPU of the members' hosts", "minute", "cores").line("Rhizoma", free);
    mark(&mut top);
    let mut mid = Chart::new("overlay diameter", "minute", "ms").line("Rhizoma", diameter);
    mark(&mut mid);
    let mut bottom = Chart::new("members", "minute", "members").line("Rhizoma", members);
    mark(&mut bottom);
    plot::svg(path, &[top, mid, bottom], 1, (900, 260))
}
