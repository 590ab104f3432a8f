//! The agent's side of its learners: plugging them, their observation windows, and applying
//! the composition each picks.
//!
//! Every window the loop averages what the service's requests took (or the reward topic's
//! field) and the environment topic's labelled values, asks the learner for the next
//! composition among those no policy vetoed, and applies it: the variant becomes the
//! service's behaviour here, the placement's neighbours are taught that variant (once per
//! variant), and the service's requests are redirected over them (or no longer redirected).
//! No request is lost in a switch: a request already running finishes where it runs, the
//! switch itself is one write, and a redirected request that fails (a neighbour not yet
//! taught, gone, or refusing) runs here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::agent::AgentHandle;
use crate::bus::{Event, Overflow, Pattern, SubscribeOptions};
use crate::prediction::learner::{
    CompositionSpec, Has, Learners, MAX_LABELS, Observation, PlugError, Plugged, RewardMetric,
};
use crate::sync::lock;
use crate::topic::{self, Payload};
use crate::value::Value;

/// What one window measured.
#[derive(Default)]
struct Window {
    sum: f64,
    count: u64,
    env_sum: BTreeMap<String, (f64, u64)>,
}

impl Window {
    fn record(&mut self, spec: &CompositionSpec, e: &Event, opened: Instant) {
        if spec
            .environment
            .as_ref()
            .is_some_and(|p| p.matches(e.topic()))
            && let Value::Map(m) = e.payload()
        {
            for (k, v) in m {
                let Some(x) = v.as_f64().filter(|x| x.is_finite()) else {
                    continue;
                };
                // Whoever publishes the environment decides its labels; a learner keeps a
                // bounded number of them.
                if self.env_sum.len() >= MAX_LABELS && !self.env_sum.contains_key(k) {
                    continue;
                }
                let sum = self.env_sum.entry(k.clone()).or_default();
                sum.0 += x;
                sum.1 += 1;
            }
        }
        let measured = match &spec.reward {
            // Only requests that arrived in this window: the backlog a previous composition
            // left behind must not count against the one in force now.
            RewardMetric::ResponseTime { .. } => (e.topic() == topic::Executed::TOPIC)
                .then(|| topic::Executed::from_value(e.payload()))
                .flatten()
                .filter(|x| x.service == spec.service)
                .filter(|x| {
                    Duration::try_from_secs_f64(x.seconds)
                        .is_ok_and(|d| e.time().checked_sub(d).is_some_and(|t| t >= opened))
                })
                .map(|x| x.seconds),
            RewardMetric::Field { topic, field, .. } => topic
                .matches(e.topic())
                .then(|| e.payload().get(field).and_then(Value::as_f64))
                .flatten(),
        };
        if let Some(x) = measured.filter(|x| x.is_finite()) {
            self.sum += x;
            self.count += 1;
        }
    }

    /// The reward, and the environment (the last one seen when this window saw none).
    fn close(self, spec: &CompositionSpec, env: &mut Observation) -> (Option<f64>, u64) {
        if !self.env_sum.is_empty() {
            *env = self
                .env_sum
                .into_iter()
                .map(|(k, (s, n))| (k, s / n as f64))
                .collect();
        }
        let reward = (self.count > 0).then(|| spec.reward.reward(self.sum / self.count as f64));
        (reward, self.count)
    }
}

