//! The Space-Saving algorithm (Metwally, Agrawal and El Abbadi, "Efficient computation of
//! frequent and top-k elements in data streams", 2005).
//!
//! `k` counters. An item already monitored has its counter incremented; a new item takes over
//! a counter with the smallest count `min`, starting at `min + 1` with an error of `min`.
//! Every item's estimate over-counts by at most its error, and every error is at most `N/k`.
//!
//! The paper keeps counters in a Stream-Summary (buckets of equal count in a list ordered by
//! count), so that a least-counted counter is at hand in O(1), at the price of moving a counter
//! between buckets on every increment: five or six dependent reads per update. Here an
//! increment is one addition in a vector of counts, and the least-counted counters are found
//! when a replacement needs one: a scan collects every counter at the least count, and
//! replacements use them up one by one, skipping any counted again meanwhile. Counts only grow,
//! so each scan finds a least count at least one above the last, and the least count never
//! exceeds `N/k`: all scans together read at most `N` counts. An update is O(1) amortized, O(k)
//! at worst (the update that scans). Against Stream-Summary on a Zipf(1.1) stream of 10 million
//! items, see `benches/space_saving.rs` and the README's benchmark table.
//!
//! The index holds each item's key beside its counter, so a lookup compares keys without
//! reaching into the counters; a replacement takes the old item out of the index where it was
//! put, with no second lookup. An update allocates nothing beyond cloning a new key twice,
//! which for integers or `Arc<str>` does not allocate.

use std::borrow::Borrow;
use std::cmp::Reverse;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

/// What a counter monitors, and how much its count may over-count.
#[derive(Debug, Clone)]
struct Item<K> {
    key: K,
    // Kept so that the index can drop or move this counter's entry without hashing again.
    hash: u64,
    error: u64,
    // Where the index put the item: taking it out there needs no second lookup. A rehash moves
    // entries, so the place is checked before it is used.
    slot: usize,
}

/// One monitored item: its estimated count and the most that estimate can over-count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate<K> {
    /// The item.
    pub item: K,
    /// Its estimated count (≥ the true count).
    pub count: u64,
    /// The over-estimation bound: the true count is at least `count - error`.
    pub error: u64,
}

/// Space-Saving with `k` counters.
///
/// ```
/// use selflet_plugins::space_saving::SpaceSaving;
///
/// let mut s = SpaceSaving::new(2);
/// for x in [1, 1, 2, 1, 3, 1] {
///     s.update(x);
/// }
/// let top = s.top(1);
/// assert_eq!(top[0].item, 1);
/// assert!(top[0].count - top[0].error <= 4 && 4 <= top[0].count);
/// ```
#[derive(Debug, Clone)]
pub struct SpaceSaving<K> {
    k: usize,
    n: u64,
    // Counter `c` counts `counts[c]` occurrences of `items[c]`.
    counts: Vec<u64>,
    items: Vec<Item<K>>,
    // Counters that were at the least count, `min`, when last looked for: the next ones to be
    // replaced. One counted since then no longer is, and is skipped.
    least: Vec<u32>,
    min: u64,
    // Each item with its counter, by the item's hash.
    index: HashTable<(K, u32)>,
    hasher: foldhash::fast::RandomState,
}

impl<K: Hash + Eq + Clone> SpaceSaving<K> {
    /// A summary with `k` counters (at least 1).
    pub fn new(k: usize) -> SpaceSaving<K> {
        let k = k.clamp(1, u32::MAX as usize);
        SpaceSaving {
            k,
            n: 0,
            counts: Vec::with_capacity(k),
            items: Vec::with_capacity(k),
            least: Vec::new(),
            min: 0,
            // One more than k: a replacement goes in before the item it replaces comes out.
            index: HashTable::with_capacity(k + 1),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// The number of counters.
    pub fn capacity(&self) -> usize {
        self.k
    }

    /// Items seen so far.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// Items monitored now (at most `k`).
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether nothing was seen.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Forgets everything, keeping the memory.
    pub fn clear(&mut self) {
        self.n = 0;
        self.counts.clear();
        self.items.clear();
        self.least.clear();
        self.min = 0;
        self.index.clear();
    }

    /// Counts one occurrence of `item`.
    pub fn update(&mut self, item: K) {
        self.update_by(&item, || item.clone());
    }

    /// Counts one occurrence of a borrowed item, making an owned key only if the item is new
    /// to the summary.
    pub fn update_ref<Q>(&mut self, item: &Q)
    where
        K: Borrow<Q> + for<'a> From<&'a Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.update_by(item, || K::from(item));
    }

    fn update_by<Q>(&mut self, item: &Q, owned: impl FnOnce() -> K)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.n += 1;
        let hash = self.hasher.hash_one(item);
        let items = &self.items;
        let entry = self.index.entry(
            hash,
            |(key, _)| key.borrow() == item,
            |&(_, i)| items[i as usize].hash,
        );
        let vacant = match entry {
            Entry::Occupied(e) => {
                self.counts[e.get().1 as usize] += 1;
                return;
            }
            Entry::Vacant(v) => v,
        };
        let key = owned();
        if self.counts.len() < self.k {
            let c = self.counts.len() as u32;
            let slot = vacant.insert((key.clone(), c)).bucket_index();
            self.items.push(Item {
                key,
                hash,
                error: 0,
                slot,
            });
            self.counts.push(1);
            return;
        }
        // Full: the new item takes over a least-counted counter. It goes into the index where
        // the lookup ended (there is room for one more), then the old item comes out.
        let Some(c) = take_least(&mut self.least, &mut self.min, &self.counts) else {
            return;
        };
        let slot = vacant.insert((key.clone(), c)).bucket_index();
        let x = &mut self.items[c as usize];
        let old = std::mem::replace(&mut x.key, key);
        let old_hash = std::mem::replace(&mut x.hash, hash);
        let old_slot = std::mem::replace(&mut x.slot, slot);
        x.error = self.min;
        self.counts[c as usize] = self.min + 1;
        self.unindex(&old, old_hash, old_slot);
    }

