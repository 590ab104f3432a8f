//! The `selflet` binary: `check` and `run`, as a user runs them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_selflet");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("selflet-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_accepts_a_good_manifest() {
    let out = Command::new(BIN)
        .args(["check", "examples/home/kitchen.yaml"])
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: examples/home/kitchen.yaml"));
}

#[test]
fn check_prints_file_line_column_and_fails_on_a_broken_manifest() {
    let bad = temp_file(
        "broken.yaml",
        "name: kitchen\nservices:\n  s1: { modes: [can_fly] }\n",
    );
    let out = Command::new(BIN).arg("check").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let located = format!("{}:3:17: unknown variant `can_fly`", bad.display());
    assert!(
        stderr.contains(&located),
        "expected `{located}` in:\n{stderr}"
    );
}

#[test]
fn check_fails_on_a_missing_file() {
    let out = Command::new(BIN)
        .args(["check", "no/such/file.yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read no/such/file.yaml"));
}

#[test]
fn run_starts_a_shipped_manifest_logs_and_stops_cleanly_on_sigint() {
    let mut child = Command::new(BIN)
        .args(["run", "examples/home/kitchen.yaml"])
        .current_dir(ROOT)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let wait_for = |needle: &str, log: &mut Vec<String>| {
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
            let hit = line.contains(needle);
            log.push(line);
            if hit {
                return;
            }
        }
        panic!("`{needle}` never appeared in the log:\n{}", log.join("\n"));
    };
    wait_for("press Ctrl-C to stop", &mut log);
    assert!(
        log.iter()
            .any(|l| l.contains("running") && l.contains("kitchen")),
        "{}",
        log.join("\n")
    );
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_for("stopped", &mut log);
    let status = wait_with_deadline(&mut child, Duration::from_secs(30));
    assert!(status.success(), "exit status {status}\n{}", log.join("\n"));
}

fn wait_with_deadline(
    child: &mut std::process::Child,
    limit: Duration,
) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("selflet run did not exit within {limit:?} of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
