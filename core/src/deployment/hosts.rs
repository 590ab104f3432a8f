//! Hosts: where members run. The [`Hosts`] trait is what a deployment manager measures and
//! acts on; [`SimulatedHosts`] are machines in one process, for experiments on the paused
//! clock (the `selflet host` command serves the same operations across processes).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::agent::AgentHandle;
use crate::error::BoxError;
use crate::offer::OfferModes;
use crate::sync::lock;
use crate::value::Value;

/// What a host measured and holds.
#[derive(Debug, Clone, PartialEq)]
pub struct HostStatus {
    /// Its name.
    pub name: String,
    /// Whether it accepts members.
    pub up: bool,
    /// Work per second it can do now, in nominal cores.
    pub capacity: f64,
    /// Work per second it did over its last measurement window, in nominal cores.
    pub load: f64,
    /// Other measured values (`utilization`, `arrivals` per second, `queue`, …).
    pub metrics: BTreeMap<String, f64>,
    /// What it is (`region`, `latency_ms`, …): set by whoever runs it.
    pub attributes: BTreeMap<String, Value>,
    /// The members it runs.
    pub members: Vec<String>,
}

impl HostStatus {
    /// The host as objective scripts see it: attributes, metrics, `up`, `capacity`, `load`
    /// and `free`.
    pub(crate) fn to_map(&self) -> rhai::Map {
        let mut m: rhai::Map = self
            .attributes
            .iter()
            .map(|(k, v)| (k.as_str().into(), v.to_dynamic()))
            .collect();
        for (k, v) in &self.metrics {
            m.insert(k.as_str().into(), rhai::Dynamic::from_float(*v));
        }
        m.insert("up".into(), self.up.into());
        m.insert("capacity".into(), rhai::Dynamic::from_float(self.capacity));
        m.insert("load".into(), rhai::Dynamic::from_float(self.load));
        m.insert(
            "free".into(),
            rhai::Dynamic::from_float(self.capacity - self.load),
        );
        m
    }
}

/// Why a host operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// No host of that name.
    #[error("no host `{0}`")]
    UnknownHost(String),
    /// The host is down.
    #[error("host `{0}` is down")]
    Down(String),
    /// No member of that name.
    #[error("no member `{0}`")]
    UnknownMember(String),
    /// The member could not be started.
    #[error("starting a member on `{host}` failed: {source}")]
    Start {
        /// Where.
        host: String,
        /// Why.
        source: BoxError,
    },
    /// The host did not answer.
    #[error("host `{host}` did not answer: {why}")]
    Unreachable {
        /// Which.
        host: String,
        /// Why.
        why: String,
    },
}

/// The machines a deployment runs on: what they measure, and starting and stopping members.
pub trait Hosts: Send + Sync {
    /// Every member and its host: cheap, asked by every member each period to elect the
    /// coordinator.
    fn members(&self) -> BoxFuture<'_, Result<Vec<(String, String)>, HostError>>;
    /// Every host's status. Rates (`load`, `arrivals`) cover the time since the previous
    /// measurement, at least ten seconds: asking again sooner repeats them.
    fn status(&self) -> BoxFuture<'_, Result<Vec<HostStatus>, HostError>>;
    /// Starts a member on `host`; returns its name.
    fn start<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<String, HostError>>;
    /// Stops a member: it leaves the host's books at once and stops offering, then finishes
    /// what it runs (within its shutdown grace) and leaves the network, in the background.
    fn stop<'a>(&'a self, member: &'a str) -> BoxFuture<'a, Result<(), HostError>>;
}

/// Stops a member taken off its host's books: providers hear at once that it no longer
/// offers anything; then it finishes what it runs and leaves, in the background (draining
/// may take a while).
pub(super) async fn retire(agent: AgentHandle) {
    for s in agent.knowledge().services() {
        let _ = agent.knowledge().set_modes(&s.name, OfferModes::NONE).await;
    }
    tokio::spawn(async move { agent.shutdown().await });
}

/// Builds and spawns a member on a simulated host: the hosts (for the member's own manager),
/// its host and its name in, the running agent out.
pub type Spawner = Arc<
    dyn Fn(SimulatedHosts, Host, String) -> BoxFuture<'static, Result<AgentHandle, BoxError>>
        + Send
        + Sync,
>;

/// A simulated machine: `cores` cores at a speed that may change (a CPU spike is a speed
/// below 1), doing the work its members give it.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Machine>,
}

struct Machine {
    name: String,
    cores: usize,
    permits: Semaphore,
    speed_milli: AtomicU64,
    up: AtomicBool,
    busy_ns: AtomicU64,
    arrivals: AtomicU64,
    waiting: AtomicU64,
    attributes: Mutex<BTreeMap<String, Value>>,
    // Busy seconds and arrivals, per second.
    rates: Rates<2>,
}

