//! The Negotiation Manager: services between agents, in their offer modes.
//!
//! Every offered service has a combination of offer modes (can do, can teach, knows who can
//! do, knows who can teach). A request names the service, the acceptable modes in order of
//! preference, and an input; the provider answers with the result, a teaching package, a
//! referral or a refusal, trying the requester's modes in order among those it offers.
//!
//! Discovery needs no identities: agents advertise their offers when they start and whenever
//! they change; a requester that knows no provider publishes a discovery request to whoever
//! offers the service and waits for their adverts. Every agent keeps a provider directory fed
//! by adverts, replies and referrals; providers that fail or time out are marked and passed
//! over while others are known. Which known provider to ask is a [`ProviderChoice`].
//!
//! Every call ends with a result, an error or a time-out; a failed or silent provider is
//! retried on the next one; a provider that leaves the network (on transports that tell, such
//! as Zenoh) is forgotten and the requests waiting for it fail at once. Bus events:
//! `service.request.outgoing`, `service.request.incoming`, `service.executed`,
//! `service.failed`, `service.learned`, `service.taught`, `neighbour.joined`,
//! `neighbour.left`.

mod choice;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

pub use choice::{FirstKnown, LeastRecentlyFailed, ProviderChoice, RoundRobin};

use crate::ability::Abilities;
use crate::behaviour::{Behaviour, Behaviours, Runtime};
use crate::bus::Bus;
use crate::knowledge::{Knowledge, Service};
use crate::offer::{OfferMode, OfferModes};
use crate::source::SourceFile;
use crate::sync::lock;
use crate::transport::{Envelope, Message, Reply, TeachingPackage, Transport};
use crate::value::Value;

/// Published when a request leaves the agent: `{service, provider, modes}`.
pub const REQUEST_OUTGOING: &str = "service.request.outgoing";
/// Published when a request arrives: `{service, requester, modes}`.
pub const REQUEST_INCOMING: &str = "service.request.incoming";
/// Published when the agent ran a service for a peer: `{service, requester}`.
pub const EXECUTED: &str = "service.executed";
/// Published when a call failed: `{service, provider, error}`.
pub const FAILED: &str = "service.failed";
/// Published when the agent learned a service: `{service, teacher}`.
pub const LEARNED: &str = "service.learned";
/// Published when the agent taught a service: `{service, learner}`.
pub const TAUGHT: &str = "service.taught";
/// Published when another agent appeared on the network: `{agent}`.
pub const NEIGHBOUR_JOINED: &str = "neighbour.joined";
/// Published when another agent left the network or its process is gone: `{agent}`.
pub const NEIGHBOUR_LEFT: &str = "neighbour.left";

/// How an agent negotiates: time-outs, retries, whom it learns from, whom it talks to.
#[derive(Clone)]
pub struct Config {
    /// How long to wait for a reply.
    pub timeout: Duration,
    /// How many other providers to try after a failure or time-out.
    pub retries: u32,
    /// Agents it accepts teaching from; `None` accepts anyone.
    pub teachers: Option<Vec<String>>,
    /// Agents it talks to; empty means any.
    pub neighbours: Vec<String>,
    /// Which known provider to ask.
    pub choice: Arc<dyn ProviderChoice>,
    /// How long a failure puts a provider behind the others.
    pub cool_down: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("teachers", &self.teachers)
            .field("neighbours", &self.neighbours)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: Duration::from_secs(5),
            retries: 2,
            teachers: None,
            neighbours: Vec::new(),
            choice: Arc::new(LeastRecentlyFailed::default()),
            cool_down: Duration::from_secs(30),
        }
    }
}

