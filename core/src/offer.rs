//! Offer modes: how a service is offered, and how it is asked for.
//!
//! After the SelfLet papers, an agent offers a service in any combination of four modes: it
//! *can do* it (runs it for whoever asks), *can teach* it (hands over its behaviour and
//! scripted abilities), *knows who can do* it or *knows who can teach* it (answers with a
//! referral to providers it has heard of). The same modes say, in a request, what answers the
//! requester accepts. They travel on the wire, so they live here, below every part that uses
//! them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::value::Value;

/// One way of offering (or asking for) a service, after the SelfLet papers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferMode {
    /// The agent runs the service for whoever asks.
    CanDo,
    /// The agent teaches the service (its behaviour and scripted abilities) to whoever asks.
    CanTeach,
    /// The agent knows who can run the service.
    KnowsWhoCanDo,
    /// The agent knows who can teach the service.
    KnowsWhoCanTeach,
}

impl OfferMode {
    /// Every mode, in preference order for a requester that states none.
    pub const ALL: [OfferMode; 4] = [
        OfferMode::CanDo,
        OfferMode::CanTeach,
        OfferMode::KnowsWhoCanDo,
        OfferMode::KnowsWhoCanTeach,
    ];

    /// The name used in manifests and policies (`can_do`, ...).
    pub fn name(self) -> &'static str {
        match self {
            OfferMode::CanDo => "can_do",
            OfferMode::CanTeach => "can_teach",
            OfferMode::KnowsWhoCanDo => "knows_who_can_do",
            OfferMode::KnowsWhoCanTeach => "knows_who_can_teach",
        }
    }

    /// Parses a name as written in manifests and policies.
    pub fn from_name(name: &str) -> Option<OfferMode> {
        OfferMode::ALL.into_iter().find(|m| m.name() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for OfferMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A combination of [`OfferMode`]s. The paper's `Both` is `CAN_DO | CAN_TEACH`.
///
/// ```
/// use selflet_core::{OfferMode, OfferModes};
///
/// let both = OfferModes::CAN_DO | OfferModes::CAN_TEACH;
/// assert!(both.contains(OfferMode::CanTeach));
/// assert_eq!(both.to_string(), "can_do+can_teach");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(from = "Vec<OfferMode>", into = "Vec<OfferMode>")]
pub struct OfferModes(u8);

impl OfferModes {
    /// Not offered at all.
    pub const NONE: OfferModes = OfferModes(0);
    /// Only [`OfferMode::CanDo`].
    pub const CAN_DO: OfferModes = OfferModes(1);
    /// Only [`OfferMode::CanTeach`].
    pub const CAN_TEACH: OfferModes = OfferModes(2);
    /// Only [`OfferMode::KnowsWhoCanDo`].
    pub const KNOWS_WHO_CAN_DO: OfferModes = OfferModes(4);
    /// Only [`OfferMode::KnowsWhoCanTeach`].
    pub const KNOWS_WHO_CAN_TEACH: OfferModes = OfferModes(8);

    /// Whether a mode is in the set.
    pub fn contains(self, mode: OfferMode) -> bool {
        self.0 & mode.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The modes in the set, in [`OfferMode::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = OfferMode> {
        OfferMode::ALL
            .into_iter()
            .filter(move |m| self.contains(*m))
    }

    /// The set with a mode added.
    pub fn with(self, mode: OfferMode) -> OfferModes {
        OfferModes(self.0 | mode.bit())
    }

    /// The set with a mode removed.
    pub fn without(self, mode: OfferMode) -> OfferModes {
        OfferModes(self.0 & !mode.bit())
    }
}

impl std::ops::BitOr for OfferModes {
    type Output = OfferModes;
    fn bitor(self, rhs: OfferModes) -> OfferModes {
        OfferModes(self.0 | rhs.0)
    }
}

impl From<OfferMode> for OfferModes {
    fn from(m: OfferMode) -> OfferModes {
        OfferModes(m.bit())
    }
}

impl From<Vec<OfferMode>> for OfferModes {
    fn from(v: Vec<OfferMode>) -> OfferModes {
        v.into_iter().fold(OfferModes::NONE, OfferModes::with)
    }
}

impl From<OfferModes> for Vec<OfferMode> {
    fn from(m: OfferModes) -> Vec<OfferMode> {
        m.iter().collect()
    }
}

impl FromIterator<OfferMode> for OfferModes {
    fn from_iter<I: IntoIterator<Item = OfferMode>>(iter: I) -> OfferModes {
        iter.into_iter().fold(OfferModes::NONE, OfferModes::with)
    }
}

impl fmt::Display for OfferModes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, m) in self.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            f.write_str(m.name())?;
        }
        Ok(())
    }
}

impl fmt::Debug for OfferModes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OfferModes({self})")
    }
}

impl From<OfferModes> for Value {
    fn from(m: OfferModes) -> Value {
        Value::List(m.iter().map(|m| Value::from(m.name())).collect())
    }
}
