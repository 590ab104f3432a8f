//! An agent's inbox: what transports deliver to it, in three lanes.
//!
//! Replies have a lane of their own, served first, so that a call's answer never waits
//! behind one-way traffic or other peers' requests. Requests and one-way messages (adverts,
//! lessons, loads, discovery) have a lane each, served in turn, and each sender may have only
//! so many messages queued in them: a peer that floods an agent fills its own share, not the
//! inbox, and the others' calls still get through. What does not fit is refused, counted by
//! the transport, and never blocks it.
//!
//! A running agent takes replies and requests as they are delivered (its [`Sink`]), so the
//! lanes hold them only until it starts serving; one-way messages always go through them.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::Notify;

use super::{Envelope, Message, Refusal};
use crate::sync::lock;

/// How many messages each lane holds.
pub const INBOX_CAPACITY: usize = 1024;

/// How many requests and one-way messages one sender may have waiting in an agent's inbox.
pub const PER_SENDER_QUEUED: usize = 64;

/// The capacity above which a lane, or the per-sender count, gives its memory back once
/// drained. A burst (an agent's start brings it dozens of adverts and answers) grew the
/// queues for good otherwise: massif found 37 KiB of every active agent among 2,000 held by
/// drained inbox lanes, 5 KiB by the per-sender counts.
const KEPT_AFTER_BURST: usize = 16;

/// How many senders' counts are kept at zero once their messages are read, so that the next
/// request of an agent that keeps calling does not copy its name again; beyond these, a
/// count is dropped when it reaches zero, which bounds the table by what is queued.
const KEPT_SENDERS: usize = 4;

/// Something a transport delivers to an agent.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A message from a peer.
    Message {
        /// The envelope. `from` is who the transport saw sending it.
        envelope: Envelope,
        /// Whether the transport proved that `from` sent it: always on the in-process
        /// network (one process, one trust domain), with a valid tag on the Zenoh transport in
        /// secure mode, never in open mode.
        verified: bool,
    },
    /// A request the agent sent got no answer and never will: the provider is not there, or
    /// went away with it. From the transport itself, not from a peer.
    Unanswered {
        /// The agent asked.
        provider: String,
        /// The request's id.
        id: u64,
        /// What the transport knows.
        reason: String,
    },
}

#[derive(Default)]
struct Lanes {
    // Called with the inbox at its first delivery (see `Inbox::on_first_delivery`).
    on_first: Option<FirstDelivery>,
    replies: VecDeque<Incoming>,
    requests: VecDeque<Incoming>,
    other: VecDeque<Incoming>,
    // Requests and one-way messages queued, per sender.
    // Hashed with foldhash: `SipHash` cost more than the rest of queueing a message.
    queued: HashMap<Box<str>, usize, foldhash::fast::RandomState>,
    // Which of requests and one-way messages goes first next time.
    requests_next: bool,
    closed: bool,
    // Takes replies and requests as they arrive (see `Inbox::sink`).
    sink: Option<Weak<dyn Sink>>,
}

/// Takes a peer's replies and requests on the deliverer's thread instead of queueing them for
/// the serving task (see [`Inbox::sink`]).
///
/// A transport delivers requests holding none of its own locks, so that answering one may
/// send; replies it may deliver holding them.
pub(crate) trait Sink: Send + Sync {
    /// A reply. It must be quick and must not send.
    fn reply(&self, envelope: Envelope, verified: bool);

    /// A request: answered on the spot if that needs no waiting, else handed to a task.
    fn request(self: Arc<Self>, envelope: Envelope, verified: bool);
}

type FirstDelivery = Box<dyn FnOnce(Inbox) + Send>;

struct Shared {
    lanes: Mutex<Lanes>,
    ready: Notify,
}

/// The receiving end of an agent's inbox. Clones share it.
#[derive(Clone)]
pub struct Inbox {
    shared: Arc<Shared>,
}

/// The delivering end of an agent's inbox, kept by its transport.
#[derive(Clone)]
pub struct InboxSender {
    shared: Arc<Shared>,
}

/// A new inbox: its receiving and delivering ends.
pub fn inbox() -> (InboxSender, Inbox) {
    let shared = Arc::new(Shared {
        lanes: Mutex::default(),
        ready: Notify::new(),
    });
    (
        InboxSender {
            shared: Arc::clone(&shared),
        },
        Inbox { shared },
    )
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("queued", &self.len())
            .finish()
    }
}

impl fmt::Debug for InboxSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboxSender").finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Lane {
    Replies,
    Requests,
    Other,
}

fn lane_of_message(body: &Message) -> Lane {
    match body {
        Message::Reply(_) => Lane::Replies,
        Message::Request { .. } => Lane::Requests,
        _ => Lane::Other,
    }
}

