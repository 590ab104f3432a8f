//! The dynamic value carried by events, facts, attributes and service inputs.
//!
//! A [`Value`] is what crosses every boundary in a SelfLet: it is the payload of a bus
//! [`Event`](crate::bus::Event), the content of a knowledge fact, the input and output of a
//! service. It converts to and from a Rhai [`Dynamic`] (so policies and behaviours can read
//! and build it) and to and from JSON (so it can cross the wire) without losing the
//! integer/float distinction.

use std::collections::BTreeMap;
use std::fmt;

use litemap::LiteMap;

use rhai::Dynamic;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A dynamically typed value: the payload of events and the content of knowledge.
///
/// Maps keep their keys sorted, so two equal maps print and serialize identically.
/// A map is one sorted vector ([`Map`]): a one-field map is one 56-byte allocation, where a
/// B-tree's first node has eleven slots.
///
/// ```
/// use selflet_core::Value;
///
/// let v = Value::map([("n", Value::from(3)), ("name", Value::from("service1"))]);
/// assert_eq!(v.get("n"), Some(&Value::Int(3)));
/// let json = v.to_json().unwrap();
/// assert_eq!(Value::from_json(json), v);
/// ```
#[derive(Clone, PartialEq, Default)]
pub enum Value {
    /// No value (JSON `null`, Rhai `()`).
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// An ordered list.
    List(Vec<Value>),
    /// A map with string keys, kept in key order.
    Map(Map),
}

/// The map of a [`Value::Map`]: its entries in one vector sorted by key, so a small map (the
/// usual payload or input) costs its entries' size and a lookup is a binary search.
///
/// Built with `collect` (or [`Value::map`]), it sorts once and keeps the last of duplicate
/// keys, as a `BTreeMap` would; inserting keys one at a time into a large map moves the
/// entries after each, so build large maps by collecting.
///
/// ```
/// use selflet_core::value::{Map, Value};
///
/// let m: Map = [("b".to_owned(), Value::Int(2)), ("a".to_owned(), Value::Int(1))]
///     .into_iter()
///     .collect();
/// assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "b"]);
/// ```
pub type Map = LiteMap<String, Value>;

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("Null"),
            Value::Bool(b) => f.debug_tuple("Bool").field(b).finish(),
            Value::Int(i) => f.debug_tuple("Int").field(i).finish(),
            Value::Float(x) => f.debug_tuple("Float").field(x).finish(),
            Value::Str(s) => f.debug_tuple("Str").field(s).finish(),
            Value::List(l) => f.debug_tuple("List").field(l).finish(),
            // As a map, not as the vector inside it.
            Value::Map(m) => f.debug_tuple("Map").field(&DebugMap(m)).finish(),
        }
    }
}

struct DebugMap<'m>(&'m Map);

impl fmt::Debug for DebugMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

/// A Rhai value that has no [`Value`] counterpart (a function pointer, a custom type, ...).
#[derive(Debug, Clone, thiserror::Error)]
#[error("a value of type `{type_name}` cannot leave a script")]
pub struct UnsupportedValue {
    type_name: String,
}

/// A float that JSON cannot represent (NaN or an infinity).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the float {0} has no JSON representation")]
pub struct NonFiniteFloat(pub f64);

