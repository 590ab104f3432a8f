//! The demos' checks of what they reproduce: what is claimed, whether it holds in this run, and
//! the figures — printed and in `--json` alike.
#![allow(dead_code)] // each demo uses what it needs

use selflet::Value;

/// One check: what it says, whether it holds, and the figures.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub(crate) name: String,
    pub(crate) holds: bool,
    pub(crate) detail: String,
}

impl Check {
    pub(crate) fn new(name: impl Into<String>, holds: bool, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            holds,
            detail: detail.into(),
        }
    }

    /// `{name, holds, detail}`.
    pub(crate) fn to_value(&self) -> Value {
        Value::map([
            ("name", Value::from(self.name.as_str())),
            ("holds", Value::Bool(self.holds)),
            ("detail", Value::from(self.detail.as_str())),
        ])
    }
}

/// Prints each check on a line, marked ✓ or ✗.
pub(crate) fn print(checks: &[Check]) {
    for c in checks {
        let mark = if c.holds { "✓" } else { "✗" };
        println!("{mark} {}: {}", c.name, c.detail);
    }
}
