//! How many idle agents fit in one process: spawns N agents (default 10,000) on one network,
//! prints the resident memory before and after, and shuts them all down.
//!
//! ```text
//! cargo run --release --example many_agents -- 10000
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
    let n: usize = std::env::args()
        .nth(1)
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
    if let (Some(b), Some(a)) = (before, after) {
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
    println!("all stopped in {:.2?}", start.elapsed());
    Ok(())
}
