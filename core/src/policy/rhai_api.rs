//! What policy scripts can call: the rule builder, the action list, and read access to the
//! agent.

use std::sync::{Arc, Mutex};

use rhai::{
    AST, Array, Dynamic, Engine, EvalAltResult, FnPtr, ImmutableString, NativeCallContext, Position,
};

use super::action::{Action, BehaviourChange};
use crate::behaviour::Behaviours;
use crate::bus::{Bus, Pattern};
use crate::choice::{Choice, ChoiceCell};
use crate::knowledge::{Knowledge, Service};
use crate::offer::{OfferMode, OfferModes};
use crate::prediction::learner::Learners;
use crate::script::{self, Limits};
use crate::sync::lock;
use crate::value::Value;

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

/// A rule as declared by a script's top level.
#[derive(Clone)]
pub(super) struct RuleDef {
    pub(super) name: String,
    pub(super) topics: Vec<String>,
    pub(super) priority: i64,
    pub(super) when: Option<FnPtr>,
    pub(super) then: FnPtr,
    pub(super) pos: Position,
}

/// A rule being built by `rule(..).on(..).when(..)`, before `.then(..)` completes it.
#[derive(Clone)]
struct Builder {
    name: String,
    topics: Vec<String>,
    priority: i64,
    when: Option<FnPtr>,
    pos: Position,
}

/// State shared between the engine's functions and the policy manager: the actions a running
/// rule queued, and the rules a loading file declared.
#[derive(Default, Clone)]
pub(super) struct Shared {
    actions: Arc<Mutex<Vec<Action>>>,
    loading: Arc<Mutex<Option<Vec<RuleDef>>>>,
}

/// Ends a loading or a rule run, whatever happened during it.
pub(super) struct Reset<'a>(&'a Shared, bool);

impl Drop for Reset<'_> {
    fn drop(&mut self) {
        if self.1 {
            lock(&self.0.loading).take();
        } else {
            lock(&self.0.actions).clear();
        }
    }
}

impl Shared {
    pub(super) fn start_loading(&self) -> Reset<'_> {
        *lock(&self.loading) = Some(Vec::new());
        Reset(self, true)
    }

    pub(super) fn take_loaded(&self) -> Vec<RuleDef> {
        lock(&self.loading).take().unwrap_or_default()
    }

    pub(super) fn start_rule(&self) -> Reset<'_> {
        lock(&self.actions).clear();
        Reset(self, false)
    }

    pub(super) fn take_actions(&self) -> Vec<Action> {
        std::mem::take(&mut *lock(&self.actions))
    }

    fn push(&self, a: Action) {
        lock(&self.actions).push(a);
    }
}

fn value(d: &Dynamic) -> Result<Value> {
    Value::from_dynamic(d).map_err(|e| e.to_string().into())
}

fn modes(d: &Dynamic) -> Result<Vec<OfferMode>> {
    let one = |s: &str| {
        OfferMode::from_name(s).ok_or_else(|| -> Box<EvalAltResult> {
        format!("unknown offer mode `{s}` (can_do, can_teach, knows_who_can_do, knows_who_can_teach)").into()
    })
    };
    if let Some(s) = d.read_lock::<ImmutableString>() {
        return Ok(vec![one(&s)?]);
    }
    if let Some(a) = d.read_lock::<Array>() {
        return a
            .iter()
            .map(|m| {
                one(&m.clone().into_string().map_err(|t| -> Box<EvalAltResult> {
                    format!("an offer mode is a string, not a {t}").into()
                })?)
            })
            .collect();
    }
    Err(format!(
        "offer modes are a string or an array of strings, not a {}",
        d.type_name()
    )
    .into())
}

