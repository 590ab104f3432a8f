//! Seed 001's self-assembly experiment (Caporuscio et al.): gossip plus two-layer
//! reinforcement learning, against single-layer RL, greedy and random choice, with real
//! SelfLets on the in-process network and the paused clock.
//!
//! ```text
//! cargo run --release --example self_assembly                 # 4 scenarios × 4 strategies × 10 seeds
//! cargo run --release --example self_assembly -- --seeds 3
//! cargo run --release --example self_assembly -- --scenario join --strategy two_layer_rl --json
//! ```
//!
//! Prints ξ and ζ per strategy at rounds `change_at − 1` and the last, the drop and recovery
//! after each change, the checks of the reproduction and the gossip traffic per agent; writes
//! `self_assembly_<scenario>.svg`. See `examples/self_assembly/README.md` for every choice
//! the paper leaves open.

mod analysis;
#[path = "../support/check.rs"]
mod check;
mod experiment;
#[path = "../support/plot.rs"]
mod plot;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use analysis::{Disturbance, Series, above};
use check::Check;
use clap::Parser;
use experiment::{Params, Run, Scenario, Snapshot};
use indicatif::{ProgressBar, ProgressStyle};
use plot::Chart;
use selflet::Value;
use selflet::choice::{Choice, Learning};

/// Seed 001's self-assembly experiment with real SelfLets.
#[derive(Parser, Debug)]
struct Args {
    /// N: agents at the start.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Rounds (the change happens before the middle one).
    #[arg(long, default_value_t = 2000)]
    rounds: u64,
    /// Seeds per scenario and strategy.
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// Scenarios to run (repeatable): static, leave, join, quality. Default: all.
    #[arg(long)]
    scenario: Vec<String>,
    /// Strategies to run (repeatable): two_layer_rl, single_layer_rl, greedy, random, and
    /// two_layer_rl_cautious (τ₀ = 0.5, run in `join` only by default). Default: all.
    #[arg(long)]
    strategy: Vec<String>,
    /// Print the results as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// The strategies, by the name the output uses.
fn strategy(name: &str) -> Option<Choice> {
    if name == CAUTIOUS {
        return Some(Choice::TwoLayerRl(Learning {
            initial_trust: 0.5,
            ..Learning::default()
        }));
    }
    Choice::from_name(name).filter(|c| {
        matches!(
            c,
            Choice::TwoLayerRl(_) | Choice::SingleLayerRl(_) | Choice::Greedy | Choice::Random
        )
    })
}

const CAUTIOUS: &str = "two_layer_rl_cautious";
const STRATEGIES: [&str; 4] = ["two_layer_rl", "single_layer_rl", "greedy", "random"];

/// A run to do: from the first round, then the scenarios in `branches` from its change
/// point (see `experiment::branch`). Each run's result goes to its slot.
#[derive(Debug, Clone)]
struct Job {
    label: String,
    params: Params,
    slot: usize,
    branches: Vec<(Scenario, usize)>,
}

impl Job {
    /// The rounds it plays, its branches' included.
    fn rounds(&self) -> u64 {
        let p = &self.params;
        let after = (p.rounds + 1).saturating_sub(p.change_at);
        p.rounds + after * self.branches.len() as u64
    }
}

/// About how much work a run of `scenario` is from round `from`: its agent-rounds.
fn agent_rounds(p: &Params, scenario: Scenario, from: u64) -> u64 {
    let (n, churn) = (p.agents as u64, p.churn as u64);
    let from = from.min(p.rounds + 1);
    let change = p.change_at.clamp(from, p.rounds + 1);
    let after = match scenario {
        Scenario::Static | Scenario::Quality => n,
        Scenario::Leave => n.saturating_sub(churn),
        Scenario::Join => n + churn,
    };
    n * (change - from) + after * (p.rounds + 1 - change)
}

/// The runs of the experiment: the scenario and strategy of each slot, and the jobs that
/// fill them.
struct Plan {
    slots: Vec<(Scenario, String)>,
    jobs: Vec<Job>,
}

type Results = BTreeMap<(Scenario, String), Vec<Run>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let (scenarios, strategies) = selection(&args)?;
    let plan = plan(&args, &scenarios, &strategies);
    let scaling = scaling_jobs(&args, plan.slots.len());
    let started = Instant::now();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let all: Vec<Job> = plan.jobs.iter().chain(&scaling).cloned().collect();
    let runs = run_all(&all, plan.slots.len() + scaling.len(), threads)?;
    let (main_runs, scaling_runs) = runs.split_at(plan.slots.len());
    let mut results: Results = BTreeMap::new();
    for (slot, run) in plan.slots.iter().zip(main_runs) {
        results.entry(slot.clone()).or_default().push(run.clone());
    }
    let summaries: BTreeMap<(Scenario, String), Summary> = results
        .iter()
        .map(|(k, runs)| (k.clone(), Summary::of(runs)))
        .collect();
    let gossip: Vec<(usize, f64, f64)> = scaling
        .iter()
        .zip(scaling_runs)
        .map(|(j, r)| (j.params.agents, r.gossip_entries, r.gossip_messages))
        .collect();
    let checks = checks(&args, &summaries, &gossip);
    let wall = started.elapsed();
    if args.json {
        println!("{}", json(&args, &summaries, &checks, &gossip).to_json()?);
    } else {
        print_tables(&args, &summaries, &gossip);
        print_checks(&checks);
        println!(
            "\n{} runs ({} from the first round) in {:.1} s of wall time on {threads} threads",
            runs.len(),
            all.len(),
            wall.as_secs_f64()
        );
    }
    for s in &scenarios {
        let path = format!("self_assembly_{}.svg", s.name());
        plot_scenario(&args, *s, &summaries, &path)?;
        if !args.json {
            println!("plot written to {path}");
        }
    }
    Ok(())
}

