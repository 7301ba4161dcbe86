//! Wire-protocol codecs for the proxy and the database agent.
//!
//! Everything here is pure: bytes in, typed messages or typed errors out. There is no I/O (no
//! tokio), so the same code runs in the proxy, the agent, the tests and the fuzzers.
//!
//! - [`sniff`] classifies the first bytes on the proxy's single public port (TLS, PostgreSQL,
//!   plain HTTP, …) without ever panicking.
//! - [`postgres`] is the PostgreSQL v3 protocol (3.0 and 3.2): two-step framing over a
//!   persistent `BytesMut`, one message per file, raw `Bytes` kept so a relayed message is never
//!   copied, and fields decoded only when the audit log or the startup exchange needs them.
//! - [`resp`] is the Redis protocol (RESP2 and RESP3): client commands (multibulk and inline,
//!   split with Redis' own quoting rules) parsed resumably with their raw bytes kept for
//!   relaying, server replies framed without recursion or rescanning, the few replies the
//!   agent reads itself decoded, and the commands and errors it sends encoded.
//! - [`mysql`] is the MySQL / MariaDB client/server protocol: packet framing (with 16 MiB
//!   continuations and sequence-id checks), the handshake both ways (HandshakeV10, SSLRequest,
//!   HandshakeResponse41, auth switch, OK/ERR/EOF), the commands the agent audits (COM_QUERY
//!   with query attributes, COM_STMT_EXECUTE with binary values rendered as text…) and a
//!   scanner for `USE db` statements in query text.
//!
//! Every decoder treats its input as hostile: lengths are checked before anything is
//! allocated, and malformed input yields a typed error ([`WireError`], [`resp::RespError`]) that
//! says what was wrong.
#![forbid(unsafe_code)]

mod error;
pub mod mysql;
pub mod postgres;
pub mod resp;
pub mod sniff;
mod wire_string;

pub use error::WireError;
pub use wire_string::{utf8_lossy, WireString};
