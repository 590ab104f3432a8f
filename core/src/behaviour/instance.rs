//! One running instance of a behaviour: the statechart semantics of [`super`].

use rhai::Dynamic;
use tokio::time::Instant;

use super::model::{Action, Args, Behaviour, Expr, Final, Transition};
use super::runtime::{BoxFuture, InstanceLimits, Runtime, announce};
use super::vars::Vars;
use super::{BehaviourError, ErrorKind};
use crate::bus::{Overflow, SubscribeOptions, Subscription};
use crate::topic;
use crate::value::Value;

pub(super) struct Instance<'a> {
    rt: &'a Runtime,
    b: &'a Behaviour,
    id: u64,
    depth: u32,
    vars: Vars<'a>,
    events: Option<Subscription>,
    limits: InstanceLimits,
    deadline: Option<Instant>,
    // Transitions taken since the last trigger (the start, an event or a timer).
    steps: u32,
    // Topics this instance published since the last trigger: its own events are not new
    // triggers, or publishing and reacting to itself would be a loop without a budget.
    published: Vec<String>,
}

enum Trigger {
    Done(Value),
    Failed(String),
    Event(String, Value),
    Timer(usize),
}

// What a transition was taken on, for its event: made only for events and timers, since
// most transitions are taken on `done`.
type Label = std::borrow::Cow<'static, str>;

// Borrows the behaviour and the runtime, which outlive the instance.
type Activity<'a> = BoxFuture<'a, Result<Value, String>>;

