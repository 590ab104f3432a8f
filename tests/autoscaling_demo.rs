//! The autoscaling comparison, reduced (every third request of each shipped trace, three
//! times faster: the same rates and shapes in a third of the time): self-deployment uses
//! fewer SelfLet-hours than the pool sized for the peak at a comparable response time, fewer
//! violations than the pool sized for the mean; the HPA and the forecast scaler scale both
//! ways; and no configuration loses a request.

#[path = "../examples/support/check.rs"]
mod check;
#[path = "../examples/support/plot.rs"]
mod plot;
#[path = "../examples/autoscaling/report.rs"]
#[allow(dead_code)]
mod report;
#[path = "../examples/autoscaling/scalers.rs"]
mod scalers;
#[path = "../examples/autoscaling/scenario.rs"]
mod scenario;
#[path = "../examples/autoscaling/trace.rs"]
#[allow(dead_code)]
mod trace;

use std::path::Path;

#[tokio::test(start_paused = true)]
async fn self_deployment_saves_selflet_hours_on_both_traces_and_loses_no_request() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["selflet-cloud-bimodal", "selflet-cloud-step"] {
        let path = root.join(format!("examples/autoscaling/traces/{name}.csv"));
        let t = trace::Trace::load(&path, 1.0).unwrap().thinned(3);
        let p = scenario::Params::default();
        let mut reports = Vec::new();
        for c in scenario::CONFIGS {
            reports.push(scenario::run(root, &t, c, &p).await.unwrap());
        }
        report::print(&t, &p, &reports);
        let checks = report::checks(&reports, &p);
        check::print(&checks);
        let get = |c: &str| reports.iter().find(|r| r.config == c).unwrap();
        let (peak, mean, sd) = (get("peak_pool"), get("mean_pool"), get("self_deploy"));
        assert!(
            reports
                .iter()
                .all(|r| r.lost == 0 && r.requests == t.arrivals.len())
        );
        assert!(
            sd.selflet_hours < 0.8 * peak.selflet_hours,
            "{name}: {} h vs {} h",
            sd.selflet_hours,
            peak.selflet_hours
        );
        assert!(
            sd.mean_rt_s < 1.25 * peak.mean_rt_s,
            "{name}: {} s vs {} s",
            sd.mean_rt_s,
            peak.mean_rt_s
        );
        assert!(sd.over_threshold < mean.over_threshold, "{name}");
        for scaled in [sd, get("hpa"), get("forecast_scaler")] {
            assert!(
                scaled.actions.get("add").copied().unwrap_or(0) > 0,
                "{}",
                scaled.config
            );
            assert!(
                scaled.actions.get("remove").copied().unwrap_or(0) > 0,
                "{}",
                scaled.config
            );
            assert!(
                scaled.selflet_hours < peak.selflet_hours,
                "{}",
                scaled.config
            );
        }
    }
}

#[test]
fn a_trace_without_timestamps_is_refused_with_its_line() {
    let dir = std::env::temp_dir().join(format!("selflet-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "service,timestamp\nvideo,1423125658693\nvideo,soon\n").unwrap();
    let err = trace::Trace::load(&bad, 1.0).unwrap_err();
    assert!(err.contains("bad.csv:3"), "{err}");
    std::fs::write(&bad, "service,time\nvideo,1\n").unwrap();
    assert!(
        trace::Trace::load(&bad, 1.0)
            .unwrap_err()
            .contains("no `timestamp` column")
    );
    // Rows in any order; other columns ignored.
    std::fs::write(&bad, "x,timestamp\na,3000\nb,1000\n").unwrap();
    let t = trace::Trace::load(&bad, 2.0).unwrap();
    assert_eq!(t.arrivals, vec![0.0, 1.0]);
    std::fs::remove_dir_all(&dir).unwrap();
}