/// The engine policies of one agent run on: the sandbox, plus the functions rules may call,
/// registered group by group.
pub(super) fn engine(
    limits: &Limits,
    shared: &Shared,
    k: &Knowledge,
    bus: &Bus,
    behaviours: &Behaviours,
    choice: &ChoiceCell,
    learners: &Learners,
) -> Engine {
    let mut e = script::engine(limits);
    register_rules(&mut e, shared);
    register_reads(&mut e, k, bus, behaviours);
    register_service_actions(&mut e, shared);
    register_behaviour_actions(&mut e, shared);
    register_agent_actions(&mut e, shared);
    register_learning(&mut e, shared, k);
    register_choice(&mut e, shared, choice);
    register_learners(&mut e, shared, learners);
    register_balancing(&mut e, shared, k, behaviours, bus);
    e
}

/// The rule builder: `rule(name).on(topics).priority(p).when(f).then(f)`.
fn register_rules(e: &mut Engine, shared: &Shared) {
    e.register_type_with_name::<Builder>("Rule");

    let loading = shared.clone();
    e.register_fn(
        "rule",
        move |ctx: NativeCallContext, name: &str| -> Result<Builder> {
            if lock(&loading.loading).is_none() {
                return Err("rules are declared when a policy file loads, not from a rule".into());
            }
            Ok(Builder {
                name: name.to_owned(),
                topics: Vec::new(),
                priority: 0,
                when: None,
                pos: ctx.call_position(),
            })
        },
    );
    e.register_fn("on", |mut b: Builder, topic: &str| {
        b.topics.push(topic.to_owned());
        b
    });
    e.register_fn("on", |mut b: Builder, topics: Array| -> Result<Builder> {
        for t in topics {
            b.topics
                .push(t.into_string().map_err(|t| -> Box<EvalAltResult> {
                    format!("a topic is a string, not a {t}").into()
                })?);
        }
        Ok(b)
    });
    e.register_fn("priority", |mut b: Builder, p: i64| {
        b.priority = p;
        b
    });
    e.register_fn("when", |mut b: Builder, f: FnPtr| {
        b.when = Some(f);
        b
    });
    let loading = shared.clone();
    e.register_fn("then", move |b: Builder, f: FnPtr| -> Result<()> {
        let mut l = lock(&loading.loading);
        let list = l
            .as_mut()
            .ok_or("rules are declared when a policy file loads")?;
        list.push(RuleDef {
            name: b.name,
            topics: b.topics,
            priority: b.priority,
            when: b.when,
            then: f,
            pos: b.pos,
        });
        Ok(())
    });
}

/// What rules read of their agent, at once.
fn register_reads(e: &mut Engine, k: &Knowledge, bus: &Bus, behaviours: &Behaviours) {
    let kn = k.clone();
    e.register_fn("fact", move |key: &str| {
        kn.fact(key).unwrap_or_default().to_dynamic()
    });
    let kn = k.clone();
    e.register_fn("attribute", move |key: &str| {
        kn.attribute(key).unwrap_or_default().to_dynamic()
    });
    let kn = k.clone();
    e.register_fn("has_service", move |s: &str| kn.can_run(s));
    let kn = k.clone();
    e.register_fn("services", move || -> Array {
        kn.services()
            .into_iter()
            .map(|s| Dynamic::from(s.name))
            .collect()
    });
    let kn = k.clone();
    e.register_fn("offer_modes", move |s: &str| -> Array {
        kn.service(s)
            .map(|s| s.modes.iter().map(|m| Dynamic::from(m.name())).collect())
            .unwrap_or_default()
    });
    let kn = k.clone();
    e.register_fn("providers", move |s: &str| -> Array {
        kn.providers()
            .providers(s)
            .into_iter()
            .map(|p| {
                Value::map([
                    ("agent", Value::from(String::from(p.agent))),
                    ("modes", Value::from(p.modes)),
                    ("failures", Value::Int(i64::from(p.failures))),
                ])
                .to_dynamic()
            })
            .collect()
    });
    let b = bus.clone();
    e.register_fn("counter", move |topic: &str| {
        let s = b.topic_stats(topic).unwrap_or_default();
        Value::map([
            ("published", Value::Int(s.published as i64)),
            ("delivered", Value::Int(s.delivered as i64)),
            ("dropped", Value::Int(s.dropped as i64)),
        ])
        .to_dynamic()
    });
    let name = bus.agent().to_owned();
    e.register_fn("agent_name", move || name.clone());
    let bs = behaviours.clone();
    e.register_fn("has_behaviour", move |n: &str| bs.contains(n));
}

