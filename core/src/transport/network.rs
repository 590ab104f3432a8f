//! The in-process network: agents of one process, the embedded default.
//!
//! Messages travel as Rust values between agents built by the same application, in one trust
//! domain, so every delivery counts as verified: only code of this process can send, and it
//! could read any agent's keys anyway.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use super::{
    Envelope, InboxSender, JoinError, Membership, MessageCounters, SendError, Transport, inbox,
};
use crate::name::Name;
use crate::sync::lock;

/// The in-process network. Cloning gives another handle to the same network.
#[derive(Clone, Default)]
pub struct Network {
    inner: Arc<Mutex<NetworkInner>>,
}

#[derive(Default)]
struct NetworkInner {
    members: HashMap<Name, Member, foldhash::fast::RandomState>,
    // The members again, in a vector (each member knows its place in it), so that gossip
    // draws a few of thousands at random without listing them all.
    drawable: Vec<Name>,
    offers: BTreeMap<String, BTreeSet<Name>>,
    counters: super::tally::Tally,
}

struct Member {
    inbox: InboxSender,
    // Where the member is in `drawable`.
    at: usize,
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

    /// The inbox of member `to`; a message for anyone else is counted undelivered.
    fn inbox_of(inner: &mut NetworkInner, to: &str) -> Option<InboxSender> {
        let inbox = inner.members.get(to).map(|m| m.inbox.clone());
        if inbox.is_none() {
            inner.counters.undelivered += 1;
        }
        inbox
    }

    /// Puts `envelope` in `inbox` with the network unlocked: the receiver may answer a request
    /// on the spot, and send the answer on this network.
    fn deliver(&self, inbox: &InboxSender, envelope: Envelope) -> Result<(), SendError> {
        let count = |e: &Envelope| {
            lock(&self.inner)
                .counters
                .record(e.body.kind(), &e.from, &e.to);
        };
        inbox
            .push_accepted(envelope, true, count)
            .map_err(|(why, envelope)| {
                let counters = &mut lock(&self.inner).counters;
                counters.undelivered += 1;
                counters.reject(why);
                SendError::Full(envelope)
            })
    }

    fn fan_out(&self, envelope: Envelope, to: impl Fn(&NetworkInner) -> Vec<Name>) -> usize {
        let targets: Vec<(Name, InboxSender)> = {
            let mut inner = lock(&self.inner);
            to(&inner)
                .into_iter()
                .filter(|t| *t != envelope.from)
                .filter_map(|t| Network::inbox_of(&mut inner, &t).map(|inbox| (t, inbox)))
                .collect()
        };
        targets
            .into_iter()
            .filter(|(t, inbox)| {
                let mut e = envelope.clone();
                e.to = t.clone();
                self.deliver(inbox, e).is_ok()
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
            let at = inner.drawable.len();
            inner.drawable.push(agent.into());
            inner.members.insert(agent.into(), Member { inbox: tx, at });
        }
        let network = self.clone();
        let name = agent.to_owned();
        // In-process members leave only by stopping, which answers their in-flight work, so
        // there is no news to give; telling each of thousands of agents about every other one
        // would cost O(N²) events for nothing.
        Ok(Membership::new(rx, no_changes(), move || {
            let mut inner = lock(&network.inner);
            if let Some(Member { inbox, at }) = inner.members.remove(name.as_str()) {
                inbox.close();
                inner.drawable.swap_remove(at);
                if let Some(moved) = inner.drawable.get(at).cloned()
                    && let Some(m) = inner.members.get_mut(&moved)
                {
                    m.at = at;
                }
            }
            for agents in inner.offers.values_mut() {
                agents.remove(name.as_str());
            }
        }))
    }

    fn send(&self, envelope: Envelope) -> Result<(), SendError> {
        let inbox = Network::inbox_of(&mut lock(&self.inner), &envelope.to);
        match inbox {
            Some(inbox) => self.deliver(&inbox, envelope),
            None => Err(SendError::Unknown(Box::new(envelope))),
        }
    }

    fn publish(&self, service: &str, envelope: Envelope) -> usize {
        self.fan_out(envelope, |inner| {
            let Some(offering) = inner.offers.get(service) else {
                return Vec::new();
            };
            // A discovery among a hundred thousand providers needs a few answers, not all.
            let mut rng = fastrand::Rng::new();
            sample_of(offering.iter(), super::MAX_PUBLISH_FANOUT, &mut rng)
        })
    }

    fn broadcast(&self, envelope: Envelope) -> usize {
        self.fan_out(envelope, |inner| inner.drawable.clone())
    }

    fn offer(&self, agent: &str, service: &str, offered: bool) {
        let mut inner = lock(&self.inner);
        if offered {
            inner
                .offers
                .entry(service.to_owned())
                .or_default()
                .insert(agent.into());
        } else if let Some(set) = inner.offers.get_mut(service) {
            set.remove(agent);
            if set.is_empty() {
                inner.offers.remove(service);
            }
        }
    }

    fn members(&self) -> Vec<Name> {
        let mut all = lock(&self.inner).drawable.clone();
        all.sort_unstable();
        all
    }

    fn sample(&self, k: usize, rng: &mut fastrand::Rng) -> Vec<Name> {
        let inner = lock(&self.inner);
        let n = inner.drawable.len();
        let k = k.min(n);
        // k distinct positions by rejection: cheap while k is far below n, and exact always.
        let mut picked: Vec<usize> = Vec::with_capacity(k);
        if k * 2 > n {
            let mut all: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut all);
            picked.extend_from_slice(&all[..k]);
        } else {
            while picked.len() < k {
                let i = rng.usize(..n);
                if !picked.contains(&i) {
                    picked.push(i);
                }
            }
        }
        picked
            .into_iter()
            .map(|i| inner.drawable[i].clone())
            .collect()
    }

