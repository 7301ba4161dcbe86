//! The PostgreSQL frontend/backend protocol, versions 3.0 and 3.2.
//!
//! # Reading a connection
//!
//! Keep one `BytesMut` per direction for the connection's whole life. The client's first
//! packet has no type byte: split it with [`Framer::split_startup`] and decode it with
//! [`InitialPacket::decode`]. Every later message is a [`Frame`] (type byte and raw body), split
//! with [`Framer::split`]; both return `Ok(None)` until the whole packet is buffered.
//!
//! ```
//! use bytes::BytesMut;
//! use portcullis_wire::postgres::{
//!     sqlstate, ErrorResponse, Framer, FrontendMessage, InitialPacket, Message, Query,
//!     StartupMessage, ProtocolVersion,
//! };
//!
//! # fn main() -> Result<(), portcullis_wire::WireError> {
//! // Bytes as they arrive from a client (here: a startup packet and half a Query).
//! let mut wire = BytesMut::new();
//! InitialPacket::Startup(StartupMessage::new(ProtocolVersion::V3_0, "alice"))
//!     .encode(&mut wire)?;
//! Query::new("select 1").encode(&mut wire)?;
//! let mut rx = BytesMut::new();
//! rx.extend_from_slice(&wire[..wire.len() - 3]);
//!
//! let framer = Framer::new();
//! let Some(packet) = framer.split_startup(&mut rx)? else { unreachable!() };
//! let InitialPacket::Startup(startup) = InitialPacket::decode(&packet)? else { unreachable!() };
//! assert_eq!(startup.user(), Some("alice"));
//!
//! assert!(framer.split(&mut rx)?.is_none()); // incomplete: read more
//! rx.extend_from_slice(&wire[wire.len() - 3..]);
//! let frame = framer.split(&mut rx)?.expect("whole message");
//! // Relay `frame` as is; decode only for the audit log.
//! if let FrontendMessage::Query(q) = FrontendMessage::decode(&frame)? {
//!     assert_eq!(q.sql.to_string_lossy(), "select 1");
//! }
//!
//! // What the proxy sends a plaintext client before closing.
//! let mut tx = BytesMut::new();
//! ErrorResponse::fatal(sqlstate::INVALID_AUTHORIZATION_SPECIFICATION, "TLS is required")
//!     .hint("use sslmode=verify-full with the certificate from `pc db login`")
//!     .encode(&mut tx)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Cost
//!
//! Splitting is `BytesMut::split_to(..).freeze()`, so a frame shares the read buffer's
//! allocation: relaying a DataRow or Query copies nothing until it is written out (and not even
//! then with [`Frame::header`] and a vectored write). [`FrontendMessage::decode`] and
//! [`BackendMessage::decode`] are called only for the messages the audit log or the startup
//! exchange needs; their string fields ([`PgString`]) are slices of the frame body too, and
//! become text only when asked.
//!
//! # Limits
//!
//! - [`MAX_STARTUP_PACKET_LEN`] (10 000 bytes) for the first packet, PostgreSQL's own
//!   `MAX_STARTUP_PACKET_LENGTH`: no legitimate client sends more, and the proxy reads this
//!   packet from unauthenticated peers.
//! - [`DEFAULT_MAX_MESSAGE_LEN`] (256 MiB) for every other message; see its docs.
//! - 65 535 parameters, formats or arguments per message: the protocol's counts are 16-bit.

mod authentication;
mod backend_key_data;
mod bind;
mod buf;
mod close;
mod copy_data;
mod copy_done;
mod copy_fail;
mod describe;
mod error_response;
mod execute;
mod fields;
mod flush;
mod frame;
mod function_call;
mod message;
mod negotiate_protocol_version;
mod notice_response;
mod parameter_status;
mod parse;
mod password;
mod pg_string;
mod query;
mod ready_for_query;
mod startup;
mod sync;
mod terminate;

