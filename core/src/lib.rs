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
//! | [`bus`] | Dispatcher | topic publish/subscribe inside one agent; bounded queues, overflow policies, counters |
//! | [`knowledge`] | Internal Knowledge | facts, services and offer modes, attributes, provider directory |
//! | [`behaviour`] | Behaviour Manager | YAML statecharts: format, validation, interpreter, graph export, repository |
//! | [`ability`] | Ability Execution Environment | native (Rust) and scripted (Rhai) abilities |
//! | [`policy`] | Autonomic Manager | Rhai rules indexed by topic, the SelfLet action list, sandbox, hot reload |
//! | [`negotiation`] | Negotiation Manager | offer modes, requests and replies, teaching, referrals, adverts, gossip |
//! | [`choice`] | Negotiation Manager | provider choice: fixed rules and learned strategies (two-layer RL), quality metrics |
//! | [`prediction`] | Prediction Manager | the `Predictor` and `Learner` plugin traits, descriptors, kinds, plug/unplug at run time; compositions of a service and their reward |
//! | [`transport`] | Message Handler | the `Transport` trait, the in-process network, the Zenoh transport (feature `zenoh`), message accounting |
//! | [`manifest`] | deployment | agent manifest YAML → a configured agent |
//! | [`agent`] | the SelfLet | builder, handle, lifecycle (statig), the wiring of the parts above |
//! | [`deployment`] | self-deployment | hosts, the Rhai objective (utility, migration cost, constraints), hill-climbing plans, the coordinator every member may become |
//!
//! Below them, small shared modules: [`value`] (the dynamic [`Value`] every part exchanges),
//! [`name`] and [`duration`] (what names and durations users write may be), [`error`] (the
//! error type of user code), [`offer`] (offer modes, which travel on the wire), [`source`]
//! (source files and located errors), [`trace`] (the id that follows one chain of work
//! across agents), [`topic`] (every topic selflet publishes, with its
//! payload) and [`script`] (the Rhai sandbox shared by guards, abilities, policies and
//! scripted predictors).
//!
//! # Layers
//!
//! Each module uses only modules of lower layers, so the parts can be read, tested and
//! replaced from the bottom up (`tests/module_layers.rs` checks this table against the code):
//!
//! | layer | modules |
//! |---|---|
//! | 0 | `sync`, `value`, `name`, `duration`, `error`, `trace` |
//! | 1 | `source`, `offer`, `topic` |
//! | 2 | `bus`, `transport` |
//! | 3 | `knowledge`, `script` |
//! | 4 | `ability`, `prediction`, `choice` |
//! | 5 | `behaviour` |
//! | 6 | `policy`, `negotiation` |
//! | 7 | `manifest` |
//! | 8 | `agent` |
//! | 9 | `deployment` |
//!
//! # Re-exports
//!
//! The main types are re-exported here, so `use selflet_core::{Agent, Value}` is enough for
//! most applications.

pub mod ability;
pub mod agent;
pub mod behaviour;
pub mod bus;
pub mod choice;
pub mod deployment;
pub mod duration;
pub mod error;
pub mod knowledge;
pub mod manifest;
pub mod name;
pub mod negotiation;
pub mod offer;
pub mod policy;
pub mod prediction;
pub mod script;
pub mod source;
pub mod topic;
pub mod trace;
pub mod transport;
pub mod value;

mod sync;

pub use agent::{Agent, AgentBuilder, AgentError, AgentHandle, Lifecycle};
pub use behaviour::Behaviour;
pub use bus::{Bus, Event, Overflow, Pattern, SubscribeOptions, Subscription, TopicStats};
pub use knowledge::{Knowledge, Service};
pub use manifest::Manifest;
pub use negotiation::CallError;
pub use offer::{OfferMode, OfferModes};
pub use policy::Policies;
pub use prediction::{Kinds, Predictor};
pub use source::{LoadError, Located, SourceFile};
pub use transport::{Network, Transport};
pub use value::Value;
