//! Why a message from a peer was not accepted, and counters of each reason.
//!
//! Everything that arrives from a peer is checked before it is believed. A message that fails
//! a check is dropped — never half applied — and counted under its reason: by the transport
//! when it fails before any agent sees it ([`MessageCounters`](super::MessageCounters)), by the
//! agent otherwise ([`Refusals`]). `selflet run` prints both in its summary.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Refusal {
    /// Not a selflet envelope, a sender that is not a name, or a message of the wrong kind
    /// for where it came.
    Malformed,
    /// Larger than the transport's limit.
    Oversized,
    /// Not proven to come from its sender, where that is required.
    Unauthenticated,
    /// A copy of a message already received, or too old to tell.
    Replayed,
    /// The receiver's inbox had no room.
    InboxFull,
    /// The sender already had its share of the receiver's inbox.
    Flooding,
    /// A request id the sender has in flight already.
    DuplicateRequest,
    /// The sender has too many requests being served already.
    TooManyInFlight,
    /// A reply nobody waits for, or from an agent that was not asked.
    UnsolicitedReply,
    /// From an agent that is not (or no longer) on the network.
    NotMember,
    /// From an agent this one does not talk to.
    NotNeighbour,
    /// Teaching from a teacher this agent does not trust, or cannot authenticate.
    UntrustedTeacher,
    /// A teaching package that was not asked for (another service, a mode not asked).
    UnaskedPackage,
    /// A teaching package that does not validate or would replace what the agent has.
    BadPackage,
    /// More services, providers or referrals than this agent keeps.
    OverCap,
    /// A load report that is not a finite, non-negative utilization.
    BadLoad,
    /// More agents on the network than the transport keeps track of.
    TooManyMembers,
}

impl Refusal {
    /// Every reason, in a fixed order.
    pub const ALL: [Refusal; 17] = [
        Refusal::Malformed,
        Refusal::Oversized,
        Refusal::Unauthenticated,
        Refusal::Replayed,
        Refusal::InboxFull,
        Refusal::Flooding,
        Refusal::DuplicateRequest,
        Refusal::TooManyInFlight,
        Refusal::UnsolicitedReply,
        Refusal::NotMember,
        Refusal::NotNeighbour,
        Refusal::UntrustedTeacher,
        Refusal::UnaskedPackage,
        Refusal::BadPackage,
        Refusal::OverCap,
        Refusal::BadLoad,
        Refusal::TooManyMembers,
    ];

    /// The snake_case name, as printed in summaries and used as a metric label.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::Oversized => "oversized",
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::Replayed => "replayed",
            Refusal::InboxFull => "inbox_full",
            Refusal::Flooding => "flooding",
            Refusal::DuplicateRequest => "duplicate_request",
            Refusal::TooManyInFlight => "too_many_in_flight",
            Refusal::UnsolicitedReply => "unsolicited_reply",
            Refusal::NotMember => "not_member",
            Refusal::NotNeighbour => "not_neighbour",
            Refusal::UntrustedTeacher => "untrusted_teacher",
            Refusal::UnaskedPackage => "unasked_package",
            Refusal::BadPackage => "bad_package",
            Refusal::OverCap => "over_cap",
            Refusal::BadLoad => "bad_load",
            Refusal::TooManyMembers => "too_many_members",
        }
    }

    fn index(self) -> usize {
        Refusal::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or_default()
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Counters of the messages one agent refused, by reason. Lock-free: counting happens on the
/// path of every message. The counters are made at the first refusal: most agents never
/// refuse anything, and thousands of them would each hold 136 bytes of zeros.
#[derive(Debug, Default)]
pub struct Refusals {
    counts: OnceLock<Box<[AtomicU64; Refusal::ALL.len()]>>,
}

impl Refusals {
    /// Counts one refusal.
    pub fn count(&self, why: Refusal) {
        let counts = self.counts.get_or_init(Box::default);
        counts[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// How many messages were refused for `why`.
    pub fn get(&self, why: Refusal) -> u64 {
        self.counts
            .get()
            .map_or(0, |c| c[why.index()].load(Ordering::Relaxed))
    }

    /// The reasons that occurred, with their counts.
    pub fn snapshot(&self) -> BTreeMap<Refusal, u64> {
        Refusal::ALL
            .into_iter()
            .map(|r| (r, self.get(r)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_read_zero_until_the_first_refusal_and_count_every_one_after() {
        let r = Refusals::default();
        assert_eq!(r.get(Refusal::OverCap), 0);
        assert!(r.snapshot().is_empty());
        r.count(Refusal::OverCap);
        r.count(Refusal::OverCap);
        r.count(Refusal::NotMember);
        assert_eq!(r.get(Refusal::OverCap), 2);
        assert_eq!(
            r.snapshot(),
            BTreeMap::from([(Refusal::NotMember, 1), (Refusal::OverCap, 2)])
        );
    }
}
