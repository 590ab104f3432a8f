//! The Zenoh transport: agents in many processes, on many machines.
//!
//! Every key lies under `selflet/<namespace>/` (see `docs/protocol.md` for the whole layout
//! and the JSON on the wire):
//!
//! | key | what | Zenoh entity |
//! |---|---|---|
//! | `agents/<agent>/alive` | the agent is on the network | liveliness token |
//! | `agents/<agent>/request` | requests to the agent; the reply answers the query | queryable |
//! | `agents/<agent>/inbox` | one-way messages: adverts, lessons, loads | subscriber |
//! | `services/<service>/<kind>` | messages to whoever offers the service (discovery) | subscriber of each offering agent |
//!
//! Requests travel as Zenoh queries: the provider's agent sees an ordinary request in its
//! inbox, and its reply goes back as the answer to that query, so a client in any language
//! calls a service with one `get`. A query that ends with no answer (the provider's process
//! is gone, or it never was there) ends the requester's call at once. Liveliness tokens tell
//! every process which agents are alive; their appearance and disappearance reach the agents
//! as [`MemberChange`]s.
//!
//! Incoming payloads are checked before anything else reads them (`inbound.rs`): larger than
//! the configured limit, not a selflet envelope, of a kind that does not come that way, a
//! duplicate request, or — in [`Security::Secure`] mode — without a valid tag from its
//! sender: the message is dropped, counted in [`MessageCounters::refused`], and logged; the
//! agent never sees it.

mod inbound;
mod outbound;
mod status;

pub use status::StatusWatch;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_channel::Sender;
use zenoh::Wait;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::query::{Query, Queryable};
use zenoh::sample::SampleKind;

use super::{
    ConfigError, InboxSender, JoinError, Keyring, MemberChange, Membership, MessageCounters,
    Refusal, Security, Transport, ZenohConfig, inbox,
};
use crate::name::{Name, is_valid_name};
use crate::sync::lock;

/// How long a request may wait for its reply at the most. Each agent's own negotiation
/// time-out ends its calls much sooner; this only bounds what the transport keeps.
const REQUEST_LIFETIME: Duration = Duration::from_secs(600);

/// How long opening waits to hear which agents are already there.
const MEMBERS_QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// How many agents of other processes a transport keeps track of. Liveliness tokens can be
/// declared by anyone on the Zenoh network, so the set is bounded.
pub const MAX_REMOTE_MEMBERS: usize = 100_000;

/// How many requests to local agents may wait for their replies at once.
const MAX_OPEN_QUERIES: usize = 65_536;

/// Why the Zenoh transport could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZenohError {
    /// The settings are wrong.
    #[error("invalid Zenoh settings: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Config(Vec<ConfigError>),
    /// Zenoh refused to open (an endpoint already in use, an unreachable router, ...).
    #[error("cannot open the Zenoh session: {0}")]
    Open(String),
    /// A status record was not put (see [`Zenoh::put_status`]).
    #[error("status record not put: {0}")]
    Status(String),
}

/// Agents on a Zenoh network. Cloning gives another handle to the same session; every agent
/// of a process should share one.
///
/// Needs tokio's multi-thread runtime (Zenoh's own tasks block in place).
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use selflet_core::Agent;
/// use selflet_core::transport::{Security, Zenoh, ZenohConfig};
///
/// let config = ZenohConfig {
///     connect: vec!["tcp/127.0.0.1:7447".into()],
///     namespace: "home".into(),
///     security: Security::Secure { keys: "keys".into() },
///     ..ZenohConfig::default()
/// };
/// let zenoh = Zenoh::open(&config).await?;
/// let agent = Agent::builder("kitchen").transport(Arc::new(zenoh.clone())).spawn().await?;
/// // ...
/// agent.shutdown().await;
/// zenoh.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Zenoh {
    shared: Arc<Shared>,
}

struct Shared {
    session: zenoh::Session,
    prefix: String,
    max_message_bytes: usize,
    // `None` in open mode.
    keys: Option<Keyring>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    local: HashMap<String, Local>,
    remote: BTreeSet<String>,
    // Requests received by query and not answered yet: (provider, requester, id).
    queries: HashMap<(Name, Name, u64), Query>,
    publishers: HashMap<String, Arc<Publisher<'static>>>,
    counters: crate::transport::tally::Tally,
    // Declarations that keep the process's liveliness subscriber alive.
    watch: Option<Subscriber<()>>,
}

/// A local agent and what keeps it declared; dropping it undeclares everything.
struct Local {
    inbox: InboxSender,
    changes: Sender<MemberChange>,
    offers: HashMap<String, Subscriber<()>>,
    declared: Vec<Declared>,
}

#[allow(dead_code)] // held only to be dropped, which undeclares them
enum Declared {
    Token(LivelinessToken),
    Subscriber(Subscriber<()>),
    Queryable(Queryable<()>),
}

impl fmt::Debug for Zenoh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Zenoh")
            .field("prefix", &self.shared.prefix)
            .field("members", &self.members())
            .finish_non_exhaustive()
    }
}

