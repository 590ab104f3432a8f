//! `selflet run`: start agents from manifests and run them until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use selflet::bus::Bus;
use selflet::transport::{Security, Transport, ZenohConfig, ZenohMode};
use selflet::{Agent, AgentHandle, Manifest, Network, SourceFile};

use selflet::console::{self, Console};

use super::{ModeArg, NetworkArgs, NetworkKind, ObserveArgs, SecurityArg};

/// How often agents report what they count to the metrics exporter.
const METRICS_PERIOD: Duration = Duration::from_secs(1);

/// The exit status after a second signal cut the shutdown short (128 + SIGINT).
const INTERRUPTED: i32 = 130;

/// Settings every manifest of one process must agree on, since its agents share one
/// session: the first manifest that gives them, or an error naming the two that differ.
fn agreed<'a, T: PartialEq>(
    manifests: &'a [Manifest],
    paths: &[PathBuf],
    what: &str,
    get: impl Fn(&'a Manifest) -> Option<&'a T>,
) -> Result<Option<&'a T>, String> {
    let mut first: Option<(&T, &PathBuf)> = None;
    for (m, p) in manifests.iter().zip(paths) {
        let Some(v) = get(m) else { continue };
        match first {
            Some((f, fp)) if f != v => {
                return Err(format!(
                    "{} and {} give different {what}; agents of one process share one Zenoh session",
                    fp.display(),
                    p.display()
                ));
            }
            Some(_) => {}
            None => first = Some((v, p)),
        }
    }
    Ok(first.map(|(v, _)| v))
}

/// Where the agents meet: the settings of the manifests, overridden by the flags.
pub(super) fn network_settings(
    manifests: &[Manifest],
    paths: &[PathBuf],
    args: &NetworkArgs,
) -> Result<Option<ZenohConfig>, String> {
    let from_manifests = agreed(manifests, paths, "Zenoh settings", |m| {
        m.network.zenoh.as_ref()
    })?;
    let security = agreed(manifests, paths, "security settings", |m| {
        (m.security != Security::Open).then_some(&m.security)
    })?;
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
        if security.is_some() || args.security == Some(SecurityArg::Secure) {
            tracing::info!(
                "agents of one process trust each other: `security: secure` applies to Zenoh"
            );
        }
        return Ok(None);
    }
    let mut config = from_manifests.cloned().unwrap_or_default();
    config.security = security.cloned().unwrap_or_default();
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
    // As in a manifest: `keys` beside the (first) manifest, unless told otherwise.
    let beside = paths
        .first()
        .and_then(|p| p.parent())
        .unwrap_or(std::path::Path::new("."))
        .join("keys");
    config.security = security_override(config.security, args, beside)?;
    config.check().map_err(|problems| {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    Ok(Some(config))
}

/// The manifests' security, as `--security` and `--keys` change it.
fn security_override(
    from_manifests: Security,
    args: &NetworkArgs,
    beside: PathBuf,
) -> Result<Security, String> {
    let keys_of = |s: &Security| match s {
        Security::Secure { keys } => Some(keys.clone()),
        _ => None,
    };
    match (args.security, &args.keys) {
        (Some(SecurityArg::Open), Some(_)) => {
            Err("`--keys` was given with `--security open`".into())
        }
        (Some(SecurityArg::Open), None) => Ok(Security::Open),
        (Some(SecurityArg::Secure), keys) => {
            let keys = keys
                .clone()
                .or_else(|| keys_of(&from_manifests))
                .unwrap_or(beside);
            Ok(Security::Secure { keys })
        }
        (None, Some(keys)) => match from_manifests {
            Security::Open => {
                Err("`--keys` needs `--security secure` or `security: secure` in a manifest".into())
            }
            _ => Ok(Security::Secure { keys: keys.clone() }),
        },
        (None, None) => Ok(from_manifests),
    }
}

/// The network the agents join, and the Zenoh session to close at the end, if any.
#[cfg(feature = "zenoh")]
pub(super) async fn open(
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
        security = config.security.name(),
        key_expr = %format!("{}/**", zenoh.prefix()),
        "on Zenoh"
    );
    if !config.connect.is_empty() {
        tokio::spawn(report_connection(zenoh.clone(), config.connect.clone()));
    }
    Ok((Arc::new(zenoh.clone()), Some(zenoh)))
}

