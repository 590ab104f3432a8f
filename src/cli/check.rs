//! `selflet check`: validate the files users write.

use std::path::PathBuf;
use std::process::ExitCode;

use selflet::Manifest;

pub(super) fn check(files: &[PathBuf]) -> ExitCode {
    let mut failed = 0;
    for file in files {
        match Manifest::load(file) {
            Ok(m) => println!("ok: {} (manifest of agent `{}`)", file.display(), m.name),
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