impl Zenoh {
    /// Opens a Zenoh session with these settings and learns which agents are already on the
    /// network. Must run on tokio's multi-thread runtime.
    pub async fn open(config: &ZenohConfig) -> Result<Zenoh, ZenohError> {
        config.check().map_err(ZenohError::Config)?;
        let session = zenoh::open(zenoh_config(config)?)
            .await
            .map_err(|e| ZenohError::Open(e.to_string()))?;
        let keys = match &config.security {
            Security::Open => None,
            Security::Secure { keys } => Some(Keyring::new(keys)),
        };
        let shared = Arc::new(Shared {
            session,
            prefix: format!("selflet/{}", config.namespace),
            max_message_bytes: config.max_message_bytes,
            keys,
            state: Mutex::default(),
        });
        let alive = format!("{}/agents/*/alive", shared.prefix);
        let weak = Arc::downgrade(&shared);
        let watch = shared
            .session
            .liveliness()
            .declare_subscriber(&alive)
            .history(true)
            .callback(move |sample| {
                if let Some(shared) = weak.upgrade() {
                    let present = sample.kind() == SampleKind::Put;
                    shared.liveliness(sample.key_expr().as_str(), present);
                }
            })
            .await
            .map_err(|e| ZenohError::Open(e.to_string()))?;
        lock(&shared.state).watch = Some(watch);
        // The subscriber's history arrives in the background; asking makes sure the agents
        // already there are known before any agent of this process joins (names are unique).
        if let Ok(replies) = shared
            .session
            .liveliness()
            .get(&alive)
            .timeout(MEMBERS_QUERY_TIMEOUT)
            .await
        {
            while let Ok(reply) = replies.recv_async().await {
                if let Ok(sample) = reply.result() {
                    shared.liveliness(sample.key_expr().as_str(), true);
                }
            }
        }
        Ok(Zenoh { shared })
    }

    /// The key prefix, `selflet/<namespace>`.
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// The keys of this process's agents and their peers, in secure mode.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.shared.keys.as_ref()
    }

    /// How many other Zenoh nodes (peers and routers) this session is connected to now.
    pub async fn connections(&self) -> usize {
        let info = self.shared.session.info();
        info.peers_zid().await.count() + info.routers_zid().await.count()
    }

    /// Closes the session: the process's agents disappear from the network at once (their
    /// peers see them leave). Stop the agents first.
    pub async fn close(&self) {
        let watch = lock(&self.shared.state).watch.take();
        drop(watch);
        if let Err(e) = self.shared.session.close().await {
            tracing::warn!("closing the Zenoh session: {e}");
        }
    }
}

/// Zenoh's own configuration from ours.
fn zenoh_config(config: &ZenohConfig) -> Result<zenoh::Config, ZenohError> {
    let json = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    let mut z = zenoh::Config::default();
    let settings = [
        ("mode", format!("\"{}\"", config.mode.name())),
        ("listen/endpoints", json(&config.listen)),
        ("connect/endpoints", json(&config.connect)),
        (
            "scouting/multicast/enabled",
            config.multicast_scouting.to_string(),
        ),
    ];
    for (key, value) in settings {
        z.insert_json5(key, &value).map_err(|e| {
            ZenohError::Config(vec![ConfigError::Zenoh {
                setting: key.to_owned(),
                reason: e.to_string(),
            }])
        })?;
    }
    Ok(z)
}

impl Shared {
    fn agent_key(&self, agent: &str, what: &str) -> String {
        format!("{}/agents/{agent}/{what}", self.prefix)
    }

    fn reject(&self, key: &str, why: Refusal, reason: &str) {
        lock(&self.state).counters.reject(why);
        tracing::warn!(%key, refusal = %why, "message rejected: {reason}");
    }

    fn is_member(&self, agent: &str) -> bool {
        let state = lock(&self.state);
        state.local.contains_key(agent) || state.remote.contains(agent)
    }

    /// A liveliness token appeared or disappeared.
    fn liveliness(&self, key: &str, present: bool) {
        let Some(agent) = key
            .strip_prefix(&self.prefix)
            .and_then(|k| k.strip_prefix("/agents/"))
            .and_then(|k| k.strip_suffix("/alive"))
            .filter(|a| is_valid_name(a))
        else {
            return;
        };
        let mut state = lock(&self.state);
        if state.local.contains_key(agent) {
            return;
        }
        if present && state.remote.len() >= MAX_REMOTE_MEMBERS {
            state.counters.reject(Refusal::TooManyMembers);
            return;
        }
        let changed = if present {
            state.remote.insert(agent.to_owned())
        } else {
            state.remote.remove(agent)
        };
        if !changed {
            return;
        }
        let change = if present {
            MemberChange::Joined(agent.to_owned())
        } else {
            MemberChange::Left(agent.to_owned())
        };
        for local in state.local.values() {
            let _ = local.changes.try_send(change.clone());
        }
    }
}

