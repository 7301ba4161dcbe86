//! The error type of the RESP codec.

/// Why RESP bytes could not be parsed, framed or decoded.
///
/// Offsets count from the first byte of the command or value being parsed (for
/// [`super::CommandParser`], after any blank lines it skipped), so a log line can point at the
/// byte a peer got wrong. Every error leaves the stream out of sync: answer the client (see
/// [`super::error_reply`]) and close the connection.
///
/// This is a type of its own rather than a variant of [`crate::WireError`]: RESP problems are
/// about lines, counts and quoting, not about PostgreSQL's messages and fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RespError {
    /// A value starts with a byte that is no RESP type (or a RESP3 streamed type, which Redis
    /// never sends and this codec does not support).
    #[error("unknown RESP type byte {:?} at byte {offset}", char::from(*byte))]
    UnknownType {
        /// The byte found.
        byte: u8,
        /// Where it is.
        offset: usize,
    },
    /// An element of a command array is not a bulk string (Redis: "expected '$'").
    #[error("expected '$' at byte {offset}, found {:?}", char::from(*found))]
    ExpectedBulk {
        /// The byte found instead of `$`.
        found: u8,
        /// Where it is.
        offset: usize,
    },
    /// A count or length is not a decimal integer in Redis' strict form (no sign other than
    /// `-`, no leading zeros, at most 20 characters), or is negative where that is not allowed
    /// (`$-5`, `*-2`, `%-1`).
    #[error("invalid {:?} length or count at byte {offset}", char::from(*kind))]
    InvalidLength {
        /// The type byte whose count or length is wrong (`*`, `$`, `%`…).
        kind: u8,
        /// Where the type byte is.
        offset: usize,
    },
    /// A bulk string is longer than [`super::Limits::max_bulk`]; nothing was allocated for it.
    #[error("bulk string of {len} bytes at byte {offset} exceeds the limit of {max}")]
    BulkTooLarge {
        /// The length declared.
        len: u64,
        /// The limit in force.
        max: usize,
        /// Where the bulk string starts.
        offset: usize,
    },
    /// An aggregate declares more elements than [`super::Limits::max_elements`].
    #[error("aggregate of {count} elements at byte {offset} exceeds the limit of {max}")]
    TooManyElements {
        /// The count declared.
        count: u64,
        /// The limit in force.
        max: usize,
        /// Where the aggregate starts.
        offset: usize,
    },
    /// Aggregates are nested deeper than [`super::Limits::max_depth`].
    #[error("aggregate at byte {offset} nests deeper than the limit of {max} levels")]
    TooDeep {
        /// The limit in force.
        max: usize,
        /// Where the aggregate one level too deep starts.
        offset: usize,
    },
    /// The payload of a bulk string is not followed by CRLF (its length is wrong).
    #[error("missing CRLF at byte {offset} after a bulk payload")]
    MissingCrlf {
        /// Where CRLF was expected.
        offset: usize,
    },
    /// A line is longer than its limit, with or without its line ending.
    #[error("{:?} line at byte {offset} is longer than {max} bytes", char::from(*kind))]
    LineTooLong {
        /// The type byte of the line, or 0 for an inline command.
        kind: u8,
        /// The limit in force ([`super::Limits::max_inline`] or [`super::Limits::max_bulk`]).
        max: usize,
        /// Where the line starts.
        offset: usize,
    },
    /// A line's content is not what its type allows: an integer that is not one, a boolean
    /// other than `t`/`f`, a null with content, a double or big number that does not parse, a
    /// verbatim string without its `xxx:` format prefix.
    #[error("invalid {:?} value at byte {offset}", char::from(*kind))]
    InvalidValue {
        /// The type byte of the value.
        kind: u8,
        /// Where the value starts.
        offset: usize,
    },
    /// An inline command has an unterminated quote, or a closing quote followed by something
    /// other than a space (Redis: "unbalanced quotes in request").
    #[error("unbalanced quotes in inline command at byte {offset}")]
    UnbalancedQuotes {
        /// Where the offending quoted argument starts.
        offset: usize,
    },
    /// An inline command contains a NUL byte. Redis reads inline commands as C strings, so
    /// what it would make of the bytes after the NUL differs from what the proxy would.
    #[error("NUL byte in inline command at byte {offset}")]
    InlineNul {
        /// Where the NUL is.
        offset: usize,
    },
}
