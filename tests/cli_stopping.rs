//! `selflet run` stops when asked, whatever its agents are doing: a runaway behaviour, work
//! that will not end, a signal of either kind, a second signal.

#[path = "support/process.rs"]
mod process;

use std::process::Command;
use std::time::Duration;

use process::Running;

const BIN: &str = env!("CARGO_BIN_EXE_selflet");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run(args: &[&str]) -> Running {
    let mut p = Running::start(args);
    p.wait_for("press Ctrl-C to stop");
    p
}

#[cfg(feature = "zenoh")]
#[test]
fn a_spinning_service_does_not_keep_run_from_stopping_and_its_caller_gets_an_error() {
    // Issue 13, case 1: one call to this froze the process, Ctrl-C included. The caller runs
    // in a process of its own, to see what its call comes to when the provider stops.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let zenoh = |how: &str, manifest: &str| {
        let manifest = format!("tests/fixtures/contain/{manifest}");
        run(&[
            "run",
            "--grace",
            "1s",
            "--namespace",
            "spin",
            how,
            &endpoint,
            &manifest,
        ])
    };
    let mut spinner = zenoh("--listen", "spinner.yaml");
    let mut caller = zenoh("--connect", "caller.yaml");
    spinner.wait_for_all(&["neighbour.joined", "neighbour=caller"]);
    // Let the instance spin a while: the process stays responsive meanwhile.
    std::thread::sleep(Duration::from_millis(1500));
    let out = spinner.interrupt();
    assert!(out.contains("summary: agent=spinner"), "{out}");
    // Its call ends at once, with an error: the provider's answer that it is stopping, or
    // the news that it left, whichever comes first.
    caller.wait_for_all(&["main behaviour", "`spinner`"]);
    caller.interrupt();
}

#[test]
fn sigterm_stops_like_ctrl_c_with_the_summary() {
    let mut p = run(&["run", "examples/home/kitchen.yaml"]);
    let out = p.stop_with("TERM");
    assert!(out.contains("summary: agent=kitchen"), "{out}");
}

#[test]
fn a_second_signal_exits_at_once_with_status_130() {
    // The caller's request takes an hour, and the grace period is a minute.
    let mut p = run(&[
        "run",
        "--grace",
        "60s",
        "tests/fixtures/contain/sleeper.yaml",
        "tests/fixtures/contain/caller.yaml",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    p.signal("INT");
    p.wait_for("stopping");
    p.signal("INT");
    let (status, _) = p.exit();
    assert_eq!(status.code(), Some(130), "{}", p.log.join("\n"));
}

#[test]
fn an_endpoint_that_does_not_answer_is_reported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let mut p = run(&[
        "run",
        "--connect",
        &endpoint,
        "--namespace",
        "nobody",
        "examples/home/kitchen.yaml",
    ]);
    p.wait_for("none of the endpoints to connect to answers");
    p.interrupt();
}

#[test]
fn the_spinning_behaviour_of_the_report_is_refused_by_check_where_it_loops() {
    let dir = std::env::temp_dir().join(format!("selflet-stop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("loop.yaml");
    std::fs::write(
        &file,
        "behaviour: loop\ninitial: a\nstates: { a: { on: { done: [a, f] } }, f: { final: true, output: \"1\" } }\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .arg(&file)
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loop.yaml:3:"), "{err}");
    assert!(err.contains("loop for ever"), "{err}");
}
