//! The handle applications keep, and the lifecycle it drives.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use std::time::Duration;

use tokio::sync::watch;
pub use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use std::sync::atomic::{AtomicBool, Ordering};

use crate::ability::Abilities;
pub(super) use crate::agent::lifecycle::{Lifecycle, Step, Tracker};
use crate::behaviour::{Behaviour, BehaviourError, Behaviours, Runtime};
use crate::bus::{Bus, Closed, Pattern, PatternError, SubscribeOptions, Subscription};
use crate::knowledge::{Knowledge, Service};
use crate::negotiation::Negotiator;
use crate::policy::Policies;
use crate::prediction::Predictors;
use crate::sync::lock;
use crate::transport::Membership;
use crate::value::Value;

/// The parts of one agent, wired by the builder.
pub(crate) struct AgentInner {
    pub(super) name: Arc<str>,
    pub(super) goal: Option<String>,
    pub(super) bus: Bus,
    pub(super) knowledge: Knowledge,
    pub(super) abilities: Abilities,
    pub(super) runtime: Runtime,
    pub(crate) policies: Policies,
    pub(crate) predictors: Predictors,
    pub(crate) learners: crate::prediction::learner::Learners,
    pub(crate) negotiator: Arc<Negotiator>,
    pub(super) main: Mutex<Option<String>>,
    pub(super) main_running: AtomicBool,
    pub(super) sampler_running: AtomicBool,
    // The agent's own loops (main behaviour, policies, predictors) never end by themselves, so
    // shutdown stops them at once instead of granting them the grace period that in-flight
    // requests get.
    pub(super) stop_loops: CancellationToken,
    pub(super) lifecycle: Mutex<Tracker>,
    pub(super) state: super::lifecycle::Announced,
    pub(super) tasks: TaskTracker,
    pub(super) cancel: CancellationToken,
    pub(super) membership: Mutex<Option<Membership>>,
    pub(super) grace: Duration,
}

/// A running agent, as seen by the application that spawned it.
///
/// Cheap to clone and `Send + Sync`. Dropping every handle does not stop the agent: call
/// [`shutdown`](AgentHandle::shutdown).
#[derive(Clone)]
pub struct AgentHandle {
    inner: Arc<AgentInner>,
}

impl fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentHandle")
            .field("name", &self.inner.name)
            .field("lifecycle", &self.lifecycle())
            .finish()
    }
}

/// A subscription could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// The pattern is not a valid topic pattern.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// The agent has stopped.
    #[error("the agent has stopped")]
    Stopped,
}

impl AgentHandle {
    pub(crate) fn from_inner(inner: Arc<AgentInner>) -> AgentHandle {
        AgentHandle { inner }
    }

    pub(crate) fn inner(&self) -> &AgentInner {
        &self.inner
    }

    /// A reference to the agent for its own parts to keep: a strong one would keep the agent
    /// alive for ever.
    pub(crate) fn weak(&self) -> std::sync::Weak<AgentInner> {
        Arc::downgrade(&self.inner)
    }

