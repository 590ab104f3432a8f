//! The manifest's YAML as serde sees it: structs that mirror the file, unknown keys refused.
//! Nothing here is checked beyond its shape; `sections.rs` turns it into a [`super::Manifest`].

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

use super::TrustSpec;
use crate::offer::OfferMode;
use crate::source::Ordered;
use crate::value::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManifest {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) goal: Option<String>,
    #[serde(default)]
    pub(super) main: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) behaviours: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) services: Ordered<RawService>,
    #[serde(default)]
    pub(super) requires: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) abilities: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) policies: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) predictors: Vec<RawPredictor>,
    #[serde(default)]
    pub(super) learners: Vec<RawPredictor>,
    #[serde(default)]
    pub(super) attributes: BTreeMap<String, Value>,
    #[serde(default)]
    pub(super) facts: BTreeMap<String, Value>,
    #[serde(default)]
    pub(super) network: RawNetwork,
    #[serde(default)]
    pub(super) trust: TrustSpec,
    #[serde(default)]
    pub(super) negotiation: RawNegotiation,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) security: Option<Spanned<RawSecurity>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    #[serde(default)]
    pub(super) behaviour: Option<Spanned<String>>,
    pub(super) modes: Spanned<Vec<OfferMode>>,
    #[serde(default)]
    pub(super) requires: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) revenue: Option<f64>,
    #[serde(default)]
    pub(super) cost: Option<f64>,
    #[serde(default)]
    pub(super) threshold: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) time_limit: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPredictor {
    pub(super) kind: Spanned<String>,
    #[serde(default)]
    pub(super) name: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) params: BTreeMap<String, Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    #[serde(default)]
    pub(super) neighbours: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) zenoh: Option<Spanned<RawZenoh>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZenoh {
    #[serde(default)]
    pub(super) mode: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) listen: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) connect: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) namespace: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) multicast_scouting: bool,
    #[serde(default)]
    pub(super) max_message_bytes: Option<Spanned<usize>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNegotiation {
    #[serde(default)]
    pub(super) timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) retries: Option<u32>,
    #[serde(default)]
    pub(super) choice: Option<Spanned<Short<RawChoice>>>,
    #[serde(default)]
    pub(super) referral_hops: Option<u32>,
    #[serde(default)]
    pub(super) gossip: Option<Spanned<Short<RawGossip>>>,
    #[serde(default)]
    pub(super) quality: Option<Spanned<Short<RawQuality>>>,
}

/// `choice: name`, or `choice: { kind: name, initial_trust: .., window: .. }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChoice {
    pub(super) kind: String,
    #[serde(default)]
    pub(super) initial_trust: Option<f64>,
    #[serde(default)]
    pub(super) window: Option<u32>,
}

/// `gossip: true`, or `gossip: { period: 1s, fanout: 3, known: 5 }`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGossip {
    #[serde(default)]
    pub(super) period: Option<String>,
    #[serde(default)]
    pub(super) fanout: Option<usize>,
    #[serde(default)]
    pub(super) known: Option<usize>,
}

/// `quality: response_time`, `quality: { response_time: 250ms }` or
/// `quality: { output: field }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuality {
    #[serde(default)]
    pub(super) response_time: Option<String>,
    #[serde(default)]
    pub(super) output: Option<String>,
}

/// A setting written as one word or flag, or in full as a map.
pub(super) enum Short<F> {
    Word(String),
    Flag(bool),
    Full(F),
}

impl<'de, F: Deserialize<'de>> Deserialize<'de> for Short<F> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<F>(std::marker::PhantomData<F>);
        impl<'de, F: Deserialize<'de>> Visitor<'de> for V<F> {
            type Value = Short<F>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a word, `true`, `false`, or a map")
            }
            fn visit_str<E>(self, v: &str) -> Result<Short<F>, E> {
                Ok(Short::Word(v.to_owned()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Short<F>, E> {
                Ok(Short::Flag(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Short<F>, A::Error> {
                F::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Short::Full)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    #[serde(default)]
    pub(super) steps: Option<Spanned<u32>>,
    #[serde(default)]
    pub(super) service_time: Option<Spanned<String>>,
}

/// `security: secure`, or `security: { mode: secure, keys: dir }`.
pub(super) struct RawSecurity {
    pub(super) mode: String,
    pub(super) keys: Option<String>,
}

impl<'de> Deserialize<'de> for RawSecurity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            mode: String,
            #[serde(default)]
            keys: Option<String>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSecurity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`open`, `secure`, or a map with `mode` and `keys`")
            }
            fn visit_str<E>(self, v: &str) -> Result<RawSecurity, E> {
                Ok(RawSecurity {
                    mode: v.to_owned(),
                    keys: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawSecurity, A::Error> {
                let f = Full::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawSecurity {
                    mode: f.mode,
                    keys: f.keys,
                })
            }
        }
        d.deserialize_any(V)
    }
}
