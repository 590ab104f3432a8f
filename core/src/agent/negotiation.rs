//! The agent's side of negotiation: calling services, requesting them in offer modes, and
//! keeping its peers told what it offers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::agent::AgentHandle;
use crate::choice::ProviderChoice;
use crate::knowledge::Learned;
use crate::name::Name;
use crate::negotiation::{CallError, CallOptions, ForgetError, Outcome, TeachError};
use crate::offer::OfferMode;
use crate::topic::{self, Payload};
use crate::trace;
use crate::transport::{MemberChange, MessageCounters, Refusal, Transport};
use crate::value::Value;

impl AgentHandle {
    /// Calls a service: here if the agent runs it (or on the neighbour part of its load is
    /// redirected to), otherwise at a provider, in the modes the agent asks for it (`can_do`,
    /// else a referral, unless a policy changed that). Every call ends: with the output, an
    /// error, or a time-out error.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use selflet_core::behaviour::Behaviour;
    /// use selflet_core::{Agent, Network, OfferModes, Service, SourceFile, Value};
    ///
    /// let net = Network::new();
    /// let double = Behaviour::parse(SourceFile::new(
    ///     "double.yaml",
    ///     "behaviour: double\ninitial: d\nstates:\n  d: { final: true, output: \"input * 2\" }\n",
    /// ))?;
    /// let b = Agent::builder("b").network(&net).behaviour(double)
    ///     .service(Service::new("double", OfferModes::CAN_DO)).spawn().await?;
    /// let a = Agent::builder("a").network(&net).spawn().await?;
    /// assert_eq!(a.call("double", 21).await?, Value::Int(42));
    /// # Ok(()) }
    /// ```
    pub async fn call(&self, service: &str, input: impl Into<Value>) -> Result<Value, CallError> {
        self.call_with(service, input, CallOptions::default()).await
    }

    /// Calls a service, with options such as a time-out for the whole call.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use selflet_core::negotiation::{CallError, CallOptions};
    ///
    /// let a = selflet_core::Agent::builder("a").spawn().await?;
    /// let options = CallOptions { timeout: Some(Duration::from_millis(100)) };
    /// let err = a.call_with("nobody_offers_this", (), options).await.unwrap_err();
    /// assert!(matches!(err, CallError::NoProvider { .. } | CallError::TimedOut { .. }));
    /// # Ok(()) }
    /// ```
    pub async fn call_with(
        &self,
        service: &str,
        input: impl Into<Value>,
        options: CallOptions,
    ) -> Result<Value, CallError> {
        let _in_flight = self.in_flight()?;
        let negotiator = &self.inner().negotiator;
        negotiator.call(service, input.into(), 0, options).await
    }

    /// A call from the application is in-flight work like a peer's request: shutdown gives it
    /// the grace period to finish, and once shutdown has begun none starts.
    fn in_flight(&self) -> Result<tokio_util::task::task_tracker::TaskTrackerToken, CallError> {
        let tasks = &self.inner().tasks;
        if tasks.is_closed() {
            return Err(CallError::Stopped);
        }
        Ok(tasks.token())
    }

    /// The agents that offer `service` (can do), best first, as this agent knows them: it asks
    /// the network to tell again (so that providers that arrived since are heard of), and if
    /// it knows none yet waits up to its negotiation time-out for one to answer.
    pub async fn providers_of(&self, service: &str) -> Vec<Name> {
        self.inner().negotiator.providers_of(service).await
    }

    /// Calls a service at one named agent, and nowhere else: for services whose answer depends
    /// on who gives it (a host's status, a sensor's reading). Can-do only; within the
    /// agent's negotiation time-out; the agent must talk to `agent` (its neighbourhood).
    pub async fn call_at(
        &self,
        agent: &str,
        service: &str,
        input: impl Into<Value>,
    ) -> Result<Value, CallError> {
        let _in_flight = self.in_flight()?;
        let negotiator = &self.inner().negotiator;
        negotiator.call_at(agent, service, input.into()).await
    }