/// The scenarios and strategies asked for.
fn selection(args: &Args) -> Result<(Vec<Scenario>, Vec<String>), String> {
    let scenarios = if args.scenario.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenario
            .iter()
            .map(|s| Scenario::from_name(s).ok_or_else(|| format!("unknown scenario `{s}`")))
            .collect::<Result<_, _>>()?
    };
    let strategies: Vec<String> = if args.strategy.is_empty() {
        STRATEGIES
            .iter()
            .map(|s| s.to_string())
            .chain([CAUTIOUS.to_owned()])
            .collect()
    } else {
        args.strategy.clone()
    };
    if let Some(bad) = strategies.iter().find(|s| strategy(s).is_none()) {
        return Err(format!(
            "unknown strategy `{bad}`: expected one of {}, {CAUTIOUS}",
            STRATEGIES.join(", ")
        ));
    }
    if args.agents < 2 || args.rounds < 4 || args.seeds == 0 {
        return Err("at least 2 agents, 4 rounds and 1 seed".into());
    }
    Ok((scenarios, strategies))
}

fn params(args: &Args, scenario: Scenario, choice: Choice, seed: u64) -> Params {
    Params {
        agents: args.agents,
        rounds: args.rounds,
        change_at: args.rounds / 2,
        churn: args.agents / 2,
        ..Params::paper(scenario, choice, seed)
    }
}

/// Every scenario and strategy asked for, each seed once. The scenarios of one strategy and
/// seed are the same world until the change, so one run plays it — the static scenario's,
/// if asked for, which needs no change — and the others branch from it at the change point.
fn plan(args: &Args, scenarios: &[Scenario], strategies: &[String]) -> Plan {
    let mut plan = Plan {
        slots: Vec::new(),
        jobs: Vec::new(),
    };
    for label in strategies {
        // The cautious variant is the join scenario's ablation, unless asked for alone.
        let wanted: Vec<Scenario> = if label == CAUTIOUS && !args.strategy.contains(label) {
            scenarios
                .iter()
                .copied()
                .filter(|s| *s == Scenario::Join)
                .collect()
        } else {
            scenarios.to_vec()
        };
        let Some(&trunk) = wanted.iter().min() else {
            continue;
        };
        let choice = strategy(label).expect("checked");
        for seed in 1..=args.seeds {
            let mut slot = |scenario: Scenario| {
                plan.slots.push((scenario, label.clone()));
                plan.slots.len() - 1
            };
            let job = Job {
                label: label.clone(),
                params: params(args, trunk, choice, seed),
                slot: slot(trunk),
                branches: wanted
                    .iter()
                    .filter(|s| **s != trunk)
                    .map(|&s| (s, slot(s)))
                    .collect(),
            };
            plan.jobs.push(job);
        }
    }
    plan
}

