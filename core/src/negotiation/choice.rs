//! Which known provider to ask: a pluggable strategy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::knowledge::Provider;

/// Chooses among the known providers of a service (all reachable, all offering a wanted
/// mode). Called repeatedly to order the candidates: the chosen one is asked first.
pub trait ProviderChoice: Send + Sync + 'static {
    /// The index of the provider to ask next, `None` for none of them.
    fn choose(&self, service: &str, candidates: &[Provider]) -> Option<usize>;
}

/// The provider heard of first.
#[derive(Debug, Default, Clone, Copy)]
pub struct FirstKnown;

impl ProviderChoice for FirstKnown {
    fn choose(&self, _service: &str, candidates: &[Provider]) -> Option<usize> {
        (!candidates.is_empty()).then_some(0)
    }
}

/// Each provider in turn.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl ProviderChoice for RoundRobin {
    fn choose(&self, _service: &str, candidates: &[Provider]) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        Some(self.next.fetch_add(1, Ordering::Relaxed) % candidates.len())
    }
}

/// The first provider that has not failed recently; among those that have, the one whose
/// last failure is oldest. Failed providers are thus skipped while others are known, and
/// tried again once `cool_down` has passed.
#[derive(Debug, Clone, Copy)]
pub struct LeastRecentlyFailed {
    /// How long a failure counts against a provider.
    pub cool_down: Duration,
}

impl Default for LeastRecentlyFailed {
    fn default() -> Self {
        LeastRecentlyFailed {
            cool_down: Duration::from_secs(30),
        }
    }
}

impl ProviderChoice for LeastRecentlyFailed {
    fn choose(&self, _service: &str, candidates: &[Provider]) -> Option<usize> {
        let now = tokio::time::Instant::now();
        let healthy = |p: &Provider| {
            p.failures == 0
                || p.last_failure
                    .is_none_or(|t| now.duration_since(t) >= self.cool_down)
        };
        candidates.iter().position(healthy).or_else(|| {
            candidates
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| p.last_failure)
                .map(|(i, _)| i)
        })
    }
}

/// A provider-choice strategy by name, as manifests and policies write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Choice {
    /// [`FirstKnown`].
    FirstKnown,
    /// [`RoundRobin`].
    RoundRobin,
    /// [`LeastRecentlyFailed`].
    LeastRecentlyFailed,
}

impl Choice {
    /// Every strategy, by name.
    pub const ALL: [Choice; 3] = [
        Choice::FirstKnown,
        Choice::RoundRobin,
        Choice::LeastRecentlyFailed,
    ];

    /// The name manifests use.
    pub fn name(self) -> &'static str {
        match self {
            Choice::FirstKnown => "first_known",
            Choice::RoundRobin => "round_robin",
            Choice::LeastRecentlyFailed => "least_recently_failed",
        }
    }

    /// The strategy of that name.
    pub fn from_name(name: &str) -> Option<Choice> {
        Choice::ALL.into_iter().find(|c| c.name() == name)
    }

    /// A new instance of the strategy.
    pub fn strategy(self) -> std::sync::Arc<dyn ProviderChoice> {
        match self {
            Choice::FirstKnown => std::sync::Arc::new(FirstKnown),
            Choice::RoundRobin => std::sync::Arc::new(RoundRobin::default()),
            Choice::LeastRecentlyFailed => std::sync::Arc::new(LeastRecentlyFailed::default()),
        }
    }
}
