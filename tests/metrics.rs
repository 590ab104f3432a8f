//! The metrics of the teaching demo equal its own table: requests A sent, goals B served, the
//! three services A learned and B taught — scraped over HTTP, in Prometheus' text format.

#[path = "support/http.rs"]
mod http;
#[path = "support/loopback.rs"]
mod loopback;
#[path = "support/process.rs"]
mod process;
#[path = "../examples/teaching/scenario.rs"]
mod scenario;

use std::path::PathBuf;

/// The sum of a metric's samples whose labels include all of `labels`.
fn sum(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `GET /metrics` over a plain TCP connection.
fn scrape(addr: std::net::SocketAddr) -> String {
    http::get(addr, "/metrics")
}

fn free_addr() -> std::net::SocketAddr {
    let port: u16 = loopback::free_endpoint()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    ([127, 0, 0, 1], port).into()
}

#[test]
fn selflet_run_serves_every_agents_metrics() {
    let addr = free_addr().to_string();
    let mut p = process::Running::start(&[
        "run",
        "--metrics",
        &addr,
        "examples/teaching/a.yaml",
        "examples/teaching/b.yaml",
    ]);
    p.wait_for("serving Prometheus metrics");
    p.wait_for("press Ctrl-C to stop");
    // Agents report what they count once a second.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let text = scrape(addr.parse().unwrap());
    for agent in ["a", "b"] {
        let labels = format!(r#"agent="{agent}""#);
        assert!(
            sum(&text, "selflet_bus_events_published_total", &[&labels]) > 0.0,
            "{text}"
        );
    }
    assert!(
        text.contains("# TYPE selflet_bus_events_published_total counter"),
        "{text}"
    );
    p.interrupt();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_teaching_demos_metrics_equal_its_table() {
    let addr = free_addr();
    selflet::metrics::serve(addr).unwrap();
    // The demo on a paused clock of its own, as the example runs it.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/teaching");
    let run = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let settings = scenario::Settings {
            duration_s: 900,
            period_s: 2.25,
            predictor: Default::default(),
            with_policy: true,
            checkpoints: vec![900],
            metrics: true,
        };
        rt.block_on(scenario::run(&dir, &settings)).unwrap()
    })
    .await
    .unwrap();
    let row = run.rows.last().unwrap();
    let text = tokio::task::spawn_blocking(move || scrape(addr))
        .await
        .unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let a = r#"agent="a""#;
    let b = r#"agent="b""#;
    assert_eq!(
        sum(&text, "selflet_calls_out_total", &[a]),
        row.messages as f64,
        "{text}"
    );
    assert_eq!(
        sum(&text, "selflet_calls_served_total", &[b]),
        row.goals_b as f64
    );
    assert_eq!(sum(&text, "selflet_teachings_learned_total", &[a]), 3.0);
    assert_eq!(sum(&text, "selflet_teachings_given_total", &[b]), 3.0);
    assert_eq!(run.learned.len(), 3);
    // Histograms count what they time; rules and the bus report what the agents count.
    assert_eq!(
        sum(&text, "selflet_call_duration_seconds_count", &[b]),
        row.goals_b as f64
    );
    assert!(sum(&text, "selflet_rule_firings_total", &[a]) >= 3.0);
    assert!(
        sum(
            &text,
            "selflet_bus_events_published_total",
            &[a, r#"group="service""#]
        ) > 0.0
    );
    assert!(sum(&text, "selflet_predictions_total", &[a]) >= 3.0);
    // The queues are reported, and an idle demo leaves nothing waiting in them.
    for queue in [r#"queue="inbox""#, r#"queue="policy""#] {
        assert!(
            text.contains(&format!(r#"selflet_queue_depth{{agent="a",{queue}}} 0"#)),
            "{queue}: {text}"
        );
    }
}