/// Actions on services: request them, change how they are offered and asked for, offer them.
fn register_service_actions(e: &mut Engine, shared: &Shared) {
    let q = shared.clone();
    e.register_fn(
        "request_service",
        move |s: &str, m: Dynamic| -> Result<()> {
            q.push(Action::RequestService {
                service: s.into(),
                modes: modes(&m)?,
                input: Value::Null,
            });
            Ok(())
        },
    );
    let q = shared.clone();
    e.register_fn(
        "request_service",
        move |s: &str, m: Dynamic, input: Dynamic| -> Result<()> {
            q.push(Action::RequestService {
                service: s.into(),
                modes: modes(&m)?,
                input: value(&input)?,
            });
            Ok(())
        },
    );
    let q = shared.clone();
    e.register_fn(
        "set_offer_modes",
        move |s: &str, m: Dynamic| -> Result<()> {
            let modes: OfferModes = modes(&m)?.into_iter().collect();
            q.push(Action::SetOfferModes {
                service: s.into(),
                modes,
            });
            Ok(())
        },
    );
    let q = shared.clone();
    e.register_fn("set_ask_modes", move |s: &str, m: Dynamic| -> Result<()> {
        q.push(Action::SetAskModes {
            service: s.into(),
            modes: modes(&m)?,
        });
        Ok(())
    });
    let q = shared.clone();
    e.register_fn(
        "install_service",
        move |s: &str, behaviour: &str, m: Dynamic| -> Result<()> {
            let modes: OfferModes = modes(&m)?.into_iter().collect();
            let service = Service {
                behaviour: Some(behaviour.into()),
                ..Service::new(s, modes)
            };
            q.push(Action::InstallService(service));
            Ok(())
        },
    );
}

/// Actions on behaviours and abilities: install, modify, enable, make main.
fn register_behaviour_actions(e: &mut Engine, shared: &Shared) {
    let q = shared.clone();
    e.register_fn("install_ability", move |name: &str, script: &str| {
        q.push(Action::InstallAbility {
            name: name.into(),
            script: script.into(),
        });
    });
    let q = shared.clone();
    e.register_fn("install_behaviour", move |yaml: &str| {
        q.push(Action::InstallBehaviour { yaml: yaml.into() })
    });
    let q = shared.clone();
    e.register_fn(
        "add_state",
        move |b: &str, name: &str, state: Dynamic| -> Result<()> {
            let change = BehaviourChange::AddState {
                name: name.into(),
                state: value(&state)?,
            };
            q.push(Action::ModifyBehaviour {
                behaviour: b.into(),
                change,
            });
            Ok(())
        },
    );
    let q = shared.clone();
    e.register_fn("remove_state", move |b: &str, name: &str| {
        let change = BehaviourChange::RemoveState { name: name.into() };
        q.push(Action::ModifyBehaviour {
            behaviour: b.into(),
            change,
        });
    });
    let q = shared.clone();
    e.register_fn(
        "add_transition",
        move |b: &str, from: &str, trigger: &str, to: &str| {
            let change = BehaviourChange::AddTransition {
                from: from.into(),
                trigger: trigger.into(),
                to: to.into(),
            };
            q.push(Action::ModifyBehaviour {
                behaviour: b.into(),
                change,
            });
        },
    );
    let q = shared.clone();
    e.register_fn(
        "remove_transition",
        move |b: &str, from: &str, trigger: &str| {
            let change = BehaviourChange::RemoveTransition {
                from: from.into(),
                trigger: trigger.into(),
            };
            q.push(Action::ModifyBehaviour {
                behaviour: b.into(),
                change,
            });
        },
    );
    for (name, enabled) in [("enable_behaviour", true), ("disable_behaviour", false)] {
        let q = shared.clone();
        e.register_fn(name, move |b: &str| {
            q.push(Action::EnableBehaviour {
                behaviour: b.into(),
                enabled,
            })
        });
    }
    let q = shared.clone();
    e.register_fn("set_main_behaviour", move |b: &str| {
        q.push(Action::SetMainBehaviour {
            behaviour: b.into(),
        })
    });
}

