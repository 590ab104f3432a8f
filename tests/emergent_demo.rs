//! The emergent-composition demo, reduced (fewer windows, one seed per convergence point): a
//! `ucb` learner on real SelfLets finds the ground-truth optimum of each workload phase, keeps
//! one table per environment class, and takes about linearly longer to converge with more
//! compositions; no request is lost while it switches.

#[path = "../examples/emergent/analysis.rs"]
#[allow(dead_code)] // the JSON is the example's
mod analysis;
#[path = "../examples/support/check.rs"]
mod check;
#[path = "../examples/emergent/scenario.rs"]
mod scenario;

use std::path::Path;

#[tokio::test(start_paused = true)]
async fn the_learner_finds_each_phases_optimum_and_reuses_a_phases_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let compositions = scenario::compositions(root).unwrap();
    assert_eq!(
        compositions.len(),
        18,
        "3 variants × (here, 3 relocations, 2 replications)"
    );
    let gt = analysis::ground_truth(root, &compositions, 10, 1)
        .await
        .unwrap();
    let schedule = vec![(0, 100), (1, 100), (2, 100), (0, 30)];
    let setup = scenario::Setup {
        schedule: schedule.clone(),
        allowed: None,
        seed: 1,
    };
    let trace = scenario::run(root, &setup).await.unwrap();
    assert_eq!(
        trace.answered, trace.requests,
        "no request lost in any switch"
    );
    let learning = analysis::evaluate(trace, &schedule, &gt, compositions.len(), 1);
    let conv = analysis::convergence(root, &gt, 1, &[4, 8, 16], 40, &[1])
        .await
        .unwrap();
    let checks = analysis::checks(&gt, &learning, &conv);
    assert_eq!(checks.len(), 6);
    for c in &checks {
        assert!(c.holds, "{}: {}", c.name, c.detail);
    }
}
