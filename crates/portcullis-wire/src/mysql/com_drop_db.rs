//! COM_DROP_DB (0x06): drop a database (deprecated; `DROP DATABASE` is the usual way).

use bytes::{BufMut, Bytes, BytesMut};

use super::command::{reader, COM_DROP_DB};
use super::MysqlString;
use crate::WireError;

/// COM_DROP_DB: drops a database without any SQL statement; audited and policed like `DROP
/// DATABASE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComDropDb {
    /// The database name.
    pub schema: MysqlString,
}

impl ComDropDb {
    /// A command for `schema`.
    pub fn new(schema: impl Into<MysqlString>) -> Self {
        Self {
            schema: schema.into(),
        }
    }

    /// Decodes a payload (command byte included).
    pub fn decode(payload: Bytes) -> Result<Self, WireError> {
        let mut r = reader("COM_DROP_DB", payload, COM_DROP_DB)?;
        Ok(Self {
            schema: r.rest().into(),
        })
    }

    /// Appends the payload (command byte included).
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u8(COM_DROP_DB);
        dst.put_slice(self.schema.as_bytes());
    }
}
