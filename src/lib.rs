//! # selflet
//!
//! Self-managing distributed systems out of **SelfLets**: autonomous agents that run statechart
//! behaviours, offer services to each other, teach those services to peers, and adapt through
//! scripted autonomic policies fed by pluggable prediction models.
//!
//! This crate is the facade: it re-exports the runtime ([`selflet_core`]) and the prediction
//! plugins ([`plugins`]), and ships the `selflet` command-line tool.
//!
//! ## A tour
//!
//! * an agent is built with [`Agent::builder`] or from a [`Manifest`], and kept as an
//!   [`AgentHandle`];
//! * its **behaviours** are YAML statecharts ([`behaviour`]); its **policies** Rhai rules
//!   ([`policy`]); its **predictors** plugins ([`prediction`], [`plugins`]);
//! * agents offer services in **offer modes** and call, learn and refer each other
//!   ([`negotiation`]) over a [`transport`];
//! * everything inside an agent goes through its **bus** ([`bus`]), where applications can
//!   listen too.
//!
//! ## Embedding
//!
//! Two agents, one with a native ability, a call from application code, and the application
//! reacting to bus events (the `embedded` example is the same, from a manifest):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use selflet::behaviour::Behaviour;
//! use selflet::{Agent, Network, OfferModes, Service, SourceFile, Value};
//!
//! let network = Network::new();
//! let capacity = Behaviour::parse(SourceFile::new(
//!     "extra_capacity.yaml",
//!     r#"
//! behaviour: extra_capacity
//! initial: decide
//! states:
//!   decide:
//!     do: { ability: spare_capacity, save: spare }
//!     on: { done: [ { target: granted, guard: "input.watts <= spare" }, refused ] }
//!   granted: { final: true, output: "true" }
//!   refused: { final: true, output: "false" }
//! "#,
//! ))?;
//! let grid = Agent::builder("grid")
//!     .network(&network)
//!     .ability("spare_capacity", |_input: Value| async { Ok(Value::Int(800)) })
//!     .behaviour(capacity)
//!     .service(Service::new("extra_capacity", OfferModes::CAN_DO))
//!     .spawn()
//!     .await?;
//! let kitchen = Agent::builder("kitchen").network(&network).spawn().await?;
//!
//! let executed = grid.subscribe("service.executed")?;
//! let granted = kitchen.call("extra_capacity", Value::map([("watts", Value::Int(500))])).await?;
//! assert_eq!(granted, Value::Bool(true));
//! let ev = executed.recv().await.expect("the grid ran the service");
//! assert_eq!(ev.payload().get("requester"), Some(&Value::from("kitchen")));
//!
//! kitchen.shutdown().await;
//! grid.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub use selflet_core::*;

pub mod console;
pub mod metrics;

/// Prediction models and learners: Space-Saving, load forecasting, and [`plugins::kinds`], the
/// registry of every predictor kind for manifests.
pub use selflet_plugins as plugins;
