//! Agent manifests: a YAML file that describes one SelfLet.
//!
//! ```yaml
//! name: agent-a
//! goal: use service1 every two seconds
//! main: main                      # the main behaviour (restarted whenever it ends)
//! behaviours: [main.yaml]         # behaviour files, relative to this manifest
//! abilities: [energy.rhai]         # scripted abilities, relative to this manifest
//! services:                       # what the agent offers, and how
//!   service1: { modes: [can_do, can_teach], requires: [service2] }
//!   service4: { modes: [can_do], revenue: 1.0, cost: 0.2, threshold: 500ms }
//! requires: [service3]            # services it needs from others
//! policies: [teach.rhai]          # policy files, relative to this manifest
//! predictors:
//!   - kind: space_saving
//!     params: { k: 64, min_events: 20, min_support: 0.2 }
//! attributes: { room: kitchen }
//! facts: { threshold: 3 }
//! network:
//!   neighbours: [agent-b]              # agents it talks to (default: any)
//!   zenoh:                             # across processes (`selflet run` uses Zenoh then)
//!     mode: peer                       # or client (through a zenohd router)
//!     listen: [tcp/0.0.0.0:7447]
//!     connect: [tcp/192.168.1.10:7447]
//!     namespace: home                  # keys live under selflet/home/
//!     multicast_scouting: false        # the default: explicit endpoints only
//!     max_message_bytes: 1048576       # larger incoming messages are rejected
//! trust: { teachers: [agent-b] }       # accept teaching only from these (default: anyone)
//! negotiation: { timeout: 5s, retries: 2, choice: least_recently_failed }
//! ```
//!
//! Loading happens in two stages, as everywhere in selflet: serde structs that mirror the
//! YAML (unknown keys rejected), then validation into a [`Manifest`]. Every problem is reported
//! with file, line and column; a manifest with a problem produces no [`Manifest`] at all, so
//! nothing is started from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::knowledge::{Economics, Service};
use crate::name::{NAME_RULE, is_valid_name};
use crate::negotiation::Choice;
use crate::offer::{OfferMode, OfferModes};
use crate::source::{LoadError, SourceFile};
use crate::transport::{Security, ZenohConfig, ZenohMode};
use crate::value::Value;

/// A validated agent manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The agent's name, unique on its network.
    pub name: String,
    /// What the agent is for, in words.
    pub goal: Option<String>,
    /// The main behaviour's name.
    pub main: Option<String>,
    /// Behaviour files, resolved against the manifest's directory.
    pub behaviours: Vec<PathBuf>,
    /// Offered services.
    pub services: Vec<Service>,
    /// Revenue, cost and response-time threshold of the services that declare them.
    pub economics: BTreeMap<String, Economics>,
    /// Services the agent needs from others.
    pub requires: Vec<String>,
    /// Scripted ability files (Rhai), resolved against the manifest's directory.
    pub abilities: Vec<PathBuf>,
    /// Policy files, resolved against the manifest's directory.
    pub policies: Vec<PathBuf>,
    /// Predictors to plug in at start.
    pub predictors: Vec<PredictorSpec>,
    /// Attributes of the agent.
    pub attributes: BTreeMap<String, Value>,
    /// Initial facts.
    pub facts: BTreeMap<String, Value>,
    /// Network settings.
    pub network: NetworkSpec,
    /// Whom the agent accepts teaching from.
    pub trust: TrustSpec,
    /// Whether messages between processes prove their sender (`security: secure`), and where
    /// the keys are.
    pub security: Security,
    /// Time-outs, retries, provider choice.
    pub negotiation: NegotiationSpec,
}

/// Trust settings of a manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSpec {
    /// Agents the agent accepts teaching packages from; absent accepts anyone.
    #[serde(default)]
    pub teachers: Option<Vec<String>>,
}