/// Static runs of two-layer RL at N/2, N and 3N/2 agents, to see gossip traffic per agent
/// stay flat; their results go to the slots from `first_slot` on.
fn scaling_jobs(args: &Args, first_slot: usize) -> Vec<Job> {
    let choice = strategy("two_layer_rl").expect("built in");
    [args.agents / 2, args.agents, args.agents * 3 / 2]
        .into_iter()
        .enumerate()
        .map(|(i, agents)| Job {
            label: "two_layer_rl".into(),
            params: Params {
                agents,
                rounds: args.rounds.min(100),
                change_at: u64::MAX,
                ..params(args, Scenario::Static, choice, 1)
            },
            slot: first_slot + i,
            branches: Vec::new(),
        })
        .collect()
}

/// A run waiting for a thread: from the first round, or a branch from a snapshot.
enum Work {
    Trunk(Job),
    Branch(Job, Arc<Snapshot>),
}

/// The work not yet taken, and how many runs are going on (which may add branches).
struct Queue {
    state: Mutex<(VecDeque<Work>, usize)>,
    ready: Condvar,
}

impl Queue {
    fn new(work: impl IntoIterator<Item = Work>) -> Queue {
        Queue {
            state: Mutex::new((work.into_iter().collect(), 0)),
            ready: Condvar::new(),
        }
    }

    /// The next run to do; `None` once nothing waits and nothing runs that could add more.
    fn take(&self) -> Option<Work> {
        let mut state = self.state.lock().expect("queue");
        loop {
            let (waiting, running) = &mut *state;
            if let Some(w) = waiting.pop_front() {
                *running += 1;
                return Some(w);
            }
            if *running == 0 {
                return None;
            }
            state = self.ready.wait(state).expect("queue");
        }
    }

    /// `job`'s branches from `snapshot`, ahead of the rest: a snapshot waiting is a thousand
    /// agents' knowledge held.
    fn branch(&self, job: &Job, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        let mut state = self.state.lock().expect("queue");
        for &(scenario, slot) in job.branches.iter().rev() {
            let params = Params {
                scenario,
                ..job.params.clone()
            };
            let branch = Job {
                params,
                slot,
                branches: Vec::new(),
                ..job.clone()
            };
            state
                .0
                .push_front(Work::Branch(branch, Arc::clone(&snapshot)));
        }
        self.ready.notify_all();
    }

    /// A run taken is done.
    fn done(&self) {
        self.state.lock().expect("queue").1 -= 1;
        self.ready.notify_all();
    }
}

fn run_all(jobs: &[Job], slots: usize, threads: usize) -> Result<Vec<Run>, String> {
    let rounds: u64 = jobs.iter().map(Job::rounds).sum();
    let bar = ProgressBar::new(rounds).with_style(
        ProgressStyle::with_template("{elapsed_precise} {wide_bar} {percent}% (eta {eta})")
            .map_err(|e| e.to_string())?,
    );
    // The longest first, so that no long run is left alone at the end. A trunk's branches go
    // ahead of the queue when its snapshot is taken, the longest first too.
    let mut trunks = jobs.to_vec();
    trunks.sort_by_key(|j| std::cmp::Reverse(agent_rounds(&j.params, j.params.scenario, 1)));
    for j in &mut trunks {
        let p = j.params.clone();
        j.branches
            .sort_by_key(|(s, _)| std::cmp::Reverse(agent_rounds(&p, *s, p.change_at)));
    }
    let queue = Queue::new(trunks.into_iter().map(Work::Trunk));
    let out: Mutex<Vec<Option<Result<Run, String>>>> = Mutex::new(vec![None; slots]);
    let done = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                while let Some(work) = queue.take() {
                    let job = match &work {
                        Work::Trunk(job) | Work::Branch(job, _) => job,
                    };
                    let result = run_one(&work, &|| bar.inc(1), &|s| queue.branch(job, s));
                    let done = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    report(&bar, job, &result, (done, slots));
                    out.lock().expect("results")[job.slot] = Some(result);
                    queue.done();
                }
            });
        }
    });
    bar.finish_and_clear();
    out.into_inner()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("a run did not finish".into())))
        .collect()
}

