//! COM_INIT_DB (0x02): change the current database.

use bytes::{BufMut, Bytes, BytesMut};

use super::command::{reader, COM_INIT_DB};
use super::MysqlString;
use crate::WireError;

/// COM_INIT_DB: the client's `USE` sent as a command (the CLI's `\u db`, connectors' `setCatalog`);
/// the agent enforces the allowed databases on it as on `USE` statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComInitDb {
    /// The database name, in the connection's character set (no quoting).
    pub schema: MysqlString,
}

impl ComInitDb {
    /// A command for `schema`.
    pub fn new(schema: impl Into<MysqlString>) -> Self {
        Self {
            schema: schema.into(),
        }
    }

    /// Decodes a payload (command byte included).
    pub fn decode(payload: Bytes) -> Result<Self, WireError> {
        let mut r = reader("COM_INIT_DB", payload, COM_INIT_DB)?;
        Ok(Self {
            schema: r.rest().into(),
        })
    }

    /// Appends the payload (command byte included).
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u8(COM_INIT_DB);
        dst.put_slice(self.schema.as_bytes());
    }
}