/// Negotiation settings of a manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NegotiationSpec {
    /// How long to wait for a reply.
    pub timeout: Option<Duration>,
    /// How many other providers to try after a failure.
    pub retries: Option<u32>,
    /// Which known provider to ask.
    pub choice: Option<Choice>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNegotiation {
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default)]
    choice: Option<Choice>,
}

/// A predictor named in a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictorSpec {
    /// The predictor kind, such as `space_saving`.
    pub kind: String,
    /// The instance name (defaults to the kind).
    pub name: String,
    /// Parameters, passed to the predictor kind as given.
    pub params: BTreeMap<String, Value>,
    /// Where its `kind` is written (line, column), for errors found later.
    pub at: (usize, usize),
}

/// Network settings of a manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Agents this one may talk to; empty means any.
    pub neighbours: Vec<String>,
    /// How to reach agents in other processes, if the manifest says.
    pub zenoh: Option<ZenohConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: Spanned<String>,
    #[serde(default)]
    goal: Option<String>,
    #[serde(default)]
    main: Option<Spanned<String>>,
    #[serde(default)]
    behaviours: Vec<Spanned<String>>,
    #[serde(default)]
    services: BTreeMap<String, RawService>,
    #[serde(default)]
    requires: Vec<Spanned<String>>,
    #[serde(default)]
    abilities: Vec<Spanned<String>>,
    #[serde(default)]
    policies: Vec<Spanned<String>>,
    #[serde(default)]
    predictors: Vec<RawPredictor>,
    #[serde(default)]
    attributes: BTreeMap<String, Value>,
    #[serde(default)]
    facts: BTreeMap<String, Value>,
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    trust: TrustSpec,
    #[serde(default)]
    negotiation: RawNegotiation,
    #[serde(default)]
    security: Option<Spanned<RawSecurity>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    #[serde(default)]
    behaviour: Option<String>,
    modes: Spanned<Vec<OfferMode>>,
    #[serde(default)]
    requires: Vec<String>,
    #[serde(default)]
    revenue: Option<f64>,
    #[serde(default)]
    cost: Option<f64>,
    #[serde(default)]
    threshold: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPredictor {
    kind: Spanned<String>,
    #[serde(default)]
    name: Option<Spanned<String>>,
    #[serde(default)]
    params: BTreeMap<String, Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    #[serde(default)]
    neighbours: Vec<Spanned<String>>,
    #[serde(default)]
    zenoh: Option<Spanned<RawZenoh>>,
}

/// `security: secure`, or `security: { mode: secure, keys: dir }`.
struct RawSecurity {
    mode: String,
    keys: Option<String>,
}

