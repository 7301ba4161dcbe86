//! COM_STMT_PREPARE (0x16): prepare a statement.

use bytes::{BufMut, Bytes, BytesMut};

use super::command::{reader, COM_STMT_PREPARE};
use super::MysqlString;
use crate::WireError;

/// COM_STMT_PREPARE: the SQL of a prepared statement; audited once here, its executions refer to it
/// by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComStmtPrepare {
    /// The SQL text with `?` markers, in the connection's character set.
    pub query: MysqlString,
}

impl ComStmtPrepare {
    /// A command for `query`.
    pub fn new(query: impl Into<MysqlString>) -> Self {
        Self {
            query: query.into(),
        }
    }

    /// Decodes a payload (command byte included).
    pub fn decode(payload: Bytes) -> Result<Self, WireError> {
        let mut r = reader("COM_STMT_PREPARE", payload, COM_STMT_PREPARE)?;
        Ok(Self {
            query: r.rest().into(),
        })
    }

    /// Appends the payload (command byte included).
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u8(COM_STMT_PREPARE);
        dst.put_slice(self.query.as_bytes());
    }
}
