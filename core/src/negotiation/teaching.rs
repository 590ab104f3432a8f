//! Teaching and learning: packages out, packages in — whole or not at all.
//!
//! A package is code from a peer. It is accepted only from a teacher this agent trusts and
//! whose messages its transport authenticates, only in answer to a request that asked to be
//! taught that very service (checked by the requester) or as a lesson. It is validated whole —
//! behaviour, scripts, the abilities the behaviour needs, and that it replaces nothing the
//! agent has — before anything of it is installed; then it is installed in one go, the
//! service last, so nothing can call it half installed. A later lesson may replace what an
//! earlier one taught only if a policy allowed upgrades of that service; native abilities and
//! the agent's own behaviours and services are never replaced.

use super::{ForgetError, LearnError, Negotiator, TeachError};
use crate::behaviour::Behaviour;
use crate::knowledge::{Learned, Service};
use crate::name::is_valid_name;
use crate::offer::OfferModes;
use crate::source::SourceFile;
use crate::topic;
use crate::transport::{Message, Refusal, TeachingPackage};

/// How many script files one package may carry.
pub const MAX_PACKAGE_SCRIPTS: usize = 32;

impl Negotiator {
    /// Whether this agent accepts teaching from `agent`: its transport authenticates the
    /// agent, and `trust.teachers` lists it (or lists no one).
    pub(super) fn trusts_teacher(&self, agent: &str) -> bool {
        self.transport.authenticates(agent)
            && self
                .config
                .teachers
                .as_ref()
                .is_none_or(|t| t.iter().any(|a| a == agent))
    }

    /// The teaching package of a service: its behaviour's source and the scripts of the
    /// abilities it uses. A service that needs a native ability cannot be taught.
    pub(super) fn package(&self, offer: &Service) -> Result<TeachingPackage, String> {
        let name = offer.behaviour.clone().ok_or("it has no behaviour here")?;
        let b = self
            .behaviours
            .get(&name)
            .ok_or_else(|| format!("behaviour `{name}` is not installed"))?;
        let mut scripts: Vec<(String, String)> = Vec::new();
        for a in b.abilities() {
            let script = self
                .abilities
                .script_of(&a)
                .ok_or_else(|| format!("ability `{a}` is native code, which is never taught"))?;
            let entry = (
                script.source().name().to_owned(),
                script.source().text().to_owned(),
            );
            if !scripts.contains(&entry) {
                scripts.push(entry);
            }
        }
        Ok(TeachingPackage {
            service: offer.name.clone(),
            behaviour: name,
            behaviour_source: b.source().text().to_owned(),
            scripts,
            requires: b.requires().to_vec(),
        })
    }

    /// Validates a taught service whole, then installs it, offered in `offer`. A package that
    /// fails any check installs nothing.
    pub(super) async fn learn(
        &self,
        pkg: TeachingPackage,
        teacher: &str,
        offer: OfferModes,
    ) -> Result<(), LearnError> {
        if !self.trusts_teacher(teacher) {
            return Err(LearnError::Untrusted {
                teacher: teacher.to_owned(),
            });
        }
        let checked = self.check_package(pkg, teacher)?;
        self.install_package(checked, teacher, offer).await;
        Ok(())
    }

    /// Everything that can be wrong with a package, found before anything is installed.
    fn check_package(&self, pkg: TeachingPackage, teacher: &str) -> Result<Checked, LearnError> {
        let inconsistent = |m: String| Err(LearnError::Inconsistent(m));
        if !is_valid_name(&pkg.service) || !is_valid_name(&pkg.behaviour) {
            return inconsistent("its service or behaviour is not a valid name".into());
        }
        if pkg.scripts.len() > MAX_PACKAGE_SCRIPTS {
            return inconsistent(format!(
                "it carries more than {MAX_PACKAGE_SCRIPTS} scripts"
            ));
        }
        if pkg.requires.iter().any(|r| !is_valid_name(r)) {
            return inconsistent("it requires a service that is not a valid name".into());
        }
        let source = SourceFile::new(
            format!("{} (taught by {teacher})", pkg.behaviour),
            pkg.behaviour_source,
        );
        let behaviour = Behaviour::parse(source)?;
        if behaviour.name() != pkg.behaviour {
            return inconsistent(format!(
                "it names behaviour `{}` but carries `{}`",
                pkg.behaviour,
                behaviour.name()
            ));
        }
        let mut scripts = Vec::new();
        for (name, text) in pkg.scripts {
            let source = SourceFile::new(format!("{name} (taught by {teacher})"), text);
            scripts.push(self.abilities.prepare(source)?);
        }
        let checked = Checked {
            service: pkg.service,
            behaviour,
            scripts,
            requires: pkg.requires,
        };
        self.check_replaces_nothing(&checked)?;
        let taught: Vec<&String> = checked.scripts.iter().flat_map(|s| s.names()).collect();
        let missing: Vec<String> = checked
            .behaviour
            .abilities()
            .into_iter()
            .filter(|a| !taught.contains(&a) && !self.abilities.contains(a))
            .collect();
        if !missing.is_empty() {
            return Err(LearnError::MissingAbilities(missing));
        }
        Ok(checked)
    }