impl InboxSender {
    /// Queues `incoming` without waiting, or hands it back with the reason it was refused:
    /// the inbox is closed or its lane full ([`Refusal::InboxFull`]), or its sender already has
    /// [`PER_SENDER_QUEUED`] messages waiting ([`Refusal::Flooding`]).
    pub fn push(&self, incoming: Incoming) -> Result<(), Box<(Refusal, Incoming)>> {
        let Incoming::Message { envelope, verified } = incoming else {
            let mut lanes = lock(&self.shared.lanes);
            if let Err(why) = lanes.reserve(Lane::Replies, None) {
                return Err(Box::new((why, incoming)));
            }
            self.queue(lanes, Lane::Replies, incoming);
            return Ok(());
        };
        self.push_message(envelope, verified)
            .map_err(|(why, envelope)| {
                Box::new((
                    why,
                    Incoming::Message {
                        envelope: *envelope,
                        verified,
                    },
                ))
            })
    }

    /// Queues a peer's message; see [`InboxSender::push`]. A refused envelope is handed back.
    pub fn push_message(
        &self,
        envelope: Envelope,
        verified: bool,
    ) -> Result<(), (Refusal, Box<Envelope>)> {
        self.push_accepted(envelope, verified, |_| {})
    }

    /// [`InboxSender::push_message`], calling `accepted` with the envelope once it fits and
    /// before it is queued: a transport counts what it delivered without copying the names.
    pub(crate) fn push_accepted(
        &self,
        envelope: Envelope,
        verified: bool,
        accepted: impl FnOnce(&Envelope),
    ) -> Result<(), (Refusal, Box<Envelope>)> {
        let lane = lane_of_message(&envelope.body);
        let mut lanes = lock(&self.shared.lanes);
        if lane != Lane::Other
            && !lanes.closed
            && let Some(sink) = lanes.sink.as_ref().and_then(Weak::upgrade)
        {
            drop(lanes);
            accepted(&envelope);
            if lane == Lane::Replies {
                sink.reply(envelope, verified);
            } else {
                sink.request(envelope, verified);
            }
            return Ok(());
        }
        if let Err(why) = lanes.reserve(lane, Some(&envelope.from)) {
            return Err((why, Box::new(envelope)));
        }
        accepted(&envelope);
        self.queue(lanes, lane, Incoming::Message { envelope, verified });
        Ok(())
    }

    /// Queues a delivery that fits, wakes the receiver, and calls the first-delivery hook.
    fn queue(&self, mut lanes: MutexGuard<'_, Lanes>, lane: Lane, incoming: Incoming) {
        lanes.queue(lane).push_back(incoming);
        let first = lanes.on_first.take();
        drop(lanes);
        self.shared.ready.notify_one();
        if let Some(first) = first {
            first(Inbox {
                shared: Arc::clone(&self.shared),
            });
        }
    }

    /// Closes the inbox: what is queued can still be received, nothing more is accepted.
    pub fn close(&self) {
        lock(&self.shared.lanes).closed = true;
        self.shared.ready.notify_one();
    }
}

impl Inbox {
    /// The next delivery: replies first, then requests and one-way messages in turn. `None`
    /// once the inbox is closed and empty.
    pub async fn recv(&self) -> Option<Incoming> {
        loop {
            // Registered before looking, so a push between the look and the wait is not missed.
            let ready = self.shared.ready.notified();
            {
                let mut lanes = lock(&self.shared.lanes);
                if let Some(next) = lanes.pop() {
                    return Some(next);
                }
                if lanes.closed {
                    return None;
                }
            }
            ready.await;
        }
    }

    /// Calls `first` with this inbox when something is delivered to it — at once if something
    /// waits already. An agent's task serving its inbox is made so: most agents in a large
    /// population are never sent anything, and a task waiting costs each of them its memory.
    /// A later hook replaces one not called yet. The hook is handed the inbox rather than
    /// capturing it, so that the inbox never holds itself.
    pub fn on_first_delivery(&self, first: impl FnOnce(Inbox) + Send + 'static) {
        let mut lanes = lock(&self.shared.lanes);
        if lanes.len() == 0 {
            lanes.on_first = Some(Box::new(first));
            return;
        }
        drop(lanes);
        first(self.clone());
    }

    /// Hands peers' replies and requests to `sink` as they arrive, instead of queueing them
    /// for the serving task: a reply only wakes the request waiting for it, and most requests
    /// are answered without waiting, so going through the inbox would cost a task hop each way
    /// of a call. One-way messages, and what the transport reports itself (an unanswered
    /// request), are still queued.
    pub(crate) fn sink(&self, sink: Weak<dyn Sink>) {
        lock(&self.shared.lanes).sink = Some(sink);
    }

