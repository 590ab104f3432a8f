//! Command-line parsing and the subcommands.

mod check;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run and check SelfLet agents.
#[derive(Debug, Parser)]
#[command(name = "selflet", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run agents from manifests, in this process, until Ctrl-C.
    Run {
        /// Agent manifests (YAML).
        #[arg(required = true)]
        manifests: Vec<PathBuf>,
        /// Reload a manifest's policy files when they change (a file that does not compile
        /// leaves the running version in place).
        #[arg(long)]
        watch: bool,
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

pub(crate) fn main(cli: Cli) -> ExitCode {
    // Wide enough that `file:line:col: message` stays on one line for ordinary messages.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(miette::MietteHandlerOpts::new().width(160).build())
    }));
    match cli.command {
        Command::Check { files } => check::check(&files),
        Command::Run { manifests, watch } => run::run(&manifests, watch),
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
