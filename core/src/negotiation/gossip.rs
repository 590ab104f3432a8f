//! Gossip of provider knowledge (seed 001, Algorithm 1).
//!
//! Every period an agent sends a few members drawn at random what it knows: the services it
//! offers, with the quality it advertises for each, and the providers it knows of the services
//! it needs (its Known set), with the quality they advertised. A receiver keeps, per service
//! it needs, the `known` best advertised providers — never dropping one it is using — so a
//! message carries at most `offers + needs · known` entries whatever the size of the network,
//! and an agent learns of good providers without anyone knowing them all.
//!
//! With gossip on, gossip replaces adverts and discovery: an agent neither broadcasts its
//! offers nor asks the network who offers a service.

use std::time::Duration;

use super::Negotiator;
use crate::knowledge::Gossiped;
use crate::name::{Name, is_valid_name};
use crate::transport::{GossipEntry, MAX_GOSSIP_ENTRIES, Message, Refusal};

/// How an agent gossips: how often, to how many, and how many providers it keeps per service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GossipConfig {
    /// Δt: how often it gossips.
    pub period: Duration,
    /// |GetPeers()|: how many members it gossips to each period.
    pub fanout: usize,
    /// N_K: how many providers it keeps per service it needs.
    pub known: usize,
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig {
            period: Duration::from_secs(1),
            fanout: 3,
            known: 5,
        }
    }
}

impl GossipConfig {
    /// The largest fan-out and Known set allowed.
    pub const MAX: usize = 64;

    /// Checks the numbers: a period of at least a millisecond, a fan-out and a Known set of 1
    /// to [`GossipConfig::MAX`].
    ///
    /// # Errors
    ///
    /// Says which number is out of range.
    pub fn check(&self) -> Result<(), String> {
        if self.period < Duration::from_millis(1) {
            return Err("the gossip `period` is at least 1ms".to_owned());
        }
        for (name, n) in [("fanout", self.fanout), ("known", self.known)] {
            if !(1..=Self::MAX).contains(&n) {
                return Err(format!("gossip `{name}` is {n}, not in 1..={}", Self::MAX));
            }
        }
        Ok(())
    }
}

impl Negotiator {
    pub(super) fn gossips(&self) -> bool {
        self.config.gossip.is_some()
    }

    /// One gossip round: what this agent knows, to `fanout` members drawn at random.
    pub(crate) fn gossip_round(&self, rng: &mut fastrand::Rng) {
        let Some(g) = self.config.gossip else { return };
        let entries = self.gossip_entries();
        if entries.is_empty() {
            return;
        }
        // Draw a few more than needed: some may be this agent or outside its neighbourhood.
        let peers = self.transport.sample(g.fanout + 1, rng);
        let body = Message::Gossip {
            entries: entries.into(),
        };
        let talks_to = self.talks_to_each();
        for peer in peers.into_iter().filter(|p| talks_to(p)).take(g.fanout) {
            let _ = self.transport.send(self.envelope(&peer, 0, body.clone()));
        }
    }

    /// The quality this agent advertises for a service it offers. A provider that has served
    /// no one yet has no load: like the paper's idle service, it advertises its best. Trust
    /// (eq. 7–8) corrects an idle provider that is worse than that once it is tried.
    fn quality_of(&self, service: &str) -> f64 {
        self.knowledge.quality(service).unwrap_or(1.0)
    }

    /// What an answer of `service` tells its requester of this agent's advertised quality:
    /// the same as its gossip would, if it gossips.
    pub(super) fn advertised(&self, service: &str) -> Option<f64> {
        self.gossips().then(|| self.quality_of(service))
    }

    /// The quality an answer of `provider` advertised, if it is one: an advertisement out of
    /// `[0, 1]` is refused, and the answer stands.
    pub(super) fn advertised_in_answer(&self, provider: &str, quality: f64) -> Option<f64> {
        if (0.0..=1.0).contains(&quality) {
            return Some(quality);
        }
        self.refuse(Refusal::Malformed, provider, "advertised quality");
        None
    }

    fn gossip_entries(&self) -> Vec<GossipEntry> {
        let mut entries: Vec<GossipEntry> = self
            .knowledge
            .offered()
            .into_iter()
            .map(|(service, modes)| GossipEntry {
                quality: Some(self.quality_of(&service)),
                agent: Name::from(&*self.agent),
                service: service.into(),
                modes,
            })
            .collect();
        for service in self.knowledge.needed() {
            let known = self.knowledge.providers().gossiped_of(&service);
            entries.extend(
                known
                    .into_iter()
                    .map(|(agent, modes, quality)| GossipEntry {
                        agent,
                        service: Name::from(&service),
                        modes,
                        quality,
                    }),
            );
        }
        entries.truncate(MAX_GOSSIP_ENTRIES);
        entries
    }

    /// What a member gossiped: the providers of services this agent needs are kept, the best
    /// `known` of each. A message that is too long or malformed is refused whole.
    pub(super) fn on_gossip(&self, from: &str, entries: &[GossipEntry]) {
        // An agent that does not gossip has no Known set to feed: it ignores gossip, as it
        // would a topic it does not follow.
        let Some(g) = self.config.gossip else { return };
        if entries.len() > MAX_GOSSIP_ENTRIES {
            return self.refuse(Refusal::OverCap, from, "gossip");
        }
        let well_formed = |e: &GossipEntry| {
            is_valid_name(&e.agent)
                && is_valid_name(&e.service)
                && e.quality.is_none_or(|q| (0.0..=1.0).contains(&q))
        };
        if !entries.iter().all(well_formed) {
            return self.refuse(Refusal::Malformed, from, "gossip");
        }
        let mut told: Vec<&GossipEntry> = entries.iter().filter(|e| !e.modes.is_empty()).collect();
        // What this agent needs first: most of a message is about what the sender needs.
        self.knowledge.keep_needed(&mut told, |e| &e.service);
        // `talks_to` also leaves this agent out.
        let talks_to = self.talks_to_each();
        told.retain(|e| talks_to(&e.agent) && self.transport.is_member(&e.agent));
        let told = told.into_iter().map(|e| {
            let provider = Gossiped {
                agent: &e.agent,
                modes: e.modes,
                quality: e.quality,
            };
            (e.service.as_str(), provider)
        });
        // A provider in use is kept for a few rounds even if better ones are told of: the
        // binding is the learner's to change, not gossip's.
        let taken = self
            .knowledge
            .providers()
            .gossiped(told, g.known, g.period * 3);
        for _ in 0..taken.full {
            self.refuse(Refusal::OverCap, from, "gossiped provider");
        }
        if taken.kept > 0 {
            self.heard.notify_waiters();
        }
    }
}
