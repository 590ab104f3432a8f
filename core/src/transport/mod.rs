//! The Message Handler: how agents reach each other.
//!
//! Agents exchange [`Envelope`]s through a [`Transport`]. The trait is small on purpose: direct
//! sends, publication to whoever offers a service (so a requester need not know who that is,
//! as REDS gives the SelfLet papers), broadcast of adverts, and membership. [`Network`] is the
//! in-process implementation, the embedded default; `Zenoh` (cargo feature `zenoh`) carries
//! the same envelopes across processes and machines, as JSON documented in `docs/protocol.md`.
//!
//! A transport counts every message it carries, per kind and per agent pair
//! ([`Transport::counters`]): the teaching demo's table reads these counters.

mod auth;
mod config;
mod inbox;
mod network;
mod refusal;
mod reply_wire;
mod tally;
#[cfg(feature = "zenoh")]
mod zenoh;

use std::collections::BTreeMap;
use std::fmt;

use async_channel::Receiver;
use serde::{Deserialize, Serialize};

pub use auth::{KeyError, Keyring, PublicKey, REPLAY_WINDOW, TAG_LEN};
pub use config::{
    ConfigError, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_NAMESPACE, Security, ZenohConfig, ZenohMode,
};
/// The generator [`Transport::sample`] draws with, re-exported so that a transport written
/// outside this crate names the same version.
pub use fastrand;
pub(crate) use inbox::Sink;
pub use inbox::{INBOX_CAPACITY, Inbox, InboxSender, Incoming, PER_SENDER_QUEUED, inbox};
pub use network::Network;
pub use refusal::{Refusal, Refusals};
#[cfg(feature = "zenoh")]
pub use zenoh::{MAX_REMOTE_MEMBERS, StatusWatch, Zenoh, ZenohError};

use crate::name::Name;
use crate::offer::{OfferMode, OfferModes};
use crate::value::Value;

/// The fewest agents a [publication](Transport::publish) reaches when more offer the
/// service: a discovery needs a few answers, not one from each of a hundred thousand.
pub const MAX_PUBLISH_FANOUT: usize = 64;

/// A message between agents, with who sent it, to whom, and the conversation it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending agent.
    pub from: Name,
    /// The receiving agent (set by the transport for publications and broadcasts).
    pub to: Name,
    /// Correlates a reply with its request.
    pub id: u64,
    /// The [trace](crate::trace) the message belongs to; 0 (absent on the wire) for none.
    /// A peer's word: it only groups what the console and the logs show.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub trace: u64,
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
        service: Name,
        /// Acceptable modes, preferred first.
        modes: Vec<OfferMode>,
        /// The input, for `can_do`.
        input: Value,
        /// How many agents forwarded the request already (a provider redirecting its load
        /// forwards it once; a forwarded request is not forwarded again). 0 when absent.
        #[serde(default, skip_serializing_if = "is_zero")]
        hops: u8,
    },
    /// Answers a request.
    Reply(Reply),
    /// Asks whoever offers `service` to make itself known.
    Discover {
        /// The service.
        service: Name,
    },
    /// A service taught without being asked for, by a provider shedding load. Boxed, as in
    /// [`Reply::Teach`].
    Lesson(Box<TeachingPackage>),
    /// The sender's utilization, for neighbours balancing load.
    Load {
        /// Seconds of work per second, over the sender's last sample period.
        utilization: f64,
    },
    /// What the sender knows of providers (seed 001's gossip): the services it offers and the
    /// best providers it knows of the services it needs, with the quality each advertised.
    Gossip {
        /// The providers, at most [`MAX_GOSSIP_ENTRIES`]. Shared: one round sends the same
        /// entries to every peer it draws.
        entries: std::sync::Arc<[GossipEntry]>,
    },
    /// Says which services an agent offers, and how.
    Advert {
        /// Service name and modes (`none` withdraws an offer).
        services: Vec<(Name, OfferModes)>,
    },
}

