//! `selflet run`: start agents from manifests and run them until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use selflet::bus::Bus;
use selflet::transport::{Transport, ZenohConfig, ZenohMode};
use selflet::{Agent, AgentHandle, Manifest, Network, SourceFile};

use super::{ModeArg, NetworkArgs, NetworkKind};

/// Where the agents meet: the settings of the manifests, overridden by the flags.
fn network_settings(
    manifests: &[Manifest],
    paths: &[PathBuf],
    args: &NetworkArgs,
) -> Result<Option<ZenohConfig>, String> {
    // Zenoh settings belong to the process, not to one agent: manifests run together must
    // agree on them.
    let mut from_manifests: Option<(&ZenohConfig, &PathBuf)> = None;
    for (m, p) in manifests.iter().zip(paths) {
        if let Some(z) = &m.network.zenoh {
            match from_manifests {
                Some((first, first_path)) if first != z => {
                    return Err(format!(
                        "{} and {} give different Zenoh settings; agents of one process share one Zenoh session",
                        first_path.display(),
                        p.display()
                    ));
                }
                Some(_) => {}
                None => from_manifests = Some((z, p)),
            }
        }
    }
    let flags = args.mode.is_some()
        || !args.listen.is_empty()
        || !args.connect.is_empty()
        || args.namespace.is_some()
        || args.multicast_scouting;
    let zenoh = match args.network {
        Some(NetworkKind::Local) if flags => {
            return Err("Zenoh flags were given with `--network local`".into());
        }
        Some(NetworkKind::Local) => false,
        Some(NetworkKind::Zenoh) => true,
        None => flags || from_manifests.is_some(),
    };
    if !zenoh {
        return Ok(None);
    }
    let mut config = from_manifests.map(|(z, _)| z.clone()).unwrap_or_default();
    if let Some(mode) = args.mode {
        config.mode = match mode {
            ModeArg::Peer => ZenohMode::Peer,
            ModeArg::Client => ZenohMode::Client,
        };
    }
    if !args.listen.is_empty() {
        config.listen.clone_from(&args.listen);
    }
    if !args.connect.is_empty() {
        config.connect.clone_from(&args.connect);
    }
    if let Some(ns) = &args.namespace {
        config.namespace.clone_from(ns);
    }
    config.multicast_scouting |= args.multicast_scouting;
    config.check().map_err(|p| p.join("; "))?;
    Ok(Some(config))
}

/// The network the agents join, and the Zenoh session to close at the end, if any.
#[cfg(feature = "zenoh")]
async fn open(
    settings: Option<ZenohConfig>,
) -> Result<(Arc<dyn Transport>, Option<selflet::transport::Zenoh>), String> {
    let Some(config) = settings else {
        return Ok((Arc::new(Network::new()), None));
    };
    let zenoh = selflet::transport::Zenoh::open(&config)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        mode = %config.mode,
        listen = ?config.listen,
        connect = ?config.connect,
        keys = %format!("{}/**", zenoh.prefix()),
        "on Zenoh"
    );
    Ok((Arc::new(zenoh.clone()), Some(zenoh)))
}

#[cfg(not(feature = "zenoh"))]
async fn open(settings: Option<ZenohConfig>) -> Result<(Arc<dyn Transport>, Option<()>), String> {
    match settings {
        None => Ok((Arc::new(Network::new()), None)),
        Some(_) => Err("this selflet was built without the `zenoh` feature".into()),
    }
}

pub(super) fn run(paths: &[PathBuf], watch: bool, network: &NetworkArgs) -> ExitCode {
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
    let settings = match network_settings(&manifests, paths, network) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let (transport, session) = match open(settings).await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let buses: Vec<Bus> = manifests.iter().map(|m| Bus::new(&m.name)).collect();
        let summary = super::summary::Summary::watch(&buses);
        let mut agents = Vec::new();
        for (m, bus) in manifests.iter().zip(buses) {
            let builder = Agent::from_manifest(m)
                .bus(bus)
                .transport(Arc::clone(&transport))
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
        summary.print(transport.counters());
        #[cfg(feature = "zenoh")]
        if let Some(zenoh) = session {
            zenoh.close().await;
        }
        #[cfg(not(feature = "zenoh"))]
        let _ = session;
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
