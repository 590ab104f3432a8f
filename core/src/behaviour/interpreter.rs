//! Running behaviour instances.
//!
//! Semantics (the points SCXML and XState users trip over, fixed here):
//!
//! * **run-to-completion**: an instance handles one trigger (its state's completion, an event,
//!   a timer) completely — exit actions, transition actions, entry actions — before the next;
//! * **first enabled transition wins**: for one trigger, transitions are tried in document
//!   order and the first whose guard holds is taken; for an event matched by several topic
//!   patterns, the most specific pattern (exact, then longest prefix) is tried first;
//! * **completion**: a state with a `do` completes when it finishes (`done`, or `error` if it
//!   fails); a state without one completes as soon as it is entered;
//! * **`always`** (eventless) transitions are tried on entering a state, before its `do`; at
//!   most [`MAX_EVENTLESS`] may follow each other without a trigger in between;
//! * **`after`** timers belong to their state: armed on entry, cancelled on exit (so a
//!   self-transition re-arms them);
//! * an event no transition of the current state takes is discarded;
//! * an instance that can no longer move (its `do` finished, no transition was enabled and it
//!   waits for no event or timer) ends with an error instead of hanging;
//! * a failing action or guard ends the instance with an error — unless the failing action is
//!   the state's `do` and the state has an `error` transition.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rhai::{Dynamic, Engine, Scope};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::model::{Action, Args, Behaviour, Expr, Final, Transition};
use super::{BehaviourError, Behaviours, ErrorKind};
use crate::ability::Abilities;
use crate::bus::{Bus, Overflow, Publisher, SubscribeOptions, Subscription};
use crate::knowledge::Knowledge;
use crate::value::Value;

/// How many eventless transitions may follow each other before the instance is stopped.
pub const MAX_EVENTLESS: u32 = 1000;
/// How deeply service calls that are run locally may nest.
pub const MAX_CALL_DEPTH: u32 = 16;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Calls services the agent does not run itself. The negotiation part implements it.
pub(crate) trait RemoteCaller: Send + Sync {
    fn call_remote(
        &self,
        service: String,
        input: Value,
    ) -> BoxFuture<'static, Result<Value, String>>;
}

/// What behaviour instances run against: the agent's bus, knowledge, abilities, behaviours.
#[derive(Clone)]
pub(crate) struct Runtime(Arc<RuntimeInner>);

struct RuntimeInner {
    agent: Arc<str>,
    bus: Bus,
    knowledge: Knowledge,
    abilities: Abilities,
    behaviours: Behaviours,
    engine: Arc<Engine>,
    cancel: CancellationToken,
    next_instance: AtomicU64,
    // Weak: the negotiation part holds this runtime, and a cycle would keep both alive.
    remote: std::sync::OnceLock<std::sync::Weak<dyn RemoteCaller>>,
    load: Load,
    state_pub: Publisher,
    transition_pub: Publisher,
    done_pub: Publisher,
    failed_pub: Publisher,
}

/// Topic of the event published when an instance enters a state.
pub const STATE: &str = "behaviour.state";
/// Topic of the event published when an instance takes a transition.
pub const TRANSITION: &str = "behaviour.transition";
/// Topic of the event published when an instance reaches a final state with an output.
pub const DONE: &str = "behaviour.done";
/// Topic of the event published when an instance ends with an error.
pub const FAILED: &str = "behaviour.failed";

impl Runtime {
    pub(crate) fn new(
        agent: &str,
        bus: Bus,
        knowledge: Knowledge,
        abilities: Abilities,
        behaviours: Behaviours,
        engine: Arc<Engine>,
        cancel: CancellationToken,
    ) -> Runtime {
        Runtime(Arc::new(RuntimeInner {
            agent: agent.into(),
            state_pub: bus.publisher(STATE),
            transition_pub: bus.publisher(TRANSITION),
            done_pub: bus.publisher(DONE),
            failed_pub: bus.publisher(FAILED),
            bus,
            knowledge,
            abilities,
            behaviours,
            engine,
            cancel,
            next_instance: AtomicU64::new(1),
            remote: std::sync::OnceLock::new(),
            load: Load::default(),
        }))
    }

