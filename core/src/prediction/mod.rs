//! The Prediction Manager: pluggable prediction models fed by the Dispatcher.
//!
//! A predictor declares, in its [`Descriptor`], the topics it consumes and the topics it
//! produces. The manager feeds it the events it consumes, in order, and publishes what it
//! emits; policies react to those forecasts. Predictors are plugged and unplugged at run time
//! without disturbing one another, each in its own task with its own queue. A predictor that
//! returns an error is reported (`prediction.error`) and keeps running; one that panics is
//! reported (`prediction.failed`) and unplugged — the agent goes on.
//!
//! Predictor kinds are registered by name in [`Kinds`], so manifests can name them with
//! parameters. This crate registers the `rhai` kind (a predictor written as a script, see
//! [`script`]); `selflet-plugins` adds `space_saving` and `load_forecast`.

pub mod learner;
pub mod script;

use std::collections::BTreeMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, Event, Overflow, Pattern, SubscribeOptions};
use crate::error::BoxError;
use crate::sync::{lock, read, write};
use crate::topic;
use crate::value::Value;

/// How often load samples are published unless a predictor asks otherwise with its
/// `sample_period` parameter.
pub const DEFAULT_SAMPLE_PERIOD: Duration = Duration::from_secs(10);

/// What a predictor is: its name, kind, what it consumes and produces, its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Descriptor {
    /// The instance name, unique in the agent.
    pub name: String,
    /// The kind it was made from.
    pub kind: String,
    /// Topics it consumes.
    pub consumes: Vec<Pattern>,
    /// Topics it may publish.
    pub produces: Vec<String>,
    /// The parameters it was made with.
    pub params: Value,
}

/// Collects what a predictor emits while it handles one event.
#[derive(Debug, Default)]
pub struct Emitter {
    out: Vec<(String, Value)>,
}

impl Emitter {
    /// Emits an event; the manager publishes it on the agent's bus.
    pub fn emit(&mut self, topic: impl Into<String>, payload: impl Into<Value>) {
        self.out.push((topic.into(), payload.into()));
    }
}

/// A prediction model.
///
/// `update` is called for every consumed event, in publication order; `tick` every
/// [`tick_interval`](Predictor::tick_interval), for models that forecast on a clock rather
/// than per event. Time comes from tokio's clock (paused clocks included).
pub trait Predictor: Send + 'static {
    /// The descriptor.
    fn descriptor(&self) -> &Descriptor;

    /// Consumes one event.
    fn update(&mut self, event: &Event, out: &mut Emitter) -> Result<(), BoxError>;

    /// How often [`tick`](Predictor::tick) runs; `None` (the default) for never.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// Runs periodically.
    fn tick(&mut self, _now: tokio::time::Instant, _out: &mut Emitter) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Makes a predictor of one kind from an instance name and parameters.
pub type Factory =
    Arc<dyn Fn(&str, &Value) -> Result<Box<dyn Predictor>, ParamError> + Send + Sync + 'static>;

/// A factory from a predictor's constructor (instance name and parameters in, predictor or
/// what is wrong with the parameters out).
pub fn factory<P: Predictor>(make: fn(&str, &Value) -> Result<P, ParamError>) -> Factory {
    Arc::new(move |name, params| Ok(Box::new(make(name, params)?) as Box<dyn Predictor>))
}

/// Predictor and learner kinds by name. Cloning gives another handle to the same registry.
#[derive(Clone)]
pub struct Kinds {
    // Copy on write: every default registry starts as a pointer to one table of the built-in
    // kinds (a table per agent cost each idle agent ~450 bytes), and gets a table of its own
    // when a kind is registered into it.
    tables: Arc<RwLock<Arc<Tables>>>,
}

#[derive(Clone, Default)]
struct Tables {
    predictors: BTreeMap<String, Factory>,
    learners: BTreeMap<String, learner::LearnerFactory>,
}

impl fmt::Debug for Kinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Default for Kinds {
    /// The kinds this crate provides: `rhai`.
    fn default() -> Self {
        static BUILT_IN: std::sync::OnceLock<Arc<Tables>> = std::sync::OnceLock::new();
        let built_in = BUILT_IN.get_or_init(|| {
            let mut t = Tables::default();
            t.predictors
                .insert("rhai".into(), factory(script::ScriptPredictor::new));
            Arc::new(t)
        });
        Kinds {
            tables: Arc::new(RwLock::new(Arc::clone(built_in))),
        }
    }
}

