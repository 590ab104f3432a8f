//! The requester's side: choosing providers, asking them, following referrals, retrying.

use std::cell::OnceCell;
use std::collections::VecDeque;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Attempt, AttemptError, CallError, MAX_REFERRAL, Negotiator, Outcome, Pending};
use crate::choice::Observation;
use crate::knowledge::Provider;
use crate::name::Name;
use crate::name::is_valid_name;
use crate::offer::{OfferMode, OfferModes};
use crate::sync::lock;
use crate::topic;
use crate::transport::{Message, Refusal, Reply, SendError, TeachingPackage};
use crate::value::Value;

/// A provider to ask, and the referrals that led to it.
struct Candidate {
    agent: Name,
    via: Vec<Name>,
}

impl Candidate {
    fn direct(agent: Name) -> Candidate {
        Candidate {
            agent,
            via: Vec::new(),
        }
    }
}

/// A request sent: its id, where its reply will come, and until when (how long) to wait.
struct Sent {
    id: u64,
    reply: oneshot::Receiver<Result<Reply, AttemptError>>,
    until: Instant,
    wait: std::time::Duration,
}

/// What one asked provider's answer means for the request.
enum Next {
    /// Answered: the output, and the quality the provider advertises now.
    Done(Value, Option<f64>),
    Learned,
    Referred(Vec<Candidate>),
    Failed(AttemptError),
}

impl Negotiator {
    /// Asks for `service` in `modes` (preferred first): runs it remotely, learns it, or
    /// follows referrals, retrying other providers on failure. `deadline` bounds every wait.
    pub(crate) async fn request(
        &self,
        service: &str,
        modes: &[OfferMode],
        input: &Value,
        deadline: Option<Instant>,
    ) -> Result<Outcome, CallError> {
        // The providers known, best first, taken as they are (most calls ask the first); the
        // ones referrals name go before them.
        let mut direct = self.candidates(service, modes, deadline).await.into_iter();
        if direct.len() == 0 {
            return Err(self.nobody(service, modes).await);
        }
        let mut referred: VecDeque<Candidate> = VecDeque::new();
        // Providers asked that did not serve (a few at most: a scan beats hashing them).
        let mut tried: Vec<Name> = Vec::new();
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut failures = 0;
        let mut looked_again = false;
        while failures <= self.config.retries {
            if referred.is_empty() && direct.len() == 0 {
                // Providers heard of while this request went on: a newcomer, a changed offer.
                let mut more = self.known(service, modes);
                if more.is_empty() && !looked_again && self.may_look_again(service) {
                    looked_again = true;
                    more = self.candidates(service, modes, deadline).await;
                }
                more.retain(|p| !tried.contains(p));
                direct = more.into_iter();
            }
            let Some(c) = referred
                .pop_front()
                .or_else(|| direct.next().map(Candidate::direct))
            else {
                break;
            };
            if tried.contains(&c.agent) {
                continue;
            }
            let asked = Instant::now();
            let next = self.attempt(service, modes, input, &c, deadline).await;
            let answered = Instant::now();
            let chosen_by = self.heard_back(service, &c.agent, &next, answered);
            self.observe(service, &c.agent, &next, answered - asked, chosen_by);
            match next {
                Next::Done(value, _) => {
                    if !c.via.is_empty() {
                        tracing::info!(agent = %self.agent, %service, provider = %c.agent, via = ?c.via, "served through a referral");
                    }
                    return Ok(Outcome::Done {
                        value,
                        provider: c.agent,
                        via: c.via,
                    });
                }
                Next::Learned => {
                    return Ok(Outcome::Learned {
                        teacher: c.agent,
                        via: c.via,
                    });
                }
                Next::Referred(more) => {
                    tried.push(c.agent);
                    // Followed next, before the other providers: the referrer knows better.
                    for m in more.into_iter().rev() {
                        referred.push_front(m);
                    }
                }
                Next::Failed(AttemptError::Unreachable(_)) if self.is_stopping() => {
                    return Err(CallError::Stopped);
                }
                Next::Failed(error) => {
                    tried.push(c.agent.clone());
                    self.note_failure(service, &c.agent, &error).await;
                    attempts.push(Attempt {
                        provider: c.agent,
                        error,
                    });
                    failures += 1;
                }
            }
        }
        if attempts.is_empty() {
            return Err(CallError::NoProvider {
                service: service.to_owned(),
            });
        }
        Err(CallError::Unavailable {
            service: service.to_owned(),
            attempts,
        })
    }

