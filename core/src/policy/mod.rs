//! The Autonomic Manager: policies as Rhai production rules.
//!
//! A policy file holds rules. Each rule names the event topics it reacts to (exact, or a prefix
//! such as `service.*`), an optional condition over the event and the agent's knowledge, the
//! actions to take, and a priority that orders the rules one event matches:
//!
//! ```rhai
//! rule("learn frequent remote services")
//!     .on("prediction.frequent")
//!     .priority(10)
//!     .when(|ev| ev.support >= 0.2 && !has_service(ev.item))
//!     .then(|ev| request_service(ev.item, "can_teach"));
//! ```
//!
//! Rules are indexed by topic when a file loads, and the file is compiled once then: an event
//! with no rule on its topic runs no script at all. Rules run in a sandbox (see
//! [`crate::script`]): an operation limit, call-depth and size limits, a wall-clock budget, no
//! `eval`, no file, network or process access. A rule that errs or runs out of budget is
//! logged with its name and location and counted; nothing it queued is applied, and the other
//! rules and the agent go on. The functions rules can call are listed in `policies/README.md`.

mod action;
mod rhai_api;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use rhai::{AST, Dynamic, Engine, FnPtr};

pub use action::{Action, BehaviourChange};

use crate::behaviour::Behaviours;
use crate::bus::{Bus, Event, Overflow, Pattern, SubscribeOptions, Subscription};
use crate::choice::ChoiceCell;
use crate::knowledge::Knowledge;
use crate::prediction::learner::Learners;
use crate::script::{self, Limits};
use crate::source::{LoadError, SourceFile};
use crate::sync::{lock, read, write};

/// How many events may wait for the policy engine before the oldest are dropped (and counted
/// on the bus). Dropping, not waiting: a policy that publishes must never wait on itself.
pub const QUEUE_CAPACITY: usize = 4096;

/// Counters of one rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleStats {
    /// Events the rule was evaluated for.
    pub evaluated: u64,
    /// Times its condition held and its actions ran.
    pub fired: u64,
    /// Times it failed (an error, a limit, the budget).
    pub failed: u64,
}

/// A rule that fired: its name and the actions it queued, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// The rule's name.
    pub rule: String,
    /// Its actions.
    pub actions: Vec<Action>,
}

/// A problem `check` reports without refusing the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `file:line:col`.
    pub at: String,
    /// What is odd.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: {}", self.at, self.message)
    }
}

struct Rule {
    name: String,
    at: String,
    topics: Vec<Pattern>,
    priority: i64,
    order: u64,
    when: Option<FnPtr>,
    then: FnPtr,
    evaluated: AtomicU64,
    fired: AtomicU64,
    failed: AtomicU64,
}

struct PolicyFile {
    ast: AST,
    rules: Vec<Arc<Rule>>,
}

/// A rule with the file (and so the compiled script) it belongs to.
type Entry = (Arc<PolicyFile>, Arc<Rule>);

/// Rules by topic: exact topics in a map, prefixes and `*` in a list.
#[derive(Default)]
struct Index {
    exact: HashMap<String, Vec<Entry>, foldhash::fast::RandomState>,
    patterns: Vec<(Pattern, Arc<PolicyFile>, Arc<Rule>)>,
}

/// The policies of one agent. Cloning gives another handle to the same policies.
#[derive(Clone)]
pub struct Policies {
    inner: Arc<Inner>,
}

struct Inner {
    knowledge: Knowledge,
    bus: Bus,
    behaviours: Behaviours,
    choice: ChoiceCell,
    learners: Learners,
    limits: Limits,
    // Built on first load: agents without policies never pay for an engine or the state its
    // functions share (boxed, so that they do not hold its size either).
    scripting: OnceLock<Box<Scripting>>,
    files: RwLock<BTreeMap<String, Arc<PolicyFile>>>,
    index: RwLock<Arc<Index>>,
    // Made when the first rule is loaded: an agent without policies keeps no queue.
    events: OnceLock<Arc<Subscription>>,
    // Called once the queue is made (the agent then starts feeding its rules): nothing waits
    // for it meanwhile.
    on_listening: Mutex<Option<Listener>>,
    next_order: AtomicU64,
}

