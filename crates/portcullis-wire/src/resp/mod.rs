//! RESP, the Redis serialization protocol (RESP2 and RESP3), for the Redis agent.
//!
//! # Client commands
//!
//! Keep one `BytesMut` and one [`CommandParser`] per connection. After every read, split
//! commands off with [`CommandParser::parse`] until it returns `Ok(None)`. A [`Command`] has the
//! arguments Redis will see (multibulk arrays and inline lines, split with Redis' own quoting
//! rules) for policy and audit, and the raw bytes to relay unchanged.
//!
//! # Server replies
//!
//! Replies are relayed, not decoded: a [`ReplyFramer`] says where each value ends (every RESP2
//! and RESP3 type, an attribute counted with the value it annotates) without recursion and
//! without rescanning. The few replies the agent reads itself during login are decoded with
//! [`decode_reply`] into a [`Reply`].
//!
//! ```
//! use bytes::BytesMut;
//! use portcullis_wire::resp::{
//!     decode_reply, encode_command, error_reply, CommandParser, Limits, ReplyFramer,
//! };
//!
//! # fn main() -> Result<(), portcullis_wire::resp::RespError> {
//! // A pipeline from a client, arriving in two reads.
//! let mut rx = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\nFLUSHALL\r"[..]);
//! let mut parser = CommandParser::new(Limits::default());
//! let get = parser.parse(&mut rx)?.expect("a whole command");
//! assert_eq!(get.name_upper(), "GET");
//! assert_eq!(get.raw.len(), 22); // relay these bytes as they are
//! assert!(parser.parse(&mut rx)?.is_none()); // the inline FLUSHALL is not complete yet
//! rx.extend_from_slice(b"\n");
//! let flush = parser.parse(&mut rx)?.expect("a whole command");
//! assert!(flush.is("flushall"));
//! let refusal = error_reply("NOPERM", "Portcullis: FLUSHALL is not allowed for role dev");
//! assert!(refusal.starts_with(b"-NOPERM "));
//!
//! // Replies from the server: frame, relay.
//! let mut from_server = BytesMut::from(&b"$5\r\nhello\r\n*2\r\n:1"[..]);
//! let mut framer = ReplyFramer::new(Limits::replies());
//! assert_eq!(framer.split(&mut from_server)?.as_deref(), Some(&b"$5\r\nhello\r\n"[..]));
//! assert_eq!(framer.split(&mut from_server)?, None); // the array is still arriving
//!
//! // Login: the agent talks to the server itself.
//! let auth = encode_command(&["AUTH", "agent", "s3cret"]);
//! # let _ = auth;
//! let (reply, _) = decode_reply(b"+OK\r\n", &Limits::default())?.expect("whole reply");
//! assert!(reply.is_ok());
//! # Ok(())
//! # }
//! ```
//!
//! # Hostile input
//!
//! Counts and lengths are checked against [`Limits`] before anything is sized from them, and
//! nothing is ever allocated from a declared count or length: memory grows only with bytes that
//! actually arrived. Integers are read exactly as strictly as Redis reads them (no `+`, no
//! leading zeros), and a bulk payload must be followed by CRLF (Redis does not check; the
//! codec refuses rather than guess where the next command starts). Inline commands with a NUL
//! byte are refused, since Redis reads them as C strings. Every error says what was wrong and
//! where; after one the connection must be closed.

mod command;
mod decode;
mod encode;
mod error;
mod framer;
mod inline;
mod item;
mod limits;
mod line;
mod parser;
mod reply;
mod scanner;

pub use command::{Command, CommandFormat};
pub use decode::decode_reply;
pub use encode::{encode_command, error_reply};
pub use error::RespError;
pub use framer::{frame_value, ReplyFramer};
pub use limits::Limits;
pub use parser::{parse_command, CommandParser};
pub use reply::Reply;
pub use scanner::ReplyScanner;
