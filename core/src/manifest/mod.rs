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
//! learners:                         # choose how a service is composed, window by window
//!   - kind: ucb
//!     name: compose
//!     params:
//!       service: service1
//!       variants: [service1, service1_cached]   # behaviours implementing it
//!       neighbours: [agent-b, agent-c]          # relocate to one, or replicate over several
//!       window: 10s
//!       reward: { best: 10ms, worst: 1s }      # mean response time, normalised, inverted
//!       environment: workload.mix              # labelled values for the classifier
//!       veto: [service1_cached@agent-c]        # compositions never to use
//!       bound: ucb1_tuned                      # ucb1, ucb1_tuned or printed
//!       exploration: 1.0
//!       threshold: 0.2
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
//! security: secure                     # messages between processes prove their sender
//! negotiation:
//!   timeout: 5s
//!   retries: 2
//!   referral_hops: 3
//!   choice: least_recently_failed      # or { kind: two_layer_rl, initial_trust: 0.95, window: 5 }
//!   gossip: { period: 1s, fanout: 3, known: 5 }   # or true; off by default
//!   quality: response_time             # or { response_time: 100ms } or { output: quality }
//! limits: { steps: 10000, service_time: 60s }   # what one behaviour instance may take
//! ```
//!
//! A service offered only in knows-who modes needs no behaviour: the agent answers with
//! referrals from its provider directory.
//!
//! Loading happens in two stages, as everywhere in selflet: serde structs that mirror the
//! YAML (unknown keys rejected), then validation into a [`Manifest`]. Every problem is reported
//! with file, line and column; a manifest with a problem produces no [`Manifest`] at all, so
//! nothing is started from it. What can only be checked with the files it names loaded —
//! its main behaviour exists, each service's behaviour exists, its predictors' kinds and
//! parameters — is checked by [`AgentBuilder::check`](crate::AgentBuilder::check), the same
//! code `spawn` runs, so `selflet check` and `selflet run` cannot disagree.

mod raw;
mod sections;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::behaviour::InstanceLimits;
use crate::choice::{Choice, QualityMetric};
use crate::knowledge::{Economics, Service};
use crate::negotiation::GossipConfig;
use crate::source::{LoadError, Located, SourceFile};
use crate::transport::{Security, ZenohConfig};
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
    /// Learners to plug in at start (see [`crate::prediction::learner`]).
    pub learners: Vec<PredictorSpec>,
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
    /// What one behaviour instance may take.
    pub limits: InstanceLimits,
    /// The manifest's text, and where in it what is checked later was written.
    pub(crate) origin: Origin,
}

/// Where a manifest came from: its text, and the places later checks point at.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) source: SourceFile,
    /// Where `main` is written.
    pub(crate) main: Option<(usize, usize)>,
    /// Where each service's name is written.
    pub(crate) services: BTreeMap<String, (usize, usize)>,
}

impl Origin {
    /// A problem at `at` (line, column), or at the top of the file.
    pub(crate) fn error(&self, at: Option<(usize, usize)>, message: String) -> Located {
        let (line, column) = at.unwrap_or((1, 1));
        self.source.error_at(line, column, message)
    }
}

/// Trust settings of a manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSpec {
    /// Agents the agent accepts teaching packages from; absent accepts any agent its
    /// transport authenticates.
    #[serde(default)]
    pub teachers: Option<Vec<String>>,
}

/// Negotiation settings of a manifest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NegotiationSpec {
    /// How long to wait for a reply.
    pub timeout: Option<Duration>,
    /// How many other providers to try after a failure.
    pub retries: Option<u32>,
    /// Which known provider to ask.
    pub choice: Option<Choice>,
    /// How many referrals in a row a request follows.
    pub referral_hops: Option<u32>,
    /// Gossip of provider knowledge, if on.
    pub gossip: Option<GossipConfig>,
    /// How the quality of a call is measured.
    pub quality: Option<QualityMetric>,
}

/// A predictor or learner named in a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictorSpec {
    /// The kind, such as `space_saving` or `ucb`.
    pub kind: String,
    /// The instance name (defaults to the kind).
    pub name: String,
    /// Parameters, passed to the kind as given (a learner's agent reads its own first).
    pub params: BTreeMap<String, Value>,
    /// Where its `kind` is written (line, column), for errors found later.
    pub at: (usize, usize),
}

/// Network settings of a manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSpec {
    /// The agent's neighbourhood; empty means every agent.
    pub neighbours: Vec<String>,
    /// How to reach agents in other processes, if the manifest says.
    pub zenoh: Option<ZenohConfig>,
}

impl Manifest {
    /// Reads and validates a manifest file. Relative paths in it are resolved against the
    /// file's directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Manifest, LoadError> {
        let path = path.as_ref();
        let source = SourceFile::read(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Manifest::parse(&source, base)
    }

    /// Validates manifest text; `base` is the directory relative paths are resolved against.
    /// Each section is read, and checked by the part of selflet it configures.
    pub fn parse(source: &SourceFile, base: &Path) -> Result<Manifest, LoadError> {
        let raw: raw::RawManifest =
            crate::source::from_yaml(source.text()).map_err(|e| source.yaml_error(&e))?;
        let mut c = sections::Check::new(source, base);
        c.name(&raw.name, "agent");
        let main = raw.main.as_ref().map(|m| {
            c.name(m, "behaviour");
            m.value.clone()
        });
        let requires = c.names(&raw.requires, "service");
        let behaviours = c.files(&raw.behaviours, "behaviour");
        let abilities = c.files(&raw.abilities, "ability script");
        let policies = c.files(&raw.policies, "policy");
        let (services, economics, service_spans) = c.services(raw.services);
        let predictors = c.plugins(raw.predictors, "predictor");
        let learners = c.plugins(raw.learners, "learner");
        let network = NetworkSpec {
            neighbours: c.names(&raw.network.neighbours, "agent"),
            zenoh: raw.network.zenoh.map(|z| c.zenoh(z)),
        };
        let negotiation = c.negotiation(&raw.negotiation);
        let limits = c.limits(&raw.limits);
        let security = c.security(raw.security);
        let problems = c.finish();
        if !problems.is_empty() {
            return Err(LoadError::Invalid(problems));
        }
        let origin = Origin {
            source: source.clone(),
            main: raw.main.as_ref().map(sections::at),
            services: service_spans,
        };
        Ok(Manifest {
            name: raw.name.value,
            goal: raw.goal,
            main,
            behaviours,
            services,
            economics,
            requires,
            abilities,
            policies,
            predictors,
            learners,
            attributes: raw.attributes,
            facts: raw.facts,
            network,
            trust: raw.trust,
            security,
            negotiation,
            limits,
            origin,
        })
    }
}