/// Actions on the agent's other parts: neighbours, facts, events, predictors, policies, its log.
fn register_agent_actions(e: &mut Engine, shared: &Shared) {
    for (name, enabled) in [("enable_neighbour", true), ("disable_neighbour", false)] {
        let q = shared.clone();
        e.register_fn(name, move |a: &str| {
            q.push(Action::SetNeighbour {
                agent: a.into(),
                enabled,
            })
        });
    }
    let q = shared.clone();
    e.register_fn("set_fact", move |key: &str, v: Dynamic| -> Result<()> {
        q.push(Action::SetFact {
            key: key.into(),
            value: value(&v)?,
        });
        Ok(())
    });
    let q = shared.clone();
    e.register_fn("remove_fact", move |key: &str| {
        q.push(Action::RemoveFact { key: key.into() })
    });
    let q = shared.clone();
    e.register_fn(
        "publish",
        move |topic: &str, payload: Dynamic| -> Result<()> {
            if !matches!(Pattern::parse(topic), Ok(Pattern::Exact(_))) {
                return Err(format!("`{topic}` is not a topic").into());
            }
            q.push(Action::Publish {
                topic: topic.into(),
                payload: value(&payload)?,
            });
            Ok(())
        },
    );
    let q = shared.clone();
    e.register_fn(
        "plug_predictor",
        move |kind: &str, name: &str, params: Dynamic| -> Result<()> {
            q.push(Action::PlugPredictor {
                kind: kind.into(),
                name: name.into(),
                params: value(&params)?,
            });
            Ok(())
        },
    );
    let q = shared.clone();
    e.register_fn("unplug_predictor", move |name: &str| {
        q.push(Action::UnplugPredictor { name: name.into() })
    });
    let q = shared.clone();
    e.register_fn("install_policy", move |name: &str, script: &str| {
        q.push(Action::InstallPolicy {
            name: name.into(),
            script: script.into(),
        });
    });
    let q = shared.clone();
    e.register_fn("remove_policy", move |name: &str| {
        q.push(Action::RemovePolicy { name: name.into() })
    });
    let q = shared.clone();
    e.register_fn("log", move |m: Dynamic| {
        q.push(Action::Log {
            message: m.to_string(),
        })
    });
}

/// What was taught: forget it, let it be upgraded, list it.
fn register_learning(e: &mut Engine, shared: &Shared, k: &Knowledge) {
    let q = shared.clone();
    e.register_fn("forget_service", move |s: &str| {
        q.push(Action::ForgetService { service: s.into() });
    });
    for (name, allowed) in [("allow_upgrade", true), ("forbid_upgrade", false)] {
        let q = shared.clone();
        e.register_fn(name, move |s: &str| {
            q.push(Action::AllowUpgrade {
                service: s.into(),
                allowed,
            });
        });
    }
    let kn = k.clone();
    e.register_fn("learned", move || -> rhai::Map {
        kn.learned()
            .into_iter()
            .map(|(s, l)| (s.into(), Dynamic::from(l.teacher)))
            .collect()
    });
}

