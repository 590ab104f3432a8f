//! Space-Saving against exact counts on Zipf streams, and against the two well-kept peers.

#[path = "support/zipf.rs"]
mod zipf;

use std::collections::HashMap;

use selflet_plugins::space_saving::SpaceSaving;
use zipf::Zipf;

fn exact(stream: &[u64]) -> HashMap<u64, u64> {
    let mut m = HashMap::new();
    for &x in stream {
        *m.entry(x).or_insert(0) += 1;
    }
    m
}

fn true_top(counts: &HashMap<u64, u64>, n: usize) -> Vec<(u64, u64)> {
    let mut v: Vec<_> = counts.iter().map(|(k, c)| (*k, *c)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

#[test]
fn the_error_bound_holds_for_every_item_on_zipf_streams() {
    for (k, s, keys, seed) in [
        (100, 1.1, 10_000, 1),
        (1024, 1.1, 100_000, 2),
        (64, 0.8, 5_000, 3),
        (16, 1.5, 1_000, 4),
    ] {
        let stream = Zipf::new(keys, s, seed).stream(200_000);
        let truth = exact(&stream);
        let mut ss = SpaceSaving::new(k);
        for &x in &stream {
            ss.update(x);
        }
        let n = stream.len() as u64;
        assert_eq!(ss.n(), n);
        let bound = n / k as u64;
        for e in ss.iter() {
            let t = truth[&e.item];
            assert!(
                e.count >= t,
                "k={k}: an estimate never under-counts ({} < {t})",
                e.count
            );
            assert!(
                e.count - e.error <= t,
                "k={k}: count - error is a lower bound"
            );
            assert!(
                e.error <= bound,
                "k={k}: error {} exceeds N/k = {bound}",
                e.error
            );
        }
        // Every item more frequent than N/k is monitored.
        for (item, c) in &truth {
            if *c > bound {
                assert!(
                    ss.get(item).is_some(),
                    "k={k}: item {item} with count {c} > N/k is missing"
                );
            }
        }
        // The guaranteed top items are truly among the top.
        let top10 = true_top(&truth, 10);
        let guaranteed = ss.guaranteed_top(10);
        for g in &guaranteed {
            let rank = true_top(&truth, truth.len())
                .iter()
                .position(|(i, _)| *i == g.item)
                .unwrap();
            assert!(
                rank < 10,
                "k={k}: guaranteed item {} is only {rank}-th",
                g.item
            );
        }
        if k >= 100 {
            let reported: Vec<u64> = ss.top(10).iter().map(|e| e.item).collect();
            for (item, _) in &top10 {
                assert!(
                    reported.contains(item),
                    "k={k}: true top item {item} not in the reported top 10"
                );
            }
        }
    }
}

#[test]
fn frequent_and_guaranteed_frequent_bracket_the_truth() {
    let stream = Zipf::new(1000, 1.2, 9).stream(100_000);
    let truth = exact(&stream);
    let mut ss = SpaceSaving::new(200);
    for &x in &stream {
        ss.update(x);
    }
    let phi = 0.02;
    let n = stream.len() as f64;
    let possible: Vec<u64> = ss.frequent(phi).iter().map(|e| e.item).collect();
    let sure: Vec<u64> = ss.guaranteed_frequent(phi).iter().map(|e| e.item).collect();
    for (item, c) in &truth {
        if *c as f64 >= phi * n {
            assert!(possible.contains(item), "no false negatives: {item}");
        }
    }
    for item in &sure {
        assert!(truth[item] as f64 >= phi * n, "no false positives: {item}");
    }
}

#[test]
fn all_three_implementations_agree_on_the_true_top_items() {
    let stream = Zipf::new(1_000_000, 1.1, 42).stream(1_000_000);
    let truth = exact(&stream);
    let top: Vec<u64> = true_top(&truth, 10).into_iter().map(|(i, _)| i).collect();

    let mut ours = SpaceSaving::new(1024);
    let mut fss = topk::FilteredSpaceSaving::new(1024);
    let mut ds = datasketches::frequencies::FrequentItemsSketch::<u64>::new(2048).unwrap();
    for &x in &stream {
        ours.update(x);
        fss.insert(x, 1);
        ds.update(x);
    }
    let ours_top: Vec<u64> = ours.top(10).into_iter().map(|e| e.item).collect();
    let fss_top: Vec<u64> = fss
        .into_sorted_vec()
        .into_iter()
        .take(10)
        .map(|(i, _)| i)
        .collect();
    let mut ds_rows = ds.frequent_items(datasketches::frequencies::ErrorType::NoFalseNegatives);
    ds_rows.sort_by_key(|r| std::cmp::Reverse(r.estimate()));
    let ds_top: Vec<u64> = ds_rows.iter().take(10).map(|r| *r.item()).collect();
    for (name, got) in [
        ("selflet", &ours_top),
        ("topk", &fss_top),
        ("datasketches", &ds_top),
    ] {
        let mut a = got.clone();
        let mut b = top.clone();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{name} disagrees on the top 10");
    }
}
