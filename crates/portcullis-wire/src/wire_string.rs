//! `WireString`: a protocol string kept as raw bytes.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

/// A string field from the wire (statement or user name, SQL text, error message…), without its
/// NUL terminator or length prefix, kept as the raw `Bytes` it arrived in.
///
/// It exists because database protocols carry strings in the connection's encoding
/// (PostgreSQL's `client_encoding`, MySQL's character set), not necessarily UTF-8: relaying
/// must not reject or alter them, and decoding must not copy them. PostgreSQL calls it
/// [`crate::postgres::PgString`], MySQL [`crate::mysql::MysqlString`].
/// Text is produced only on demand ([`WireString::to_str`], [`WireString::to_string_lossy`]) —
/// typically once, for the audit log.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WireString(Bytes);

impl WireString {
    /// Wraps raw bytes; a NUL inside is refused when the message is encoded.
    pub fn from_bytes(bytes: Bytes) -> Self {
        Self(bytes)
    }

    /// A string from a constant, without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        Self(Bytes::from_static(s.as_bytes()))
    }

    /// The raw bytes, as on the wire (without the NUL).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The raw bytes, giving up the wrapper.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// A copy in its own allocation. A `WireString` from a decoded message shares the read
    /// buffer it arrived in, so keeping one for long (a prepared statement's SQL, held for the
    /// audit log until the statement is closed) would pin that whole buffer; detach it first.
    #[must_use]
    pub fn detached(&self) -> Self {
        Self(Bytes::copy_from_slice(&self.0))
    }

    /// The text, if it is valid UTF-8.
    pub fn to_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.0)
    }

    /// The text, with invalid UTF-8 replaced by U+FFFD; borrows when the bytes are valid.
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        utf8_lossy(&self.0)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string is empty (for PostgreSQL: the unnamed statement or portal).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for WireString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.to_string_lossy(), f)
    }
}

impl fmt::Display for WireString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

impl From<&str> for WireString {
    fn from(s: &str) -> Self {
        Self(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for WireString {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}

impl From<Bytes> for WireString {
    fn from(b: Bytes) -> Self {
        Self(b)
    }
}

impl PartialEq<str> for WireString {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for WireString {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

/// `bytes` as text, with invalid UTF-8 replaced by U+FFFD; borrows when they are valid.
///
/// The same result as [`String::from_utf8_lossy`], checked first with [`std::str::from_utf8`],
/// which reads valid text (nearly all of it) a word at a time; `from_utf8_lossy` walks it
/// byte by byte. Statement and portal names, parameters and query text of every audited
/// message go through here.
pub fn utf8_lossy(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_lossy_is_from_utf8_lossy_and_borrows_valid_text() {
        let cases: [&[u8]; 8] = [
            b"",
            b"P_0",
            "sélect ✓ 𝄞".as_bytes(),
            b"\xff",
            b"ab\xc3",
            b"\xe2\x82",
            b"ok\xed\xa0\x80surrogate",
            b"\xf0\x9f\x98\x80\x80tail",
        ];
        for bytes in cases {
            let ours = utf8_lossy(bytes);
            assert_eq!(ours, String::from_utf8_lossy(bytes), "{bytes:?}");
            assert_eq!(
                matches!(ours, Cow::Borrowed(_)),
                std::str::from_utf8(bytes).is_ok()
            );
        }
    }
}
