//! `selflet run`: start agents from manifests and run them until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use selflet::{Agent, Manifest, Network};

pub(super) fn run(paths: &[PathBuf]) -> ExitCode {
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
            match Agent::from_manifest(m).network(&network).spawn().await {
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
        tracing::info!(agents = agents.len(), "running; press Ctrl-C to stop");
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("error: cannot listen for Ctrl-C: {e}");
        }
        tracing::info!("stopping");
        for a in &agents {
            a.shutdown().await;
        }
        ExitCode::SUCCESS
    })
}
