//! `selflet console --connect` in a process of its own watches the teaching demo's two
//! processes over Zenoh (secure mode): both agents, the three teachings as they happen, each
//! in one trace across the processes, and an agent whose process is killed marked gone.
#![cfg(feature = "zenoh")]

#[path = "support/http.rs"]
mod http;
#[path = "support/loopback.rs"]
mod loopback;
#[path = "support/process.rs"]
mod process;

use std::time::{Duration, Instant};

use loopback::free_endpoint;
use process::Running;
use serde_json::Value;

fn free_addr() -> String {
    free_endpoint().trim_start_matches("tcp/").to_owned()
}

/// The console's picture, as its `/state` gives it.
fn state(addr: &str) -> Value {
    serde_json::from_str(http::body(&http::get(addr, "/state"))).unwrap_or(Value::Null)
}

/// Asks the console until `holds` (60 s at most).
fn until(addr: &str, what: &str, holds: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = state(addr);
        if holds(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "the console never showed {what}:\n{s:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The trace of `agent`'s timeline entry on `topic` about `service`.
fn trace(s: &Value, agent: &str, topic: &str, service: &str) -> Option<String> {
    s["timeline"].as_array()?.iter().find_map(|e| {
        (e["agent"] == agent && e["topic"] == topic && e["service"] == service)
            .then(|| e["trace"].as_str().map(str::to_owned))?
    })
}

#[test]
fn a_console_process_shows_the_teachings_between_two_other_processes() {
    let endpoint = free_endpoint();
    let keys = std::env::temp_dir().join(format!("selflet-keys-console-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&keys);
    let keys = keys.display().to_string();
    let run = |how: &str, manifest: &str| {
        let manifest = format!("tests/fixtures/console/{manifest}");
        let args = [
            "run",
            "--security",
            "secure",
            "--keys",
            &keys,
            "--namespace",
            "console",
            how,
            &endpoint,
            &manifest,
        ];
        let mut p = Running::start(&args);
        p.wait_for("press Ctrl-C to stop");
        p
    };
    let mut a = run("--listen", "a.yaml");
    let addr = free_addr();
    let mut console = Running::start(&[
        "console",
        "--connect",
        &endpoint,
        "--namespace",
        "console",
        "--serve",
        &addr,
    ]);
    console.wait_for("watching");
    let b = run("--connect", "b.yaml");

    until(&addr, "both agents", |s| {
        s["agents"]["a"]["state"] == "running" && s["agents"]["b"]["state"] == "running"
    });
    let s = until(&addr, "three services taught to a", |s| {
        let taught = ["service1", "service2", "service3"];
        taught.iter().all(|t| {
            trace(s, "b", "service.taught", t).is_some()
                && trace(s, "a", "service.learned", t).is_some()
        })
    });
    for service in ["service1", "service2", "service3"] {
        let learned = trace(&s, "a", "service.learned", service);
        assert_eq!(
            learned.as_ref().map(String::len),
            Some(16),
            "{service} learned in a trace"
        );
        assert_eq!(
            trace(&s, "b", "service.taught", service),
            learned,
            "one trace across the processes"
        );
        let fired = s["timeline"].as_array().unwrap().iter().any(|e| {
            e["agent"] == "a"
                && e["topic"] == "policy.fired"
                && e["trace"].as_str() == learned.as_deref()
        });
        assert!(
            fired,
            "the rule that asked for {service} is in the same trace"
        );
    }
    let edge = s["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["from"] == "b" && e["to"] == "a")
        .unwrap();
    assert_eq!(
        edge["taught"],
        serde_json::json!(["service1", "service2", "service3"])
    );

    // B's process killed outright: the console sees it leave the network.
    b.kill();
    until(&addr, "b gone", |s| s["agents"]["b"]["state"] == "gone");
    console.interrupt();
    a.interrupt();
}
