//! Self-deployment: SelfLets that add, remove and move themselves (Rhizoma, seed 003).
//!
//! A deployment is a set of members (SelfLets) on [`Hosts`]. Every member runs a manager
//! ([`manage`]); each period the lowest-named live member coordinates — no external
//! management node, and a new coordinator follows the old one's failure. The coordinator
//! reads the hosts' status (capacity, load, arrivals, queues, attributes), and searches for at
//! most `horizon` add / remove / move actions that raise **utility − migration cost** while
//! every constraint holds, both written by the user in Rhai ([`ScriptObjective`]). It runs the
//! plan only when the gain is above a threshold (or the current configuration breaks a
//! constraint): it starts members (teaching them what they need), moves them, and stops them
//! (each stops offering, finishes what it runs, and leaves). Every decision is recorded with
//! its utility and cost ([`DecisionLog`], the `deployment.decision` topic, the trace).
//!
//! Hosts are [`SimulatedHosts`] in one process (for experiments on the paused clock) or host
//! agents across processes ([`HostServer`], which `selflet host` runs; members reach them as
//! [`RemoteHosts`] through their own agent, authenticated like every other message). The
//! same manager drives both.
//!
//! Search is Rhizoma's hill-climbing with a horizon ([`Search::hill_climb`]); an exhaustive
//! search ([`Search::exhaustive`]) over the same actions measures what it misses on small
//! cases. Constraints are checked on the plan's final configuration only: intermediate steps
//! are not executed states, since actions run together in one period.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use selflet_core::deployment::{self, Hosts, SimulatedHosts};
//! use selflet_core::{Agent, Network, SourceFile, Value};
//!
//! // Members are worth their host's capacity, less what a member costs to run; at most one
//! // member per host.
//! let objective = SourceFile::new("fast.rhai", r#"
//!     fn utility(c) {
//!         let u = 0.0;
//!         for m in c.members { u += c.hosts[m.host].capacity - 1.5; }
//!         u
//!     }
//!     fn constraint(c) { c.hosts.values().all(|h| h.count <= 1) }
//! "#);
//! let config = deployment::Config::new(objective);
//! let log = config.log.clone();
//! let net = Network::new();
//! // Every member runs the manager; the lowest-named live one coordinates.
//! let hosts = SimulatedHosts::new(Arc::new(move |hosts, _host, name| {
//!     let (net, config) = (net.clone(), config.clone());
//!     Box::pin(async move {
//!         let a = Agent::builder(name).network(&net).spawn().await?;
//!         deployment::manage(&a, Arc::new(hosts), config)?;
//!         Ok(a)
//!     })
//! }));
//! hosts.add_host("slow", 1, &[("region", Value::from("eu"))]);
//! hosts.add_host("fast", 2, &[("region", Value::from("us"))]);
//! hosts.start("slow").await?;
//! // The first period the coordinator only observes; the second it moves the member.
//! tokio::time::sleep(Duration::from_secs(150)).await;
//! let moved = &log.decisions()[1];
//! assert!(moved.executed);
//! assert_eq!(moved.plan.as_ref().unwrap().actions[0].to_string(), "move slow-m1 to fast");
//! assert_eq!(hosts.members().await?, vec![("fast-m2".to_string(), "fast".to_string())]);
//! # Ok(()) }
//! ```

mod hosts;
mod manager;
mod objective;
mod plan;
mod remote;

pub use hosts::{Host, HostError, HostStatus, Hosts, SimulatedHosts, Spawner};
pub use manager::{Config, Decision, DecisionLog, Strategy, manage};
pub use objective::{ObjectiveError, Period, ScriptObjective};
pub use plan::{Action, Configuration, Objective, Plan, Search};
pub use remote::{
    HostServer, MAX_HOST_FIELDS, MAX_MEMBERS_PER_HOST, MemberSpawner, RemoteHosts, START, STATUS,
    STOP,
};
