//! `selflet` processes started by tests: their log (stderr) read line by line, their output
//! (stdout) kept, and each one killed if the test ends before it does.
#![allow(dead_code)] // each test file uses part of it

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_selflet");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// How long any one wait in a test may last before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// A running `selflet` process.
pub(crate) struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Option<std::thread::JoinHandle<String>>,
    /// The log lines read so far.
    pub(crate) log: Vec<String>,
}

impl Running {
    /// Starts `selflet <args>` in the repository's root.
    pub(crate) fn start(args: &[&str]) -> Running {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(ROOT)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("selflet starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stdout = std::thread::spawn(move || {
            let mut out = String::new();
            let _ = stdout.read_to_string(&mut out);
            out
        });
        Running {
            child,
            lines,
            stdout: Some(stdout),
            log: Vec::new(),
        }
    }

    /// Reads the log until a line contains every one of `needles` (30 s at most).
    pub(crate) fn wait_for_all(&mut self, needles: &[&str]) {
        let deadline = Instant::now() + PATIENCE;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            let hit = needles.iter().all(|n| line.contains(n));
            self.log.push(line);
            if hit {
                return;
            }
        }
        let _ = self.child.kill();
        panic!(
            "no line with {needles:?} appeared in the log:\n{}",
            self.log.join("\n")
        );
    }

    /// Reads the log until each of `needles` has appeared in some line, in any order, counting
    /// the lines read already (30 s at most).
    pub(crate) fn wait_for_each(&mut self, needles: &[&str]) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let missing: Vec<&&str> = needles
                .iter()
                .filter(|n| !self.log.iter().any(|l| l.contains(**n)))
                .collect();
            if missing.is_empty() {
                return;
            }
            let left = deadline.checked_duration_since(Instant::now());
            match left.map(|l| self.lines.recv_timeout(l)) {
                Some(Ok(line)) => self.log.push(line),
                _ => {
                    let _ = self.child.kill();
                    panic!(
                        "{missing:?} never appeared in the log:\n{}",
                        self.log.join("\n")
                    );
                }
            }
        }
    }

    /// Reads the log until a line contains `needle` (30 s at most).
    pub(crate) fn wait_for(&mut self, needle: &str) {
        self.wait_for_all(&[needle]);
    }

    /// Sends SIGINT, expects a clean exit, and returns what the process printed.
    pub(crate) fn interrupt(&mut self) -> String {
        self.stop_with("INT")
    }

    /// Sends `signal` (`INT`, `TERM`), expects a clean exit, and returns what the process
    /// printed.
    pub(crate) fn stop_with(&mut self, signal: &str) -> String {
        self.signal(signal);
        self.wait_for("stopping");
        let (status, out) = self.exit();
        assert!(
            status.success(),
            "exit status {status}\n{}",
            self.log.join("\n")
        );
        out
    }

    /// Sends a signal (`INT`, `TERM`, ...).
    pub(crate) fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([format!("-{signal}").as_str(), &pid])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits for the process to exit (30 s at most); its status and what it printed.
    pub(crate) fn exit(&mut self) -> (ExitStatus, String) {
        let status = wait_with_deadline(&mut self.child, PATIENCE);
        let out = self
            .stdout
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        (status, out)
    }

    /// Kills the process outright (SIGKILL): no goodbye to anyone.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("selflet did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
