//! Names: of agents, services, behaviours, abilities, predictors, namespaces.
//!
//! One rule for all of them, so that a name is safe wherever it ends up: in bus topics, file
//! names, Zenoh key expressions and log lines. Names also arrive from peers, so they have a
//! length limit too.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

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

/// A name as messages and directories carry it: agents', services'.
///
/// The text of a name, held inline when it is at most 24 bytes long (most names are), so that
/// copying one — every envelope names its sender and receiver, every gossip entry a provider
/// and a service — allocates nothing, and a list of providers holds their names in place
/// rather than behind a pointer each. Longer names (up to any length) go to the heap, as a
/// `String` would.
///
/// A `Name` is only storage: whether its text follows [the rule](is_valid_name) is checked
/// where names come in — from peers, manifests and users — as it was when these were
/// `String`s. It dereferences to `str`, compares with `str` and `String`, and serializes as a
/// string.
///
/// ```
/// use selflet_core::name::Name;
///
/// let agent = Name::from("provider-1");
/// assert_eq!(agent, "provider-1");
/// assert!(agent.starts_with("provider"));
/// let copy = agent.clone(); // no allocation
/// assert_eq!(copy.as_str(), "provider-1");
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Name(CompactString);

impl Name {
    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.0.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for Name {
    fn from(name: &str) -> Name {
        Name(CompactString::from(name))
    }
}

impl From<&String> for Name {
    fn from(name: &String) -> Name {
        Name::from(name.as_str())
    }
}

impl From<String> for Name {
    fn from(name: String) -> Name {
        // Short names are copied inline and the string freed; long ones keep its buffer.
        Name(CompactString::from(name))
    }
}

impl From<&Name> for Name {
    fn from(name: &Name) -> Name {
        name.clone()
    }
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        name.0.into_string()
    }
}

macro_rules! eq_str {
    ($($other:ty),*) => {$(
        impl PartialEq<$other> for Name {
            fn eq(&self, other: &$other) -> bool {
                self.as_str() == AsRef::<str>::as_ref(other)
            }
        }

        impl PartialEq<Name> for $other {
            fn eq(&self, other: &Name) -> bool {
                AsRef::<str>::as_ref(self) == other.as_str()
            }
        }
    )*};
}

eq_str!(str, &str, String);

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
