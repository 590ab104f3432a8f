//! The Space-Saving algorithm on the Stream-Summary structure (Metwally, Agrawal and
//! El Abbadi, "Efficient computation of frequent and top-k elements in data streams", 2005).
//!
//! `k` counters. An item already monitored has its counter incremented; a new item takes over
//! the counter with the smallest count `min`, starting at `min + 1` with an error of `min`.
//! Every item's estimate over-counts by at most its error, and every error is at most `N/k`.
//!
//! Stream-Summary keeps counters in buckets of equal count, buckets in a list ordered by
//! count, so that an increment moves one counter to the neighbouring bucket: O(1). Here the
//! lists are indices into vectors allocated once, so an update allocates nothing (beyond
//! cloning a new key twice, which for integers or `Arc<str>` does not allocate).
//!
//! Laid out for the update, which is what a stream pays for: the index holds each item's key
//! beside its counter, so a lookup compares keys without reaching into the counters; the
//! links an increment walks are 12-byte entries apart from the items; a count is kept once, in
//! its bucket; and a replacement takes the old item out of the index where it was put, with no
//! second lookup.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

const NONE: u32 = u32::MAX;

/// A counter's place in the Stream-Summary: its bucket and its neighbours in the bucket's list.
/// Apart from the items, so that the increment every update makes reads 12-byte entries.
#[derive(Debug, Clone, Copy)]
struct Link {
    bucket: u32,
    prev: u32,
    next: u32,
}

/// What a counter monitors, and how much its count may over-count. The count itself is its
/// bucket's.
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

#[derive(Debug, Clone, Copy)]
struct Bucket {
    count: u64,
    // First counter of this bucket's list.
    head: u32,
    // Neighbouring buckets: smaller and larger counts.
    lower: u32,
    higher: u32,
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
    links: Vec<Link>,
    items: Vec<Item<K>>,
    buckets: Vec<Bucket>,
    free_buckets: Vec<u32>,
    min: u32,
    max: u32,
    // Each item with its counter, by the item's hash: a lookup compares keys here, without
    // reaching into the counters.
    index: HashTable<(K, u32)>,
    hasher: foldhash::fast::RandomState,
}

impl<K: Hash + Eq + Clone> SpaceSaving<K> {
    /// A summary with `k` counters (at least 1).
    pub fn new(k: usize) -> SpaceSaving<K> {
        let k = k.clamp(1, NONE as usize - 1);
        SpaceSaving {
            k,
            n: 0,
            links: Vec::with_capacity(k),
            items: Vec::with_capacity(k),
            buckets: Vec::with_capacity(k),
            free_buckets: Vec::with_capacity(k),
            min: NONE,
            max: NONE,
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
        self.links.len()
    }

    /// Whether nothing was seen.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// Forgets everything, keeping the memory.
    pub fn clear(&mut self) {
        self.n = 0;
        self.links.clear();
        self.items.clear();
        self.buckets.clear();
        self.free_buckets.clear();
        self.index.clear();
        self.min = NONE;
        self.max = NONE;
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
                let c = e.get().1;
                self.increment(c);
                return;
            }
            Entry::Vacant(v) => v,
        };
        let key = owned();
        if self.links.len() < self.k {
            let c = self.links.len() as u32;
            let slot = vacant.insert((key.clone(), c)).bucket_index();
            self.items.push(Item {
                key,
                hash,
                error: 0,
                slot,
            });
            self.links.push(Link {
                bucket: NONE,
                prev: NONE,
                next: NONE,
            });
            // A new counter enters with count 1: the lowest bucket if it counts 1, else a new
            // bucket below it.
            let b = if self.min != NONE && self.buckets[self.min as usize].count == 1 {
                self.min
            } else {
                self.new_bucket(1, NONE, self.min)
            };
            self.attach(c, b);
            return;
        }
        // Full: the new item replaces one of the least counted. It goes in where the lookup
        // ended (the index has room for one more), then the old item comes out.
        let Bucket { head: c, count, .. } = self.buckets[self.min as usize];
        let slot = vacant.insert((key.clone(), c)).bucket_index();
        let x = &mut self.items[c as usize];
        let old = std::mem::replace(&mut x.key, key);
        let old_hash = std::mem::replace(&mut x.hash, hash);
        let old_slot = std::mem::replace(&mut x.slot, slot);
        x.error = count;
        self.unindex(&old, old_hash, old_slot);
        self.increment(c);
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

