//! Who is around: adverts, discovery, load reports, and agents joining and leaving.

use std::sync::atomic::Ordering;

use super::{ADVERT_FANOUT, MAX_ADVERT_SERVICES, MAX_UTILIZATION, Negotiator, Pending};
use crate::name::{Name, is_valid_name};
use crate::offer::OfferModes;
use crate::sync::lock;
use crate::transport::{Message, Refusal};

impl Negotiator {
    fn offers(&self) -> Vec<(Name, OfferModes)> {
        self.knowledge
            .services()
            .into_iter()
            .map(|s| (Name::from(s.name), s.modes))
            .collect()
    }

    /// Tells every neighbour what this agent offers now. An agent that offers nothing and never
    /// did stays quiet: thousands of idle agents must not flood each other, and a requester
    /// finds providers by discovery anyway.
    pub(crate) fn advertise(&self) {
        let services = self.offers();
        let offers_any = services.iter().any(|(_, m)| !m.is_empty());
        if !offers_any && !self.advertised.load(Ordering::Relaxed) {
            return;
        }
        self.advertised.store(true, Ordering::Relaxed);
        for (service, modes) in &services {
            self.transport
                .offer(&self.agent, service, !modes.is_empty());
        }
        if self.gossips() {
            return;
        }
        let body = Message::Advert { services };
        let talks_to = self.talks_to_each();
        for member in self.advert_audience() {
            if talks_to(&member) {
                lock(&self.contacts).peers.insert(member.clone());
                let _ = self.transport.send(self.envelope(&member, 0, body.clone()));
            }
        }
    }

    /// Who hears this agent's adverts: its configured neighbours on the network, or, when
    /// every member is a neighbour, up to [`ADVERT_FANOUT`] of them drawn at random (all of
    /// them in a network that small). Each one answers with its own offer, and the others
    /// find this agent by discovery when they need what it offers.
    fn advert_audience(&self) -> Vec<Name> {
        if self.config.neighbours.is_empty() {
            let mut rng = fastrand::Rng::new();
            return self.transport.sample(ADVERT_FANOUT + 1, &mut rng);
        }
        self.config
            .neighbours
            .iter()
            .filter(|n| self.transport.is_member(n))
            .map(Name::from)
            .collect()
    }

    /// A neighbour joined: it hears what this agent offers, if anything and if it has not
    /// already.
    pub(crate) fn member_joined(&self, agent: &str) {
        if self.gossips() || !self.talks_to(agent) {
            return;
        }
        let services = self.offers();
        if services.iter().any(|(_, m)| !m.is_empty())
            && lock(&self.contacts).peers.insert(agent.into())
        {
            let body = Message::Advert { services };
            let _ = self.transport.send(self.envelope(agent, 0, body));
        }
    }

    /// A neighbour left the network: it provides nothing any more, what it reported is
    /// forgotten, and the requests waiting for it fail now (and are retried elsewhere)
    /// rather than at their time-out.
    pub(crate) fn member_left(&self, agent: &str) {
        self.knowledge.providers().forget(agent);
        self.knowledge.forget_load(agent);
        {
            let mut contacts = lock(&self.contacts);
            contacts.peers.remove(agent);
            contacts.introduced.remove(agent);
        }
        lock(&self.in_flight).forget(agent);
        let waiting: Vec<Pending> = {
            let mut pending = lock(&self.pending);
            let ids: Vec<u64> = pending
                .iter()
                .filter(|(_, p)| p.provider == agent)
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| pending.remove(id)).collect()
        };
        for p in waiting {
            let reason = format!("`{agent}` left the network");
            let _ = p.tx.send(Err(super::AttemptError::Unreachable(reason)));
        }
    }

    /// What a member offers. A newcomer also learns what this agent offers: each agent
    /// answers another's first advert with its own.
    pub(super) fn on_advert(&self, from: &str, services: Vec<(Name, OfferModes)>) {
        if services.len() > MAX_ADVERT_SERVICES {
            return self.refuse(Refusal::OverCap, from, "advert");
        }
        if services.iter().any(|(s, _)| !is_valid_name(s)) {
            return self.refuse(Refusal::Malformed, from, "advert");
        }
        for (service, modes) in services {
            if self
                .knowledge
                .providers()
                .heard(&service, from, modes)
                .is_err()
            {
                self.refuse(Refusal::OverCap, from, "advertised service");
            }
        }
        self.heard.notify_waiters();
        if lock(&self.contacts).peers.insert(from.into()) {
            let offers = self.offers();
            if !offers.is_empty() {
                let body = Message::Advert { services: offers };
                let _ = self.transport.send(self.envelope(from, 0, body));
            }
        }
    }

    /// Someone looks for providers of `service`: if this agent offers it, it says so — with
    /// its whole offer, since the asker will likely need the others too.
    pub(super) fn on_discover(&self, from: &str, service: &str) {
        if self
            .knowledge
            .service(service)
            .is_some_and(|s| !s.modes.is_empty())
        {
            lock(&self.contacts).peers.insert(from.into());
            let body = Message::Advert {
                services: self.offers(),
            };
            let _ = self.transport.send(self.envelope(from, 0, body));
        }
    }

    /// A member's utilization: a finite, non-negative number of seconds of work per second.
    pub(super) fn on_load(&self, from: &str, utilization: f64) {
        if !(0.0..=MAX_UTILIZATION).contains(&utilization) {
            return self.refuse(Refusal::BadLoad, from, "load report");
        }
        self.knowledge.set_load(from, utilization);
    }

    /// Tells the neighbours this agent's utilization, and forgets the loads of agents no
    /// longer on the network.
    pub(crate) fn share_load(&self, utilization: f64) {
        for agent in self.knowledge.loads().into_keys() {
            if agent != *self.agent && !self.transport.is_member(&agent) {
                self.knowledge.forget_load(&agent);
            }
        }
        self.knowledge.set_load(&self.agent, utilization);
        let talks_to = self.talks_to_each();
        for member in self.transport.members() {
            if talks_to(&member) {
                let body = Message::Load { utilization };
                let _ = self.transport.send(self.envelope(&member, 0, body));
            }
        }
    }
}