impl<'a> Instance<'a> {
    pub(super) fn new(
        rt: &'a Runtime,
        b: &'a Behaviour,
        id: u64,
        input: Value,
        depth: u32,
        limits: InstanceLimits,
    ) -> Instance<'a> {
        Instance {
            rt,
            b,
            id,
            depth,
            vars: Vars::new(input, &b.vars),
            events: None,
            limits,
            deadline: limits.time.map(crate::duration::deadline),
            steps: 0,
            published: Vec::new(),
        }
    }

    fn fail(&self, state: usize, kind: ErrorKind, message: impl Into<String>) -> BehaviourError {
        BehaviourError::new(&self.b.name, &self.b.states[state].name, kind, message)
    }

    // Not an `async fn`: one would keep the instance twice, as its argument and as the local
    // it is moved into (208 bytes more in every served request's future).
    #[allow(clippy::manual_async_fn)]
    pub(super) fn run(mut self) -> impl Future<Output = Result<Value, BehaviourError>> {
        async move { self.run_states().await }
    }

    async fn run_states(&mut self) -> Result<Value, BehaviourError> {
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
        loop {
            let st = &self.b.states[state];
            if let Some(f) = &st.final_ {
                return self.finish(state, f);
            }
            if let Some(t) = self.pick(state, &st.always)? {
                state = self.take(state, t, "always").await?;
                continue;
            }
            let (next, label) = self.wait(state).await?;
            state = self.take(state, next, &label).await?;
        }
    }

    /// Accounts for one transition: yields to the runtime, so that no instance holds a core
    /// however it loops, and stops the instance past its limits.
    async fn step(&mut self, state: usize) -> Result<(), BehaviourError> {
        tokio::task::consume_budget().await;
        self.steps += 1;
        if self.steps > self.limits.steps {
            return Err(self.fail(
                state,
                ErrorKind::Limit,
                format!(
                    "took more than {} transitions without an event or a timer (limit `steps`)",
                    self.limits.steps
                ),
            ));
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(self.out_of_time(state));
        }
        Ok(())
    }

    /// An event from elsewhere, or a timer: the step budget starts again.
    fn new_trigger(&mut self) {
        self.steps = 0;
        self.published.clear();
    }

    fn out_of_time(&self, state: usize) -> BehaviourError {
        let limit = self.limits.time.unwrap_or_default();
        self.fail(
            state,
            ErrorKind::Limit,
            format!("ran longer than its limit of {limit:?} (limit `time`)"),
        )
    }

    /// Waits in `state` for a trigger whose transitions enable one; returns it.
    async fn wait(&mut self, state: usize) -> Result<(&'a Transition, Label), BehaviourError> {
        let b = self.b;
        let st = &b.states[state];
        // Reading the clock costs; a state without timers does not need it.
        let entered = (!st.after.is_empty()).then(Instant::now);
        let mut timers: Vec<Option<Instant>> = st
            .after
            .iter()
            .map(|(d, _)| entered.map(|at| crate::duration::after(at, *d)))
            .collect();
        let mut activity: Option<Activity<'a>> = match &st.activity {
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
                self.next_trigger(state, &mut activity, &mut timers).await?
            };
            let (candidates, event, label): (&'a [Transition], Value, Label) = match trigger {
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
                        self.vars.set(var, v.clone());
                    }
                    (&st.on_done, v, "done".into())
                }
                Trigger::Failed(e) => {
                    if st.on_error.is_empty() {
                        return Err(self.fail(state, ErrorKind::Action, e));
                    }
                    (&st.on_error, Value::Str(e), "error".into())
                }
                Trigger::Event(topic, payload) => {
                    if !self.published.contains(&topic) {
                        self.new_trigger();
                    }
                    let Some((_, ts)) = st.on_event.iter().find(|(p, _)| p.matches(&topic)) else {
                        continue;
                    };
                    (ts, payload, topic.into())
                }
                Trigger::Timer(i) => {
                    self.new_trigger();
                    (
                        &st.after[i].1,
                        Value::Null,
                        format!("after {:?}", st.after[i].0).into(),
                    )
                }
            };
            self.vars.set("event", event);
            if let Some(t) = self.pick(state, candidates)? {
                return Ok((t, label));
            }
        }
    }

    /// The next thing that happens to a waiting state: its activity ends, an event comes, a
    /// timer fires — or the instance runs out of time.
    async fn next_trigger(
        &mut self,
        state: usize,
        activity: &mut Option<Activity<'a>>,
        timers: &mut [Option<Instant>],
    ) -> Result<Trigger, BehaviourError> {
        let st = &self.b.states[state];
        let next_timer = timers
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| (i, t)))
            .min_by_key(|(_, t)| *t);
        let events = &mut self.events;
        let deadline = self.deadline;
        // One sleep for the limit and the timers, until the earlier: every request served
        // holds this future, and a sleep is 120 bytes of it.
        let wake = match (deadline, next_timer) {
            (Some(d), Some((_, t))) => Some(d.min(t)),
            (d, t) => d.or(t.map(|(_, t)| t)),
        };
        // In this order: an activity that is done at once (most abilities) then sets no timer;
        // the limit comes before the state's own timers, and timers before events, so that a
        // stream of events holds neither up.
        Ok(tokio::select! {
            biased;
            r = async { activity.as_mut().expect("guarded").await }, if activity.is_some() => {
                *activity = None;
                match r {
                    Ok(v) => Trigger::Done(v),
                    Err(e) => Trigger::Failed(e),
                }
            }
            _ = sleep_until(wake), if wake.is_some() => {
                // The timer's turn if the limit is not reached: the limit comes first.
                let timer = next_timer.filter(|_| deadline.is_none_or(|d| Instant::now() < d));
                let Some((i, _)) = timer else {
                    return Err(self.out_of_time(state));
                };
                timers[i] = None;
                Trigger::Timer(i)
            }
            ev = recv(events), if !st.on_event.is_empty() => match ev {
                Some((topic, payload)) => Trigger::Event(topic, payload),
                None => return Err(self.fail(state, ErrorKind::Cancelled, "the agent is stopping")),
            },
        })
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
        t: &'a Transition,
        trigger: &str,
    ) -> Result<usize, BehaviourError> {
        self.step(from).await?;
        let b = self.b;
        for a in &b.states[from].exit {
            self.act(from, a).await?;
        }
        for a in &t.actions {
            self.act(from, a).await?;
        }
        let step = || topic::TransitionTaken {
            behaviour: b.name.clone(),
            instance: self.id as i64,
            from: b.states[from].name.clone(),
            to: b.states[t.target].name.clone(),
            trigger: trigger.to_owned(),
        };
        announce(self.rt.0.transition_pub(), step).await;
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
                .fetch_add((d * 1e9) as u64, std::sync::atomic::Ordering::Relaxed);
        }
        let entered = || topic::StateEntered {
            behaviour: b.name.clone(),
            instance: self.id as i64,
            state: b.states[state].name.clone(),
        };
        announce(self.rt.0.state_pub(), entered).await;
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
                let Some(e) = expr else {
                    return Ok(Value::Null);
                };
                // The instance ends here: an output that is a variable is moved, not copied.
                match e.variable.as_deref().and_then(|name| self.vars.take(name)) {
                    Some(v) => Ok(v),
                    None => self.eval_value(state, e),
                }
            }
        }
    }

    fn eval(&mut self, state: usize, e: &Expr, kind: ErrorKind) -> Result<Dynamic, BehaviourError> {
        // A variable that is set is its value, as the engine would answer; anything else
        // (an unknown name included, for its error) goes to the engine.
        if let Some(v) = e
            .variable
            .as_deref()
            .and_then(|name| self.vars.get_dynamic(name))
        {
            return Ok(v);
        }
        let rt = self.rt;
        let engine = &rt.0.engine;
        let scope = self.vars.scope();
        crate::script::with_budget(rt.0.budget, || {
            engine.eval_ast_with_scope::<Dynamic>(scope, &e.ast)
        })
        .map_err(|err| {
            self.fail(
                state,
                kind,
                format!("`{}`: {}", e.text, crate::script::describe(&err)),
            )
        })
    }

    /// An expression's value as a [`Value`]: a variable's without converting it to the
    /// engine's type and back.
    fn eval_value(&mut self, state: usize, e: &Expr) -> Result<Value, BehaviourError> {
        if let Some(v) = e.variable.as_deref().and_then(|name| self.vars.get(name)) {
            return Ok(v);
        }
        let d = self.eval(state, e, ErrorKind::Action)?;
        Value::from_dynamic(&d).map_err(|err| self.fail(state, ErrorKind::Action, err.to_string()))
    }

    fn value(&mut self, state: usize, args: &Args) -> Result<Value, BehaviourError> {
        match args {
            Args::None => Ok(Value::Null),
            Args::Expr(e) => self.eval_value(state, e),
            Args::Map(m) => {
                let out = m
                    .iter()
                    .map(|(k, e)| Ok((k.clone(), self.eval_value(state, e)?)))
                    .collect::<Result<_, BehaviourError>>()?;
                Ok(Value::Map(out))
            }
        }
    }

    /// Starts a call or an ability as a future the state can be interrupted in; `None` for
    /// the other actions, which happen at once through [`Self::act`].
    fn start(
        &mut self,
        state: usize,
        a: &'a Action,
    ) -> Result<Option<Activity<'a>>, BehaviourError> {
        Ok(match a {
            Action::Call { service, args, .. } => {
                let input = self.value(state, args)?;
                Some(self.rt.call_service(service, input, self.depth))
            }
            Action::Ability { name, args, .. } => {
                let input = self.value(state, args)?;
                let abilities = &self.rt.0.abilities;
                Some(Box::pin(async move {
                    abilities.call(name, input).await.map_err(|e| e.to_string())
                }))
            }
            _ => None,
        })
    }

    /// Runs an action to its end (entry, exit and transition actions).
    async fn act(&mut self, state: usize, a: &'a Action) -> Result<(), BehaviourError> {
        match a {
            Action::Set(list) => {
                for (var, e) in list {
                    match e.variable.as_deref().and_then(|name| self.vars.get(name)) {
                        Some(v) => self.vars.set(var, v),
                        None => {
                            let v = self.eval(state, e, ErrorKind::Action)?;
                            self.vars.set_dynamic(var, v);
                        }
                    }
                }
            }
            Action::Publish { topic, payload } => {
                let payload = self.value(state, payload)?;
                if !self.published.contains(topic) {
                    self.published.push(topic.clone());
                }
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
                let v = match self.deadline {
                    Some(d) => tokio::time::timeout_at(d, fut)
                        .await
                        .map_err(|_| self.out_of_time(state))?,
                    None => fut.await,
                }
                .map_err(|e| self.fail(state, ErrorKind::Action, e))?;
                if let Some(var) = save {
                    self.vars.set(var, v);
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

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