    /// Asks one provider, and reads its answer.
    async fn attempt(
        &self,
        service: &str,
        wanted: &[OfferMode],
        input: &Value,
        c: &Candidate,
        deadline: Option<Instant>,
    ) -> Next {
        let modes = self.modes_for(&c.agent, wanted, c.via.len());
        if modes.is_empty() {
            return Next::Failed(if c.via.len() as u32 >= self.config.referral_hops {
                AttemptError::TooManyHops(self.config.referral_hops)
            } else {
                AttemptError::NotTrusted
            });
        }
        self.announce_outgoing(service, &c.agent, &modes).await;
        tracing::debug!(agent = %self.agent, %service, provider = %c.agent, ?modes, "request sent");
        let may_teach = modes.contains(&OfferMode::CanTeach);
        let body = Message::Request {
            service: service.into(),
            modes,
            input: input.clone(),
            hops: 0,
        };
        let reply = match self.ask(&c.agent, body, deadline).await {
            Ok(r) => r,
            Err(e) => return Next::Failed(e),
        };
        match reply {
            Reply::Done { output, advertised } => Next::Done(output, advertised),
            // Boxed: learning is rare and its future kilobytes, which every call would
            // otherwise carry and copy.
            Reply::Teach(pkg) => Box::pin(self.taught(service, may_teach, *pkg, c)).await,
            Reply::Referral(list) => Next::Referred(self.referred(service, list, c)),
            Reply::Refused(reason) => Next::Failed(AttemptError::Refused(reason)),
            Reply::Failed(reason) => Next::Failed(AttemptError::Failed(reason)),
        }
    }

    /// A teaching package came: installed if it is what was asked for.
    async fn taught(
        &self,
        service: &str,
        asked_to_teach: bool,
        pkg: TeachingPackage,
        c: &Candidate,
    ) -> Next {
        if !asked_to_teach || pkg.service != service {
            self.refuse(Refusal::UnaskedPackage, &c.agent, "teaching package");
            return Next::Failed(AttemptError::Unexpected("a teaching package"));
        }
        match self.learn(pkg, &c.agent, OfferModes::NONE).await {
            Ok(()) => Next::Learned,
            Err(e) => Next::Failed(AttemptError::NotLearned(e)),
        }
    }

    /// The providers a referral names that are worth asking: valid names, on the network,
    /// not this agent; a neighbour's referral introduces them.
    fn referred(
        &self,
        service: &str,
        list: Vec<(Name, OfferModes)>,
        by: &Candidate,
    ) -> Vec<Candidate> {
        if list.len() > MAX_REFERRAL {
            self.refuse(Refusal::OverCap, &by.agent, "part of a referral");
        }
        let mut via = by.via.clone();
        via.push(by.agent.clone());
        list.into_iter()
            .take(MAX_REFERRAL)
            .filter(|(agent, modes)| {
                is_valid_name(agent)
                    && *agent != *self.agent
                    && !modes.is_empty()
                    && self.transport.is_member(agent)
                    && !by.via.contains(agent)
            })
            .filter_map(|(agent, modes)| {
                self.introduce(&agent);
                if !self.talks_to(&agent) {
                    return None;
                }
                if self
                    .knowledge
                    .providers()
                    .heard(service, &agent, modes)
                    .is_err()
                {
                    self.refuse(Refusal::OverCap, &by.agent, "referral");
                }
                Some(Candidate {
                    agent,
                    via: via.clone(),
                })
            })
            .collect()
    }

