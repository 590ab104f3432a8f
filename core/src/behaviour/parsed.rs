//! Behaviours validated lately, by their source.
//!
//! Validating a behaviour is costly — YAML parsing is most of it, about 70 µs for a
//! twenty-line file on the 2-core reference machine — and the same text is validated again
//! and again: by each of thousands of agents reading one manifest, for each learner a package
//! is taught to, when a policy reinstalls an unchanged file. Validation depends on the text
//! and its name only (the name is in every message about the file), so the behaviour validated
//! from the same name and text is handed out again; since a behaviour's model is shared, the
//! agents that read one file then hold one copy of it between them.
//!
//! Bounded in entries and in text, so that what peers send (taught packages) only displaces
//! other entries.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::Behaviour;
use crate::source::{LoadError, SourceFile};
use crate::sync::lock;

/// How many behaviours are kept.
const ENTRIES: usize = 32;

/// The longest text kept, in bytes: a behaviour file is a few kilobytes.
const MAX_TEXT: usize = 64 * 1024;

/// The process's recent behaviours.
static RECENT: Mutex<Recent> = Mutex::new(Recent(VecDeque::new()));

/// Recently validated behaviours, most recently used first.
struct Recent(VecDeque<Behaviour>);

/// The behaviour `validate` makes of `source`, or the one made of the same source lately.
pub(super) fn parse(
    source: SourceFile,
    validate: impl FnOnce(SourceFile) -> Result<Behaviour, LoadError>,
) -> Result<Behaviour, LoadError> {
    parse_with(&RECENT, source, validate)
}

fn parse_with(
    recent: &Mutex<Recent>,
    source: SourceFile,
    validate: impl FnOnce(SourceFile) -> Result<Behaviour, LoadError>,
) -> Result<Behaviour, LoadError> {
    if let Some(b) = lock(recent).get(&source) {
        return Ok(b);
    }
    // Validated outside the lock: other files are read meanwhile. Two threads validating the
    // same new file both keep it; the older copy is evicted in its turn.
    let b = validate(source)?;
    lock(recent).keep(&b);
    Ok(b)
}

impl Recent {
    fn get(&mut self, source: &SourceFile) -> Option<Behaviour> {
        let i = self.0.iter().position(|b| same(b.source(), source))?;
        let b = self.0.remove(i)?;
        self.0.push_front(b.clone());
        Some(b)
    }

    fn keep(&mut self, b: &Behaviour) {
        if b.source().text().len() > MAX_TEXT {
            return;
        }
        self.0.truncate(ENTRIES - 1);
        self.0.push_front(b.clone());
    }
}

fn same(a: &SourceFile, b: &SourceFile) -> bool {
    a.name() == b.name() && a.text() == b.text()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "behaviour: cached\ninitial: a\nstates:\n  a: { final: true }\n";

    fn fresh() -> Mutex<Recent> {
        Mutex::new(Recent(VecDeque::new()))
    }

    /// Parses through `recent`, counting validations in `runs`.
    fn parse_counting(
        recent: &Mutex<Recent>,
        runs: &mut u32,
        name: &str,
        text: &str,
    ) -> Result<Behaviour, LoadError> {
        parse_with(recent, SourceFile::new(name, text), |s| {
            *runs += 1;
            super::super::validate::validate(s, &super::super::checker())
        })
    }

    #[test]
    fn a_source_validated_again_gives_the_same_shared_model() {
        let (recent, mut runs) = (fresh(), 0);
        let first = parse_counting(&recent, &mut runs, "a.yaml", TEXT).expect("valid");
        let again = parse_counting(&recent, &mut runs, "a.yaml", TEXT).expect("valid");
        assert_eq!(runs, 1, "validated once");
        assert!(first.shares_model_with(&again));
    }

    #[test]
    fn another_name_or_text_is_validated_anew() {
        let (recent, mut runs) = (fresh(), 0);
        let first = parse_counting(&recent, &mut runs, "a.yaml", TEXT).expect("valid");
        let renamed = parse_counting(&recent, &mut runs, "b.yaml", TEXT).expect("valid");
        assert_eq!(renamed.source().name(), "b.yaml");
        let edited = TEXT.replace("cached", "edited");
        let other = parse_counting(&recent, &mut runs, "a.yaml", &edited).expect("valid");
        assert_eq!(other.name(), "edited");
        assert_eq!(runs, 3);
        assert!(!first.shares_model_with(&renamed) && !first.shares_model_with(&other));
    }

    #[test]
    fn an_invalid_source_is_validated_and_refused_every_time() {
        let (recent, mut runs) = (fresh(), 0);
        let first = parse_counting(&recent, &mut runs, "bad.yaml", "behaviour: bad\n");
        let again = parse_counting(&recent, &mut runs, "bad.yaml", "behaviour: bad\n");
        assert_eq!(runs, 2);
        let (first, again) = (first.expect_err("no states"), again.expect_err("no states"));
        assert_eq!(first.to_string(), again.to_string());
    }

    #[test]
    fn the_least_recently_used_go_first_and_long_texts_are_not_kept() {
        let (recent, mut runs) = (fresh(), 0);
        let text = |i: usize| TEXT.replace("cached", &format!("b{i}"));
        for i in 0..ENTRIES {
            parse_counting(&recent, &mut runs, "f.yaml", &text(i)).expect("valid");
        }
        // Using the oldest makes it the newest: the next one in evicts the second oldest.
        parse_counting(&recent, &mut runs, "f.yaml", &text(0)).expect("valid");
        parse_counting(&recent, &mut runs, "f.yaml", &text(ENTRIES)).expect("valid");
        assert_eq!(lock(&recent).0.len(), ENTRIES);
        assert_eq!(runs, ENTRIES as u32 + 1);
        parse_counting(&recent, &mut runs, "f.yaml", &text(0)).expect("valid");
        parse_counting(&recent, &mut runs, "f.yaml", &text(1)).expect("valid");
        assert_eq!(runs, ENTRIES as u32 + 2, "b0 was kept, b1 was not");

        let long = format!("{TEXT}# {}\n", "x".repeat(MAX_TEXT));
        parse_counting(&recent, &mut runs, "long.yaml", &long).expect("valid");
        parse_counting(&recent, &mut runs, "long.yaml", &long).expect("valid");
        assert_eq!(
            runs,
            ENTRIES as u32 + 4,
            "a text above the limit is validated each time"
        );
    }
}