impl Kinds {
    /// Registers (or replaces) a kind.
    pub fn register(&self, kind: &str, factory: Factory) {
        Arc::make_mut(&mut write(&self.tables))
            .predictors
            .insert(kind.to_owned(), factory);
    }

    /// The registered kinds' names.
    pub fn names(&self) -> Vec<String> {
        read(&self.tables).predictors.keys().cloned().collect()
    }

    /// Registers (or replaces) a learner kind.
    pub fn register_learner(&self, kind: &str, factory: learner::LearnerFactory) {
        Arc::make_mut(&mut write(&self.tables))
            .learners
            .insert(kind.to_owned(), factory);
    }

    /// The registered learner kinds' names.
    pub fn learner_names(&self) -> Vec<String> {
        read(&self.tables).learners.keys().cloned().collect()
    }

    /// Makes a learner over `compositions` from the parameters its kind reads.
    pub fn make_learner(
        &self,
        kind: &str,
        name: &str,
        compositions: &[String],
        params: &Value,
    ) -> Result<Box<dyn learner::Learner>, learner::PlugError> {
        // The lock is let go before `learner_names` takes it again.
        let factory = read(&self.tables).learners.get(kind).cloned();
        let factory = factory.ok_or_else(|| learner::PlugError::UnknownKind {
            kind: kind.to_owned(),
            known: self.learner_names(),
        })?;
        factory(compositions, params).map_err(|error| learner::PlugError::Params {
            name: name.to_owned(),
            error,
        })
    }

    /// Makes a predictor.
    pub fn make(
        &self,
        kind: &str,
        name: &str,
        params: &Value,
    ) -> Result<Box<dyn Predictor>, PredictionError> {
        // The lock is let go before `names` takes it again.
        let factory = read(&self.tables).predictors.get(kind).cloned();
        let factory = factory.ok_or_else(|| PredictionError::UnknownKind {
            kind: kind.to_owned(),
            known: self.names(),
        })?;
        factory(name, params).map_err(|error| PredictionError::Params {
            name: name.to_owned(),
            error,
        })
    }
}

/// What kind of problem a predictor parameter has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamErrorKind {
    /// A value of another type than the parameter takes.
    WrongType,
    /// A value of the right type outside what the parameter accepts.
    OutOfRange,
    /// Parameters that do not go together, or a script or file that cannot be used.
    Invalid,
}

/// A predictor parameter that cannot be used: which one, what kind of problem, and what is
/// wrong in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`{} {message}", if *.kind == ParamErrorKind::Invalid { ":" } else { " is" })]
pub struct ParamError {
    key: String,
    kind: ParamErrorKind,
    message: String,
}

impl ParamError {
    /// A problem of `kind` with parameter `key`.
    pub fn new(key: &str, kind: ParamErrorKind, message: impl Into<String>) -> ParamError {
        ParamError {
            key: key.to_owned(),
            kind,
            message: message.into(),
        }
    }

    /// `key` holds a value of another type than `expected`.
    pub fn wrong_type(key: &str, expected: &str, found: &Value) -> ParamError {
        ParamError::new(
            key,
            ParamErrorKind::WrongType,
            format!("{expected}, not {found}"),
        )
    }

    /// `key` is outside what it accepts, which `accepted` says.
    pub fn out_of_range(key: &str, accepted: impl Into<String>) -> ParamError {
        ParamError::new(key, ParamErrorKind::OutOfRange, accepted)
    }

    /// The parameter.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What kind of problem.
    pub fn kind(&self) -> ParamErrorKind {
        self.kind
    }

    /// What is wrong, in words.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Why a predictor could not be plugged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PredictionError {
    /// No kind of that name is registered.
    #[error("no predictor kind `{kind}` (known: {})", known.join(", "))]
    UnknownKind {
        /// The kind asked for.
        kind: String,
        /// The kinds there are.
        known: Vec<String>,
    },
    /// The parameters were refused.
    #[error("predictor `{name}`: {error}")]
    Params {
        /// The instance.
        name: String,
        /// What is wrong.
        #[source]
        error: ParamError,
    },
    /// A predictor of that name is already plugged.
    #[error("a predictor named `{0}` is already plugged")]
    Taken(String),
    /// The agent has stopped.
    #[error("the agent has stopped")]
    Stopped,
}

/// Counters of one plugged predictor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PredictorStats {
    /// Events consumed.
    pub events: u64,
    /// Events emitted.
    pub emitted: u64,
    /// Errors returned.
    pub errors: u64,
}

struct Slot {
    descriptor: Descriptor,
    stop: CancellationToken,
    stats: Arc<Mutex<PredictorStats>>,
}