/// Says so when none of the endpoints to connect to answers (Zenoh goes on trying in
/// silence), and when a connection comes at last.
#[cfg(feature = "zenoh")]
async fn report_connection(zenoh: selflet::transport::Zenoh, endpoints: Vec<String>) {
    let mut wait = Duration::from_secs(3);
    let mut warned = false;
    loop {
        tokio::time::sleep(wait).await;
        let connected = zenoh.connections().await > 0;
        match (connected, warned) {
            (true, false) => return,
            (true, true) => {
                tracing::info!(?endpoints, "connected at last");
                return;
            }
            (false, _) => {
                tracing::warn!(
                    ?endpoints,
                    "none of the endpoints to connect to answers; Zenoh keeps trying"
                );
                warned = true;
                wait = Duration::from_secs(30);
            }
        }
    }
}

#[cfg(not(feature = "zenoh"))]
pub(super) async fn open(
    settings: Option<ZenohConfig>,
) -> Result<(Arc<dyn Transport>, Option<()>), String> {
    match settings {
        None => Ok((Arc::new(Network::new()), None)),
        Some(_) => Err("this selflet was built without the `zenoh` feature".into()),
    }
}

/// Every manifest, validated before anything starts: a bad one starts nothing.
pub(super) fn load_all(paths: &[PathBuf]) -> Option<Vec<Manifest>> {
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
    (!bad).then_some(manifests)
}

