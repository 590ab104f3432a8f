//! The load-balancing demo's result, from the shipped policies: against no balancing, the
//! predictive policies lower the busiest SelfLet's utilization and the share of requests over
//! their response-time threshold, and no request is lost.

#[path = "../examples/load_balancing/scenario.rs"]
mod scenario;

use std::path::Path;

#[tokio::test(start_paused = true)]
async fn the_predictive_policies_lower_max_utilization_and_threshold_violations() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let none = scenario::run("none", root).await.unwrap();
    assert_eq!(none.messages, 0);
    assert!(
        none.over_threshold > 0.4,
        "the hot SelfLets violate the threshold: {none:?}"
    );
    for policy in ["balance_profit", "balance_neighbourhood"] {
        let r = scenario::run(policy, root).await.unwrap();
        assert_eq!(
            r.answered, r.requests,
            "{policy}: every request was answered"
        );
        assert!(
            r.max_utilization < none.max_utilization,
            "{policy}: {} vs {}",
            r.max_utilization,
            none.max_utilization
        );
        assert!(
            r.over_threshold < none.over_threshold,
            "{policy}: {} vs {}",
            r.over_threshold,
            none.over_threshold
        );
        assert!(
            r.teachings >= 1,
            "{policy}: shedding to SelfLets that lacked the service taught it"
        );
        assert!(
            r.jain > none.jain,
            "{policy}: the load is spread more evenly"
        );
    }
}
