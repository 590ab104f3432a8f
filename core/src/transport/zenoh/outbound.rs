//! What local agents send: replies as answers to their queries, requests as queries, the
//! rest put on the receiver's inbox key or published on a service key.

use std::sync::Arc;

use zenoh::Wait;
use zenoh::query::{ConsolidationMode, QueryTarget};

use super::inbound::Answer;
use super::{REQUEST_LIFETIME, Shared};
use crate::sync::lock;
use crate::transport::{Envelope, Message, SendError};

impl Shared {
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

    /// The tag proving `env`'s sender, in secure mode.
    fn tag(&self, env: &Envelope, bytes: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let Some(keys) = &self.keys else {
            return Ok(None);
        };
        keys.tag(&env.from, &env.to, bytes)
            .map(|t| Some(t.to_vec()))
            .ok_or_else(|| format!("no public key of `{}` in {}", env.to, keys.dir().display()))
    }

    fn count(&self, env: &Envelope) {
        lock(&self.state)
            .counters
            .record(env.body.kind(), &env.from, &env.to);
    }

    pub(super) fn send(self: &Arc<Self>, envelope: Envelope) -> Result<(), SendError> {
        let fail = |env: Envelope, reason: String| {
            lock(&self.state).counters.undelivered += 1;
            Err(SendError::Failed(Box::new(env), reason))
        };
        let prepared = self
            .encode(&envelope)
            .and_then(|bytes| Ok((self.tag(&envelope, &bytes)?, bytes)));
        let (tag, bytes) = match prepared {
            Ok(p) => p,
            Err(reason) => return fail(envelope, reason),
        };
        let sent = match &envelope.body {
            Message::Reply(_) => self.answer(&envelope, bytes, tag),
            _ if !self.is_member(&envelope.to) => {
                lock(&self.state).counters.undelivered += 1;
                return Err(SendError::Unknown(Box::new(envelope)));
            }
            Message::Request { .. } => self.query(&envelope, bytes, tag),
            _ => self
                .session
                .put(self.agent_key(&envelope.to, "inbox"), bytes)
                .attachment(tag)
                .wait()
                .map_err(|e| e.to_string()),
        };
        match sent {
            Ok(()) => {
                self.count(&envelope);
                Ok(())
            }
            Err(reason) => fail(envelope, reason),
        }
    }

    /// A reply answers the query its request came by.
    fn answer(&self, env: &Envelope, bytes: Vec<u8>, tag: Option<Vec<u8>>) -> Result<(), String> {
        let slot = (env.from.clone(), env.to.clone(), env.id);
        let query = lock(&self.state).queries.remove(&slot);
        let Some(query) = query else {
            return Err(format!(
                "request {} of `{}` is not waiting any more",
                env.id, env.to
            ));
        };
        let key = query.key_expr().clone();
        query
            .reply(key, bytes)
            .attachment(tag)
            .wait()
            .map_err(|e| e.to_string())
    }

    /// A request goes as a query; its answer comes back through an [`Answer`].
    fn query(
        self: &Arc<Self>,
        env: &Envelope,
        bytes: Vec<u8>,
        tag: Option<Vec<u8>>,
    ) -> Result<(), String> {
        let answer = Answer::new(self, &env.from, &env.to, env.id);
        self.session
            .get(self.agent_key(&env.to, "request"))
            .payload(bytes)
            .attachment(tag)
            .target(QueryTarget::All)
            .consolidation(ConsolidationMode::None)
            .timeout(REQUEST_LIFETIME)
            .callback(move |reply| answer.on_reply(reply))
            .wait()
            .map_err(|e| e.to_string())
    }

    pub(super) fn publish(&self, service: &str, envelope: Envelope) -> usize {
        let key = format!(
            "{}/services/{service}/{}",
            self.prefix,
            envelope.body.kind()
        );
        let Ok(bytes) = self.encode(&envelope) else {
            lock(&self.state).counters.undelivered += 1;
            return 0;
        };
        // One publisher per key, kept: its matching status tells, without a round trip,
        // whether anybody is known to offer the service.
        let cached = lock(&self.state).publishers.get(&key).cloned();
        let publisher = match cached {
            Some(p) => p,
            None => match self.session.declare_publisher(key.clone()).wait() {
                Ok(p) => lock(&self.state)
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
        let others = !lock(&self.state).remote.is_empty();
        match publisher.put(bytes).wait() {
            Ok(()) if matching || others => {
                self.count(&envelope);
                1
            }
            _ => 0,
        }
    }

    /// Declares (or withdraws) `agent`'s subscription to publications about `service`.
    pub(super) fn offer(self: &Arc<Self>, agent: &str, service: &str, offered: bool) {
        let known = lock(&self.state)
            .local
            .get(agent)
            .map(|l| l.offers.contains_key(service));
        match (known, offered) {
            (Some(false), true) => {
                let key = format!("{}/services/{service}/*", self.prefix);
                let weak = Arc::downgrade(self);
                let name = agent.to_owned();
                let declared = self
                    .session
                    .declare_subscriber(&key)
                    .callback(move |sample| {
                        if let Some(shared) = weak.upgrade() {
                            shared.on_service(&name, &sample);
                        }
                    })
                    .wait();
                match declared {
                    Ok(sub) => {
                        let mut state = lock(&self.state);
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
                let sub = lock(&self.state)
                    .local
                    .get_mut(agent)
                    .and_then(|l| l.offers.remove(service));
                drop(sub);
            }
            _ => {}
        }
    }
}
