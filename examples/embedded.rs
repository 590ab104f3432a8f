//! Embedding selflet in an application: two agents built in code — one from a manifest, one
//! with the builder — a native ability, a service call from application code, and the
//! application reacting to bus events.
//!
//! ```text
//! cargo run --example embedded
//! ```

use std::path::Path;

use selflet::{Agent, Manifest, Network, Value};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let network = Network::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));

    // The grid comes from its manifest; the application gives it a native ability, the one
    // thing a manifest cannot carry.
    let grid = Agent::from_manifest(&Manifest::load(root.join("examples/home/grid.yaml"))?)
        .network(&network)
        .ability("spare_capacity", |_input: Value| async {
            Ok(Value::Int(800))
        })
        .spawn()
        .await?;

    // The kitchen is built in code.
    let kitchen = Agent::builder("kitchen")
        .goal("keep the kitchen's energy use under its threshold")
        .network(&network)
        .attribute("room", "kitchen")
        .fact("threshold", 2500)
        .spawn()
        .await?;

    // The application watches the grid's service events as they happen.
    let events = grid.subscribe("service.*")?;
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(ev) = events.recv().await {
            println!("  [grid bus] {} {}", ev.topic(), ev.payload());
            seen.push(ev.topic().to_owned());
            if ev.topic() == "service.executed" {
                break;
            }
        }
        seen
    });

    // A service call from application code: the kitchen does not run `extra_capacity`
    // itself, so it asks a provider it learned of from the grid's advert.
    for watts in [500, 1200] {
        let granted = kitchen
            .call("extra_capacity", Value::map([("watts", Value::Int(watts))]))
            .await?;
        println!("kitchen asked the grid for {watts} W more: granted = {granted}");
    }
    let seen = watcher.await?;
    println!("the application saw {} grid events", seen.len());

    let c = kitchen.message_counters();
    println!("messages on the network: {} ({:?})", c.total(), c.by_kind);
    kitchen.shutdown().await;
    grid.shutdown().await;
    Ok(())
}