impl Value {
    /// Builds a map value from key/value pairs.
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Looks a key up in a map value; `None` for other kinds of value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m.get(key),
            _ => None,
        }
    }

    /// The string inside a `Str` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer inside an `Int` value.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number inside an `Int` or `Float` value, as a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The boolean inside a `Bool` value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A short name for the kind of value, used in error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }

    /// Converts to JSON. Fails only on NaN and infinities, which JSON cannot hold.
    pub fn to_json(&self) -> Result<serde_json::Value, NonFiniteFloat> {
        use serde_json::Value as J;
        Ok(match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => {
                J::Number(serde_json::Number::from_f64(*f).ok_or(NonFiniteFloat(*f))?)
            }
            Value::Str(s) => J::String(s.clone()),
            Value::List(l) => J::Array(l.iter().map(Value::to_json).collect::<Result<_, _>>()?),
            Value::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), v.to_json()?)))
                    .collect::<Result<_, NonFiniteFloat>>()?,
            ),
        })
    }

    /// Converts from JSON. Integers that do not fit an `i64` become floats.
    pub fn from_json(json: serde_json::Value) -> Value {
        use serde_json::Value as J;
        match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::Str(s),
            J::Array(a) => Value::List(a.into_iter().map(Value::from_json).collect()),
            J::Object(o) => Value::Map(
                o.into_iter()
                    .map(|(k, v)| (k, Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Converts to a Rhai value.
    pub fn to_dynamic(&self) -> Dynamic {
        match self {
            Value::Null => Dynamic::UNIT,
            Value::Bool(b) => Dynamic::from_bool(*b),
            Value::Int(i) => Dynamic::from_int(*i),
            Value::Float(f) => Dynamic::from_float(*f),
            Value::Str(s) => Dynamic::from(s.clone()),
            Value::List(l) => Dynamic::from_array(l.iter().map(Value::to_dynamic).collect()),
            Value::Map(m) => Dynamic::from_map(
                m.iter()
                    .map(|(k, v)| (k.as_str().into(), v.to_dynamic()))
                    .collect(),
            ),
        }
    }

    /// Converts from a Rhai value. Characters become one-character strings; function
    /// pointers, custom types and other script-only values are refused.
    pub fn from_dynamic(d: &Dynamic) -> Result<Value, UnsupportedValue> {
        if d.is_unit() {
            return Ok(Value::Null);
        }
        if let Ok(b) = d.as_bool() {
            return Ok(Value::Bool(b));
        }
        if let Ok(i) = d.as_int() {
            return Ok(Value::Int(i));
        }
        if let Ok(f) = d.as_float() {
            return Ok(Value::Float(f));
        }
        if let Ok(c) = d.as_char() {
            return Ok(Value::Str(c.to_string()));
        }
        if d.is_string() {
            return Ok(Value::Str(d.clone().into_string().unwrap_or_default()));
        }
        if d.is_array() {
            let arr = d.read_lock::<rhai::Array>().ok_or_else(|| unsupported(d))?;
            return arr
                .iter()
                .map(Value::from_dynamic)
                .collect::<Result<_, _>>()
                .map(Value::List);
        }
        if d.is_map() {
            let map = d.read_lock::<rhai::Map>().ok_or_else(|| unsupported(d))?;
            return map
                .iter()
                .map(|(k, v)| Ok((k.to_string(), Value::from_dynamic(v)?)))
                .collect::<Result<_, _>>()
                .map(Value::Map);
        }
        Err(unsupported(d))
    }
}

fn unsupported(d: &Dynamic) -> UnsupportedValue {
    UnsupportedValue {
        type_name: d.type_name().to_string(),
    }
}

impl fmt::Display for Value {
    /// Prints the value as JSON (non-finite floats print as Rust does).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                f.write_str("{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k:?}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

macro_rules! from_impls {
    ($($t:ty => $variant:ident as $conv:ty),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::$variant(<$conv>::from(v))
            }
        })*
    };
}

from_impls! {
    bool => Bool as bool,
    i32 => Int as i64,
    i64 => Int as i64,
    u32 => Int as i64,
    f32 => Float as f64,
    f64 => Float as f64,
    String => Str as String,
    &str => Str as String,
}

impl From<()> for Value {
    fn from((): ()) -> Value {
        Value::Null
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Value {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl From<BTreeMap<String, Value>> for Value {
    fn from(m: BTreeMap<String, Value>) -> Value {
        // Already in key order: collecting only appends.
        Value::Map(m.into_iter().collect())
    }
}

impl From<Map> for Value {
    fn from(m: Map) -> Value {
        Value::Map(m)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) => s.serialize_str(v),
            Value::List(l) => {
                let mut seq = s.serialize_seq(Some(l.len()))?;
                for v in l {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Map(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a null, boolean, number, string, list or map")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v).map(Value::Int).map_err(|_| {
            E::custom(format!(
                "integer {v} is larger than the largest int ({})",
                i64::MAX
            ))
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::List(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        // Gathered, then sorted once: inserting one at a time into a sorted vector is
        // quadratic in a peer's (unsorted) map.
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(entry) = map.next_entry::<String, Value>()? {
            out.push(entry);
        }
        Ok(Value::Map(out.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        Value::map([
            ("int", Value::Int(-7)),
            ("float", Value::Float(2.5)),
            ("whole_float", Value::Float(3.0)),
            ("s", Value::from("x")),
            ("list", Value::from(vec![Value::Bool(true), Value::Null])),
            ("nested", Value::map([("k", Value::Int(i64::MAX))])),
        ])
    }

    #[test]
    fn json_round_trip_keeps_int_and_float_apart() {
        let v = sample();
        let json = v.to_json().unwrap();
        assert_eq!(Value::from_json(json.clone()), v);
        let text = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
        assert_eq!(serde_json::to_value(&v).unwrap(), json);
    }

    #[test]
    fn rhai_round_trip_keeps_int_and_float_apart() {
        let v = sample();
        assert_eq!(Value::from_dynamic(&v.to_dynamic()).unwrap(), v);
    }

    #[test]
    fn non_finite_floats_are_refused_by_json_but_kept_by_rhai() {
        let v = Value::Float(f64::INFINITY);
        assert!(v.to_json().is_err());
        assert_eq!(Value::from_dynamic(&v.to_dynamic()).unwrap(), v);
    }

    #[test]
    fn script_only_values_are_refused() {
        let engine = rhai::Engine::new();
        let f: Dynamic = engine.eval("Fn(\"x\")").unwrap();
        assert!(Value::from_dynamic(&f).is_err());
    }
}