    fn is_member(&self, agent: &str) -> bool {
        lock(&self.inner).members.contains_key(agent)
    }

    fn authenticates(&self, _agent: &str) -> bool {
        true
    }

    fn counters(&self) -> MessageCounters {
        lock(&self.inner).counters.snapshot()
    }
}

/// Up to `k` of `items` drawn at random, each equally likely (reservoir sampling): all of
/// them when there are no more than `k`.
fn sample_of<'a>(
    items: impl Iterator<Item = &'a Name>,
    k: usize,
    rng: &mut fastrand::Rng,
) -> Vec<Name> {
    let mut kept: Vec<Name> = Vec::with_capacity(k);
    for (seen, item) in items.enumerate() {
        if kept.len() < k {
            kept.push(item.clone());
        } else {
            let j = rng.usize(..=seen);
            if j < k {
                kept[j] = item.clone();
            }
        }
    }
    kept
}

/// A membership-change stream that never yields: one closed channel shared by every
/// in-process member (a channel of its own would cost each idle agent most of a kilobyte).
fn no_changes() -> async_channel::Receiver<super::MemberChange> {
    static CLOSED: std::sync::OnceLock<async_channel::Receiver<super::MemberChange>> =
        std::sync::OnceLock::new();
    CLOSED.get_or_init(|| async_channel::bounded(1).1).clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Message;

    fn load(to: &str) -> Envelope {
        Envelope {
            trace: 0,
            from: "a".into(),
            to: to.into(),
            id: 0,
            body: Message::Load { utilization: 0.5 },
        }
    }

    #[test]
    fn members_who_leave_are_neither_drawn_nor_reached_and_the_rest_still_are() {
        let net = Network::new();
        let mut joined: BTreeMap<&str, Membership> = ["a", "b", "c", "d", "e"]
            .into_iter()
            .map(|n| (n, net.join(n).unwrap()))
            .collect();
        // b leaves from the middle (e takes its place), then e from there.
        for gone in ["b", "e"] {
            drop(joined.remove(gone));
        }
        let mut rng = fastrand::Rng::with_seed(7);
        let mut drawn = net.sample(10, &mut rng);
        drawn.sort();
        assert_eq!(drawn, ["a", "c", "d"]);
        assert_eq!(net.members(), ["a", "c", "d"]);
        assert!(matches!(net.send(load("e")), Err(SendError::Unknown(_))));
        assert!(net.send(load("d")).is_ok());
        assert_eq!(joined["d"].inbox.len(), 1);
        // The name is free again.
        let _b = net.join("b").unwrap();
        assert_eq!(net.members(), ["a", "b", "c", "d"]);
        drop(joined.remove("d"));
        assert_eq!(net.members(), ["a", "b", "c"]);
    }
}
