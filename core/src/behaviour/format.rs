//! The YAML format of behaviours, as serde sees it: structs that mirror the file.
//!
//! Nothing here is checked beyond its shape; [`super::validate`] turns these into the model
//! the interpreter runs. Every name and expression keeps its source location (`Spanned`) so
//! that validation errors can point at it.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

pub(crate) use crate::source::Ordered;

use crate::value::Value;

/// One item or a list of them (`do: {..}` or `do: [{..}, {..}]`).
#[derive(Debug, Clone)]
pub(crate) struct OneOrMany<T>(pub(crate) Vec<T>);

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("one item or a list of items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = seq.next_element()? {
                    out.push(x);
                }
                Ok(OneOrMany(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OneOrMany<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|x| OneOrMany(vec![x]))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// The transitions of one trigger: a bare target, one map, or a list of either.
#[derive(Debug, Clone, Default)]
pub(crate) struct Transitions(pub(crate) Vec<RawTransition>);

impl<'de> Deserialize<'de> for Transitions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Read through `Spanned` so that a bare target keeps its location.
        let s: Spanned<TransitionsNode> = Spanned::deserialize(d)?;
        Ok(Transitions(match s.value {
            TransitionsNode::Target(t) => vec![RawTransition {
                target: Spanned::new(t, s.referenced, s.defined),
                guard: None,
                actions: OneOrMany::default(),
                probability: None,
            }],
            TransitionsNode::List(l) => l,
        }))
    }
}

enum TransitionsNode {
    Target(String),
    List(Vec<RawTransition>),
}

impl<'de> Deserialize<'de> for TransitionsNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TransitionsNode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a target state, a transition map, or a list of them")
            }
            fn visit_str<E>(self, v: &str) -> Result<TransitionsNode, E> {
                Ok(TransitionsNode::Target(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TransitionsNode, A::Error> {
                let mut out = Vec::new();
                while let Some(t) = seq.next_element()? {
                    out.push(t);
                }
                Ok(TransitionsNode::List(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TransitionsNode, A::Error> {
                let m = RawTransitionMap::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(TransitionsNode::List(vec![RawTransition {
                    target: m.target,
                    guard: m.guard,
                    actions: m.actions,
                    probability: m.probability,
                }]))
            }
        }
        d.deserialize_any(V)
    }
}

/// A whole behaviour file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBehaviour {
    pub(crate) behaviour: Spanned<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) input: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) output: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) requires: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) vars: Ordered<Value>,
    pub(crate) initial: Spanned<String>,
    pub(crate) states: Ordered<RawState>,
}

/// One state.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawState {
    #[serde(default)]
    pub(crate) entry: OneOrMany<RawAction>,
    #[serde(default, rename = "do")]
    pub(crate) activity: Option<RawAction>,
    #[serde(default)]
    pub(crate) exit: OneOrMany<RawAction>,
    #[serde(default)]
    pub(crate) on: Ordered<Transitions>,
    #[serde(default)]
    pub(crate) after: Ordered<Transitions>,
    #[serde(default)]
    pub(crate) always: Transitions,
    #[serde(default, rename = "final")]
    pub(crate) is_final: bool,
    #[serde(default)]
    pub(crate) output: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) error: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) demand: Option<Spanned<f64>>,
}

/// A transition: a bare target name, or a map with a target, a guard, actions and a
/// probability.
#[derive(Debug, Clone)]
pub(crate) struct RawTransition {
    pub(crate) target: Spanned<String>,
    pub(crate) guard: Option<Spanned<String>>,
    pub(crate) actions: OneOrMany<RawAction>,
    pub(crate) probability: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransitionMap {
    target: Spanned<String>,
    #[serde(default)]
    guard: Option<Spanned<String>>,
    #[serde(default, rename = "do")]
    actions: OneOrMany<RawAction>,
    #[serde(default)]
    probability: Option<Spanned<f64>>,
}

impl<'de> Deserialize<'de> for RawTransition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `Spanned` must see the scalar itself to record where a bare target was written, so
        // the transition is read as `Spanned<TargetOrMap>` and split afterwards.
        let s: Spanned<TargetOrMap> = Spanned::deserialize(d)?;
        Ok(match s.value {
            TargetOrMap::Target(t) => RawTransition {
                target: Spanned::new(t, s.referenced, s.defined),
                guard: None,
                actions: OneOrMany::default(),
                probability: None,
            },
            TargetOrMap::Map(m) => RawTransition {
                target: m.target,
                guard: m.guard,
                actions: m.actions,
                probability: m.probability,
            },
        })
    }
}

enum TargetOrMap {
    Target(String),
    Map(Box<RawTransitionMap>),
}

impl<'de> Deserialize<'de> for TargetOrMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TargetOrMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a target state name or a map with `target` (and `guard`, `do`, `probability`)",
                )
            }
            fn visit_str<E>(self, v: &str) -> Result<TargetOrMap, E> {
                Ok(TargetOrMap::Target(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TargetOrMap, A::Error> {
                // Not `untagged`: serde would buffer the map and lose the locations inside.
                RawTransitionMap::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|m| TargetOrMap::Map(Box::new(m)))
            }
        }
        d.deserialize_any(V)
    }
}

/// An action: exactly one of `call`, `ability`, `set`, `publish`, `log`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAction {
    #[serde(default)]
    pub(crate) call: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) ability: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) args: Option<RawArgs>,
    #[serde(default)]
    pub(crate) save: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) set: Option<Ordered<Spanned<String>>>,
    #[serde(default)]
    pub(crate) publish: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) payload: Option<RawArgs>,
    #[serde(default)]
    pub(crate) log: Option<Spanned<String>>,
}

/// Arguments: one expression, or a map of named expressions.
#[derive(Debug, Clone)]
pub(crate) enum RawArgs {
    Expr(Spanned<String>),
    Map(Ordered<Spanned<String>>),
}

impl<'de> Deserialize<'de> for RawArgs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: Spanned<ArgsOrScalar> = Spanned::deserialize(d)?;
        Ok(match s.value {
            ArgsOrScalar::Map(m) => RawArgs::Map(m),
            ArgsOrScalar::Scalar(v) => RawArgs::Expr(Spanned::new(v, s.referenced, s.defined)),
        })
    }
}

enum ArgsOrScalar {
    Map(Ordered<Spanned<String>>),
    Scalar(String),
}

impl<'de> Deserialize<'de> for ArgsOrScalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ArgsOrScalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an expression or a map of named expressions")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ArgsOrScalar, A::Error> {
                Ordered::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(ArgsOrScalar::Map)
            }
            fn visit_str<E>(self, v: &str) -> Result<ArgsOrScalar, E> {
                Ok(ArgsOrScalar::Scalar(v.to_owned()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<ArgsOrScalar, E> {
                Ok(ArgsOrScalar::Scalar(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<ArgsOrScalar, E> {
                Ok(ArgsOrScalar::Scalar(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<ArgsOrScalar, E> {
                Ok(ArgsOrScalar::Scalar(format!("{v:?}")))
            }
            fn visit_bool<E>(self, v: bool) -> Result<ArgsOrScalar, E> {
                Ok(ArgsOrScalar::Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}
