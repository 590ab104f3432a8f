//! Provider choice: which of the known providers of a service an agent asks.
//!
//! A [`ProviderChoice`] orders the candidates of each request and is told the quality of every
//! answer ([`ProviderChoice::observe`]), so a strategy can learn. selflet ships fixed rules
//! ([`FirstKnown`], [`RoundRobin`], [`LeastRecentlyFailed`]) and the learned ones of seed 001
//! (Caporuscio et al., self-assembly with two-layer reinforcement learning): [`TwoLayerRl`],
//! its baselines [`SingleLayerRl`], [`Greedy`] and [`Random`]. Every learned strategy keeps a
//! *binding* per service — the provider it asks first — and leaves it only for a provider it
//! scores higher, with the probability of the relative gain (so that agents deciding at once
//! do not all move together). The scores weigh what providers advertise: through gossip, and
//! with every answer, which carries its provider's latest advertisement.
//!
//! What a call's quality is, in `[0, 1]`, is the agent's [`QualityMetric`]: its response time
//! by default, or a number the service reports in its output.
//!
//! ```
//! use selflet_core::choice::{Choice, ProviderChoice};
//!
//! let choice = Choice::from_name("two_layer_rl").expect("a built-in strategy");
//! let strategy = choice.strategy(7);
//! assert_eq!(strategy.name(), "two_layer_rl");
//! ```

mod fixed;
mod learned;

use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use fixed::{FirstKnown, LeastRecentlyFailed, RoundRobin};
pub use learned::{
    Estimate, Greedy, MAX_ESTIMATES, MAX_TRACKED_SERVICES, Random, SingleLayerRl, TwoLayerRl,
};

use crate::knowledge::Provider;
use crate::sync::{read, write};
use crate::value::Value;

/// Chooses among the known providers of a service (all reachable, all offering a wanted
/// mode). Called repeatedly to order the candidates: the chosen one is asked first.
pub trait ProviderChoice: Send + Sync + 'static {
    /// The index of the provider to ask next, `None` for none of them.
    fn choose(&self, service: &str, candidates: &[Provider]) -> Option<usize>;

    /// The order to ask `candidates` in: every index once, the one to ask first first. The
    /// default asks [`choose`](Self::choose)'s pick first, then the others as listed (the
    /// order they were heard of), so a strategy is consulted once per call.
    fn order(&self, service: &str, candidates: &[Provider]) -> Vec<usize> {
        let first = self
            .choose(service, candidates)
            .filter(|&i| i < candidates.len());
        first
            .into_iter()
            .chain((0..candidates.len()).filter(|&i| Some(i) != first))
            .collect()
    }

    /// What asking `provider` for `service` gave. Learned strategies update their estimates
    /// here; the default ignores it.
    fn observe(&self, service: &str, provider: &str, observation: &Observation) {
        let _ = (service, provider, observation);
    }

    /// The strategy's name, as manifests and policies write it.
    fn name(&self) -> &str {
        "custom"
    }

    /// A strategy of the same kind that starts from what this one has learned and goes on
    /// on its own, drawing at random from `seed`: for an agent that takes over from another
    /// (a replica, a member started again) and should not learn its providers anew. `None`,
    /// the default, if it cannot be copied. Every built-in strategy can.
    ///
    /// ```
    /// use selflet_core::choice::{Learning, Observation, ProviderChoice, TwoLayerRl};
    ///
    /// let rl = TwoLayerRl::new(Learning::default(), 1);
    /// rl.observe("s", "b", &Observation { quality: 0.8, ok: true, advertised: Some(0.8) });
    /// let copy = rl.fork(2).unwrap();
    /// // The copy learned what the original had; what either learns next is its own.
    /// copy.observe("s", "c", &Observation { quality: 0.9, ok: true, advertised: Some(0.9) });
    /// assert_eq!(rl.bound("s").as_deref(), Some("b"));
    /// assert_eq!(copy.name(), "two_layer_rl");
    /// ```
    fn fork(&self, seed: u64) -> Option<Arc<dyn ProviderChoice>> {
        let _ = seed;
        None
    }
}