impl Message {
    /// The kind, as counted by the network: `request`, `result`, `teaching`, `referral`,
    /// `refusal`, `failure`, `discover`, `advert`, `gossip`, `lesson`, `load`.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Request { .. } => "request",
            Message::Reply(Reply::Done { .. }) => "result",
            Message::Reply(Reply::Teach(_)) => "teaching",
            Message::Reply(Reply::Referral(_)) => "referral",
            Message::Reply(Reply::Refused(_)) => "refusal",
            Message::Reply(Reply::Failed(_)) => "failure",
            Message::Discover { .. } => "discover",
            Message::Lesson(_) => "lesson",
            Message::Load { .. } => "load",
            Message::Advert { .. } => "advert",
            Message::Gossip { .. } => "gossip",
        }
    }
}

/// How many entries one gossip message may carry; a longer one is refused whole.
pub const MAX_GOSSIP_ENTRIES: usize = 512;

/// One provider, as gossip tells of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GossipEntry {
    /// The provider.
    pub agent: Name,
    /// The service.
    pub service: Name,
    /// How it offers the service.
    pub modes: OfferModes,
    /// The quality it last advertised for it, in `[0, 1]`, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<f64>,
}

/// The answer to a request.
///
/// On the wire, `reply` names the kind and `value` holds what it carries; a done reply may add
/// `advertised` beside them, so a client that reads only `value` reads the output as before.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "reply_wire::ReplyIn")]
pub enum Reply {
    /// The service ran (`can_do`): its output, and the quality the provider advertises for
    /// the service now, if it gossips. An advertisement rides on the answer because gossip
    /// alone brings a consumer news of its own provider rarely (a provider tells a few agents
    /// drawn at random a round), and a stale one keeps consumers with a provider that became
    /// worse than it says: trust weighs an old advertisement, not what the provider offers
    /// now.
    Done {
        /// What the service gave.
        output: Value,
        /// The provider's advertised quality for the service, in `[0, 1]`.
        advertised: Option<f64>,
    },
    /// The service, taught (`can_teach`). Boxed: teaching is rare, and a package held inline
    /// made every envelope — every request and reply — 192 bytes instead of 152.
    Teach(Box<TeachingPackage>),
    /// Who provides it (`knows_who_can_do`, `knows_who_can_teach`).
    Referral(Vec<(Name, OfferModes)>),
    /// Not in any acceptable mode.
    Refused(String),
    /// It ran and failed.
    Failed(String),
}

impl Reply {
    /// The answer of a service that ran and gave `output`, with no advertisement.
    pub fn done(output: Value) -> Reply {
        Reply::Done {
            output,
            advertised: None,
        }
    }
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
#[non_exhaustive]
pub enum SendError {
    /// No agent of that name is on the network.
    #[error("no agent `{}` on the network", .0.to)]
    Unknown(Box<Envelope>),
    /// Its inbox is full.
    #[error("the inbox of `{}` is full", .0.to)]
    Full(Box<Envelope>),
    /// The transport could not carry it (too large, connection lost, ...).
    #[error("cannot send to `{}`: {}", .0.to, .1)]
    Failed(Box<Envelope>, String),
}

fn is_zero<N: Default + PartialEq>(n: &N) -> bool {
    *n == N::default()
}

/// How many (sender, receiver) pairs [`MessageCounters::by_pair`] tells apart; messages of
/// further pairs are counted under `("*", "*")`. Names come from peers, so the map is bounded.
pub const MAX_COUNTED_PAIRS: usize = 4096;

/// Messages carried, by kind and by (from, to) pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageCounters {
    /// By kind (`request`, `result`, `teaching`, ...).
    pub by_kind: BTreeMap<String, u64>,
    /// By sender and receiver (at most [`MAX_COUNTED_PAIRS`] pairs, the rest under `*`).
    pub by_pair: BTreeMap<(String, String), u64>,
    /// Sends that failed (unknown receiver, full inbox).
    pub undelivered: u64,
    /// Messages received and thrown away before any agent saw them.
    pub rejected: u64,
    /// Why they were thrown away.
    pub refused: BTreeMap<Refusal, u64>,
}

