//! Internal Knowledge: what a SelfLet knows about itself and its neighbours.
//!
//! * the **knowledge base**: facts (key → [`Value`]); every change is published on the bus as
//!   `knowledge.fact.changed` or `knowledge.fact.removed`, so policies can react to it;
//! * the **service repository**: the services the agent offers, how it offers them
//!   ([`OfferModes`]), which behaviour implements each and which services that behaviour needs;
//!   changes are published as `knowledge.service.changed`;
//! * the **attribute repository**: descriptive properties of the agent (location, capacity, ...);
//! * the **provider directory**: for each service the agent needs, who is known to provide it,
//!   how, and when they were last heard of.
//!
//! The behaviour repository lives with the behaviours themselves
//! ([`crate::behaviour`]), which own their validation.

use litemap::LiteMap;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::name::Name;
use crate::offer::{OfferMode, OfferModes};
use tokio::time::Instant;

use crate::bus::Bus;
use crate::sync::{read, write};
use crate::topic;
use crate::value::Value;

/// A service in the repository: how it is offered and what implements it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The service name.
    pub name: String,
    /// The behaviour that implements it locally, if the agent has one. An agent that only
    /// knows who provides a service has none.
    pub behaviour: Option<String>,
    /// How the agent offers it to others.
    pub modes: OfferModes,
    /// Services the implementing behaviour calls.
    pub requires: Vec<String>,
    /// How long one run of it may take here (the agent's default when `None`).
    pub time_limit: Option<Duration>,
}

impl Service {
    /// A service implemented by a behaviour of the same name, offered in the given modes.
    pub fn new(name: impl Into<String>, modes: OfferModes) -> Service {
        let name = name.into();
        Service {
            behaviour: Some(name.clone()),
            name,
            modes,
            requires: Vec::new(),
            time_limit: None,
        }
    }

    /// A service the agent does not run, only knows about: offered in knows-who modes, it is
    /// answered with referrals to the providers the agent has heard of.
    ///
    /// ```
    /// use selflet_core::{OfferModes, Service};
    ///
    /// let s = Service::known("translate", OfferModes::KNOWS_WHO_CAN_DO);
    /// assert_eq!(s.behaviour, None);
    /// ```
    pub fn known(name: impl Into<String>, modes: OfferModes) -> Service {
        Service {
            behaviour: None,
            ..Service::new(name, modes)
        }
    }

    /// The same service, declaring the services its behaviour calls.
    pub fn requiring(mut self, services: impl IntoIterator<Item = impl Into<String>>) -> Service {
        self.requires = services.into_iter().map(Into::into).collect();
        self
    }

    /// The same service, with a time limit for each run of it.
    pub fn time_limit(mut self, limit: Duration) -> Service {
        self.time_limit = Some(limit);
        self
    }

    fn changed(&self) -> topic::ServiceChanged {
        topic::ServiceChanged {
            service: self.name.clone(),
            behaviour: Value::from(self.behaviour.clone()),
            modes: self.modes.iter().map(|m| m.name().to_owned()).collect(),
            requires: self.requires.clone(),
        }
    }
}

/// What is known about one provider of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    /// The provider agent's name.
    pub agent: Name,
    /// The modes it offers the service in, as last heard.
    pub modes: OfferModes,
    /// When it was last heard of (advert, reply or referral).
    pub last_heard: Instant,
    /// Failures (errors, time-outs) since it was last heard of successfully.
    pub failures: u32,
    /// When it last failed.
    pub last_failure: Option<Instant>,
    /// The quality it last advertised for the service, in (0, 1], if gossip told it.
    pub advertised: Option<f64>,
    /// Whether it was learned through gossip (and so counts toward the gossip's Known set).
    pub gossiped: bool,
    /// When a call to it last succeeded.
    pub last_used: Option<Instant>,
}

impl Provider {
    /// A provider just heard of, with no history.
    pub fn new(agent: &str, modes: OfferModes) -> Provider {
        Provider::heard_at(agent, modes, Instant::now())
    }

    fn heard_at(agent: &str, modes: OfferModes, now: Instant) -> Provider {
        Provider {
            agent: agent.into(),
            modes,
            last_heard: now,
            failures: 0,
            last_failure: None,
            advertised: None,
            gossiped: false,
            last_used: None,
        }
    }
}

/// A provider that gossip told of: who, what it offers, and the quality it advertised.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Gossiped<'a> {
    /// The provider.
    pub(crate) agent: &'a str,
    /// Its modes.
    pub(crate) modes: OfferModes,
    /// The quality it advertised, in (0, 1].
    pub(crate) quality: Option<f64>,
}

/// How many providers the directory keeps per service.
pub const MAX_PROVIDERS_PER_SERVICE: usize = 64;

/// How many services the directory keeps providers for.
pub const MAX_DIRECTORY_SERVICES: usize = 4096;

/// The directory is full: an entry was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the provider directory is full")]
pub struct DirectoryFull;