    /// Adds an agent a neighbour referred this one to, to a closed neighbourhood.
    fn introduce(&self, agent: &str) {
        if self.config.neighbours.is_empty() {
            return;
        }
        let introduced = &mut lock(&self.contacts).introduced;
        if introduced.len() < super::MAX_INTRODUCED {
            introduced.insert(agent.to_owned());
        }
    }

    /// The modes to ask `provider` in: teaching only from trusted teachers (an untrusted
    /// package would be refused anyway, so it is not shipped), and referrals only while the
    /// request may still follow them.
    fn modes_for(&self, provider: &str, wanted: &[OfferMode], hops: usize) -> Vec<OfferMode> {
        let trusted = self.trusts_teacher(provider);
        let may_refer = (hops as u32) < self.config.referral_hops;
        wanted
            .iter()
            .copied()
            .filter(|m| match m {
                OfferMode::CanTeach => trusted,
                OfferMode::KnowsWhoCanDo | OfferMode::KnowsWhoCanTeach => may_refer,
                OfferMode::CanDo => true,
            })
            .collect()
    }

    /// Sends a request and waits for its reply (or the time-out, or the deadline).
    // Not an `async fn`: the request goes out at once, and the future that waits for the
    // reply holds neither it nor the arguments, in every call.
    pub(super) fn ask(
        &self,
        to: &str,
        body: Message,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<Reply, AttemptError>> {
        let sent = self.send_request(to, body, deadline);
        async move {
            let sent = sent?;
            let reply = tokio::time::timeout_at(sent.until, sent.reply).await;
            lock(&self.pending).remove(&sent.id);
            match reply {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Err(AttemptError::Unreachable("the agent is stopping".into())),
                Err(_) => Err(AttemptError::TimedOut(sent.wait)),
            }
        }
    }

    /// Sends a request under a new id, for its reply to be waited for.
    fn send_request(
        &self,
        to: &str,
        body: Message,
        deadline: Option<Instant>,
    ) -> Result<Sent, AttemptError> {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            provider: to.into(),
            tx,
        };
        lock(&self.pending).insert(id, pending);
        if let Err(e) = self.transport.send(self.envelope(to, id, body)) {
            lock(&self.pending).remove(&id);
            if let SendError::Unknown(_) = e {
                // Gone, and a transport that does not report departures (the in-process one)
                // leaves it to here to forget it.
                self.knowledge.providers().forget(to);
                self.knowledge.forget_load(to);
            }
            return Err(AttemptError::Unreachable(e.to_string()));
        }
        // One reading of the clock for both bounds.
        let now = Instant::now();
        let wait = match deadline {
            Some(d) => self.config.timeout.min(d.saturating_duration_since(now)),
            None => self.config.timeout,
        };
        Ok(Sent {
            id,
            reply: rx,
            until: crate::duration::after(now, wait),
            wait,
        })
    }

