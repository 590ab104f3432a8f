//! Names: of agents, services, behaviours, abilities, predictors, namespaces.
//!
//! One rule for all of them, so that a name is safe wherever it ends up: in bus topics, file
//! names, Zenoh key expressions and log lines. Names also arrive from peers, so they have a
//! length limit too.

/// The longest name, in bytes. Names come from peers too; a limit keeps what they can make an
/// agent store small.
pub const MAX_NAME_LEN: usize = 64;

/// The rule, as error messages state it.
pub const NAME_RULE: &str =
    "a name starts with a letter, has only letters, digits, `_` and `-`, and at most 64 characters";

/// Whether `name` follows the rule: ASCII letters, digits, `_` and `-`, starting with a letter,
/// at most [`MAX_NAME_LEN`] bytes.
///
/// ```
/// use selflet_core::name::is_valid_name;
///
/// assert!(is_valid_name("service-1"));
/// assert!(!is_valid_name("1st"));
/// assert!(!is_valid_name("a/b"));
/// ```
pub fn is_valid_name(name: &str) -> bool {
    // Bytes, not chars: every accepted character is ASCII, and no byte of a multi-byte
    // character is (peers' gossip checks two names per entry).
    let mut bytes = name.bytes();
    name.len() <= MAX_NAME_LEN
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded() {
        assert!(is_valid_name(&"a".repeat(MAX_NAME_LEN)));
        assert!(!is_valid_name(&"a".repeat(MAX_NAME_LEN + 1)));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("é"));
    }
}