/// Learners: plugging them, reading what they know, vetoing compositions.
fn register_learners(e: &mut Engine, shared: &Shared, learners: &Learners) {
    let l = learners.clone();
    e.register_fn("learner", move |name: &str| {
        l.get(name)
            .map(|i| i.to_value())
            .unwrap_or_default()
            .to_dynamic()
    });
    let l = learners.clone();
    e.register_fn("learner_tables", move |name: &str| {
        l.tables(name).unwrap_or_default().to_dynamic()
    });
    let q = shared.clone();
    e.register_fn(
        "plug_learner",
        move |kind: &str, name: &str, params: Dynamic| -> Result<()> {
            q.push(Action::PlugLearner {
                kind: kind.into(),
                name: name.into(),
                params: value(&params)?,
            });
            Ok(())
        },
    );
    let q = shared.clone();
    e.register_fn("unplug_learner", move |name: &str| {
        q.push(Action::UnplugLearner { name: name.into() })
    });
    for (fname, vetoed) in [("veto", true), ("unveto", false)] {
        let q = shared.clone();
        e.register_fn(fname, move |learner: &str, composition: &str| {
            q.push(Action::Veto {
                learner: learner.into(),
                composition: composition.into(),
                vetoed,
            })
        });
    }
}

/// Provider choice: which strategy is in use, and switching it.
fn register_choice(e: &mut Engine, shared: &Shared, choice: &ChoiceCell) {
    let c = choice.clone();
    e.register_fn("choice", move || -> ImmutableString {
        c.get().name().into()
    });
    let q = shared.clone();
    e.register_fn("set_choice", move |name: &str| -> Result<()> {
        q.push(Action::SetChoice(choice_named(name)?));
        Ok(())
    });
    let q = shared.clone();
    e.register_fn(
        "set_choice",
        move |name: &str, params: rhai::Map| -> Result<()> {
            let choice = choice_named(name)?;
            let Some(mut learning) = choice.learning() else {
                return Err(format!("`{name}` takes no parameters").into());
            };
            for (key, v) in params {
                match key.as_str() {
                    "initial_trust" => learning.initial_trust = number(&v, "initial_trust")?,
                    "window" => {
                        learning.window = v
                            .as_int()
                            .ok()
                            .and_then(|w| u32::try_from(w).ok())
                            .ok_or("`window` is a whole number")?;
                    }
                    other => {
                        return Err(format!(
                            "unknown parameter `{other}`, expected `initial_trust` or `window`"
                        )
                        .into());
                    }
                }
            }
            learning.check()?;
            q.push(Action::SetChoice(choice.with_learning(learning)));
            Ok(())
        },
    );
}

fn choice_named(name: &str) -> Result<Choice> {
    Choice::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Choice::ALL.iter().map(|c| c.name()).collect();
        format!(
            "unknown provider choice `{name}`, expected one of {}",
            names.join(", ")
        )
        .into()
    })
}

fn number(v: &Dynamic, what: &str) -> Result<f64> {
    v.as_float()
        .or_else(|_| v.as_int().map(|i| i as f64))
        .map_err(|_| format!("`{what}` is a number").into())
}

