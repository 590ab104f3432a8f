//! The `selflet` binary: `check` and `run`, as a user runs them.

#[path = "support/process.rs"]
mod process;

use std::process::Command;
use std::time::Duration;

use process::Running;

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
fn check_reports_unknown_predictor_kinds_and_bad_parameters_where_they_are_written() {
    let bad = temp_file(
        "predictors.yaml",
        "name: a\npredictors:\n  - kind: space_savings\n  - kind: space_saving\n    name: s\n    params: { window: monthly }\n",
    );
    let out = Command::new(BIN).arg("check").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let unknown = format!("{}:3:11: no predictor kind `space_savings`", bad.display());
    assert!(
        stderr.contains(&unknown),
        "expected `{unknown}` in:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}:4:11: predictor `s`: `window` is none, tumbling or sliding",
            bad.display()
        )),
        "{stderr}"
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
    let mut run = Running::start(&["run", "examples/home/kitchen.yaml"]);
    run.wait_for("press Ctrl-C to stop");
    let started = run
        .log
        .iter()
        .any(|l| l.contains("running") && l.contains("kitchen"));
    assert!(started, "{}", run.log.join("\n"));
    run.interrupt();
}

#[test]
fn run_watch_reloads_a_changed_policy_and_keeps_the_old_one_when_the_new_one_is_broken() {
    let policy = temp_file(
        "watched.rhai",
        "rule(\"a\").on(\"tick\").then(|ev| log(1));\n",
    );
    let manifest = temp_file("watched.yaml", "name: watcher\npolicies: [watched.rhai]\n");
    let mut run = Running::start(&["run", "--watch", manifest.to_str().unwrap()]);
    run.wait_for("press Ctrl-C to stop");
    // Modification times can be coarse: make sure the new one differs.
    std::thread::sleep(Duration::from_millis(1100));
    let two_rules = "rule(\"a\").on(\"tick\").then(|ev| log(2));\nrule(\"b\").on(\"tock\").then(|ev| log(3));\n";
    std::fs::write(&policy, two_rules).unwrap();
    run.wait_for("policy reloaded");
    assert!(
        run.log.last().unwrap().contains("rules=2"),
        "{}",
        run.log.join("\n")
    );
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&policy, "rule(\"a\").on(\"tick\").then(|ev| log(2);\n").unwrap();
    run.wait_for("policy not reloaded");
    run.wait_for("watched.rhai:1:");
    run.interrupt();
}

#[test]
fn run_refuses_bad_network_settings_before_starting_anything() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["--listen", "udp/127.0.0.1:7447"],
            "endpoint protocol `udp` is not supported",
        ),
        (
            &["--network", "local", "--connect", "tcp/127.0.0.1:7447"],
            "Zenoh flags were given with `--network local`",
        ),
        (
            &["--mode", "client"],
            "a client needs an endpoint to connect to",
        ),
    ];
    for (flags, expected) in cases {
        let out = Command::new(BIN)
            .arg("run")
            .args(flags)
            .arg("examples/home/kitchen.yaml")
            .current_dir(ROOT)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flags:?} must fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
        assert!(!stderr.contains("running"), "nothing started: {stderr}");
    }
}

#[test]
fn every_shipped_manifest_behaviour_and_policy_passes_check() {
    let mut files = Vec::new();
    for dir in [
        "behaviors",
        "policies",
        "examples/home",
        "examples/teaching",
        "examples/chain",
    ] {
        for entry in std::fs::read_dir(format!("{ROOT}/{dir}")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // Ability scripts are checked through the manifests that name them.
            let policy = name.ends_with(".rhai") && (dir == "policies" || name == "learn.rhai");
            let checked = name.ends_with(".yaml") || policy;
            if checked {
                files.push(format!("{dir}/{name}"));
            }
        }
    }
    let out = Command::new(BIN)
        .arg("check")
        .args(&files)
        .current_dir(ROOT)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in &files {
        assert!(
            stdout.contains(&format!("ok: {f}")),
            "{f} not checked:\n{stdout}"
        );
    }
    assert_eq!(files.len(), 22);
}

#[test]
fn a_referral_a_lesson_and_a_refusal_along_a_chain_of_three_agents() {
    // A knows only B; B only knows who translates; C translates (with a scripted ability)
    // and teaches it, but runs its dictionary for others without teaching it.
    let mut p = Running::start(&[
        "run",
        "examples/chain/a.yaml",
        "examples/chain/b.yaml",
        "examples/chain/c.yaml",
    ]);
    p.wait_for_all(&["served through a referral", "provider=c", r#"via=["b"]"#]);
    p.wait_for_all(&[
        "service learned",
        "agent=a",
        "service=translate",
        "teacher=c",
    ]);
    // Why `dictionary` is not taught, in A's log.
    p.wait_for_all(&[
        "request failed",
        "agent=a",
        "`c` offers `dictionary` as can_do only",
    ]);
    let learned_at = p.log.len();
    p.wait_for("request failed");
    let out = p.interrupt();
    let a = out
        .lines()
        .find(|l| l.starts_with("summary: agent=a "))
        .expect("a's summary");
    assert!(a.contains("learned=[translate@"), "{a}");
    assert!(a.contains("<-c]"), "{a}");
    // A still calls `dictionary` at C: remote requests go on after the lesson.
    let c = out
        .lines()
        .find(|l| l.starts_with("summary: agent=c "))
        .expect("c's summary");
    let served: u64 = c
        .split(" served=")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("served");
    assert!(served > 5, "{c}");
    assert!(
        p.log[learned_at..]
            .iter()
            .all(|l| !l.contains("main behaviour")),
        "the translations go on without failing:\n{}",
        p.log.join("\n")
    );
}

#[test]
fn a_service_only_known_about_passes_check_and_runs() {
    let file = format!("{ROOT}/tests/fixtures/contain/knows_who.yaml");
    let out = Command::new(BIN).args(["check", &file]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut run = Running::start(&["run", &file]);
    run.wait_for("press Ctrl-C to stop");
    run.interrupt();
}

#[test]
fn run_plugs_a_manifests_learner_and_the_summary_says_what_it_composed() {
    for (name, out) in [("quick", "1"), ("slow", "2")] {
        temp_file(
            &format!("{name}.yaml"),
            &format!(
                "behaviour: {name}\ninitial: s\nstates:\n  s: {{ final: true, output: \"{out}\" }}\n"
            ),
        );
    }
    let manifest = temp_file(
        "composer.yaml",
        "name: composer\nbehaviours: [quick.yaml, slow.yaml]\nservices:\n  web: { modes: [can_do], behaviour: quick }\nlearners:\n  - kind: ucb\n    name: compose\n    params: { service: web, variants: [quick, slow], window: 200ms }\n",
    );
    let mut run = Running::start(&["run", manifest.to_str().unwrap()]);
    run.wait_for("learner plugged");
    std::thread::sleep(Duration::from_millis(1000));
    let out = run.interrupt();
    let line = out
        .lines()
        .find(|l| l.starts_with("summary: agent=composer "))
        .expect("the summary");
    let windows: u64 = line
        .split("composed=[compose:")
        .nth(1)
        .and_then(|r| r.split('/').nth(1))
        .and_then(|r| r.split('w').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(windows >= 3, "{line}");
}
