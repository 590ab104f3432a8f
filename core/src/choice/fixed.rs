//! The fixed rules: first known, round robin, least recently failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::ProviderChoice;
use crate::knowledge::Provider;

/// The provider heard of first.
#[derive(Debug, Default, Clone, Copy)]
pub struct FirstKnown;

impl ProviderChoice for FirstKnown {
    fn choose(&self, _service: &str, candidates: &[Provider]) -> Option<usize> {
        (!candidates.is_empty()).then_some(0)
    }

    fn name(&self) -> &str {
        "first_known"
    }

    fn fork(&self, _seed: u64) -> Option<Arc<dyn ProviderChoice>> {
        Some(Arc::new(*self))
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

    fn name(&self) -> &str {
        "round_robin"
    }

    /// The copy goes on from the provider this one would ask next.
    fn fork(&self, _seed: u64) -> Option<Arc<dyn ProviderChoice>> {
        let next = AtomicUsize::new(self.next.load(Ordering::Relaxed));
        Some(Arc::new(RoundRobin { next }))
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
        // Read only if some provider failed: most calls find none that did.
        let now = std::cell::OnceCell::new();
        let healthy = |p: &Provider| {
            p.failures == 0
                || p.last_failure.is_none_or(|t| {
                    now.get_or_init(tokio::time::Instant::now).duration_since(t) >= self.cool_down
                })
        };
        candidates.iter().position(healthy).or_else(|| {
            candidates
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| p.last_failure)
                .map(|(i, _)| i)
        })
    }

    fn name(&self) -> &str {
        "least_recently_failed"
    }

    fn fork(&self, _seed: u64) -> Option<Arc<dyn ProviderChoice>> {
        Some(Arc::new(*self))
    }
}
