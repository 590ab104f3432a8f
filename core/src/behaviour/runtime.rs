//! What behaviour instances run against: the agent's bus, abilities and behaviours, the
//! limits every instance is held to, and the way out to services.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use futures_util::future::Either;
use rhai::Engine;
use tokio_util::sync::CancellationToken;

use super::instance::Instance;
use super::{Behaviour, BehaviourError, Behaviours, ErrorKind};
use crate::ability::Abilities;
use crate::bus::{Bus, Publisher};
use crate::error::BoxError;
use crate::topic::{self, Payload};
use crate::value::Value;

/// How deeply service calls made by behaviours may nest.
pub const MAX_CALL_DEPTH: u32 = 16;

/// The default of [`InstanceLimits::steps`].
pub const DEFAULT_STEPS: u32 = 10_000;

/// The default of [`InstanceLimits::time`] for instances that run a service.
pub const DEFAULT_SERVICE_TIME: Duration = Duration::from_secs(60);

/// What one behaviour instance may take before it is stopped with an error.
///
/// Behaviours are data that users write and peers teach, so an instance that would run for
/// ever is cut off, never left to hold a core: it yields to the runtime at every step, may take
/// at most `steps` transitions for each trigger (an event or a timer; its start is one too),
/// and, if `time` is set, may run that long in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceLimits {
    /// Most transitions taken between two triggers.
    pub steps: u32,
    /// Longest run, from start to end; `None` for no limit (main behaviours).
    pub time: Option<Duration>,
}

impl Default for InstanceLimits {
    fn default() -> Self {
        InstanceLimits {
            steps: DEFAULT_STEPS,
            time: None,
        }
    }
}

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How behaviours call services: the agent's one call path, which decides whether the call
/// runs here, is redirected, or goes to a provider. The negotiation part implements it; the
/// error is its `CallError`, boxed so that this module does not depend on that one.
pub(crate) trait ServiceCaller: Send + Sync {
    fn call_service(
        &self,
        service: String,
        input: Value,
        depth: u32,
    ) -> BoxFuture<'static, Result<Value, BoxError>>;
}

/// The runtime of one agent's behaviours. Cloning gives another handle to the same one.
#[derive(Clone)]
pub(crate) struct Runtime(pub(super) Arc<RuntimeInner>);

pub(super) struct RuntimeInner {
    pub(super) agent: Arc<str>,
    pub(super) bus: Bus,
    pub(super) abilities: Abilities,
    behaviours: Behaviours,
    pub(super) engine: Arc<Engine>,
    // Guards and expressions run under the same wall-clock budget as policies.
    pub(super) budget: Duration,
    limits: InstanceLimits,
    cancel: CancellationToken,
    next_instance: AtomicU64,
    // Weak: the negotiation part holds this runtime, and a cycle would keep both alive.
    caller: OnceLock<Weak<dyn ServiceCaller>>,
    pub(super) load: Load,
    // Made on first use: a topic costs an agent a few hundred bytes, and most agents never
    // run a behaviour.
    state_pub: OnceLock<Publisher>,
    transition_pub: OnceLock<Publisher>,
    done_pub: OnceLock<Publisher>,
    failed_pub: OnceLock<Publisher>,
}

impl RuntimeInner {
    fn publisher<'a>(&self, slot: &'a OnceLock<Publisher>, topic: &str) -> &'a Publisher {
        slot.get_or_init(|| self.bus.publisher(topic))
    }

    pub(super) fn state_pub(&self) -> &Publisher {
        self.publisher(&self.state_pub, topic::StateEntered::TOPIC)
    }

    pub(super) fn transition_pub(&self) -> &Publisher {
        self.publisher(&self.transition_pub, topic::TransitionTaken::TOPIC)
    }

    fn done_pub(&self) -> &Publisher {
        self.publisher(&self.done_pub, topic::BehaviourDone::TOPIC)
    }

    fn failed_pub(&self) -> &Publisher {
        self.publisher(&self.failed_pub, topic::BehaviourFailed::TOPIC)
    }
}

/// The parts a runtime is made of.
pub(crate) struct RuntimeParts {
    pub(crate) agent: Arc<str>,
    pub(crate) bus: Bus,
    pub(crate) abilities: Abilities,
    pub(crate) behaviours: Behaviours,
    pub(crate) engine: Arc<Engine>,
    pub(crate) budget: Duration,
    pub(crate) limits: InstanceLimits,
    pub(crate) cancel: CancellationToken,
}

impl Runtime {
    pub(crate) fn new(p: RuntimeParts) -> Runtime {
        Runtime(Arc::new(RuntimeInner {
            agent: p.agent,
            state_pub: OnceLock::new(),
            transition_pub: OnceLock::new(),
            done_pub: OnceLock::new(),
            failed_pub: OnceLock::new(),
            bus: p.bus,
            abilities: p.abilities,
            behaviours: p.behaviours,
            engine: p.engine,
            budget: p.budget,
            limits: p.limits,
            cancel: p.cancel,
            next_instance: AtomicU64::new(1),
            caller: OnceLock::new(),
            load: Load::default(),
        }))
    }

    pub(crate) fn set_caller(&self, caller: Weak<dyn ServiceCaller>) {
        let _ = self.0.caller.set(caller);
    }

