//! Client commands: the first byte of every packet a client sends after authentication.

use bytes::{BufMut, Bytes, BytesMut};

use super::com_change_user::ComChangeUser;
use super::com_create_db::ComCreateDb;
use super::com_drop_db::ComDropDb;
use super::com_field_list::ComFieldList;
use super::com_init_db::ComInitDb;
use super::com_process_kill::ComProcessKill;
use super::com_query::ComQuery;
use super::com_set_option::ComSetOption;
use super::com_stmt_close::ComStmtClose;
use super::com_stmt_execute::ComStmtExecute;
use super::com_stmt_fetch::ComStmtFetch;
use super::com_stmt_prepare::ComStmtPrepare;
use super::com_stmt_reset::ComStmtReset;
use super::com_stmt_send_long_data::ComStmtSendLongData;
use super::payload::PayloadReader;
use super::statements::StatementLookup;
use crate::WireError;

/// `COM_SLEEP`: internal server state, never sent.
pub const COM_SLEEP: u8 = 0x00;
/// `COM_QUIT`: close the connection.
pub const COM_QUIT: u8 = 0x01;
/// `COM_INIT_DB`: change the current database.
pub const COM_INIT_DB: u8 = 0x02;
/// `COM_QUERY`: run SQL text.
pub const COM_QUERY: u8 = 0x03;
/// `COM_FIELD_LIST`: list a table's columns.
pub const COM_FIELD_LIST: u8 = 0x04;
/// `COM_CREATE_DB`: create a database.
pub const COM_CREATE_DB: u8 = 0x05;
/// `COM_DROP_DB`: drop a database.
pub const COM_DROP_DB: u8 = 0x06;
/// `COM_REFRESH`: flush tables, logs, privileges… (needs RELOAD).
pub const COM_REFRESH: u8 = 0x07;
/// `COM_SHUTDOWN`: stop the server (needs SHUTDOWN).
pub const COM_SHUTDOWN: u8 = 0x08;
/// `COM_STATISTICS`: a one-line status string.
pub const COM_STATISTICS: u8 = 0x09;
/// `COM_PROCESS_INFO`: the process list (deprecated).
pub const COM_PROCESS_INFO: u8 = 0x0a;
/// `COM_CONNECT`: internal.
pub const COM_CONNECT: u8 = 0x0b;
/// `COM_PROCESS_KILL`: kill a connection.
pub const COM_PROCESS_KILL: u8 = 0x0c;
/// `COM_DEBUG`: dump debug information to the server log (needs SUPER).
pub const COM_DEBUG: u8 = 0x0d;
/// `COM_PING`: is the server alive?
pub const COM_PING: u8 = 0x0e;
/// `COM_TIME`: internal.
pub const COM_TIME: u8 = 0x0f;
/// `COM_DELAYED_INSERT`: internal.
pub const COM_DELAYED_INSERT: u8 = 0x10;
/// `COM_CHANGE_USER`: log in again as another user.
pub const COM_CHANGE_USER: u8 = 0x11;
/// `COM_BINLOG_DUMP`: stream the binary log (replication).
pub const COM_BINLOG_DUMP: u8 = 0x12;
/// `COM_TABLE_DUMP`: obsolete.
pub const COM_TABLE_DUMP: u8 = 0x13;
/// `COM_CONNECT_OUT`: internal.
pub const COM_CONNECT_OUT: u8 = 0x14;
/// `COM_REGISTER_SLAVE`: register as a replica.
pub const COM_REGISTER_SLAVE: u8 = 0x15;
/// `COM_STMT_PREPARE`: prepare a statement.
pub const COM_STMT_PREPARE: u8 = 0x16;
/// `COM_STMT_EXECUTE`: execute a prepared statement.
pub const COM_STMT_EXECUTE: u8 = 0x17;
/// `COM_STMT_SEND_LONG_DATA`: send part of a parameter value.
pub const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
/// `COM_STMT_CLOSE`: deallocate a prepared statement.
pub const COM_STMT_CLOSE: u8 = 0x19;
/// `COM_STMT_RESET`: reset a prepared statement.
pub const COM_STMT_RESET: u8 = 0x1a;
/// `COM_SET_OPTION`: multi-statements on or off.
pub const COM_SET_OPTION: u8 = 0x1b;
/// `COM_STMT_FETCH`: fetch rows from a cursor.
pub const COM_STMT_FETCH: u8 = 0x1c;
/// `COM_DAEMON`: internal.
pub const COM_DAEMON: u8 = 0x1d;
/// `COM_BINLOG_DUMP_GTID`: stream the binary log from a GTID (replication).
pub const COM_BINLOG_DUMP_GTID: u8 = 0x1e;
/// `COM_RESET_CONNECTION`: reset the session without logging in again.
pub const COM_RESET_CONNECTION: u8 = 0x1f;
/// `COM_CLONE` (MySQL 8): clone plugin protocol.
pub const COM_CLONE: u8 = 0x20;
/// `COM_STMT_BULK_EXECUTE` (MariaDB): execute a statement with arrays of values.
pub const COM_STMT_BULK_EXECUTE: u8 = 0xfa;
/// `COM_MULTI` (MariaDB 10.2–10.5): several commands in one packet.
pub const COM_MULTI: u8 = 0xfe;

