//! The agent's side of its predictors: plugging them, and the load samples it publishes.

use std::sync::atomic::Ordering;

use crate::agent::AgentHandle;
use crate::bus::Pattern;
use crate::prediction::{DEFAULT_SAMPLE_PERIOD, PredictionError, Predictors, param_duration};
use crate::topic::{LoadSample, Payload};
use crate::value::Value;

impl AgentHandle {
    /// The agent's predictors: plug, unplug, inspect.
    pub fn predictors(&self) -> &Predictors {
        &self.inner().predictors
    }

    /// Plugs a predictor of a registered kind in.
    pub fn plug_predictor(
        &self,
        kind: &str,
        name: &str,
        params: &Value,
    ) -> Result<(), PredictionError> {
        self.predictors().plug_kind(kind, name, params)?;
        self.ensure_load_sampler();
        Ok(())
    }

    /// Starts publishing `load.sample` once some predictor or policy consumes it (and telling
    /// the neighbours the utilization): every `sample_period`
    /// (the smallest any such predictor asks for), the work done (from the states' `demand`)
    /// per second of the period as `utilization`, and instances started per behaviour per
    /// second as `rates`.
    pub(crate) fn ensure_load_sampler(&self) {
        let period = self
            .predictors()
            .descriptors()
            .iter()
            .filter(|d| {
                d.consumes.iter().any(|p| p.matches(LoadSample::TOPIC))
                    || d.consumes.contains(&Pattern::All)
            })
            .filter_map(|d| param_duration(&d.params, "sample_period", DEFAULT_SAMPLE_PERIOD).ok())
            .min();
        // Policies balancing load react to the samples too.
        let period = period.or_else(|| {
            self.policies()
                .listens_to(LoadSample::TOPIC)
                .then_some(DEFAULT_SAMPLE_PERIOD)
        });
        let Some(period) = period.filter(|p| !p.is_zero()) else {
            return;
        };
        if self.inner().sampler_running.swap(true, Ordering::AcqRel) {
            return;
        }
        let agent = self.clone();
        let stop = self.loops_token();
        self.spawn_task(|_| async move {
            let mut last = agent.load_counters();
            let mut tick = tokio::time::interval_at(crate::duration::deadline(period), period);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let now = agent.load_counters();
                let secs = period.as_secs_f64();
                let rates: crate::value::Map = now
                    .runs
                    .iter()
                    .map(|(b, n)| {
                        let before = last.runs.get(b).copied().unwrap_or(0);
                        (b.clone(), Value::Float((n - before) as f64 / secs))
                    })
                    .collect();
                let busy = now.busy_seconds - last.busy_seconds;
                let sample = LoadSample {
                    period_s: secs,
                    busy_s: busy,
                    utilization: busy / secs,
                    rates: Value::Map(rates),
                };
                last = now;
                agent.inner().negotiator.share_load(busy / secs);
                if agent.bus().emit(&sample).await.is_err() {
                    break;
                }
            }
        });
    }
}
