//! The Ability Execution Environment: what behaviour states can do besides calling services.
//!
//! An ability is a named function from a [`Value`] to a [`Value`]. Two kinds:
//!
//! * **native** abilities are async Rust functions registered by the embedding application
//!   ([`AgentBuilder::ability`](crate::AgentBuilder::ability));
//! * **scripted** abilities are Rhai functions in a file ([`Abilities::load_script`]); each
//!   function taking one argument becomes an ability of its name. They can be taught to a peer
//!   together with a behaviour, because they are data.
//!
//! Both run under limits — scripts under the [`Limits`] of the sandbox, native abilities under
//! a wall-clock budget — and a native ability that panics is caught: every failure becomes an
//! [`AbilityError`] of the calling state, never a crash of the agent. A native ability runs in
//! its caller's task, so its budget is enforced where it awaits: blocking work belongs in
//! `tokio::task::spawn_blocking`, as in any async code.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::FutureExt;
use rhai::{AST, Dynamic, Engine, Scope};

use crate::error::BoxError;
use crate::script::{self, Limits};
use crate::source::{LoadError, SourceFile};
use crate::sync::{read, write};
use crate::value::Value;

type NativeFn =
    dyn Fn(Value) -> Pin<Box<dyn Future<Output = Result<Value, BoxError>> + Send>> + Send + Sync;

/// Why an ability call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AbilityError {
    /// No ability of that name is installed.
    #[error("no ability named `{0}`")]
    Unknown(String),
    /// The ability returned an error.
    #[error("ability `{name}` failed: {message}")]
    Failed {
        /// The ability.
        name: String,
        /// What it said.
        message: String,
    },
    /// The ability panicked; the panic was contained.
    #[error("ability `{0}` panicked")]
    Panicked(String),
    /// The ability ran out of its wall-clock budget.
    #[error("ability `{name}` did not finish within {budget:?}")]
    TimedOut {
        /// The ability.
        name: String,
        /// Its budget.
        budget: Duration,
    },
}

#[derive(Clone)]
enum Ability {
    Native(Arc<NativeFn>),
    Script {
        script: Arc<Script>,
        function: String,
    },
}

/// A compiled file of scripted abilities, kept with its source so it can be taught.
#[derive(Debug)]
pub struct Script {
    source: SourceFile,
    ast: AST,
}

impl Script {
    /// The source the script was compiled from.
    pub fn source(&self) -> &SourceFile {
        &self.source
    }
}

/// A compiled file of scripted abilities, not installed yet.
pub(crate) struct Prepared {
    script: Arc<Script>,
    names: Vec<String>,
}

impl Prepared {
    /// The abilities it would install.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }
}

/// The abilities installed in one agent. Cloning gives another handle to the same set.
#[derive(Clone)]
pub struct Abilities {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<Engine>,
    limits: Limits,
    native_budget: Duration,
    table: RwLock<BTreeMap<String, Ability>>,
}

impl fmt::Debug for Abilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Abilities")
            .field("names", &self.names())
            .finish()
    }
}

impl Default for Abilities {
    fn default() -> Self {
        Abilities::new(Limits::default(), Duration::from_secs(30))
    }
}

impl Abilities {
    /// An empty set; scripts run under `limits`, native abilities under `native_budget`.
    pub fn new(limits: Limits, native_budget: Duration) -> Abilities {
        Abilities {
            inner: Arc::new(Inner {
                engine: script::shared(&limits),
                limits,
                native_budget,
                table: RwLock::default(),
            }),
        }
    }

    /// The same abilities under other script limits and native budget (a copy when they
    /// differ).
    pub(crate) fn with_limits(self, limits: Limits, native_budget: Option<Duration>) -> Abilities {
        let native_budget = native_budget.unwrap_or(self.inner.native_budget);
        if limits == self.inner.limits && native_budget == self.inner.native_budget {
            return self;
        }
        let copy = Abilities::new(limits, native_budget);
        *write(&copy.inner.table) = read(&self.inner.table).clone();
        copy
    }

    /// Installs a native ability, replacing one of the same name.
    pub fn register<F, Fut>(&self, name: &str, f: F)
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, BoxError>> + Send + 'static,
    {
        let f: Arc<NativeFn> = Arc::new(move |v| Box::pin(f(v)));
        write(&self.inner.table).insert(name.to_owned(), Ability::Native(f));
    }

    /// Compiles a file of scripted abilities without installing anything; returns the names
    /// it would install.
    pub fn check_script(&self, source: &SourceFile) -> Result<Vec<String>, LoadError> {
        self.prepare(source.clone()).map(|p| p.names)
    }

    /// Compiles a file of scripted abilities, ready to install; nothing is installed yet.
    pub(crate) fn prepare(&self, source: SourceFile) -> Result<Prepared, LoadError> {
        let ast = self
            .inner
            .engine
            .compile(source.text())
            .map_err(|e| source.error_at_script(e.position(), e.to_string()))?;
        let names: Vec<String> = ast
            .iter_functions()
            .filter(|f| f.params.len() == 1)
            .map(|f| f.name.to_string())
            .collect();
        if names.is_empty() {
            return Err(source
                .error("no ability here: an ability is a function of one argument, `fn name(input) { ... }`")
                .into());
        }
        Ok(Prepared {
            script: Arc::new(Script { source, ast }),
            names,
        })
    }