/// Per service, the agents known to provide it. Peers feed it, so it is bounded: at most
/// [`MAX_PROVIDERS_PER_SERVICE`] providers for each of at most [`MAX_DIRECTORY_SERVICES`]
/// services, and an agent is forgotten everywhere when it leaves.
#[derive(Debug, Default)]
pub struct ProviderDirectory {
    by_service: RwLock<BTreeMap<String, Vec<Provider>>>,
}

/// The providers of `service`, a new empty list if the directory has room for one more
/// service. The name is copied only for a new one: gossip updates known services many times a
/// round.
fn list_mut<'m>(
    all: &'m mut BTreeMap<String, Vec<Provider>>,
    service: &str,
) -> Result<&'m mut Vec<Provider>, DirectoryFull> {
    if !all.contains_key(service) {
        if all.len() >= MAX_DIRECTORY_SERVICES {
            return Err(DirectoryFull);
        }
        all.insert(service.to_owned(), Vec::new());
    }
    all.get_mut(service).ok_or(DirectoryFull)
}

/// Keeps a gossiped provider in one service's `list` if it is known, or among the best
/// `known`; see [`ProviderDirectory::gossiped`].
fn keep_gossiped(
    list: &mut Vec<Provider>,
    g: &Gossiped<'_>,
    known: usize,
    in_use: std::time::Duration,
    now: Instant,
) -> bool {
    if let Some(p) = list.iter_mut().find(|p| p.agent == g.agent) {
        p.modes = g.modes;
        p.advertised = g.quality;
        p.last_heard = now;
        return true;
    }
    let gossiped = list.iter().filter(|p| p.gossiped).count();
    if gossiped >= known || list.len() >= MAX_PROVIDERS_PER_SERVICE {
        let worst = list
            .iter()
            .enumerate()
            .filter(|(_, p)| p.gossiped)
            .filter(|(_, p)| p.last_used.is_none_or(|t| now.duration_since(t) > in_use))
            .min_by(|(_, a), (_, b)| {
                let q = |p: &Provider| p.advertised.unwrap_or(0.0);
                q(a).total_cmp(&q(b))
            })
            .map(|(i, p)| (i, p.advertised.unwrap_or(0.0)));
        match worst {
            Some((i, q)) if g.quality.unwrap_or(0.0) >= q => {
                list.remove(i);
            }
            _ => return false,
        }
    }
    let mut p = Provider::heard_at(g.agent, g.modes, now);
    p.advertised = g.quality;
    p.gossiped = true;
    list.push(p);
    true
}

/// What a directory made of one gossip message: how many providers it kept, and how many
/// did not fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Taken {
    pub(crate) kept: usize,
    pub(crate) full: usize,
}

impl ProviderDirectory {
    /// Records that `agent` offers `service` in `modes` (from an advert, a reply or a referral);
    /// resets its failure count. Modes `NONE` removes it. A new entry that does not fit is not
    /// recorded; a full list first makes room by dropping its provider failing longest.
    pub fn heard(
        &self,
        service: &str,
        agent: &str,
        modes: OfferModes,
    ) -> Result<(), DirectoryFull> {
        let mut all = write(&self.by_service);
        if modes.is_empty() {
            if let Some(list) = all.get_mut(service) {
                list.retain(|p| p.agent != agent);
                if list.is_empty() {
                    all.remove(service);
                }
            }
            return Ok(());
        }
        let list = list_mut(&mut all, service)?;
        let now = Instant::now();
        if let Some(p) = list.iter_mut().find(|p| p.agent == agent) {
            p.modes = modes;
            p.last_heard = now;
            p.failures = 0;
            return Ok(());
        }
        if list.len() >= MAX_PROVIDERS_PER_SERVICE {
            let failing = list
                .iter()
                .enumerate()
                .filter(|(_, p)| p.failures > 0)
                .min_by_key(|(_, p)| p.last_failure)
                .map(|(i, _)| i);
            match failing {
                Some(i) => {
                    list.remove(i);
                }
                None => return Err(DirectoryFull),
            }
        }
        list.push(Provider::heard_at(agent, modes, now));
        Ok(())
    }

