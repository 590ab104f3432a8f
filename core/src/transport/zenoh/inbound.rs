//! What arrives from the Zenoh network: checked, then delivered to a local agent's inbox.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Weak};

use zenoh::Wait;
use zenoh::bytes::ZBytes;
use zenoh::query::Query;
use zenoh::sample::Sample;

use super::{MAX_OPEN_QUERIES, Shared};
use crate::name::{Name, is_valid_name};
use crate::sync::lock;
use crate::transport::{Envelope, Incoming, Message, Refusal};

/// How many answers to one query are looked at; a queryable that answers more is ignored.
const MAX_ANSWERS: u8 = 4;

/// An incoming message that did not pass, and why.
struct Rejected(Refusal, String);

impl Shared {
    /// Reads an incoming payload, or says why it is thrown away.
    fn decode(&self, payload: &ZBytes) -> Result<Envelope, Rejected> {
        if payload.len() > self.max_message_bytes {
            let reason = format!(
                "{} bytes, above the limit of {}",
                payload.len(),
                self.max_message_bytes
            );
            return Err(Rejected(Refusal::Oversized, reason));
        }
        let env: Envelope = serde_json::from_slice(&payload.to_bytes())
            .map_err(|e| Rejected(Refusal::Malformed, format!("not a selflet envelope: {e}")))?;
        if !is_valid_name(&env.from) {
            let reason = format!("`{}` is not an agent name", env.from);
            return Err(Rejected(Refusal::Malformed, reason));
        }
        Ok(env)
    }

    /// In secure mode, checks that `payload` comes from `from` for local agent `to`; in open
    /// mode nothing is proven. Returns whether the sender is verified.
    fn authenticate(
        &self,
        from: &str,
        to: &str,
        payload: &ZBytes,
        tag: Option<&ZBytes>,
    ) -> Result<bool, Rejected> {
        let Some(keys) = &self.keys else {
            return Ok(false);
        };
        let tag = tag.map(ZBytes::to_bytes).unwrap_or_default();
        keys.verify(from, to, &payload.to_bytes(), &tag)
            .map(|()| true)
            .map_err(|why| Rejected(why, format!("not proven to come from `{from}`")))
    }

    /// A request arrived by query for local agent `agent`.
    pub(super) fn on_query(&self, agent: &str, query: Query) {
        let key = query.key_expr().as_str().to_owned();
        match self.accept_query(agent, &query) {
            Ok((env, verified)) => self.hold_query(agent, env, verified, query),
            Err(Rejected(why, reason)) => {
                self.reject(&key, why, &reason);
                let _ = query.reply_err(reason).wait();
            }
        }
    }

    fn accept_query(&self, agent: &str, query: &Query) -> Result<(Envelope, bool), Rejected> {
        let payload = query
            .payload()
            .ok_or_else(|| Rejected(Refusal::Malformed, "a request without a payload".into()))?;
        let mut env = self.decode(payload)?;
        if !matches!(env.body, Message::Request { .. }) {
            let reason = format!("a {} sent as a query; only requests are", env.body.kind());
            return Err(Rejected(Refusal::Malformed, reason));
        }
        let verified = self.authenticate(&env.from, agent, payload, query.attachment())?;
        // The key says whom it is for, whatever the payload claims.
        env.to = agent.into();
        Ok((env, verified))
    }

    /// Keeps a request's query until its reply answers it, and hands the request to the
    /// agent. A second request with the id of one still waiting is refused, not put in its
    /// place: the first requester would never hear back.
    fn hold_query(&self, agent: &str, env: Envelope, verified: bool, query: Query) {
        let slot = (Name::from(agent), env.from.clone(), env.id);
        let refused = {
            let mut state = lock(&self.state);
            if state.queries.contains_key(&slot) {
                state.counters.reject(Refusal::DuplicateRequest);
                Some((query, "a request with this id is in flight already"))
            } else if state.queries.len() >= MAX_OPEN_QUERIES {
                state.counters.reject(Refusal::InboxFull);
                Some((query, "too many requests in flight here"))
            } else {
                state.queries.insert(slot.clone(), query);
                None
            }
        };
        if let Some((query, reason)) = refused {
            let _ = query.reply_err(reason).wait();
            return;
        }
        if let Err(reason) = self.deliver(env, verified) {
            let query = lock(&self.state).queries.remove(&slot);
            if let Some(query) = query {
                let _ = query.reply_err(reason).wait();
            }
        }
    }

    /// A message was put on local agent `agent`'s inbox key. Requests come as queries, and
    /// replies as the answers to them, so neither is accepted here.
    pub(super) fn on_inbox(&self, agent: &str, sample: &Sample) {
        let key = sample.key_expr().as_str();
        let accepted = self.decode(sample.payload()).and_then(|mut env| {
            if matches!(env.body, Message::Request { .. } | Message::Reply(_)) {
                let reason = format!("a {} put on an inbox", env.body.kind());
                return Err(Rejected(Refusal::Malformed, reason));
            }
            let verified =
                self.authenticate(&env.from, agent, sample.payload(), sample.attachment())?;
            env.to = agent.into();
            Ok((env, verified))
        });
        match accepted {
            Ok((env, verified)) => {
                if let Err(e) = self.deliver(env, verified) {
                    tracing::debug!(%key, "not delivered: {e}");
                }
            }
            Err(Rejected(why, reason)) => self.reject(key, why, &reason),
        }
    }

