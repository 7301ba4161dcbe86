//! COM_STMT_EXECUTE (0x17): run a prepared statement with parameter values.

use bytes::{BufMut, Bytes, BytesMut};

use super::capability::{has, CLIENT_QUERY_ATTRIBUTES};
use super::command::COM_STMT_EXECUTE;
use super::params::{read_block, write_block, ExecuteParam};
use super::payload::{put_lenenc_int, PayloadReader};
use super::statements::StatementParams;
use crate::WireError;

/// COM_STMT_EXECUTE: which statement runs and with which values; audited with the values
/// rendered as text.
///
/// The packet does not say how many parameters it carries: that count comes from the
/// statement's COM_STMT_PREPARE_OK, and the types are only sent when new-params-bound is 1
/// (clients skip them when re-executing with the same types). Both come in through
/// [`StatementParams`], usually from [`super::PreparedStatements`].
#[derive(Debug, Clone, PartialEq)]
pub struct ComStmtExecute {
    /// The statement, as numbered by the server's COM_STMT_PREPARE_OK; MariaDB also accepts
    /// `0xFFFF_FFFF` for "the statement prepared last".
    pub statement_id: u32,
    /// Cursor flags ([`ComStmtExecute::CURSOR_TYPE_READ_ONLY`], …).
    pub flags: u8,
    /// Always 1 in practice.
    pub iteration_count: u32,
    /// Whether the packet carried the parameter types (new-params-bound flag).
    pub new_params_bound: bool,
    /// The parameters in order, each with the type used to decode it.
    pub params: Vec<ExecuteParam>,
}

impl ComStmtExecute {
    /// Flag: no cursor.
    pub const CURSOR_TYPE_NO_CURSOR: u8 = 0;
    /// Flag: open a read-only cursor (rows come with COM_STMT_FETCH).
    pub const CURSOR_TYPE_READ_ONLY: u8 = 1;
    /// Flag: cursor for update.
    pub const CURSOR_TYPE_FOR_UPDATE: u8 = 2;
    /// Flag: scrollable cursor.
    pub const CURSOR_TYPE_SCROLLABLE: u8 = 4;
    /// Flag (MySQL 8 with `CLIENT_QUERY_ATTRIBUTES`): a parameter count is sent even when
    /// the statement has no parameters.
    pub const PARAMETER_COUNT_AVAILABLE: u8 = 8;
    /// The MariaDB statement id meaning "the statement prepared last" (pipelining).
    pub const LAST_PREPARED: u32 = u32::MAX;

    /// The statement id of a COM_STMT_EXECUTE payload, read before decoding it so the caller
    /// can look the statement up; `None` if the payload is not one or is too short.
    pub fn peek_statement_id(payload: &[u8]) -> Option<u32> {
        match payload.get(..5)? {
            &[COM_STMT_EXECUTE, a, b, c, d] => Some(u32::from_le_bytes([a, b, c, d])),
            _ => None,
        }
    }

    /// Decodes a payload (command byte included) with the negotiated `capabilities` and what
    /// is known of the statement.
    pub fn decode(
        payload: Bytes,
        capabilities: u64,
        statement: &StatementParams<'_>,
    ) -> Result<Self, WireError> {
        let mut r = PayloadReader::new("COM_STMT_EXECUTE", payload);
        let code = r.u8("command")?;
        if code != COM_STMT_EXECUTE {
            return Err(WireError::UnexpectedHeader {
                message: "COM_STMT_EXECUTE",
                expected: COM_STMT_EXECUTE,
                found: code,
            });
        }
        let statement_id = r.u32("statement id")?;
        let flags = r.u8("flags")?;
        let iteration_count = r.u32("iteration count")?;
        let attrs = has(capabilities, CLIENT_QUERY_ATTRIBUTES);
        let mut count = u64::from(statement.num_params);
        let mut out = Self {
            statement_id,
            flags,
            iteration_count,
            new_params_bound: false,
            params: Vec::new(),
        };
        if count > 0 || (attrs && flags & Self::PARAMETER_COUNT_AVAILABLE != 0) {
            if attrs {
                // The sent count covers the statement's parameters plus any query
                // attributes; fewer values than placeholders is refused (as the server does).
                let sent = r.lenenc_int("parameter count")?;
                if sent < count {
                    return Err(WireError::InvalidValue {
                        message: "COM_STMT_EXECUTE",
                        field: "parameter count",
                        value: i64::try_from(sent).unwrap_or(i64::MAX),
                    });
                }
                count = sent;
            }
            if count > 0 {
                let (bound, params) =
                    read_block(&mut r, count, attrs, statement.types, statement.long_data)?;
                out.new_params_bound = bound;
                out.params = params;
            }
        }
        r.finish()?;
        Ok(out)
    }

    /// Appends the payload (command byte included) as a client with `capabilities` sends it.
    /// With `CLIENT_QUERY_ATTRIBUTES`, the parameter count is written whenever there are
    /// parameters or [`ComStmtExecute::PARAMETER_COUNT_AVAILABLE`] is set.
    pub fn encode(&self, dst: &mut BytesMut, capabilities: u64) -> Result<(), WireError> {
        let start = dst.len();
        let done = self.encode_inner(dst, capabilities);
        if done.is_err() {
            dst.truncate(start);
        }
        done
    }

    fn encode_inner(&self, dst: &mut BytesMut, capabilities: u64) -> Result<(), WireError> {
        let attrs = has(capabilities, CLIENT_QUERY_ATTRIBUTES);
        dst.put_u8(COM_STMT_EXECUTE);
        dst.put_u32_le(self.statement_id);
        dst.put_u8(self.flags);
        dst.put_u32_le(self.iteration_count);
        let n = self.params.len();
        if n > 0 || (attrs && self.flags & Self::PARAMETER_COUNT_AVAILABLE != 0) {
            if attrs {
                put_lenenc_int(dst, n as u64);
            }
            if n > 0 {
                write_block(
                    dst,
                    &self.params,
                    self.new_params_bound,
                    attrs,
                    "COM_STMT_EXECUTE",
                )?;
            }
        }
        Ok(())
    }
}