/// Starts reading a command payload, checking its command byte.
pub(crate) fn reader(
    message: &'static str,
    payload: Bytes,
    code: u8,
) -> Result<PayloadReader, WireError> {
    let mut r = PayloadReader::new(message, payload);
    let found = r.u8("command")?;
    if found != code {
        return Err(WireError::UnexpectedHeader {
            message,
            expected: code,
            found,
        });
    }
    Ok(r)
}

/// A client command, decoded as far as the agent audits and polices it.
///
/// Relay the raw packet; decode with [`Command::decode`] when the audit log or a policy check
/// needs the fields. Commands without fields are unit variants; every command this type does
/// not model (replication, `COM_SHUTDOWN`, MariaDB's `COM_MULTI` and `COM_STMT_BULK_EXECUTE`,
/// which carry SQL or values the audit log would not see) is [`Command::Other`] with its
/// command byte, and the agent should refuse those it does not explicitly allow.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `COM_QUIT`.
    Quit,
    /// `COM_INIT_DB`.
    InitDb(ComInitDb),
    /// `COM_QUERY`.
    Query(ComQuery),
    /// `COM_FIELD_LIST`.
    FieldList(ComFieldList),
    /// `COM_CREATE_DB`.
    CreateDb(ComCreateDb),
    /// `COM_DROP_DB`.
    DropDb(ComDropDb),
    /// `COM_STATISTICS`.
    Statistics,
    /// `COM_PROCESS_KILL`.
    ProcessKill(ComProcessKill),
    /// `COM_DEBUG`.
    Debug,
    /// `COM_PING`.
    Ping,
    /// `COM_CHANGE_USER`.
    ChangeUser(ComChangeUser),
    /// `COM_STMT_PREPARE`.
    StmtPrepare(ComStmtPrepare),
    /// `COM_STMT_EXECUTE`.
    StmtExecute(ComStmtExecute),
    /// `COM_STMT_SEND_LONG_DATA`.
    StmtSendLongData(ComStmtSendLongData),
    /// `COM_STMT_CLOSE`.
    StmtClose(ComStmtClose),
    /// `COM_STMT_RESET`.
    StmtReset(ComStmtReset),
    /// `COM_SET_OPTION`.
    SetOption(ComSetOption),
    /// `COM_STMT_FETCH`.
    StmtFetch(ComStmtFetch),
    /// `COM_RESET_CONNECTION`.
    ResetConnection,
    /// Any other command byte; its body stays in the packet the caller holds.
    Other(u8),
}