/// What one call to a provider gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// The quality obtained, in `[0, 1]` (0 for a failed call).
    pub quality: f64,
    /// Whether the provider answered with a result (a failure, refusal or time-out is not).
    pub ok: bool,
    /// The quality the provider last advertised, if known.
    pub advertised: Option<f64>,
}

/// How the learned strategies of seed 001 are tuned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Learning {
    /// τ₀: how far a provider's advertised quality is trusted before it was tried, in
    /// `[0, 1]` (the paper's 0.95; 0.5 is the cautious choice it suggests).
    pub initial_trust: f64,
    /// z: the learning window. The step size of the n-th observation of a provider is
    /// 1/(((n − 1) mod z) + 1), so estimates average over the last up to z observations.
    pub window: u32,
}

impl Default for Learning {
    fn default() -> Self {
        Learning {
            initial_trust: 0.95,
            window: 5,
        }
    }
}

impl Learning {
    /// Checks the parameters: trust in `[0, 1]`, a window of at least 1.
    ///
    /// # Errors
    ///
    /// Says which parameter is out of range.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.initial_trust) {
            return Err(format!(
                "`initial_trust` is {}, not in [0, 1]",
                self.initial_trust
            ));
        }
        if self.window == 0 {
            return Err("`window` is at least 1".to_owned());
        }
        Ok(())
    }
}

/// A provider-choice strategy by name and parameters, as manifests and policies write it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Choice {
    /// [`FirstKnown`].
    FirstKnown,
    /// [`RoundRobin`].
    RoundRobin,
    /// [`LeastRecentlyFailed`].
    LeastRecentlyFailed,
    /// [`TwoLayerRl`].
    TwoLayerRl(Learning),
    /// [`SingleLayerRl`] (its `initial_trust` is unused).
    SingleLayerRl(Learning),
    /// [`Greedy`].
    Greedy,
    /// [`Random`].
    Random,
}

impl Choice {
    /// Every strategy, with default parameters.
    pub const ALL: [Choice; 7] = [
        Choice::FirstKnown,
        Choice::RoundRobin,
        Choice::LeastRecentlyFailed,
        Choice::TwoLayerRl(Learning {
            initial_trust: 0.95,
            window: 5,
        }),
        Choice::SingleLayerRl(Learning {
            initial_trust: 0.95,
            window: 5,
        }),
        Choice::Greedy,
        Choice::Random,
    ];

    /// The name manifests use.
    pub fn name(self) -> &'static str {
        match self {
            Choice::FirstKnown => "first_known",
            Choice::RoundRobin => "round_robin",
            Choice::LeastRecentlyFailed => "least_recently_failed",
            Choice::TwoLayerRl(_) => "two_layer_rl",
            Choice::SingleLayerRl(_) => "single_layer_rl",
            Choice::Greedy => "greedy",
            Choice::Random => "random",
        }
    }

    /// The strategy of that name, with default parameters.
    pub fn from_name(name: &str) -> Option<Choice> {
        Choice::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The learning parameters, for the learned strategies that have them.
    pub fn learning(self) -> Option<Learning> {
        match self {
            Choice::TwoLayerRl(l) | Choice::SingleLayerRl(l) => Some(l),
            _ => None,
        }
    }

    /// The same strategy with other learning parameters (unchanged if it has none).
    pub fn with_learning(self, learning: Learning) -> Choice {
        match self {
            Choice::TwoLayerRl(_) => Choice::TwoLayerRl(learning),
            Choice::SingleLayerRl(_) => Choice::SingleLayerRl(learning),
            other => other,
        }
    }

    /// A new instance of the strategy. `seed` seeds its random choices (ties, [`Random`]), so
    /// that a run can be repeated.
    pub fn strategy(self, seed: u64) -> Arc<dyn ProviderChoice> {
        match self {
            Choice::FirstKnown => Arc::new(FirstKnown),
            Choice::RoundRobin => Arc::new(RoundRobin::default()),
            Choice::LeastRecentlyFailed => Arc::new(LeastRecentlyFailed::default()),
            Choice::TwoLayerRl(l) => Arc::new(TwoLayerRl::new(l, seed)),
            Choice::SingleLayerRl(l) => Arc::new(SingleLayerRl::new(l, seed)),
            Choice::Greedy => Arc::new(Greedy::new(seed)),
            Choice::Random => Arc::new(Random::new(seed)),
        }
    }
}