impl MessageCounters {
    /// Counts one message carried, by its kind and by its sender and receiver.
    pub fn record(&mut self, kind: &str, from: &str, to: &str) {
        match self.by_kind.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                self.by_kind.insert(kind.to_owned(), 1);
            }
        }
        let pair = (from.to_owned(), to.to_owned());
        let pair = if self.by_pair.len() < MAX_COUNTED_PAIRS || self.by_pair.contains_key(&pair) {
            pair
        } else {
            ("*".to_owned(), "*".to_owned())
        };
        *self.by_pair.entry(pair).or_default() += 1;
    }

    /// Counts one message thrown away, and why.
    pub fn reject(&mut self, why: Refusal) {
        self.rejected += 1;
        *self.refused.entry(why).or_default() += 1;
    }

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

/// An agent's place on a transport: its inbox, news of other members, and its name held
/// until dropped.
pub struct Membership {
    /// What is delivered to the agent.
    pub inbox: Inbox,
    /// Other agents as they join (first those already there) and leave. A transport on which
    /// members can vanish without a word (a process killed, a machine unplugged) reports it
    /// here; the in-process network, whose members leave only by stopping, closes this channel
    /// at once.
    pub changes: Receiver<MemberChange>,
    leave: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Membership {
    /// A membership whose `leave` runs when it is dropped (the agent stopped).
    pub fn new(
        inbox: Inbox,
        changes: Receiver<MemberChange>,
        leave: impl FnOnce() + Send + Sync + 'static,
    ) -> Membership {
        Membership {
            inbox,
            changes,
            leave: Some(Box::new(leave)),
        }
    }
}

/// Another agent appeared on the network or disappeared from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// It joined.
    Joined(String),
    /// It left, or its process or machine is gone.
    Left(String),
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

/// Why an agent could not join a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// Another agent on the network already has this name.
    #[error("an agent named `{0}` is already on this network")]
    NameTaken(String),
    /// The transport failed to declare the agent.
    #[error("cannot join the network: {0}")]
    Failed(String),
}

/// How agents reach each other.
pub trait Transport: Send + Sync + 'static {
    /// Joins under a name no current member has; the membership's inbox receives what is sent
    /// to it, and dropping the membership leaves.
    fn join(&self, agent: &str) -> Result<Membership, JoinError>;

    /// Sends to one agent.
    ///
    /// A transport delivers a request holding none of its own locks: the receiving agent may
    /// answer it on the spot, on the deliverer's thread, and sending the answer comes back
    /// here. Other messages may be delivered under a lock.
    fn send(&self, envelope: Envelope) -> Result<(), SendError>;

    /// Sends to every agent that offers `service` (has said so with [`Transport::offer`]),
    /// except the sender — or, where more than [`MAX_PUBLISH_FANOUT`] offer it, to at least
    /// that many of them drawn at random; returns how many received it.
    fn publish(&self, service: &str, envelope: Envelope) -> usize;

    /// Sends to every other member; returns how many received it.
    fn broadcast(&self, envelope: Envelope) -> usize;

    /// Declares whether `agent` offers `service`, for [`Transport::publish`].
    fn offer(&self, agent: &str, service: &str, offered: bool);

    /// The current members, sorted.
    fn members(&self) -> Vec<Name>;

    /// Up to `k` members drawn at random (without repetition), for gossip. The default draws
    /// from [`Transport::members`]; a transport with many members should do better.
    fn sample(&self, k: usize, rng: &mut fastrand::Rng) -> Vec<Name> {
        let mut all = self.members();
        let k = k.min(all.len());
        for i in 0..k {
            let j = rng.usize(i..all.len());
            all.swap(i, j);
        }
        all.truncate(k);
        all
    }

    /// Whether `agent` is a current member.
    fn is_member(&self, agent: &str) -> bool {
        self.members().iter().any(|m| m == agent)
    }

    /// Whether what this transport delivers as coming from `agent` is proven to come from it
    /// (see [`Incoming::Message`]). A learner asks to be taught only by agents for which this
    /// holds, since it accepts code from no one else.
    fn authenticates(&self, agent: &str) -> bool;

    /// Messages carried so far.
    fn counters(&self) -> MessageCounters;
}
