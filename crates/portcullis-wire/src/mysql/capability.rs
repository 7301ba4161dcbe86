//! Capability flags: what a client and a server can do, agreed on during the handshake.
//!
//! MySQL sends 32 flag bits. MariaDB adds 32 more, carried in bytes the MySQL protocol reserves
//! (the last 4 of the greeting's 10-byte filler and of the response's 23-byte filler), and
//! only when [`CLIENT_MYSQL`] is clear. This crate keeps all 64 in one `u64`: MySQL's in the low
//! half, MariaDB's in the high half, as MariaDB's own client library does. Decoders fill the
//! high half only when the peer is MariaDB-style; encoders write it back the same way.
//!
//! The flags both sides end up using are the intersection of the server's and the client's;
//! every decoder that depends on a flag takes that negotiated set.

/// `CLIENT_LONG_PASSWORD`: new (4.1) password hashing. A MySQL server always sets it; MariaDB
/// reuses the bit as [`CLIENT_MYSQL`].
pub const CLIENT_LONG_PASSWORD: u64 = 1;
/// `CLIENT_MYSQL` (MariaDB's name for bit 0): set by MySQL peers; a MariaDB peer clears it to say
/// that the extended capabilities (the `MARIADB_CLIENT_*` flags) are present.
pub const CLIENT_MYSQL: u64 = 1;
/// `CLIENT_FOUND_ROWS`: affected rows count found rows, not changed ones.
pub const CLIENT_FOUND_ROWS: u64 = 1 << 1;
/// `CLIENT_LONG_FLAG`: longer column flags in column definitions.
pub const CLIENT_LONG_FLAG: u64 = 1 << 2;
/// `CLIENT_CONNECT_WITH_DB`: the handshake response names an initial database.
pub const CLIENT_CONNECT_WITH_DB: u64 = 1 << 3;
/// `CLIENT_NO_SCHEMA`: refuse `db.table.column` names (deprecated).
pub const CLIENT_NO_SCHEMA: u64 = 1 << 4;
/// `CLIENT_COMPRESS`: compressed protocol. Not supported by this crate's framer: the proxy must
/// not offer it.
pub const CLIENT_COMPRESS: u64 = 1 << 5;
/// `CLIENT_ODBC`: unused legacy flag.
pub const CLIENT_ODBC: u64 = 1 << 6;
/// `CLIENT_LOCAL_FILES`: `LOAD DATA LOCAL INFILE` allowed (the server may then ask the client to
/// send any file it can read).
pub const CLIENT_LOCAL_FILES: u64 = 1 << 7;
/// `CLIENT_IGNORE_SPACE`: function names may be followed by spaces.
pub const CLIENT_IGNORE_SPACE: u64 = 1 << 8;
/// `CLIENT_PROTOCOL_41`: the 4.1 protocol (SQLSTATE in ERR, status and warnings in OK/EOF);
/// this crate requires it in handshake responses.
pub const CLIENT_PROTOCOL_41: u64 = 1 << 9;
/// `CLIENT_INTERACTIVE`: interactive client (longer idle timeout).
pub const CLIENT_INTERACTIVE: u64 = 1 << 10;
/// `CLIENT_SSL`: the server offers TLS; in a client's flags, an SSLRequest precedes the
/// response.
pub const CLIENT_SSL: u64 = 1 << 11;
/// `CLIENT_IGNORE_SIGPIPE`: client-side only, never on the wire in practice.
pub const CLIENT_IGNORE_SIGPIPE: u64 = 1 << 12;
/// `CLIENT_TRANSACTIONS`: status flags in OK packets.
pub const CLIENT_TRANSACTIONS: u64 = 1 << 13;
/// `CLIENT_RESERVED`: unused (was the 4.1 protocol flag).
pub const CLIENT_RESERVED: u64 = 1 << 14;
/// `CLIENT_SECURE_CONNECTION` (`CLIENT_RESERVED2`): 4.1 authentication; the auth response is
/// length-prefixed and the greeting carries the second part of the scramble.
pub const CLIENT_SECURE_CONNECTION: u64 = 1 << 15;
/// `CLIENT_MULTI_STATEMENTS`: several `;`-separated statements per COM_QUERY.
pub const CLIENT_MULTI_STATEMENTS: u64 = 1 << 16;
/// `CLIENT_MULTI_RESULTS`: several result sets per COM_QUERY (needed for stored procedures).
pub const CLIENT_MULTI_RESULTS: u64 = 1 << 17;
/// `CLIENT_PS_MULTI_RESULTS`: several result sets per COM_STMT_EXECUTE.
pub const CLIENT_PS_MULTI_RESULTS: u64 = 1 << 18;
/// `CLIENT_PLUGIN_AUTH`: pluggable authentication (plugin names in greeting and response).
pub const CLIENT_PLUGIN_AUTH: u64 = 1 << 19;
/// `CLIENT_CONNECT_ATTRS`: the response carries connection attributes (`_client_name`, …).
pub const CLIENT_CONNECT_ATTRS: u64 = 1 << 20;
/// `CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA`: the auth response is length-encoded (may exceed 255
/// bytes).
pub const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u64 = 1 << 21;
/// `CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS`: the client copes with sandbox mode.
pub const CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS: u64 = 1 << 22;
/// `CLIENT_SESSION_TRACK`: OK packets carry session state changes (current schema, system
/// variables, transaction state).
pub const CLIENT_SESSION_TRACK: u64 = 1 << 23;
/// `CLIENT_DEPRECATE_EOF`: OK packets (header `0xFE`) replace EOF packets after result sets.
pub const CLIENT_DEPRECATE_EOF: u64 = 1 << 24;
/// `CLIENT_OPTIONAL_RESULTSET_METADATA` (MySQL 8): column metadata may be omitted.
pub const CLIENT_OPTIONAL_RESULTSET_METADATA: u64 = 1 << 25;
/// `CLIENT_ZSTD_COMPRESSION_ALGORITHM` (MySQL 8): zstd compression; the response then ends with
/// a compression level byte.
pub const CLIENT_ZSTD_COMPRESSION_ALGORITHM: u64 = 1 << 26;
/// `CLIENT_QUERY_ATTRIBUTES` (MySQL 8.0.23+): COM_QUERY and COM_STMT_EXECUTE carry named query
/// attributes before the query text or with the parameters.
pub const CLIENT_QUERY_ATTRIBUTES: u64 = 1 << 27;
/// `MULTI_FACTOR_AUTHENTICATION` (MySQL 8.0.27+): more than one authentication factor.
pub const MULTI_FACTOR_AUTHENTICATION: u64 = 1 << 28;
/// `CLIENT_CAPABILITY_EXTENSION`: reserved for extending the 32-bit flags.
pub const CLIENT_CAPABILITY_EXTENSION: u64 = 1 << 29;
/// `CLIENT_SSL_VERIFY_SERVER_CERT`: client-side only.
pub const CLIENT_SSL_VERIFY_SERVER_CERT: u64 = 1 << 30;
/// `CLIENT_REMEMBER_OPTIONS`: client-side only.
pub const CLIENT_REMEMBER_OPTIONS: u64 = 1 << 31;

