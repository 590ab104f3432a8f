//! `selflet run` processes on one machine, meeting over Zenoh on loopback: teaching across
//! two processes, calls across three, and a provider process killed in the middle of a call.
#![cfg(feature = "zenoh")]

#[path = "support/loopback.rs"]
mod loopback;
#[path = "support/process.rs"]
mod process;

use std::time::Duration;

use loopback::{bare_session, free_endpoint};
use process::Running;

/// `selflet run` on Zenoh in `namespace`, listening or connecting as `how`.
fn run(how: &str, endpoint: &str, namespace: &str, manifest: &str) -> Running {
    run_with(how, endpoint, namespace, manifest, &[])
}

fn run_with(how: &str, endpoint: &str, namespace: &str, manifest: &str, extra: &[&str]) -> Running {
    let manifest = format!("tests/fixtures/zenoh/{manifest}");
    let mut args = vec![
        "run",
        "--network",
        "zenoh",
        how,
        endpoint,
        "--namespace",
        namespace,
    ];
    args.extend_from_slice(extra);
    args.push(&manifest);
    let mut p = Running::start(&args);
    p.wait_for("press Ctrl-C to stop");
    p
}

/// A fresh key directory, shared by the processes of one test as by those of one machine.
fn key_dir(test: &str) -> String {
    let dir = std::env::temp_dir().join(format!("selflet-keys-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.display().to_string()
}

/// The value of `key` in the summary line of `agent`.
fn summary(out: &str, agent: &str, key: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("summary: agent={agent} ")))
        .unwrap_or_else(|| panic!("no summary of `{agent}` in:\n{out}"));
    let start = line
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("no `{key}` in {line}"))
        + key.len()
        + 2;
    let rest = &line[start..];
    let end = if rest.starts_with('[') {
        rest.find(']').map_or(rest.len(), |e| e + 1)
    } else {
        rest.find(' ').unwrap_or(rest.len())
    };
    rest[..end].to_owned()
}

fn seconds(s: &str) -> f64 {
    s.trim_end_matches('s')
        .parse()
        .unwrap_or_else(|_| panic!("`{s}` is not a time"))
}

#[test]
fn two_processes_reproduce_the_teaching_scenario_in_secure_mode() {
    let endpoint = free_endpoint();
    let keys = key_dir("teach");
    let secure = ["--security", "secure", "--keys", &keys];
    let mut a = run_with("--listen", &endpoint, "teach", "a.yaml", &secure);
    let mut b = run_with("--connect", &endpoint, "teach", "b.yaml", &secure);
    a.wait_for_all(&["neighbour.joined", "neighbour=b"]);
    a.wait_for_each(&[
        "service learned agent=a service=service1",
        "service learned agent=a service=service2",
        "service learned agent=a service=service3",
    ]);
    // Forty more request periods: A runs everything itself now.
    std::thread::sleep(Duration::from_secs(2));
    let a_out = a.interrupt();
    let b_out = b.interrupt();

    let learned = summary(&a_out, "a", "learned");
    let times: Vec<f64> = learned
        .trim_matches(['[', ']'])
        .split(',')
        .map(|l| {
            assert!(l.ends_with("<-b"), "taught by b: {learned}");
            seconds(l.split('@').nth(1).unwrap().trim_end_matches("<-b"))
        })
        .collect();
    assert_eq!(times.len(), 3, "all three services learned: {learned}");
    let last_learned = times.iter().copied().fold(0.0, f64::max);
    let last_request = seconds(&summary(&a_out, "a", "last_remote_request"));
    assert!(
        last_request <= last_learned,
        "no remote request after the last service was learned ({last_request} s > {last_learned} s)\n{a_out}"
    );
    assert!(
        summary(&b_out, "b", "served").parse::<u64>().unwrap() > 0,
        "{b_out}"
    );
    assert!(
        b_out.contains("teaching=3"),
        "B taught three times:\n{b_out}"
    );
    assert_eq!(
        summary(&b_out, "b", "joined"),
        "[a]",
        "B heard of A, which was there first"
    );
}

#[test]
fn three_processes_a_call_in_flight_at_a_killed_provider_fails_over() {
    let endpoint = free_endpoint();
    let mut caller = run("--listen", &endpoint, "failover", "caller.yaml");
    let mut p1 = run("--connect", &endpoint, "failover", "p1.yaml");
    caller.wait_for_all(&["neighbour.joined", "neighbour=p1"]);
    // p1 has started on the caller's request, which takes it a minute: a call is in flight.
    p1.wait_for("greeting caller");
    let mut p2 = run("--connect", &endpoint, "failover", "p2.yaml");
    caller.wait_for_all(&["neighbour.joined", "neighbour=p2"]);
    std::thread::sleep(Duration::from_millis(300));

    // The caller's time-out is 120 s: only the news of p1's departure can end the call now.
    let killed_at = caller.log.len();
    p1.kill();
    caller.wait_for_all(&["neighbour.left", "neighbour=p1"]);
    std::thread::sleep(Duration::from_millis(1000));
    let caller_out = caller.interrupt();
    let p2_out = p2.interrupt();

    assert_eq!(
        summary(&caller_out, "caller", "failed"),
        "[p1:1]",
        "the call in flight at p1 failed there, once:\n{caller_out}"
    );
    let served = summary(&p2_out, "p2", "served").parse::<u64>().unwrap();
    assert!(served > 0, "p2 took over the calls:\n{p2_out}");
    assert_eq!(summary(&caller_out, "caller", "left"), "[p1]");
    let failed: Vec<&String> = caller.log[killed_at..]
        .iter()
        .filter(|l| l.contains("greet failed"))
        .collect();
    assert!(
        failed.is_empty(),
        "no call failed: the one in flight went to p2; yet {failed:?}"
    );
}

