//! Server error codes Portcullis sends to MySQL clients, each paired with the SQLSTATE the
//! server itself uses for it, so a refusal reads to a client library exactly like the
//! server's own error (the same retry logic, the same message in the CLI).

/// An error code and its SQLSTATE, kept together so an [`super::ErrPacket`] cannot mix a code
/// with the wrong state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode {
    /// The server error number (`ER_*`).
    pub code: u16,
    /// The five-character SQLSTATE.
    pub sql_state: &'static str,
}

impl ErrorCode {
    /// An error code with its SQLSTATE.
    pub const fn new(code: u16, sql_state: &'static str) -> Self {
        Self { code, sql_state }
    }
}

/// 1040 `ER_CON_COUNT_ERROR` (08004): too many connections.
pub const ER_CON_COUNT_ERROR: ErrorCode = ErrorCode::new(1040, "08004");
/// 1043 `ER_HANDSHAKE_ERROR` (08S01): bad handshake (malformed packets, sequence out of order).
pub const ER_HANDSHAKE_ERROR: ErrorCode = ErrorCode::new(1043, "08S01");
/// 1044 `ER_DBACCESS_DENIED_ERROR` (42000): access denied to a database.
pub const ER_DBACCESS_DENIED_ERROR: ErrorCode = ErrorCode::new(1044, "42000");
/// 1045 `ER_ACCESS_DENIED_ERROR` (28000): access denied for a user (bad credentials).
pub const ER_ACCESS_DENIED_ERROR: ErrorCode = ErrorCode::new(1045, "28000");
/// 1046 `ER_NO_DB_ERROR` (3D000): no database selected.
pub const ER_NO_DB_ERROR: ErrorCode = ErrorCode::new(1046, "3D000");
/// 1047 `ER_UNKNOWN_COM_ERROR` (08S01): unknown or refused command.
pub const ER_UNKNOWN_COM_ERROR: ErrorCode = ErrorCode::new(1047, "08S01");
/// 1049 `ER_BAD_DB_ERROR` (42000): unknown database.
pub const ER_BAD_DB_ERROR: ErrorCode = ErrorCode::new(1049, "42000");
/// 1053 `ER_SERVER_SHUTDOWN` (08S01): server shutdown in progress.
pub const ER_SERVER_SHUTDOWN: ErrorCode = ErrorCode::new(1053, "08S01");
/// 1105 `ER_UNKNOWN_ERROR` (HY000): unknown error.
pub const ER_UNKNOWN_ERROR: ErrorCode = ErrorCode::new(1105, "HY000");
/// 1130 `ER_HOST_NOT_PRIVILEGED` (HY000): this host may not connect.
pub const ER_HOST_NOT_PRIVILEGED: ErrorCode = ErrorCode::new(1130, "HY000");
/// 1142 `ER_TABLEACCESS_DENIED_ERROR` (42000): command denied on a table.
pub const ER_TABLEACCESS_DENIED_ERROR: ErrorCode = ErrorCode::new(1142, "42000");
/// 1152 `ER_ABORTING_CONNECTION` (08S01): connection aborted.
pub const ER_ABORTING_CONNECTION: ErrorCode = ErrorCode::new(1152, "08S01");
/// 1153 `ER_NET_PACKET_TOO_LARGE` (08S01): a packet exceeds `max_allowed_packet`.
pub const ER_NET_PACKET_TOO_LARGE: ErrorCode = ErrorCode::new(1153, "08S01");
/// 1156 `ER_NET_PACKETS_OUT_OF_ORDER` (08S01): sequence ids out of order.
pub const ER_NET_PACKETS_OUT_OF_ORDER: ErrorCode = ErrorCode::new(1156, "08S01");
/// 1158 `ER_NET_READ_ERROR` (08S01): error reading from the connection.
pub const ER_NET_READ_ERROR: ErrorCode = ErrorCode::new(1158, "08S01");
/// 1184 `ER_NEW_ABORTING_CONNECTION` (08S01): connection aborted during the handshake.
pub const ER_NEW_ABORTING_CONNECTION: ErrorCode = ErrorCode::new(1184, "08S01");
/// 1227 `ER_SPECIFIC_ACCESS_DENIED_ERROR` (42000): a privilege is needed for this operation.
pub const ER_SPECIFIC_ACCESS_DENIED_ERROR: ErrorCode = ErrorCode::new(1227, "42000");
/// 1235 `ER_NOT_SUPPORTED_YET` (42000): this feature is not supported.
pub const ER_NOT_SUPPORTED_YET: ErrorCode = ErrorCode::new(1235, "42000");
/// 1243 `ER_UNKNOWN_STMT_HANDLER` (HY000): unknown prepared statement id.
pub const ER_UNKNOWN_STMT_HANDLER: ErrorCode = ErrorCode::new(1243, "HY000");
/// 1251 `ER_NOT_SUPPORTED_AUTH_MODE` (08004): the client does not support the auth protocol.
pub const ER_NOT_SUPPORTED_AUTH_MODE: ErrorCode = ErrorCode::new(1251, "08004");
/// 1290 `ER_OPTION_PREVENTS_STATEMENT` (HY000): the server's configuration forbids this.
pub const ER_OPTION_PREVENTS_STATEMENT: ErrorCode = ErrorCode::new(1290, "HY000");
/// 1317 `ER_QUERY_INTERRUPTED` (70100): query execution was interrupted.
pub const ER_QUERY_INTERRUPTED: ErrorCode = ErrorCode::new(1317, "70100");
/// 1698 `ER_ACCESS_DENIED_NO_PASSWORD_ERROR` (28000): access denied, no password given.
pub const ER_ACCESS_DENIED_NO_PASSWORD_ERROR: ErrorCode = ErrorCode::new(1698, "28000");
/// 1927 `ER_CONNECTION_KILLED` (70100, MariaDB): the connection was killed.
pub const ER_CONNECTION_KILLED: ErrorCode = ErrorCode::new(1927, "70100");
/// 3159 `ER_SECURE_TRANSPORT_REQUIRED` (HY000, MySQL): connections without TLS are refused.
pub const ER_SECURE_TRANSPORT_REQUIRED: ErrorCode = ErrorCode::new(3159, "HY000");

/// Code of a MariaDB progress report: an ERR-shaped packet (`0xFF 0xFF 0xFF …`) sent during a
/// long statement when [`super::capability::MARIADB_CLIENT_PROGRESS`] is negotiated; it is not
/// an error and the statement goes on.
pub const PROGRESS_REPORT: u16 = 0xffff;