    /// Every monitored item, most counted first.
    pub fn iter(&self) -> impl Iterator<Item = Estimate<K>> + '_ {
        let mut b = self.max;
        let mut c = NONE;
        std::iter::from_fn(move || {
            loop {
                if c != NONE {
                    let out = self.estimate(c);
                    c = self.links[c as usize].next;
                    return Some(out);
                }
                if b == NONE {
                    return None;
                }
                c = self.buckets[b as usize].head;
                b = self.buckets[b as usize].lower;
            }
        })
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
            count: self.buckets[self.links[c as usize].bucket as usize].count,
            error: x.error,
        }
    }

    /// Moves counter `c` from its bucket (count `v`) to the bucket of count `v + 1`.
    fn increment(&mut self, c: u32) {
        let Link {
            bucket: b, next, ..
        } = self.links[c as usize];
        let Bucket {
            count,
            higher,
            head,
            ..
        } = self.buckets[b as usize];
        let alone = next == NONE && head == c;
        if higher != NONE && self.buckets[higher as usize].count == count + 1 {
            self.detach(c);
            self.attach(c, higher);
        } else if alone {
            // The only counter of its bucket: the bucket itself takes the new count, and stays
            // in order because the next bucket counts more than `count + 1`.
            self.buckets[b as usize].count = count + 1;
        } else {
            let nb = self.new_bucket(count + 1, b, higher);
            self.detach(c);
            self.attach(c, nb);
        }
    }

    /// A bucket linked between `lower` and `higher`.
    fn new_bucket(&mut self, count: u64, lower: u32, higher: u32) -> u32 {
        let bucket = Bucket {
            count,
            head: NONE,
            lower,
            higher,
        };
        let b = match self.free_buckets.pop() {
            Some(b) => {
                self.buckets[b as usize] = bucket;
                b
            }
            None => {
                self.buckets.push(bucket);
                (self.buckets.len() - 1) as u32
            }
        };
        if lower == NONE {
            self.min = b;
        } else {
            self.buckets[lower as usize].higher = b;
        }
        if higher == NONE {
            self.max = b;
        } else {
            self.buckets[higher as usize].lower = b;
        }
        b
    }

    fn attach(&mut self, c: u32, b: u32) {
        let head = self.buckets[b as usize].head;
        self.links[c as usize] = Link {
            bucket: b,
            prev: NONE,
            next: head,
        };
        if head != NONE {
            self.links[head as usize].prev = c;
        }
        self.buckets[b as usize].head = c;
    }

    /// Unlinks counter `c` from its bucket, and frees the bucket if it empties.
    fn detach(&mut self, c: u32) {
        let Link {
            bucket: b,
            prev,
            next,
        } = self.links[c as usize];
        if prev == NONE {
            self.buckets[b as usize].head = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next != NONE {
            self.links[next as usize].prev = prev;
        }
        if self.buckets[b as usize].head == NONE {
            let Bucket { lower, higher, .. } = self.buckets[b as usize];
            if lower == NONE {
                self.min = higher;
            } else {
                self.buckets[lower as usize].higher = higher;
            }
            if higher == NONE {
                self.max = lower;
            } else {
                self.buckets[higher as usize].lower = lower;
            }
            self.free_buckets.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the structure's invariants: buckets strictly increasing, counters in the right
    /// bucket, index consistent, counts summing to `n`.
    fn check<K: Hash + Eq + Clone + std::fmt::Debug>(s: &SpaceSaving<K>) {
        let mut b = s.min;
        let mut last = 0;
        let mut total = 0;
        let mut seen = 0;
        while b != NONE {
            let bucket = s.buckets[b as usize];
            assert!(bucket.count > last, "bucket counts increase");
            last = bucket.count;
            let mut c = bucket.head;
            assert_ne!(c, NONE, "no empty bucket is linked");
            let mut prev = NONE;
            while c != NONE {
                let link = s.links[c as usize];
                assert_eq!(link.bucket, b);
                assert_eq!(link.prev, prev, "the list links both ways");
                let x = &s.items[c as usize];
                let h = s.hasher.hash_one(&x.key);
                assert_eq!(h, x.hash);
                assert_eq!(s.index.find(h, |(k, _)| *k == x.key).map(|e| e.1), Some(c));
                assert!(
                    x.error < bucket.count,
                    "an estimate is at least one true occurrence"
                );
                total += bucket.count;
                seen += 1;
                prev = c;
                c = link.next;
            }
            b = bucket.higher;
        }
        assert_eq!(seen, s.len());
        assert_eq!(s.items.len(), s.len());
        assert_eq!(
            s.index.len(),
            s.len(),
            "the index holds exactly the monitored items"
        );
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