/// Why a remote call or request did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No provider is known and none answered a discovery.
    #[error("no provider of `{0}` is known or answered")]
    NoProvider(String),
    /// Every provider tried failed, refused or timed out; the last reason is given.
    #[error("`{service}`: {last}")]
    Exhausted {
        /// The service.
        service: String,
        /// What happened with the last provider tried.
        last: String,
    },
    /// The teaching package was refused or invalid; nothing was installed.
    #[error("`{service}` taught by `{teacher}` was not installed: {reason}")]
    NotLearned {
        /// The service.
        service: String,
        /// The teacher.
        teacher: String,
        /// Why.
        reason: String,
    },
    /// The agent is stopping.
    #[error("the agent is stopping")]
    Stopped,
    /// The service ran locally and failed.
    #[error(transparent)]
    Local(#[from] crate::behaviour::BehaviourError),
}

/// What a request obtained.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The provider ran the service: its output.
    Done(Value),
    /// The service was taught and installed: it now runs locally.
    Learned {
        /// Who taught it.
        teacher: String,
    },
}

/// One agent's negotiation part.
pub(crate) struct Negotiator {
    agent: String,
    transport: Arc<dyn Transport>,
    knowledge: Knowledge,
    bus: Bus,
    runtime: Runtime,
    behaviours: Behaviours,
    abilities: Abilities,
    config: Config,
    // Requests waiting for their reply, by id: the provider asked, and where the reply goes.
    pending: Mutex<HashMap<u64, (String, oneshot::Sender<Envelope>)>>,
    next_id: AtomicU64,
    self_ref: std::sync::OnceLock<std::sync::Weak<Negotiator>>,
    // Agents this one has exchanged adverts with.
    peers: Mutex<std::collections::HashSet<String>>,
    advertised: std::sync::atomic::AtomicBool,
}

impl Negotiator {
    #[allow(clippy::too_many_arguments)] // one call site, in the builder, which has exactly these parts
    pub(crate) fn new(
        agent: &str,
        transport: Arc<dyn Transport>,
        knowledge: Knowledge,
        bus: Bus,
        runtime: Runtime,
        behaviours: Behaviours,
        abilities: Abilities,
        config: Config,
    ) -> Negotiator {
        Negotiator {
            agent: agent.to_owned(),
            transport,
            knowledge,
            bus,
            runtime,
            behaviours,
            abilities,
            config,
            pending: Mutex::default(),
            next_id: AtomicU64::new(1),
            self_ref: std::sync::OnceLock::new(),
            peers: Mutex::default(),
            advertised: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Puts the negotiator behind an `Arc` and makes it the runtime's way to remote services.
    pub(crate) fn install(self) -> Arc<Negotiator> {
        let this = Arc::new(self);
        let _ = this.self_ref.set(Arc::downgrade(&this));
        let weak: std::sync::Weak<dyn crate::behaviour::RemoteCaller> = Arc::downgrade(&this) as _;
        this.runtime.set_remote(weak);
        this
    }

    pub(crate) fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Ends every call still waiting for a reply: the agent is stopping.
    pub(crate) fn stop(&self) {
        lock(&self.pending).clear();
    }

    fn talks_to(&self, agent: &str) -> bool {
        agent != self.agent
            && (self.config.neighbours.is_empty()
                || self.config.neighbours.iter().any(|n| n == agent))
            && self.knowledge.neighbour_enabled(agent)
    }

    fn envelope(&self, to: &str, id: u64, body: Message) -> Envelope {
        Envelope {
            from: self.agent.clone(),
            to: to.to_owned(),
            id,
            body,
        }
    }

    fn offers(&self) -> Vec<(String, OfferModes)> {
        self.knowledge
            .services()
            .into_iter()
            .map(|s| (s.name, s.modes))
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
        for s in &services {
            self.transport.offer(&self.agent, &s.0, !s.1.is_empty());
        }
        let body = Message::Advert { services };
        for member in self.transport.members() {
            if self.talks_to(&member) {
                lock(&self.peers).insert(member.clone());
                let _ = self.transport.send(self.envelope(&member, 0, body.clone()));
            }
        }
    }

    /// A neighbour left the network: it provides nothing any more, and the requests waiting
    /// for it fail now (and are retried elsewhere) rather than at their time-out.
    pub(crate) fn member_left(&self, agent: &str) {
        self.knowledge.providers().forget(agent);
        lock(&self.peers).remove(agent);
        let waiting: Vec<_> = lock(&self.pending)
            .extract_if(|_, (to, _)| to == agent)
            .collect();
        for (id, (_, tx)) in waiting {
            let body = Message::Reply(Reply::Failed(format!("`{agent}` left the network")));
            let _ = tx.send(Envelope {
                from: agent.to_owned(),
                to: self.agent.clone(),
                id,
                body,
            });
        }
    }

    /// A neighbour joined: it hears what this agent offers, if anything and if it has not
    /// already.
    pub(crate) fn member_joined(&self, agent: &str) {
        if !self.talks_to(agent) {
            return;
        }
        let services = self.offers();
        if services.iter().any(|(_, m)| !m.is_empty()) && lock(&self.peers).insert(agent.to_owned())
        {
            let body = Message::Advert { services };
            let _ = self.transport.send(self.envelope(agent, 0, body));
        }
    }

    /// Sends a request and waits for its reply (or the time-out).
    async fn ask(&self, to: &str, body: Message) -> Result<Envelope, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, (to.to_owned(), tx));
        if let Err(e) = self.transport.send(self.envelope(to, id, body)) {
            lock(&self.pending).remove(&id);
            return Err(e.to_string());
        }
        let reply = tokio::time::timeout(self.config.timeout, rx).await;
        lock(&self.pending).remove(&id);
        match reply {
            Ok(Ok(env)) => Ok(env),
            Ok(Err(_)) => Err("the agent is stopping".into()),
            Err(_) => Err(format!(
                "no reply from `{to}` within {:?}",
                self.config.timeout
            )),
        }
    }