impl<'de> Deserialize<'de> for RawSecurity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            mode: String,
            #[serde(default)]
            keys: Option<String>,
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawSecurity;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`open`, `secure`, or a map with `mode` and `keys`")
            }
            fn visit_str<E>(self, v: &str) -> Result<RawSecurity, E> {
                Ok(RawSecurity {
                    mode: v.to_owned(),
                    keys: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawSecurity, A::Error> {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZenoh {
    #[serde(default)]
    mode: Option<Spanned<String>>,
    #[serde(default)]
    listen: Vec<Spanned<String>>,
    #[serde(default)]
    connect: Vec<Spanned<String>>,
    #[serde(default)]
    namespace: Option<Spanned<String>>,
    #[serde(default)]
    multicast_scouting: bool,
    #[serde(default)]
    max_message_bytes: Option<Spanned<usize>>,
}

impl Manifest {
    /// Checks that every predictor names a kind of `kinds` with parameters it accepts, so a
    /// checker can report what would otherwise only fail when the agent spawns.
    pub fn check_predictors(
        &self,
        source: &SourceFile,
        kinds: &crate::prediction::Kinds,
    ) -> Result<(), LoadError> {
        let problems: Vec<_> = self
            .predictors
            .iter()
            .filter_map(|p| {
                let params = Value::Map(p.params.clone());
                kinds
                    .make(&p.kind, &p.name, &params)
                    .err()
                    .map(|e| source.error_at(p.at.0, p.at.1, e.to_string()))
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LoadError::Invalid(problems))
        }
    }

    /// Reads and validates a manifest file. Relative paths in it are resolved against the
    /// file's directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Manifest, LoadError> {
        let path = path.as_ref();
        let source = SourceFile::read(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Manifest::parse(&source, base)
    }

    /// Validates manifest text; `base` is the directory relative paths are resolved against.
    pub fn parse(source: &SourceFile, base: &Path) -> Result<Manifest, LoadError> {
        let raw: RawManifest =
            serde_saphyr::from_str(source.text()).map_err(|e| source.yaml_error(&e))?;
        let mut problems = Vec::new();
        let mut name_ok = |n: &Spanned<String>, what: &str| {
            if !is_valid_name(&n.value) {
                problems.push(source.error_at_location(
                    &n.referenced,
                    format!("invalid {what} name `{}`: {NAME_RULE}", n.value),
                ));
            }
        };
        name_ok(&raw.name, "agent");
        if let Some(m) = &raw.main {
            name_ok(m, "behaviour");
        }
        for r in &raw.requires {
            name_ok(r, "service");
        }
        for n in &raw.network.neighbours {
            name_ok(n, "agent");
        }
        for p in &raw.predictors {
            name_ok(&p.kind, "predictor kind");
            if let Some(n) = &p.name {
                name_ok(n, "predictor");
            }
        }
        let mut files = |list: &[Spanned<String>], what: &str| -> Vec<PathBuf> {
            list.iter()
                .map(|f| {
                    let path = base.join(&f.value);
                    if !path.is_file() {
                        problems.push(source.error_at_location(
                            &f.referenced,
                            format!(
                                "{what} file `{}` not found (looked at {})",
                                f.value,
                                path.display()
                            ),
                        ));
                    }
                    path
                })
                .collect()
        };
        let behaviours = files(&raw.behaviours, "behaviour");
        let abilities = files(&raw.abilities, "ability script");
        let policies = files(&raw.policies, "policy");
        let mut services = Vec::new();
        let mut economics = BTreeMap::new();
        for (name, s) in raw.services {
            if !is_valid_name(&name) {
                problems.push(source.error_at_location(
                    &s.modes.referenced,
                    format!("invalid service name `{name}`: {NAME_RULE}"),
                ));
            }
            let modes: OfferModes = s.modes.value.iter().copied().collect();
            if modes.is_empty() {
                problems.push(source.error_at_location(
                    &s.modes.referenced,
                    format!("service `{name}` needs at least one offer mode (can_do, can_teach, knows_who_can_do, knows_who_can_teach)"),
                ));
            }
            if s.revenue.is_some() || s.cost.is_some() || s.threshold.is_some() {
                let threshold = s.threshold.as_ref().and_then(|t| {
                    crate::duration::parse(&t.value)
                        .map_err(|e| {
                            problems.push(source.error_at_location(&t.referenced, e.to_string()))
                        })
                        .ok()
                        .map(|d| d.as_secs_f64())
                });
                economics.insert(
                    name.clone(),
                    Economics {
                        revenue: s.revenue.unwrap_or(0.0),
                        cost: s.cost.unwrap_or(0.0),
                        threshold,
                    },
                );
            }
            services.push(Service {
                behaviour: Some(s.behaviour.unwrap_or_else(|| name.clone())),
                name,
                modes,
                requires: s.requires,
                time_limit: None,
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        let predictors = raw
            .predictors
            .into_iter()
            .map(|p| {
                let name = p.name.as_ref().unwrap_or(&p.kind);
                if !seen.insert(name.value.clone()) {
                    problems.push(source.error_at_location(
                        &name.referenced,
                        format!(
                            "a predictor named `{}` is already declared; give this one a `name:`",
                            name.value
                        ),
                    ));
                }
                let mut params = p.params;
                // A script or data file named by a predictor is relative to the manifest, like
                // every other path in it.
                if let Some(Value::Str(f)) = params.get_mut("file") {
                    *f = base.join(&*f).display().to_string();
                }
                let at = (
                    p.kind.referenced.line() as usize,
                    p.kind.referenced.column() as usize,
                );
                PredictorSpec {
                    name: name.value.clone(),
                    kind: p.kind.value,
                    params,
                    at,
                }
            })
            .collect();
        let timeout = raw.negotiation.timeout.as_ref().and_then(|t| {
            crate::duration::parse(&t.value)
                .map_err(|e| problems.push(source.error_at_location(&t.referenced, e.to_string())))
                .ok()
        });
        let zenoh = raw.network.zenoh.map(|z| {
            let at = z.referenced;
            let z = z.value;
            let mut config = ZenohConfig::default();
            if let Some(m) = &z.mode {
                match ZenohMode::from_name(&m.value) {
                    Some(mode) => config.mode = mode,
                    None => problems.push(source.error_at_location(
                        &m.referenced,
                        format!("unknown mode `{}`, expected peer or client", m.value),
                    )),
                }
            }
            for e in z.listen.iter().chain(&z.connect) {
                if let Err(msg) = ZenohConfig::check_endpoint(&e.value) {
                    problems.push(source.error_at_location(&e.referenced, msg));
                }
            }
            if let Some(ns) = &z.namespace {
                if let Err(msg) = ZenohConfig::check_namespace(&ns.value) {
                    problems.push(source.error_at_location(&ns.referenced, msg));
                }
                config.namespace.clone_from(&ns.value);
            }
            if let Some(max) = &z.max_message_bytes {
                if max.value == 0 {
                    problems.push(source.error_at_location(
                        &max.referenced,
                        "the largest message size must be above 0",
                    ));
                }
                config.max_message_bytes = max.value;
            }
            if config.mode == ZenohMode::Client && z.connect.is_empty() {
                problems.push(
                    source.error_at_location(&at, "a client needs an endpoint to `connect` to"),
                );
            }
            config.listen = z.listen.into_iter().map(|e| e.value).collect();
            config.connect = z.connect.into_iter().map(|e| e.value).collect();
            config.multicast_scouting = z.multicast_scouting;
            config
        });
        let security =
            match raw.security {
                None => Security::Open,
                Some(s) => match (s.value.mode.as_str(), s.value.keys) {
                    ("open", None) => Security::Open,
                    ("secure", keys) => Security::Secure {
                        keys: base.join(keys.unwrap_or_else(|| "keys".into())),
                    },
                    ("open", Some(_)) => {
                        problems.push(source.error_at_location(
                            &s.referenced,
                            "`keys` belongs to `security: secure`",
                        ));
                        Security::Open
                    }
                    (other, _) => {
                        problems.push(source.error_at_location(
                            &s.referenced,
                            format!("unknown security `{other}`, expected open or secure"),
                        ));
                        Security::Open
                    }
                },
            };
        if !problems.is_empty() {
            return Err(LoadError::Invalid(problems));
        }
        Ok(Manifest {
            name: raw.name.value,
            goal: raw.goal,
            main: raw.main.map(|m| m.value),
            behaviours,
            services,
            economics,
            requires: raw.requires.into_iter().map(|r| r.value).collect(),
            abilities,
            policies,
            predictors,
            attributes: raw.attributes,
            facts: raw.facts,
            network: NetworkSpec {
                neighbours: raw
                    .network
                    .neighbours
                    .into_iter()
                    .map(|n| n.value)
                    .collect(),
                zenoh,
            },
            trust: raw.trust,
            security,
            negotiation: NegotiationSpec {
                timeout,
                retries: raw.negotiation.retries,
                choice: raw.negotiation.choice,
            },
        })
    }
}