    /// Records what one gossip message said of providers, each `(service, provider)`,
    /// keeping at most `known` gossiped providers of each service — the best advertised: a
    /// newcomer that advertises at least as much as the worst one replaces it, unless that
    /// one is in use (called successfully within `in_use`). Returns how many were kept, and
    /// how many did not fit the directory.
    ///
    /// A newcomer replaces an equal, not only a worse one: once every provider advertises the
    /// same, Known keeps changing among them, so a consumer stuck with providers it learned
    /// to distrust keeps hearing of untried ones (seed 001 says only that the worst is
    /// replaced by the new one; strictly better froze Known and slowed every recovery).
    pub(crate) fn gossiped<'g>(
        &self,
        told: impl IntoIterator<Item = (&'g str, Gossiped<'g>)>,
        known: usize,
        in_use: std::time::Duration,
    ) -> Taken {
        // One lock and one clock reading for the whole message: an agent receives a few
        // messages of tens of entries every round.
        let mut all = write(&self.by_service);
        let now = Instant::now();
        let mut taken = Taken::default();
        // A message tells of each service's providers together: their list is looked up once.
        let mut told = told.into_iter().peekable();
        while let Some((service, first)) = told.next() {
            let same = told.by_ref();
            let run = std::iter::once(first).chain(std::iter::from_fn(|| {
                same.next_if(|(s, _)| *s == service).map(|(_, g)| g)
            }));
            match list_mut(&mut all, service) {
                Ok(list) => {
                    for g in run {
                        taken.kept += usize::from(keep_gossiped(list, &g, known, in_use, now));
                    }
                }
                Err(DirectoryFull) => taken.full += run.count(),
            }
        }
        taken
    }

    /// Changes what the directory lists of `agent` as a provider of `service`, if it lists it.
    fn update<R>(
        &self,
        service: &str,
        agent: &str,
        f: impl FnOnce(&mut Provider) -> R,
    ) -> Option<R> {
        write(&self.by_service)
            .get_mut(service)?
            .iter_mut()
            .find(|p| p.agent == agent)
            .map(f)
    }

    /// Records that `agent` answered a request for `service`: it is fresh, and no longer
    /// failing. Nothing happens if the directory does not list it.
    pub fn touch(&self, service: &str, agent: &str) {
        self.touch_at(service, agent, Instant::now(), None);
    }

    /// [`touch`](Self::touch), with the time it answered (a caller that read the clock
    /// already does not read it again) and the quality its answer advertised, which replaces
    /// the one listed: the provider's latest word. Returns the one listed before — what the
    /// provider was chosen by — in the same lookup, as every answered call needs it.
    pub(crate) fn touch_at(
        &self,
        service: &str,
        agent: &str,
        now: Instant,
        advertised: Option<f64>,
    ) -> Option<f64> {
        self.update(service, agent, |p| {
            p.last_heard = now;
            p.last_used = Some(now);
            p.failures = 0;
            let before = p.advertised;
            p.advertised = advertised.or(before);
            before
        })
        .flatten()
    }

    /// Records that a call to `agent` for `service` failed or timed out.
    pub fn failed(&self, service: &str, agent: &str) {
        self.update(service, agent, |p| {
            p.failures += 1;
            p.last_failure = Some(Instant::now());
        });
    }

    /// Whether any provider of `service` is known.
    pub fn knows(&self, service: &str) -> bool {
        read(&self.by_service)
            .get(service)
            .is_some_and(|l| !l.is_empty())
    }

    /// The providers of `service` learned through gossip: name, modes, advertised quality.
    pub fn gossiped_of(&self, service: &str) -> Vec<(Name, OfferModes, Option<f64>)> {
        read(&self.by_service)
            .get(service)
            .map_or_else(Vec::new, |l| {
                l.iter()
                    .filter(|p| p.gossiped)
                    .map(|p| (p.agent.clone(), p.modes, p.advertised))
                    .collect()
            })
    }

    /// The quality `agent` last advertised for `service`, if gossip told it.
    pub fn advertised(&self, service: &str, agent: &str) -> Option<f64> {
        read(&self.by_service)
            .get(service)?
            .iter()
            .find(|p| p.agent == agent)?
            .advertised
    }

    /// Forgets an agent everywhere (it left the network).
    pub fn forget(&self, agent: &str) {
        let mut all = write(&self.by_service);
        for list in all.values_mut() {
            list.retain(|p| p.agent != agent);
        }
        all.retain(|_, list| !list.is_empty());
    }

    /// The known providers of a service, in the order they were first heard of.
    pub fn providers(&self, service: &str) -> Vec<Provider> {
        read(&self.by_service)
            .get(service)
            .cloned()
            .unwrap_or_default()
    }

    /// The services that have at least one known provider.
    pub fn services(&self) -> Vec<String> {
        read(&self.by_service)
            .iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(s, _)| s.clone())
            .collect()
    }
}

/// A copy of what a [`ProviderDirectory`] lists, taken by
/// [`snapshot`](ProviderDirectory::snapshot) and put back, in the same directory or another,
/// by [`restore`](ProviderDirectory::restore). Times are kept as ages, so it may be restored
/// on another clock: an experiment's paused one, or another process's.
#[derive(Debug, Clone)]
pub struct DirectorySnapshot {
    taken_at: Instant,
    by_service: BTreeMap<String, Vec<Provider>>,
}

impl DirectorySnapshot {
    /// The known providers of `service`, as [`ProviderDirectory::providers`] gave them when
    /// the snapshot was taken.
    pub fn providers(&self, service: &str) -> &[Provider] {
        self.by_service.get(service).map_or(&[], Vec::as_slice)
    }
}

