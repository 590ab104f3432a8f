//! `selflet check`: validate the files users write.

use std::path::PathBuf;
use std::process::ExitCode;

use selflet::behaviour::Behaviour;
use selflet::policy::Policies;
use selflet::{Agent, AgentError, LoadError, Manifest, SourceFile};

/// What a file is: `.rhai` files are policies; a YAML file with a top-level `behaviour:` key
/// is a behaviour, any other YAML file a manifest.
fn check_one(file: &PathBuf) -> Result<String, LoadError> {
    let source = SourceFile::read(file)?;
    if file.extension().is_some_and(|e| e == "rhai") {
        let warnings = Policies::check(&source)?;
        for w in &warnings {
            eprintln!("{w}");
        }
        return Ok(format!("policy, {} warning(s)", warnings.len()));
    }
    let is_behaviour = source.text().lines().any(|l| l.starts_with("behaviour:"));
    if is_behaviour {
        let b = Behaviour::parse(source)?;
        Ok(format!(
            "behaviour `{}`, {} states",
            b.name(),
            b.state_names().len()
        ))
    } else {
        let base = file.parent().unwrap_or(std::path::Path::new("."));
        let m = Manifest::parse(&source, base)?;
        // What `selflet run` checks before starting the agent, by the same code.
        let agent = Agent::from_manifest(&m).predictor_kinds(selflet::plugins::kinds());
        match agent.check() {
            Ok(()) => Ok(format!("manifest of agent `{}`", m.name)),
            Err(AgentError::Load(e)) => Err(e),
            Err(other) => Err(source.error(other.to_string()).into()),
        }
    }
}

pub(super) fn check(files: &[PathBuf]) -> ExitCode {
    let mut failed = 0;
    for file in files {
        match check_one(file) {
            Ok(what) => println!("ok: {} ({what})", file.display()),
            Err(e) => {
                failed += 1;
                super::report(e);
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{failed} of {} file(s) failed the check", files.len());
        ExitCode::FAILURE
    }
}
