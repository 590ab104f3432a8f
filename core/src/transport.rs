//! The Message Handler: how agents reach each other.
//!
//! Agents exchange [`Envelope`]s through a [`Transport`]. The trait is small on purpose: direct
//! sends, publication to whoever offers a service (so a requester need not know who that is,
//! as REDS gives the SelfLet papers), broadcast of adverts, and membership. [`Network`] is the
//! in-process implementation, the embedded default; a Zenoh one follows the same trait.
//!
//! The network counts every message it carries, per kind and per agent pair
//! ([`Transport::counters`]): the teaching demo's table reads these counters.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_channel::{Receiver, Sender, TrySendError};
use serde::{Deserialize, Serialize};

use crate::knowledge::{OfferMode, OfferModes};
use crate::sync::lock;
use crate::value::Value;

/// How many envelopes may wait in an agent's inbox; beyond that sends fail (and are counted).
pub const INBOX_CAPACITY: usize = 1024;

/// A message between agents, with who sent it, to whom, and the conversation it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending agent.
    pub from: String,
    /// The receiving agent (set by the transport for publications and broadcasts).
    pub to: String,
    /// Correlates a reply with its request.
    pub id: u64,
    /// The message.
    pub body: Message,
}

/// What agents say to each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// Asks for a service in one of `modes`, in order of preference.
    Request {
        /// The service.
        service: String,
        /// Acceptable modes, preferred first.
        modes: Vec<OfferMode>,
        /// The input, for `can_do`.
        input: Value,
    },
    /// Answers a request.
    Reply(Reply),
    /// Asks whoever offers `service` to make itself known.
    Discover {
        /// The service.
        service: String,
    },
    /// A service taught without being asked for, by a provider shedding load.
    Lesson(TeachingPackage),
    /// The sender's utilization, for neighbours balancing load.
    Load {
        /// Seconds of work per second, over the sender's last sample period.
        utilization: f64,
    },
    /// Says which services an agent offers, and how.
    Advert {
        /// Service name and modes (`none` withdraws an offer).
        services: Vec<(String, OfferModes)>,
    },
}

impl Message {
    /// The kind, as counted by the network: `request`, `result`, `teaching`, `referral`,
    /// `refusal`, `failure`, `discover`, `advert`, `lesson`, `load`.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Request { .. } => "request",
            Message::Reply(Reply::Done(_)) => "result",
            Message::Reply(Reply::Teach(_)) => "teaching",
            Message::Reply(Reply::Referral(_)) => "referral",
            Message::Reply(Reply::Refused(_)) => "refusal",
            Message::Reply(Reply::Failed(_)) => "failure",
            Message::Discover { .. } => "discover",
            Message::Lesson(_) => "lesson",
            Message::Load { .. } => "load",
            Message::Advert { .. } => "advert",
        }
    }
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", content = "value", rename_all = "snake_case")]
pub enum Reply {
    /// The service ran (`can_do`): its output.
    Done(Value),
    /// The service, taught (`can_teach`).
    Teach(TeachingPackage),
    /// Who provides it (`knows_who_can_do`, `knows_who_can_teach`).
    Referral(Vec<(String, OfferModes)>),
    /// Not in any acceptable mode.
    Refused(String),
    /// It ran and failed.
    Failed(String),
}

/// A taught service: what the learner needs to run it itself. No native code travels: only
/// the behaviour's YAML, the Rhai scripts of the abilities it uses, and the names of the
/// services it requires (not their implementations, as in the paper).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeachingPackage {
    /// The service.
    pub service: String,
    /// The implementing behaviour's name.
    pub behaviour: String,
    /// The behaviour's YAML source.
    pub behaviour_source: String,
    /// Scripted abilities: file name and Rhai source.
    pub scripts: Vec<(String, String)>,
    /// Services the behaviour calls.
    pub requires: Vec<String>,
}

/// A send that did not go through. The envelope is handed back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// No agent of that name is on the network.
    #[error("no agent `{}` on the network", .0.to)]
    Unknown(Box<Envelope>),
    /// Its inbox is full.
    #[error("the inbox of `{}` is full", .0.to)]
    Full(Box<Envelope>),
}

