//! The Rhai sandbox shared by guards, expressions, scripted abilities and policies.
//!
//! Scripts are user input — and, for taught behaviours, a peer's input — so every engine made
//! here runs with limits: operations, call depth, expression depth, string/array/map sizes,
//! and a wall-clock budget checked while the script runs. There is no file, network or process
//! access in Rhai's standard packages, and `eval` is disabled.

use std::cell::Cell;
use std::time::Duration;

use rhai::{Dynamic, Engine, EvalAltResult, Position};

/// Limits a script runs under. Every limit has a field; [`Limits::default`] suits policies,
/// guards and short abilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most operations one evaluation may perform.
    pub max_operations: u64,
    /// Deepest function-call nesting.
    pub max_call_depth: usize,
    /// Deepest expression nesting (at compile time).
    pub max_expr_depth: usize,
    /// Longest string, in bytes.
    pub max_string_size: usize,
    /// Longest array.
    pub max_array_size: usize,
    /// Largest object map.
    pub max_map_size: usize,
    /// Wall-clock time one evaluation may take.
    pub budget: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 1_000_000,
            max_call_depth: 32,
            max_expr_depth: 64,
            max_string_size: 1 << 20,
            max_array_size: 100_000,
            max_map_size: 100_000,
            budget: Duration::from_millis(250),
        }
    }
}

thread_local! {
    // The deadline of the evaluation running on this thread. Evaluations are synchronous and
    // do not nest across engines, so one slot per thread is enough.
    static DEADLINE: Cell<Budget> = const { Cell::new(Budget::Off) };
}

/// How often (in operations) the wall clock is read: reading it every operation would cost
/// more than most scripts.
const CLOCK_EVERY: u64 = 1024;

/// The wall-clock budget of the evaluation running on a thread.
#[derive(Clone, Copy)]
enum Budget {
    /// No evaluation under a budget runs.
    Off,
    /// One does, and has not yet run long enough to look at the clock: most guards and
    /// expressions end within a few dozen operations, and never pay for a clock read.
    Armed(Duration),
    /// It runs until then.
    Until(std::time::Instant),
}

/// Marker carried by the termination token of a script stopped by its wall-clock budget.
pub(crate) const OUT_OF_TIME: &str = "wall-clock budget exceeded";

/// A sandboxed engine with the given limits.
pub(crate) fn engine(limits: &Limits) -> Engine {
    let mut e = Engine::new();
    e.set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_depth)
        .set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_max_modules(0)
        .set_strict_variables(false);
    e.disable_symbol("eval");
    e.on_print(|s| tracing::info!(target: "selflet::script", "{s}"));
    e.on_debug(|s, src, pos| tracing::debug!(target: "selflet::script", ?src, %pos, "{s}"));
    e.on_progress(|ops| {
        if ops % CLOCK_EVERY != 0 {
            return None;
        }
        // The budget counts from the first check, a thousand operations in: a few
        // microseconds late, and no clock read at all for short evaluations.
        match DEADLINE.get() {
            Budget::Off => None,
            Budget::Armed(budget) => {
                let now = std::time::Instant::now();
                let until = now
                    .checked_add(budget)
                    .unwrap_or(now + crate::duration::MAX);
                DEADLINE.set(Budget::Until(until));
                None
            }
            Budget::Until(d) if std::time::Instant::now() > d => Some(Dynamic::from(OUT_OF_TIME)),
            Budget::Until(_) => None,
        }
    });
    e
}

/// An engine for `limits`, shared by every agent that uses the default limits: engines are
/// read-only once built, and sharing one keeps idle agents small.
pub(crate) fn shared(limits: &Limits) -> std::sync::Arc<Engine> {
    static DEFAULT: std::sync::OnceLock<std::sync::Arc<Engine>> = std::sync::OnceLock::new();
    if *limits == Limits::default() {
        std::sync::Arc::clone(DEFAULT.get_or_init(|| std::sync::Arc::new(engine(limits))))
    } else {
        std::sync::Arc::new(engine(limits))
    }
}

/// Runs `f` (one script evaluation) with the wall-clock budget armed.
pub(crate) fn with_budget<T>(budget: Duration, f: impl FnOnce() -> T) -> T {
    let previous = DEADLINE.replace(Budget::Armed(budget));
    let out = f();
    DEADLINE.set(previous);
    out
}

/// A script failure, rendered for people: what happened and where in the script.
pub(crate) fn describe(err: &EvalAltResult) -> String {
    match err {
        EvalAltResult::ErrorTerminated(token, pos) if token.to_string() == OUT_OF_TIME => {
            format!("{OUT_OF_TIME}{}", at(*pos))
        }
        EvalAltResult::ErrorTooManyOperations(pos) => {
            format!("operation limit exceeded{}", at(*pos))
        }
        other => other.to_string(),
    }
}

fn at(pos: Position) -> String {
    if pos.is_none() {
        String::new()
    } else {
        format!(" ({pos})")
    }
}

/// An event as scripts see it: the payload's fields (a payload that is not a map becomes
/// `value`), plus `topic` and `source` unless the payload has fields of those names.
pub(crate) fn event_map(event: &crate::bus::Event) -> rhai::Map {
    let mut map = rhai::Map::new();
    match event.payload() {
        crate::value::Value::Map(m) => {
            map.extend(m.iter().map(|(k, v)| (k.as_str().into(), v.to_dynamic())));
        }
        other => {
            map.insert("value".into(), other.to_dynamic());
        }
    }
    map.entry("topic".into())
        .or_insert_with(|| event.topic().into());
    map.entry("source".into())
        .or_insert_with(|| event.source().into());
    map
}
