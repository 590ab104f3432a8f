//! The paper's qualitative result, from the shipped files: without the policy every request
//! is a message; with it, A learns Services 1, 2 and 3, after which no message is exchanged.

#[path = "../examples/teaching/scenario.rs"]
mod scenario;

use std::path::PathBuf;

use scenario::Settings;

fn settings(with_policy: bool) -> Settings {
    Settings {
        duration_s: 900,
        period_s: 2.25,
        predictor: Default::default(),
        with_policy,
        checkpoints: vec![180, 300, 540, 900],
        metrics: false,
    }
}

#[tokio::test(start_paused = true)]
async fn the_policy_teaches_all_three_services_and_messages_stop() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/teaching");
    let without = scenario::run(&dir, &settings(false)).await.unwrap();
    let with = scenario::run(&dir, &settings(true)).await.unwrap();

    // Without the policy, messages grow with every request: one per goal of A.
    let w: Vec<u64> = without.rows.iter().map(|r| r.messages).collect();
    assert!(w.windows(2).all(|p| p[1] > p[0]), "{w:?}");
    for r in &without.rows {
        assert!(
            r.messages.abs_diff(r.goals_a) <= 1,
            "one request per goal: {r:?}"
        );
        assert!(
            r.goals_b.abs_diff(r.goals_a) <= 1,
            "B serves every goal: {r:?}"
        );
    }
    assert!(
        without.rows.last().unwrap().goals_a >= 395,
        "about 400 goals in 900 s"
    );
    assert!(without.learned.is_empty());

    // With it, all three services are learned...
    let mut learned: Vec<&str> = with.learned.iter().map(|(s, _)| s.as_str()).collect();
    learned.sort();
    assert_eq!(learned, ["service1", "service2", "service3"]);
    // ...service1 first, its two subservices after (the paper's three stages)...
    assert_eq!(with.learned[0].0, "service1");
    let last = with.learned.iter().map(|(_, t)| *t).fold(0.0, f64::max);
    assert!(last < 600.0, "learning done by {last} s");
    // ...after which the message count stops growing.
    let after: Vec<u64> = with
        .series
        .iter()
        .filter(|(t, _)| *t > last + 3.0)
        .map(|(_, m)| *m)
        .collect();
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|m| *m == after[0]),
        "no message after {last} s"
    );
    // A keeps reaching its goals, now locally.
    let a_final = with.rows.last().unwrap().goals_a;
    assert!(a_final >= 395, "{a_final}");
    // And the final count is lower than without the policy.
    let (m_with, m_without) = (
        with.rows.last().unwrap().messages,
        without.rows.last().unwrap().messages,
    );
    assert!(m_with < m_without, "{m_with} >= {m_without}");
}
