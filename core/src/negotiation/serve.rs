//! Serving the inbox: replies and requests as they are delivered; one-way messages by a loop
//! that checks every delivery and hands it to the part it is for.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{AttemptError, LearnError, Negotiator};
use crate::name::Name;
use crate::trace::{self, TraceId};
use crate::transport::{Envelope, Inbox, Incoming, Message, Refusal, Reply, Sink, TeachingPackage};

impl Negotiator {
    /// Serves `inbox` from now on: replies and requests as they are delivered, the rest by a
    /// task made at the first queued delivery (an agent nobody sends anything keeps no task
    /// waiting), which serves it until `stop`.
    pub(crate) fn serve_inbox(
        self: &Arc<Self>,
        inbox: &Inbox,
        stop: CancellationToken,
        work: TaskTracker,
    ) {
        let runtime = tokio::runtime::Handle::current();
        let serving = Serving {
            work: work.clone(),
            runtime: runtime.clone(),
        };
        let _ = self.serving.set(serving);
        // Weak: the hooks live in the inbox, which the transport (held by the negotiator)
        // keeps.
        let negotiator = Arc::downgrade(self);
        inbox.sink(negotiator.clone());
        inbox.on_first_delivery(move |inbox| {
            if let Some(n) = negotiator.upgrade() {
                runtime.spawn(n.serve(inbox, stop, work));
            }
        });
    }

    /// Handles what arrives in the inbox until the agent stops.
    async fn serve(self: Arc<Self>, inbox: Inbox, stop: CancellationToken, work: TaskTracker) {
        // Made once: a new one each turn registered with the token and dropped again, for
        // every message. Checked first, so that a flood of messages cannot keep it unheard.
        let stopped = stop.cancelled();
        tokio::pin!(stopped);
        loop {
            let incoming = tokio::select! {
                biased;
                _ = &mut stopped => break,
                next = inbox.recv() => match next {
                    Some(next) => next,
                    None => break,
                },
            };
            match incoming {
                Incoming::Unanswered {
                    provider,
                    id,
                    reason,
                } => self.answered(&provider, id, Err(AttemptError::Unreachable(reason))),
                // A reply only wakes the call waiting for it: no future, no trace to enter.
                Incoming::Message {
                    envelope:
                        Envelope {
                            from,
                            id,
                            body: Message::Reply(reply),
                            ..
                        },
                    verified,
                } => self.on_reply(&from, id, reply, verified),
                // A request delivered before the sink was set: admitted here, and answered here
                // if that needs no waiting, else as a task of its own.
                Incoming::Message {
                    envelope:
                        envelope @ Envelope {
                            body: Message::Request { .. },
                            ..
                        },
                    ..
                } => self.take_request(envelope, &work),
                Incoming::Message { envelope, verified } => {
                    let trace = TraceId::from_raw(envelope.trace);
                    let Some((from, pkg)) = self.handle(envelope) else {
                        continue;
                    };
                    // Boxed: learning is rare and its future kilobytes, which the loop of
                    // every agent, idle ones included, would otherwise hold for good.
                    let learning = Box::pin(self.on_lesson(&from, pkg, verified));
                    match trace {
                        Some(id) => trace::scope(id, learning).await,
                        None => learning.await,
                    }
                }
            }
        }
    }

    /// Handles a one-way message, inside the trace it belongs to if any, but for a lesson
    /// from a member this agent talks to, which it returns to be learned. Everything else is
    /// handled here and now: a gossip round brings each agent a few messages, and none of
    /// them waits for anything.
    fn handle(&self, env: Envelope) -> Option<(Name, TeachingPackage)> {
        let Envelope {
            from, body, trace, ..
        } = env;
        // One-way messages change what this agent believes: only from members it talks to.
        if !self.transport.is_member(&from) {
            self.refuse(Refusal::NotMember, &from, body.kind());
            return None;
        }
        if !self.talks_to(&from) {
            self.refuse(Refusal::NotNeighbour, &from, body.kind());
            return None;
        }
        let body = match body {
            Message::Lesson(pkg) => return Some((from, *pkg)),
            body => body,
        };
        let handle = || match body {
            Message::Advert { services } => self.on_advert(&from, services),
            Message::Gossip { entries } => self.on_gossip(&from, &entries),
            Message::Discover { service } => self.on_discover(&from, &service),
            Message::Load { utilization } => self.on_load(&from, utilization),
            // Requests and replies are taken by the serving loop and never dispatched.
            Message::Lesson(_) | Message::Request { .. } | Message::Reply(_) => {}
        };
        match TraceId::from_raw(trace) {
            Some(id) => trace::in_scope(id, handle),
            None => handle(),
        }
        None
    }

    /// A reply reaches the request waiting for it. Code from a sender the transport did not
    /// authenticate is refused here, before the requester sees it.
    fn on_reply(&self, from: &str, id: u64, reply: Reply, verified: bool) {
        let answer = match reply {
            Reply::Teach(_) if !verified || !self.trusts_teacher(from) => {
                self.refuse(Refusal::UntrustedTeacher, from, "teaching package");
                Err(AttemptError::NotLearned(LearnError::Untrusted {
                    teacher: from.to_owned(),
                }))
            }
            reply => Ok(reply),
        };
        self.answered(from, id, answer);
    }

    /// Hands a request to the provider's side.
    fn take_request(self: &Arc<Self>, envelope: Envelope, work: &TaskTracker) {
        let Envelope {
            from,
            id,
            trace,
            body:
                Message::Request {
                    service,
                    modes,
                    input,
                    hops,
                },
            ..
        } = envelope
        else {
            return;
        };
        let request = super::provider::Request {
            from,
            id,
            service,
            modes,
            input,
            hops,
        };
        self.on_request(request, TraceId::from_raw(trace), work);
    }
}

impl Sink for Negotiator {
    fn reply(&self, envelope: Envelope, verified: bool) {
        if let Message::Reply(reply) = envelope.body {
            self.on_reply(&envelope.from, envelope.id, reply, verified);
        }
    }

    /// A request is answered as it arrives, on the deliverer's thread, if that needs no
    /// waiting, else handed to a task there: a call then makes no task hop at the provider
    /// (within a process, none at all), and one that waits makes none through the serving
    /// task.
    fn request(self: Arc<Self>, envelope: Envelope, _verified: bool) {
        // Set before the sink is registered (`serve_inbox`): never missing here.
        let Some(serving) = self.serving.get() else {
            return;
        };
        // The deliverer's thread may be another runtime's (Zenoh's own): the answer, and any
        // task or timer it makes, belong to the agent's.
        let _runtime = serving.runtime.enter();
        self.take_request(envelope, &serving.work);
    }
}

/// What answering requests off the serving task needs: where its work is tracked, and the
/// runtime it runs on.
pub(super) struct Serving {
    work: TaskTracker,
    runtime: tokio::runtime::Handle,
}
