//! COM_STMT_FETCH: fetch rows from a statement's open cursor.

use bytes::{BufMut, Bytes, BytesMut};

use super::command::{reader, COM_STMT_FETCH};
use crate::WireError;

/// COM_STMT_FETCH: the next rows of a cursor opened by COM_STMT_EXECUTE; audited as part of
/// that execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComStmtFetch {
    /// The statement whose cursor to read.
    pub statement_id: u32,
    /// How many rows to send.
    pub num_rows: u32,
}

impl ComStmtFetch {
    /// Decodes a payload (command byte included).
    pub fn decode(payload: Bytes) -> Result<Self, WireError> {
        let mut r = reader("COM_STMT_FETCH", payload, COM_STMT_FETCH)?;
        let statement_id = r.u32("statement id")?;
        let num_rows = r.u32("row count")?;
        r.finish()?;
        Ok(Self {
            statement_id,
            num_rows,
        })
    }

    /// Appends the payload (command byte included).
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u8(COM_STMT_FETCH);
        dst.put_u32_le(self.statement_id);
        dst.put_u32_le(self.num_rows);
    }
}
