//! Configuring an agent before it starts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::agent::AgentError;
use crate::agent::handle::{AgentHandle, AgentInner};
use crate::bus::Bus;
use crate::knowledge::{Knowledge, Service};
use crate::manifest::{Manifest, is_valid_name};
use crate::transport::Network;
use crate::value::Value;

/// The default time in-flight work gets to finish at shutdown before it is cancelled.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Configures an agent; [`spawn`](AgentBuilder::spawn) starts it.
///
/// Settings layer: defaults, then a manifest ([`Agent::from_manifest`](crate::Agent::from_manifest)),
/// then whatever the builder methods set afterwards.
#[derive(Debug)]
#[must_use = "an agent does nothing until it is spawned"]
pub struct AgentBuilder {
    name: String,
    goal: Option<String>,
    attributes: BTreeMap<String, Value>,
    facts: BTreeMap<String, Value>,
    services: Vec<Service>,
    requires: Vec<String>,
    network: Option<Network>,
    grace: Duration,
}

impl AgentBuilder {
    pub(crate) fn new(name: String) -> AgentBuilder {
        AgentBuilder {
            name,
            goal: None,
            attributes: BTreeMap::new(),
            facts: BTreeMap::new(),
            services: Vec::new(),
            requires: Vec::new(),
            network: None,
            grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }

    pub(crate) fn from_manifest(m: &Manifest) -> AgentBuilder {
        let mut b = AgentBuilder::new(m.name.clone());
        b.goal.clone_from(&m.goal);
        b.attributes.clone_from(&m.attributes);
        b.facts.clone_from(&m.facts);
        b.services.clone_from(&m.services);
        b.requires.clone_from(&m.requires);
        b
    }

    /// Describes what the agent is for.
    pub fn goal(mut self, goal: impl Into<String>) -> Self {
        self.goal = Some(goal.into());
        self
    }

    /// Sets an attribute.
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Sets an initial fact.
    pub fn fact(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.facts.insert(key.into(), value.into());
        self
    }

    /// Offers a service.
    pub fn service(mut self, service: Service) -> Self {
        self.services.retain(|s| s.name != service.name);
        self.services.push(service);
        self
    }

    /// Declares a service the agent needs from others.
    pub fn require(mut self, service: impl Into<String>) -> Self {
        self.requires.push(service.into());
        self
    }

    /// Joins an in-process network (by default the agent is alone on a network of its own).
    pub fn network(mut self, network: &Network) -> Self {
        self.network = Some(network.clone());
        self
    }

    /// How long in-flight work may take to finish at shutdown before it is cancelled.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Starts the agent on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// An invalid name, a name already taken on the network, or no tokio runtime. Nothing is
    /// started when an error is returned.
    pub async fn spawn(self) -> Result<AgentHandle, AgentError> {
        if !is_valid_name(&self.name) {
            return Err(AgentError::InvalidName(self.name));
        }
        tokio::runtime::Handle::try_current().map_err(|_| AgentError::NoRuntime)?;
        let network = self.network.unwrap_or_default();
        let membership = network.join(&self.name)?;
        let bus = Bus::new(&self.name);
        let knowledge = Knowledge::new(bus.clone());
        for (k, v) in self.attributes {
            knowledge.set_attribute(&k, v);
        }
        let inner = Arc::new(AgentInner::new(
            self.name.as_str().into(),
            self.goal,
            bus,
            knowledge,
            membership,
            self.grace,
        ));
        let handle = AgentHandle::from_inner(inner);
        handle.start(self.facts, self.services, self.requires).await;
        Ok(handle)
    }
}