type Listener = Box<dyn FnOnce() + Send>;

/// A policy engine and the state its functions share with the rules they run in.
struct Scripting {
    engine: Engine,
    api: rhai_api::Shared,
}

/// The index of an agent without rules: one for all of them.
fn no_rules() -> Arc<Index> {
    static EMPTY: OnceLock<Arc<Index>> = OnceLock::new();
    Arc::clone(EMPTY.get_or_init(Arc::default))
}

impl fmt::Debug for Policies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policies")
            .field("files", &self.names())
            .finish()
    }
}

impl Policies {
    pub(crate) fn new(
        knowledge: Knowledge,
        bus: Bus,
        behaviours: Behaviours,
        choice: ChoiceCell,
        learners: Learners,
        limits: Limits,
    ) -> Policies {
        Policies {
            inner: Arc::new(Inner {
                knowledge,
                bus,
                behaviours,
                choice,
                learners,
                limits,
                scripting: OnceLock::new(),
                files: RwLock::default(),
                index: RwLock::new(no_rules()),
                events: OnceLock::new(),
                on_listening: Mutex::new(None),
                next_order: AtomicU64::new(0),
            }),
        }
    }

    fn scripting(&self) -> &Scripting {
        self.inner.scripting.get_or_init(|| {
            let i = &self.inner;
            let api = rhai_api::Shared::default();
            let engine = rhai_api::engine(
                &i.limits,
                &api,
                &i.knowledge,
                &i.bus,
                &i.behaviours,
                &i.choice,
                &i.learners,
            );
            Box::new(Scripting { engine, api })
        })
    }

    /// Compiles a policy file and puts its rules in place of the file's previous version
    /// (files are known by their source name). Returns the names of its rules.
    ///
    /// A file that does not compile, or whose top level fails, changes nothing and reports
    /// the located error.
    pub fn load(&self, source: SourceFile) -> Result<Vec<String>, LoadError> {
        let file = self.compile(&source)?;
        let names = file.rules.iter().map(|r| r.name.clone()).collect();
        write(&self.inner.files).insert(source.name().to_owned(), Arc::new(file));
        self.reindex();
        Ok(names)
    }

    /// Removes a policy file and its rules; returns whether it was loaded.
    pub fn remove(&self, name: &str) -> bool {
        let removed = write(&self.inner.files).remove(name).is_some();
        if removed {
            self.reindex();
        }
        removed
    }

    /// The loaded files' names.
    pub fn names(&self) -> Vec<String> {
        read(&self.inner.files).keys().cloned().collect()
    }

    /// Counters per rule, by rule name, for every loaded rule.
    pub fn stats(&self) -> BTreeMap<String, RuleStats> {
        read(&self.inner.files)
            .values()
            .flat_map(|f| f.rules.iter())
            .map(|r| {
                let s = RuleStats {
                    evaluated: r.evaluated.load(Ordering::Relaxed),
                    fired: r.fired.load(Ordering::Relaxed),
                    failed: r.failed.load(Ordering::Relaxed),
                };
                (r.name.clone(), s)
            })
            .collect()
    }

    /// Validates a policy file without an agent: syntax, the rules its top level declares,
    /// calls to functions that do not exist (errors), and topics nothing in selflet publishes
    /// (warnings).
    pub fn check(source: &SourceFile) -> Result<Vec<Warning>, LoadError> {
        let bus = Bus::new("check");
        let p = Policies::new(
            Knowledge::new(bus.clone()),
            bus,
            Behaviours::default(),
            ChoiceCell::new(Arc::new(crate::choice::FirstKnown)),
            Learners::default(),
            Limits::default(),
        );
        let file = p.compile(source)?;
        let mut problems = Vec::new();
        for (name, pos) in rhai_api::unknown_calls(&p.scripting().engine, &file.ast) {
            problems.push(source.error_at_script(
                pos,
                format!(
                    "`{name}` is neither an action, a read function nor a function of this file"
                ),
            ));
        }
        if !problems.is_empty() {
            return Err(LoadError::Invalid(problems));
        }
        Ok(file
            .rules
            .iter()
            .flat_map(|r| r.topics.iter().map(move |t| (r, t)))
            .filter(|(_, t)| !crate::topic::TOPICS.iter().any(|known| t.matches(known.topic)))
            .map(|(r, t)| Warning {
                at: r.at.clone(),
                message: format!(
                    "rule `{}` listens to `{t}`, which selflet itself never publishes: make sure a behaviour or policy does",
                    r.name
                ),
            })
            .collect())
    }

