//! COM_STMT_PREPARE_OK: the server's answer to a successful COM_STMT_PREPARE.

use bytes::{BufMut, Bytes, BytesMut};

use super::payload::PayloadReader;
use crate::WireError;

/// COM_STMT_PREPARE_OK: the statement id and how many parameters and result columns it has.
/// The agent reads it to learn the parameter count COM_STMT_EXECUTE decoding needs (see
/// [`super::PreparedStatements::on_prepare_ok`]). Parameter and column definitions follow in
/// their own packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StmtPrepareOk {
    /// The id later commands name the statement by.
    pub statement_id: u32,
    /// Result set columns (column definitions follow).
    pub num_columns: u16,
    /// Parameters (`?` markers; parameter definitions follow).
    pub num_params: u16,
    /// Warnings raised by preparing.
    pub warnings: u16,
    /// MySQL 8 with `CLIENT_OPTIONAL_RESULTSET_METADATA`: whether metadata follows.
    pub metadata_follows: Option<u8>,
}

impl StmtPrepareOk {
    /// The payload's first byte.
    pub const HEADER: u8 = 0x00;

    /// Decodes a payload. Servers before 4.1 omit the warning count; it is then 0.
    pub fn decode(payload: Bytes) -> Result<Self, WireError> {
        let mut r = PayloadReader::new("COM_STMT_PREPARE_OK", payload);
        let header = r.u8("header")?;
        if header != Self::HEADER {
            return Err(WireError::UnexpectedHeader {
                message: "COM_STMT_PREPARE_OK",
                expected: Self::HEADER,
                found: header,
            });
        }
        let statement_id = r.u32("statement id")?;
        let num_columns = r.u16("column count")?;
        let num_params = r.u16("parameter count")?;
        r.skip(1, "filler")?;
        let warnings = if r.is_empty() {
            0
        } else {
            r.u16("warning count")?
        };
        let metadata_follows = if r.is_empty() {
            None
        } else {
            Some(r.u8("metadata follows")?)
        };
        r.finish()?;
        Ok(Self {
            statement_id,
            num_columns,
            num_params,
            warnings,
            metadata_follows,
        })
    }

    /// Appends the payload.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u8(Self::HEADER);
        dst.put_u32_le(self.statement_id);
        dst.put_u16_le(self.num_columns);
        dst.put_u16_le(self.num_params);
        dst.put_u8(0);
        dst.put_u16_le(self.warnings);
        if let Some(m) = self.metadata_follows {
            dst.put_u8(m);
        }
    }
}