impl ProviderDirectory {
    /// What the directory lists now, to restore later or in another agent.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use selflet_core::knowledge::ProviderDirectory;
    /// use selflet_core::OfferModes;
    ///
    /// let original = ProviderDirectory::default();
    /// original.heard("resize", "b", OfferModes::CAN_DO).unwrap();
    /// let snapshot = original.snapshot();
    /// tokio::time::sleep(Duration::from_secs(60)).await;
    /// let copy = ProviderDirectory::default();
    /// copy.restore(&snapshot);
    /// let b = &copy.providers("resize")[0];
    /// // Heard of as long before the restore as before the snapshot: just then.
    /// assert_eq!(b.last_heard, tokio::time::Instant::now());
    /// # }
    /// ```
    pub fn snapshot(&self) -> DirectorySnapshot {
        DirectorySnapshot {
            taken_at: Instant::now(),
            by_service: read(&self.by_service).clone(),
        }
    }

    /// Replaces what the directory lists with what `snapshot` listed, every time moved by as
    /// much as the clock moved since it was taken: a provider heard of a second before the
    /// snapshot was heard of a second before the restore. A snapshot holds what a directory
    /// held, so it is within the directory's bounds.
    pub fn restore(&self, snapshot: &DirectorySnapshot) {
        let now = Instant::now();
        // An age that would reach before the clock's origin is taken as now.
        let moved = |t: Instant| {
            now.checked_sub(snapshot.taken_at.saturating_duration_since(t))
                .unwrap_or(now)
        };
        let mut by_service = snapshot.by_service.clone();
        for p in by_service.values_mut().flatten() {
            p.last_heard = moved(p.last_heard);
            p.last_failure = p.last_failure.map(moved);
            p.last_used = p.last_used.map(moved);
        }
        *write(&self.by_service) = by_service;
    }
}

/// The load-balancing model's numbers of one service, from the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Economics {
    /// What one execution earns.
    pub revenue: f64,
    /// What one execution costs the agent that runs it.
    pub cost: f64,
    /// The response time an execution should stay under, in seconds.
    pub threshold: Option<f64>,
}

#[derive(Debug, Clone)]
struct Redirect {
    to: Vec<String>,
    fraction: f64,
    credit: f64,
    // The neighbour the next redirected request goes to, in turn.
    next: usize,
}

/// Where part of a service's requests go instead of running here.
#[derive(Debug, Clone, PartialEq)]
pub struct Redirection {
    /// The neighbours, taking the redirected requests in turn.
    pub to: Vec<String>,
    /// The fraction of the requests redirected, in (0, 1].
    pub fraction: f64,
}

/// A service name that the repository does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no service named `{0}`")]
pub struct UnknownService(pub String);

/// One agent's internal knowledge. Cloning gives another handle to the same knowledge.
#[derive(Clone)]
pub struct Knowledge {
    inner: Arc<Inner>,
}

struct Inner {
    bus: Bus,
    // Most agents hold a few facts: one sorted vector, not a B-tree node of eleven slots.
    facts: RwLock<LiteMap<String, Value>>,
    // Shared, so that serving a request reads its service without copying it.
    services: RwLock<BTreeMap<String, Arc<Service>>>,
    providers: ProviderDirectory,
    // Made on the first change: most agents never set any of it.
    rare: RwLock<Option<Box<Rare>>>,
    // Told when what the agent offers changes, so that the negotiation advertises again. A
    // callback, not a task waiting or a bus subscription: those cost every idle agent memory.
    on_offers_change: std::sync::OnceLock<OffersWatch>,
}

type OffersWatch = Box<dyn Fn() + Send + Sync>;

/// The services an agent needs, with repeats: what it requires (`rare`) and what the services
/// it offers require. Read under both locks, the rare part's first.
fn needed_names<'k>(
    rare: &'k Option<Box<Rare>>,
    services: &'k BTreeMap<String, Arc<Service>>,
) -> impl Iterator<Item = &'k str> {
    rare.iter()
        .flat_map(|r| &r.requires)
        .chain(services.values().flat_map(|s| &s.requires))
        .map(String::as_str)
}

/// Sets `key` to `value`, in place if it is set already: values set over and over (a
/// provider's quality, a neighbour's load) copy their key only the first time.
fn put<V>(map: &mut BTreeMap<String, V>, key: &str, value: V) {
    match map.get_mut(key) {
        Some(v) => *v = value,
        None => {
            map.insert(key.to_owned(), value);
        }
    }
}

/// What an agent knows that most agents never set, in one lock. Ten empty maps behind locks
/// of their own cost each of thousands of idle agents 400 bytes.
struct Rare {
    attributes: BTreeMap<String, Value>,
    requires: Vec<String>,
    ask_modes: BTreeMap<String, Vec<OfferMode>>,
    silenced: BTreeSet<String>,
    redirects: BTreeMap<String, Redirect>,
    economics: BTreeMap<String, Economics>,
    loads: BTreeMap<String, f64>,
    qualities: BTreeMap<String, f64>,
    learned: BTreeMap<String, Learned>,
    upgradable: BTreeSet<String>,
}

