//! The Space-Saving algorithm on the Stream-Summary structure (Metwally, Agrawal and
//! El Abbadi, "Efficient computation of frequent and top-k elements in data streams", 2005).
//!
//! `k` counters. An item already monitored has its counter incremented; a new item takes over
//! the counter with the smallest count `min`, starting at `min + 1` with an error of `min`.
//! Every item's estimate over-counts by at most its error, and every error is at most `N/k`.
//!
//! Stream-Summary keeps counters in buckets of equal count, buckets in a list ordered by
//! count, so that an increment moves one counter to the neighbouring bucket: O(1). Here the
//! lists are indices into two vectors allocated once, so an update allocates nothing (beyond
//! cloning a new key, which for integers or `Arc<str>` does not allocate).

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

const NONE: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Counter<K> {
    key: K,
    // Kept so that the index can drop or move this counter's entry without hashing again.
    hash: u64,
    count: u64,
    error: u64,
    bucket: u32,
    prev: u32,
    next: u32,
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
    counters: Vec<Counter<K>>,
    buckets: Vec<Bucket>,
    free_buckets: Vec<u32>,
    min: u32,
    max: u32,
    // Counter indices by their key's hash: keys live once, in the counters.
    index: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl<K: Hash + Eq + Clone> SpaceSaving<K> {
    /// A summary with `k` counters (at least 1).
    pub fn new(k: usize) -> SpaceSaving<K> {
        let k = k.clamp(1, NONE as usize - 1);
        SpaceSaving {
            k,
            n: 0,
            counters: Vec::with_capacity(k),
            buckets: Vec::with_capacity(k),
            free_buckets: Vec::with_capacity(k),
            min: NONE,
            max: NONE,
            index: HashTable::with_capacity(k),
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
        self.counters.len()
    }

    /// Whether nothing was seen.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// Forgets everything, keeping the memory.
    pub fn clear(&mut self) {
        self.n = 0;
        self.counters.clear();
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
        let counters = &self.counters;
        if let Some(&c) = self
            .index
            .find(hash, |&i| counters[i as usize].key.borrow() == item)
        {
            self.increment(c);
            return;
        }
        if self.counters.len() < self.k {
            let c = self.counters.len() as u32;
            self.counters.push(Counter {
                key: owned(),
                hash,
                count: 1,
                error: 0,
                bucket: NONE,
                prev: NONE,
                next: NONE,
            });
            let counters = &self.counters;
            self.index
                .insert_unique(hash, c, |&i| counters[i as usize].hash);
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
        // Full: the new item replaces one of the least counted.
        let c = self.buckets[self.min as usize].head;
        let old_hash = self.counters[c as usize].hash;
        if let Ok(entry) = self.index.find_entry(old_hash, |&i| i == c) {
            entry.remove();
        }
        let slot = &mut self.counters[c as usize];
        slot.key = owned();
        slot.hash = hash;
        slot.error = slot.count;
        let counters = &self.counters;
        self.index
            .insert_unique(hash, c, |&i| counters[i as usize].hash);
        self.increment(c);
    }

    /// The estimate for an item, if it is monitored.
    pub fn get<Q>(&self, item: &Q) -> Option<Estimate<K>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(item);
        self.index
            .find(hash, |&i| self.counters[i as usize].key.borrow() == item)
            .map(|&c| self.estimate(c))
    }

    /// Every monitored item, most counted first.
    pub fn iter(&self) -> impl Iterator<Item = Estimate<K>> + '_ {
        let mut b = self.max;
        let mut c = NONE;
        std::iter::from_fn(move || {
            loop {
                if c != NONE {
                    let out = self.estimate(c);
                    c = self.counters[c as usize].next;
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
        let x = &self.counters[c as usize];
        Estimate {
            item: x.key.clone(),
            count: x.count,
            error: x.error,
        }
    }

    /// Moves counter `c` from its bucket (count `v`) to the bucket of count `v + 1`.
    fn increment(&mut self, c: u32) {
        let b = self.counters[c as usize].bucket;
        let Bucket { count, higher, .. } = self.buckets[b as usize];
        let alone = self.counters[c as usize].next == NONE && self.buckets[b as usize].head == c;
        self.counters[c as usize].count = count + 1;
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
        let x = &mut self.counters[c as usize];
        x.bucket = b;
        x.prev = NONE;
        x.next = head;
        if head != NONE {
            self.counters[head as usize].prev = c;
        }
        self.buckets[b as usize].head = c;
    }

    /// Unlinks counter `c` from its bucket, and frees the bucket if it empties.
    fn detach(&mut self, c: u32) {
        let Counter {
            bucket: b,
            prev,
            next,
            ..
        } = self.counters[c as usize];
        if prev == NONE {
            self.buckets[b as usize].head = next;
        } else {
            self.counters[prev as usize].next = next;
        }
        if next != NONE {
            self.counters[next as usize].prev = prev;
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
            while c != NONE {
                let x = &s.counters[c as usize];
                assert_eq!(x.bucket, b);
                assert_eq!(x.count, bucket.count);
                let h = s.hasher.hash_one(&x.key);
                assert_eq!(h, x.hash);
                assert_eq!(s.index.find(h, |&i| i == c), Some(&c));
                total += x.count;
                seen += 1;
                c = x.next;
            }
            b = bucket.higher;
        }
        assert_eq!(seen, s.counters.len());
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
}