impl Transport for Zenoh {
    fn join(&self, agent: &str) -> Result<Membership, JoinError> {
        let shared = &self.shared;
        if let Some(keys) = &shared.keys {
            keys.own_key(agent)
                .map_err(|e| JoinError::Failed(format!("agent `{agent}` has no key: {e}")))?;
        }
        let (inbox_tx, inbox) = inbox();
        let (changes_tx, changes) = async_channel::unbounded();
        {
            let mut state = lock(&shared.state);
            if state.local.contains_key(agent) || state.remote.contains(agent) {
                return Err(JoinError::NameTaken(agent.to_owned()));
            }
            // The agents already there are news to the newcomer as much as later arrivals.
            for other in &state.remote {
                let _ = changes_tx.try_send(MemberChange::Joined(other.clone()));
            }
            state.local.insert(
                agent.to_owned(),
                Local {
                    inbox: inbox_tx,
                    changes: changes_tx,
                    offers: HashMap::new(),
                    declared: Vec::new(),
                },
            );
        }
        // Declarations call back into this transport (a local token is seen by the local
        // liveliness subscriber), so they happen outside the state's lock.
        let declared = declare_agent(shared, agent);
        let mut state = lock(&shared.state);
        match (declared, state.local.get_mut(agent)) {
            (Ok(d), Some(local)) => local.declared = d,
            (Err(e), _) => {
                let gone = state.local.remove(agent);
                drop(state);
                drop(gone);
                return Err(JoinError::Failed(e));
            }
            (Ok(_), None) => return Err(JoinError::Failed("left while joining".into())),
        }
        drop(state);
        let weak = Arc::downgrade(shared);
        let name = agent.to_owned();
        Ok(Membership::new(inbox, changes, move || {
            let Some(shared) = weak.upgrade() else {
                return;
            };
            let mut state = lock(&shared.state);
            let gone = state.local.remove(&name);
            // Its unanswered queries end now: their requesters learn it at once.
            let queries: Vec<Query> = state
                .queries
                .extract_if(|(to, _, _), _| *to == name)
                .map(|(_, q)| q)
                .collect();
            // Dropped outside the lock: dropping a query or a declaration calls into Zenoh,
            // which may call back into this transport.
            drop(state);
            drop(queries);
            if let Some(local) = &gone {
                local.inbox.close();
            }
            drop(gone);
        }))
    }

    fn send(&self, envelope: super::Envelope) -> Result<(), super::SendError> {
        self.shared.send(envelope)
    }

    fn publish(&self, service: &str, envelope: super::Envelope) -> usize {
        self.shared.publish(service, envelope)
    }

    fn broadcast(&self, envelope: super::Envelope) -> usize {
        self.members()
            .into_iter()
            .filter(|m| *m != envelope.from)
            .filter(|m| {
                let mut e = envelope.clone();
                e.to = m.clone();
                self.send(e).is_ok()
            })
            .count()
    }

    fn offer(&self, agent: &str, service: &str, offered: bool) {
        self.shared.offer(agent, service, offered);
    }

    fn members(&self) -> Vec<Name> {
        let state = lock(&self.shared.state);
        let all: BTreeSet<&String> = state.local.keys().chain(&state.remote).collect();
        all.into_iter().map(Name::from).collect()
    }

    fn is_member(&self, agent: &str) -> bool {
        self.shared.is_member(agent)
    }

    fn authenticates(&self, agent: &str) -> bool {
        self.shared
            .keys
            .as_ref()
            .is_some_and(|k| k.public_key(agent).is_some())
    }

    fn counters(&self) -> MessageCounters {
        lock(&self.shared.state).counters.snapshot()
    }
}

/// Declares a local agent: its liveliness token, request queryable and inbox subscriber.
fn declare_agent(shared: &Arc<Shared>, agent: &str) -> Result<Vec<Declared>, String> {
    let err = |e: zenoh::Error| e.to_string();
    let weak = Arc::downgrade(shared);
    let name = agent.to_owned();
    let queryable = shared
        .session
        .declare_queryable(shared.agent_key(agent, "request"))
        .callback(move |query| {
            if let Some(shared) = weak.upgrade() {
                shared.on_query(&name, query);
            }
        })
        .wait()
        .map_err(err)?;
    let weak = Arc::downgrade(shared);
    let name = agent.to_owned();
    let inbox = shared
        .session
        .declare_subscriber(shared.agent_key(agent, "inbox"))
        .callback(move |sample| {
            if let Some(shared) = weak.upgrade() {
                shared.on_inbox(&name, &sample);
            }
        })
        .wait()
        .map_err(err)?;
    // The token last: an agent is announced only once it can be reached.
    let token = shared
        .session
        .liveliness()
        .declare_token(shared.agent_key(agent, "alive"))
        .wait()
        .map_err(err)?;
    // Dropped in order: the agent is seen leaving before it stops listening.
    Ok(vec![
        Declared::Token(token),
        Declared::Queryable(queryable),
        Declared::Subscriber(inbox),
    ])
}
