//! What the emergent-composition runs mean: the ground truth (every composition measured in
//! every phase), the learner's share of windows on the optimum, its regret, and how its
//! convergence grows with the number of compositions. Shared by the example and its test.

use std::path::Path;

use selflet::Value;

use crate::check::Check;
use crate::scenario::{self, PHASES, Setup, Trace};

/// Windows at the start of each ground-truth phase left out of its mean: the switch into the
/// composition and the backlog the previous phase left.
const SETTLE: usize = 2;
/// A learner has converged at the first window on the optimum from which it stays on it in
/// at least 90 % of the next [`SETTLED_SPAN`] windows (a lone re-exploration is not a
/// relapse).
pub(crate) const SETTLED_SPAN: usize = 20;

/// Every composition's mean reward in every phase, each measured alone.
#[derive(Debug, Clone)]
pub(crate) struct GroundTruth {
    pub(crate) compositions: Vec<String>,
    /// `means[c][p]`: composition c's mean reward in phase p.
    pub(crate) means: Vec<[f64; 3]>,
    /// `errors[c][p]`: the standard error of that mean.
    pub(crate) errors: Vec<[f64; 3]>,
}

impl GroundTruth {
    /// The composition with the highest mean reward in `phase`.
    pub(crate) fn optimum(&self, phase: usize) -> usize {
        (0..self.compositions.len())
            .max_by(|&a, &b| self.means[a][phase].total_cmp(&self.means[b][phase]))
            .unwrap_or(0)
    }

    /// The compositions the ground truth cannot tell from the optimum of `phase`, by name:
    /// each one whose mean is within two standard errors of the difference from the
    /// optimum's.
    pub(crate) fn optimal(&self, phase: usize) -> Vec<&str> {
        let best = self.optimum(phase);
        let (m, e) = (self.means[best][phase], self.errors[best][phase]);
        (0..self.compositions.len())
            .filter(|&c| {
                let d = m - self.means[c][phase];
                d <= 2.0 * (e * e + self.errors[c][phase].powi(2)).sqrt()
            })
            .map(|c| self.compositions[c].as_str())
            .collect()
    }

    /// The mean reward of the composition named `name` in `phase` (0 if unknown).
    pub(crate) fn mean(&self, name: &str, phase: usize) -> f64 {
        self.compositions
            .iter()
            .position(|c| c == name)
            .map_or(0.0, |i| self.means[i][phase])
    }

    /// The best and second-best rewards of `phase`, and the relative gap between them.
    pub(crate) fn runner_up_gap(&self, phase: usize) -> (usize, f64) {
        let best = self.optimum(phase);
        let second = (0..self.compositions.len())
            .filter(|&c| c != best)
            .max_by(|&a, &b| self.means[a][phase].total_cmp(&self.means[b][phase]))
            .unwrap_or(best);
        let b = self.means[best][phase];
        (second, (b - self.means[second][phase]) / b.max(1e-12))
    }
}

