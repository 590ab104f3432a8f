//! One event evaluated N times against one matching rule: the policy bench's workload without
//! criterion around it, for profilers.
//!
//! Instructions per evaluation, exact and free of a machine's noise (see `benches/README.md`):
//!
//! ```sh
//! cargo build --release --example policy_loop
//! valgrind --tool=callgrind target/release/examples/policy_loop 1000
//! valgrind --tool=callgrind target/release/examples/policy_loop 11000
//! # (instructions of the second − of the first) / 10,000
//! ```

use std::hint::black_box;

use selflet::bus::Pattern;
use selflet::{Agent, SourceFile, Value};

/// The policy bench's rule.
const RULE: &str = r#"rule("learn").on("prediction.frequent")
    .when(|ev| ev.support >= 0.2 && !has_service(ev.item))
    .then(|ev| request_service(ev.item, "can_teach"));"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let evaluations: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 100_000,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let agent = rt.block_on(
        Agent::builder("a")
            .policy(SourceFile::new("rule.rhai", RULE))
            .spawn(),
    )?;
    let bus = agent.bus().clone();
    let events = bus.subscribe(Pattern::parse("prediction.frequent")?)?;
    let payload = Value::map([
        ("item", Value::from("service1")),
        ("support", Value::Float(0.4)),
    ]);
    rt.block_on(bus.publish("prediction.frequent", payload))?;
    let event = events.try_recv()?;
    let policies = agent.policies().clone();
    for _ in 0..evaluations {
        let fired = policies.evaluate(black_box(&event));
        if fired.len() != 1 {
            return Err(format!("{} rules fired, not 1", fired.len()).into());
        }
    }
    Ok(())
}
