//! # selflet
//!
//! Self-managing distributed systems out of **SelfLets**: autonomous agents that run statechart
//! behaviours, offer services to each other, teach those services to peers, and adapt through
//! scripted autonomic policies fed by pluggable prediction models.
//!
//! This crate is the facade: it re-exports the runtime ([`selflet_core`]) and the prediction
//! plugins ([`plugins`]), and ships the `selflet` command-line tool.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use selflet::{Agent, Network};
//!
//! let network = Network::new();
//! let a = Agent::builder("a").network(&network).spawn().await?;
//! let mut changes = a.subscribe("knowledge.*")?;
//! a.set_fact("load", 0.4).await;
//! let ev = changes.recv().await.expect("the agent is running");
//! assert_eq!(ev.topic(), "knowledge.fact.changed");
//! assert_eq!(ev.payload().get("new"), Some(&0.4.into()));
//! a.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub use selflet_core::*;

/// Prediction models and learners.
pub use selflet_plugins as plugins;