    /// A package never replaces what the agent has — except, with a policy's leave, what an
    /// earlier lesson of the same service installed.
    fn check_replaces_nothing(&self, c: &Checked) -> Result<(), LearnError> {
        let earlier = self
            .knowledge
            .upgrade_allowed(&c.service)
            .then(|| self.knowledge.learned_service(&c.service))
            .flatten();
        let exists = |what: &'static str, name: &str| {
            Err(LearnError::Exists {
                what,
                name: name.to_owned(),
            })
        };
        if self.knowledge.service(&c.service).is_some() && earlier.is_none() {
            return exists("service", &c.service);
        }
        let own_behaviour = earlier
            .as_ref()
            .is_some_and(|e| e.behaviour == c.behaviour.name());
        if self.behaviours.get(c.behaviour.name()).is_some() && !own_behaviour {
            return exists("behaviour", c.behaviour.name());
        }
        for name in c.scripts.iter().flat_map(|s| s.names()) {
            let taught_before = earlier.as_ref().is_some_and(|e| e.abilities.contains(name));
            if self.abilities.contains(name) && !taught_before {
                return exists("ability", name);
            }
        }
        Ok(())
    }

    /// Installs a checked package: abilities, then the behaviour, then the service.
    async fn install_package(&self, c: Checked, teacher: &str, offer: OfferModes) {
        let previous = self.knowledge.learned_service(&c.service);
        let mut abilities = Vec::new();
        for s in c.scripts {
            abilities.extend(self.abilities.install(s));
        }
        for r in &c.requires {
            self.knowledge.require(r);
        }
        let behaviour = c.behaviour.name().to_owned();
        self.behaviours.install(c.behaviour);
        let learned = Learned {
            teacher: teacher.to_owned(),
            at: tokio::time::Instant::now(),
            behaviour: behaviour.clone(),
            abilities,
            upgrades: previous.as_ref().map_or(0, |p| p.upgrades + 1),
        };
        self.knowledge.record_learned(&c.service, learned);
        self.knowledge
            .offer(Service {
                name: c.service.clone(),
                behaviour: Some(behaviour),
                modes: offer,
                requires: c.requires,
                time_limit: None,
            })
            .await;
        let event = topic::ServiceLearned {
            service: c.service.clone(),
            teacher: teacher.to_owned(),
            upgrade: previous.is_some(),
        };
        let _ = self.bus.emit(&event).await;
        if let Some(p) = &previous {
            self.drop_unused(p);
        }
        match previous {
            Some(p) => {
                tracing::info!(agent = %self.agent, service = %c.service, %teacher, previous_teacher = %p.teacher, "service upgraded")
            }
            None => {
                tracing::info!(agent = %self.agent, service = %c.service, %teacher, "service learned")
            }
        }
    }

    /// A lesson: a service taught unasked, by a provider shedding load, to be offered can-do
    /// so that its redirected requests are served.
    pub(super) async fn on_lesson(&self, from: &str, pkg: TeachingPackage, verified: bool) {
        let service = pkg.service.clone();
        if !verified || !self.trusts_teacher(from) {
            self.refuse(Refusal::UntrustedTeacher, from, "lesson");
            let why = if verified {
                "not a teacher this agent trusts"
            } else {
                "its sender is not authenticated (teaching across processes needs `security: secure`)"
            };
            tracing::warn!(agent = %self.agent, %service, teacher = %from, "lesson refused: {why}");
            return;
        }
        if let Err(e) = self.learn(pkg, from, OfferModes::CAN_DO).await {
            self.refuse(Refusal::BadPackage, from, "lesson");
            tracing::warn!(agent = %self.agent, %service, teacher = %from, "lesson refused: {e}");
        }
    }

    /// Teaches `service` to `neighbour` unasked (to shed load on it); it will offer it can-do.
    pub(crate) async fn teach(&self, service: &str, neighbour: &str) -> Result<(), TeachError> {
        let offer = self
            .knowledge
            .service(service)
            .ok_or_else(|| TeachError::Unknown(service.to_owned()))?;
        let pkg = self
            .package(&offer)
            .map_err(|reason| TeachError::NotTeachable {
                service: service.to_owned(),
                reason,
            })?;
        self.transport
            .send(self.envelope(neighbour, 0, Message::Lesson(Box::new(pkg))))
            .map_err(|e| TeachError::Send(e.to_string()))?;
        let event = topic::ServiceTaught {
            service: service.to_owned(),
            learner: neighbour.to_owned(),
        };
        let _ = self.bus.emit(&event).await;
        tracing::info!(agent = %self.agent, %service, learner = %neighbour, "service taught unasked");
        Ok(())
    }

    /// Forgets a learned service: the service, its behaviour and the abilities its lesson
    /// installed (those no other learned service uses).
    pub(crate) async fn forget(&self, service: &str) -> Result<Learned, ForgetError> {
        let learned = self
            .knowledge
            .forget_learned(service)
            .ok_or_else(|| ForgetError::NotLearned(service.to_owned()))?;
        self.knowledge.withdraw(service).await;
        self.drop_unused(&learned);
        let event = topic::ServiceForgotten {
            service: service.to_owned(),
            teacher: learned.teacher.clone(),
        };
        let _ = self.bus.emit(&event).await;
        tracing::info!(agent = %self.agent, %service, teacher = %learned.teacher, "service forgotten");
        Ok(learned)
    }

    /// Removes what a lesson installed that no lesson the agent keeps uses any more: after a
    /// service is forgotten, or upgraded to another behaviour (so that teaching the earlier
    /// one again is an upgrade like any other, not a clash with its leftovers).
    fn drop_unused(&self, lesson: &Learned) {
        let kept = self.knowledge.learned();
        if !kept.values().any(|l| l.behaviour == lesson.behaviour) {
            self.behaviours.remove(&lesson.behaviour);
        }
        for a in &lesson.abilities {
            if !kept.values().any(|l| l.abilities.contains(a)) {
                self.abilities.remove(a);
            }
        }
    }
}

/// A package that passed every check, ready to install.
struct Checked {
    service: String,
    behaviour: Behaviour,
    scripts: Vec<crate::ability::Prepared>,
    requires: Vec<String>,
}
