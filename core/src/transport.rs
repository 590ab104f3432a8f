//! The Message Handler: how agents reach each other.
//!
//! [`Network`] is the in-process network, the embedded default: agents that share one
//! `Network` value can find each other by name. Agent names are unique on a network; an agent
//! joins when it is spawned and leaves when it stops.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::sync::lock;

/// An in-process network of agents. Cloning gives another handle to the same network.
#[derive(Clone, Default)]
pub struct Network {
    members: Arc<Mutex<BTreeSet<String>>>,
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("members", &*lock(&self.members))
            .finish()
    }
}

/// Another agent on the network already has this name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an agent named `{0}` is already on this network")]
pub struct NameTaken(pub String);

/// An agent's place on a [`Network`]; dropping it leaves the network.
#[derive(Debug)]
pub struct Membership {
    network: Network,
    name: String,
}

impl Network {
    /// An empty network.
    pub fn new() -> Network {
        Network::default()
    }

    /// Joins under a name that no current member has.
    pub fn join(&self, name: &str) -> Result<Membership, NameTaken> {
        if !lock(&self.members).insert(name.to_owned()) {
            return Err(NameTaken(name.to_owned()));
        }
        Ok(Membership {
            network: self.clone(),
            name: name.to_owned(),
        })
    }

    /// The names of the current members, sorted.
    pub fn members(&self) -> Vec<String> {
        lock(&self.members).iter().cloned().collect()
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        lock(&self.network.members).remove(&self.name);
    }
}
