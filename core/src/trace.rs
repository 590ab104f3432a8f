//! Trace ids: one id follows a chain of work across agents.
//!
//! A call that crosses agents (A → B → C), or a teaching that follows a forecast, is one
//! *trace*. The id travels in every [envelope](crate::transport::Envelope) sent while the
//! trace is current, every [event](crate::bus::Event) published while it is current carries
//! it, and the agent that receives a request serves it inside the same trace. So the console,
//! the logs (`trace` fields of `tracing` spans) and policies (`ev.trace`) can put one chain
//! together.
//!
//! The current trace is a tokio task-local: [`scope`] runs a future inside a trace, and work
//! the future awaits (behaviours, abilities, the calls they make) sees it. A call made outside
//! any trace starts a new one.
//!
//! ```
//! use selflet_core::trace::{self, TraceId};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! assert_eq!(trace::current(), None);
//! let id = TraceId::new();
//! trace::scope(id, async move {
//!     assert_eq!(trace::current(), Some(id));
//! })
//! .await;
//! # }
//! ```

use futures_util::future::Either;
use std::fmt;
use std::future::Future;

/// The id of one trace: 64 random bits, never zero (zero means "no trace" on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(std::num::NonZeroU64);

impl TraceId {
    /// A new random id.
    pub fn new() -> TraceId {
        loop {
            if let Some(id) = std::num::NonZeroU64::new(fastrand::u64(..)) {
                return TraceId(id);
            }
        }
    }

    /// The id carried as `raw` on the wire (0: none).
    pub fn from_raw(raw: u64) -> Option<TraceId> {
        std::num::NonZeroU64::new(raw).map(TraceId)
    }

    /// The id as carried on the wire.
    pub fn raw(self) -> u64 {
        self.0.get()
    }
}

impl Default for TraceId {
    fn default() -> Self {
        TraceId::new()
    }
}

impl fmt::Display for TraceId {
    /// Sixteen hex digits, as the logs and the console show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

tokio::task_local! {
    static CURRENT: TraceId;
}

/// The trace the running task is in, if any.
pub fn current() -> Option<TraceId> {
    CURRENT.try_with(|t| *t).ok()
}

/// The current trace as carried on the wire (0: none).
pub fn current_raw() -> u64 {
    current().map_or(0, TraceId::raw)
}

// These two return their futures rather than being `async fn`s: an `async fn` would hold
// `work` twice (as its argument, and inside the future it awaits), and the served and
// requested calls they wrap are kilobytes, copied in full whenever they move.

/// Runs `work` inside trace `id`.
pub fn scope<F: Future>(id: TraceId, work: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(id, work)
}

/// Runs `work`, which does not wait, inside trace `id`.
pub(crate) fn in_scope<R>(id: TraceId, work: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(id, work)
}

/// Runs `work` inside the current trace (the one current where this is called), or inside
/// a new one if there is none.
pub fn continue_or_start<F: Future>(work: F) -> impl Future<Output = F::Output> {
    match current() {
        Some(_) => Either::Left(work),
        None => Either::Right(scope(TraceId::new(), work)),
    }
}