/// `MARIADB_CLIENT_PROGRESS`: the server may send progress reports (ERR packets with code
/// `0xFFFF`) during long statements.
pub const MARIADB_CLIENT_PROGRESS: u64 = 1 << 32;
/// `MARIADB_CLIENT_COM_MULTI`: the COM_MULTI command (removed in MariaDB 10.6).
pub const MARIADB_CLIENT_COM_MULTI: u64 = 1 << 33;
/// `MARIADB_CLIENT_STMT_BULK_OPERATIONS`: COM_STMT_BULK_EXECUTE (array binding).
pub const MARIADB_CLIENT_STMT_BULK_OPERATIONS: u64 = 1 << 34;
/// `MARIADB_CLIENT_EXTENDED_METADATA`: extended type information in column definitions.
pub const MARIADB_CLIENT_EXTENDED_METADATA: u64 = 1 << 35;
/// `MARIADB_CLIENT_CACHE_METADATA`: the server may skip column definitions the client cached.
pub const MARIADB_CLIENT_CACHE_METADATA: u64 = 1 << 36;
/// `MARIADB_CLIENT_BULK_UNIT_RESULTS`: one result per row of a bulk execute.
pub const MARIADB_CLIENT_BULK_UNIT_RESULTS: u64 = 1 << 37;

/// The MariaDB extended flags (high half of the `u64`).
pub const MARIADB_EXTENDED_MASK: u64 = 0xffff_ffff_0000_0000;

/// Splits 64 flags into the low 32 bits sent in the standard field and the MariaDB extended 32
/// bits; the extended half is only meaningful when [`CLIENT_MYSQL`] is clear.
pub const fn split(flags: u64) -> (u32, u32) {
    (flags as u32, (flags >> 32) as u32)
}

/// Whether `flags` include every flag in `wanted`.
pub const fn has(flags: u64, wanted: u64) -> bool {
    flags & wanted == wanted
}

/// Checks that extended MariaDB flags are only used with [`CLIENT_MYSQL`] clear: with the bit
/// set, a peer reads the extended bytes as filler and the flags would silently be lost.
pub(crate) fn check_extended(flags: u64, message: &'static str) -> Result<(), crate::WireError> {
    if flags & MARIADB_EXTENDED_MASK != 0 && flags & CLIENT_MYSQL != 0 {
        return Err(crate::WireError::InvalidField {
            message,
            field: "capability flags",
            reason: "MARIADB_CLIENT_* flags need CLIENT_MYSQL (bit 0) clear",
        });
    }
    Ok(())
}

/// What Portcullis offers MySQL clients and lets through to databases: everything MySQL 5.7+
/// and MariaDB 10.2+ understand that the agent can relay and audit. Never compression or query
/// attributes (a server might not understand them); `CLIENT_SSL` is added where TLS is offered.
pub const PROXIED: u64 = CLIENT_LONG_PASSWORD
    | CLIENT_FOUND_ROWS
    | CLIENT_LONG_FLAG
    | CLIENT_CONNECT_WITH_DB
    | CLIENT_LOCAL_FILES
    | CLIENT_IGNORE_SPACE
    | CLIENT_PROTOCOL_41
    | CLIENT_INTERACTIVE
    | CLIENT_IGNORE_SIGPIPE
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH
    | CLIENT_CONNECT_ATTRS
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | CLIENT_SESSION_TRACK
    | CLIENT_DEPRECATE_EOF;
