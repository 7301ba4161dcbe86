//! COM_STMT_RESET: discard a statement's long data and open cursor.

use bytes::{BufMut, Bytes, BytesMut};

use super::command::{reader, COM_STMT_RESET};
use crate::WireError;

/// COM_STMT_RESET: long data sent for the statement is discarded, so the next execute carries all
/// its values again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComStmtReset {
    /// The statement to reset.
    pub statement_id: u32,
}

impl ComStmtReset {
    /// Decodes a payload (command byte included).
    pub fn decode(payload: Bytes) -> Result<Self, WireError> {
        let mut r = reader("COM_STMT_RESET", payload, COM_STMT_RESET)?;
        let statement_id = r.u32("statement_id")?;
        r.finish()?;
        Ok(Self { statement_id })
    }

    /// Appends the payload (command byte included).
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u8(COM_STMT_RESET);
        dst.put_u32_le(self.statement_id);
    }
}
