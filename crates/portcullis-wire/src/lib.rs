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
//!
//! Every decoder treats its input as hostile: lengths are checked before anything is
//! allocated, and malformed input yields a typed error ([`WireError`], [`resp::RespError`]) that
//! says what was wrong.
#![forbid(unsafe_code)]

mod error;
pub mod postgres;
pub mod resp;
pub mod sniff;

pub use error::WireError;
