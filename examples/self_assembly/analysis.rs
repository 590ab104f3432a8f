//! Means and 95 % intervals over seeds, drops and recoveries, and the checks of the
//! reproduction (issue 15, item 4; targets.md §1.5).
#![allow(dead_code)] // the test uses part of it

/// Per round: the mean over seeds and the half-width of its 95 % confidence interval.
#[derive(Debug, Clone, Default)]
pub(crate) struct Series {
    pub(crate) mean: Vec<f64>,
    pub(crate) ci: Vec<f64>,
}

impl Series {
    /// Aggregates one series per seed (all of the same length).
    pub(crate) fn of(runs: &[&[f64]]) -> Series {
        let rounds = runs.iter().map(|r| r.len()).min().unwrap_or(0);
        let n = runs.len() as f64;
        let mut s = Series::default();
        for i in 0..rounds {
            let mean = runs.iter().map(|r| r[i]).sum::<f64>() / n;
            let var = if runs.len() > 1 {
                runs.iter().map(|r| (r[i] - mean).powi(2)).sum::<f64>() / (n - 1.0)
            } else {
                0.0
            };
            s.mean.push(mean);
            s.ci.push(t_975(runs.len()) * (var / n).sqrt());
        }
        s
    }

    /// The value at round `round` (numbered from 1).
    pub(crate) fn at(&self, round: u64) -> f64 {
        self.mean[round as usize - 1]
    }

    /// The interval's half-width at round `round`.
    pub(crate) fn ci_at(&self, round: u64) -> f64 {
        self.ci[round as usize - 1]
    }

    /// The mean over rounds `from..=to`.
    pub(crate) fn mean_over(&self, from: u64, to: u64) -> f64 {
        let w = &self.mean[from as usize - 1..to as usize];
        w.iter().sum::<f64>() / w.len() as f64
    }

    /// The lowest value over rounds `from..=to`.
    pub(crate) fn min_over(&self, from: u64, to: u64) -> f64 {
        self.mean[from as usize - 1..to as usize]
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
    }
}

/// Student's t quantile 0.975 for the mean of `n` samples (n − 1 degrees of freedom).
pub(crate) fn t_975(n: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match n {
        0 | 1 => 0.0,
        n if n - 1 <= T.len() => T[n - 2],
        _ => 1.96,
    }
}

/// What a change did to ξ: the mean over the 50 rounds before it, the lowest value in the
/// 10 rounds from it, and how many rounds it took to come back within `tolerance` of the mean
/// before and stay there for `hold` rounds (`None`: not within the run).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Disturbance {
    pub(crate) before: f64,
    pub(crate) lowest: f64,
    /// Rounds from the change until ξ is back within [`TOLERANCE`] for good.
    pub(crate) recovery: Option<u64>,
    /// Rounds from the change until ξ has made up half the drop for good.
    pub(crate) half: Option<u64>,
}

/// Rounds ξ must stay back within the tolerance to count as recovered.
pub(crate) const HOLD: u64 = 20;

/// How far from the level before the change counts as back.
pub(crate) const TOLERANCE: f64 = 0.02;

impl Disturbance {
    /// The disturbance of `xi` by a change before round `change_at`.
    pub(crate) fn of(xi: &Series, change_at: u64) -> Disturbance {
        let last = xi.mean.len() as u64;
        let before = xi.mean_over(change_at.saturating_sub(50).max(1), change_at - 1);
        let lowest = xi.min_over(change_at, (change_at + 10).min(last));
        let back = |r: u64| (xi.at(r) - before).abs() <= TOLERANCE || xi.at(r) >= before;
        let midway = |r: u64| xi.at(r) >= (before + lowest) / 2.0;
        let settled = |ok: &dyn Fn(u64) -> bool| {
            (change_at..=last.saturating_sub(HOLD - 1))
                .find(|&r| (r..r + HOLD).all(ok))
                .map(|r| r - change_at)
        };
        Disturbance {
            before,
            lowest,
            recovery: settled(&back),
            half: settled(&midway),
        }
    }

    /// Whether the change made ξ fall below its level before.
    pub(crate) fn dropped(&self) -> bool {
        self.lowest < self.before
    }
}

/// Whether `a` is above `b` at `round` with the two intervals apart.
pub(crate) fn above(a: &Series, b: &Series, round: u64) -> bool {
    a.at(round) - a.ci_at(round) > b.at(round) + b.ci_at(round)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(v: Vec<f64>) -> Series {
        Series {
            ci: vec![0.0; v.len()],
            mean: v,
        }
    }

    #[test]
    fn recovery_counts_rounds_until_back_for_good() {
        let mut v = vec![0.9; 100];
        v.extend([0.5, 0.6, 0.7, 0.8, 0.85, 0.89, 0.95, 0.8]);
        v.extend(vec![0.9; 40]);
        let d = Disturbance::of(&series(v), 101);
        assert!(d.dropped());
        assert_eq!(d.lowest, 0.5);
        // Back at 0.89 (index 5), but it falls again at 0.8: recovered from index 8 on.
        assert_eq!(d.recovery, Some(8));
        // Half the drop (0.7) is made up at index 2 and stays so.
        assert_eq!(d.half, Some(2));
    }
}