impl Rare {
    const fn new() -> Rare {
        Rare {
            attributes: BTreeMap::new(),
            requires: Vec::new(),
            ask_modes: BTreeMap::new(),
            silenced: BTreeSet::new(),
            redirects: BTreeMap::new(),
            economics: BTreeMap::new(),
            loads: BTreeMap::new(),
            qualities: BTreeMap::new(),
            learned: BTreeMap::new(),
            upgradable: BTreeSet::new(),
        }
    }
}

/// What an agent that set none of it knows.
static NOTHING_RARE: Rare = Rare::new();

/// A service the agent was taught: who taught it, when, and what its lesson installed, so
/// that it can be listed, upgraded and forgotten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learned {
    /// The agent that taught it.
    pub teacher: String,
    /// When it was installed.
    pub at: Instant,
    /// The behaviour the lesson installed.
    pub behaviour: String,
    /// The scripted abilities the lesson installed.
    pub abilities: Vec<String>,
    /// How many times a later lesson replaced it (with a policy's leave).
    pub upgrades: u32,
}

impl fmt::Debug for Knowledge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Knowledge")
            .field("facts", &*read(&self.inner.facts))
            .field("services", &*read(&self.inner.services))
            .finish_non_exhaustive()
    }
}

impl Knowledge {
    /// Empty knowledge whose change events go to `bus`.
    pub fn new(bus: Bus) -> Knowledge {
        Knowledge {
            inner: Arc::new(Inner {
                bus,
                facts: RwLock::default(),
                services: RwLock::default(),
                providers: ProviderDirectory::default(),
                rare: RwLock::default(),
                on_offers_change: std::sync::OnceLock::new(),
            }),
        }
    }

    fn rare<R>(&self, f: impl FnOnce(&Rare) -> R) -> R {
        f(read(&self.inner.rare).as_deref().unwrap_or(&NOTHING_RARE))
    }

    fn rare_mut<R>(&self, f: impl FnOnce(&mut Rare) -> R) -> R {
        f(write(&self.inner.rare).get_or_insert_with(|| Box::new(Rare::new())))
    }

    /// Changes what was set, if anything was: taking something out of nothing makes nothing.
    fn rare_if_set<R>(&self, f: impl FnOnce(&mut Rare) -> R) -> Option<R> {
        write(&self.inner.rare).as_deref_mut().map(f)
    }

    /// Says that what the agent offers changed, after `knowledge.service.changed`.
    fn offers_changed(&self) {
        if let Some(watch) = self.inner.on_offers_change.get() {
            watch();
        }
    }

    /// Calls `watch` whenever what the agent offers changes (a service offered, withdrawn, its
    /// modes or behaviour changed). One watch per knowledge: a second is ignored, and `false`
    /// says so.
    pub(crate) fn on_offers_change(&self, watch: impl Fn() + Send + Sync + 'static) -> bool {
        self.inner.on_offers_change.set(Box::new(watch)).is_ok()
    }

    /// The value of a fact.
    pub fn fact(&self, key: &str) -> Option<Value> {
        read(&self.inner.facts).get(key).cloned()
    }