/// Load balancing: redirect, teach unasked, and the load model's numbers.
fn register_balancing(
    e: &mut Engine,
    shared: &Shared,
    k: &Knowledge,
    behaviours: &Behaviours,
    bus: &Bus,
) {
    let q = shared.clone();
    e.register_fn("redirect", move |s: &str, n: &str, fraction: f64| {
        q.push(Action::Redirect {
            service: s.into(),
            neighbours: vec![n.into()],
            fraction,
        });
    });
    let q = shared.clone();
    e.register_fn(
        "redirect",
        move |s: &str, ns: Array, fraction: f64| -> Result<()> {
            let neighbours = ns
                .into_iter()
                .map(|n| {
                    n.into_string()
                        .map_err(|t| format!("a neighbour is a name, not {t}"))
                })
                .collect::<std::result::Result<Vec<String>, String>>()?;
            q.push(Action::Redirect {
                service: s.into(),
                neighbours,
                fraction,
            });
            Ok(())
        },
    );
    let q = shared.clone();
    e.register_fn("stop_redirect", move |s: &str| {
        q.push(Action::Redirect {
            service: s.into(),
            neighbours: Vec::new(),
            fraction: 0.0,
        });
    });
    let q = shared.clone();
    e.register_fn("teach", move |s: &str, n: &str| {
        q.push(Action::Teach {
            service: s.into(),
            neighbour: n.into(),
        });
    });
    let kn = k.clone();
    e.register_fn("loads", move || -> rhai::Map {
        kn.loads()
            .into_iter()
            .map(|(a, u)| (a.into(), Dynamic::from_float(u)))
            .collect()
    });
    // The load-balancing model's numbers.
    let (kn, bs) = (k.clone(), behaviours.clone());
    e.register_fn("service_demand", move |s: &str| -> Dynamic {
        let demand = kn
            .service(s)
            .and_then(|svc| svc.behaviour)
            .and_then(|b| bs.get(&b))
            .and_then(|b| b.demand().ok());
        demand.map_or(Dynamic::UNIT, Dynamic::from_float)
    });
    let (kn, me) = (k.clone(), bus.agent().to_owned());
    e.register_fn("utilization", move || {
        kn.loads().get(&me).copied().unwrap_or(0.0)
    });
    let kn = k.clone();
    e.register_fn("revenue", move |s: &str| {
        kn.economics(s).map_or(0.0, |e| e.revenue)
    });
    let kn = k.clone();
    e.register_fn("cost", move |s: &str| {
        kn.economics(s).map_or(0.0, |e| e.cost)
    });
    let kn = k.clone();
    e.register_fn("threshold", move |s: &str| -> Dynamic {
        kn.economics(s)
            .and_then(|e| e.threshold)
            .map_or(Dynamic::UNIT, Dynamic::from_float)
    });
    // M/M/1: a request of demand D waits D / (1 − U) at utilization U.
    e.register_fn("response_time", |demand: f64, utilization: f64| {
        if utilization >= 1.0 {
            f64::INFINITY
        } else {
            demand / (1.0 - utilization)
        }
    });
    let kn = k.clone();
    e.register_fn("is_redirecting", move |s: &str| kn.redirect(s).is_some());
    let kn = k.clone();
    e.register_fn("redirected", move |s: &str| -> Dynamic {
        kn.redirect(s).map_or(Dynamic::UNIT, |r| {
            Value::map([
                ("neighbour", Value::from(r.to[0].clone())),
                (
                    "neighbours",
                    Value::List(r.to.into_iter().map(Value::from).collect()),
                ),
                ("fraction", Value::Float(r.fraction)),
            ])
            .to_dynamic()
        })
    });
}

/// Names called as functions in the file that nothing defines, with where they are called.
pub(super) fn unknown_calls(engine: &Engine, ast: &AST) -> Vec<(String, Position)> {
    let mut known: Vec<String> =
        engine.collect_fn_metadata(None, |f| Some(f.metadata.name.to_string()), true);
    known.extend(ast.iter_functions().map(|f| f.name.to_owned()));
    // Keywords Rhai resolves itself.
    for k in [
        "Fn",
        "call",
        "curry",
        "is_def_fn",
        "is_def_var",
        "is_shared",
        "type_of",
        "print",
        "debug",
        "eval",
    ] {
        known.push(k.to_owned());
    }
    let mut unknown = Vec::new();
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        // A call is an expression, or a statement of its own when its value is unused.
        let call = match path.last() {
            Some(rhai::ASTNode::Expr(rhai::Expr::FnCall(call, pos))) => Some((call, *pos)),
            Some(rhai::ASTNode::Stmt(rhai::Stmt::FnCall(call, pos))) => Some((call, *pos)),
            _ => None,
        };
        if let Some((call, pos)) = call
            && call.op_token.is_none()
            && !call.name.starts_with("anon$")
            && !known.iter().any(|k| k == call.name.as_str())
        {
            unknown.push((call.name.to_string(), pos));
        }
        true
    });
    unknown
}
