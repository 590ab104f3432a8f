//! The live message counts a transport keeps, cheap to update on every message; a
//! [`MessageCounters`] is a snapshot of them.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::{MAX_COUNTED_PAIRS, MessageCounters, Refusal};

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Message counts, by kind and by sender and receiver, updated without allocating once a
/// pair has been seen.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    by_kind: Map<&'static str, u64>,
    // (sender, receiver, count), found by one hash of both names.
    by_pair: HashTable<(String, String, u64)>,
    hasher: foldhash::fast::RandomState,
    // Messages of pairs beyond the cap, counted under `("*", "*")`.
    other_pairs: u64,
    pub(crate) undelivered: u64,
    rejected: u64,
    refused: BTreeMap<Refusal, u64>,
}

impl Tally {
    /// Counts one message carried.
    pub(crate) fn record(&mut self, kind: &'static str, from: &str, to: &str) {
        *self.by_kind.entry(kind).or_default() += 1;
        let hasher = &self.hasher;
        let hash = hasher.hash_one((from, to));
        if let Some(pair) = self
            .by_pair
            .find_mut(hash, |(f, t, _)| f == from && t == to)
        {
            pair.2 += 1;
        } else if self.by_pair.len() < MAX_COUNTED_PAIRS {
            self.by_pair
                .insert_unique(hash, (from.to_owned(), to.to_owned(), 1), |(f, t, _)| {
                    hasher.hash_one((f.as_str(), t.as_str()))
                });
        } else {
            self.other_pairs += 1;
        }
    }

    /// Counts one message thrown away, and why.
    pub(crate) fn reject(&mut self, why: Refusal) {
        self.rejected += 1;
        *self.refused.entry(why).or_default() += 1;
    }

    /// The counts now.
    pub(crate) fn snapshot(&self) -> MessageCounters {
        let mut by_pair: BTreeMap<(String, String), u64> = self
            .by_pair
            .iter()
            .map(|(f, t, n)| ((f.clone(), t.clone()), *n))
            .collect();
        if self.other_pairs > 0 {
            by_pair.insert(("*".into(), "*".into()), self.other_pairs);
        }
        MessageCounters {
            by_kind: self
                .by_kind
                .iter()
                .map(|(k, n)| ((*k).to_owned(), *n))
                .collect(),
            by_pair,
            undelivered: self.undelivered,
            rejected: self.rejected,
            refused: self.refused.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_past_the_cap_are_counted_together() {
        let mut t = Tally::default();
        for i in 0..MAX_COUNTED_PAIRS + 3 {
            t.record("load", &format!("a{i}"), "b");
        }
        t.record("load", "a0", "b");
        let c = t.snapshot();
        assert_eq!(c.by_kind["load"], MAX_COUNTED_PAIRS as u64 + 4);
        assert_eq!(c.by_pair[&("a0".into(), "b".into())], 2);
        assert_eq!(c.by_pair[&("*".into(), "*".into())], 3);
        assert_eq!(c.by_pair.len(), MAX_COUNTED_PAIRS + 1);
    }
}