    fn compile(&self, source: &SourceFile) -> Result<PolicyFile, LoadError> {
        let Scripting { engine, api } = self.scripting();
        let mut ast = engine
            .compile(source.text())
            .map_err(|e| source.error_at_script(e.position(), e.to_string()))?;
        ast.set_source(source.name());
        let defs = {
            let _loading = api.start_loading();
            let run = script::with_budget(self.inner.limits.budget, || engine.run_ast(&ast));
            let defs = api.take_loaded();
            run.map_err(|e| source.error_at_script(e.position(), script::describe(&e)))?;
            defs
        };
        let mut rules = Vec::new();
        let mut problems = Vec::new();
        for d in defs {
            let at = source.error_at_script(d.pos, "");
            let at = format!("{}:{}:{}", at.file(), at.line(), at.column());
            let mut topics = Vec::new();
            for t in &d.topics {
                match Pattern::parse(t) {
                    Ok(p) => topics.push(p),
                    Err(e) => problems
                        .push(source.error_at_script(d.pos, format!("rule `{}`: {e}", d.name))),
                }
            }
            if topics.is_empty() {
                problems.push(source.error_at_script(
                    d.pos,
                    format!("rule `{}` reacts to no topic: add `.on(\"topic\")`", d.name),
                ));
            }
            if rules.iter().any(|r: &Arc<Rule>| r.name == d.name) {
                problems.push(source.error_at_script(
                    d.pos,
                    format!("a rule named `{}` is already declared in this file", d.name),
                ));
            }
            rules.push(Arc::new(Rule {
                name: d.name,
                at,
                topics,
                priority: d.priority,
                order: self.inner.next_order.fetch_add(1, Ordering::Relaxed),
                when: d.when,
                then: d.then,
                evaluated: AtomicU64::new(0),
                fired: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            }));
        }
        if !problems.is_empty() {
            return Err(LoadError::Invalid(problems));
        }
        Ok(PolicyFile { ast, rules })
    }

    fn reindex(&self) {
        let mut index = Index::default();
        let mut patterns: Vec<Pattern> = Vec::new();
        for file in read(&self.inner.files).values() {
            for r in &file.rules {
                for t in &r.topics {
                    match t {
                        Pattern::Exact(topic) => index
                            .exact
                            .entry(topic.clone())
                            .or_default()
                            .push((Arc::clone(file), Arc::clone(r))),
                        p => index
                            .patterns
                            .push((p.clone(), Arc::clone(file), Arc::clone(r))),
                    }
                    if !patterns.contains(t) {
                        patterns.push(t.clone());
                    }
                }
            }
        }
        for list in index.exact.values_mut() {
            list.sort_by_key(|(_, r)| (-r.priority, r.order));
        }
        *write(&self.inner.index) = Arc::new(index);
        if let Some(events) = self.inner.events.get() {
            events.set_patterns(patterns);
            return;
        }
        let options = SubscribeOptions {
            capacity: QUEUE_CAPACITY,
            overflow: Overflow::DropOldest,
        };
        // A closed bus has no events to give: the rules then never run, as the agent stops.
        if let Ok(events) = self.inner.bus.subscribe_many(patterns, options)
            && self.inner.events.set(Arc::new(events)).is_ok()
        {
            let listener = lock(&self.inner.on_listening).take();
            if let Some(listener) = listener {
                listener();
            }
        }
    }