/// The shortest window rates are measured over: a status asked for sooner after the previous
/// one repeats its rates, rather than measure nothing (a coordinator that takes over at once
/// after another would otherwise see no load, and a host asked by many members would see
/// its windows split into slivers).
const MIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// Per-second rates of running totals, measured over windows of at least [`MIN_WINDOW`].
pub(super) struct Rates<const N: usize> {
    // When the rates were last measured, the totals then, and the rates.
    last: Mutex<(Instant, [f64; N], [f64; N])>,
}

impl<const N: usize> Rates<N> {
    pub(super) fn new() -> Rates<N> {
        Rates {
            last: Mutex::new((Instant::now(), [0.0; N], [0.0; N])),
        }
    }

    /// The rates of `totals` since the previous measurement, if that is at least
    /// [`MIN_WINDOW`] ago; the previous measurement's otherwise.
    pub(super) fn measure(&self, totals: [f64; N]) -> [f64; N] {
        let now = Instant::now();
        let mut last = lock(&self.last);
        let secs = now.duration_since(last.0).as_secs_f64();
        if secs >= MIN_WINDOW.as_secs_f64() {
            let rates = std::array::from_fn(|i| ((totals[i] - last.1[i]) / secs).max(0.0));
            *last = (now, totals, rates);
        }
        last.2
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("name", &self.inner.name)
            .field("cores", &self.inner.cores)
            .finish_non_exhaustive()
    }
}

impl Host {
    fn new(name: &str, cores: usize, attributes: BTreeMap<String, Value>) -> Host {
        Host {
            inner: Arc::new(Machine {
                name: name.to_owned(),
                cores: cores.max(1),
                permits: Semaphore::new(cores.max(1)),
                speed_milli: AtomicU64::new(1000),
                up: AtomicBool::new(true),
                busy_ns: AtomicU64::new(0),
                arrivals: AtomicU64::new(0),
                waiting: AtomicU64::new(0),
                attributes: Mutex::new(attributes),
                rates: Rates::new(),
            }),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Does `seconds` of work (at nominal speed) on one of its cores, queueing for a core
    /// first: what a member's ability calls for each request.
    pub async fn work(&self, seconds: f64) {
        let m = &self.inner;
        m.arrivals.fetch_add(1, Ordering::Relaxed);
        m.waiting.fetch_add(1, Ordering::Relaxed);
        let permit = m.permits.acquire().await;
        m.waiting.fetch_sub(1, Ordering::Relaxed);
        let took = seconds.max(0.0) / self.speed();
        // Counted as it starts, so that a long request shows in the period it runs in.
        m.busy_ns.fetch_add((took * 1e9) as u64, Ordering::Relaxed);
        tokio::time::sleep(std::time::Duration::from_secs_f64(took)).await;
        drop(permit);
    }

    /// The speed of its cores, 1 being nominal.
    pub fn speed(&self) -> f64 {
        self.inner.speed_milli.load(Ordering::Relaxed).max(1) as f64 / 1000.0
    }

    /// Sets the speed of its cores (at least 0.001): below 1, a CPU spike.
    pub fn set_speed(&self, speed: f64) {
        let milli = (speed.clamp(0.001, 1000.0) * 1000.0).round() as u64;
        self.inner.speed_milli.store(milli, Ordering::Relaxed);
    }

    /// Takes the host out of service (`false`) or back: a down host starts no members.
    pub fn set_up(&self, up: bool) {
        self.inner.up.store(up, Ordering::Relaxed);
    }

    /// Sets an attribute objective scripts read.
    pub fn set_attribute(&self, key: &str, value: impl Into<Value>) {
        lock(&self.inner.attributes).insert(key.to_owned(), value.into());
    }

    fn status(&self, members: Vec<String>) -> HostStatus {
        let m = &self.inner;
        let (utilization, arrival_rate) = self.rates();
        let capacity = m.cores as f64 * self.speed();
        let metrics = BTreeMap::from([
            ("utilization".to_owned(), utilization),
            ("arrivals".to_owned(), arrival_rate),
            ("queue".to_owned(), m.waiting.load(Ordering::Relaxed) as f64),
            ("cores".to_owned(), m.cores as f64),
        ]);
        HostStatus {
            name: m.name.clone(),
            up: m.up.load(Ordering::Relaxed),
            capacity,
            load: utilization * capacity,
            metrics,
            attributes: lock(&m.attributes).clone(),
            members,
        }
    }
}

impl Host {
    /// Utilization of its cores and arrivals per second (see [`Rates`]).
    fn rates(&self) -> (f64, f64) {
        let m = &self.inner;
        let busy = m.busy_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let arrivals = m.arrivals.load(Ordering::Relaxed) as f64;
        let [busy, arrivals] = m.rates.measure([busy, arrivals]);
        ((busy / m.cores as f64).min(1.0), arrivals)
    }
}

/// Simulated hosts in one process: members are agents spawned by a [`Spawner`], typically on
/// one in-process network and with an ability that calls [`Host::work`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use selflet_core::deployment::{Hosts, SimulatedHosts};
/// use selflet_core::{Agent, Network};
///
/// let net = Network::new();
/// let hosts = SimulatedHosts::new(Arc::new(move |_hosts, _host, name| {
///     let net = net.clone();
///     Box::pin(async move { Ok(Agent::builder(name).network(&net).spawn().await?) })
/// }));
/// hosts.add_host("h1", 2, &[]);
/// let member = hosts.start("h1").await?;
/// assert_eq!(hosts.status().await?[0].members, vec![member.clone()]);
/// hosts.stop(&member).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SimulatedHosts {
    inner: Arc<Sim>,
}

/// The members a simulated host runs, by name.
type Members = BTreeMap<String, AgentHandle>;

struct Sim {
    spawner: Spawner,
    hosts: Mutex<BTreeMap<String, (Host, Members)>>,
    next: AtomicU64,
}

impl std::fmt::Debug for SimulatedHosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedHosts")
            .field("hosts", &lock(&self.inner.hosts).keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SimulatedHosts {
    /// No hosts yet; members are spawned by `spawner`.
    pub fn new(spawner: Spawner) -> SimulatedHosts {
        SimulatedHosts {
            inner: Arc::new(Sim {
                spawner,
                hosts: Mutex::new(BTreeMap::new()),
                next: AtomicU64::new(1),
            }),
        }
    }

    /// Adds a host of `cores` cores (at least one) with attributes; replaces none.
    pub fn add_host(&self, name: &str, cores: usize, attributes: &[(&str, Value)]) -> Host {
        let attrs = attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let mut hosts = lock(&self.inner.hosts);
        let entry = hosts
            .entry(name.to_owned())
            .or_insert_with(|| (Host::new(name, cores, attrs), BTreeMap::new()));
        entry.0.clone()
    }

    /// A host by name.
    pub fn host(&self, name: &str) -> Option<Host> {
        lock(&self.inner.hosts).get(name).map(|(h, _)| h.clone())
    }

    /// A running member by name.
    pub fn member(&self, name: &str) -> Option<AgentHandle> {
        lock(&self.inner.hosts)
            .values()
            .find_map(|(_, ms)| ms.get(name).cloned())
    }

    /// Crashes a member: it leaves its host's books and stops with no warning to its
    /// providers' callers (for failure experiments).
    pub async fn crash(&self, member: &str) -> Result<(), HostError> {
        let agent = lock(&self.inner.hosts)
            .values_mut()
            .find_map(|(_, ms)| ms.remove(member))
            .ok_or_else(|| HostError::UnknownMember(member.to_owned()))?;
        agent.shutdown().await;
        Ok(())
    }
}

impl Hosts for SimulatedHosts {
    fn members(&self) -> BoxFuture<'_, Result<Vec<(String, String)>, HostError>> {
        let out = lock(&self.inner.hosts)
            .iter()
            .flat_map(|(h, (_, ms))| ms.keys().map(move |m| (m.clone(), h.clone())))
            .collect();
        Box::pin(std::future::ready(Ok(out)))
    }

    fn status(&self) -> BoxFuture<'_, Result<Vec<HostStatus>, HostError>> {
        let hosts = lock(&self.inner.hosts);
        let out = hosts
            .values()
            .map(|(h, ms)| h.status(ms.keys().cloned().collect()))
            .collect();
        Box::pin(std::future::ready(Ok(out)))
    }