    pub(crate) fn set_remote(&self, remote: std::sync::Weak<dyn RemoteCaller>) {
        let _ = self.0.remote.set(remote);
    }

    /// Resolves when the agent cancels in-flight work.
    pub(crate) async fn cancelled(&self) {
        self.0.cancel.cancelled().await;
    }

    pub(crate) fn behaviours(&self) -> &Behaviours {
        &self.0.behaviours
    }

    /// Runs the behaviour named `name` to its end, or until the agent stops.
    pub(crate) async fn run_named(
        &self,
        name: &str,
        input: Value,
        depth: u32,
    ) -> Result<Value, BehaviourError> {
        let b = self.0.behaviours.runnable(name)?;
        self.run(b, input, depth).await
    }

    /// Runs one instance of `b`.
    pub(crate) async fn run(
        &self,
        b: Arc<Behaviour>,
        input: Value,
        depth: u32,
    ) -> Result<Value, BehaviourError> {
        let id = self.0.next_instance.fetch_add(1, Ordering::Relaxed);
        *crate::sync::lock(&self.0.load.runs)
            .entry(b.name.clone())
            .or_default() += 1;
        let cancel = self.0.cancel.clone();
        let result = tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(BehaviourError::new(&b.name, b.initial(), ErrorKind::Cancelled, "the agent is stopping")),
            r = Instance::new(self, &b, id, input, depth).run() => r,
        };
        let instance = |extra: Vec<(&str, Value)>| {
            let mut m = Value::map([
                ("behaviour", Value::from(b.name.as_str())),
                ("instance", Value::Int(id as i64)),
            ]);
            if let Value::Map(map) = &mut m {
                map.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
            }
            m
        };
        match &result {
            Ok(output) => {
                announce(&self.0.done_pub, || {
                    instance(vec![("output", output.clone())])
                })
                .await
            }
            Err(e) => {
                let failed = || {
                    instance(vec![
                        ("state", Value::from(e.state())),
                        ("error", Value::from(e.to_string())),
                    ])
                };
                announce(&self.0.failed_pub, failed).await;
            }
        }
        result
    }

    /// Calls a service: locally when the agent has an enabled implementation, otherwise
    /// through the negotiation part.
    ///
    /// Boxed as a `Send` trait object on purpose: local calls recurse into [`Runtime::run`],
    /// and the explicit type is what lets the compiler prove the recursion `Send`.
    pub(crate) fn call_service(
        &self,
        service: &str,
        input: Value,
        depth: u32,
    ) -> BoxFuture<'static, Result<Value, String>> {
        let rt = self.clone();
        let service = service.to_owned();
        Box::pin(async move {
            let local = rt.0.knowledge.service(&service).and_then(|s| s.behaviour);
            if let Some(behaviour) = local.filter(|b| rt.0.behaviours.contains(b)) {
                if depth >= MAX_CALL_DEPTH {
                    return Err(format!("service calls nest deeper than {MAX_CALL_DEPTH}"));
                }
                return rt
                    .run_named(&behaviour, input, depth + 1)
                    .await
                    .map_err(|e| e.to_string());
            }
            match rt.0.remote.get().and_then(std::sync::Weak::upgrade) {
                Some(remote) => remote.call_remote(service, input).await,
                None => Err(format!(
                    "`{service}` is not run here and this agent negotiates with no one"
                )),
            }
        })
    }
}

/// What the agent's behaviours have cost so far: the load samples' raw material.
#[derive(Default)]
struct Load {
    // Sum of the `demand` of every state entered, in nanoseconds.
    busy_nanos: AtomicU64,
    runs: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

/// Totals since the agent started: seconds of work (the `demand` of every state entered) and
/// instances started per behaviour.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadCounters {
    /// Seconds of work done, from the states' `demand` annotations.
    pub busy_seconds: f64,
    /// Instances started, per behaviour.
    pub runs: std::collections::BTreeMap<String, u64>,
}

impl Runtime {
    pub(crate) fn load_counters(&self) -> LoadCounters {
        LoadCounters {
            busy_seconds: self.0.load.busy_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            runs: crate::sync::lock(&self.0.load.runs).clone(),
        }
    }
}