impl Command {
    /// Decodes a command payload (a whole logical packet) with the negotiated `capabilities`.
    /// `statements` supplies the parameter counts and types COM_STMT_EXECUTE needs; a
    /// statement it does not know yields [`WireError::UnknownStatement`].
    pub fn decode(
        payload: Bytes,
        capabilities: u64,
        statements: &impl StatementLookup,
    ) -> Result<Self, WireError> {
        let Some(&code) = payload.first() else {
            return Err(WireError::Truncated {
                message: "command",
                field: "command",
            });
        };
        let no_body = |name: &'static str, cmd: Self| -> Result<Self, WireError> {
            reader(name, payload.clone(), code)?.finish()?;
            Ok(cmd)
        };
        Ok(match code {
            COM_QUIT => no_body("COM_QUIT", Self::Quit)?,
            COM_INIT_DB => Self::InitDb(ComInitDb::decode(payload)?),
            COM_QUERY => Self::Query(ComQuery::decode(payload, capabilities)?),
            COM_FIELD_LIST => Self::FieldList(ComFieldList::decode(payload)?),
            COM_CREATE_DB => Self::CreateDb(ComCreateDb::decode(payload)?),
            COM_DROP_DB => Self::DropDb(ComDropDb::decode(payload)?),
            COM_STATISTICS => no_body("COM_STATISTICS", Self::Statistics)?,
            COM_PROCESS_KILL => Self::ProcessKill(ComProcessKill::decode(payload)?),
            COM_DEBUG => no_body("COM_DEBUG", Self::Debug)?,
            COM_PING => no_body("COM_PING", Self::Ping)?,
            COM_CHANGE_USER => Self::ChangeUser(ComChangeUser::decode(payload, capabilities)?),
            COM_STMT_PREPARE => Self::StmtPrepare(ComStmtPrepare::decode(payload)?),
            COM_STMT_EXECUTE => {
                let Some(id) = ComStmtExecute::peek_statement_id(&payload) else {
                    return Err(WireError::Truncated {
                        message: "COM_STMT_EXECUTE",
                        field: "statement id",
                    });
                };
                let Some(statement) = statements.statement(id) else {
                    return Err(WireError::UnknownStatement { statement_id: id });
                };
                Self::StmtExecute(ComStmtExecute::decode(payload, capabilities, &statement)?)
            }
            COM_STMT_SEND_LONG_DATA => {
                Self::StmtSendLongData(ComStmtSendLongData::decode(payload)?)
            }
            COM_STMT_CLOSE => Self::StmtClose(ComStmtClose::decode(payload)?),
            COM_STMT_RESET => Self::StmtReset(ComStmtReset::decode(payload)?),
            COM_SET_OPTION => Self::SetOption(ComSetOption::decode(payload)?),
            COM_STMT_FETCH => Self::StmtFetch(ComStmtFetch::decode(payload)?),
            COM_RESET_CONNECTION => no_body("COM_RESET_CONNECTION", Self::ResetConnection)?,
            other => Self::Other(other),
        })
    }

    /// The command byte.
    pub fn code(&self) -> u8 {
        match self {
            Self::Quit => COM_QUIT,
            Self::InitDb(_) => COM_INIT_DB,
            Self::Query(_) => COM_QUERY,
            Self::FieldList(_) => COM_FIELD_LIST,
            Self::CreateDb(_) => COM_CREATE_DB,
            Self::DropDb(_) => COM_DROP_DB,
            Self::Statistics => COM_STATISTICS,
            Self::ProcessKill(_) => COM_PROCESS_KILL,
            Self::Debug => COM_DEBUG,
            Self::Ping => COM_PING,
            Self::ChangeUser(_) => COM_CHANGE_USER,
            Self::StmtPrepare(_) => COM_STMT_PREPARE,
            Self::StmtExecute(_) => COM_STMT_EXECUTE,
            Self::StmtSendLongData(_) => COM_STMT_SEND_LONG_DATA,
            Self::StmtClose(_) => COM_STMT_CLOSE,
            Self::StmtReset(_) => COM_STMT_RESET,
            Self::SetOption(_) => COM_SET_OPTION,
            Self::StmtFetch(_) => COM_STMT_FETCH,
            Self::ResetConnection => COM_RESET_CONNECTION,
            Self::Other(code) => *code,
        }
    }

    /// The command's name as in the protocol documentation (`COM_QUERY`…), for audit events.
    pub fn name(&self) -> &'static str {
        command_name(self.code())
    }

    /// Whether the server answers the command with nothing at all (`COM_QUIT`,
    /// `COM_STMT_CLOSE`, `COM_STMT_SEND_LONG_DATA`): a relay must not wait for a reply.
    pub fn expects_no_reply(&self) -> bool {
        matches!(
            self,
            Self::Quit | Self::StmtClose(_) | Self::StmtSendLongData(_)
        )
    }

    /// Appends the payload as a client with `capabilities` sends it. [`Command::Other`] writes
    /// its command byte alone.
    pub fn encode(&self, dst: &mut BytesMut, capabilities: u64) -> Result<(), WireError> {
        match self {
            Self::InitDb(c) => c.encode(dst),
            Self::Query(c) => c.encode(dst, capabilities)?,
            Self::FieldList(c) => c.encode(dst)?,
            Self::CreateDb(c) => c.encode(dst),
            Self::DropDb(c) => c.encode(dst),
            Self::ProcessKill(c) => c.encode(dst),
            Self::ChangeUser(c) => c.encode(dst, capabilities)?,
            Self::StmtPrepare(c) => c.encode(dst),
            Self::StmtExecute(c) => c.encode(dst, capabilities)?,
            Self::StmtSendLongData(c) => c.encode(dst),
            Self::StmtClose(c) => c.encode(dst),
            Self::StmtReset(c) => c.encode(dst),
            Self::SetOption(c) => c.encode(dst),
            Self::StmtFetch(c) => c.encode(dst),
            Self::Quit
            | Self::Statistics
            | Self::Debug
            | Self::Ping
            | Self::ResetConnection
            | Self::Other(_) => dst.put_u8(self.code()),
        }
        Ok(())
    }
}

