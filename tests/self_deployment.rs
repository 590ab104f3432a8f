//! Rhizoma's experiment, reduced (170 simulated minutes, the spike from minute 60 to 120, the
//! coordinator crashing at minute 20): SelfLets managing their own deployment move away from
//! a CPU spike and back, redeploy less as migration costs more, never execute a configuration
//! that breaks a constraint, never change more than n members per plan, and re-elect a
//! coordinator within a period of a crash.

#[path = "../examples/rhizoma/analysis.rs"]
#[allow(dead_code)] // the JSON is the example's
mod analysis;
#[path = "../examples/support/check.rs"]
mod check;
#[path = "../examples/rhizoma/scenario.rs"]
mod scenario;

use std::path::Path;

#[tokio::test(start_paused = true)]
async fn a_self_deploying_overlay_adapts_to_a_cpu_spike_and_survives_its_coordinator() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let setup = scenario::Setup {
        minutes: 170,
        spike: (60, 60),
        crash_at: Some(20),
        ..scenario::Setup::paper()
    };
    let main = scenario::run(root, &setup).await.unwrap();
    let mut sweep = Vec::new();
    for add_cost in [0.0, 0.012, 0.09] {
        let s = scenario::Setup {
            add_cost,
            crash_at: None,
            ..setup.clone()
        };
        sweep.push(scenario::run(root, &s).await.unwrap());
    }
    let mut checks = analysis::checks(&main, &sweep);
    checks.push(analysis::local_maximum(root).await.unwrap());
    check::print(&checks);
    assert_eq!(checks.len(), 8);
    for c in &checks {
        assert!(c.holds, "{}: {}", c.name, c.detail);
    }
}