pub use authentication::Authentication;
pub use backend_key_data::BackendKeyData;
pub use bind::{Bind, BindView, Params};
pub use close::Close;
pub use copy_data::CopyData;
pub use copy_done::CopyDone;
pub use copy_fail::CopyFail;
pub use describe::{Describe, Target};
pub use error_response::{sqlstate, ErrorResponse};
pub use execute::Execute;
pub use fields::ErrorField;
pub use flush::Flush;
pub use frame::{Frame, Framer, StartupPacket};
pub use function_call::FunctionCall;
pub use message::Message;
pub use negotiate_protocol_version::NegotiateProtocolVersion;
pub use notice_response::NoticeResponse;
pub use parameter_status::ParameterStatus;
pub use parse::Parse;
pub use password::PasswordMessage;
pub use pg_string::PgString;
pub use query::Query;
pub use ready_for_query::{ReadyForQuery, TransactionStatus};
pub use startup::{
    CancelRequest, InitialPacket, ProtocolVersion, StartupMessage, CANCEL_REQUEST_CODE,
    ENCRYPTION_ACCEPTED, ENCRYPTION_REFUSED, GSSENC_REQUEST_CODE, MAX_CANCEL_KEY_LEN,
    SSL_REQUEST_CODE,
};
pub use sync::Sync;
pub use terminate::Terminate;

use bytes::BytesMut;

use crate::WireError;

/// Reads a big-endian `u32` at `at`; `None` if `src` is too short. Shared with the sniffer.
pub(crate) fn be_u32_at(src: &[u8], at: usize) -> Option<u32> {
    buf::be_u32(src, at)
}

/// Largest first packet (SSLRequest, CancelRequest, StartupMessage), in bytes including the
/// length: PostgreSQL's `MAX_STARTUP_PACKET_LENGTH`. The server refuses larger ones, so the
/// proxy can too, before anyone is authenticated.
pub const MAX_STARTUP_PACKET_LEN: usize = 10_000;

/// Default largest typed message, counted as the length field counts (body + 4): 256 MiB.
///
/// PostgreSQL itself accepts client messages up to 1 GiB − 1 (`PQ_LARGE_MESSAGE_LIMIT`), and
/// that is what a relay must buffer whole when it frames a message. 256 MiB still carries very
/// large `bytea` parameters and COPY rows, while bounding what one connection can make the
/// agent hold to a quarter of that; deployments that really send bigger values raise it with
/// [`Framer::with_max_message_len`] (up to [`PROTOCOL_MAX_MESSAGE_LEN`]). The agent may give
/// the server-to-client direction a larger limit than the client direction: the database is
/// trusted more than a client, and a DataRow can legitimately carry a 1 GiB value.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 256 * 1024 * 1024;

/// The largest length the protocol can express (the length field is a signed 32-bit integer).
pub const PROTOCOL_MAX_MESSAGE_LEN: usize = i32::MAX as usize;

/// A message from the client, decoded as far as the agent needs.
///
/// Decoding is on demand: relay the [`Frame`], and call [`FrontendMessage::decode`] only when
/// the audit log wants the fields. Unknown or undecoded types come back as
/// [`FrontendMessage::Other`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendMessage {
    /// `Q`
    Query(Query),
    /// `P`
    Parse(Parse),
    /// `B`
    Bind(Bind),
    /// `E`
    Execute(Execute),
    /// `D`
    Describe(Describe),
    /// `C`
    Close(Close),
    /// `S`
    Sync(Sync),
    /// `H`
    Flush(Flush),
    /// `F`
    FunctionCall(FunctionCall),
    /// `X`
    Terminate(Terminate),
    /// `d`
    CopyData(CopyData),
    /// `c`
    CopyDone(CopyDone),
    /// `f`
    CopyFail(CopyFail),
    /// `p`
    Password(PasswordMessage),
    /// Any other type, untouched.
    Other(Frame),
}