/// Where the bar cannot be drawn (stderr is not a terminal, as in a long run logged to a
/// file), a line per finished run instead: hours with no sign of progress or of any result
/// would leave its user guessing whether to wait.
fn report(bar: &ProgressBar, job: &Job, result: &Result<Run, String>, (done, of): (usize, usize)) {
    if !bar.is_hidden() {
        return;
    }
    let p = &job.params;
    let outcome = match result {
        Ok(run) => format!(
            "ξ {:.3}, ζ {:.3} at round {}",
            run.xi.last().copied().unwrap_or(0.0),
            run.zeta.last().copied().unwrap_or(0.0),
            run.xi.len()
        ),
        Err(e) => format!("failed: {e}"),
    };
    eprintln!(
        "[{done}/{of}, {} s] {} {} N = {} seed {}: {outcome}",
        bar.elapsed().as_secs(),
        p.scenario.name(),
        job.label,
        p.agents,
        p.seed
    );
}

fn run_one(
    work: &Work,
    progress: &(dyn Fn() + Sync),
    at_change: &(dyn Fn(Snapshot) + Sync),
) -> Result<Run, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| e.to_string())?;
    let run = match work {
        Work::Trunk(job) if job.branches.is_empty() => {
            rt.block_on(experiment::trunk(&job.params, progress, None))
        }
        Work::Trunk(job) => rt.block_on(experiment::trunk(&job.params, progress, Some(at_change))),
        Work::Branch(job, from) => rt.block_on(experiment::branch(&job.params, from, progress)),
    };
    run.map_err(|e| e.to_string())
}

/// One scenario and strategy, over its seeds.
struct Summary {
    xi: Series,
    zeta: Series,
    resolved: Series,
    calls: f64,
}

impl Summary {
    fn of(runs: &[Run]) -> Summary {
        let col = |f: fn(&Run) -> &Vec<f64>| -> Series {
            Series::of(&runs.iter().map(|r| f(r).as_slice()).collect::<Vec<_>>())
        };
        Summary {
            xi: col(|r| &r.xi),
            zeta: col(|r| &r.zeta),
            resolved: col(|r| &r.resolved),
            calls: runs.iter().map(|r| r.calls as f64).sum::<f64>() / runs.len() as f64,
        }
    }
}

fn print_tables(
    args: &Args,
    s: &BTreeMap<(Scenario, String), Summary>,
    gossip: &[(usize, f64, f64)],
) {
    let pre = args.rounds / 2 - 1;
    let last = args.rounds;
    println!(
        "Self-assembly: N = {}, w = 10, {} rounds, change before round {}, {} seeds (mean ± 95 % CI)\n",
        args.agents,
        args.rounds,
        args.rounds / 2,
        args.seeds
    );
    println!(
        "{:<8} {:<22} {:>15} {:>15} {:>15} {:>15} {:>9} {:>8} {:>6} {:>9}",
        "scenario",
        "strategy",
        format!("ξ@{pre}"),
        format!("ζ@{pre}"),
        format!("ξ@{last}"),
        format!("ζ@{last}"),
        "resolved",
        "drop",
        "half",
        "recovery"
    );
    for ((scenario, label), m) in s {
        let d = Disturbance::of(&m.xi, args.rounds / 2);
        let cell = |x: &Series, r: u64| format!("{:.3} ± {:.3}", x.at(r), x.ci_at(r));
        let rounds = |r: Option<u64>| r.map_or("none".to_owned(), |r| r.to_string());
        let (drop, half, recovery) = if *scenario == Scenario::Static {
            ("—".to_owned(), "—".to_owned(), "—".to_owned())
        } else {
            (
                format!("{:.3}", d.before - d.lowest),
                rounds(d.half),
                rounds(d.recovery),
            )
        };
        println!(
            "{:<8} {:<22} {:>15} {:>15} {:>15} {:>15} {:>9.3} {:>8} {:>6} {:>9}",
            scenario.name(),
            label,
            cell(&m.xi, pre),
            cell(&m.zeta, pre),
            cell(&m.xi, last),
            cell(&m.zeta, last),
            m.resolved.at(last),
            drop,
            half,
            recovery
        );
    }
    println!(
        "\nGossip per agent per round (static, two_layer_rl, {} rounds):",
        args.rounds.min(100)
    );
    for (n, entries, messages) in gossip {
        println!("  N = {n:>5}: {messages:.2} messages, {entries:.1} entries");
    }
}

