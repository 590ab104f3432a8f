//! Command-line parsing and the subcommands.

mod check;
mod console;
mod host;
mod keys;
mod run;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run and check SelfLet agents.
#[derive(Debug, Parser)]
#[command(name = "selflet", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run agents from manifests, in this process, until Ctrl-C; then print a summary of
    /// what each did.
    ///
    /// Agents in other processes or on other machines are reached over Zenoh: for example
    /// `selflet run --listen tcp/127.0.0.1:7447 a.yaml` in one terminal and
    /// `selflet run --connect tcp/127.0.0.1:7447 b.yaml` in another.
    Run {
        /// Agent manifests (YAML).
        #[arg(required = true)]
        manifests: Vec<PathBuf>,
        /// Reload a manifest's policy files when they change (a file that does not compile
        /// leaves the running version in place).
        #[arg(long)]
        watch: bool,
        /// How long in-flight work may take to finish once stopping begins, before it is
        /// cancelled (a second Ctrl-C or SIGTERM exits at once).
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
        grace: std::time::Duration,
        #[command(flatten)]
        observe: ObserveArgs,
        #[command(flatten)]
        network: NetworkArgs,
    },
    /// Run a host of a self-deploying application: a host agent that starts and stops members
    /// (from a manifest) when the deployment's coordinator asks, and the members it starts.
    ///
    /// Every member runs the deployment manager: the lowest-named live member coordinates,
    /// and plans at most `--horizon` add / remove / move actions per `--period` over the
    /// `--objective` script. For example, on three machines:
    /// `selflet host --name h1 --members 1 --objective deploy.rhai --listen tcp/0.0.0.0:7447 member.yaml`,
    /// then `selflet host --name h2 --objective deploy.rhai --connect tcp/<h1>:7447 member.yaml`, …
    Host(host::HostArgs),
    /// Serve the live console of the agents of a Zenoh network, without running agents:
    /// for example `selflet console --connect tcp/127.0.0.1:7447`, then open
    /// http://127.0.0.1:8080/. Agents started by `selflet run` and `selflet host` on Zenoh put
    /// a status record every second, and at once when something other than a call happens.
    Console {
        /// The address to serve the page on.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        serve: std::net::SocketAddr,
        #[command(flatten)]
        network: NetworkArgs,
    },
    /// Make the key of each manifest's agent if it has none yet, and print its public key:
    /// the `<agent>.pub` file to give to the agents that should trust it (`security: secure`).
    Keys {
        /// Agent manifests (YAML).
        #[arg(required = true)]
        manifests: Vec<PathBuf>,
        /// The key directory (default: the manifest's `security.keys`, or `keys` beside it).
        #[arg(long, value_name = "DIR")]
        keys: Option<PathBuf>,
    },
    /// Validate manifests, behaviours (YAML) and policies (.rhai); print every problem as
    /// file:line:col and exit non-zero if any.
    Check {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a behaviour's statechart as Mermaid (or DOT).
    Graph {
        /// The behaviour file.
        behaviour: PathBuf,
        /// Print Graphviz DOT instead of Mermaid.
        #[arg(long)]
        dot: bool,
    },
}

/// How people watch the agents of a process.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Observing")]
struct ObserveArgs {
    /// Serve Prometheus metrics of every agent on this address (any path), such as
    /// `127.0.0.1:9464`.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Serve the live console (a web page) on this address, such as `127.0.0.1:8080`.
    #[arg(long, value_name = "ADDR")]
    console: Option<std::net::SocketAddr>,
}

/// Where the agents of `selflet run` meet others. Flags override the manifests'
/// `network.zenoh` settings.
#[derive(Debug, Args)]
#[command(next_help_heading = "Network")]
struct NetworkArgs {
    /// `local`: the agents of this process only; `zenoh`: across processes and machines.
    /// Default: zenoh if a manifest has `network.zenoh` settings or a Zenoh flag is given,
    /// local otherwise.
    #[arg(long, value_enum)]
    network: Option<NetworkKind>,
    /// Zenoh mode: peer (direct connections) or client (through a router or peer).
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// An endpoint to listen on, such as `tcp/0.0.0.0:7447` (repeat for several).
    #[arg(long, value_name = "ENDPOINT")]
    listen: Vec<String>,
    /// An endpoint to connect to, such as `tcp/127.0.0.1:7447` (repeat for several).
    #[arg(long, value_name = "ENDPOINT")]
    connect: Vec<String>,
    /// The key-space namespace: keys are `selflet/<namespace>/...`.
    #[arg(long)]
    namespace: Option<String>,
    /// Also find peers by UDP multicast (off by default: explicit endpoints work
    /// everywhere).
    #[arg(long)]
    multicast_scouting: bool,
    /// `secure`: every message proves its sender with the sender's key, and nothing else is
    /// accepted; `open`: names are claims, and code is never taught across processes.
    /// Default: the manifests' `security`, or open.
    #[arg(long, value_enum)]
    security: Option<SecurityArg>,
    /// The key directory in secure mode (default: the manifests' `security.keys`, or `keys`
    /// beside the first manifest).
    #[arg(long, value_name = "DIR")]
    keys: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SecurityArg {
    Open,
    Secure,
}

fn duration(text: &str) -> Result<std::time::Duration, String> {
    selflet::duration::parse(text).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum NetworkKind {
    Local,
    Zenoh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Peer,
    Client,
}

pub(crate) fn main(cli: Cli) -> ExitCode {
    // Wide enough that `file:line:col: message` stays on one line for ordinary messages.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(miette::MietteHandlerOpts::new().width(160).build())
    }));
    match cli.command {
        Command::Check { files } => check::check(&files),
        Command::Run {
            manifests,
            watch,
            grace,
            observe,
            network,
        } => run::run(&manifests, watch, grace, &observe, &network),
        Command::Host(args) => host::host(&args),
        Command::Console { serve, network } => console::console(serve, &network),
        Command::Keys { manifests, keys } => keys::keys(&manifests, keys.as_deref()),
        Command::Graph { behaviour, dot } => {
            match selflet::behaviour::Behaviour::load(&behaviour) {
                Ok(b) => {
                    let out = if dot {
                        selflet::behaviour::graph::dot(&b)
                    } else {
                        selflet::behaviour::graph::mermaid(&b)
                    };
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    report(e);
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Prints every problem of a file that failed to load, each with its source excerpt.
pub(crate) fn report(err: selflet::LoadError) {
    match err {
        selflet::LoadError::Invalid(problems) => {
            for p in problems {
                eprintln!("{:?}", miette::Report::new(p));
            }
        }
        read => eprintln!("{:?}", miette::Report::new(read)),
    }
}