    /// Installs each one-argument function of a compiled file, replacing abilities of the
    /// same names; returns the names.
    pub(crate) fn install(&self, prepared: Prepared) -> Vec<String> {
        let mut table = write(&self.inner.table);
        for n in &prepared.names {
            table.insert(
                n.clone(),
                Ability::Script {
                    script: Arc::clone(&prepared.script),
                    function: n.clone(),
                },
            );
        }
        prepared.names
    }

    /// Compiles a file of scripted abilities and installs each one-argument function in it.
    /// Returns the names installed. A file that does not compile installs nothing.
    pub fn load_script(&self, source: SourceFile) -> Result<Vec<String>, LoadError> {
        Ok(self.install(self.prepare(source)?))
    }

    /// Removes an ability; returns whether it existed.
    pub fn remove(&self, name: &str) -> bool {
        write(&self.inner.table).remove(name).is_some()
    }

    /// Whether an ability is installed.
    pub fn contains(&self, name: &str) -> bool {
        read(&self.inner.table).contains_key(name)
    }

    /// The names installed, sorted.
    pub fn names(&self) -> Vec<String> {
        read(&self.inner.table).keys().cloned().collect()
    }

    /// The script an ability comes from, if it is scripted (used when teaching).
    pub fn script_of(&self, name: &str) -> Option<Arc<Script>> {
        match read(&self.inner.table).get(name)? {
            Ability::Script { script, .. } => Some(Arc::clone(script)),
            Ability::Native(_) => None,
        }
    }

    /// Runs an ability.
    pub async fn call(&self, name: &str, input: Value) -> Result<Value, AbilityError> {
        let ability = read(&self.inner.table)
            .get(name)
            .cloned()
            .ok_or_else(|| AbilityError::Unknown(name.to_owned()))?;
        match ability {
            Ability::Script { script, function } => self.call_script(&script, &function, input),
            Ability::Native(f) => {
                let budget = self.inner.native_budget;
                // A panic is caught where it happens instead of unwinding through the agent;
                // past its budget the ability's future is dropped. Run in place, not as a task
                // of its own: a call pays no spawn, and nothing outlives the call.
                let mut run = std::pin::pin!(AssertUnwindSafe(f(input)).catch_unwind());
                // Most native abilities answer at once: only one that has to wait sets the
                // budget's timer (and reads the clock for it).
                let outcome = match run.as_mut().now_or_never() {
                    Some(done) => Ok(done),
                    None => tokio::time::timeout(budget, run).await,
                };
                match outcome {
                    Err(_) => Err(AbilityError::TimedOut {
                        name: name.to_owned(),
                        budget,
                    }),
                    Ok(Err(_panic)) => Err(AbilityError::Panicked(name.to_owned())),
                    Ok(Ok(Err(e))) => Err(AbilityError::Failed {
                        name: name.to_owned(),
                        message: e.to_string(),
                    }),
                    Ok(Ok(Ok(v))) => Ok(v),
                }
            }
        }
    }

    fn call_script(
        &self,
        script: &Script,
        function: &str,
        input: Value,
    ) -> Result<Value, AbilityError> {
        let fail = |message: String| AbilityError::Failed {
            name: function.to_owned(),
            message,
        };
        let result = script::with_budget(self.inner.limits.budget, || {
            // Only the function runs: not the file's top-level statements again.
            let options = rhai::CallFnOptions::new().eval_ast(false);
            self.inner.engine.call_fn_with_options::<Dynamic>(
                options,
                &mut Scope::new(),
                &script.ast,
                function,
                (input.to_dynamic(),),
            )
        });
        let out = result.map_err(|e| fail(script::describe(&e)))?;
        Value::from_dynamic(&out).map_err(|e| fail(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_native_ability_past_its_budget_is_dropped_and_one_that_panics_is_caught() {
        let a = Abilities::new(Limits::default(), Duration::from_secs(1));
        let finished = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&finished);
        a.register("slow", move |_v: Value| {
            let flag = Arc::clone(&flag);
            async move {
                tokio::time::sleep(Duration::from_secs(10)).await;
                flag.store(true, Ordering::SeqCst);
                Ok(Value::Null)
            }
        });
        a.register("boom", |_v: Value| async move {
            if true {
                panic!("a bug in the embedding application");
            }
            Ok(Value::Null)
        });
        a.register("echo", |v: Value| async move { Ok(v) });
        let err = a.call("slow", Value::Null).await.unwrap_err();
        assert!(matches!(err, AbilityError::TimedOut { .. }), "{err}");
        // Nothing of the call outlives it: the ability never finishes in the background.
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(!finished.load(Ordering::SeqCst));
        let err = a.call("boom", Value::Null).await.unwrap_err();
        assert_eq!(err, AbilityError::Panicked("boom".into()));
        assert_eq!(a.call("echo", Value::Int(3)).await, Ok(Value::Int(3)));
    }
}