fn print_checks(checks: &[Check]) {
    println!("\nChecks of the reproduction:");
    check::print(checks);
}

/// The checks of item 4 that the strategies and scenarios run allow.
fn checks(
    args: &Args,
    s: &BTreeMap<(Scenario, String), Summary>,
    gossip: &[(usize, f64, f64)],
) -> Vec<Check> {
    let change = args.rounds / 2;
    let last = args.rounds;
    let get = |sc: Scenario, l: &str| s.get(&(sc, l.to_owned()));
    let mut out = Vec::new();
    let rl = "two_layer_rl";
    for scenario in Scenario::ALL {
        let Some(best) = get(scenario, rl) else {
            continue;
        };
        let rounds: &[u64] = if scenario == Scenario::Static {
            &[change, last]
        } else {
            &[last]
        };
        for &r in rounds {
            for other in ["single_layer_rl", "greedy", "random"] {
                let Some(o) = get(scenario, other) else {
                    continue;
                };
                for (metric, a, b) in [("ξ", &best.xi, &o.xi), ("ζ", &best.zeta, &o.zeta)] {
                    out.push(Check::new(
                        format!(
                            "{}: two_layer_rl above {other} on {metric} at round {r}",
                            scenario.name()
                        ),
                        above(a, b, r),
                        format!(
                            "{:.3} ± {:.3} vs {:.3} ± {:.3}",
                            a.at(r),
                            a.ci_at(r),
                            b.at(r),
                            b.ci_at(r)
                        ),
                    ));
                }
            }
        }
    }
    if let Some(m) = get(Scenario::Static, rl) {
        for r in [change, last] {
            out.push(Check::new(
                format!("static: ξ and ζ ≥ 0.9 at round {r}"),
                m.xi.at(r) >= 0.9 && m.zeta.at(r) >= 0.9,
                format!("ξ {:.3}, ζ {:.3}", m.xi.at(r), m.zeta.at(r)),
            ));
        }
    }
    if let Some(m) = get(Scenario::Leave, rl) {
        out.push(Check::new(
            format!("leave: ξ and ζ ≥ 0.95 at round {last}"),
            m.xi.at(last) >= 0.95 && m.zeta.at(last) >= 0.95,
            format!("ξ {:.3}, ζ {:.3}", m.xi.at(last), m.zeta.at(last)),
        ));
    }
    for (scenario, within) in [(Scenario::Join, 50), (Scenario::Quality, 100)] {
        let Some(m) = get(scenario, rl) else { continue };
        let d = Disturbance::of(&m.xi, change);
        out.push(Check::new(
            format!(
                "{}: ξ drops, then is back within 0.02 in ≤ {within} rounds",
                scenario.name()
            ),
            d.dropped() && d.recovery.is_some_and(|r| r <= within),
            format!(
                "before {:.3}, lowest {:.3}, back after {}",
                d.before,
                d.lowest,
                d.recovery
                    .map_or("never".to_owned(), |r| format!("{r} rounds"))
            ),
        ));
    }
    if let (Some(eager), Some(cautious)) = (get(Scenario::Join, rl), get(Scenario::Join, CAUTIOUS))
    {
        let (e, c) = (
            Disturbance::of(&eager.xi, change),
            Disturbance::of(&cautious.xi, change),
        );
        out.push(Check::new(
            "join: τ₀ = 0.5 drops less than τ₀ = 0.95",
            c.before - c.lowest < e.before - e.lowest,
            format!("{:.3} vs {:.3}", c.before - c.lowest, e.before - e.lowest),
        ));
    }
    if let (Some(lo), Some(hi)) = (gossip.first(), gossip.last()) {
        out.push(Check::new(
            format!(
                "gossip entries per agent flat from N = {} to {}",
                lo.0, hi.0
            ),
            (hi.1 - lo.1).abs() <= 0.1 * lo.1,
            format!("{:.1} vs {:.1}", lo.1, hi.1),
        ));
    }
    out
}