    /// The known providers of `service` in `modes`, best first.
    fn known(&self, service: &str, modes: &[OfferMode]) -> Vec<String> {
        let now = tokio::time::Instant::now();
        let (healthy, failing): (Vec<_>, Vec<_>) = self
            .knowledge
            .providers()
            .providers(service)
            .into_iter()
            .filter(|p| self.talks_to(&p.agent) && modes.iter().any(|m| p.modes.contains(*m)))
            .partition(|p| {
                p.last_failure
                    .is_none_or(|t| now.duration_since(t) >= self.config.cool_down)
            });
        // Providers that failed recently come last, whatever the strategy prefers.
        let mut order = Vec::new();
        for mut rest in [healthy, failing] {
            while !rest.is_empty() {
                let i = self
                    .config
                    .choice
                    .choose(service, &rest)
                    .unwrap_or(0)
                    .min(rest.len() - 1);
                order.push(rest.remove(i).agent);
            }
        }
        order
    }

    /// Providers to try for `service` in `modes`, best first; discovers some if none is known.
    async fn candidates(&self, service: &str, modes: &[OfferMode]) -> Vec<String> {
        let found = self.known(service, modes);
        if !found.is_empty() {
            return found;
        }
        // Nobody known: ask whoever offers the service to say so, and give them the time-out
        // to answer with adverts.
        let discover = self.envelope(
            "",
            0,
            Message::Discover {
                service: service.to_owned(),
            },
        );
        if self.transport.publish(service, discover) == 0 {
            return Vec::new();
        }
        let deadline = crate::duration::deadline(self.config.timeout);
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let found = self.known(service, modes);
            if !found.is_empty() || tokio::time::Instant::now() >= deadline {
                return found;
            }
        }
    }

    /// Asks for `service` in `modes` (preferred first): runs it remotely, learns it, or
    /// follows referrals, retrying other providers on failure.
    pub(crate) async fn request(
        &self,
        service: &str,
        modes: &[OfferMode],
        input: Value,
    ) -> Result<Outcome, CallError> {
        let mut queue = self.candidates(service, modes).await;
        if queue.is_empty() {
            let _ = self
                .bus
                .publish(FAILED, failure(service, "", "no provider known"))
                .await;
            return Err(CallError::NoProvider(service.to_owned()));
        }
        let mut tried: Vec<String> = Vec::new();
        let mut last = String::new();
        while tried.len() <= self.config.retries as usize {
            if queue.is_empty() {
                // Providers heard of while this request went on: a newcomer, a changed offer.
                queue = self.known(service, modes);
                queue.retain(|p| !tried.contains(p));
            }
            if queue.is_empty() {
                break;
            }
            let provider = queue.remove(0);
            if tried.contains(&provider) {
                continue;
            }
            tried.push(provider.clone());
            self.announce_outgoing(service, &provider, modes).await;
            tracing::debug!(agent = %self.agent, %service, %provider, ?modes, "request sent");
            let body = Message::Request {
                service: service.to_owned(),
                modes: modes.to_vec(),
                input: input.clone(),
            };
            let outcome = match self.ask(&provider, body).await {
                Err(e) => Err::<(), String>(e),
                Ok(env) => match env.body {
                    Message::Reply(Reply::Done(v)) => {
                        return self.succeeded(service, &provider, Outcome::Done(v));
                    }
                    Message::Reply(Reply::Teach(pkg)) => {
                        self.learn(pkg, &provider, OfferModes::NONE).await?;
                        return self.succeeded(
                            service,
                            &provider,
                            Outcome::Learned {
                                teacher: provider.clone(),
                            },
                        );
                    }
                    Message::Reply(Reply::Referral(list)) => {
                        for (agent, m) in list {
                            self.knowledge.providers().heard(service, &agent, m);
                            if !tried.contains(&agent) && !queue.contains(&agent) {
                                queue.push(agent);
                            }
                        }
                        Err(format!("`{provider}` referred the request"))
                    }
                    Message::Reply(Reply::Refused(r)) => Err(format!("`{provider}` refused: {r}")),
                    Message::Reply(Reply::Failed(e)) => Err(format!("`{provider}` failed: {e}")),
                    other => Err(format!("`{provider}` answered with a {}", other.kind())),
                },
            };
            if let Err(e) = outcome {
                // A referral is not a failure of the referrer.
                if !e.ends_with("referred the request") {
                    self.knowledge.providers().failed(service, &provider);
                    let _ = self
                        .bus
                        .publish(FAILED, failure(service, &provider, &e))
                        .await;
                }
                last = e;
            }
        }
        Err(CallError::Exhausted {
            service: service.to_owned(),
            last,
        })
    }

    fn succeeded(
        &self,
        service: &str,
        provider: &str,
        outcome: Outcome,
    ) -> Result<Outcome, CallError> {
        // Hearing back is news of the provider too: it is fresh and no longer failing.
        if let Some(p) = self
            .knowledge
            .providers()
            .providers(service)
            .into_iter()
            .find(|p| p.agent == provider)
        {
            self.knowledge.providers().heard(service, provider, p.modes);
        }
        Ok(outcome)
    }

    /// Teaches `service` to `neighbour` unasked (to shed load on it); it will offer it can-do.
    pub(crate) async fn teach(&self, service: &str, neighbour: &str) -> Result<(), String> {
        let offer = self
            .knowledge
            .service(service)
            .ok_or_else(|| format!("no service `{service}` here"))?;
        let pkg = self.package(&offer)?;
        self.transport
            .send(self.envelope(neighbour, 0, Message::Lesson(pkg)))
            .map_err(|e| e.to_string())?;
        let ev = Value::map([
            ("service", Value::from(service)),
            ("learner", Value::from(neighbour)),
        ]);
        let _ = self.bus.publish(TAUGHT, ev).await;
        tracing::info!(agent = %self.agent, %service, learner = %neighbour, "service taught unasked");
        Ok(())
    }

    /// Runs `service` on one given agent, can-do.
    pub(crate) async fn call_on(
        &self,
        provider: &str,
        service: &str,
        input: Value,
    ) -> Result<Value, String> {
        self.announce_outgoing(service, provider, &[OfferMode::CanDo])
            .await;
        let body = Message::Request {
            service: service.to_owned(),
            modes: vec![OfferMode::CanDo],
            input,
        };
        match self.ask(provider, body).await?.body {
            Message::Reply(Reply::Done(v)) => Ok(v),
            Message::Reply(other) => Err(format!(
                "`{provider}` answered {}",
                Message::Reply(other).kind()
            )),
            other => Err(format!("`{provider}` answered with a {}", other.kind())),
        }
    }

    /// Publishes `service.request.outgoing`, which the frequent-service predictor counts.
    async fn announce_outgoing(&self, service: &str, provider: &str, modes: &[OfferMode]) {
        let event = Value::map([
            ("service", Value::from(service)),
            ("provider", Value::from(provider)),
            ("modes", modes_value(modes)),
        ]);
        let _ = self.bus.publish(REQUEST_OUTGOING, event).await;
    }

    /// Tells the neighbours this agent's utilization.
    pub(crate) fn share_load(&self, utilization: f64) {
        self.knowledge.set_load(&self.agent, utilization);
        for member in self.transport.members() {
            if self.talks_to(&member) {
                let _ =
                    self.transport
                        .send(self.envelope(&member, 0, Message::Load { utilization }));
            }
        }
    }

    /// Validates and installs a taught service. Everything is checked before anything is
    /// installed, so a refused or invalid package leaves the agent as it was.
    pub(crate) async fn learn(
        &self,
        pkg: TeachingPackage,
        teacher: &str,
        offer: OfferModes,
    ) -> Result<(), CallError> {
        let refuse = |reason: String| CallError::NotLearned {
            service: pkg.service.clone(),
            teacher: teacher.to_owned(),
            reason,
        };
        if let Some(allowed) = &self.config.teachers
            && !allowed.iter().any(|t| t == teacher)
        {
            return Err(refuse(
                "the teacher is not in this agent's `teachers` list".into(),
            ));
        }
        let source = SourceFile::new(
            format!("{} (taught by {teacher})", pkg.behaviour),
            pkg.behaviour_source.clone(),
        );
        let behaviour = Behaviour::parse(source).map_err(|e| refuse(e.to_string()))?;
        if behaviour.name() != pkg.behaviour {
            return Err(refuse(format!(
                "the package names behaviour `{}` but carries `{}`",
                pkg.behaviour,
                behaviour.name()
            )));
        }
        let scripts: Vec<SourceFile> = pkg
            .scripts
            .iter()
            .map(|(n, s)| SourceFile::new(n.clone(), s.clone()))
            .collect();
        for s in &scripts {
            self.abilities
                .check_script(s)
                .map_err(|e| refuse(e.to_string()))?;
        }
        for s in scripts {
            self.abilities
                .load_script(s)
                .map_err(|e| refuse(e.to_string()))?;
        }
        let missing: Vec<String> = behaviour
            .abilities()
            .into_iter()
            .filter(|a| !self.abilities.contains(a))
            .collect();
        if !missing.is_empty() {
            return Err(refuse(format!(
                "abilities {missing:?} are neither taught nor installed here"
            )));
        }
        for r in &pkg.requires {
            self.knowledge.require(r);
        }
        self.behaviours.install(behaviour);
        self.knowledge
            .offer(Service {
                name: pkg.service.clone(),
                behaviour: Some(pkg.behaviour.clone()),
                modes: offer,
                requires: pkg.requires.clone(),
            })
            .await;
        let event = Value::map([
            ("service", Value::from(pkg.service.as_str())),
            ("teacher", Value::from(teacher)),
        ]);
        let _ = self.bus.publish(LEARNED, event).await;
        tracing::info!(agent = %self.agent, service = %pkg.service, teacher, "service learned");
        Ok(())
    }

    /// Handles what arrives in the inbox until the agent stops.
    pub(crate) async fn serve(
        self: Arc<Self>,
        inbox: async_channel::Receiver<Envelope>,
        stop: CancellationToken,
        work: tokio_util::task::TaskTracker,
    ) {
        loop {
            let env = tokio::select! {
                _ = stop.cancelled() => break,
                env = inbox.recv() => match env {
                    Ok(env) => env,
                    Err(_) => break,
                },
            };
            if !self.talks_to(&env.from) {
                continue;
            }
            match env.body {
                Message::Reply(_) => {
                    let waiting = lock(&self.pending).remove(&env.id);
                    // Only the agent asked may answer: an id is not a capability.
                    match waiting {
                        Some((to, tx)) if to == env.from => {
                            let _ = tx.send(env);
                        }
                        Some(other) => {
                            lock(&self.pending).insert(env.id, other);
                        }
                        None => {}
                    }
                }
                Message::Advert { services } => {
                    for (s, modes) in services {
                        self.knowledge.providers().heard(&s, &env.from, modes);
                    }
                    // A newcomer learns what the agents already there offer: each answers its
                    // first advert with its own.
                    if lock(&self.peers).insert(env.from.clone()) {
                        let offers = self.offers();
                        if !offers.is_empty() {
                            let body = Message::Advert { services: offers };
                            let _ = self.transport.send(self.envelope(&env.from, 0, body));
                        }
                    }
                }
                Message::Discover { service } => {
                    // The whole offer, not just the service asked about: the asker will likely
                    // need the others too, and this saves it a discovery each.
                    if self
                        .knowledge
                        .service(&service)
                        .is_some_and(|s| !s.modes.is_empty())
                    {
                        lock(&self.peers).insert(env.from.clone());
                        let body = Message::Advert {
                            services: self.offers(),
                        };
                        let _ = self.transport.send(self.envelope(&env.from, 0, body));
                    }
                }
                Message::Lesson(pkg) => {
                    // Taught to take over part of the teacher's load: offered can-do, so the
                    // teacher's redirected requests are served.
                    let service = pkg.service.clone();
                    if let Err(e) = self.learn(pkg, &env.from, OfferModes::CAN_DO).await {
                        tracing::warn!(agent = %self.agent, %service, "lesson refused: {e}");
                    }
                }
                Message::Load { utilization } => self.knowledge.set_load(&env.from, utilization),
                Message::Request {
                    service,
                    modes,
                    input,
                } => {
                    let event = Value::map([
                        ("service", Value::from(service.as_str())),
                        ("requester", Value::from(env.from.as_str())),
                        ("modes", modes_value(&modes)),
                    ]);
                    let _ = self.bus.publish(REQUEST_INCOMING, event).await;
                    // Each request is in-flight work of its own, so a slow service does not
                    // hold the inbox up, and shutdown answers it or lets it finish.
                    let this = Arc::clone(&self);
                    if work.is_closed() {
                        let body = Message::Reply(Reply::Failed("the agent is stopping".into()));
                        let _ = self.transport.send(self.envelope(&env.from, env.id, body));
                        continue;
                    }
                    work.spawn(async move {
                        let reply = this.answer(&service, &modes, input, &env.from).await;
                        let _ = this.transport.send(this.envelope(
                            &env.from,
                            env.id,
                            Message::Reply(reply),
                        ));
                    });
                }
            }
        }
    }

    /// What to answer a request with: the first of the requester's modes this agent offers.
    async fn answer(
        &self,
        service: &str,
        modes: &[OfferMode],
        input: Value,
        requester: &str,
    ) -> Reply {
        let Some(offer) = self.knowledge.service(service) else {
            return Reply::Refused(format!("`{}` does not offer `{service}`", self.agent));
        };
        for mode in modes {
            if !offer.modes.contains(*mode) {
                continue;
            }
            match mode {
                OfferMode::CanDo => {
                    let Some(b) = offer.behaviour.as_deref() else {
                        continue;
                    };
                    if let Some(to) = self.knowledge.redirect_turn(service)
                        && to != requester
                        && self.talks_to(&to)
                    {
                        return Reply::Referral(vec![(to, OfferModes::CAN_DO)]);
                    }
                    let result = tokio::select! {
                        r = self.runtime.run_named(b, input.clone(), 0) => r,
                        // Shutdown cancels in-flight work after its grace period.
                        _ = self.runtime.cancelled() => return Reply::Failed("the agent is stopping".into()),
                    };
                    let ev = Value::map([
                        ("service", Value::from(service)),
                        ("requester", Value::from(requester)),
                    ]);
                    return match result {
                        Ok(v) => {
                            let _ = self.bus.publish(EXECUTED, ev).await;
                            Reply::Done(v)
                        }
                        Err(e) => {
                            let _ = self
                                .bus
                                .publish(FAILED, failure(service, &self.agent, &e.to_string()))
                                .await;
                            Reply::Failed(e.to_string())
                        }
                    };
                }
                OfferMode::CanTeach => match self.package(&offer) {
                    Ok(pkg) => {
                        let ev = Value::map([
                            ("service", Value::from(service)),
                            ("learner", Value::from(requester)),
                        ]);
                        let _ = self.bus.publish(TAUGHT, ev).await;
                        tracing::info!(agent = %self.agent, %service, learner = %requester, "service taught");
                        return Reply::Teach(pkg);
                    }
                    Err(reason) => return Reply::Refused(reason),
                },
                OfferMode::KnowsWhoCanDo | OfferMode::KnowsWhoCanTeach => {
                    let wanted = if *mode == OfferMode::KnowsWhoCanDo {
                        OfferMode::CanDo
                    } else {
                        OfferMode::CanTeach
                    };
                    let list: Vec<_> = self
                        .knowledge
                        .providers()
                        .providers(service)
                        .into_iter()
                        .filter(|p| p.agent != requester && p.modes.contains(wanted))
                        .map(|p| (p.agent, p.modes))
                        .collect();
                    if !list.is_empty() {
                        return Reply::Referral(list);
                    }
                }
            }
        }
        Reply::Refused(format!(
            "`{}` offers `{service}` as {} only",
            self.agent, offer.modes
        ))
    }

    /// The teaching package of a service: its behaviour's source and the scripts of the
    /// abilities it uses. A service that needs a native ability cannot be taught.
    fn package(&self, offer: &Service) -> Result<TeachingPackage, String> {
        let name = offer
            .behaviour
            .clone()
            .ok_or("the service has no behaviour to teach")?;
        let b = self
            .behaviours
            .get(&name)
            .ok_or_else(|| format!("behaviour `{name}` is not installed"))?;
        let mut scripts: Vec<(String, String)> = Vec::new();
        for a in b.abilities() {
            let script = self
                .abilities
                .script_of(&a)
                .ok_or_else(|| format!("ability `{a}` is native code, which is never taught"))?;
            let entry = (
                script.source().name().to_owned(),
                script.source().text().to_owned(),
            );
            if !scripts.contains(&entry) {
                scripts.push(entry);
            }
        }
        Ok(TeachingPackage {
            service: offer.name.clone(),
            behaviour: name,
            behaviour_source: b.source().text().to_owned(),
            scripts,
            requires: b.requires().to_vec(),
        })
    }
}

impl crate::behaviour::RemoteCaller for Negotiator {
    fn call_remote(
        &self,
        service: String,
        input: Value,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, String>> + Send + 'static>>
    {
        // The future must own what it uses; the agent keeps the negotiator alive while it runs.
        let this = self.self_ref.get().and_then(std::sync::Weak::upgrade);
        Box::pin(async move {
            let this = this.ok_or("the agent is stopping")?;
            let modes = this.knowledge.ask_modes(&service);
            match this
                .request(&service, &modes, input.clone())
                .await
                .map_err(|e| e.to_string())?
            {
                Outcome::Done(v) => Ok(v),
                // Learned: from now on it runs here.
                Outcome::Learned { .. } => this.runtime.call_service(&service, input, 0).await,
            }
        })
    }
}

fn modes_value(modes: &[OfferMode]) -> Value {
    Value::List(modes.iter().map(|m| Value::from(m.name())).collect())
}

fn failure(service: &str, provider: &str, error: &str) -> Value {
    Value::map([
        ("service", Value::from(service)),
        ("provider", Value::from(provider)),
        ("error", Value::from(error)),
    ])
}
