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
//! is gone, or it never was there) ends the requester's call with a failure at once.
//! Liveliness tokens tell every process which agents are alive; their appearance and
//! disappearance reach the agents as [`MemberChange`]s.
//!
//! Incoming payloads are checked before anything else reads them: larger than the configured
//! limit, not a selflet envelope, or a reply from an agent that was not asked — the message is
//! dropped, counted in [`MessageCounters::rejected`], and logged; the agent never sees it.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_channel::Sender;
use zenoh::Wait;
use zenoh::bytes::ZBytes;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::query::{ConsolidationMode, Query, QueryTarget, Queryable};
use zenoh::sample::SampleKind;

use super::{
    Envelope, INBOX_CAPACITY, JoinError, MemberChange, Membership, Message, MessageCounters, Reply,
    SendError, Transport, ZenohConfig,
};
use crate::name::is_valid_name;
use crate::sync::lock;

/// How long a request may wait for its reply at the most. Each agent's own negotiation
/// time-out ends its calls much sooner; this only bounds what the transport keeps.
const REQUEST_LIFETIME: Duration = Duration::from_secs(600);

/// How long opening waits to hear which agents are already there.
const MEMBERS_QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the Zenoh transport could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZenohError {
    /// The settings are wrong.
    #[error("invalid Zenoh settings: {}", .0.join("; "))]
    Config(Vec<String>),
    /// Zenoh refused to open (an endpoint already in use, an unreachable router, ...).
    #[error("cannot open the Zenoh session: {0}")]
    Open(String),
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
/// use selflet_core::transport::{Zenoh, ZenohConfig};
///
/// let config = ZenohConfig {
///     connect: vec!["tcp/127.0.0.1:7447".into()],
///     namespace: "home".into(),
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
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    local: HashMap<String, Local>,
    remote: BTreeSet<String>,
    // Requests received by query and not answered yet: (provider, requester, id).
    queries: HashMap<(String, String, u64), Query>,
    // Requests sent by query and not answered yet: (requester, provider, id).
    asked: BTreeSet<(String, String, u64)>,
    publishers: HashMap<String, Arc<Publisher<'static>>>,
    counters: MessageCounters,
    // Declarations that keep the process's liveliness subscriber alive.
    watch: Option<Subscriber<()>>,
}

/// A local agent and what keeps it declared; dropping it undeclares everything.
struct Local {
    inbox: Sender<Envelope>,
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
        let shared = Arc::new(Shared {
            session,
            prefix: format!("selflet/{}", config.namespace),
            max_message_bytes: config.max_message_bytes,
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
        z.insert_json5(key, &value)
            .map_err(|e| ZenohError::Config(vec![format!("{key}: {e}")]))?;
    }
    Ok(z)
}

impl Shared {
    fn agent_key(&self, agent: &str, what: &str) -> String {
        format!("{}/agents/{agent}/{what}", self.prefix)
    }