/// Messages carried, by kind and by (from, to) pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageCounters {
    /// By kind (`request`, `result`, `teaching`, ...).
    pub by_kind: BTreeMap<String, u64>,
    /// By sender and receiver.
    pub by_pair: BTreeMap<(String, String), u64>,
    /// Sends that failed (unknown receiver, full inbox).
    pub undelivered: u64,
}

impl MessageCounters {
    /// Every message carried.
    pub fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }

    /// Messages of kinds other than adverts and discovery: the requests, replies and
    /// teachings of actual service use.
    pub fn service_messages(&self) -> u64 {
        self.by_kind
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "advert" | "discover"))
            .map(|(_, n)| n)
            .sum()
    }
}

/// An agent's place on a transport: its inbox, and its name held until dropped.
pub struct Membership {
    /// Envelopes addressed to the agent.
    pub inbox: Receiver<Envelope>,
    leave: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Membership")
            .field("queued", &self.inbox.len())
            .finish()
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(leave) = self.leave.take() {
            leave();
        }
    }
}

/// Another agent on the network already has this name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an agent named `{0}` is already on this network")]
pub struct NameTaken(pub String);

/// How agents reach each other.
pub trait Transport: Send + Sync + 'static {
    /// Joins under a name no current member has; the membership's inbox receives what is sent
    /// to it, and dropping the membership leaves.
    fn join(&self, agent: &str) -> Result<Membership, NameTaken>;

    /// Sends to one agent.
    fn send(&self, envelope: Envelope) -> Result<(), SendError>;

    /// Sends to every agent that offers `service` (has said so with [`Transport::offer`]),
    /// except the sender; returns how many received it.
    fn publish(&self, service: &str, envelope: Envelope) -> usize;

    /// Sends to every other member; returns how many received it.
    fn broadcast(&self, envelope: Envelope) -> usize;

    /// Declares whether `agent` offers `service`, for [`Transport::publish`].
    fn offer(&self, agent: &str, service: &str, offered: bool);

    /// The current members, sorted.
    fn members(&self) -> Vec<String>;

    /// Messages carried so far.
    fn counters(&self) -> MessageCounters;
}

/// The in-process network. Cloning gives another handle to the same network.
#[derive(Clone, Default)]
pub struct Network {
    inner: Arc<Mutex<NetworkInner>>,
}

#[derive(Default)]
struct NetworkInner {
    members: BTreeMap<String, Sender<Envelope>>,
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
        let pair = (envelope.from.clone(), envelope.to.clone());
        // The inbox is unbounded so that an idle agent holds no preallocated buffer; its
        // bound is kept here, under the network's lock.
        if tx.len() >= INBOX_CAPACITY {
            inner.counters.undelivered += 1;
            return Err(SendError::Full(Box::new(envelope)));
        }
        match tx.try_send(envelope) {
            Ok(()) => {
                *inner.counters.by_kind.entry(kind.to_owned()).or_default() += 1;
                *inner.counters.by_pair.entry(pair).or_default() += 1;
                Ok(())
            }
            Err(TrySendError::Full(e) | TrySendError::Closed(e)) => {
                inner.counters.undelivered += 1;
                Err(SendError::Full(Box::new(e)))
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
    fn join(&self, agent: &str) -> Result<Membership, NameTaken> {
        let (tx, rx) = async_channel::unbounded();
        {
            let mut inner = lock(&self.inner);
            if inner.members.contains_key(agent) {
                return Err(NameTaken(agent.to_owned()));
            }
            inner.members.insert(agent.to_owned(), tx);
        }
        let network = self.clone();
        let name = agent.to_owned();
        Ok(Membership {
            inbox: rx,
            leave: Some(Box::new(move || {
                let mut inner = lock(&network.inner);
                inner.members.remove(&name);
                for agents in inner.offers.values_mut() {
                    agents.remove(&name);
                }
            })),
        })
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
        let set = inner.offers.entry(service.to_owned()).or_default();
        if offered {
            set.insert(agent.to_owned());
        } else {
            set.remove(agent);
        }
    }

    fn members(&self) -> Vec<String> {
        lock(&self.inner).members.keys().cloned().collect()
    }

    fn counters(&self) -> MessageCounters {
        lock(&self.inner).counters.clone()
    }
}
