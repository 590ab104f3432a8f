//! The SelfLet itself: building, running and stopping an agent.
//!
//! An agent is built with [`Agent::builder`] (or [`Agent::from_manifest`]) and started with
//! [`AgentBuilder::spawn`], which returns an [`AgentHandle`]. The handle is what applications
//! keep: it is cheap to clone, `Send + Sync`, and gives access to the agent's bus and knowledge.
//!
//! An agent is not a thread: its parts run as tokio tasks on the runtime that spawned it, and
//! an idle agent runs nothing at all, so many thousands fit in one process.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use selflet_core::{Agent, Lifecycle};
//!
//! let agent = Agent::builder("kitchen").fact("threshold", 3).spawn().await?;
//! assert_eq!(agent.lifecycle(), Lifecycle::Running);
//! assert_eq!(agent.fact("threshold"), Some(3.into()));
//! agent.shutdown().await;
//! assert_eq!(agent.lifecycle(), Lifecycle::Stopped);
//! # Ok(())
//! # }
//! ```

mod builder;
mod handle;
mod learning;
mod lifecycle;
mod negotiation;
mod policy;
mod prediction;
mod spawn;

pub use builder::{AgentBuilder, DEFAULT_SHUTDOWN_GRACE};
pub use handle::{AgentHandle, CancellationToken, SubscribeError};
pub use lifecycle::Lifecycle;
pub use negotiation::QueueDepths;
pub use policy::ActionError;

use crate::manifest::Manifest;
use crate::transport::JoinError;

/// Entry point for building agents.
#[derive(Debug)]
pub struct Agent(());

impl Agent {
    /// Starts building an agent with the given name.
    pub fn builder(name: impl Into<String>) -> AgentBuilder {
        AgentBuilder::new(name.into())
    }

    /// Starts building an agent described by a manifest.
    pub fn from_manifest(manifest: &Manifest) -> AgentBuilder {
        AgentBuilder::from_manifest(manifest)
    }
}

/// Why an agent could not be spawned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The name is not a valid agent name.
    #[error(
        "invalid agent name `{0}`: a name starts with a letter and has only letters, digits, `_` and `-`"
    )]
    InvalidName(String),
    /// The agent could not join its network (another agent there has the name, ...).
    #[error(transparent)]
    Join(#[from] JoinError),
    /// A behaviour, ability script, policy or manifest has problems; each is located in its
    /// file.
    #[error(transparent)]
    Load(#[from] crate::source::LoadError),
    /// The main behaviour, or a service's, is not among the agent's behaviours.
    #[error("{needed_by} is implemented by behaviour `{behaviour}`, which the agent does not have")]
    MissingBehaviour {
        /// What needs it: the main behaviour, or a service.
        needed_by: String,
        /// The behaviour's name.
        behaviour: String,
    },
    /// The bus given to the builder was closed already.
    #[error("the agent's bus is closed")]
    BusClosed,
    /// A predictor could not be made.
    #[error(transparent)]
    Prediction(#[from] crate::prediction::PredictionError),
    /// A learner's parameters, kind, service or variants are not usable.
    #[error(transparent)]
    Learner(#[from] crate::prediction::learner::PlugError),
    /// `spawn` was awaited outside a tokio runtime.
    #[error("agents run on a tokio runtime; spawn them from within one")]
    NoRuntime,
}