    /// Asks for a service in the given modes, preferred first: runs it remotely (`can_do`),
    /// learns it (`can_teach`), or follows referrals (`knows_who_*`). The outcome says who
    /// served or taught it, and through whose referrals.
    pub async fn request_service(
        &self,
        service: &str,
        modes: &[OfferMode],
        input: impl Into<Value>,
    ) -> Result<Outcome, CallError> {
        let negotiator = &self.inner().negotiator;
        let input = input.into();
        trace::continue_or_start(negotiator.request(service, modes, &input, None)).await
    }

    /// Teaches a service this agent runs to a neighbour, unasked; the neighbour offers it
    /// can-do from then on (the balancing action "teach, then redirect").
    pub async fn teach(&self, service: &str, neighbour: &str) -> Result<(), TeachError> {
        trace::continue_or_start(self.inner().negotiator.teach(service, neighbour)).await
    }

    /// The services this agent was taught, with their teachers.
    pub fn learned(&self) -> BTreeMap<String, Learned> {
        self.knowledge().learned()
    }

    /// Forgets a learned service: the service, its behaviour and the abilities its lesson
    /// installed. The agent's own services cannot be forgotten.
    pub async fn forget(&self, service: &str) -> Result<Learned, ForgetError> {
        self.inner().negotiator.forget(service).await
    }

    /// What this agent refused from its peers, by reason (what its transport refused before
    /// it saw anything is in [`AgentHandle::message_counters`]).
    pub fn refusals(&self) -> BTreeMap<Refusal, u64> {
        self.inner().negotiator.refusals().snapshot()
    }

    /// Redirects `fraction` of the requests for `service` reaching this agent to `neighbour`
    /// (0 stops). Redirected requests that fail there run here.
    pub fn redirect(&self, service: &str, neighbour: &str, fraction: f64) {
        self.redirect_over(service, &[neighbour], fraction);
    }

    /// Redirects `fraction` of the requests for `service` reaching this agent to
    /// `neighbours`, each in turn: the service replicated over them and balanced round robin
    /// (0, or no neighbour, stops). Redirected requests that fail there run here.
    pub fn redirect_over(&self, service: &str, neighbours: &[impl AsRef<str>], fraction: f64) {
        self.inner().knowledge.set_redirect_over(
            service,
            neighbours.iter().map(|n| n.as_ref().to_owned()),
            fraction,
        );
    }

    /// The provider-choice strategy in use.
    pub fn choice(&self) -> Arc<dyn ProviderChoice> {
        self.inner().negotiator.choice().get()
    }

    /// Switches provider choice to `strategy`; what the previous strategy learned is dropped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use selflet_core::choice::Choice;
    ///
    /// let a = selflet_core::Agent::builder("a").spawn().await?;
    /// a.set_choice(Choice::Greedy.strategy(1));
    /// assert_eq!(a.choice().name(), "greedy");
    /// # Ok(()) }
    /// ```
    pub fn set_choice(&self, strategy: Arc<dyn ProviderChoice>) {
        tracing::info!(agent = %self.name(), choice = %strategy.name(), "provider choice switched");
        self.inner().negotiator.choice().set(strategy);
    }