/// Measures every composition in every phase: one run per composition with the others
/// vetoed, all at once on the same (paused) clock.
pub(crate) async fn ground_truth(
    root: &Path,
    compositions: &[String],
    windows: u64,
    seed: u64,
) -> Result<GroundTruth, Box<dyn std::error::Error>> {
    let runs = compositions.iter().map(|c| {
        let setup = Setup {
            schedule: (0..PHASES.len()).map(|p| (p, windows)).collect(),
            allowed: Some(vec![c.clone()]),
            seed,
        };
        async move { scenario::run(root, &setup).await.map_err(|e| e.to_string()) }
    });
    let traces = futures_util::future::join_all(runs).await;
    let (mut means, mut errors) = (Vec::new(), Vec::new());
    for t in traces {
        let t = t?;
        let (mut m, mut e) = ([0.0; 3], [0.0; 3]);
        for p in 0..PHASES.len() {
            let r: Vec<f64> = t
                .windows
                .iter()
                .filter(|w| w.segment == p)
                .skip(SETTLE)
                .map(|w| w.reward.unwrap_or(0.0))
                .collect();
            let n = r.len().max(1) as f64;
            m[p] = r.iter().sum::<f64>() / n;
            let var = r.iter().map(|x| (x - m[p]).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
            e[p] = (var / n).sqrt();
        }
        means.push(m);
        errors.push(e);
    }
    Ok(GroundTruth {
        compositions: compositions.to_vec(),
        means,
        errors,
    })
}

/// How the learner did in one segment of its schedule.
#[derive(Debug, Clone)]
pub(crate) struct SegmentResult {
    pub(crate) phase: usize,
    pub(crate) windows: usize,
    /// Windows after exploration (those counted).
    pub(crate) counted: usize,
    /// Of those, on the ground-truth optimum or a composition it cannot tell from it.
    pub(crate) on_optimum: usize,
    /// Of those, on the optimum itself.
    pub(crate) on_best: usize,
    /// Mean reward after exploration.
    pub(crate) mean_reward: f64,
    /// Compositions picked after exploration that are not optimal, with counts.
    pub(crate) off: Vec<(String, usize)>,
}

impl SegmentResult {
    pub(crate) fn share(&self) -> f64 {
        self.on_optimum as f64 / self.counted.max(1) as f64
    }
}

/// A learning run judged against the ground truth.
#[derive(Debug, Clone)]
pub(crate) struct Learning {
    pub(crate) trace: Trace,
    pub(crate) segments: Vec<SegmentResult>,
    /// Cumulative pseudo-regret per window: the optimum's ground-truth reward minus that of
    /// the composition in force.
    pub(crate) regret: Vec<f64>,
}

/// Judges `trace` (run with `schedule`): a segment's first `explore` windows are its
/// exploration (`revisit` for a phase seen before, whose table is reused).
pub(crate) fn evaluate(
    trace: Trace,
    schedule: &[(usize, u64)],
    gt: &GroundTruth,
    explore: usize,
    revisit: usize,
) -> Learning {
    let mut segments = Vec::new();
    let mut seen = Vec::new();
    for (s, &(phase, _)) in schedule.iter().enumerate() {
        let skip = if seen.contains(&phase) {
            revisit
        } else {
            explore
        };
        seen.push(phase);
        let opt = &gt.compositions[gt.optimum(phase)];
        let optimal = gt.optimal(phase);
        let ws: Vec<_> = trace.windows.iter().filter(|w| w.segment == s).collect();
        let after: Vec<_> = ws.iter().skip(skip).collect();
        let mut off: Vec<(String, usize)> = Vec::new();
        for w in after
            .iter()
            .filter(|w| !optimal.contains(&w.composition.as_str()))
        {
            match off.iter_mut().find(|(c, _)| *c == w.composition) {
                Some((_, n)) => *n += 1,
                None => off.push((w.composition.clone(), 1)),
            }
        }
        off.sort_by_key(|o| std::cmp::Reverse(o.1));
        segments.push(SegmentResult {
            phase,
            windows: ws.len(),
            counted: after.len(),
            on_optimum: after
                .iter()
                .filter(|w| optimal.contains(&w.composition.as_str()))
                .count(),
            on_best: after.iter().filter(|w| &w.composition == opt).count(),
            mean_reward: after.iter().map(|w| w.reward.unwrap_or(0.0)).sum::<f64>()
                / after.len().max(1) as f64,
            off,
        });
    }
    let mut total = 0.0;
    let regret = trace
        .windows
        .iter()
        .map(|w| {
            let phase = schedule[w.segment].0;
            let best = gt.means[gt.optimum(phase)][phase];
            total += (best - gt.mean(&w.composition, phase)).max(0.0);
            total
        })
        .collect();
    Learning {
        trace,
        segments,
        regret,
    }
}

/// The window at which the learner converged on the `optimal` compositions (see
/// [`SETTLED_SPAN`]); the run's length if it never did.
pub(crate) fn converged_at(trace: &Trace, optimal: &[&str]) -> usize {
    let on: Vec<bool> = trace
        .windows
        .iter()
        .map(|w| optimal.contains(&w.composition.as_str()))
        .collect();
    let settled = |i: usize| {
        let span = &on[i..i + SETTLED_SPAN];
        on[i] && span.iter().filter(|&&b| b).count() * 10 >= SETTLED_SPAN * 9
    };
    (0..on.len().saturating_sub(SETTLED_SPAN - 1))
        .find(|&i| settled(i))
        .unwrap_or(on.len())
}

/// Convergence in phase `phase` with `k` compositions (the optimum and `k − 1` others, the
/// same nested subsets for every k), the mean over `seeds` runs, for each k of `sizes`.
pub(crate) async fn convergence(
    root: &Path,
    gt: &GroundTruth,
    phase: usize,
    sizes: &[usize],
    windows: u64,
    seeds: &[u64],
) -> Result<Vec<(usize, f64)>, Box<dyn std::error::Error>> {
    let opt = gt.compositions[gt.optimum(phase)].clone();
    let optimal = gt.optimal(phase);
    let mut others: Vec<String> = gt
        .compositions
        .iter()
        .filter(|c| **c != opt)
        .cloned()
        .collect();
    fastrand::Rng::with_seed(seeds.first().copied().unwrap_or(0)).shuffle(&mut others);
    let mut out = Vec::new();
    for &k in sizes {
        let mut allowed: Vec<String> = others.iter().take(k.saturating_sub(1)).cloned().collect();
        allowed.insert(0, opt.clone());
        let runs = seeds.iter().map(|&seed| {
            let setup = Setup {
                schedule: vec![(phase, windows)],
                allowed: Some(allowed.clone()),
                seed,
            };
            async move { scenario::run(root, &setup).await.map_err(|e| e.to_string()) }
        });
        let mut sum = 0.0;
        for t in futures_util::future::join_all(runs).await {
            sum += converged_at(&t?, &optimal) as f64;
        }
        out.push((k, sum / seeds.len().max(1) as f64));
    }
    Ok(out)
}

/// Least-squares line through `points`: slope, intercept and R².
pub(crate) fn linear_fit(points: &[(usize, f64)]) -> (f64, f64, f64) {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0 as f64).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 as f64 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 as f64 - mx).powi(2)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    let slope = sxy / sxx.max(1e-12);
    let r2 = if syy == 0.0 {
        1.0
    } else {
        sxy * sxy / (sxx * syy)
    };
    (slope, my - slope * mx, r2)
}