    /// A liveliness token appeared or disappeared.
    fn liveliness(&self, key: &str, present: bool) {
        let Some(agent) = key
            .strip_prefix(&self.prefix)
            .and_then(|k| k.strip_prefix("/agents/"))
            .and_then(|k| k.strip_suffix("/alive"))
        else {
            return;
        };
        let mut state = lock(&self.state);
        if state.local.contains_key(agent) {
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

    /// Reads an incoming payload, or says why it is thrown away.
    fn decode(&self, payload: &ZBytes) -> Result<Envelope, String> {
        if payload.len() > self.max_message_bytes {
            return Err(format!(
                "{} bytes, above the limit of {}",
                payload.len(),
                self.max_message_bytes
            ));
        }
        let env: Envelope = serde_json::from_slice(&payload.to_bytes())
            .map_err(|e| format!("not a selflet envelope: {e}"))?;
        if !is_valid_name(&env.from) {
            return Err(format!("`{}` is not an agent name", env.from));
        }
        Ok(env)
    }

    fn reject(&self, key: &str, reason: &str) {
        lock(&self.state).counters.rejected += 1;
        tracing::warn!(%key, "message rejected: {reason}");
    }

    /// Puts an envelope in a local agent's inbox.
    fn deliver(&self, env: Envelope) -> Result<(), String> {
        let inbox = lock(&self.state)
            .local
            .get(&env.to)
            .map(|l| l.inbox.clone())
            .ok_or_else(|| format!("no agent `{}` here", env.to))?;
        if inbox.len() >= INBOX_CAPACITY {
            lock(&self.state).counters.undelivered += 1;
            return Err(format!("the inbox of `{}` is full", env.to));
        }
        inbox
            .try_send(env)
            .map_err(|e| format!("the inbox of `{}` is closed", e.into_inner().to))
    }

    fn count(&self, env: &Envelope) {
        lock(&self.state)
            .counters
            .record(env.body.kind(), &env.from, &env.to);
    }

    fn encode(&self, env: &Envelope) -> Result<Vec<u8>, String> {
        let bytes = serde_json::to_vec(env).map_err(|e| e.to_string())?;
        if bytes.len() > self.max_message_bytes {
            return Err(format!(
                "the message is {} bytes, above the limit of {}",
                bytes.len(),
                self.max_message_bytes
            ));
        }
        Ok(bytes)
    }

    fn is_member(&self, agent: &str) -> bool {
        let state = lock(&self.state);
        state.local.contains_key(agent) || state.remote.contains(agent)
    }

    /// A request arrived by query for local agent `agent`.
    fn on_query(&self, agent: &str, query: Query) {
        let key = query.key_expr().as_str().to_owned();
        let env = match query.payload().map(|p| self.decode(p)) {
            None => Err("a request without a payload".to_owned()),
            Some(Err(e)) => Err(e),
            Some(Ok(env)) if !matches!(env.body, Message::Request { .. }) => Err(format!(
                "a {} sent as a query; only requests are",
                env.body.kind()
            )),
            Some(Ok(env)) => Ok(env),
        };
        let mut env = match env {
            Ok(env) => env,
            Err(reason) => {
                self.reject(&key, &reason);
                let _ = query.reply_err(reason).wait();
                return;
            }
        };
        // The key says whom it is for, whatever the payload claims.
        env.to = agent.to_owned();
        let slot = (agent.to_owned(), env.from.clone(), env.id);
        lock(&self.state).queries.insert(slot.clone(), query);
        if let Err(reason) = self.deliver(env) {
            let query = lock(&self.state).queries.remove(&slot);
            if let Some(query) = query {
                let _ = query.reply_err(reason).wait();
            }
        }
    }

    /// A one-way message arrived on `key` for local agent `agent`.
    fn on_sample(&self, agent: &str, key: &str, payload: &ZBytes) {
        match self.decode(payload) {
            Ok(mut env) => {
                if env.from == agent {
                    return; // its own publication
                }
                env.to = agent.to_owned();
                if let Err(e) = self.deliver(env) {
                    tracing::debug!(%key, "not delivered: {e}");
                }
            }
            Err(reason) => self.reject(key, &reason),
        }
    }
}

/// The requester's side of one request sent by query. Zenoh calls it with each answer, on its
/// own threads, and drops it when the query is over: an answer goes straight to the
/// requester's inbox, and a query over with no answer (nobody by that name, or its process
/// went away with the request) becomes a failure reply at once.
struct Answer {
    shared: Weak<Shared>,
    ask: (String, String, u64),
}

impl Answer {
    fn on_reply(&self, reply: zenoh::query::Reply) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let (_, provider, id) = &self.ask;
        let body = match reply.into_result() {
            Ok(sample) => match shared.decode(sample.payload()) {
                Ok(env)
                    if env.from == *provider
                        && env.id == *id
                        && matches!(env.body, Message::Reply(_)) =>
                {
                    env.body
                }
                Ok(_) => {
                    shared.reject(sample.key_expr().as_str(), "not the reply asked for");
                    failed(&format!("`{provider}` answered with something else"))
                }
                Err(reason) => {
                    shared.reject(sample.key_expr().as_str(), &reason);
                    failed(&format!("`{provider}` answered unreadably: {reason}"))
                }
            },
            Err(e) => failed(&format!(
                "`{provider}` could not take the request: {}",
                String::from_utf8_lossy(&e.payload().to_bytes())
            )),
        };
        self.answer(&shared, body);
    }

    /// Hands the requester its answer, unless it had one already.
    fn answer(&self, shared: &Shared, body: Message) {
        if !lock(&shared.state).asked.remove(&self.ask) {
            return;
        }
        let (requester, provider, id) = self.ask.clone();
        let env = Envelope {
            from: provider,
            to: requester,
            id,
            body,
        };
        if let Err(e) = shared.deliver(env) {
            tracing::debug!("reply not delivered: {e}");
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            let reason = format!("`{}` is gone; the request got no answer", self.ask.1);
            self.answer(&shared, failed(&reason));
        }
    }
}

fn failed(reason: &str) -> Message {
    Message::Reply(Reply::Failed(reason.to_owned()))
}

impl Transport for Zenoh {
    fn join(&self, agent: &str) -> Result<Membership, JoinError> {
        let shared = &self.shared;
        let (inbox_tx, inbox) = async_channel::unbounded();
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
            state.asked.retain(|(from, _, _)| *from != name);
            drop(state);
            drop(queries);
            drop(gone);
        }))
    }

    fn send(&self, envelope: Envelope) -> Result<(), SendError> {
        let shared = &self.shared;
        let fail = |env: Envelope, reason: String| {
            lock(&shared.state).counters.undelivered += 1;
            Err(SendError::Failed(Box::new(env), reason))
        };
        let bytes = match shared.encode(&envelope) {
            Ok(b) => b,
            Err(reason) => return fail(envelope, reason),
        };
        if let Message::Reply(_) = envelope.body {
            let query = lock(&shared.state).queries.remove(&(
                envelope.from.clone(),
                envelope.to.clone(),
                envelope.id,
            ));
            if let Some(query) = query {
                let key = query.key_expr().clone();
                return match query.reply(key, bytes).wait() {
                    Ok(()) => {
                        shared.count(&envelope);
                        Ok(())
                    }
                    Err(e) => fail(envelope, e.to_string()),
                };
            }
            // Not asked by query (a client that put its request): answered in its inbox.
        }
        if !shared.is_member(&envelope.to) {
            lock(&shared.state).counters.undelivered += 1;
            return Err(SendError::Unknown(Box::new(envelope)));
        }
        if let Message::Request { .. } = envelope.body {
            let ask = (envelope.from.clone(), envelope.to.clone(), envelope.id);
            // Asked before the query leaves: its answer may come back at once.
            lock(&shared.state).asked.insert(ask.clone());
            let answer = Answer {
                shared: Arc::downgrade(shared),
                ask: ask.clone(),
            };
            let sent = shared
                .session
                .get(shared.agent_key(&envelope.to, "request"))
                .payload(bytes)
                .target(QueryTarget::All)
                .consolidation(ConsolidationMode::None)
                .timeout(REQUEST_LIFETIME)
                .callback(move |reply| answer.on_reply(reply))
                .wait();
            return match sent {
                Ok(()) => {
                    shared.count(&envelope);
                    Ok(())
                }
                Err(e) => {
                    lock(&shared.state).asked.remove(&ask);
                    fail(envelope, e.to_string())
                }
            };
        }
        match shared
            .session
            .put(shared.agent_key(&envelope.to, "inbox"), bytes)
            .wait()
        {
            Ok(()) => {
                shared.count(&envelope);
                Ok(())
            }
            Err(e) => fail(envelope, e.to_string()),
        }
    }

    fn publish(&self, service: &str, envelope: Envelope) -> usize {
        let shared = &self.shared;
        let key = format!(
            "{}/services/{service}/{}",
            shared.prefix,
            envelope.body.kind()
        );
        let Ok(bytes) = shared.encode(&envelope) else {
            lock(&shared.state).counters.undelivered += 1;
            return 0;
        };
        // One publisher per key, kept: its matching status tells, without a round trip,
        // whether anybody is known to offer the service.
        let cached = lock(&shared.state).publishers.get(&key).cloned();
        let publisher = match cached {
            Some(p) => p,
            None => match shared.session.declare_publisher(key.clone()).wait() {
                Ok(p) => lock(&shared.state)
                    .publishers
                    .entry(key)
                    .or_insert(Arc::new(p))
                    .clone(),
                Err(e) => {
                    tracing::warn!("cannot publish on `{service}`: {e}");
                    return 0;
                }
            },
        };
        // Matching is eventually consistent: an agent that just appeared may not have its
        // offers' subscribers known here yet, but it announces its offers to everyone when
        // it starts. So with other agents around, the requester waits for adverts.
        let matching = publisher
            .matching_status()
            .wait()
            .map(|m| m.matching())
            .unwrap_or(true);
        let others = !lock(&shared.state).remote.is_empty();
        match publisher.put(bytes).wait() {
            Ok(()) if matching || others => {
                shared.count(&envelope);
                1
            }
            _ => 0,
        }
    }

    fn broadcast(&self, envelope: Envelope) -> usize {
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
        let shared = &self.shared;
        let known = lock(&shared.state)
            .local
            .get(agent)
            .map(|l| l.offers.contains_key(service));
        match (known, offered) {
            (Some(false), true) => {
                let key = format!("{}/services/{service}/*", shared.prefix);
                let weak = Arc::downgrade(shared);
                let name = agent.to_owned();
                let declared = shared
                    .session
                    .declare_subscriber(&key)
                    .callback(move |sample| {
                        if let Some(shared) = weak.upgrade() {
                            shared.on_sample(&name, sample.key_expr().as_str(), sample.payload());
                        }
                    })
                    .wait();
                match declared {
                    Ok(sub) => {
                        let mut state = lock(&shared.state);
                        let extra = match state.local.get_mut(agent) {
                            Some(l) => l.offers.insert(service.to_owned(), sub),
                            None => Some(sub),
                        };
                        drop(state);
                        drop(extra);
                    }
                    Err(e) => tracing::warn!(%agent, %service, "cannot declare the offer: {e}"),
                }
            }
            (Some(true), false) => {
                let sub = lock(&shared.state)
                    .local
                    .get_mut(agent)
                    .and_then(|l| l.offers.remove(service));
                drop(sub);
            }
            _ => {}
        }
    }

    fn members(&self) -> Vec<String> {
        let state = lock(&self.shared.state);
        let all: BTreeSet<&String> = state.local.keys().chain(&state.remote).collect();
        all.into_iter().cloned().collect()
    }

    fn counters(&self) -> MessageCounters {
        lock(&self.shared.state).counters.clone()
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
                shared.on_sample(&name, sample.key_expr().as_str(), sample.payload());
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
