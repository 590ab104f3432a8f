//! The in-process network: agents of one process, the embedded default.
//!
//! Messages travel as Rust values between agents built by the same application, in one trust
//! domain, so every delivery counts as verified: only code of this process can send, and it
//! could read any agent's keys anyway.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use super::{
    Envelope, InboxSender, JoinError, Membership, MessageCounters, SendError, Transport, inbox,
};
use crate::sync::lock;

/// The in-process network. Cloning gives another handle to the same network.
#[derive(Clone, Default)]
pub struct Network {
    inner: Arc<Mutex<NetworkInner>>,
}

#[derive(Default)]
struct NetworkInner {
    members: BTreeMap<String, InboxSender>,
    offers: BTreeMap<String, BTreeSet<String>>,
    counters: MessageCounters,
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("members", &self.members())
            .finish()
    }
}

impl Network {
    /// An empty network.
    pub fn new() -> Network {
        Network::default()
    }

    fn deliver(inner: &mut NetworkInner, envelope: Envelope) -> Result<(), SendError> {
        let Some(tx) = inner.members.get(&envelope.to) else {
            inner.counters.undelivered += 1;
            return Err(SendError::Unknown(Box::new(envelope)));
        };
        let kind = envelope.body.kind();
        let (from, to) = (envelope.from.clone(), envelope.to.clone());
        match tx.push_message(envelope, true) {
            Ok(()) => {
                inner.counters.record(kind, &from, &to);
                Ok(())
            }
            Err((why, envelope)) => {
                inner.counters.undelivered += 1;
                inner.counters.reject(why);
                Err(SendError::Full(envelope))
            }
        }
    }

    fn fan_out(&self, envelope: Envelope, to: impl Fn(&NetworkInner) -> Vec<String>) -> usize {
        let mut inner = lock(&self.inner);
        let targets = to(&inner);
        targets
            .into_iter()
            .filter(|t| *t != envelope.from)
            .filter(|t| {
                let mut e = envelope.clone();
                e.to = t.clone();
                Network::deliver(&mut inner, e).is_ok()
            })
            .count()
    }
}

impl Transport for Network {
    fn join(&self, agent: &str) -> Result<Membership, JoinError> {
        let (tx, rx) = inbox();
        {
            let mut inner = lock(&self.inner);
            if inner.members.contains_key(agent) {
                return Err(JoinError::NameTaken(agent.to_owned()));
            }
            inner.members.insert(agent.to_owned(), tx);
        }
        let network = self.clone();
        let name = agent.to_owned();
        // In-process members leave only by stopping, which answers their in-flight work, so
        // there is no news to give; telling each of thousands of agents about every other one
        // would cost O(N²) events for nothing.
        let (_, changes) = async_channel::bounded(1);
        Ok(Membership::new(rx, changes, move || {
            let mut inner = lock(&network.inner);
            if let Some(tx) = inner.members.remove(&name) {
                tx.close();
            }
            for agents in inner.offers.values_mut() {
                agents.remove(&name);
            }
        }))
    }

    fn send(&self, envelope: Envelope) -> Result<(), SendError> {
        Network::deliver(&mut lock(&self.inner), envelope)
    }

    fn publish(&self, service: &str, envelope: Envelope) -> usize {
        self.fan_out(envelope, |inner| {
            inner
                .offers
                .get(service)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default()
        })
    }

    fn broadcast(&self, envelope: Envelope) -> usize {
        self.fan_out(envelope, |inner| inner.members.keys().cloned().collect())
    }

    fn offer(&self, agent: &str, service: &str, offered: bool) {
        let mut inner = lock(&self.inner);
        if offered {
            inner
                .offers
                .entry(service.to_owned())
                .or_default()
                .insert(agent.to_owned());
        } else if let Some(set) = inner.offers.get_mut(service) {
            set.remove(agent);
            if set.is_empty() {
                inner.offers.remove(service);
            }
        }
    }

    fn members(&self) -> Vec<String> {
        lock(&self.inner).members.keys().cloned().collect()
    }

    fn is_member(&self, agent: &str) -> bool {
        lock(&self.inner).members.contains_key(agent)
    }

    fn authenticates(&self, _agent: &str) -> bool {
        true
    }

    fn counters(&self) -> MessageCounters {
        lock(&self.inner).counters.clone()
    }
}