    /// A publication on a service key reached local agent `agent`, which offers the service.
    /// Publications have no single receiver to tag them for, so in secure mode they are taken
    /// only from agents whose key this process has — and only discovery comes this way, whose
    /// answer (an advert) goes, tagged, to that agent alone.
    pub(super) fn on_service(&self, agent: &str, sample: &Sample) {
        let key = sample.key_expr().as_str();
        let accepted = self.decode(sample.payload()).and_then(|mut env| {
            if !matches!(env.body, Message::Discover { .. }) {
                let reason = format!("a {} published on a service", env.body.kind());
                return Err(Rejected(Refusal::Malformed, reason));
            }
            if let Some(keys) = &self.keys
                && keys.public_key(&env.from).is_none()
            {
                let reason = format!("`{}` has no key here", env.from);
                return Err(Rejected(Refusal::Unauthenticated, reason));
            }
            env.to = agent.into();
            Ok(env)
        });
        match accepted {
            Ok(env) if env.from == agent => {} // its own publication
            Ok(env) => {
                if let Err(e) = self.deliver(env, false) {
                    tracing::debug!(%key, "not delivered: {e}");
                }
            }
            Err(Rejected(why, reason)) => self.reject(key, why, &reason),
        }
    }

    /// Puts an envelope in a local agent's inbox.
    pub(super) fn deliver(&self, env: Envelope, verified: bool) -> Result<(), String> {
        let inbox = lock(&self.state)
            .local
            .get(env.to.as_str())
            .map(|l| l.inbox.clone())
            .ok_or_else(|| format!("no agent `{}` here", env.to))?;
        inbox.push_message(env, verified).map_err(|(why, env)| {
            lock(&self.state).counters.reject(why);
            format!("the inbox of `{}` refused it: {why}", env.to)
        })
    }

    /// Tells a local agent that its request will get no answer.
    fn unanswered(&self, requester: &str, provider: &str, id: u64, reason: String) {
        let inbox = lock(&self.state)
            .local
            .get(requester)
            .map(|l| l.inbox.clone());
        if let Some(inbox) = inbox {
            let _ = inbox.push(Incoming::Unanswered {
                provider: provider.to_owned(),
                id,
                reason,
            });
        }
    }
}

/// The requester's side of one request sent by query. Zenoh calls it with each answer, on its
/// own threads, and drops it when the query is over: a valid answer goes straight to the
/// requester's inbox, and a query over with no valid answer (nobody by that name, its process
/// went away with the request, or only forgeries answered) tells the requester at once.
pub(super) struct Answer {
    shared: Weak<Shared>,
    requester: Name,
    provider: Name,
    id: u64,
    answered: AtomicBool,
    seen: AtomicU8,
    // In secure mode, an error answer cannot be proven to come from the provider: it does not
    // end the call, but its reason is given if no valid answer comes.
    error: std::sync::Mutex<Option<String>>,
}

impl Answer {
    pub(super) fn new(shared: &Arc<Shared>, requester: &str, provider: &str, id: u64) -> Answer {
        Answer {
            shared: Arc::downgrade(shared),
            requester: requester.into(),
            provider: provider.into(),
            id,
            answered: AtomicBool::new(false),
            seen: AtomicU8::new(0),
            error: std::sync::Mutex::default(),
        }
    }

    pub(super) fn on_reply(&self, reply: zenoh::query::Reply) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        if self.seen.fetch_add(1, Ordering::Relaxed) >= MAX_ANSWERS {
            return;
        }
        let sample = match reply.into_result() {
            Ok(sample) => sample,
            Err(e) => {
                let reason = format!(
                    "`{}` could not take the request: {}",
                    self.provider,
                    String::from_utf8_lossy(&e.payload().to_bytes())
                );
                if shared.keys.is_some() {
                    *lock(&self.error) = Some(reason);
                    return;
                }
                return self.give_up(&shared, reason);
            }
        };
        let key = sample.key_expr().as_str();
        match self.check(&shared, &sample) {
            Ok((env, verified)) => {
                if !self.answered.swap(true, Ordering::AcqRel)
                    && let Err(e) = shared.deliver(env, verified)
                {
                    tracing::debug!(%key, "reply not delivered: {e}");
                }
            }
            Err(Rejected(why, reason)) => shared.reject(key, why, &reason),
        }
    }

    /// An answer is the reply of the agent asked, to this request, proven in secure mode.
    fn check(&self, shared: &Shared, sample: &Sample) -> Result<(Envelope, bool), Rejected> {
        let mut env = shared.decode(sample.payload())?;
        if env.from != self.provider || env.id != self.id || !matches!(env.body, Message::Reply(_))
        {
            let reason = "not the reply asked for".to_owned();
            return Err(Rejected(Refusal::UnsolicitedReply, reason));
        }
        let verified = shared.authenticate(
            &env.from,
            &self.requester,
            sample.payload(),
            sample.attachment(),
        )?;
        env.to.clone_from(&self.requester);
        Ok((env, verified))
    }

    /// The provider said it cannot take the request (an error reply, from Zenoh or from its
    /// transport): the requester hears it now.
    fn give_up(&self, shared: &Shared, reason: String) {
        if !self.answered.swap(true, Ordering::AcqRel) {
            shared.unanswered(&self.requester, &self.provider, self.id, reason);
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            let reason = lock(&self.error).take().unwrap_or_else(|| {
                format!("`{}` is gone; the request got no answer", self.provider)
            });
            self.give_up(&shared, reason);
        }
    }
}
