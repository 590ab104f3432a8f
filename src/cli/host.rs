//! `selflet host`: a machine's host agent, which starts and stops members of a deployment
//! from a manifest when the deployment's coordinator asks (see
//! [`selflet::deployment::HostServer`]); each member runs the deployment manager.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use selflet::deployment::{self, HostServer, RemoteHosts};
use selflet::{Agent, AgentHandle, Manifest, SourceFile, Value};

use super::NetworkArgs;
use super::run::{Process, block_on, load_all, network_settings, stop_all};

/// What `selflet host` was told.
#[derive(Debug, clap::Args)]
pub(super) struct HostArgs {
    /// The manifest every member is started from (its `name` is replaced by
    /// `<host>-m<n>`).
    pub(super) member: PathBuf,
    /// This host's name (its agent's).
    #[arg(long)]
    pub(super) name: String,
    /// Its capacity, in cores.
    #[arg(long, default_value_t = 1.0)]
    pub(super) capacity: f64,
    /// An attribute objective scripts read, `key=value` (a number if it parses as one).
    #[arg(long = "attribute", value_name = "KEY=VALUE")]
    pub(super) attributes: Vec<String>,
    /// Members to start at once.
    #[arg(long, default_value_t = 0)]
    pub(super) members: usize,
    /// The deployment's objective (Rhai: `utility`, optionally `cost`, `constraint`,
    /// `observe`); every host of a deployment gives the same.
    #[arg(long)]
    pub(super) objective: PathBuf,
    /// How often the coordinator plans.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = super::duration)]
    pub(super) period: Duration,
    /// Most actions per plan.
    #[arg(long, default_value_t = 2)]
    pub(super) horizon: usize,
    /// Fewest and most members.
    #[arg(long, default_value_t = 1)]
    pub(super) min_members: usize,
    #[arg(long, default_value_t = 64)]
    pub(super) max_members: usize,
    /// How long a member being stopped may take to finish its work.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = super::duration)]
    pub(super) grace: Duration,
    #[command(flatten)]
    pub(super) observe: super::ObserveArgs,
    #[command(flatten)]
    pub(super) network: NetworkArgs,
}

fn attributes(list: &[String]) -> Result<BTreeMap<String, Value>, String> {
    list.iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or(format!("`{kv}` is not KEY=VALUE"))?;
            let v = v
                .parse::<f64>()
                .map_or_else(|_| Value::from(v), Value::Float);
            Ok((k.to_owned(), v))
        })
        .collect()
}

pub(super) fn host(args: &HostArgs) -> ExitCode {
    let paths = [args.member.clone()];
    let Some(manifests) = load_all(&paths) else {
        return ExitCode::FAILURE;
    };
    let setup = || -> Result<_, String> {
        if !selflet::name::is_valid_name(&args.name) {
            return Err(format!("`{}`: {}", args.name, selflet::name::NAME_RULE));
        }
        let attrs = attributes(&args.attributes)?;
        let objective = SourceFile::read(&args.objective).map_err(|e| e.to_string())?;
        deployment::ScriptObjective::compile(&objective).map_err(|e| {
            super::report(e);
            "the objective does not compile".to_owned()
        })?;
        let mut config = deployment::Config::new(objective);
        config.period = args.period;
        config.horizon = args.horizon;
        config.min_members = args.min_members;
        config.max_members = args.max_members;
        let settings = network_settings(&manifests, &paths, &args.network)?;
        Ok((attrs, config, settings))
    };
    let (attrs, config, settings) = match setup() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let manifest = manifests.into_iter().next().expect("one manifest loaded");
    block_on(serve(args, manifest, attrs, config, settings))
}

async fn serve(
    args: &HostArgs,
    manifest: Manifest,
    attrs: BTreeMap<String, Value>,
    config: deployment::Config,
    settings: Option<selflet::transport::ZenohConfig>,
) -> ExitCode {
    let mut process = match Process::start(settings, &args.observe).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let transport = Arc::clone(&process.transport);
    let (t, grace, observers) = (
        Arc::clone(&transport),
        args.grace,
        process.observers.clone(),
    );
    let server = HostServer::new(
        &args.name,
        args.capacity,
        attrs,
        Arc::new(move |name| {
            let (t, config, mut m) = (Arc::clone(&t), config.clone(), manifest.clone());
            let observers = observers.clone();
            Box::pin(async move {
                m.name = name;
                let a = Agent::from_manifest(&m)
                    .transport(t)
                    .predictor_kinds(selflet::plugins::kinds())
                    .shutdown_grace(grace)
                    .spawn()
                    .await?;
                deployment::manage(&a, Arc::new(RemoteHosts::new(&a)), config)?;
                observers.watch(&a);
                tracing::info!(member = %a.name(), "member started");
                Ok(a)
            })
        }),
    );
    let builder = Agent::builder(&args.name)
        .transport(Arc::clone(&transport))
        .shutdown_grace(grace);
    let agent = match server.install(builder) {
        Ok(b) => b.spawn().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let agent = match agent {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: host `{}`: {e}", args.name);
            return ExitCode::FAILURE;
        }
    };
    process.observers.watch(&agent);
    for _ in 0..args.members {
        if let Err(e) = server.start_member().await {
            eprintln!("error: starting a member: {e}");
        }
    }
    tracing::info!(host = %args.name, members = server.members().len(), "hosting; press Ctrl-C to stop");
    process.signals.next().await;
    tracing::info!("stopping (a second Ctrl-C exits at once)");
    let mut all: Vec<AgentHandle> = server.members();
    all.push(agent);
    stop_all(&all, grace, &mut process.signals).await;
    process.close().await;
    ExitCode::SUCCESS
}
