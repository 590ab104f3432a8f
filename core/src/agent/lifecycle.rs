//! The agent's lifecycle, as a statig state machine.
//!
//! ```text
//! created ──start──▶ starting ──started──▶ running
//!    │                  │                     │
//!    └──────stop────────┴────────stop─────────┴──▶ stopping ──stopped──▶ stopped
//! ```
//!
//! Events that do not apply in a state are ignored, which is what makes `shutdown` idempotent:
//! a second `stop` finds the machine already stopping or stopped and changes nothing.

use std::fmt;
use std::sync::Mutex;

use tokio::sync::watch;

use statig::prelude::*;

use crate::sync::lock;

/// Where an agent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    /// Built, not started.
    Created,
    /// Its parts are being wired and started.
    Starting,
    /// Running: behaviours, policies and predictors are active.
    Running,
    /// Shutting down: in-flight work is finishing or being answered with an error.
    Stopping,
    /// Stopped: nothing of it runs any more.
    Stopped,
}

impl Lifecycle {
    /// The lowercase name, as published on the bus.
    pub fn name(self) -> &'static str {
        match self {
            Lifecycle::Created => "created",
            Lifecycle::Starting => "starting",
            Lifecycle::Running => "running",
            Lifecycle::Stopping => "stopping",
            Lifecycle::Stopped => "stopped",
        }
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What drives the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Start,
    Started,
    Stop,
    Stopped,
}

#[derive(Default)]
pub(crate) struct Machine;

#[state_machine(
    initial = "State::created()",
    state(derive(Debug, Clone, Copy, PartialEq, Eq))
)]
impl Machine {
    #[state]
    fn created(event: &Step) -> Outcome<State> {
        match event {
            Step::Start => Transition(State::starting()),
            Step::Stop => Transition(State::stopped()),
            _ => Handled,
        }
    }

    #[state]
    fn starting(event: &Step) -> Outcome<State> {
        match event {
            Step::Started => Transition(State::running()),
            Step::Stop => Transition(State::stopping()),
            _ => Handled,
        }
    }

    #[state]
    fn running(event: &Step) -> Outcome<State> {
        match event {
            Step::Stop => Transition(State::stopping()),
            _ => Handled,
        }
    }

    #[state]
    fn stopping(event: &Step) -> Outcome<State> {
        match event {
            Step::Stopped => Transition(State::stopped()),
            _ => Handled,
        }
    }

    #[state]
    fn stopped(event: &Step) -> Outcome<State> {
        let _ = event;
        Handled
    }
}

/// The lifecycle machine plus the public view of its state.
pub(crate) struct Tracker {
    machine: statig::blocking::StateMachine<Machine>,
}

impl Tracker {
    pub(crate) fn new() -> Tracker {
        let mut machine = Machine.state_machine();
        machine.init();
        Tracker { machine }
    }

    /// Feeds a step; returns the state after it.
    pub(crate) fn step(&mut self, step: Step) -> Lifecycle {
        self.machine.handle(&step);
        self.state()
    }

    pub(crate) fn state(&self) -> Lifecycle {
        match self.machine.state() {
            State::Created {} => Lifecycle::Created,
            State::Starting {} => Lifecycle::Starting,
            State::Running {} => Lifecycle::Running,
            State::Stopping {} => Lifecycle::Stopping,
            State::Stopped {} => Lifecycle::Stopped,
        }
    }
}

/// The state an agent last announced, and a watch of it made for the first who asks: most
/// agents are never watched, and a watch costs each of them a third of a kilobyte.
pub(crate) struct Announced(Mutex<(Lifecycle, Option<watch::Sender<Lifecycle>>)>);

impl Announced {
    pub(crate) fn new() -> Announced {
        Announced(Mutex::new((Lifecycle::Created, None)))
    }

    pub(crate) fn get(&self) -> Lifecycle {
        lock(&self.0).0
    }

    /// Announces `state` to the watchers, if any.
    pub(crate) fn set(&self, state: Lifecycle) {
        let mut announced = lock(&self.0);
        announced.0 = state;
        if let Some(tx) = &announced.1 {
            tx.send_replace(state);
        }
    }

    /// A receiver that sees every change from now on. Made under the lock that `set` takes, so
    /// that no change falls between reading the state and watching it.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Lifecycle> {
        let mut announced = lock(&self.0);
        let now = announced.0;
        announced
            .1
            .get_or_insert_with(|| watch::Sender::new(now))
            .subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_that_do_not_apply_are_ignored() {
        let mut t = Tracker::new();
        assert_eq!(t.state(), Lifecycle::Created);
        assert_eq!(t.step(Step::Started), Lifecycle::Created);
        assert_eq!(t.step(Step::Start), Lifecycle::Starting);
        assert_eq!(t.step(Step::Started), Lifecycle::Running);
        assert_eq!(t.step(Step::Start), Lifecycle::Running);
        assert_eq!(t.step(Step::Stop), Lifecycle::Stopping);
        assert_eq!(t.step(Step::Stop), Lifecycle::Stopping);
        assert_eq!(t.step(Step::Stopped), Lifecycle::Stopped);
        assert_eq!(t.step(Step::Start), Lifecycle::Stopped);
    }

    #[test]
    fn an_agent_stopped_before_start_goes_straight_to_stopped() {
        let mut t = Tracker::new();
        assert_eq!(t.step(Step::Stop), Lifecycle::Stopped);
    }

    #[test]
    fn a_watch_made_late_sees_the_state_then_and_every_change_after() {
        let a = Announced::new();
        a.set(Lifecycle::Starting);
        a.set(Lifecycle::Running);
        let mut rx = a.subscribe();
        assert_eq!(*rx.borrow_and_update(), Lifecycle::Running);
        a.set(Lifecycle::Stopping);
        assert!(rx.has_changed().expect("the sender lives"));
        assert_eq!(*rx.borrow_and_update(), Lifecycle::Stopping);
        // A second watcher shares the first one's channel and sees the same.
        let other = a.subscribe();
        a.set(Lifecycle::Stopped);
        assert_eq!(*rx.borrow(), Lifecycle::Stopped);
        assert_eq!(*other.borrow(), Lifecycle::Stopped);
        assert_eq!(a.get(), Lifecycle::Stopped);
    }
}