    /// A reply (or the transport's word that none will come) for request `id`: handed to the
    /// request waiting for it, if `from` is the agent it asked.
    pub(super) fn answered(&self, from: &str, id: u64, answer: Result<Reply, AttemptError>) {
        let mut pending = lock(&self.pending);
        match pending.get(&id) {
            // Only the agent asked may answer: an id is not a capability.
            Some(p) if p.provider == from => {
                if let Some(p) = pending.remove(&id) {
                    let _ = p.tx.send(answer);
                }
            }
            _ => {
                drop(pending);
                self.refuse(Refusal::UnsolicitedReply, from, "reply");
            }
        }
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The known providers of `service` in `modes` that this agent talks to, best first.
    pub(super) fn known(&self, service: &str, modes: &[OfferMode]) -> Vec<Name> {
        // Read only if some provider failed: most calls find none that did.
        let now = OnceCell::new();
        // Providers are asked by the best mode they offer (one that runs the service before
        // one that refers to another), then healthy before recently failed; the strategy
        // chooses within each group.
        let rank = |p: &Provider| {
            let best = modes.iter().position(|m| p.modes.contains(*m));
            let failing = p.last_failure.is_some_and(|t| {
                now.get_or_init(Instant::now).duration_since(t) < self.config.cool_down
            });
            best.map(|b| (b, failing))
        };
        let mut present = self.knowledge.providers().providers(service);
        let talks_to = self.talks_to_each();
        present.retain(|p| rank(p).is_some() && talks_to(&p.agent));
        // Stable: within a group, providers stay in the order they were heard of.
        present.sort_by_key(|p| rank(p));
        let mut order = Vec::with_capacity(present.len());
        let choice = self.choice.get();
        for group in present.chunk_by_mut(|a, b| rank(a) == rank(b)) {
            let ranked = choice.order(service, group);
            // A custom strategy's order is taken as far as it is a valid one; whatever it
            // left out is asked after, as listed. A name taken is left empty.
            for i in ranked.into_iter().chain(0..group.len()) {
                if let Some(p) = group.get_mut(i)
                    && !p.agent.is_empty()
                {
                    order.push(std::mem::take(&mut p.agent));
                }
            }
        }
        order
    }

    /// Who offers `service` (can do), best first: asks them all to say so again (so that
    /// providers that arrived since are heard of), and waits up to the time-out for an
    /// answer if none is known yet.
    pub(crate) async fn providers_of(&self, service: &str) -> Vec<Name> {
        if !self.gossips() {
            let discover = self.envelope(
                "",
                0,
                Message::Discover {
                    service: service.into(),
                },
            );
            self.transport.publish(service, discover);
        }
        self.candidates(service, &[OfferMode::CanDo], None).await
    }

    /// Providers to try for `service` in `modes`, best first; discovers some if none is known.
    async fn candidates(
        &self,
        service: &str,
        modes: &[OfferMode],
        deadline: Option<Instant>,
    ) -> Vec<Name> {
        let found = self.known(service, modes);
        if !found.is_empty() {
            return found;
        }
        let mut until = crate::duration::deadline(self.config.timeout);
        if self.gossips() {
            // Gossip collects providers of the services an agent needs; one it calls, it needs.
            self.knowledge.require(service);
        } else {
            match self.discover(service) {
                Some(answers) => until = until.min(answers),
                None => return Vec::new(),
            }
        }
        let until = deadline.map_or(until, |d| d.min(until));
        loop {
            let heard = self.heard.notified();
            let found = self.known(service, modes);
            if !found.is_empty() {
                // Answered: once these providers are gone, the next call discovers afresh.
                self.discovered(service);
                return found;
            }
            tokio::select! {
                _ = heard => {}
                _ = tokio::time::sleep_until(until) => return self.known(service, modes),
            }
        }
    }

    /// Asks whoever offers `service` to say so, giving them the time-out to answer with
    /// adverts, unless a discovery of it is already waiting for answers: a burst of calls to
    /// a new service sends one discovery, not one each (which would crowd the calls' own
    /// requests out of the provider's inbox). Returns the time the answers are waited for
    /// until, or `None` if nobody offers the service.
    fn discover(&self, service: &str) -> Option<Instant> {
        let now = Instant::now();
        // Held while publishing, so that concurrent calls see the discovery only once it has
        // gone out; publishing only hands the message to the transport.
        let mut contacts = lock(&self.contacts);
        // Entries last one time-out: the map holds only the services discovered since.
        let discovering = contacts.discovering.get_or_insert_default();
        discovering.retain(|_, until| *until > now);
        if let Some(until) = discovering.get(service) {
            return Some(*until);
        }
        let discover = self.envelope(
            "",
            0,
            Message::Discover {
                service: service.into(),
            },
        );
        if self.transport.publish(service, discover) == 0 {
            return None;
        }
        let until = crate::duration::after(now, self.config.timeout);
        discovering.insert(service.to_owned(), until);
        Some(until)
    }

    /// Whether a request whose providers all failed may discover once more: only when every
    /// provider it knew is gone (a transport that does not report departures leaves them to
    /// be found by asking), and by discovery, which is answered at once. Gossip tells of
    /// providers only round by round, so with gossip on the request ends as it is.
    fn may_look_again(&self, service: &str) -> bool {
        !self.gossips() && !self.knowledge.providers().knows(service)
    }

    /// A discovery of `service` was answered: it is no longer out.
    fn discovered(&self, service: &str) {
        if let Some(d) = lock(&self.contacts).discovering.as_mut() {
            d.remove(service);
        }
    }

    /// The error for a request nobody can take: a refusal the directory already tells of
    /// (a provider offers the service, only not in the modes asked), or no provider at all.
    async fn nobody(&self, service: &str, modes: &[OfferMode]) -> CallError {
        let talks_to = self.talks_to_each();
        let elsewhere: Vec<Attempt> = self
            .knowledge
            .providers()
            .providers(service)
            .into_iter()
            .filter(|p| talks_to(&p.agent))
            .map(|p| Attempt {
                error: AttemptError::Refused(format!(
                    "`{}` offers `{service}` as {} only, and {} was asked",
                    p.agent,
                    p.modes,
                    modes.iter().copied().collect::<OfferModes>()
                )),
                provider: p.agent,
            })
            .collect();
        let reason = if elsewhere.is_empty() {
            "no provider known".to_owned()
        } else {
            "not offered in the modes asked".to_owned()
        };
        self.report_failure(service, "", &reason).await;
        if elsewhere.is_empty() {
            CallError::NoProvider {
                service: service.to_owned(),
            }
        } else {
            CallError::Unavailable {
                service: service.to_owned(),
                attempts: elsewhere,
            }
        }
    }

    async fn note_failure(&self, service: &str, provider: &str, error: &AttemptError) {
        self.knowledge.providers().failed(service, provider);
        self.report_failure(service, provider, &error.to_string())
            .await;
    }

    /// Publishes `service.failed`.
    pub(super) async fn report_failure(&self, service: &str, provider: &str, error: &str) {
        let event = || topic::ServiceFailed {
            service: service.to_owned(),
            provider: provider.to_owned(),
            error: error.to_owned(),
        };
        let _ = self.bus.emit_with(event).await;
    }

    /// What asking `provider` tells the directory, in one lookup: an answer is news of the
    /// provider too (it is fresh, no longer failing, and advertises what the answer says).
    /// Returns the advertisement the provider was chosen by, which the call is observed
    /// against.
    fn heard_back(&self, service: &str, provider: &str, next: &Next, at: Instant) -> Option<f64> {
        let providers = self.knowledge.providers();
        match next {
            Next::Done(_, news) => {
                let news = news.and_then(|q| self.advertised_in_answer(provider, q));
                providers.touch_at(service, provider, at, news)
            }
            Next::Learned => providers.touch_at(service, provider, at, None),
            Next::Failed(_) => providers.advertised(service, provider),
            Next::Referred(_) => None,
        }
    }

    /// Tells the provider choice what asking `provider` gave: the quality of a result, or
    /// nothing for a failure, against the advertisement it was chosen by. Referrals and
    /// teaching are not the service's quality.
    fn observe(
        &self,
        service: &str,
        provider: &str,
        next: &Next,
        elapsed: std::time::Duration,
        advertised: Option<f64>,
    ) {
        let (quality, ok) = match next {
            Next::Done(value, _) => (self.config.quality.quality(value, elapsed), true),
            Next::Failed(_) => (0.0, false),
            Next::Learned | Next::Referred(_) => return,
        };
        let observation = Observation {
            quality,
            ok,
            advertised,
        };
        self.choice.get().observe(service, provider, &observation);
    }

    /// Publishes `service.request.outgoing`, which the frequent-service predictor counts.
    pub(super) async fn announce_outgoing(
        &self,
        service: &str,
        provider: &str,
        modes: &[OfferMode],
    ) {
        let event = || topic::RequestOutgoing {
            service: service.to_owned(),
            provider: provider.to_owned(),
            modes: mode_names(modes),
        };
        let _ = self.bus.emit_with(event).await;
    }
}

pub(super) fn mode_names(modes: &[OfferMode]) -> Vec<String> {
    modes.iter().map(|m| m.name().to_owned()).collect()
}