    /// The transport the agent is on.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        self.inner().negotiator.transport()
    }

    /// Messages its transport has carried (for every agent on it).
    pub fn message_counters(&self) -> MessageCounters {
        self.transport().counters()
    }

    /// How much waits in the agent's two queues that fall behind first under load: its inbox
    /// (deliveries from peers) and its policy rules' events.
    pub fn queue_depths(&self) -> QueueDepths {
        let inbox = crate::sync::lock(&self.inner().membership)
            .as_ref()
            .map_or(0, |m| m.inbox.len());
        QueueDepths {
            inbox,
            policy: self.policies().queued(),
        }
    }

    /// Gossips every period, from now until the agent stops, if it gossips at all.
    fn start_gossip(&self) {
        let negotiator = Arc::clone(&self.inner().negotiator);
        let Some(period) = negotiator.gossip_period() else {
            return;
        };
        let stop = self.loops_token();
        self.spawn_task(|_| async move {
            let mut rng = fastrand::Rng::with_seed(negotiator.gossip_seed());
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => negotiator.gossip_round(&mut rng),
                }
            }
        });
    }

    /// Serves the inbox, and advertises now and whenever the agent's offers change.
    pub(crate) fn start_negotiation(&self) {
        let inner = self.inner();
        let Some((inbox, members)) = crate::sync::lock(&inner.membership)
            .as_ref()
            .map(|m| (m.inbox.clone(), m.changes.clone()))
        else {
            return;
        };
        // The inbox is served until the very end of shutdown, not only until it begins: work
        // finishing in the grace period still needs its replies.
        inner
            .negotiator
            .serve_inbox(&inbox, inner.cancel.clone(), inner.tasks.clone());
        inner.negotiator.advertise();
        self.start_gossip();
        // A transport whose members leave only by stopping (the in-process network) closes
        // the channel at once, with nothing in it: no task waits on it then.
        if !(members.is_closed() && members.is_empty()) {
            self.follow_members(members);
        }
        self.advertise_on_change();
    }

    /// Tells the negotiation and the bus of members joining and leaving.
    fn follow_members(&self, members: async_channel::Receiver<MemberChange>) {
        let inner = self.inner();
        let negotiator = Arc::clone(&inner.negotiator);
        let bus = inner.bus.clone();
        let name = self.name().to_owned();
        let stop = self.loops_token();
        self.spawn_task(|_| async move {
            loop {
                let change = tokio::select! {
                    _ = stop.cancelled() => break,
                    c = members.recv() => match c {
                        Ok(c) => c,
                        Err(_) => break,
                    },
                };
                let sent = match change {
                    MemberChange::Joined(agent) => {
                        negotiator.member_joined(&agent);
                        tracing::info!(agent = %name, neighbour = %agent, "{}", topic::NeighbourJoined::TOPIC);
                        bus.emit(&topic::NeighbourJoined { agent }).await
                    }
                    MemberChange::Left(agent) => {
                        negotiator.member_left(&agent);
                        tracing::info!(agent = %name, neighbour = %agent, "{}", topic::NeighbourLeft::TOPIC);
                        bus.emit(&topic::NeighbourLeft { agent }).await
                    }
                };
                if sent.is_err() {
                    break;
                }
            }
        });
    }

    /// Advertises again whenever what the agent offers changes. No task waits for that: a
    /// change schedules one advert, and the changes that follow before it is sent join it.
    fn advertise_on_change(&self) {
        let inner = self.inner();
        let negotiator = Arc::downgrade(&inner.negotiator);
        let tasks = inner.tasks.clone();
        let stop = self.loops_token();
        let pending = Arc::new(AtomicBool::new(false));
        inner.knowledge.on_offers_change(move || {
            if stop.is_cancelled() || pending.swap(true, Ordering::AcqRel) {
                return;
            }
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                // Changed from outside any runtime: advertise from here.
                pending.store(false, Ordering::Release);
                if let Some(n) = negotiator.upgrade() {
                    n.advertise();
                }
                return;
            };
            let (negotiator, pending, stop) =
                (negotiator.clone(), Arc::clone(&pending), stop.clone());
            let advert = async move {
                // After the change's own task has gone on: a burst of changes is one advert.
                tokio::task::yield_now().await;
                pending.store(false, Ordering::Release);
                if let Some(n) = negotiator.upgrade().filter(|_| !stop.is_cancelled()) {
                    n.advertise();
                }
            };
            tasks.spawn_on(advert, &runtime);
        });
    }
}

/// What waits in an agent's queues (see [`AgentHandle::queue_depths`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepths {
    /// Deliveries from peers not handled yet.
    pub inbox: usize,
    /// Events the policy rules have not seen yet.
    pub policy: usize,
}