    pub(crate) fn behaviours(&self) -> &Behaviours {
        &self.0.behaviours
    }

    /// The limits instances run under unless told otherwise.
    pub(crate) fn limits(&self) -> InstanceLimits {
        self.0.limits
    }

    /// Runs the behaviour named `name` to its end under `limits`, or until the agent stops.
    // Not an `async fn`: one would hold its arguments beside the run's future, in every
    // request served.
    pub(crate) fn run_named(
        &self,
        name: &str,
        input: Value,
        depth: u32,
        limits: InstanceLimits,
    ) -> impl Future<Output = Result<Value, BehaviourError>> + Send {
        match self.0.behaviours.runnable(name) {
            Ok(b) => Either::Left(self.run(b, input, depth, limits)),
            Err(e) => Either::Right(std::future::ready(Err(e))),
        }
    }

    /// Runs one instance of `b`.
    // Not an `async fn`: one would hold its arguments twice, in every request served.
    pub(crate) fn run(
        &self,
        b: Arc<Behaviour>,
        input: Value,
        depth: u32,
        limits: InstanceLimits,
    ) -> impl Future<Output = Result<Value, BehaviourError>> + Send {
        let id = self.0.next_instance.fetch_add(1, Ordering::Relaxed);
        self.count_run(&b.name);
        async move {
            let cancel = &self.0.cancel;
            let stopping = || {
                BehaviourError::new(
                    &b.name,
                    b.initial(),
                    ErrorKind::Cancelled,
                    "the agent is stopping",
                )
            };
            let result = if cancel.is_cancelled() {
                Err(stopping())
            } else {
                // The instance first: most finish without waiting, and then never register
                // with the token (a lock and a waiter for every call served).
                tokio::select! {
                    biased;
                    r = Instance::new(self, &b, id, input, depth, limits).run() => r,
                    _ = cancel.cancelled() => Err(stopping()),
                }
            };
            if let Err(e) = &result
                && e.kind() == ErrorKind::Limit
            {
                self.0.load.limited.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(agent = %self.0.agent, "{e}");
            }
            self.announce_end(&b, id, &result).await;
            result
        }
    }

    /// Counts a run of behaviour `name`, without copying the name but for its first run.
    fn count_run(&self, name: &str) {
        let mut runs = crate::sync::lock(&self.0.load.runs);
        match runs.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                runs.insert(name.to_owned(), 1);
            }
        }
    }

    async fn announce_end(&self, b: &Behaviour, id: u64, result: &Result<Value, BehaviourError>) {
        match result {
            Ok(output) => {
                let done = || topic::BehaviourDone {
                    behaviour: b.name.clone(),
                    instance: id as i64,
                    output: output.clone(),
                };
                announce(self.0.done_pub(), done).await;
            }
            Err(e) => {
                let failed = || topic::BehaviourFailed {
                    behaviour: b.name.clone(),
                    instance: id as i64,
                    state: e.state().to_owned(),
                    error: e.to_string(),
                };
                announce(self.0.failed_pub(), failed).await;
            }
        }
    }

    /// Calls a service from a behaviour, through the agent's call path.
    pub(crate) fn call_service(
        &self,
        service: &str,
        input: Value,
        depth: u32,
    ) -> BoxFuture<'static, Result<Value, String>> {
        let caller = self.0.caller.get().and_then(Weak::upgrade);
        let service = service.to_owned();
        Box::pin(async move {
            if depth >= MAX_CALL_DEPTH {
                return Err(format!("service calls nest deeper than {MAX_CALL_DEPTH}"));
            }
            let caller = caller.ok_or("the agent is stopping")?;
            caller
                .call_service(service, input, depth + 1)
                .await
                .map_err(|e| e.to_string())
        })
    }

    pub(crate) fn load_counters(&self) -> LoadCounters {
        let load = &self.0.load;
        LoadCounters {
            busy_seconds: load.busy_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            runs: crate::sync::lock(&load.runs).clone(),
            stopped_by_limits: load.limited.load(Ordering::Relaxed),
        }
    }
}

/// What the agent's behaviours have cost so far: the load samples' raw material.
#[derive(Default)]
pub(super) struct Load {
    // Sum of the `demand` of every state entered, in nanoseconds.
    pub(super) busy_nanos: AtomicU64,
    runs: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    limited: AtomicU64,
}

/// Totals since the agent started: seconds of work (the `demand` of every state entered),
/// instances started per behaviour, and instances stopped by their limits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadCounters {
    /// Seconds of work done, from the states' `demand` annotations.
    pub busy_seconds: f64,
    /// Instances started, per behaviour.
    pub runs: std::collections::BTreeMap<String, u64>,
    /// Instances stopped because they went past their step or time limit.
    pub stopped_by_limits: u64,
}

/// Publishes what an instance did, building the payload only if someone listens: most steps
/// of most agents are watched by nobody, and they are the interpreter's hot path. Counted
/// either way, as every topic counts what is published on it.
pub(super) async fn announce<E: Payload>(p: &Publisher, payload: impl FnOnce() -> E) {
    if p.has_subscribers() {
        let _ = p.publish(payload().to_value()).await;
    } else {
        p.count_unwatched();
    }
}
