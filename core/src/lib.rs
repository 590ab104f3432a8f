//! The SelfLet runtime.
//!
//! A SelfLet is an autonomous agent that runs statechart behaviours, offers services to other
//! SelfLets, teaches those services to them, and adapts itself through autonomic policies fed
//! by prediction models. This crate is the runtime; the `selflet` crate re-exports it next to
//! the plugins and the command-line tool.
//!
//! # Modules
//!
//! One module per part of a SelfLet, as in Figure 2 of the prediction paper:
//!
//! | module | SelfLet part | owns |
//! |---|---|---|
//! | [`bus`] | Dispatcher | topic publish/subscribe inside one agent |
//! | [`knowledge`] | Internal Knowledge | facts, services, attributes, providers |
//! | [`transport`] | Message Handler | the in-process network |
//! | [`manifest`] | deployment | agent manifest YAML → a configured agent |
//! | [`agent`] | the SelfLet | builder, handle, lifecycle |
//!
//! Plus [`value`] (the dynamic [`Value`] every part exchanges) and [`source`] (source files and
//! located errors).
//!
//! # Re-exports
//!
//! The main types are re-exported here, so `use selflet_core::{Agent, Value}` is enough for
//! most applications.

pub mod ability;
pub mod agent;
pub mod behaviour;
pub mod bus;
pub mod knowledge;
pub mod manifest;
pub mod negotiation;
pub mod policy;
pub mod prediction;
pub mod script;
pub mod source;
pub mod transport;
pub mod value;

mod sync;

pub use agent::{Agent, AgentBuilder, AgentError, AgentHandle, Lifecycle};
pub use bus::{Bus, Event, Overflow, Pattern, SubscribeOptions, Subscription, TopicStats};
pub use knowledge::{Knowledge, OfferMode, OfferModes, Service};
pub use manifest::Manifest;
pub use source::{LoadError, Located, SourceFile};
pub use transport::Network;
pub use value::Value;
