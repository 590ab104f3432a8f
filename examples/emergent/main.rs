//! Seed 000's emergent-software experiment (Porter & Rodrigues Filho) with real SelfLets: a
//! `ucb` learner on the entry SelfLet learns, window by window and per environment class,
//! which composition of `web` — one of three variants, run here, relocated to one of three
//! neighbours or replicated over several — serves three workload phases best.
//!
//! ```text
//! cargo run --release --example emergent
//! cargo run --release --example emergent -- --windows 100 --seed 7 --json
//! ```
//!
//! First it measures every composition in every phase alone (the ground truth), then learns
//! from scratch through W1, W2, W3 and W1 again, then measures how long convergence takes with
//! 4, 8 and 16 compositions. Prints the tables and checks, writes `emergent.svg`. See
//! `examples/emergent/README.md` for the model and every choice the paper leaves open.

mod analysis;
#[path = "../support/check.rs"]
mod check;
#[path = "../support/plot.rs"]
mod plot;
mod scenario;

use std::path::{Path, PathBuf};
use std::time::Instant;

use analysis::{GroundTruth, Learning};
use clap::Parser;
use plot::Chart;
use scenario::{PHASES, Setup};

/// Seed 000's emergent-software experiment with real SelfLets.
#[derive(Parser, Debug)]
struct Args {
    /// Windows per workload phase while learning (the return to W1 gets a third of them).
    #[arg(long, default_value_t = 150)]
    windows: u64,
    /// Windows per phase when measuring each composition alone.
    #[arg(long, default_value_t = 20)]
    truth_windows: u64,
    /// Seeds the workload (the convergence runs use it and the next two).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the results as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Where to write the plot.
    #[arg(long, default_value = "emergent.svg")]
    plot: PathBuf,
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();
    let compositions = scenario::compositions(root)?;
    let gt = analysis::ground_truth(root, &compositions, args.truth_windows, args.seed).await?;
    let schedule = vec![
        (0, args.windows),
        (1, args.windows),
        (2, args.windows),
        (0, (args.windows / 3).max(1)),
    ];
    let setup = Setup {
        schedule: schedule.clone(),
        allowed: None,
        seed: args.seed,
    };
    let trace = scenario::run(root, &setup).await?;
    let learning = analysis::evaluate(trace, &schedule, &gt, compositions.len(), 1);
    let seeds = [args.seed, args.seed + 1, args.seed + 2];
    let sizes = [4, 8, 16];
    let conv = analysis::convergence(root, &gt, 1, &sizes, args.windows.min(100), &seeds).await?;
    let checks = analysis::checks(&gt, &learning, &conv);
    if args.json {
        println!(
            "{}",
            analysis::json(&gt, &learning, &schedule, &conv, &checks).to_json()?
        );
    } else {
        print_truth(&gt);
        print_learning(&gt, &learning);
        println!();
        check::print(&checks);
        println!("\n{:.1} s wall clock", started.elapsed().as_secs_f64());
    }
    plot(&args.plot, &gt, &learning, &schedule)?;
    if !args.json {
        println!("plot: {}", args.plot.display());
    }
    Ok(())
}

fn print_truth(gt: &GroundTruth) {
    println!("Ground truth: mean reward of each composition, measured alone");
    print!("{:<22}", "composition");
    for p in PHASES {
        print!("{:>14}", p.name);
    }
    println!();
    for (c, m) in gt.compositions.iter().zip(&gt.means) {
        print!("{c:<22}");
        for (p, r) in m.iter().enumerate() {
            let star = if gt.compositions[gt.optimum(p)] == *c {
                "*"
            } else {
                " "
            };
            print!("{:>13.3}{star}", r);
        }
        println!();
    }
}

fn print_learning(gt: &GroundTruth, l: &Learning) {
    println!("\nLearning from scratch (UCB1-Tuned, one table per environment class)");
    println!(
        "{:<12}{:>8}{:>9}{:>10}{:>13}{:>11}  optimal: the best, and any the ground truth cannot tell from it; picked besides",
        "phase", "windows", "counted", "optimal", "mean reward", "best r"
    );
    for s in &l.segments {
        let best = gt.means[gt.optimum(s.phase)][s.phase];
        let optimal = gt.optimal(s.phase);
        let off: Vec<String> = s.off.iter().map(|(c, n)| format!("{c} ×{n}")).collect();
        let off = if off.is_empty() {
            "—".to_owned()
        } else {
            off.join(", ")
        };
        println!(
            "{:<12}{:>8}{:>9}{:>9.1}%{:>13.3}{:>11.3}  {}; {off}",
            PHASES[s.phase].name,
            s.windows,
            s.counted,
            100.0 * s.share(),
            s.mean_reward,
            best,
            optimal.join(", "),
        );
    }
    let t = &l.trace;
    println!(
        "regret after {} windows: {:.2}; {} requests, {} answered, {} failed; {} environment classes",
        l.regret.len(),
        l.regret.last().copied().unwrap_or(0.0),
        t.requests,
        t.answered,
        t.requests - t.answered,
        t.classes
    );
}

fn plot(
    path: &Path,
    gt: &GroundTruth,
    l: &Learning,
    schedule: &[(usize, u64)],
) -> Result<(), Box<dyn std::error::Error>> {
    let windows = &l.trace.windows;
    let reward: Vec<(f64, f64)> = windows
        .iter()
        .enumerate()
        .map(|(i, w)| (i as f64, w.reward.unwrap_or(0.0)))
        .collect();
    let optimum: Vec<(f64, f64)> = windows
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let p = schedule[w.segment].0;
            (i as f64, gt.means[gt.optimum(p)][p])
        })
        .collect();
    let mut top = Chart::new(
        "reward per window against the ground-truth optimum",
        "window",
        "reward",
    )
    .line("learner", reward)
    .line("ground-truth optimum", optimum);
    top.y_max = Some(1.0);
    let mut start = 0;
    for &(p, n) in schedule {
        top.marks.push((start as f64, PHASES[p].name.to_owned()));
        start += n;
    }
    let regret: Vec<(f64, f64)> = l
        .regret
        .iter()
        .enumerate()
        .map(|(i, r)| (i as f64, *r))
        .collect();
    let bottom = Chart::new("cumulative regret", "window", "regret").line("learner", regret);
    plot::svg(path, &[top, bottom], 1, (900, 320))
}