impl FrontendMessage {
    /// Decodes a client frame. The frame's body is shared, not copied.
    pub fn decode(frame: &Frame) -> Result<Self, WireError> {
        let body = frame.body.clone();
        Ok(match frame.tag {
            Query::TAG => Self::Query(Query::decode(body)?),
            Parse::TAG => Self::Parse(Parse::decode(body)?),
            Bind::TAG => Self::Bind(Bind::decode(body)?),
            Execute::TAG => Self::Execute(Execute::decode(body)?),
            Describe::TAG => Self::Describe(Describe::decode(body)?),
            Close::TAG => Self::Close(Close::decode(body)?),
            Sync::TAG => Self::Sync(Sync::decode(body)?),
            Flush::TAG => Self::Flush(Flush::decode(body)?),
            FunctionCall::TAG => Self::FunctionCall(FunctionCall::decode(body)?),
            Terminate::TAG => Self::Terminate(Terminate::decode(body)?),
            CopyData::TAG => Self::CopyData(CopyData::decode(body)?),
            CopyDone::TAG => Self::CopyDone(CopyDone::decode(body)?),
            CopyFail::TAG => Self::CopyFail(CopyFail::decode(body)?),
            PasswordMessage::TAG => Self::Password(PasswordMessage::decode(body)?),
            _ => Self::Other(frame.clone()),
        })
    }

    /// Appends the message to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        match self {
            Self::Query(m) => m.encode(dst),
            Self::Parse(m) => m.encode(dst),
            Self::Bind(m) => m.encode(dst),
            Self::Execute(m) => m.encode(dst),
            Self::Describe(m) => m.encode(dst),
            Self::Close(m) => m.encode(dst),
            Self::Sync(m) => m.encode(dst),
            Self::Flush(m) => m.encode(dst),
            Self::FunctionCall(m) => m.encode(dst),
            Self::Terminate(m) => m.encode(dst),
            Self::CopyData(m) => m.encode(dst),
            Self::CopyDone(m) => m.encode(dst),
            Self::CopyFail(m) => m.encode(dst),
            Self::Password(m) => m.encode(dst),
            Self::Other(f) => f.encode(dst),
        }
    }
}

/// A message from the server, decoded when the agent's startup exchange needs it; everything
/// else (RowDescription, DataRow, CommandComplete…) stays an undecoded [`BackendMessage::Other`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage {
    /// `R`
    Authentication(Authentication),
    /// `K`
    BackendKeyData(BackendKeyData),
    /// `S`
    ParameterStatus(ParameterStatus),
    /// `Z`
    ReadyForQuery(ReadyForQuery),
    /// `E`
    ErrorResponse(ErrorResponse),
    /// `N`
    NoticeResponse(NoticeResponse),
    /// `v`
    NegotiateProtocolVersion(NegotiateProtocolVersion),
    /// Any other type, untouched.
    Other(Frame),
}

impl BackendMessage {
    /// Decodes a server frame. The frame's body is shared, not copied.
    pub fn decode(frame: &Frame) -> Result<Self, WireError> {
        let body = frame.body.clone();
        Ok(match frame.tag {
            Authentication::TAG => Self::Authentication(Authentication::decode(body)?),
            BackendKeyData::TAG => Self::BackendKeyData(BackendKeyData::decode(body)?),
            ParameterStatus::TAG => Self::ParameterStatus(ParameterStatus::decode(body)?),
            ReadyForQuery::TAG => Self::ReadyForQuery(ReadyForQuery::decode(body)?),
            ErrorResponse::TAG => Self::ErrorResponse(ErrorResponse::decode(body)?),
            NoticeResponse::TAG => Self::NoticeResponse(NoticeResponse::decode(body)?),
            NegotiateProtocolVersion::TAG => {
                Self::NegotiateProtocolVersion(NegotiateProtocolVersion::decode(body)?)
            }
            _ => Self::Other(frame.clone()),
        })
    }

    /// Appends the message to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        match self {
            Self::Authentication(m) => m.encode(dst),
            Self::BackendKeyData(m) => m.encode(dst),
            Self::ParameterStatus(m) => m.encode(dst),
            Self::ReadyForQuery(m) => m.encode(dst),
            Self::ErrorResponse(m) => m.encode(dst),
            Self::NoticeResponse(m) => m.encode(dst),
            Self::NegotiateProtocolVersion(m) => m.encode(dst),
            Self::Other(f) => f.encode(dst),
        }
    }
}
