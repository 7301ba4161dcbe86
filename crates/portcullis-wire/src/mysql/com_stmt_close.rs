//! COM_STMT_CLOSE: deallocate a prepared statement (the server sends no reply).

use bytes::{BufMut, Bytes, BytesMut};

use super::command::{reader, COM_STMT_CLOSE};
use crate::WireError;

/// COM_STMT_CLOSE: the statement id is forgotten (see
/// [`super::PreparedStatements`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComStmtClose {
    /// The statement to close.
    pub statement_id: u32,
}

impl ComStmtClose {
    /// Decodes a payload (command byte included).
    pub fn decode(payload: Bytes) -> Result<Self, WireError> {
        let mut r = reader("COM_STMT_CLOSE", payload, COM_STMT_CLOSE)?;
        let statement_id = r.u32("statement_id")?;
        r.finish()?;
        Ok(Self { statement_id })
    }

    /// Appends the payload (command byte included).
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u8(COM_STMT_CLOSE);
        dst.put_u32_le(self.statement_id);
    }
}
