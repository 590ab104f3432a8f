//! From the manifest's sections to the settings they give, each checked by the part of
//! selflet it configures: names by [`crate::name`], durations by [`crate::duration`],
//! endpoints by the transport, strategies by negotiation. Every problem is collected, located.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::Spanned;

use super::raw::{
    RawChoice, RawGossip, RawLimits, RawNegotiation, RawPredictor, RawQuality, RawSecurity,
    RawService, RawZenoh, Short,
};
use super::{NegotiationSpec, PredictorSpec};
use crate::behaviour::InstanceLimits;
use crate::choice::{Choice, QualityMetric};
use crate::knowledge::{Economics, Service};
use crate::name::{NAME_RULE, is_valid_name};
use crate::negotiation::GossipConfig;
use crate::offer::{OfferMode, OfferModes};
use crate::source::{Located, Ordered, SourceFile};
use crate::transport::{Security, ZenohConfig, ZenohMode};
use crate::value::Value;

/// Where a spanned value was written, as (line, column).
pub(super) fn at<T>(s: &Spanned<T>) -> (usize, usize) {
    (
        s.referenced.line() as usize,
        s.referenced.column().max(1) as usize,
    )
}

/// The problems found so far in one manifest.
pub(super) struct Check<'a> {
    source: &'a SourceFile,
    base: &'a Path,
    problems: Vec<Located>,
}

type Services = (
    Vec<Service>,
    BTreeMap<String, Economics>,
    BTreeMap<String, (usize, usize)>,
);