/// The predictors plugged into one agent. Cloning gives another handle to the same manager.
#[derive(Clone)]
pub struct Predictors {
    inner: Arc<Inner>,
}

struct Inner {
    bus: Bus,
    kinds: Kinds,
    slots: Mutex<BTreeMap<String, Slot>>,
    // Every predictor stops with the agent.
    stop_all: CancellationToken,
    tracker: tokio_util::task::TaskTracker,
}

impl fmt::Debug for Predictors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(lock(&self.inner.slots).keys())
            .finish()
    }
}

impl Predictors {
    pub(crate) fn new(
        bus: Bus,
        kinds: Kinds,
        stop_all: CancellationToken,
        tracker: tokio_util::task::TaskTracker,
    ) -> Predictors {
        Predictors {
            inner: Arc::new(Inner {
                bus,
                kinds,
                slots: Mutex::default(),
                stop_all,
                tracker,
            }),
        }
    }

    /// The registered kinds.
    pub fn kinds(&self) -> &Kinds {
        &self.inner.kinds
    }

    /// Makes a predictor of `kind` and plugs it in under `name`.
    pub fn plug_kind(&self, kind: &str, name: &str, params: &Value) -> Result<(), PredictionError> {
        let p = self.inner.kinds.make(kind, name, params)?;
        self.plug(p)
    }

    /// Plugs a predictor in: from now on it receives the events it consumes.
    pub fn plug(&self, predictor: Box<dyn Predictor>) -> Result<(), PredictionError> {
        let d = predictor.descriptor().clone();
        let mut slots = lock(&self.inner.slots);
        if slots.contains_key(&d.name) {
            return Err(PredictionError::Taken(d.name));
        }
        if self.inner.tracker.is_closed() {
            return Err(PredictionError::Stopped);
        }
        let options = SubscribeOptions {
            capacity: 4096,
            overflow: Overflow::DropOldest,
        };
        let events = self
            .inner
            .bus
            .subscribe_many(d.consumes.clone(), options)
            .map_err(|_| PredictionError::Stopped)?;
        let stop = self.inner.stop_all.child_token();
        let stats = Arc::new(Mutex::new(PredictorStats::default()));
        let run = Run {
            predictor,
            bus: self.inner.bus.clone(),
            stats: Arc::clone(&stats),
            manager: Arc::downgrade(&self.inner),
        };
        self.inner.tracker.spawn(run.run(events, stop.clone()));
        tracing::info!(agent = %self.inner.bus.agent(), predictor = %d.name, kind = %d.kind, "predictor plugged");
        slots.insert(
            d.name.clone(),
            Slot {
                descriptor: d,
                stop,
                stats,
            },
        );
        Ok(())
    }

    /// Unplugs a predictor; returns whether it was plugged. The others keep their state.
    pub fn unplug(&self, name: &str) -> bool {
        match lock(&self.inner.slots).remove(name) {
            Some(slot) => {
                slot.stop.cancel();
                true
            }
            None => false,
        }
    }

    /// The plugged predictors' descriptors.
    pub fn descriptors(&self) -> Vec<Descriptor> {
        lock(&self.inner.slots)
            .values()
            .map(|s| s.descriptor.clone())
            .collect()
    }

    /// A plugged predictor's counters.
    pub fn stats(&self, name: &str) -> Option<PredictorStats> {
        lock(&self.inner.slots)
            .get(name)
            .map(|s| lock(&s.stats).clone())
    }
}

struct Run {
    predictor: Box<dyn Predictor>,
    bus: Bus,
    stats: Arc<Mutex<PredictorStats>>,
    manager: std::sync::Weak<Inner>,
}

enum Step {
    Event(Event),
    Tick,
}

