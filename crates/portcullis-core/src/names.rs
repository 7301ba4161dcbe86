//! Rules for the names of users, roles, databases and clusters.
//!
//! Names end up in certificate subjects, backend keys, file names and audit events, so they are
//! restricted to a conservative alphabet once, here, instead of being escaped everywhere.

use thiserror::Error;

/// Longest name accepted for any resource.
pub const MAX_NAME_LEN: usize = 128;

/// A name was refused; the message says which rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {kind} name {name:?}: {reason}")]
pub struct InvalidName {
    /// What the name was for ("user", "role", ...).
    pub kind: &'static str,
    /// The refused name (names are not secrets).
    pub name: String,
    /// Which rule it broke and what is allowed instead.
    pub reason: &'static str,
}

/// Checks a resource name: 1–128 characters from `A-Z a-z 0-9 . _ @ -`, starting with a letter
/// or digit.
pub fn validate_name(kind: &'static str, name: &str) -> Result<(), InvalidName> {
    let fail = |reason| {
        Err(InvalidName {
            kind,
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return fail("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return fail("it is longer than 128 characters");
    }
    let mut chars = name.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) {
        return fail("it must start with a letter or digit");
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-')) {
        return fail("only letters, digits and . _ @ - are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in ["alice", "a", "bob.smith@example.com", "db-1_a", "9lives"] {
            assert!(validate_name("user", n).is_ok(), "{n}");
        }
    }

    #[test]
    fn refuses_bad_names() {
        for n in ["", "-x", ".x", "a b", "a/b", "a\0", "é", &"a".repeat(129)] {
            assert!(validate_name("user", n).is_err(), "{n:?}");
        }
    }
}
