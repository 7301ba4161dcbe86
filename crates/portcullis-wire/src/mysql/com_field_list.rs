//! COM_FIELD_LIST: list a table's columns (deprecated; `SHOW COLUMNS` is the usual way).

use bytes::{BufMut, Bytes, BytesMut};

use super::command::{reader, COM_FIELD_LIST};
use super::payload::put_nul_bytes;
use super::MysqlString;
use crate::WireError;

/// COM_FIELD_LIST: the columns of a table in the current database, optionally filtered by a
/// `LIKE` wildcard; the CLI sends it for tab completion. Audited as a read of the table's
/// definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComFieldList {
    /// The table.
    pub table: MysqlString,
    /// The column name wildcard (`LIKE` pattern); empty for all columns.
    pub wildcard: MysqlString,
}

impl ComFieldList {
    /// Decodes a payload (command byte included).
    pub fn decode(payload: Bytes) -> Result<Self, WireError> {
        let mut r = reader("COM_FIELD_LIST", payload, COM_FIELD_LIST)?;
        let table = r.nul_bytes("table")?.into();
        Ok(Self {
            table,
            wildcard: r.rest().into(),
        })
    }

    /// Appends the payload (command byte included).
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        let start = dst.len();
        dst.put_u8(COM_FIELD_LIST);
        if let Err(e) = put_nul_bytes(dst, self.table.as_bytes(), "COM_FIELD_LIST", "table") {
            dst.truncate(start);
            return Err(e);
        }
        dst.put_slice(self.wildcard.as_bytes());
        Ok(())
    }
}