impl Run {
    async fn run(mut self, events: crate::bus::Subscription, stop: CancellationToken) {
        let name = self.predictor.descriptor().name.clone();
        // A zero period would make tokio panic; a predictor's own code may return one.
        let period = self.predictor.tick_interval().filter(|d| !d.is_zero());
        let mut ticker = period.map(|d| {
            let mut t = tokio::time::interval_at(crate::duration::deadline(d), d);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        loop {
            let step = tokio::select! {
                _ = stop.cancelled() => break,
                ev = events.recv() => match ev {
                    Some(ev) => Step::Event(ev),
                    None => break,
                },
                _ = async { ticker.as_mut().expect("guarded").tick().await }, if ticker.is_some() => Step::Tick,
            };
            let mut out = Emitter::default();
            // A predictor is user code: a panic in it must not unwind through the agent.
            let p = &mut self.predictor;
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| match &step {
                Step::Event(ev) => p.update(ev, &mut out),
                Step::Tick => p.tick(tokio::time::Instant::now(), &mut out),
            }));
            let consumed = matches!(step, Step::Event(_));
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    lock(&self.stats).errors += 1;
                    tracing::warn!(agent = %self.bus.agent(), predictor = %name, "predictor error: {e}");
                    let event = topic::PredictionError {
                        predictor: name.clone(),
                        error: e.to_string(),
                    };
                    let _ = self.bus.emit(&event).await;
                }
                Err(panic) => {
                    let msg = panic_message(&*panic);
                    tracing::error!(agent = %self.bus.agent(), predictor = %name, "predictor panicked and was unplugged: {msg}");
                    if let Some(m) = self.manager.upgrade() {
                        lock(&m.slots).remove(&name);
                    }
                    let event = topic::PredictionFailed {
                        predictor: name.clone(),
                        error: msg,
                    };
                    let _ = self.bus.emit(&event).await;
                    break;
                }
            }
            {
                let mut s = lock(&self.stats);
                s.events += u64::from(consumed);
                s.emitted += out.out.len() as u64;
            }
            for (topic, payload) in out.out {
                // Each forecast starts a trace: what policies do about it continues it.
                let forecast = self.bus.publish(&topic, payload);
                let _ = crate::trace::scope(crate::trace::TraceId::new(), forecast).await;
            }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// Reads a numeric parameter (int or float), or the default; an error for other kinds of value.
pub fn param_f64(params: &Value, key: &str, default: f64) -> Result<f64, ParamError> {
    match params.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| ParamError::wrong_type(key, "a number", v)),
    }
}

/// Reads a non-negative integer parameter, or the default.
pub fn param_usize(params: &Value, key: &str, default: usize) -> Result<usize, ParamError> {
    match params.get(key) {
        None => Ok(default),
        Some(Value::Int(i)) if *i >= 0 => Ok(*i as usize),
        Some(v) => Err(ParamError::wrong_type(key, "a non-negative integer", v)),
    }
}

/// Reads a string parameter, or the default.
pub fn param_str<'a>(
    params: &'a Value,
    key: &str,
    default: &'a str,
) -> Result<&'a str, ParamError> {
    match params.get(key) {
        None => Ok(default),
        Some(Value::Str(s)) => Ok(s),
        Some(v) => Err(ParamError::wrong_type(key, "a string", v)),
    }
}

/// Reads a duration parameter (`"30s"`, `"500ms"`, or a number of seconds, at most 365 days),
/// or the default.
pub fn param_duration(
    params: &Value,
    key: &str,
    default: Duration,
) -> Result<Duration, ParamError> {
    match params.get(key) {
        None => Ok(default),
        Some(Value::Str(s)) => crate::duration::parse(s)
            .map_err(|e| ParamError::new(key, ParamErrorKind::OutOfRange, e.to_string())),
        Some(v) => v
            .as_f64()
            .filter(|s| (0.0..=crate::duration::MAX.as_secs_f64()).contains(s))
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| ParamError::wrong_type(key, "a duration of at most 365 days", v)),
    }
}

/// Reads topic patterns (one string or a list), or the default.
pub fn param_topics(params: &Value, key: &str, default: &str) -> Result<Vec<Pattern>, ParamError> {
    let parse = |s: &str| {
        Pattern::parse(s).map_err(|e| ParamError::new(key, ParamErrorKind::Invalid, e.to_string()))
    };
    match params.get(key) {
        None => Ok(vec![parse(default)?]),
        Some(Value::Str(s)) => Ok(vec![parse(s)?]),
        Some(Value::List(l)) => l
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| ParamError::wrong_type(key, "a list of topics", v))
                    .and_then(parse)
            })
            .collect(),
        Some(v) => Err(ParamError::wrong_type(
            key,
            "a topic or a list of topics",
            v,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_registered_into_a_registry_is_seen_by_its_clones_and_no_other() {
        let a = Kinds::default();
        let seen_by_a = a.clone();
        let other = Kinds::default();
        a.register("again", factory(script::ScriptPredictor::new));
        assert_eq!(seen_by_a.names(), ["again", "rhai"]);
        assert_eq!(other.names(), ["rhai"]);
        assert_eq!(Kinds::default().names(), ["rhai"]);
        assert!(other.make("again", "x", &Value::Null).is_err());
    }
}