fn json(
    args: &Args,
    s: &BTreeMap<(Scenario, String), Summary>,
    checks: &[Check],
    gossip: &[(usize, f64, f64)],
) -> Value {
    let floats = |v: &[f64]| Value::List(v.iter().map(|x| Value::Float(*x)).collect());
    let mut scenarios = selflet::value::Map::new();
    for ((scenario, label), m) in s {
        let entry = scenarios
            .entry(scenario.name().to_owned())
            .or_insert_with(|| Value::Map(selflet::value::Map::new()));
        if let Value::Map(by_strategy) = entry {
            by_strategy.insert(
                label.clone(),
                Value::map([
                    ("xi", floats(&m.xi.mean)),
                    ("zeta", floats(&m.zeta.mean)),
                    ("resolved", floats(&m.resolved.mean)),
                    ("xi_ci", floats(&m.xi.ci)),
                    ("zeta_ci", floats(&m.zeta.ci)),
                    ("calls", Value::Float(m.calls)),
                    ("disturbance", disturbance(args, *scenario, &m.xi)),
                ]),
            );
        }
    }
    let p = Params::paper(Scenario::Static, Choice::Random, 0);
    Value::map([
        (
            "params",
            Value::map([
                ("agents", Value::Int(args.agents as i64)),
                ("types", Value::Int(p.types as i64)),
                ("rounds", Value::Int(args.rounds as i64)),
                ("change_at", Value::Int((args.rounds / 2) as i64)),
                ("churn", Value::Int((args.agents / 2) as i64)),
                ("seeds", Value::Int(args.seeds as i64)),
                ("fanout", Value::Int(p.gossip.fanout as i64)),
                ("known", Value::Int(p.gossip.known as i64)),
                ("window", Value::Int(i64::from(Learning::default().window))),
                (
                    "initial_trust",
                    Value::Float(Learning::default().initial_trust),
                ),
            ]),
        ),
        ("scenarios", Value::Map(scenarios)),
        (
            "checks",
            Value::List(checks.iter().map(Check::to_value).collect()),
        ),
        (
            "gossip",
            Value::List(
                gossip
                    .iter()
                    .map(|(n, e, m)| {
                        Value::map([
                            ("agents", Value::Int(*n as i64)),
                            ("entries_per_agent_round", Value::Float(*e)),
                            ("messages_per_agent_round", Value::Float(*m)),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

/// The drop of ξ after the change and the rounds to make up half of it and all of it
/// (`null` in the static scenario, and for what never happened).
fn disturbance(args: &Args, scenario: Scenario, xi: &Series) -> Value {
    if scenario == Scenario::Static {
        return Value::Null;
    }
    let d = Disturbance::of(xi, args.rounds / 2);
    let rounds = |r: Option<u64>| r.map_or(Value::Null, |r| Value::Int(r as i64));
    Value::map([
        ("before", Value::Float(d.before)),
        ("lowest", Value::Float(d.lowest)),
        ("half", rounds(d.half)),
        ("recovery", rounds(d.recovery)),
    ])
}

/// ξ and ζ against rounds for every strategy of one scenario.
fn plot_scenario(
    args: &Args,
    scenario: Scenario,
    s: &BTreeMap<(Scenario, String), Summary>,
    path: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut xi = Chart::new(format!("{}: ξ", scenario.name()), "round", "ξ");
    let mut zeta = Chart::new(format!("{}: ζ", scenario.name()), "round", "ζ");
    for ((sc, label), m) in s {
        if *sc != scenario {
            continue;
        }
        let points = |v: &[f64]| {
            v.iter()
                .enumerate()
                .map(|(i, y)| ((i + 1) as f64, *y))
                .collect::<Vec<_>>()
        };
        xi = xi.line(label.clone(), points(&m.xi.mean));
        zeta = zeta.line(label.clone(), points(&m.zeta.mean));
    }
    for c in [&mut xi, &mut zeta] {
        c.y_max = Some(1.05);
        if scenario != Scenario::Static {
            c.marks
                .push(((args.rounds / 2) as f64, scenario.name().to_owned()));
        }
    }
    plot::svg(std::path::Path::new(path), &[xi, zeta], 1, (900, 320))
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
