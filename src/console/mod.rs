//! A live console: watch running agents decide.
//!
//! A [`Console`] keeps a picture of the system — the agents and their state, what they offer
//! and how, whom they know as providers, who calls and teaches whom, each agent's load over
//! time, and a timeline of what happened (the prediction that fired, the rule that reacted,
//! the actions it took, the requests and teachings that followed, each with its
//! [trace](selflet_core::trace)) — and [serves](Console::serve) it as a web page that updates
//! live (server-sent events). The page is shipped in the crate: no build step.
//!
//! Agents feed it [`Report`]s: in one process, [`Console::watch`] reads an agent directly;
//! across processes, each agent's process puts its reports on the agent's Zenoh status key
//! ([`publish`]) and a console process ([`Console::follow`], what `selflet console --connect`
//! does) takes them in. A report from another process is checked before it changes anything
//! (see [`view`]).
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use selflet::console::Console;
//!
//! let agent = selflet::Agent::builder("a").spawn().await?;
//! let console = Console::new();
//! console.watch(&agent, Duration::from_secs(1));
//! let addr = console.serve("127.0.0.1:8080".parse()?).await?;
//! println!("console on http://{addr}/");
//! # Ok(()) }
//! ```

mod http;
pub mod report;
pub mod view;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use selflet_core::{AgentHandle, Lifecycle};
use tokio::sync::broadcast;

pub use report::{Item, Offer, Report, Reporter};
pub use view::{Rejected, Update, View};

/// How often agents report when nothing urgent happens.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(1);

/// The console's picture of the system, and the pages watching it.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    view: Mutex<View>,
    // Each update as JSON, for every page watching; a page that falls behind starts over
    // from a snapshot.
    updates: broadcast::Sender<Arc<str>>,
}

impl Default for Console {
    fn default() -> Self {
        Console::new()
    }
}

impl Console {
    /// An empty console.
    pub fn new() -> Console {
        Console {
            inner: Arc::new(Inner {
                view: Mutex::new(View::default()),
                updates: broadcast::channel(4096).0,
            }),
        }
    }

    /// Shows `agent` (of this process): its state every `period`, and what happens in it as
    /// it happens, until it stops.
    pub fn watch(&self, agent: &AgentHandle, period: Duration) {
        let console = self.clone();
        report_every(agent, period, move |r| {
            if let Err(e) = console.accept(r) {
                tracing::warn!("console: a report of this process refused: {e}");
            }
        });
    }

    /// Takes a report in; it changes nothing if it fails a check.
    ///
    /// # Errors
    ///
    /// Why the report was refused.
    pub fn accept(&self, report: Report) -> Result<(), Rejected> {
        let updates = self.view().accept(report)?;
        self.send(updates);
        Ok(())
    }

    /// Marks every agent not in `present` as gone.
    pub fn keep_present(&self, present: &BTreeSet<String>) {
        let updates = self.view().keep_present(present);
        self.send(updates);
    }

    /// Reads the picture as it is now.
    pub fn with_view<T>(&self, read: impl FnOnce(&View) -> T) -> T {
        read(&self.view())
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.inner
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn send(&self, updates: Vec<Update>) {
        for u in updates {
            if let Ok(json) = serde_json::to_string(&u) {
                let _ = self.inner.updates.send(json.into());
            }
        }
    }

    /// The whole picture as JSON, and the updates that follow it, without missing any.
    fn snapshot(&self) -> (String, broadcast::Receiver<Arc<str>>) {
        let view = self.view();
        // Subscribed under the lock: no update lands between the snapshot and the stream.
        let rx = self.inner.updates.subscribe();
        (serde_json::to_string(&*view).unwrap_or_default(), rx)
    }

    /// Serves the page on `addr` (`/`), the picture as JSON (`/state`) and its updates as
    /// server-sent events (`/events`); returns the address bound (port 0 picks one).
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn serve(&self, addr: std::net::SocketAddr) -> std::io::Result<std::net::SocketAddr> {
        http::serve(self.clone(), addr).await
    }
}

/// Calls `sink` with a report of `agent` every `period`, and at once when something other
/// than a call happens, until the agent stops.
pub fn report_every(
    agent: &AgentHandle,
    period: Duration,
    mut sink: impl FnMut(Report) + Send + 'static,
) {
    let Some(mut reporter) = Reporter::new(agent) else {
        return;
    };
    let mut lifecycle = agent.lifecycle_changes();
    agent.spawn_task(move |cancel| async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = lifecycle.wait_for(|l| *l != Lifecycle::Running) => break,
                _ = tick.tick() => sink(reporter.report()),
                urgent = reporter.wait() => match urgent {
                    Some(true) => sink(reporter.report()),
                    Some(false) => {}
                    None => break,
                },
            }
        }
        sink(reporter.report());
    });
}

/// Puts every report of `agent` on its Zenoh status key, for consoles in other processes.
#[cfg(feature = "zenoh")]
pub fn publish(agent: &AgentHandle, zenoh: &selflet_core::transport::Zenoh, period: Duration) {
    let (tx, rx) = async_channel::bounded::<Report>(8);
    report_every(agent, period, move |r| {
        // A slow network loses reports, never holds the agent up: the next one says it all.
        let _ = tx.try_send(r);
    });
    let zenoh = zenoh.clone();
    let name = agent.name().to_owned();
    tokio::spawn(async move {
        while let Ok(report) = rx.recv().await {
            let Ok(bytes) = serde_json::to_vec(&report) else {
                continue;
            };
            if let Err(e) = zenoh.put_status(&name, bytes).await {
                tracing::debug!(agent = %name, "status not put: {e}");
            }
        }
    });
}

#[cfg(feature = "zenoh")]
impl Console {
    /// Shows the agents of a Zenoh network from their status keys, without running agents:
    /// what `selflet console --connect` does. Runs until the session closes.
    ///
    /// # Errors
    ///
    /// Zenoh refused the subscription.
    pub async fn follow(
        &self,
        zenoh: &selflet_core::transport::Zenoh,
    ) -> Result<(), selflet_core::transport::ZenohError> {
        use selflet_core::transport::Transport;
        let records = zenoh.watch_status(1024).await?;
        let mut tick = tokio::time::interval(DEFAULT_PERIOD);
        loop {
            tokio::select! {
                record = records.recv() => {
                    let Some((agent, bytes)) = record else { return Ok(()) };
                    match serde_json::from_slice::<Report>(&bytes) {
                        // The key names the agent; a report about another is a lie.
                        Ok(r) if r.agent == agent => {
                            if let Err(e) = self.accept(r) {
                                tracing::warn!(%agent, "status report refused: {e}");
                            }
                        }
                        Ok(_) => tracing::warn!(%agent, "status report refused: it names another agent"),
                        Err(e) => tracing::warn!(%agent, "status report refused: {e}"),
                    }
                }
                _ = tick.tick() => self.keep_present(&zenoh.members().into_iter().map(String::from).collect()),
            }
        }
    }
}