/// The protocol name of command byte `code` (`"COM_UNKNOWN"` for bytes no server defines).
pub fn command_name(code: u8) -> &'static str {
    match code {
        COM_SLEEP => "COM_SLEEP",
        COM_QUIT => "COM_QUIT",
        COM_INIT_DB => "COM_INIT_DB",
        COM_QUERY => "COM_QUERY",
        COM_FIELD_LIST => "COM_FIELD_LIST",
        COM_CREATE_DB => "COM_CREATE_DB",
        COM_DROP_DB => "COM_DROP_DB",
        COM_REFRESH => "COM_REFRESH",
        COM_SHUTDOWN => "COM_SHUTDOWN",
        COM_STATISTICS => "COM_STATISTICS",
        COM_PROCESS_INFO => "COM_PROCESS_INFO",
        COM_CONNECT => "COM_CONNECT",
        COM_PROCESS_KILL => "COM_PROCESS_KILL",
        COM_DEBUG => "COM_DEBUG",
        COM_PING => "COM_PING",
        COM_TIME => "COM_TIME",
        COM_DELAYED_INSERT => "COM_DELAYED_INSERT",
        COM_CHANGE_USER => "COM_CHANGE_USER",
        COM_BINLOG_DUMP => "COM_BINLOG_DUMP",
        COM_TABLE_DUMP => "COM_TABLE_DUMP",
        COM_CONNECT_OUT => "COM_CONNECT_OUT",
        COM_REGISTER_SLAVE => "COM_REGISTER_SLAVE",
        COM_STMT_PREPARE => "COM_STMT_PREPARE",
        COM_STMT_EXECUTE => "COM_STMT_EXECUTE",
        COM_STMT_SEND_LONG_DATA => "COM_STMT_SEND_LONG_DATA",
        COM_STMT_CLOSE => "COM_STMT_CLOSE",
        COM_STMT_RESET => "COM_STMT_RESET",
        COM_SET_OPTION => "COM_SET_OPTION",
        COM_STMT_FETCH => "COM_STMT_FETCH",
        COM_DAEMON => "COM_DAEMON",
        COM_BINLOG_DUMP_GTID => "COM_BINLOG_DUMP_GTID",
        COM_RESET_CONNECTION => "COM_RESET_CONNECTION",
        COM_CLONE => "COM_CLONE",
        COM_STMT_BULK_EXECUTE => "COM_STMT_BULK_EXECUTE",
        COM_MULTI => "COM_MULTI",
        _ => "COM_UNKNOWN",
    }
}