impl AgentHandle {
    /// Plugs in a learner of a registered kind that composes `params.service` (see
    /// [`CompositionSpec`] for the parameters the agent reads; the others go to the kind). It
    /// picks the first composition at once, then one at the end of every window, until it is
    /// unplugged or the agent stops.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use selflet_core::behaviour::Behaviour;
    /// use selflet_core::prediction::learner::PlugError;
    /// use selflet_core::{Agent, OfferModes, Service, SourceFile, Value};
    ///
    /// let b = Behaviour::parse(SourceFile::new(
    ///     "web.yaml",
    ///     "behaviour: web\ninitial: d\nstates:\n  d: { final: true, output: \"input\" }\n",
    /// ))?;
    /// let a = Agent::builder("a").behaviour(b)
    ///     .service(Service::new("web", OfferModes::CAN_DO)).spawn().await?;
    /// let params = Value::map([("service", Value::from("web"))]);
    /// // The core registers no learner kind; `selflet::plugins::kinds()` adds `ucb`.
    /// let err = a.plug_learner("ucb", "compose", &params).await.unwrap_err();
    /// assert!(matches!(err, PlugError::UnknownKind { .. }));
    /// # Ok(()) }
    /// ```
    pub async fn plug_learner(
        &self,
        kind: &str,
        name: &str,
        params: &Value,
    ) -> Result<(), PlugError> {
        let plugged = Arc::new(self.make_plugged(kind, name, params)?);
        self.learners().insert(Arc::clone(&plugged))?;
        // A measurement, not a duty: past its queue the oldest samples go (counted), so a
        // learner that falls behind never holds up the requests it measures.
        let options = SubscribeOptions {
            capacity: 4096,
            overflow: Overflow::DropOldest,
        };
        let Ok(sub) = self.bus().subscribe_many(watched(&plugged.spec), options) else {
            self.learners().unplug(name);
            return Err(PlugError::Stopped);
        };
        let first = plugged.decide(&Observation::new(), None);
        if plugged.stop.is_cancelled() {
            self.learners().unplug(name);
            return Err(PlugError::Panicked(name.to_owned()));
        }
        self.compose(&plugged, first).await;
        let agent = self.clone();
        let stop = self.loops_token();
        let started = self.spawn_task(|_| async move {
            let mut env = Observation::new();
            let period = plugged.spec.window;
            let mut tick = tokio::time::interval_at(crate::duration::deadline(period), period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut window = Window::default();
            let mut opened = Instant::now();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = plugged.stop.cancelled() => break,
                    e = sub.recv() => match e {
                        Some(e) => window.record(&plugged.spec, &e, opened),
                        None => break,
                    },
                    now = tick.tick() => {
                        let (reward, requests) = std::mem::take(&mut window).close(&plugged.spec, &mut env);
                        opened = now;
                        agent.end_window(&plugged, &env, reward, requests).await;
                    }
                }
            }
        });
        if !started {
            self.learners().unplug(name);
            return Err(PlugError::Stopped);
        }
        tracing::info!(agent = %self.name(), learner = %name, %kind, "learner plugged");
        Ok(())
    }

    /// Makes a learner's plugged, checking the service and its variants are here.
    fn make_plugged(&self, kind: &str, name: &str, params: &Value) -> Result<Plugged, PlugError> {
        let has = Has {
            service: &|s| self.knowledge().service(s).is_some(),
            behaviour: &|b| self.behaviours().contains(b),
        };
        Plugged::new(self.predictors().kinds(), kind, name, params, &has)
    }

    /// The agent's learners: what they know, their vetoes, unplugging.
    pub fn learners(&self) -> &Learners {
        &self.inner().learners
    }

    async fn end_window(
        &self,
        plugged: &Plugged,
        env: &Observation,
        reward: Option<f64>,
        requests: u64,
    ) {
        let previous = {
            let mut state = lock(&plugged.state);
            state.windows += 1;
            state.current
        };
        let decision = plugged.decide(env, reward);
        if plugged.stop.is_cancelled() {
            self.learners().unplug(&plugged.name);
            return;
        }
        let class = decision.1;
        self.compose(plugged, decision).await;
        let name = |i: Option<usize>| i.map(|i| plugged.names[i].clone()).unwrap_or_default();
        let event = || topic::LearnerWindow {
            learner: plugged.name.clone(),
            service: plugged.spec.service.clone(),
            previous: name(previous),
            composition: name(lock(&plugged.state).current),
            reward: reward.map_or(Value::Null, Value::Float),
            class: class.map_or(Value::Null, |c| Value::Int(c as i64)),
            requests: requests as i64,
        };
        let _ = self.bus().emit_with(event).await;
    }

    /// Applies a decision: variant here, lessons to the placement's neighbours, redirection.
    async fn compose(&self, plugged: &Plugged, (pick, _): (Option<usize>, Option<usize>)) {
        let Some(i) = pick else { return };
        let c = &plugged.compositions[i];
        let service = plugged.spec.service.as_str();
        if let Err(e) = self.knowledge().set_behaviour(service, &c.variant).await {
            tracing::warn!(agent = %self.name(), learner = %plugged.name, "cannot apply `{}`: {e}", plugged.names[i]);
            return;
        }
        for n in c.placement.neighbours() {
            let taught = lock(&plugged.state).taught.get(n) == Some(&c.variant);
            if taught {
                continue;
            }
            match self.teach(service, n).await {
                Ok(()) => {
                    lock(&plugged.state)
                        .taught
                        .insert(n.clone(), c.variant.clone());
                }
                Err(e) => {
                    tracing::warn!(agent = %self.name(), learner = %plugged.name, neighbour = %n, "teaching for `{}` failed: {e}", plugged.names[i]);
                }
            }
        }
        let neighbours = c.placement.neighbours();
        let fraction = if neighbours.is_empty() { 0.0 } else { 1.0 };
        self.redirect_over(service, neighbours, fraction);
        lock(&plugged.state).current = Some(i);
    }
}

impl Plugged {
    /// Asks the learner; a learner that fails or names no composition of its own keeps the
    /// one in force (and is reported); one that panics is stopped, to be unplugged.
    fn decide(&self, env: &Observation, reward: Option<f64>) -> (Option<usize>, Option<usize>) {
        let vetoed = lock(&self.vetoed).clone();
        let allowed = |c: &str| !vetoed.contains(c);
        let decision = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lock(&self.learner).window(env, reward, &allowed)
        }));
        let Ok(decision) = decision else {
            tracing::error!(learner = %self.name, "learner panicked; unplugged");
            self.stop.cancel();
            return (None, None);
        };
        match decision {
            Ok(d) => {
                let pick = d
                    .composition
                    .as_deref()
                    .and_then(|c| self.names.iter().position(|n| n == c))
                    .filter(|&i| allowed(&self.names[i]));
                if d.composition.is_some() && pick.is_none() {
                    tracing::warn!(learner = %self.name, "the learner picked `{}`, which it may not", d.composition.unwrap_or_default());
                }
                (pick, d.class)
            }
            Err(e) => {
                tracing::warn!(learner = %self.name, "learner failed: {e}");
                (None, None)
            }
        }
    }
}

/// The topics a learner's loop listens to: its reward's and its environment's.
fn watched(spec: &CompositionSpec) -> Vec<Pattern> {
    let reward = match &spec.reward {
        RewardMetric::ResponseTime { .. } => Pattern::Exact(topic::Executed::TOPIC.into()),
        RewardMetric::Field { topic, .. } => topic.clone(),
    };
    std::iter::once(reward)
        .chain(spec.environment.clone())
        .collect()
}