    /// Cancelled when shutdown begins: the signal for the agent's own endless loops.
    pub(crate) fn loops_token(&self) -> CancellationToken {
        self.inner.stop_loops.clone()
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The agent's goal, as described by its builder or manifest.
    pub fn goal(&self) -> Option<&str> {
        self.inner.goal.as_deref()
    }

    /// The agent's dispatcher.
    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    /// The agent's internal knowledge.
    pub fn knowledge(&self) -> &Knowledge {
        &self.inner.knowledge
    }

    /// Publishes an event on the agent's bus. Fails, handing the payload back, once the agent
    /// has stopped.
    pub async fn publish(&self, topic: &str, payload: impl Into<Value>) -> Result<(), Closed> {
        self.inner.bus.publish(topic, payload).await
    }

    /// Subscribes to events whose topic matches `pattern` (`a.b`, `a.*` or `*`), with a queue
    /// of the default capacity that back-pressures publishers when full.
    pub fn subscribe(&self, pattern: &str) -> Result<Subscription, SubscribeError> {
        self.subscribe_with(pattern, SubscribeOptions::default())
    }

    /// Subscribes with a chosen queue capacity and overflow policy.
    pub fn subscribe_with(
        &self,
        pattern: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, SubscribeError> {
        let pattern = Pattern::parse(pattern)?;
        self.inner
            .bus
            .subscribe_with(pattern, options)
            .map_err(|_| SubscribeError::Stopped)
    }

    /// The value of a fact.
    pub fn fact(&self, key: &str) -> Option<Value> {
        self.inner.knowledge.fact(key)
    }

    /// Sets a fact (publishing `knowledge.fact.changed`); returns the previous value.
    pub async fn set_fact(&self, key: &str, value: impl Into<Value>) -> Option<Value> {
        self.inner.knowledge.set_fact(key, value).await
    }

    /// Removes a fact (publishing `knowledge.fact.removed`); returns it.
    pub async fn remove_fact(&self, key: &str) -> Option<Value> {
        self.inner.knowledge.remove_fact(key).await
    }

    /// Where the agent is in its lifecycle.
    pub fn lifecycle(&self) -> Lifecycle {
        self.inner.state.get()
    }

    /// A receiver that sees every lifecycle change from now on.
    pub fn lifecycle_changes(&self) -> watch::Receiver<Lifecycle> {
        self.inner.state.subscribe()
    }

    /// Waits until the agent has stopped (by anyone's call to [`shutdown`](Self::shutdown)).
    pub async fn stopped(&self) {
        let mut rx = self.inner.state.subscribe();
        // The sender lives as long as `self`, so `wait_for` cannot fail here.
        let _ = rx.wait_for(|s| *s == Lifecycle::Stopped).await;
    }

    /// Stops the agent gracefully and waits until it has stopped.
    ///
    /// In-flight work gets the agent's shutdown grace period to finish; what is still running
    /// then is cancelled, and work that answers callers answers them with an error. Then the
    /// bus closes (subscribers drain what is queued, then see the end) and the agent leaves its
    /// network. Calling it again, or concurrently, just waits for the same stop.
    pub async fn shutdown(&self) {
        let initiated = {
            let mut lc = lock(&self.inner.lifecycle);
            let before = lc.state();
            let after = lc.step(Step::Stop);
            before != after
        };
        if !initiated {
            return self.stopped().await;
        }
        let inner = &self.inner;
        self.announce(Lifecycle::Stopping).await;
        inner.stop_loops.cancel();
        inner.tasks.close();
        if tokio::time::timeout(inner.grace, inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(agent = %inner.name, pending = inner.tasks.len(), "shutdown grace elapsed; cancelling in-flight work");
            inner.cancel.cancel();
            // Calls still waiting for a reply end now, with an error.
            inner.negotiator.stop();
            // Cancelled work ends at its next await; what does not within another grace
            // period is abandoned, so that stopping always ends.
            if tokio::time::timeout(inner.grace, inner.tasks.wait())
                .await
                .is_err()
            {
                tracing::warn!(agent = %inner.name, pending = inner.tasks.len(), "in-flight work did not stop when cancelled; abandoned");
            }
        }
        inner.cancel.cancel();
        inner.negotiator.stop();
        inner.bus.close();
        lock(&inner.membership).take();
        lock(&inner.lifecycle).step(Step::Stopped);
        inner.state.set(Lifecycle::Stopped);
        tracing::info!(agent = %inner.name, "stopped");
    }

    /// Runs work on behalf of the agent as a tracked task.
    ///
    /// `work` receives a cancellation token. Shutdown waits for the task up to the agent's
    /// grace period, then cancels the token; work that cannot finish should watch it and
    /// answer whoever waits on it with an error. Returns `false`, running nothing, once
    /// shutdown has begun.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let agent = selflet_core::Agent::builder("sensor").spawn().await?;
    /// let a = agent.clone();
    /// agent.spawn_task(|cancel| async move {
    ///     tokio::select! {
    ///         _ = cancel.cancelled() => {}
    ///         _ = a.publish("reading", 21.5) => {}
    ///     }
    /// });
    /// agent.shutdown().await; // waits for the task
    /// # Ok(())
    /// # }
    /// ```
    pub fn spawn_task<F, Fut>(&self, work: F) -> bool
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if self.inner.tasks.is_closed() {
            return false;
        }
        self.inner.tasks.spawn(work(self.inner.cancel.clone()));
        true
    }

    pub(crate) async fn start(
        &self,
        facts: BTreeMap<String, Value>,
        services: Vec<Service>,
        requires: Vec<String>,
        main: Option<String>,
        predictors: Vec<Box<dyn crate::prediction::Predictor>>,
    ) {
        lock(&self.inner.lifecycle).step(Step::Start);
        self.announce(Lifecycle::Starting).await;
        let k = &self.inner.knowledge;
        for (key, value) in facts {
            k.set_fact(&key, value).await;
        }
        for s in services {
            k.offer(s).await;
        }
        for r in requires {
            k.require(&r);
        }
        *lock(&self.inner.main) = main;
        for p in predictors {
            // Names were checked unique by the manifest; a clash here is the builder's
            // caller plugging the same name twice, which the log reports.
            if let Err(e) = self.inner.predictors.plug(p) {
                tracing::warn!(agent = %self.inner.name, "{e}");
            }
        }
        self.ensure_load_sampler();
        let now = lock(&self.inner.lifecycle).step(Step::Started);
        // A shutdown may have begun while we were starting; then it owns the announcements.
        if now == Lifecycle::Running {
            self.announce(Lifecycle::Running).await;
            tracing::info!(agent = %self.inner.name, "running");
            self.start_negotiation();
            self.start_policies();
            self.start_main();
        }
    }

    /// The agent's abilities.
    pub fn abilities(&self) -> &Abilities {
        &self.inner.abilities
    }

    /// The agent's behaviour repository: install, replace, remove, enable and disable
    /// behaviours while the agent runs.
    pub fn behaviours(&self) -> &Behaviours {
        self.inner.runtime.behaviours()
    }

    /// Installs (or replaces) a behaviour; instances of the old version finish on it.
    pub fn install_behaviour(&self, behaviour: Behaviour) -> Option<Arc<Behaviour>> {
        self.behaviours().install(behaviour)
    }

    /// Runs one instance of a behaviour with `input` and waits for its output.
    ///
    /// # Errors
    ///
    /// The behaviour is unknown or disabled, it failed (an action, a guard, an `error` final
    /// state), or the agent stopped while it ran.
    pub async fn run_behaviour(
        &self,
        name: &str,
        input: impl Into<Value>,
    ) -> Result<Value, BehaviourError> {
        let limits = self.inner.runtime.limits();
        self.inner
            .runtime
            .run_named(name, input.into(), 0, limits)
            .await
    }

    /// What the agent's behaviours have cost so far (work done, instances started).
    pub fn load_counters(&self) -> crate::behaviour::LoadCounters {
        self.inner.runtime.load_counters()
    }

    /// The main behaviour's name.
    pub fn main_behaviour(&self) -> Option<String> {
        lock(&self.inner.main).clone()
    }

    /// Changes the main behaviour; it takes over when the current one next ends (or at once,
    /// if none runs).
    pub fn set_main_behaviour(&self, name: &str) -> Result<(), BehaviourError> {
        self.behaviours().runnable(name)?;
        *lock(&self.inner.main) = Some(name.to_owned());
        self.start_main();
        Ok(())
    }

    /// Runs the main behaviour over and over, as SelfLets do, until the agent stops.
    fn start_main(&self) {
        if lock(&self.inner.main).is_none() || self.inner.main_running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let agent = self.clone();
        let stop = self.inner.stop_loops.clone();
        // Shutdown cancels `stop` before anything else, so the agent-wide token is not needed.
        self.spawn_task(|_| async move {
            let cancel = stop;
            let mut instant_ends = 0u32;
            while let Some(name) = agent.main_behaviour() {
                let started = tokio::time::Instant::now();
                let runtime = agent.inner.runtime.clone();
                let limits = runtime.limits();
                // Whatever happens in an instance, the main behaviour is restarted: a panic
                // becomes an error like any other.
                let run = AssertUnwindSafe(runtime.run_named(&name, Value::Null, 0, limits))
                    .catch_unwind();
                let result = tokio::select! {
                    _ = cancel.cancelled() => break,
                    r = run => r.unwrap_or_else(|_| Err(BehaviourError::new(&name, "", crate::behaviour::ErrorKind::Action, "the instance panicked"))),
                };
                if let Err(e) = &result {
                    tracing::warn!(agent = %agent.inner.name, "main behaviour: {e}");
                }
                // A main behaviour that ends without time passing would spin; one that fails
                // would fail again at once. Both get a pause before the restart.
                instant_ends = if started.elapsed().is_zero() {
                    instant_ends + 1
                } else {
                    0
                };
                if result.is_err() || instant_ends >= 100 {
                    instant_ends = 0;
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                } else {
                    tokio::task::yield_now().await;
                }
            }
            agent.inner.main_running.store(false, Ordering::Release);
        });
    }

    async fn announce(&self, state: Lifecycle) {
        self.inner.state.set(state);
        let event = crate::topic::Lifecycle {
            state: state.name().to_owned(),
        };
        let _ = self.inner.bus.emit(&event).await;
    }
}