    /// A copy of every fact.
    pub fn facts(&self) -> BTreeMap<String, Value> {
        read(&self.inner.facts)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Sets a fact and returns its previous value. Publishes `knowledge.fact.changed`
    /// (`{key, old, new}`) when the value actually changed.
    pub async fn set_fact(&self, key: &str, value: impl Into<Value>) -> Option<Value> {
        let value = value.into();
        let old = write(&self.inner.facts).insert(key.to_owned(), value.clone());
        if old.as_ref() != Some(&value) {
            let event = topic::FactChanged {
                key: key.to_owned(),
                old: old.clone().unwrap_or_default(),
                new: value,
            };
            // After the agent stopped there is nobody left to tell.
            let _ = self.inner.bus.emit(&event).await;
        }
        old
    }

    /// Removes a fact and returns it. Publishes `knowledge.fact.removed` (`{key, old}`) if it
    /// existed.
    pub async fn remove_fact(&self, key: &str) -> Option<Value> {
        let old = write(&self.inner.facts).remove(key)?;
        let event = topic::FactRemoved {
            key: key.to_owned(),
            old: old.clone(),
        };
        let _ = self.inner.bus.emit(&event).await;
        Some(old)
    }

    /// The value of an attribute.
    pub fn attribute(&self, key: &str) -> Option<Value> {
        self.rare(|r| r.attributes.get(key).cloned())
    }

    /// A copy of every attribute.
    pub fn attributes(&self) -> BTreeMap<String, Value> {
        self.rare(|r| r.attributes.clone())
    }

    /// Sets an attribute. Attributes describe the agent; they change rarely and publish nothing.
    pub fn set_attribute(&self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        self.rare_mut(|r| r.attributes.insert(key.to_owned(), value));
    }

    /// A service in the repository.
    pub fn service(&self, name: &str) -> Option<Service> {
        self.shared_service(name).map(Arc::unwrap_or_clone)
    }

    /// A service in the repository, as the repository holds it (the call path's way).
    pub(crate) fn shared_service(&self, name: &str) -> Option<Arc<Service>> {
        read(&self.inner.services).get(name).cloned()
    }

    /// Every service in the repository, by name.
    pub fn services(&self) -> Vec<Service> {
        read(&self.inner.services)
            .values()
            .map(|s| Service::clone(s))
            .collect()
    }

    /// Whether the agent can run a service itself.
    pub fn can_run(&self, name: &str) -> bool {
        read(&self.inner.services)
            .get(name)
            .is_some_and(|s| s.behaviour.is_some())
    }

    /// Adds or replaces a service; returns the previous entry. Publishes
    /// `knowledge.service.changed`.
    pub async fn offer(&self, service: Service) -> Option<Service> {
        let event = service.changed();
        let old = write(&self.inner.services).insert(service.name.clone(), Arc::new(service));
        let _ = self.inner.bus.emit(&event).await;
        self.offers_changed();
        old.map(Arc::unwrap_or_clone)
    }

    /// Changes the behaviour that implements a service here (to switch between variants);
    /// returns the previous one. Publishes `knowledge.service.changed` when they differ.
    pub async fn set_behaviour(
        &self,
        name: &str,
        behaviour: &str,
    ) -> Result<Option<String>, UnknownService> {
        let (old, payload) = {
            let mut services = write(&self.inner.services);
            let s = services
                .get_mut(name)
                .ok_or_else(|| UnknownService(name.to_owned()))?;
            let old = Arc::make_mut(s).behaviour.replace(behaviour.to_owned());
            (old, s.changed())
        };
        if old.as_deref() != Some(behaviour) {
            let _ = self.inner.bus.emit(&payload).await;
            self.offers_changed();
        }
        Ok(old)
    }

    /// Changes how a service is offered; returns the previous modes. Publishes
    /// `knowledge.service.changed` when they differ.
    pub async fn set_modes(
        &self,
        name: &str,
        modes: OfferModes,
    ) -> Result<OfferModes, UnknownService> {
        let (old, payload) = {
            let mut services = write(&self.inner.services);
            let s = services
                .get_mut(name)
                .ok_or_else(|| UnknownService(name.to_owned()))?;
            let old = std::mem::replace(&mut Arc::make_mut(s).modes, modes);
            (old, s.changed())
        };
        if old != modes {
            let _ = self.inner.bus.emit(&payload).await;
            self.offers_changed();
        }
        Ok(old)
    }

    /// Removes a service; returns it. Publishes `knowledge.service.changed` with empty modes.
    pub async fn withdraw(&self, name: &str) -> Option<Service> {
        let old = Arc::unwrap_or_clone(write(&self.inner.services).remove(name)?);
        let mut gone = old.clone();
        gone.modes = OfferModes::NONE;
        gone.behaviour = None;
        let _ = self.inner.bus.emit(&gone.changed()).await;
        self.offers_changed();
        Some(old)
    }

    /// The services offered in some mode, with their modes.
    pub fn offered(&self) -> Vec<(String, OfferModes)> {
        read(&self.inner.services)
            .values()
            .filter(|s| !s.modes.is_empty())
            .map(|s| (s.name.clone(), s.modes))
            .collect()
    }

    /// Everything the agent needs from others: what it requires, and what the services it
    /// offers require.
    pub fn needed(&self) -> BTreeSet<String> {
        let rare = read(&self.inner.rare);
        let services = read(&self.inner.services);
        needed_names(&rare, &services).map(str::to_owned).collect()
    }

    /// Keeps, of `items`, those whose `service` the agent needs ([`Knowledge::needed`]),
    /// looking at what it needs once rather than once per item.
    pub(crate) fn keep_needed<T>(&self, items: &mut Vec<T>, service: impl Fn(&T) -> &str) {
        // The same order as `needed`: the rare part, then the services.
        let rare = read(&self.inner.rare);
        let services = read(&self.inner.services);
        let mut needed: Vec<&str> = needed_names(&rare, &services).collect();
        needed.sort_unstable();
        needed.dedup();
        items.retain(|i| needed.binary_search(&service(i)).is_ok());
    }

    /// Services the agent needs from others (its main behaviour's and its services' needs).
    pub fn requires(&self) -> Vec<String> {
        self.rare(|r| r.requires.clone())
    }

    /// Declares a service the agent needs; declaring it twice does nothing.
    pub fn require(&self, service: &str) {
        self.rare_mut(|r| {
            if !r.requires.iter().any(|s| s == service) {
                r.requires.push(service.to_owned());
            }
        });
    }

    /// How the agent asks for a service by default, in order of preference: to have it done,
    /// or else to be told who does it (`can_do`, `knows_who_can_do`) unless set otherwise.
    pub fn ask_modes(&self, service: &str) -> Cow<'static, [OfferMode]> {
        // Borrowed unless set: every call reads them.
        const DEFAULT: &[OfferMode] = &[OfferMode::CanDo, OfferMode::KnowsWhoCanDo];
        self.rare(|r| r.ask_modes.get(service).cloned())
            .map_or(Cow::Borrowed(DEFAULT), Cow::Owned)
    }

