//! N calls from one agent to another in one process, one after the other: the call bench's
//! workload without criterion around it, for profilers.
//!
//! Instructions per call, exact and free of a machine's noise (see `benches/README.md`):
//!
//! ```sh
//! cargo build --release --example call_loop
//! valgrind --tool=callgrind target/release/examples/call_loop 1000
//! valgrind --tool=callgrind target/release/examples/call_loop 11000
//! # (instructions of the second − of the first) / 10,000
//! ```

use selflet::behaviour::Behaviour;
use selflet::{Agent, Network, OfferModes, Service, SourceFile, Value};

/// The call bench's provider: a behaviour around a native ability that echoes its input.
const ECHO: &str = "behaviour: echo
initial: e
states:
  e: { do: { ability: echo, args: { x: input }, save: out }, on: { done: f } }
  f: { final: true, output: out }
";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls: i64 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 100_000,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    rt.block_on(async move {
        let net = Network::new();
        let _provider = Agent::builder("b")
            .network(&net)
            .behaviour(Behaviour::parse(SourceFile::new("echo.yaml", ECHO))?)
            .service(Service::new("echo", OfferModes::CAN_DO))
            .ability("echo", |input: Value| async move {
                Ok(input.get("x").cloned().unwrap_or_default())
            })
            .spawn()
            .await?;
        let caller = Agent::builder("a").network(&net).spawn().await?;
        for i in 0..calls {
            let answer = caller.call("echo", i).await?;
            if answer != Value::Int(i) {
                return Err(format!("call {i} answered {answer:?}").into());
            }
        }
        Ok(())
    })
}