    /// Calls `listener` once the rules have a queue of events: now if they have one, else
    /// when the first rule is loaded. One listener; a later one replaces an uncalled one.
    pub(crate) fn when_listening(&self, listener: impl FnOnce() + Send + 'static) {
        let mut waiting = lock(&self.inner.on_listening);
        if self.inner.events.get().is_some() {
            drop(waiting);
            listener();
        } else {
            *waiting = Some(Box::new(listener));
        }
    }

    /// Whether some loaded rule reacts to `topic`.
    pub fn listens_to(&self, topic: &str) -> bool {
        let index = read(&self.inner.index);
        index.exact.contains_key(topic) || index.patterns.iter().any(|(p, _, _)| p.matches(topic))
    }

    /// The queue of events the rules react to, once a rule is loaded.
    pub(crate) fn events(&self) -> Option<Arc<Subscription>> {
        self.inner.events.get().cloned()
    }

    /// How many events wait for the rules now.
    pub(crate) fn queued(&self) -> usize {
        self.inner.events.get().map_or(0, |e| e.len())
    }

    /// Evaluates the rules an event matches, highest priority first (load order among equals),
    /// and returns those that fired with their actions.
    pub fn evaluate(&self, event: &Event) -> Vec<Fired> {
        let index = Arc::clone(&read(&self.inner.index));
        let exact = index.exact.get(event.topic());
        let mut matched: Vec<&Entry> = exact.map(|l| l.iter().collect()).unwrap_or_default();
        let before = matched.len();
        let mut extra: Vec<Entry> = index
            .patterns
            .iter()
            .filter(|(p, _, r)| {
                p.matches(event.topic()) && !matched.iter().any(|(_, m)| Arc::ptr_eq(m, r))
            })
            .map(|(_, f, r)| (Arc::clone(f), Arc::clone(r)))
            .collect();
        extra.dedup_by(|a, b| Arc::ptr_eq(&a.1, &b.1));
        matched.extend(extra.iter());
        if matched.len() != before {
            matched.sort_by_key(|(_, r)| (-r.priority, r.order));
        }
        if matched.is_empty() {
            return Vec::new();
        }
        let ev = event_value(event);
        let Scripting { engine, api } = self.scripting();
        let mut fired = Vec::new();
        for (file, rule) in matched {
            rule.evaluated.fetch_add(1, Ordering::Relaxed);
            let _queue = api.start_rule();
            let outcome = script::with_budget(
                self.inner.limits.budget,
                || -> Result<bool, Box<rhai::EvalAltResult>> {
                    if let Some(when) = &rule.when {
                        let holds = when.call::<Dynamic>(engine, &file.ast, (ev.clone(),))?;
                        match holds.as_bool() {
                            Ok(true) => {}
                            Ok(false) => return Ok(false),
                            Err(ty) => {
                                return Err(format!("the condition gave a {ty}, not a bool").into());
                            }
                        }
                    }
                    let _ = rule
                        .then
                        .call::<Dynamic>(engine, &file.ast, (ev.clone(),))?;
                    Ok(true)
                },
            );
            let actions = api.take_actions();
            match outcome {
                Ok(true) => {
                    rule.fired.fetch_add(1, Ordering::Relaxed);
                    fired.push(Fired {
                        rule: rule.name.clone(),
                        actions,
                    });
                }
                Ok(false) => {}
                Err(e) => {
                    rule.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        agent = %self.inner.bus.agent(),
                        rule = %rule.name,
                        at = %rule.at,
                        topic = %event.topic(),
                        "policy rule failed: {}",
                        script::describe(&e)
                    );
                }
            }
        }
        fired
    }
}

/// What a rule sees as `ev`: the payload's fields (or the payload as `value`), plus `topic`
/// and `source` unless the payload has fields of those names.
fn event_value(event: &Event) -> Dynamic {
    // Shared, so that handing it to each rule's condition and actions copies a pointer, not
    // the map.
    Dynamic::from_map(script::event_map(event)).into_shared()
}