    /// Sets how the agent asks for `service` (see [`Knowledge::ask_modes`]).
    pub fn set_ask_modes(&self, service: &str, modes: Vec<OfferMode>) {
        self.rare_mut(|r| r.ask_modes.insert(service.to_owned(), modes));
    }

    /// Whether the agent talks to a neighbour (every agent is enabled until disabled).
    pub fn neighbour_enabled(&self, agent: &str) -> bool {
        !self.rare(|r| r.silenced.contains(agent))
    }

    /// Whether interaction with any neighbour is disabled.
    pub(crate) fn silences_anyone(&self) -> bool {
        self.rare(|r| !r.silenced.is_empty())
    }

    /// Enables or disables interaction with a neighbour.
    pub fn set_neighbour_enabled(&self, agent: &str, enabled: bool) {
        if enabled {
            self.rare_if_set(|r| r.silenced.remove(agent));
        } else {
            self.rare_mut(|r| r.silenced.insert(agent.to_owned()));
        }
    }

    /// Sends `fraction` (0 to 1) of the requests for `service` that reach this agent to
    /// `neighbour` instead; a fraction of 0 stops redirecting.
    pub fn set_redirect(&self, service: &str, neighbour: &str, fraction: f64) {
        self.set_redirect_over(service, [neighbour], fraction);
    }

    /// Sends `fraction` (0 to 1) of the requests for `service` that reach this agent to
    /// `neighbours`, each in turn — a service replicated over them, balanced round robin. No
    /// neighbour, or a fraction of 0 (or not a number), stops redirecting.
    ///
    /// ```
    /// use selflet_core::{Bus, Knowledge};
    ///
    /// let k = Knowledge::new(Bus::new("a"));
    /// k.set_redirect_over("work", ["b", "c"], 1.0);
    /// let turns: Vec<_> = (0..4).filter_map(|_| k.redirect_turn("work")).collect();
    /// assert_eq!(turns, ["b", "c", "b", "c"]);
    /// ```
    pub fn set_redirect_over(
        &self,
        service: &str,
        neighbours: impl IntoIterator<Item = impl Into<String>>,
        fraction: f64,
    ) {
        let mut to: Vec<String> = Vec::new();
        for n in neighbours {
            let n = n.into();
            if !to.contains(&n) {
                to.push(n);
            }
        }
        if fraction > 0.0 && !to.is_empty() {
            let redirect = Redirect {
                to,
                fraction: fraction.min(1.0),
                credit: 0.0,
                next: 0,
            };
            self.rare_mut(|r| r.redirects.insert(service.to_owned(), redirect));
        } else {
            self.rare_if_set(|r| r.redirects.remove(service));
        }
    }

    /// Where and how much of a service's requests are redirected.
    pub fn redirect(&self, service: &str) -> Option<Redirection> {
        self.rare(|rare| {
            rare.redirects.get(service).map(|r| Redirection {
                to: r.to.clone(),
                fraction: r.fraction,
            })
        })
    }

    /// Whether this request for `service` goes to a neighbour, and to which: exactly
    /// `fraction` of them do, spread evenly (a credit accumulates the fraction and pays out
    /// whole requests), to the neighbours in turn.
    pub fn redirect_turn(&self, service: &str) -> Option<String> {
        self.rare_if_set(|rare| {
            let r = rare.redirects.get_mut(service)?;
            r.credit += r.fraction;
            if r.credit < 1.0 - 1e-9 {
                return None;
            }
            r.credit -= 1.0;
            let to = r.to.get(r.next % r.to.len().max(1)).cloned();
            r.next = (r.next + 1) % r.to.len().max(1);
            to
        })
        .flatten()
    }

    /// Sets what a service earns and costs, and its response-time threshold.
    pub fn set_economics(&self, service: &str, economics: Economics) {
        self.rare_mut(|r| r.economics.insert(service.to_owned(), economics));
    }

    /// What a service earns and costs, and its response-time threshold.
    pub fn economics(&self, service: &str) -> Option<Economics> {
        self.rare(|r| r.economics.get(service).copied())
    }

    /// Records the utilization an agent (this one, or a neighbour) last reported.
    pub fn set_load(&self, agent: &str, utilization: f64) {
        // Every neighbour's report, every period.
        self.rare_mut(|r| put(&mut r.loads, agent, utilization));
    }

    /// The utilizations last reported, by agent.
    pub fn loads(&self) -> BTreeMap<String, f64> {
        self.rare(|r| r.loads.clone())
    }

    /// Forgets what an agent reported (it left the network).
    pub fn forget_load(&self, agent: &str) {
        self.rare_if_set(|r| r.loads.remove(agent));
    }

    /// The quality this agent advertises for a service it offers, in `[0, 1]`, if known: set
    /// by the application or a policy, or measured on its last run for a peer.
    pub fn quality(&self, service: &str) -> Option<f64> {
        self.rare(|r| r.qualities.get(service).copied())
    }