/// The strategy an agent uses now; policies may switch it while requests go on. Cloning gives
/// another handle to the same cell.
#[derive(Clone)]
pub struct ChoiceCell {
    current: Arc<RwLock<Arc<dyn ProviderChoice>>>,
}

impl std::fmt::Debug for ChoiceCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ChoiceCell")
            .field(&self.get().name())
            .finish()
    }
}

impl ChoiceCell {
    /// A cell holding `strategy`.
    pub fn new(strategy: Arc<dyn ProviderChoice>) -> ChoiceCell {
        ChoiceCell {
            current: Arc::new(RwLock::new(strategy)),
        }
    }

    /// The strategy in use.
    pub fn get(&self) -> Arc<dyn ProviderChoice> {
        Arc::clone(&read(&self.current))
    }

    /// Switches to `strategy`; what the previous one learned is dropped with it.
    pub fn set(&self, strategy: Arc<dyn ProviderChoice>) {
        *write(&self.current) = strategy;
    }
}

/// How the quality of a call is measured, in `[0, 1]`, higher is better.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum QualityMetric {
    /// From the response time t: `reference / (reference + t)`, so a call as slow as the
    /// reference scores 0.5.
    ResponseTime {
        /// The response time that scores 0.5.
        reference: Duration,
    },
    /// A number the service reports in its output: the output itself, or its field of this
    /// name; clamped to `[0, 1]`. An output without one is scored by response time.
    Output {
        /// The field (empty: the output is the number).
        field: String,
    },
}

impl Default for QualityMetric {
    fn default() -> Self {
        QualityMetric::ResponseTime {
            reference: DEFAULT_REFERENCE,
        }
    }
}

/// The response time that scores 0.5 by default.
pub const DEFAULT_REFERENCE: Duration = Duration::from_millis(100);

impl QualityMetric {
    /// The quality of a call that returned `output` after `elapsed`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use selflet_core::choice::QualityMetric;
    /// use selflet_core::Value;
    ///
    /// let by_time = QualityMetric::default();
    /// assert_eq!(by_time.quality(&Value::Null, Duration::from_millis(100)), 0.5);
    /// let reported = QualityMetric::Output { field: "quality".into() };
    /// let out = Value::map([("quality", Value::from(0.8))]);
    /// assert_eq!(reported.quality(&out, Duration::from_secs(9)), 0.8);
    /// ```
    pub fn quality(&self, output: &Value, elapsed: Duration) -> f64 {
        match self {
            QualityMetric::ResponseTime { reference } => by_time(*reference, elapsed),
            QualityMetric::Output { field } => {
                let reported = if field.is_empty() {
                    Some(output)
                } else {
                    output.get(field)
                };
                match reported.and_then(Value::as_f64) {
                    Some(q) if q.is_nan() => 0.0,
                    Some(q) => q.clamp(0.0, 1.0),
                    None => by_time(DEFAULT_REFERENCE, elapsed),
                }
            }
        }
    }
}

fn by_time(reference: Duration, elapsed: Duration) -> f64 {
    let r = reference.as_secs_f64();
    if r + elapsed.as_secs_f64() == 0.0 {
        return 1.0;
    }
    r / (r + elapsed.as_secs_f64())
}