pub(super) fn run(
    paths: &[PathBuf],
    watch: bool,
    grace: Duration,
    observe: &ObserveArgs,
    network: &NetworkArgs,
) -> ExitCode {
    let Some(manifests) = load_all(paths) else {
        return ExitCode::FAILURE;
    };
    // Every agent is checked before any starts, by the code that checks it when it starts.
    let mut bad = false;
    for m in &manifests {
        let agent = Agent::from_manifest(m).predictor_kinds(selflet::plugins::kinds());
        if let Err(e) = agent.check() {
            bad = true;
            match e {
                selflet::AgentError::Load(e) => super::report(e),
                other => eprintln!("error: agent `{}`: {other}", m.name),
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
    block_on(run_agents(manifests, settings, watch, grace, observe))
}

/// Runs a command's work on a multi-thread runtime, and abandons (does not wait for) the
/// tasks that outlive its bounded shutdown.
pub(super) fn block_on(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(work);
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

/// What the agents of one process share: the signals, listened for before anything else
/// starts (a signal during start-up must not find the default handler, which would kill the
/// process without a clean shutdown), their network, how they are watched, and the Zenoh
/// session to close at the end.
pub(super) struct Process {
    pub(super) signals: Signals,
    pub(super) transport: Arc<dyn Transport>,
    pub(super) observers: Observers,
    #[cfg(feature = "zenoh")]
    session: Option<selflet::transport::Zenoh>,
}

/// Who watches the agents of a process: the metrics exporter, the console, and consoles in
/// other processes (through the agents' Zenoh status keys).
#[derive(Clone)]
pub(super) struct Observers {
    metrics: bool,
    console: Option<Console>,
    #[cfg(feature = "zenoh")]
    zenoh: Option<selflet::transport::Zenoh>,
}

impl Observers {
    /// Makes `agent` report to each of them.
    pub(super) fn watch(&self, agent: &AgentHandle) {
        if self.metrics {
            selflet::metrics::watch(agent, METRICS_PERIOD);
        }
        if let Some(console) = &self.console {
            console.watch(agent, console::DEFAULT_PERIOD);
        }
        #[cfg(feature = "zenoh")]
        if let Some(zenoh) = &self.zenoh {
            console::publish(agent, zenoh, console::DEFAULT_PERIOD);
        }
    }
}

impl Process {
    /// Listens for signals, opens the network, and serves metrics and the console if asked.
    pub(super) async fn start(
        settings: Option<ZenohConfig>,
        observe: &ObserveArgs,
    ) -> Result<Process, String> {
        let signals = Signals::listen().map_err(|e| format!("cannot listen for signals: {e}"))?;
        if let Some(addr) = observe.metrics {
            selflet::metrics::serve(addr).map_err(|e| format!("metrics on {addr}: {e}"))?;
            tracing::info!(%addr, "serving Prometheus metrics");
        }
        let console = match observe.console {
            Some(addr) => Some(serve_console(addr).await?),
            None => None,
        };
        let (transport, session) = open(settings).await?;
        #[cfg(not(feature = "zenoh"))]
        let _ = session;
        Ok(Process {
            signals,
            transport,
            observers: Observers {
                metrics: observe.metrics.is_some(),
                console,
                #[cfg(feature = "zenoh")]
                zenoh: session.clone(),
            },
            #[cfg(feature = "zenoh")]
            session,
        })
    }

    /// Closes the Zenoh session, if any.
    pub(super) async fn close(self) {
        #[cfg(feature = "zenoh")]
        if let Some(zenoh) = self.session {
            zenoh.close().await;
        }
    }
}

/// A console served on `addr`.
pub(super) async fn serve_console(addr: std::net::SocketAddr) -> Result<Console, String> {
    let console = Console::new();
    let bound = console
        .serve(addr)
        .await
        .map_err(|e| format!("console on {addr}: {e}"))?;
    tracing::info!(url = %format!("http://{bound}/"), "serving the console");
    Ok(console)
}

async fn run_agents(
    manifests: Vec<Manifest>,
    settings: Option<ZenohConfig>,
    watch: bool,
    grace: Duration,
    observe: &ObserveArgs,
) -> ExitCode {
    let mut process = match Process::start(settings, observe).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let transport = Arc::clone(&process.transport);
    let buses: Vec<Bus> = manifests.iter().map(|m| Bus::new(&m.name)).collect();
    let summary = super::summary::Summary::watch(&buses);
    let mut agents = Vec::new();
    for (m, bus) in manifests.iter().zip(buses) {
        let builder = Agent::from_manifest(m)
            .bus(bus)
            .transport(Arc::clone(&transport))
            .predictor_kinds(selflet::plugins::kinds())
            .shutdown_grace(grace);
        match builder.spawn().await {
            Ok(a) => {
                process.observers.watch(&a);
                agents.push(a);
            }
            Err(e) => {
                eprintln!("error: agent `{}`: {e}", m.name);
                stop_all(&agents, grace, &mut process.signals).await;
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
    tracing::info!(agents = agents.len(), "running; press Ctrl-C to stop");
    process.signals.next().await;
    tracing::info!("stopping (a second Ctrl-C exits at once)");
    stop_all(&agents, grace, &mut process.signals).await;
    summary.print(&agents, transport.counters());
    process.close().await;
    ExitCode::SUCCESS
}

/// Stops every agent, each given `grace` for its in-flight work, all within a bound; a
/// second signal meanwhile exits at once.
pub(super) async fn stop_all(agents: &[AgentHandle], grace: Duration, signals: &mut Signals) {
    let all = futures_util::future::join_all(agents.iter().map(AgentHandle::shutdown));
    // Each agent cancels what is left after its grace, and waits as long again for the
    // cancelled work to end; beyond that, it is abandoned.
    let bound = grace.saturating_mul(2) + Duration::from_secs(1);
    tokio::select! {
        r = tokio::time::timeout(bound, all) => if r.is_err() {
            tracing::warn!(after = ?bound, "some agents did not stop in time; leaving them");
        },
        _ = signals.next() => {
            eprintln!("interrupted again: exiting at once");
            std::process::exit(INTERRUPTED);
        }
    }
}

/// Ctrl-C (SIGINT) and SIGTERM, listened for from the moment this is made.
pub(super) struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn listen() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// The next signal.
    pub(super) async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
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
