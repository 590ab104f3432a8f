//! `selflet keys`: make agents' keys, and show their public keys.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use selflet::Manifest;
use selflet::transport::{Keyring, Security};

/// The key directory of a manifest: `--keys`, or its `security.keys`, or `keys` beside it.
fn key_dir(m: &Manifest, path: &Path, flag: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_owned();
    }
    match &m.security {
        Security::Secure { keys } => keys.clone(),
        _ => path.parent().unwrap_or(Path::new(".")).join("keys"),
    }
}

pub(super) fn keys(paths: &[PathBuf], flag: Option<&Path>) -> ExitCode {
    let mut failed = false;
    for path in paths {
        let m = match Manifest::load(path) {
            Ok(m) => m,
            Err(e) => {
                super::report(e);
                failed = true;
                continue;
            }
        };
        let dir = key_dir(&m, path, flag);
        match Keyring::new(&dir).own_key(&m.name) {
            Ok(public) => println!(
                "{} {public} {}",
                m.name,
                dir.join(format!("{}.pub", m.name)).display()
            ),
            Err(e) => {
                eprintln!("error: agent `{}`: {e}", m.name);
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
