//! The MySQL / MariaDB client/server protocol (protocol version 10, 4.1 authentication).
//!
//! # Reading a connection
//!
//! Keep one `BytesMut` and one [`PacketFramer`] per direction for the connection's whole life
//! (across the TLS upgrade too). Split logical packets with [`PacketFramer::split_logical`]
//! (or physical ones with [`PacketFramer::split_physical`] to relay without buffering a huge
//! packet), check their sequence ids with a [`Sequence`], and decode the payload with the
//! message that the exchange expects: MySQL payloads carry no type byte a decoder could
//! dispatch on without context.
//!
//! ```
//! use bytes::BytesMut;
//! use portcullis_wire::mysql::{
//!     capability::*, error_code, AuthMoreData, ErrPacket, HandshakeResponse41, HandshakeV10,
//!     OkPacket, PacketFramer, Sequence, SslRequest,
//! };
//!
//! # fn main() -> Result<(), portcullis_wire::WireError> {
//! // The proxy greets a client (sequence id 0)...
//! let caps = CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION
//!     | CLIENT_PLUGIN_AUTH | CLIENT_SSL | CLIENT_CONNECT_WITH_DB | CLIENT_TRANSACTIONS;
//! let greeting = HandshakeV10::new("8.0.36-portcullis", 7, *b"abcdefghijklmnopqrst", caps,
//!     "mysql_native_password");
//! let mut seq = Sequence::new();
//! let mut payload = BytesMut::new();
//! greeting.encode(&mut payload)?;
//! let mut to_client = BytesMut::new();
//! seq.write(&mut to_client, &payload);
//!
//! // ...and reads its SSLRequest (sequence id 1); TLS starts after it.
//! let mut from_client = BytesMut::new();
//! let mut p = BytesMut::new();
//! SslRequest { capabilities: caps, max_packet_size: 1 << 24, charset: 45 }.encode(&mut p)?;
//! Sequence::starting_at(1).write(&mut from_client, &p);
//! let framer = PacketFramer::handshake();
//! let packet = framer.split_logical(&mut from_client)?.expect("whole packet");
//! seq.check_logical(&packet)?;
//! assert!(SslRequest::matches(&packet.payload));
//!
//! // Inside TLS: the HandshakeResponse41 (sequence id 2).
//! let mut login = HandshakeResponse41::new("alice", caps);
//! login.database = Some("shop".into());
//! login.auth_plugin_name = Some("mysql_native_password".into());
//! let mut p = BytesMut::new();
//! login.encode(&mut p)?;
//! Sequence::starting_at(2).write(&mut from_client, &p);
//! let packet = framer.split_logical(&mut from_client)?.expect("whole packet");
//! seq.check_logical(&packet)?;
//! let login = HandshakeResponse41::decode(packet.payload)?;
//! assert_eq!(login.username, "alice");
//!
//! // Accept (sequence id 3), or refuse.
//! let mut p = BytesMut::new();
//! if login.database.as_ref().is_some_and(|db| db == "shop") {
//!     OkPacket::new(portcullis_wire::mysql::status::SERVER_STATUS_AUTOCOMMIT)
//!         .encode(&mut p, caps & login.capabilities)?;
//! } else {
//!     ErrPacket::new(error_code::ER_DBACCESS_DENIED_ERROR, "Access denied").encode(&mut p)?;
//! }
//! seq.write(&mut to_client, &p);
//! # let _ = AuthMoreData::fast_auth_success();
//! # Ok(())
//! # }
//! ```
//!
//! # After authentication
//!
//! Every command starts a new exchange ([`Sequence::reset`]); decode it with
//! [`Command::decode`], passing the negotiated capabilities (client's ∩ server's) and a
//! [`PreparedStatements`] fed with every [`StmtPrepareOk`] and every decoded command, since
//! COM_STMT_EXECUTE cannot be decoded without the parameter count of its statement and the
//! types of its previous execution. Server replies are [`OkPacket`], [`ErrPacket`],
//! [`EofPacket`] (or result sets, which this module leaves to the relay).
//!
//! # Limits
//!
//! - [`DEFAULT_MAX_PACKET_LEN`] (64 MiB) for a logical packet, [`MAX_HANDSHAKE_PACKET_LEN`]
//!   (128 KiB) before authentication, [`PROTOCOL_MAX_PACKET_LEN`] (1 GiB) at most.
//! - The compressed protocol (`CLIENT_COMPRESS`) is not supported: never offer it.
//! - Only the 4.1 protocol (`CLIENT_PROTOCOL_41`); older clients are refused.

mod auth_more_data;
mod auth_reply;
mod auth_switch_request;
mod binary_value;
pub mod capability;
mod column_type;
mod com_change_user;
mod com_create_db;
mod com_drop_db;
mod com_field_list;
mod com_init_db;
mod com_process_kill;
mod com_query;
mod com_set_option;
mod com_stmt_close;
mod com_stmt_execute;
mod com_stmt_fetch;
mod com_stmt_prepare;
mod com_stmt_reset;
mod com_stmt_send_long_data;
mod command;
mod connect_attrs;
mod eof_packet;
mod err_packet;
pub mod error_code;
mod handshake_response41;
mod handshake_v10;
mod mysql_string;
mod ok_packet;
mod packet;
mod params;
mod payload;
mod sequence;
mod session_state;
mod sql;
mod ssl_request;
mod statements;
pub mod status;
mod stmt_prepare_ok;

pub use auth_more_data::AuthMoreData;
pub use auth_reply::{AuthReply, ServerGreeting};
pub use auth_switch_request::AuthSwitchRequest;
pub use binary_value::{BinaryDateTime, BinaryTime, BinaryValue, ParamType};
pub use column_type::ColumnType;
pub use com_change_user::ComChangeUser;
pub use com_create_db::ComCreateDb;
pub use com_drop_db::ComDropDb;
pub use com_field_list::ComFieldList;
pub use com_init_db::ComInitDb;
pub use com_process_kill::ComProcessKill;
pub use com_query::ComQuery;
pub use com_set_option::ComSetOption;
pub use com_stmt_close::ComStmtClose;
pub use com_stmt_execute::ComStmtExecute;
pub use com_stmt_fetch::ComStmtFetch;
pub use com_stmt_prepare::ComStmtPrepare;
pub use com_stmt_reset::ComStmtReset;
pub use com_stmt_send_long_data::ComStmtSendLongData;
pub use command::*;
pub use eof_packet::EofPacket;
pub use err_packet::ErrPacket;
pub use error_code::ErrorCode;
pub use handshake_response41::HandshakeResponse41;
pub use handshake_v10::{HandshakeV10, MARIADB_VERSION_PREFIX};
pub use mysql_string::MysqlString;
pub use ok_packet::OkPacket;
pub use packet::{
    write_packets, LogicalPacket, Packet, PacketFramer, RawPacket, DEFAULT_MAX_PACKET_LEN,
    HEADER_LEN, MAX_HANDSHAKE_PACKET_LEN, MAX_PAYLOAD_LEN, PROTOCOL_MAX_PACKET_LEN,
};
pub use params::ExecuteParam;
pub use payload::{
    lenenc_int_len, put_lenenc_bytes, put_lenenc_int, put_nul_bytes, PayloadReader, LENENC_NULL,
    LENENC_U16, LENENC_U24, LENENC_U64,
};
pub use sequence::Sequence;
pub use session_state::*;
pub use sql::use_statements;
pub use ssl_request::SslRequest;
pub use statements::{NoStatements, PreparedStatements, StatementLookup, StatementParams};
pub use stmt_prepare_ok::StmtPrepareOk;