    fn start<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<String, HostError>> {
        Box::pin(async move {
            let h = self
                .host(host)
                .ok_or_else(|| HostError::UnknownHost(host.to_owned()))?;
            if !h.inner.up.load(Ordering::Relaxed) {
                return Err(HostError::Down(host.to_owned()));
            }
            let name = format!(
                "{host}-m{}",
                self.inner.next.fetch_add(1, Ordering::Relaxed)
            );
            let agent = (self.inner.spawner)(self.clone(), h, name.clone())
                .await
                .map_err(|source| HostError::Start {
                    host: host.to_owned(),
                    source,
                })?;
            if let Some((_, ms)) = lock(&self.inner.hosts).get_mut(host) {
                ms.insert(name.clone(), agent);
            }
            Ok(name)
        })
    }

    fn stop<'a>(&'a self, member: &'a str) -> BoxFuture<'a, Result<(), HostError>> {
        Box::pin(async move {
            let agent = lock(&self.inner.hosts)
                .values_mut()
                .find_map(|(_, ms)| ms.remove(member))
                .ok_or_else(|| HostError::UnknownMember(member.to_owned()))?;
            retire(agent).await;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rates_are_measured_over_at_least_the_minimum_window() {
        let r = Rates::<1>::new();
        tokio::time::sleep(MIN_WINDOW).await;
        assert_eq!(r.measure([20.0]), [2.0]);
        // Asked again at once, or within the window: the same rate, not an empty window's.
        assert_eq!(r.measure([20.0]), [2.0]);
        tokio::time::sleep(MIN_WINDOW / 2).await;
        assert_eq!(r.measure([25.0]), [2.0]);
        tokio::time::sleep(MIN_WINDOW / 2).await;
        assert_eq!(r.measure([30.0]), [1.0]);
    }
}
