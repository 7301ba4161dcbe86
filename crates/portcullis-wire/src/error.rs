//! The one error type of this crate.

/// Why bytes could not be framed, decoded or encoded.
///
/// Every variant names what was wrong (which message, which field), so a log line or the error
/// sent back to a client is enough to diagnose a broken peer without a packet capture. After a
/// framing error the stream is out of sync and the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A length prefix is negative or smaller than the bytes it must at least cover.
    #[error("invalid message length {len}: it must be at least {min}")]
    InvalidLength {
        /// The length as sent (signed, as PostgreSQL reads it).
        len: i64,
        /// The smallest valid length for this kind of packet.
        min: usize,
    },
    /// A length prefix is larger than the configured limit; nothing was allocated for it.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// The length as sent.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The message ended in the middle of a field.
    #[error("{message}: truncated while reading {field}")]
    Truncated {
        /// The message being decoded.
        message: &'static str,
        /// The field that did not fit.
        field: &'static str,
    },
    /// A string field has no NUL terminator before the end of the message.
    #[error("{message}: {field} is missing its NUL terminator")]
    MissingNul {
        /// The message being decoded.
        message: &'static str,
        /// The unterminated field.
        field: &'static str,
    },
    /// A string to be encoded contains a NUL byte, which would end it early on the wire.
    #[error("{message}: {field} contains a NUL byte")]
    InteriorNul {
        /// The message being encoded.
        message: &'static str,
        /// The offending field.
        field: &'static str,
    },
    /// A field that must be UTF-8 is not.
    #[error("{message}: {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The message being decoded.
        message: &'static str,
        /// The offending field (for startup parameters, the parameter's name).
        field: String,
    },
    /// Bytes remain after the last field of a message.
    #[error("{message}: {count} unexpected bytes after the last field")]
    TrailingBytes {
        /// The message being decoded.
        message: &'static str,
        /// How many bytes were left over.
        count: usize,
    },
    /// A frame was handed to the decoder of a different message type.
    #[error("expected message type {:?}, found {:?}", char::from(*expected), char::from(*found))]
    UnexpectedTag {
        /// The type byte the decoder handles.
        expected: u8,
        /// The type byte of the frame.
        found: u8,
    },
    /// A numeric field holds a value the protocol does not allow.
    #[error("{message}: invalid {field} {value}")]
    InvalidValue {
        /// The message being decoded or encoded.
        message: &'static str,
        /// The offending field.
        field: &'static str,
        /// The value found.
        value: i64,
    },
    /// A field is malformed in a way a number cannot describe.
    #[error("{message}: invalid {field}: {reason}")]
    InvalidField {
        /// The message being decoded or encoded.
        message: &'static str,
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// More items than the protocol's 16-bit count can carry (more than 65535 parameters).
    #[error("{message}: too many {field} ({count}, at most {max})")]
    TooMany {
        /// The message being encoded or decoded.
        message: &'static str,
        /// What there are too many of.
        field: &'static str,
        /// How many there are.
        count: usize,
        /// The most the protocol allows.
        max: usize,
    },
    /// A StartupMessage asks for a protocol version this codec does not speak.
    #[error("unsupported frontend protocol {major}.{minor}: only 3.0 and 3.2 are supported")]
    UnsupportedProtocolVersion {
        /// Requested major version.
        major: u16,
        /// Requested minor version.
        minor: u16,
    },
    /// The initial packet carries a special request code (major version 1234) that is unknown.
    #[error("unknown startup request code {code} (1234.{})", code & 0xffff)]
    UnknownRequestCode {
        /// The code as sent.
        code: u32,
    },
    /// A required startup parameter is missing.
    #[error("startup message has no {name:?} parameter")]
    MissingParameter {
        /// The missing parameter.
        name: &'static str,
    },
    /// A startup parameter appears twice; refused so that the proxy, the agent and the server
    /// cannot disagree about which value counts.
    #[error("startup parameter {name:?} appears more than once")]
    DuplicateParameter {
        /// The repeated parameter.
        name: String,
    },
    /// A MySQL packet's sequence id is not the one the exchange expects (a packet was lost,
    /// injected or reordered); the proxy refuses such a handshake.
    #[error("packet sequence id {found} where {expected} was expected")]
    SequenceMismatch {
        /// The sequence id the exchange expects next.
        expected: u8,
        /// The sequence id the packet carries.
        found: u8,
    },
    /// A MySQL payload starts with a header byte its decoder does not handle (an ERR packet
    /// handed to the OK decoder, say).
    #[error("{message}: expected header byte {expected:#04x}, found {found:#04x}")]
    UnexpectedHeader {
        /// The message being decoded.
        message: &'static str,
        /// The header byte the decoder handles (the first one, if it handles several).
        expected: u8,
        /// The header byte of the payload.
        found: u8,
    },
    /// A COM_STMT_EXECUTE names a statement whose parameter count is unknown (it was never
    /// prepared on this connection, or already closed), so its values cannot be decoded.
    #[error("COM_STMT_EXECUTE for unknown statement {statement_id}")]
    UnknownStatement {
        /// The statement id as sent.
        statement_id: u32,
    },
}