    /// Takes an item out of the index: where it was put if it is still there, else where a
    /// lookup finds it.
    fn unindex(&mut self, key: &K, hash: u64, slot: usize) {
        let entry = match self.index.get_bucket_entry(slot) {
            Ok(e) if e.get().0 == *key => Ok(e),
            _ => self.index.find_entry(hash, |(k, _)| k == key),
        };
        if let Ok(e) = entry {
            e.remove();
        }
    }

    /// The estimate for an item, if it is monitored.
    pub fn get<Q>(&self, item: &Q) -> Option<Estimate<K>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(item);
        self.index
            .find(hash, |(key, _)| key.borrow() == item)
            .map(|&(_, c)| self.estimate(c))
    }

    /// Every monitored item, most counted first (equal counts in the order their counters were
    /// made). Sorts the `k` counters: O(k log k).
    pub fn iter(&self) -> impl Iterator<Item = Estimate<K>> + '_ {
        let mut order: Vec<u32> = (0..self.counts.len() as u32).collect();
        order.sort_by_key(|&c| Reverse(self.counts[c as usize]));
        order.into_iter().map(|c| self.estimate(c))
    }

    /// The `n` most counted items, most counted first.
    pub fn top(&self, n: usize) -> Vec<Estimate<K>> {
        self.iter().take(n).collect()
    }

    /// The items among the top `n` that are guaranteed to be in the true top `n`: those whose
    /// guaranteed count (`count - error`) is at least the estimate of the `n+1`-th item.
    pub fn guaranteed_top(&self, n: usize) -> Vec<Estimate<K>> {
        let all: Vec<_> = self.iter().take(n + 1).collect();
        let next = all.get(n).map_or(0, |e| e.count);
        all.into_iter()
            .take(n)
            .filter(|e| e.count - e.error >= next)
            .collect()
    }

    /// Items whose estimated support (`count / n`) is at least `phi`: every item whose true
    /// support is at least `phi` is among them.
    pub fn frequent(&self, phi: f64) -> Vec<Estimate<K>> {
        let bound = phi * self.n as f64;
        self.iter()
            .take_while(|e| e.count as f64 >= bound)
            .collect()
    }

    /// Items whose guaranteed support (`(count - error) / n`) is at least `phi`: all of them
    /// truly are that frequent.
    pub fn guaranteed_frequent(&self, phi: f64) -> Vec<Estimate<K>> {
        let bound = phi * self.n as f64;
        self.frequent(phi)
            .into_iter()
            .filter(|e| (e.count - e.error) as f64 >= bound)
            .collect()
    }

    fn estimate(&self, c: u32) -> Estimate<K> {
        let x = &self.items[c as usize];
        Estimate {
            item: x.key.clone(),
            count: self.counts[c as usize],
            error: x.error,
        }
    }
}

/// A counter at the least count, taken out of `least`; when none is left there, the counters
/// are scanned for the least count again. `None` only when there are no counters.
#[inline]
fn take_least(least: &mut Vec<u32>, min: &mut u64, counts: &[u64]) -> Option<u32> {
    while let Some(c) = least.pop() {
        if counts[c as usize] == *min {
            return Some(c);
        }
    }
    rescan(least, min, counts)
}

