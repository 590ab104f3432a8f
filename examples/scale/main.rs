//! How cost grows with the population: N agents on one in-process network, each offering a
//! service (a behaviour around a native ability, as in the call bench) and each calling
//! another agent's, drawn at random, once per round — N calls per round, all at once. For
//! each N it prints the spawn time, resident memory per agent, time per round and per call,
//! and messages per second through the network, and draws the curves.
//!
//! ```text
//! cargo run --release --example scale -- 100000                # one population
//! cargo run --release --example scale -- 1000 10000 100000     # the curve (the default)
//! cargo run --release --example scale -- --rounds 3 --json --plot scale.svg
//! ```
//!
//! Growth is "near linear" when a call costs at the largest N at most twice what it costs at
//! the smallest: the example checks that and says so.

#[path = "../support/check.rs"]
mod check;
#[path = "../support/plot.rs"]
mod plot;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use selflet::behaviour::Behaviour;
use selflet::transport::Transport;
use selflet::{Agent, AgentHandle, Network, OfferModes, Service, SourceFile, Value};

const ECHO: &str = "behaviour: work\ninitial: e\nstates:\n  e: { do: { ability: echo, args: { x: input }, save: out }, on: { done: f } }\n  f: { final: true, output: out }\n";

struct Args {
    sizes: Vec<usize>,
    rounds: usize,
    json: bool,
    plot: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        sizes: Vec::new(),
        rounds: 5,
        json: false,
        plot: PathBuf::from("scale.svg"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "--rounds" => {
                a.rounds = value("--rounds")?
                    .parse()
                    .map_err(|e| format!("--rounds: {e}"))?
            }
            "--json" => a.json = true,
            "--plot" => a.plot = value("--plot")?.into(),
            n => a.sizes.push(
                n.parse()
                    .map_err(|_| format!("not a number of agents: {n}"))?,
            ),
        }
    }
    if a.sizes.is_empty() {
        a.sizes = vec![1_000, 10_000, 100_000];
    }
    if a.sizes.iter().any(|&n| n < 2) || a.rounds == 0 {
        return Err("at least 2 agents and 1 round".into());
    }
    Ok(a)
}

/// What one population measured.
struct Row {
    agents: usize,
    spawn_s: f64,
    kib_per_agent: f64,
    /// Median round, seconds.
    round_s: f64,
    messages_per_round: u64,
    failed: usize,
}

impl Row {
    fn call_us(&self) -> f64 {
        self.round_s / self.agents as f64 * 1e6
    }
    fn messages_per_s(&self) -> f64 {
        self.messages_per_round as f64 / self.round_s
    }
}

/// Resident memory in KiB, from /proc (Linux); 0 elsewhere.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

async fn spawn(net: &Network, n: usize) -> Vec<AgentHandle> {
    let mut agents = Vec::with_capacity(n);
    for i in 0..n {
        // Each agent has its own copy, as agents built from manifests do.
        let work = Behaviour::parse(SourceFile::new("work.yaml", ECHO)).expect("a valid behaviour");
        let a = Agent::builder(format!("a{i}"))
            .network(net)
            .behaviour(work)
            .service(Service::new("work", OfferModes::CAN_DO))
            .ability("echo", |input: Value| async move {
                Ok(input.get("x").cloned().unwrap_or_default())
            })
            .spawn()
            .await
            .expect("an agent");
        agents.push(a);
    }
    agents
}

/// One round: every agent calls `work` at another agent, all at once; how long it took and
/// how many calls failed.
async fn round(agents: &[AgentHandle], rng: &mut fastrand::Rng) -> (Duration, usize) {
    let n = agents.len();
    let start = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for (i, a) in agents.iter().enumerate() {
        let to = agents[(i + 1 + rng.usize(..n - 1)) % n].name().to_owned();
        let a = a.clone();
        calls.spawn(async move { a.call_at(&to, "work", i as i64).await });
    }
    let mut failed = 0;
    while let Some(r) = calls.join_next().await {
        if !matches!(r, Ok(Ok(_))) {
            failed += 1;
        }
    }
    (start.elapsed(), failed)
}