impl<'a> Check<'a> {
    pub(super) fn new(source: &'a SourceFile, base: &'a Path) -> Check<'a> {
        Check {
            source,
            base,
            problems: Vec::new(),
        }
    }

    pub(super) fn finish(self) -> Vec<Located> {
        self.problems
    }

    fn at<T>(&mut self, s: &Spanned<T>, message: impl Into<String>) {
        self.problems
            .push(self.source.error_at_location(&s.referenced, message));
    }

    pub(super) fn name(&mut self, n: &Spanned<String>, what: &str) {
        if !is_valid_name(&n.value) {
            self.at(n, format!("invalid {what} name `{}`: {NAME_RULE}", n.value));
        }
    }

    pub(super) fn names(&mut self, list: &[Spanned<String>], what: &str) -> Vec<String> {
        list.iter()
            .map(|n| {
                self.name(n, what);
                n.value.clone()
            })
            .collect()
    }

    pub(super) fn files(&mut self, list: &[Spanned<String>], what: &str) -> Vec<PathBuf> {
        list.iter()
            .map(|f| {
                let path = self.base.join(&f.value);
                if !path.is_file() {
                    let message = format!(
                        "{what} file `{}` not found (looked at {})",
                        f.value,
                        path.display()
                    );
                    self.at(f, message);
                }
                path
            })
            .collect()
    }

    fn duration(&mut self, d: &Spanned<String>) -> Option<Duration> {
        crate::duration::parse(&d.value)
            .map_err(|e| self.at(d, e.to_string()))
            .ok()
    }

    /// Offered services: a service offered to be done or taught is implemented by a
    /// behaviour (of its own name unless it says); one offered only in knows-who modes needs
    /// none.
    pub(super) fn services(&mut self, raw: Ordered<RawService>) -> Services {
        let (mut services, mut economics, mut spans) =
            (Vec::new(), BTreeMap::new(), BTreeMap::new());
        for (name, s) in raw.0 {
            self.name(&name, "service");
            let modes: OfferModes = s.modes.value.iter().copied().collect();
            if modes.is_empty() {
                let message = format!(
                    "service `{}` needs at least one offer mode (can_do, can_teach, knows_who_can_do, knows_who_can_teach)",
                    name.value
                );
                self.at(&s.modes, message);
            }
            if let Some(e) = self.economics(&s) {
                economics.insert(name.value.clone(), e);
            }
            let runs = modes.contains(OfferMode::CanDo) || modes.contains(OfferMode::CanTeach);
            let behaviour = match &s.behaviour {
                Some(b) => {
                    self.name(b, "behaviour");
                    Some(b.value.clone())
                }
                None => runs.then(|| name.value.clone()),
            };
            spans.insert(name.value.clone(), at(&name));
            let time_limit = s.time_limit.as_ref().and_then(|t| self.duration(t));
            services.push(Service {
                behaviour,
                modes,
                requires: self.names(&s.requires, "service"),
                time_limit,
                name: name.value,
            });
        }
        (services, economics, spans)
    }

    fn economics(&mut self, s: &RawService) -> Option<Economics> {
        if s.revenue.is_none() && s.cost.is_none() && s.threshold.is_none() {
            return None;
        }
        let threshold = s
            .threshold
            .as_ref()
            .and_then(|t| self.duration(t))
            .map(|d| d.as_secs_f64());
        Some(Economics {
            revenue: s.revenue.unwrap_or(0.0),
            cost: s.cost.unwrap_or(0.0),
            threshold,
        })
    }

    /// Predictors or learners (`what`): plugins by kind, name and parameters.
    pub(super) fn plugins(&mut self, raw: Vec<RawPredictor>, what: &str) -> Vec<PredictorSpec> {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for p in raw {
            self.name(&p.kind, &format!("{what} kind"));
            let name = p.name.as_ref().unwrap_or(&p.kind);
            if p.name.is_some() {
                self.name(name, what);
            }
            if !seen.insert(name.value.clone()) {
                let message = format!(
                    "a {what} named `{}` is already declared; give this one a `name:`",
                    name.value
                );
                self.at(name, message);
            }
            let mut params = p.params;
            // A script or data file named by a predictor is relative to the manifest, like
            // every other path in it.
            if let Some(Value::Str(f)) = params.get_mut("file") {
                *f = self.base.join(&*f).display().to_string();
            }
            out.push(PredictorSpec {
                name: name.value.clone(),
                at: at(&p.kind),
                kind: p.kind.value,
                params,
            });
        }
        out
    }

    pub(super) fn negotiation(&mut self, raw: &RawNegotiation) -> NegotiationSpec {
        NegotiationSpec {
            timeout: raw.timeout.as_ref().and_then(|t| self.duration(t)),
            retries: raw.retries,
            choice: raw.choice.as_ref().and_then(|c| self.choice(c)),
            referral_hops: raw.referral_hops,
            gossip: raw.gossip.as_ref().and_then(|g| self.gossip(g)),
            quality: raw.quality.as_ref().and_then(|q| self.quality(q)),
        }
    }

    fn choice(&mut self, c: &Spanned<Short<RawChoice>>) -> Option<Choice> {
        let (kind, initial_trust, window) = match &c.value {
            Short::Word(w) => (w.as_str(), None, None),
            Short::Full(f) => (f.kind.as_str(), f.initial_trust, f.window),
            Short::Flag(_) => {
                self.at(c, "`choice` is a strategy's name, or a map with its `kind`");
                return None;
            }
        };
        let Some(choice) = Choice::from_name(kind) else {
            let names: Vec<&str> = Choice::ALL.iter().map(|c| c.name()).collect();
            let message = format!(
                "unknown provider choice `{kind}`, expected one of {}",
                names.join(", ")
            );
            self.at(c, message);
            return None;
        };
        if initial_trust.is_none() && window.is_none() {
            return Some(choice);
        }
        let Some(mut learning) = choice.learning() else {
            self.at(c, format!("`{kind}` takes no `initial_trust` or `window`"));
            return None;
        };
        learning.initial_trust = initial_trust.unwrap_or(learning.initial_trust);
        learning.window = window.unwrap_or(learning.window);
        match learning.check() {
            Ok(()) => Some(choice.with_learning(learning)),
            Err(e) => {
                self.at(c, e);
                None
            }
        }
    }

    fn gossip(&mut self, g: &Spanned<Short<RawGossip>>) -> Option<GossipConfig> {
        let default = RawGossip::default();
        let raw = match &g.value {
            Short::Flag(false) => return None,
            Short::Flag(true) => &default,
            Short::Full(f) => f,
            Short::Word(_) => {
                self.at(
                    g,
                    "`gossip` is `true`, `false`, or a map of `period`, `fanout`, `known`",
                );
                return None;
            }
        };
        let mut config = GossipConfig::default();
        if let Some(p) = &raw.period {
            config.period = crate::duration::parse(p)
                .map_err(|e| self.at(g, e.to_string()))
                .ok()?;
        }
        config.fanout = raw.fanout.unwrap_or(config.fanout);
        config.known = raw.known.unwrap_or(config.known);
        config.check().map_err(|e| self.at(g, e)).ok()?;
        Some(config)
    }

    fn quality(&mut self, q: &Spanned<Short<RawQuality>>) -> Option<QualityMetric> {
        let expected = "`quality` is `response_time`, `{ response_time: <duration> }` or `{ output: <field> }`";
        match &q.value {
            Short::Word(w) if w == "response_time" => Some(QualityMetric::default()),
            Short::Full(RawQuality {
                response_time: Some(t),
                output: None,
            }) => {
                let reference = crate::duration::parse(t)
                    .map_err(|e| self.at(q, e.to_string()))
                    .ok()?;
                if reference.is_zero() {
                    self.at(q, "the reference response time is more than 0");
                    return None;
                }
                Some(QualityMetric::ResponseTime { reference })
            }
            Short::Full(RawQuality {
                response_time: None,
                output: Some(field),
            }) => Some(QualityMetric::Output {
                field: field.clone(),
            }),
            _ => {
                self.at(q, expected);
                None
            }
        }
    }

    pub(super) fn limits(&mut self, raw: &RawLimits) -> InstanceLimits {
        let mut limits = InstanceLimits::default();
        if let Some(steps) = &raw.steps {
            if steps.value == 0 {
                self.at(steps, "`steps` is at least 1");
            }
            limits.steps = steps.value;
        }
        limits.time = raw.service_time.as_ref().and_then(|t| self.duration(t));
        limits
    }

    pub(super) fn zenoh(&mut self, z: Spanned<RawZenoh>) -> ZenohConfig {
        let whole = z.referenced;
        let z = z.value;
        let mut config = ZenohConfig::default();
        if let Some(m) = &z.mode {
            match ZenohMode::from_name(&m.value) {
                Some(mode) => config.mode = mode,
                None => self.at(
                    m,
                    format!("unknown mode `{}`, expected peer or client", m.value),
                ),
            }
        }
        for e in z.listen.iter().chain(&z.connect) {
            if let Err(err) = ZenohConfig::check_endpoint(&e.value) {
                self.at(e, err.to_string());
            }
        }
        if let Some(ns) = &z.namespace {
            if let Err(err) = ZenohConfig::check_namespace(&ns.value) {
                self.at(ns, err.to_string());
            }
            config.namespace.clone_from(&ns.value);
        }
        if let Some(max) = &z.max_message_bytes {
            if max.value == 0 {
                self.at(max, "the largest message size must be above 0");
            }
            config.max_message_bytes = max.value;
        }
        if config.mode == ZenohMode::Client && z.connect.is_empty() {
            self.problems.push(
                self.source
                    .error_at_location(&whole, "a client needs an endpoint to `connect` to"),
            );
        }
        config.listen = z.listen.into_iter().map(|e| e.value).collect();
        config.connect = z.connect.into_iter().map(|e| e.value).collect();
        config.multicast_scouting = z.multicast_scouting;
        config
    }

    /// `security: secure` keeps its keys in `keys` beside the manifest unless it says.
    pub(super) fn security(&mut self, raw: Option<Spanned<RawSecurity>>) -> Security {
        let Some(s) = raw else {
            return Security::Open;
        };
        match (s.value.mode.as_str(), &s.value.keys) {
            ("open", None) => Security::Open,
            ("secure", keys) => Security::Secure {
                keys: self.base.join(keys.as_deref().unwrap_or("keys")),
            },
            ("open", Some(_)) => {
                self.at(&s, "`keys` belongs to `security: secure`");
                Security::Open
            }
            (other, _) => {
                let message = format!("unknown security `{other}`, expected open or secure");
                self.at(&s, message);
                Security::Open
            }
        }
    }
}
