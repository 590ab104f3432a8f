//! What calls and requests give back: outcomes and typed errors.

use std::fmt;
use std::time::Duration;

use crate::behaviour::BehaviourError;
use crate::name::Name;
use crate::source::{LoadError, Located};
use crate::value::Value;

/// What a request obtained, and who gave it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A provider ran the service: its output.
    Done {
        /// The output.
        value: Value,
        /// Who ran it.
        provider: Name,
        /// The agents that referred the request there, in order (empty when asked directly).
        via: Vec<Name>,
    },
    /// The service was taught and installed: it now runs locally.
    Learned {
        /// Who taught it.
        teacher: Name,
        /// The agents that referred the request there, in order.
        via: Vec<Name>,
    },
}

/// Options of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// The longest the whole call may take, retries and referrals included; `None` leaves
    /// each attempt to the agent's negotiation time-out.
    pub timeout: Option<Duration>,
}

/// Why a call or a request did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No provider is known and none answered a discovery.
    #[error("no provider of `{service}` is known or answered")]
    NoProvider {
        /// The service.
        service: String,
    },
    /// Providers were asked and none gave what was asked for; each attempt says why.
    #[error("`{service}`: {}", Attempts(.attempts))]
    Unavailable {
        /// The service.
        service: String,
        /// Every provider asked, in order, and what came of it.
        attempts: Vec<Attempt>,
    },
    /// The call as a whole ran out of its time-out.
    #[error("`{service}` did not complete within {after:?}")]
    TimedOut {
        /// The service.
        service: String,
        /// The call's time-out.
        after: Duration,
    },
    /// The service ran here and failed.
    #[error(transparent)]
    Local(#[from] BehaviourError),
    /// The agent is stopping.
    #[error("the agent is stopping")]
    Stopped,
}

/// One provider asked during a call, and why it did not serve.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The provider.
    pub provider: Name,
    /// What happened.
    pub error: AttemptError,
}

/// Why one provider did not serve a request.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AttemptError {
    /// It refused, for the reason it gave (it does not offer the service in the modes asked,
    /// or cannot teach it).
    #[error("refused: {0}")]
    Refused(String),
    /// It ran the service, which failed, as it reports.
    #[error("failed: {0}")]
    Failed(String),
    /// No reply came within the time-out.
    #[error("no reply within {0:?}")]
    TimedOut(Duration),
    /// The request could not reach it, or it went away with it.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// It taught the service, and the package was not installed.
    #[error(transparent)]
    NotLearned(LearnError),
    /// It answered with something the request did not ask for.
    #[error("answered with {0}, which was not asked for")]
    Unexpected(&'static str),
    /// Teaching was wanted, and this agent does not accept teaching from it.
    #[error("not a teacher this agent trusts")]
    NotTrusted,
    /// Its referral went further than the agent follows.
    #[error("referred the request further than {0} hops")]
    TooManyHops(u32),
}

/// Attempts, as a sentence.
struct Attempts<'a>(&'a [Attempt]);

impl fmt::Display for Attempts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "`{}` {}", a.provider, a.error)?;
        }
        Ok(())
    }
}

impl CallError {
    /// The attempts made, for [`CallError::Unavailable`]; empty otherwise.
    pub fn attempts(&self) -> &[Attempt] {
        match self {
            CallError::Unavailable { attempts, .. } => attempts,
            _ => &[],
        }
    }
}

/// Why a teaching package was not installed. Nothing of it was.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LearnError {
    /// The teacher is not in `trust.teachers`, or what it sent is not proven to come from it.
    #[error("`{teacher}` is not a teacher this agent trusts")]
    Untrusted {
        /// The teacher.
        teacher: String,
    },
    /// The package's behaviour or scripts do not validate: every problem, located in the
    /// taught source.
    #[error("the package does not validate: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Located>),
    /// The package names one behaviour and carries another, or a name that is not one.
    #[error("the package is inconsistent: {0}")]
    Inconsistent(String),
    /// Installing it would replace something the agent has, and no policy allowed an upgrade.
    #[error(
        "it would replace {what} `{name}`, which this agent has (a policy may allow upgrades of what was taught)"
    )]
    Exists {
        /// `behaviour`, `service` or `ability`.
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// The behaviour uses abilities that are neither taught nor installed here.
    #[error("abilities {0:?} are neither taught nor installed here")]
    MissingAbilities(Vec<String>),
}

/// Why a service could not be taught to a neighbour.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TeachError {
    /// The agent does not offer that service.
    #[error("no service `{0}` here")]
    Unknown(String),
    /// It cannot be taught (no behaviour, a native ability, ...).
    #[error("`{service}` cannot be taught: {reason}")]
    NotTeachable {
        /// The service.
        service: String,
        /// Why.
        reason: String,
    },
    /// The lesson could not be sent.
    #[error("the lesson could not be sent: {0}")]
    Send(String),
}

/// Why a learned service could not be forgotten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForgetError {
    /// The agent was not taught a service of that name (its own services are not forgotten).
    #[error("`{0}` was not learned")]
    NotLearned(String),
}

impl From<LoadError> for LearnError {
    fn from(e: LoadError) -> LearnError {
        match e {
            LoadError::Invalid(problems) => LearnError::Invalid(problems),
            // Taught sources are text in memory; nothing is read from a file.
            LoadError::Read { path, source } => {
                LearnError::Inconsistent(format!("cannot read {}: {source}", path.display()))
            }
        }
    }
}
