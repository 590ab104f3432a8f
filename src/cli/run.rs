//! `selflet run`: start agents from manifests and run them until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::{Duration, SystemTime};

use selflet::{Agent, AgentHandle, Manifest, Network, SourceFile};

pub(super) fn run(paths: &[PathBuf], watch: bool) -> ExitCode {
    // Every manifest is validated before anything starts: a bad one starts nothing.
    let mut manifests = Vec::new();
    let mut bad = false;
    for p in paths {
        match Manifest::load(p) {
            Ok(m) => manifests.push(m),
            Err(e) => {
                bad = true;
                super::report(e);
            }
        }
    }
    if bad {
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let network = Network::new();
        let mut agents = Vec::new();
        for m in &manifests {
            let builder = Agent::from_manifest(m)
                .network(&network)
                .predictor_kinds(selflet::plugins::kinds());
            match builder.spawn().await {
                Ok(a) => agents.push(a),
                Err(e) => {
                    eprintln!("error: agent `{}`: {e}", m.name);
                    for a in &agents {
                        a.shutdown().await;
                    }
                    return ExitCode::FAILURE;
                }
            }
        }
        if watch {
            let watched: Vec<_> = agents
                .iter()
                .zip(&manifests)
                .flat_map(|(a, m)| m.policies.iter().map(move |p| (a.clone(), p.clone())))
                .collect();
            tokio::spawn(watch_policies(watched));
        }
        // Listening starts before saying so: a Ctrl-C right after the message must not find
        // the default handler, which would kill the process without a clean shutdown.
        let interrupted = match interrupt() {
            Ok(i) => i,
            Err(e) => {
                eprintln!("error: cannot listen for Ctrl-C: {e}");
                for a in &agents {
                    a.shutdown().await;
                }
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(agents = agents.len(), "running; press Ctrl-C to stop");
        interrupted.await;
        tracing::info!("stopping");
        for a in &agents {
            a.shutdown().await;
        }
        ExitCode::SUCCESS
    })
}

/// Polls policy files once a second and reloads the ones that changed. Polling, not file
/// system notifications: it works the same everywhere, and a second is quick enough for a
/// person editing a file.
async fn watch_policies(files: Vec<(AgentHandle, PathBuf)>) {
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen: Vec<Option<SystemTime>> = files.iter().map(|(_, p)| modified(p)).collect();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        for ((agent, path), last) in files.iter().zip(seen.iter_mut()) {
            let now = modified(path);
            if now == *last {
                continue;
            }
            *last = now;
            match SourceFile::read(path).and_then(|s| agent.load_policy(s)) {
                Ok(rules) => {
                    tracing::info!(agent = %agent.name(), file = %path.display(), rules = rules.len(), "policy reloaded")
                }
                Err(e) => {
                    tracing::warn!(agent = %agent.name(), file = %path.display(), "policy not reloaded; the running version stays");
                    super::report(e);
                }
            }
        }
    }
}

/// A future that resolves on Ctrl-C (SIGINT), listening from the moment it is made.
fn interrupt() -> std::io::Result<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut sigint = signal(SignalKind::interrupt())?;
        Ok(Box::pin(async move {
            sigint.recv().await;
        }))
    }
    #[cfg(not(unix))]
    {
        Ok(Box::pin(async {
            let _ = tokio::signal::ctrl_c().await;
        }))
    }
}