struct Instance<'a> {
    rt: &'a Runtime,
    b: &'a Behaviour,
    id: u64,
    depth: u32,
    scope: Scope<'static>,
    events: Option<Subscription>,
}

enum Trigger {
    Done(Value),
    Failed(String),
    Event(String, Value),
    Timer(usize),
}

type Activity = BoxFuture<'static, Result<Value, String>>;

impl<'a> Instance<'a> {
    fn new(rt: &'a Runtime, b: &'a Behaviour, id: u64, input: Value, depth: u32) -> Instance<'a> {
        let mut scope = Scope::new();
        scope.push_constant_dynamic("input", input.to_dynamic());
        scope.push_dynamic("event", Dynamic::UNIT);
        for (k, v) in &b.vars {
            scope.push_dynamic(k.clone(), v.to_dynamic());
        }
        Instance {
            rt,
            b,
            id,
            depth,
            scope,
            events: None,
        }
    }

    fn fail(&self, state: usize, kind: ErrorKind, message: impl Into<String>) -> BehaviourError {
        BehaviourError::new(&self.b.name, &self.b.states[state].name, kind, message)
    }

    async fn run(mut self) -> Result<Value, BehaviourError> {
        if !self.b.topics.is_empty() {
            // Events a state does not take are discarded anyway, so a slow instance drops
            // the oldest rather than holding the agent's publishers up.
            let options = SubscribeOptions {
                capacity: 64,
                overflow: Overflow::DropOldest,
            };
            let sub = self.rt.0.bus.subscribe_many(self.b.topics.clone(), options);
            self.events = Some(sub.map_err(|_| {
                self.fail(
                    self.b.initial,
                    ErrorKind::Cancelled,
                    "the agent is stopping",
                )
            })?);
        }
        let mut state = self.b.initial;
        self.enter(state).await?;
        let mut eventless = 0;
        loop {
            let st = &self.b.states[state];
            if let Some(f) = &st.final_ {
                return self.finish(state, f);
            }
            if let Some(t) = self.pick(state, &st.always)? {
                eventless += 1;
                if eventless > MAX_EVENTLESS {
                    return Err(self.fail(
                        state,
                        ErrorKind::EventlessLoop,
                        format!("more than {MAX_EVENTLESS} eventless transitions in a row"),
                    ));
                }
                state = self.take(state, t, "always").await?;
                continue;
            }
            eventless = 0;
            let (next, label) = self.wait(state).await?;
            state = self.take(state, next, &label).await?;
        }
    }

    /// Waits in `state` for a trigger whose transitions enable one; returns it.
    async fn wait(&mut self, state: usize) -> Result<(&'a Transition, String), BehaviourError> {
        let b = self.b;
        let st = &b.states[state];
        let entered = Instant::now();
        let mut timers: Vec<Option<Instant>> = st
            .after
            .iter()
            .map(|(d, _)| Some(crate::duration::after(entered, *d)))
            .collect();
        let mut activity: Option<Activity> = match &st.activity {
            Some(a) => match self.start(state, a)? {
                Some(f) => Some(f),
                None => {
                    self.act(state, a).await?;
                    None
                }
            },
            None => None,
        };
        let mut done_pending = activity.is_none();
        loop {
            let trigger = if done_pending {
                done_pending = false;
                Trigger::Done(Value::Null)
            } else {
                if activity.is_none() && !st.waits_for_more() {
                    return Err(self.fail(
                        state,
                        ErrorKind::Stuck,
                        "completed, but no transition was enabled and nothing else can happen",
                    ));
                }
                let next_timer = timers
                    .iter()
                    .enumerate()
                    .filter_map(|(i, t)| t.map(|t| (i, t)))
                    .min_by_key(|(_, t)| *t);
                let events = &mut self.events;
                tokio::select! {
                    r = async { activity.as_mut().expect("guarded").await }, if activity.is_some() => {
                        activity = None;
                        match r {
                            Ok(v) => Trigger::Done(v),
                            Err(e) => Trigger::Failed(e),
                        }
                    }
                    ev = recv(events), if !st.on_event.is_empty() => match ev {
                        Some((topic, payload)) => Trigger::Event(topic, payload),
                        None => return Err(self.fail(state, ErrorKind::Cancelled, "the agent is stopping")),
                    },
                    _ = sleep_until(next_timer.map(|(_, t)| t)), if next_timer.is_some() => {
                        let (i, _) = next_timer.expect("guarded");
                        timers[i] = None;
                        Trigger::Timer(i)
                    }
                }
            };
            let (candidates, event, label): (&'a [Transition], Dynamic, String) = match trigger {
                Trigger::Done(v) => {
                    if let Some(
                        Action::Call {
                            save: Some(var), ..
                        }
                        | Action::Ability {
                            save: Some(var), ..
                        },
                    ) = &st.activity
                    {
                        self.scope.set_value(var.clone(), v.to_dynamic());
                    }
                    (&st.on_done, v.to_dynamic(), "done".into())
                }
                Trigger::Failed(e) => {
                    if st.on_error.is_empty() {
                        return Err(self.fail(state, ErrorKind::Action, e));
                    }
                    (&st.on_error, Dynamic::from(e), "error".into())
                }
                Trigger::Event(topic, payload) => {
                    let Some((_, ts)) = st.on_event.iter().find(|(p, _)| p.matches(&topic)) else {
                        continue;
                    };
                    (ts, payload.to_dynamic(), topic)
                }
                Trigger::Timer(i) => (
                    &st.after[i].1,
                    Dynamic::UNIT,
                    format!("after {:?}", st.after[i].0),
                ),
            };
            self.scope.set_value("event", event);
            if let Some(t) = self.pick(state, candidates)? {
                return Ok((t, label));
            }
        }
    }

    /// The first transition whose guard holds.
    fn pick(
        &mut self,
        state: usize,
        ts: &'a [Transition],
    ) -> Result<Option<&'a Transition>, BehaviourError> {
        for t in ts {
            let Some(g) = &t.guard else {
                return Ok(Some(t));
            };
            let v = self.eval(state, g, ErrorKind::Guard)?;
            match v.as_bool() {
                Ok(true) => return Ok(Some(t)),
                Ok(false) => {}
                Err(ty) => {
                    return Err(self.fail(
                        state,
                        ErrorKind::Guard,
                        format!("guard `{}` gave a {ty}, not a bool", g.text),
                    ));
                }
            }
        }
        Ok(None)
    }

    async fn take(
        &mut self,
        from: usize,
        t: &Transition,
        trigger: &str,
    ) -> Result<usize, BehaviourError> {
        let b = self.b;
        for a in &b.states[from].exit {
            self.act(from, a).await?;
        }
        for a in &t.actions {
            self.act(from, a).await?;
        }
        let step = || {
            Value::map([
                ("behaviour", Value::from(b.name.as_str())),
                ("instance", Value::Int(self.id as i64)),
                ("from", Value::from(b.states[from].name.as_str())),
                ("to", Value::from(b.states[t.target].name.as_str())),
                ("trigger", Value::from(trigger)),
            ])
        };
        announce(&self.rt.0.transition_pub, step).await;
        self.enter(t.target).await?;
        Ok(t.target)
    }

    async fn enter(&mut self, state: usize) -> Result<(), BehaviourError> {
        let b = self.b;
        if let Some(d) = b.states[state].demand {
            self.rt
                .0
                .load
                .busy_nanos
                .fetch_add((d * 1e9) as u64, Ordering::Relaxed);
        }
        let entered = || {
            Value::map([
                ("behaviour", Value::from(b.name.as_str())),
                ("instance", Value::Int(self.id as i64)),
                ("state", Value::from(b.states[state].name.as_str())),
            ])
        };
        announce(&self.rt.0.state_pub, entered).await;
        for a in &b.states[state].entry {
            self.act(state, a).await?;
        }
        Ok(())
    }

    fn finish(&mut self, state: usize, f: &Final) -> Result<Value, BehaviourError> {
        match f {
            Final::Error(e) => {
                let v = self.eval(state, e, ErrorKind::Action)?;
                Err(self.fail(state, ErrorKind::Final, v.to_string()))
            }
            Final::Output(o) => {
                let expr = o.as_ref().or(self.b.output.as_ref());
                match expr {
                    None => Ok(Value::Null),
                    Some(e) => {
                        let v = self.eval(state, e, ErrorKind::Action)?;
                        Value::from_dynamic(&v)
                            .map_err(|err| self.fail(state, ErrorKind::Action, err.to_string()))
                    }
                }
            }
        }
    }

    fn eval(&mut self, state: usize, e: &Expr, kind: ErrorKind) -> Result<Dynamic, BehaviourError> {
        self.rt
            .0
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut self.scope, &e.ast)
            .map_err(|err| {
                self.fail(
                    state,
                    kind,
                    format!("`{}`: {}", e.text, crate::script::describe(&err)),
                )
            })
    }

    fn value(&mut self, state: usize, args: &Args) -> Result<Value, BehaviourError> {
        let to_value = |this: &Self, d: Dynamic| {
            Value::from_dynamic(&d).map_err(|e| this.fail(state, ErrorKind::Action, e.to_string()))
        };
        match args {
            Args::None => Ok(Value::Null),
            Args::Expr(e) => {
                let d = self.eval(state, e, ErrorKind::Action)?;
                to_value(self, d)
            }
            Args::Map(m) => {
                let mut out = std::collections::BTreeMap::new();
                for (k, e) in m {
                    let d = self.eval(state, e, ErrorKind::Action)?;
                    out.insert(k.clone(), to_value(self, d)?);
                }
                Ok(Value::Map(out))
            }
        }
    }

    /// Starts a call or an ability as a future the state can be interrupted in; `None` for
    /// the other actions, which happen at once through [`Self::act`].
    fn start(&mut self, state: usize, a: &Action) -> Result<Option<Activity>, BehaviourError> {
        Ok(match a {
            Action::Call { service, args, .. } => {
                let input = self.value(state, args)?;
                Some(self.rt.call_service(service, input, self.depth))
            }
            Action::Ability { name, args, .. } => {
                let input = self.value(state, args)?;
                let abilities = self.rt.0.abilities.clone();
                let name = name.clone();
                Some(Box::pin(async move {
                    abilities
                        .call(&name, input)
                        .await
                        .map_err(|e| e.to_string())
                }))
            }
            _ => None,
        })
    }

    /// Runs an action to its end (entry, exit and transition actions).
    async fn act(&mut self, state: usize, a: &Action) -> Result<(), BehaviourError> {
        match a {
            Action::Set(list) => {
                for (var, e) in list {
                    let v = self.eval(state, e, ErrorKind::Action)?;
                    self.scope.set_value(var.clone(), v);
                }
            }
            Action::Publish { topic, payload } => {
                let payload = self.value(state, payload)?;
                let _ = self.rt.0.bus.publish(topic, payload).await;
            }
            Action::Log(e) => {
                let v = self.eval(state, e, ErrorKind::Action)?;
                tracing::info!(agent = %self.rt.0.agent, behaviour = %self.b.name, state = %self.b.states[state].name, "{v}");
            }
            Action::Call { save, .. } | Action::Ability { save, .. } => {
                let Some(fut) = self.start(state, a)? else {
                    return Ok(());
                };
                let v = fut
                    .await
                    .map_err(|e| self.fail(state, ErrorKind::Action, e))?;
                if let Some(var) = save {
                    self.scope.set_value(var.clone(), v.to_dynamic());
                }
            }
        }
        Ok(())
    }
}

async fn recv(events: &mut Option<Subscription>) -> Option<(String, Value)> {
    let ev = events.as_mut()?.recv().await?;
    Some((ev.topic().to_owned(), ev.payload().clone()))
}

/// Publishes what a step of an instance did, building the payload only if someone listens:
/// most steps of most agents are watched by nobody, and they are the interpreter's hot path.
async fn announce(p: &Publisher, payload: impl FnOnce() -> Value) {
    if p.has_subscribers() {
        let _ = p.publish(payload()).await;
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