/// Whether a composition runs everything here (its name has no placement).
pub(crate) fn is_local(name: &str) -> bool {
    !name.contains('@')
}

/// The JSON the scripts read.
pub(crate) fn json(
    gt: &GroundTruth,
    learning: &Learning,
    schedule: &[(usize, u64)],
    convergence: &[(usize, f64)],
    checks: &[Check],
) -> Value {
    let phases = learning
        .segments
        .iter()
        .zip(schedule)
        .map(|(s, _)| {
            let truth = gt
                .compositions
                .iter()
                .zip(&gt.means)
                .map(|(c, m)| (c.clone(), Value::Float(m[s.phase])))
                .collect();
            Value::map([
                ("name", Value::from(PHASES[s.phase].name)),
                (
                    "optimum",
                    Value::from(gt.compositions[gt.optimum(s.phase)].as_str()),
                ),
                ("ground_truth", Value::Map(truth)),
                ("share_on_optimum", Value::Float(s.share())),
                (
                    "share_on_best",
                    Value::Float(s.on_best as f64 / s.counted.max(1) as f64),
                ),
                (
                    "optimal",
                    Value::List(gt.optimal(s.phase).into_iter().map(Value::from).collect()),
                ),
                ("windows", Value::Int(s.windows as i64)),
                ("mean_reward", Value::Float(s.mean_reward)),
            ])
        })
        .collect();
    let conv = convergence
        .iter()
        .map(|(k, w)| (k.to_string(), Value::Float(*w)))
        .collect();
    Value::map([
        (
            "compositions",
            Value::List(
                gt.compositions
                    .iter()
                    .map(|c| Value::from(c.as_str()))
                    .collect(),
            ),
        ),
        ("phases", Value::List(phases)),
        (
            "regret",
            Value::List(learning.regret.iter().map(|r| Value::Float(*r)).collect()),
        ),
        ("convergence_windows", Value::Map(conv)),
        ("requests", Value::Int(learning.trace.requests as i64)),
        ("answered", Value::Int(learning.trace.answered as i64)),
        ("classes", Value::Int(learning.trace.classes as i64)),
        (
            "checks",
            Value::List(checks.iter().map(Check::to_value).collect()),
        ),
    ])
}

