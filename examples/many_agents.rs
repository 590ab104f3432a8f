//! How many idle agents fit in one process: spawns N agents (default 10,000) on one network,
//! prints the resident memory before and after, and shuts them all down.
//!
//! ```text
//! cargo run --release --example many_agents -- 10000
//! cargo run --release --example many_agents -- 100000 --json   # for benches/table.sh
//! ```

use selflet::{Agent, Network};

/// Resident memory in KiB, from /proc (Linux); `None` elsewhere.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let json = std::env::args().any(|a| a == "--json");
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| a != "--json")
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let net = Network::new();
    let before = rss_kib();
    let start = std::time::Instant::now();
    let mut agents = Vec::with_capacity(n);
    for i in 0..n {
        agents.push(
            Agent::builder(format!("agent-{i}"))
                .network(&net)
                .fact("i", i as i64)
                .spawn()
                .await?,
        );
    }
    let spawned = start.elapsed();
    let after = rss_kib();
    if let (Some(b), Some(a)) = (before, after)
        && json
    {
        let per_agent_kib = (a - b) as f64 / n as f64;
        let spawn_s = spawned.as_secs_f64();
        println!(
            r#"{{"agents":{n},"per_agent_kib":{per_agent_kib},"spawn_s":{spawn_s},"total_mib":{}}}"#,
            (a - b) / 1024
        );
    } else if let (Some(b), Some(a)) = (before, after) {
        println!(
            "{n} agents spawned in {spawned:.2?}: resident memory {} MiB -> {} MiB ({:.1} KiB per agent)",
            b / 1024,
            a / 1024,
            (a - b) as f64 / n as f64
        );
    }
    let start = std::time::Instant::now();
    for a in &agents {
        a.shutdown().await;
    }
    if !json {
        println!("all stopped in {:.2?}", start.elapsed());
    }
    Ok(())
}