/// Finds the least count and every counter at it, and takes one of them.
#[cold]
#[inline(never)]
fn rescan(least: &mut Vec<u32>, min: &mut u64, counts: &[u64]) -> Option<u32> {
    *min = counts.iter().copied().min()?;
    // Listed last to first so that the first counter made is replaced first. Every counter is
    // written and only those at `min` kept: which ones are is data, not a branch to mispredict
    // (at k = 100, 0.19 mispredicted branches an update in rescans before, 0.02 after).
    // `take_least` calls this only once `least` is empty.
    least.resize(counts.len(), 0);
    let mut kept = 0;
    for (c, &count) in counts.iter().enumerate().rev() {
        least[kept] = c as u32;
        kept += usize::from(count == *min);
    }
    least.truncate(kept);
    least.pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the structure's invariants: the index holds exactly the monitored items, each
    /// where its counter says, counts add up to `n`, every error is below its count, and no
    /// counter is below the least count last found.
    fn check<K: Hash + Eq + Clone + std::fmt::Debug>(s: &SpaceSaving<K>) {
        assert_eq!(s.items.len(), s.len());
        assert_eq!(
            s.index.len(),
            s.len(),
            "the index holds exactly the monitored items"
        );
        for (c, x) in s.items.iter().enumerate() {
            let h = s.hasher.hash_one(&x.key);
            assert_eq!(h, x.hash);
            assert_eq!(
                s.index.find(h, |(k, _)| *k == x.key).map(|e| e.1),
                Some(c as u32)
            );
            assert!(
                x.error < s.counts[c],
                "an estimate is at least one true occurrence"
            );
            assert!(s.counts[c] >= s.min, "a count below the least count");
        }
        for &c in &s.least {
            assert!((c as usize) < s.len());
        }
        let total: u64 = s.counts.iter().sum();
        assert_eq!(total, s.n(), "Space-Saving's counts always add up to n");
    }

    #[test]
    fn exact_while_there_is_room() {
        let mut s = SpaceSaving::new(10);
        for (x, times) in [(1, 5), (2, 3), (3, 1)] {
            for _ in 0..times {
                s.update(x);
                check(&s);
            }
        }
        let top = s.top(3);
        assert_eq!(
            top.iter()
                .map(|e| (e.item, e.count, e.error))
                .collect::<Vec<_>>(),
            [(1, 5, 0), (2, 3, 0), (3, 1, 0)]
        );
    }

    #[test]
    fn replacement_inherits_the_minimum_as_error() {
        let mut s = SpaceSaving::new(2);
        for x in [1, 1, 1, 2, 3] {
            s.update(x);
            check(&s);
        }
        assert_eq!(
            s.get(&3),
            Some(Estimate {
                item: 3,
                count: 2,
                error: 1
            })
        );
        assert_eq!(s.get(&2), None);
        assert_eq!(s.get(&1).map(|e| e.count), Some(3));
    }

    #[test]
    fn among_the_least_counted_the_first_counter_made_is_replaced_first() {
        let mut s = SpaceSaving::new(3);
        for x in [1, 2, 3, 4] {
            s.update(x);
        }
        assert_eq!(s.get(&1), None, "4 took the first counter");
        s.update(5);
        assert_eq!(s.get(&2), None, "then 5 the second");
        assert!(s.get(&3).is_some() && s.get(&4).is_some() && s.get(&5).is_some());
        check(&s);
        // Equal counts list in the order their counters were made: 4, 5, 3.
        let order: Vec<u64> = s.iter().map(|e| e.item).collect();
        assert_eq!(order, [4, 5, 3]);
    }

    #[test]
    fn invariants_hold_on_a_long_mixed_stream() {
        let mut s = SpaceSaving::new(16);
        let mut x: u64 = 7;
        for _ in 0..20_000 {
            // A cheap deterministic stream with repeats and novelties.
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s.update((x >> 33) % 50);
        }
        check(&s);
        s.clear();
        assert!(s.is_empty());
        s.update(1);
        check(&s);
    }

    #[test]
    fn borrowed_keys_make_owned_keys_only_when_new() {
        let mut s: SpaceSaving<std::sync::Arc<str>> = SpaceSaving::new(4);
        s.update_ref("service1");
        s.update_ref("service1");
        s.update_ref("service2");
        assert_eq!(s.get("service1").unwrap().count, 2);
        check(&s);
    }
    #[test]
    fn items_the_index_moved_are_still_taken_out_when_replaced() {
        let mut s = SpaceSaving::new(8);
        for x in 0..8u64 {
            s.update(x);
        }
        // Growing the index moves every entry: every place an item remembers is now stale.
        let items = &s.items;
        s.index.reserve(1000, |&(_, i)| items[i as usize].hash);
        for x in 8..400u64 {
            s.update(x % 37);
            check(&s);
        }
        assert_eq!(s.len(), 8);
    }

    proptest::proptest! {
        /// Space-Saving's guarantees after every update of any stream: each monitored item's
        /// estimate is at least its true count and over-counts by at most its error, which is
        /// at most n/k; every item seen more than n/k times is monitored.
        #[test]
        fn every_update_keeps_the_guarantees(
            k in 1usize..12,
            stream in proptest::collection::vec(0u8..24, 0..300),
        ) {
            let mut s = SpaceSaving::new(k);
            let mut truth = std::collections::HashMap::new();
            for &x in &stream {
                s.update(x);
                *truth.entry(x).or_insert(0u64) += 1;
                check(&s);
            }
            let n = s.n();
            for e in s.iter() {
                let t = truth[&e.item];
                proptest::prop_assert!(e.count >= t && e.count - e.error <= t, "{e:?}, true {t}");
                proptest::prop_assert!(e.error * k as u64 <= n);
            }
            for (x, &t) in &truth {
                if t * k as u64 > n {
                    proptest::prop_assert!(s.get(x).is_some(), "{x} seen {t} of {n} times, not monitored");
                }
            }
        }
    }
}