#[test]
fn garbage_on_an_agents_keys_is_rejected_and_counted_and_the_agent_serves_on() {
    let endpoint = free_endpoint();
    let mut b = run("--listen", &endpoint, "garbage", "b.yaml");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let answer = runtime.block_on(async {
        let raw = bare_session(&endpoint).await;
        let request = "selflet/garbage/agents/b/request";
        // A query, unlike a put, says when it was refused: ask until the agent is reachable.
        let refusal = loop {
            let replies = raw.get(request).payload("{ not json").await.unwrap();
            if let Ok(reply) = replies.recv_async().await {
                break reply.into_result().expect_err("refused");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let reason = String::from_utf8_lossy(&refusal.payload().to_bytes()).into_owned();
        assert!(reason.contains("not a selflet envelope"), "{reason}");
        // Above the default limit of 1 MiB.
        let huge = vec![b'{'; (1 << 20) + 1];
        let replies = raw.get(request).payload(huge).await.unwrap();
        let refusal = replies.recv_async().await.unwrap().into_result();
        let refusal = refusal.expect_err("refused");
        let reason = String::from_utf8_lossy(&refusal.payload().to_bytes()).into_owned();
        assert!(reason.contains("above the limit"), "{reason}");
        let call = r#"{"from":"client","to":"b","id":1,"body":{"kind":"request","service":"service2","modes":["can_do"],"input":{"n":3}}}"#;
        let replies = raw.get(request).payload(call).await.unwrap();
        let reply = replies.recv_async().await.unwrap().into_result().unwrap();
        let answer: serde_json::Value =
            serde_json::from_slice(&reply.payload().to_bytes()).unwrap();
        raw.close().await.unwrap();
        answer
    });
    assert_eq!(answer["body"]["reply"], "done", "{answer}");
    let out = b.interrupt();
    assert!(out.contains("rejected=2"), "two rejected, counted:\n{out}");
    assert_eq!(summary(&out, "b", "served"), "1");
}

#[test]
fn two_layer_rl_moves_its_binding_away_from_a_provider_that_becomes_slow() {
    let endpoint = free_endpoint();
    let mut caller = run("--listen", &endpoint, "learn", "rl_caller.yaml");
    let mut p1 = run("--connect", &endpoint, "learn", "rl_p1.yaml");
    // Gossip alone tells the caller of p1 (no adverts), and it binds to p1.
    p1.wait_for("greeting caller");
    let mut p2 = run("--connect", &endpoint, "learn", "rl_p2.yaml");
    caller.wait_for_all(&["neighbour.joined", "neighbour=p2"]);
    // p2 advertises itself idle (1), but H = τ₀·1 = 0.95 is below the quick p1's record: the
    // binding holds until p1 becomes slow, six seconds after it started.
    p1.wait_for("slowing down");
    let slowed_at = p1.log.len();
    p2.wait_for("greeting caller");
    let moved_at = p2.log.len();
    std::thread::sleep(Duration::from_secs(2));
    let caller_out = caller.interrupt();
    let p1_out = p1.interrupt();
    let p2_out = p2.interrupt();

    let greetings = |log: &[String]| log.iter().filter(|l| l.contains("greeting caller")).count();
    let p1_before = greetings(&p1.log[..slowed_at]);
    let p1_after = greetings(&p1.log[slowed_at..]);
    let p2_served = greetings(&p2.log);
    assert!(p1_before >= 3, "the caller was bound to p1:\n{p1_out}");
    // Log lines start with an RFC 3339 time of one clock, in one format: they sort as text.
    let stamp = |line: &String| line.split_whitespace().next().unwrap_or("").to_owned();
    let slowed = stamp(&p1.log[slowed_at - 1]);
    let first_p2 = stamp(&p2.log[moved_at - 1]);
    assert!(
        first_p2 > slowed,
        "p2 was first called ({first_p2}) after p1 slowed down ({slowed})"
    );
    // A slow call teaches the caller that p1 is slow (quality 0.5 against its advertised 1),
    // and its answer that p1 now advertises 0.5: H(p1) is about 0.56 against p2's 0.95, and
    // each further call moves with the relative gain, at least 0.41 (a draw of the caller's
    // randomly seeded learner). More than 20 slow calls would take 0.59^19 < 1e-4.
    assert!(
        p1_after <= 20,
        "p1 kept serving after it became slow: {p1_after} calls\n{caller_out}"
    );
    assert!(
        p2_served >= 10,
        "p2 took over: {p2_served} calls\n{p2_out}\n{caller_out}"
    );
    let asked = summary(&caller_out, "caller", "asked");
    assert!(
        asked.contains("p1:") && asked.contains("p2:"),
        "the caller asked both: {asked}"
    );
}