    /// Sets the quality this agent advertises for a service (clamped to `[0, 1]`; not a
    /// number is ignored).
    pub fn set_quality(&self, service: &str, quality: f64) {
        if quality.is_nan() {
            return;
        }
        // A provider sets it after every call it serves.
        self.rare_mut(|r| put(&mut r.qualities, service, quality.clamp(0.0, 1.0)));
    }

    /// The services the agent was taught, by name.
    pub fn learned(&self) -> BTreeMap<String, Learned> {
        self.rare(|r| r.learned.clone())
    }

    /// What the agent was taught of `service`, if it was.
    pub fn learned_service(&self, service: &str) -> Option<Learned> {
        self.rare(|r| r.learned.get(service).cloned())
    }

    pub(crate) fn record_learned(&self, service: &str, learned: Learned) {
        self.rare_mut(|r| r.learned.insert(service.to_owned(), learned));
    }

    pub(crate) fn forget_learned(&self, service: &str) -> Option<Learned> {
        self.rare_if_set(|r| r.learned.remove(service)).flatten()
    }

    /// Lets a later lesson replace what the agent was taught of `service` (or stops letting
    /// it). Without this a lesson never replaces anything the agent has.
    pub fn allow_upgrade(&self, service: &str, allowed: bool) {
        if allowed {
            self.rare_mut(|r| r.upgradable.insert(service.to_owned()));
        } else {
            self.rare_if_set(|r| r.upgradable.remove(service));
        }
    }

    /// Whether a later lesson may replace what the agent was taught of `service`.
    pub fn upgrade_allowed(&self, service: &str) -> bool {
        self.rare(|r| r.upgradable.contains(service))
    }

    /// The provider directory.
    pub fn providers(&self) -> &ProviderDirectory {
        &self.inner.providers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knowledge_nobody_set_reads_as_its_defaults_and_the_first_change_is_kept() {
        let k = Knowledge::new(Bus::new("a"));
        assert_eq!(k.attribute("zone"), None);
        assert_eq!(
            *k.ask_modes("s"),
            [OfferMode::CanDo, OfferMode::KnowsWhoCanDo]
        );
        assert!(k.neighbour_enabled("b"));
        assert_eq!(k.redirect_turn("s"), None);
        k.forget_load("b");
        assert!(k.loads().is_empty() && k.requires().is_empty());

        k.set_attribute("zone", "eu");
        k.require("s");
        k.require("s");
        k.set_neighbour_enabled("b", false);
        k.set_load("c", 0.5);
        k.set_quality("s", 1.5);
        assert_eq!(k.attribute("zone"), Some(Value::from("eu")));
        assert_eq!(k.requires(), ["s"]);
        assert!(!k.neighbour_enabled("b"));
        assert_eq!(k.loads(), BTreeMap::from([("c".to_owned(), 0.5)]));
        assert_eq!(k.quality("s"), Some(1.0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_restored_directory_lists_the_snapshot_with_its_ages_and_nothing_else() {
        let original = ProviderDirectory::default();
        original.heard("s", "b", OfferModes::CAN_DO).unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        original.touch("s", "b");
        original.heard("s", "c", OfferModes::CAN_DO).unwrap();
        original.failed("s", "c");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let snapshot = original.snapshot();
        original.forget("b");

        tokio::time::sleep(Duration::from_secs(100)).await;
        let copy = ProviderDirectory::default();
        copy.heard("t", "d", OfferModes::CAN_DO).unwrap();
        copy.restore(&snapshot);
        let now = Instant::now();
        let ago = |s: u64| Some(now - Duration::from_secs(s));
        let listed = copy.providers("s");
        assert_eq!(listed.len(), 2);
        let (b, c) = (&listed[0], &listed[1]);
        assert_eq!((b.agent.as_str(), c.agent.as_str()), ("b", "c"));
        assert_eq!((Some(b.last_heard), b.last_used), (ago(1), ago(1)));
        assert_eq!((c.failures, c.last_failure), (1, ago(1)));
        assert!(!copy.knows("t"), "a restore replaces what was listed");
        assert_eq!(snapshot.providers("s").len(), 2);
        assert_eq!(
            original.providers("s").len(),
            1,
            "the original goes on on its own"
        );
    }

    #[tokio::test]
    async fn facts_keep_their_order_and_their_latest_value() {
        let k = Knowledge::new(Bus::new("a"));
        for (key, v) in [("b", 2), ("a", 1), ("c", 3), ("b", 4)] {
            k.set_fact(key, v).await;
        }
        assert_eq!(k.fact("b"), Some(Value::Int(4)));
        assert_eq!(
            k.facts().into_iter().collect::<Vec<_>>(),
            [("a", 1), ("b", 4), ("c", 3)].map(|(key, v)| (key.to_owned(), Value::Int(v)))
        );
        assert_eq!(k.remove_fact("a").await, Some(Value::Int(1)));
        assert_eq!(k.fact("a"), None);
    }
}