    /// How many deliveries wait.
    pub fn len(&self) -> usize {
        lock(&self.shared.lanes).len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Lanes {
    fn len(&self) -> usize {
        self.replies.len() + self.requests.len() + self.other.len()
    }

    fn queue(&mut self, lane: Lane) -> &mut VecDeque<Incoming> {
        match lane {
            Lane::Replies => &mut self.replies,
            Lane::Requests => &mut self.requests,
            Lane::Other => &mut self.other,
        }
    }

    /// Checks that a delivery of `sender` fits in `lane`, and counts it against the sender.
    fn reserve(&mut self, lane: Lane, sender: Option<&str>) -> Result<(), Refusal> {
        if self.closed || self.queue(lane).len() >= INBOX_CAPACITY {
            return Err(Refusal::InboxFull);
        }
        if let (Lane::Requests | Lane::Other, Some(from)) = (lane, sender) {
            match self.queued.get_mut(from) {
                Some(n) if *n >= PER_SENDER_QUEUED => return Err(Refusal::Flooding),
                Some(n) => *n += 1,
                None => {
                    self.queued.insert(from.into(), 1);
                }
            }
        }
        Ok(())
    }

    fn pop(&mut self) -> Option<Incoming> {
        let next = self.take_next();
        self.release_drained();
        next
    }

    fn take_next(&mut self) -> Option<Incoming> {
        if let Some(r) = self.replies.pop_front() {
            return Some(r);
        }
        self.requests_next = !self.requests_next;
        let next = if self.requests_next {
            self.requests.pop_front().or_else(|| self.other.pop_front())
        } else {
            self.other.pop_front().or_else(|| self.requests.pop_front())
        }?;
        if let Incoming::Message { envelope, .. } = &next
            && let Some(n) = self.queued.get_mut(envelope.from.as_str())
        {
            *n -= 1;
            if *n == 0 && self.queued.len() > KEPT_SENDERS {
                self.queued.remove(envelope.from.as_str());
            }
        }
        Some(next)
    }

    /// Frees what a burst left behind in drained lanes and an empty per-sender count.
    fn release_drained(&mut self) {
        for q in [&mut self.replies, &mut self.requests, &mut self.other] {
            if q.is_empty() && q.capacity() > KEPT_AFTER_BURST {
                q.shrink_to_fit();
            }
        }
        if self.queued.len() <= KEPT_SENDERS && self.queued.capacity() > KEPT_AFTER_BURST {
            self.queued.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::Name;
    use crate::transport::Reply;
    use crate::value::Value;

    fn msg(from: &str, body: Message) -> Incoming {
        Incoming::Message {
            envelope: Envelope {
                trace: 0,
                from: from.into(),
                to: "a".into(),
                id: 1,
                body,
            },
            verified: true,
        }
    }

    fn load(from: &str) -> Incoming {
        msg(from, Message::Load { utilization: 0.5 })
    }

    #[tokio::test]
    async fn replies_overtake_one_way_traffic() {
        let (tx, rx) = inbox();
        for _ in 0..10 {
            tx.push(load("b")).unwrap();
        }
        tx.push(msg("c", Message::Reply(Reply::done(Value::Null))))
            .unwrap();
        assert!(matches!(
            rx.recv().await,
            Some(Incoming::Message {
                envelope: Envelope {
                    trace: 0,
                    body: Message::Reply(_),
                    ..
                },
                ..
            })
        ));
    }

    /// Collects what reaches it.
    #[derive(Default)]
    struct Collect(Mutex<Vec<(Name, bool)>>);

    impl Sink for Collect {
        fn reply(&self, envelope: Envelope, verified: bool) {
            lock(&self.0).push((envelope.from, verified));
        }

        fn request(self: Arc<Self>, envelope: Envelope, verified: bool) {
            lock(&self.0).push((envelope.from, verified));
        }
    }

    fn request(from: &str) -> Incoming {
        msg(
            from,
            Message::Request {
                service: "s".into(),
                modes: Vec::new(),
                input: Value::Null,
                hops: 0,
            },
        )
    }

    #[tokio::test]
    async fn replies_and_requests_go_to_the_sink_unqueued_and_the_rest_is_queued() {
        let (tx, rx) = inbox();
        let sink = Arc::new(Collect::default());
        let weak = Arc::downgrade(&sink);
        rx.sink(weak);
        let reply = |from| msg(from, Message::Reply(Reply::done(Value::Null)));
        tx.push(reply("b")).unwrap();
        let Incoming::Message { envelope, .. } = reply("c") else {
            unreachable!()
        };
        tx.push_message(envelope, false).unwrap();
        tx.push(request("d")).unwrap();
        assert_eq!(
            *lock(&sink.0),
            [
                (Name::from("b"), true),
                (Name::from("c"), false),
                (Name::from("d"), true)
            ]
        );
        tx.push(load("b")).unwrap();
        tx.push(Incoming::Unanswered {
            provider: "d".into(),
            id: 7,
            reason: "gone".into(),
        })
        .unwrap();
        assert_eq!(
            rx.len(),
            2,
            "a one-way message and the transport's word are queued"
        );
        assert_eq!(lock(&sink.0).len(), 3);

        // Once the sink is gone (its agent stopped), replies and requests are queued again; a
        // closed inbox takes none.
        drop(sink);
        tx.push(reply("b")).unwrap();
        tx.push(request("d")).unwrap();
        assert_eq!(rx.len(), 4);
        tx.close();
        assert!(tx.push(reply("b")).is_err());
        assert!(tx.push(request("d")).is_err());
    }

    #[tokio::test]
    async fn the_first_delivery_calls_the_hook_once_with_the_inbox_it_came_to() {
        let (tx, rx) = inbox();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&calls);
        rx.on_first_delivery(move |inbox| lock(&seen).push(inbox));
        assert!(lock(&calls).is_empty(), "called before anything came");
        // Called at the first of many deliveries (the last refused as flooding), and only then.
        for _ in 0..=PER_SENDER_QUEUED {
            let _ = tx.push(load("mallory"));
        }
        assert_eq!(lock(&calls).len(), 1);
        tx.push(load("b")).unwrap();
        assert_eq!(lock(&calls).len(), 1, "called again");
        let handed = lock(&calls).pop().unwrap();
        assert_eq!(handed.len(), PER_SENDER_QUEUED + 1);
        assert!(handed.recv().await.is_some());

        // Set when something waits already: called at once.
        let (tx, rx) = inbox();
        tx.push(load("b")).unwrap();
        let seen = Arc::clone(&calls);
        rx.on_first_delivery(move |inbox| lock(&seen).push(inbox));
        assert_eq!(lock(&calls).len(), 1);

        // A closed inbox takes nothing, and so never calls it.
        let (tx, rx) = inbox();
        let seen = Arc::clone(&calls);
        rx.on_first_delivery(move |inbox| lock(&seen).push(inbox));
        tx.close();
        assert!(tx.push(load("b")).is_err());
        assert_eq!(lock(&calls).len(), 1);
    }

    #[tokio::test]
    async fn a_flooding_sender_fills_its_share_and_the_others_still_get_in() {
        let (tx, rx) = inbox();
        for _ in 0..PER_SENDER_QUEUED {
            tx.push(load("mallory")).unwrap();
        }
        assert_eq!(tx.push(load("mallory")).unwrap_err().0, Refusal::Flooding);
        assert!(tx.push(load("b")).is_ok());
        // Once the agent has read some of them, the sender may queue again.
        rx.recv().await.unwrap();
        assert!(tx.push(load("mallory")).is_ok());
    }

    #[tokio::test]
    async fn a_drained_inbox_gives_back_what_a_burst_took() {
        let (tx, rx) = inbox();
        for i in 0..200 {
            tx.push(load(&format!("peer{}", i % 50))).unwrap();
            tx.push(msg("c", Message::Reply(Reply::done(Value::Null))))
                .unwrap();
        }
        {
            let lanes = lock(&rx.shared.lanes);
            assert!(lanes.other.capacity() >= 200 && lanes.replies.capacity() >= 200);
            assert!(lanes.queued.capacity() >= 50);
        }
        for _ in 0..400 {
            rx.recv().await.unwrap();
        }
        let lanes = lock(&rx.shared.lanes);
        assert!(lanes.other.capacity() <= KEPT_AFTER_BURST);
        assert!(lanes.replies.capacity() <= KEPT_AFTER_BURST);
        assert!(lanes.queued.capacity() <= KEPT_AFTER_BURST);
        assert!(lanes.queued.len() <= KEPT_SENDERS, "counts at zero are few");
        assert!(lanes.queued.values().all(|n| *n == 0));
    }

    #[tokio::test]
    async fn a_closed_inbox_hands_out_what_it_holds_then_ends() {
        let (tx, rx) = inbox();
        tx.push(load("b")).unwrap();
        tx.close();
        assert_eq!(tx.push(load("b")).unwrap_err().0, Refusal::InboxFull);
        assert!(rx.recv().await.is_some());
        assert!(rx.recv().await.is_none());
    }
}