async fn measure(n: usize, rounds: usize, bar: &indicatif::ProgressBar) -> Row {
    let net = Network::new();
    let before = rss_kib();
    let start = Instant::now();
    let agents = spawn(&net, n).await;
    let spawn_s = start.elapsed().as_secs_f64();
    let mut rng = fastrand::Rng::with_seed(n as u64);
    // A first round warms up what every agent makes on its first call.
    let (_, mut failed) = round(&agents, &mut rng).await;
    let mut times = Vec::new();
    let sent = net.counters().total();
    for _ in 0..rounds {
        let (t, f) = round(&agents, &mut rng).await;
        times.push(t.as_secs_f64());
        failed += f;
        bar.inc(1);
    }
    let messages_per_round = (net.counters().total() - sent) / rounds as u64;
    let kib_per_agent = rss_kib().saturating_sub(before) as f64 / n as f64;
    times.sort_by(f64::total_cmp);
    let row = Row {
        agents: n,
        spawn_s,
        kib_per_agent,
        round_s: times[times.len() / 2],
        messages_per_round,
        failed,
    };
    let stops: Vec<_> = agents
        .into_iter()
        .map(|a| async move { a.shutdown().await })
        .collect();
    futures_util::future::join_all(stops).await;
    row
}

fn print(rows: &[Row]) {
    println!(
        "{:>9} | {:>8} | {:>11} | {:>9} | {:>10} | {:>12} | {:>6}",
        "agents", "spawn s", "KiB / agent", "round s", "µs / call", "messages / s", "failed"
    );
    for r in rows {
        println!(
            "{:>9} | {:>8.2} | {:>11.1} | {:>9.3} | {:>10.2} | {:>12.0} | {:>6}",
            r.agents,
            r.spawn_s,
            r.kib_per_agent,
            r.round_s,
            r.call_us(),
            r.messages_per_s(),
            r.failed
        );
    }
}

fn json(rows: &[Row], rounds: usize) -> serde_json::Value {
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "agents": r.agents, "spawn_s": r.spawn_s, "kib_per_agent": r.kib_per_agent,
                "round_s": r.round_s, "call_us": r.call_us(),
                "messages_per_round": r.messages_per_round, "messages_per_s": r.messages_per_s(),
                "failed": r.failed,
            })
        })
        .collect();
    serde_json::json!({ "rounds": rounds, "rows": rows })
}

fn plot(rows: &[Row], path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let x = |r: &Row| (r.agents as f64).log10();
    let chart = |title: &str, y: &str, f: &dyn Fn(&Row) -> f64| {
        plot::Chart::new(title, "log10(agents)", y)
            .line(title, rows.iter().map(|r| (x(r), f(r))).collect())
    };
    let charts = [
        chart("time per round", "seconds", &|r| r.round_s),
        chart("time per call", "µs", &|r| r.call_us()),
        chart("resident memory per agent", "KiB", &|r| r.kib_per_agent),
        chart("messages per second", "messages / s", &|r| {
            r.messages_per_s()
        }),
    ];
    plot::svg(path, &charts, 2, (480, 320))
}

fn main() -> std::process::ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let bar = indicatif::ProgressBar::new((args.sizes.len() * args.rounds) as u64);
    let mut rows = Vec::new();
    for &n in &args.sizes {
        bar.set_message(format!("{n} agents"));
        rows.push(runtime.block_on(measure(n, args.rounds, &bar)));
    }
    bar.finish_and_clear();
    if args.json {
        println!("{}", json(&rows, args.rounds));
    } else {
        print(&rows);
    }
    if let Err(e) = plot(&rows, &args.plot) {
        eprintln!("error: the plot: {e}");
    }
    let (first, last) = (&rows[0], &rows[rows.len() - 1]);
    let growth = last.call_us() / first.call_us();
    let checks = [
        check::Check::new(
            "every call answered",
            rows.iter().all(|r| r.failed == 0),
            format!("{} failed", rows.iter().map(|r| r.failed).sum::<usize>()),
        ),
        check::Check::new(
            "near-linear growth",
            growth <= 2.0,
            format!(
                "a call costs {:.2} µs at {} agents and {:.2} µs at {} ({growth:.2}×; at most 2×)",
                first.call_us(),
                first.agents,
                last.call_us(),
                last.agents
            ),
        ),
    ];
    if !args.json {
        check::print(&checks);
    }
    if checks.iter().all(|c| c.holds) {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
