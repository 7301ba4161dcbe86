//! Server status flags, sent in OK and EOF packets: the session state a relay or an auditor
//! must follow (transaction open, more results coming, cursor state).

/// `SERVER_STATUS_IN_TRANS`: a transaction is open.
pub const SERVER_STATUS_IN_TRANS: u16 = 1;
/// `SERVER_STATUS_AUTOCOMMIT`: autocommit mode is on.
pub const SERVER_STATUS_AUTOCOMMIT: u16 = 1 << 1;
/// `SERVER_MORE_RESULTS_EXISTS`: another result set follows this one; the command is not over.
pub const SERVER_MORE_RESULTS_EXISTS: u16 = 1 << 3;
/// `SERVER_QUERY_NO_GOOD_INDEX_USED`.
pub const SERVER_QUERY_NO_GOOD_INDEX_USED: u16 = 1 << 4;
/// `SERVER_QUERY_NO_INDEX_USED`.
pub const SERVER_QUERY_NO_INDEX_USED: u16 = 1 << 5;
/// `SERVER_STATUS_CURSOR_EXISTS`: a cursor was opened; rows come with COM_STMT_FETCH.
pub const SERVER_STATUS_CURSOR_EXISTS: u16 = 1 << 6;
/// `SERVER_STATUS_LAST_ROW_SENT`: the cursor is exhausted.
pub const SERVER_STATUS_LAST_ROW_SENT: u16 = 1 << 7;
/// `SERVER_STATUS_DB_DROPPED`: the current database was dropped.
pub const SERVER_STATUS_DB_DROPPED: u16 = 1 << 8;
/// `SERVER_STATUS_NO_BACKSLASH_ESCAPES`: `sql_mode` has NO_BACKSLASH_ESCAPES (changes how SQL
/// string literals end).
pub const SERVER_STATUS_NO_BACKSLASH_ESCAPES: u16 = 1 << 9;
/// `SERVER_STATUS_METADATA_CHANGED`: a prepared statement's result columns changed.
pub const SERVER_STATUS_METADATA_CHANGED: u16 = 1 << 10;
/// `SERVER_QUERY_WAS_SLOW`.
pub const SERVER_QUERY_WAS_SLOW: u16 = 1 << 11;
/// `SERVER_PS_OUT_PARAMS`: this result set holds a procedure's OUT parameters.
pub const SERVER_PS_OUT_PARAMS: u16 = 1 << 12;
/// `SERVER_STATUS_IN_TRANS_READONLY`: the open transaction is read-only.
pub const SERVER_STATUS_IN_TRANS_READONLY: u16 = 1 << 13;
/// `SERVER_SESSION_STATE_CHANGED`: the OK packet carries session state changes.
pub const SERVER_SESSION_STATE_CHANGED: u16 = 1 << 14;