/// The relative gap under which two compositions are "near-equal" (seed 000's W3).
pub(crate) const NEAR_EQUAL: f64 = 0.05;

/// Seed 000's checks (targets.md §2.4, as issue 16 states them).
pub(crate) fn checks(gt: &GroundTruth, l: &Learning, convergence: &[(usize, f64)]) -> Vec<Check> {
    let name = |p: usize| gt.compositions[gt.optimum(p)].clone();
    let mut out = Vec::new();
    let (w3_second, w3_gap) = gt.runner_up_gap(2);
    out.push(Check::new(
        "ground truth: W1 all-local, W2 distributed, W3 two near-equal",
        is_local(&name(0)) && !is_local(&name(1)) && w3_gap <= NEAR_EQUAL,
        format!(
            "W1 {}, W2 {}, W3 {} vs {} ({:.1} % apart)",
            name(0),
            name(1),
            name(2),
            gt.compositions[w3_second],
            100.0 * w3_gap
        ),
    ));
    let mut first_seen = Vec::new();
    for s in &l.segments {
        if first_seen.contains(&s.phase) {
            continue;
        }
        first_seen.push(s.phase);
        let need = if s.phase == 2 { 0.75 } else { 0.90 };
        out.push(Check::new(
            format!(
                "{}: on the optimum in ≥ {:.0} % of windows after exploration (on one the ground truth cannot tell from it)",
                PHASES[s.phase].name,
                100.0 * need
            ),
            s.share() >= need,
            format!(
                "{}/{} = {:.1} %",
                s.on_optimum,
                s.counted,
                100.0 * s.share()
            ),
        ));
    }
    let revisits: Vec<&SegmentResult> = l
        .segments
        .iter()
        .enumerate()
        .filter(|(i, s)| l.segments[..*i].iter().any(|e| e.phase == s.phase))
        .map(|(_, s)| s)
        .collect();
    let distinct = l
        .segments
        .iter()
        .map(|s| s.phase)
        .collect::<std::collections::BTreeSet<_>>();
    out.push(Check::new(
        "one table per environment class; a phase seen again reuses its table",
        l.trace.classes == distinct.len() && revisits.iter().all(|s| s.share() >= 0.9),
        format!(
            "{} classes for {} phases; back in a phase: {}",
            l.trace.classes,
            distinct.len(),
            revisits
                .iter()
                .map(|s| format!(
                    "{:.1} % on the optimum from its second window",
                    100.0 * s.share()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));
    if convergence.len() >= 2 {
        let (slope, _, r2) = linear_fit(convergence);
        out.push(Check::new(
            "convergence grows about linearly with the number of compositions",
            slope > 0.0 && r2 >= 0.8,
            format!(
                "{} — slope {slope:.2} windows per composition, R² {r2:.3}",
                convergence
                    .iter()
                    .map(|(k, w)| format!("{k}: {w:.1}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    out
}
