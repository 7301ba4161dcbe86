//! COM_CREATE_DB (0x05): create a database (deprecated; `CREATE DATABASE` is the usual way).

use bytes::{BufMut, Bytes, BytesMut};

use super::command::{reader, COM_CREATE_DB};
use super::MysqlString;
use crate::WireError;

/// COM_CREATE_DB: creates a database without any SQL statement; audited and policed like `CREATE
/// DATABASE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComCreateDb {
    /// The database name.
    pub schema: MysqlString,
}

impl ComCreateDb {
    /// A command for `schema`.
    pub fn new(schema: impl Into<MysqlString>) -> Self {
        Self {
            schema: schema.into(),
        }
    }

    /// Decodes a payload (command byte included).
    pub fn decode(payload: Bytes) -> Result<Self, WireError> {
        let mut r = reader("COM_CREATE_DB", payload, COM_CREATE_DB)?;
        Ok(Self {
            schema: r.rest().into(),
        })
    }

    /// Appends the payload (command byte included).
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u8(COM_CREATE_DB);
        dst.put_slice(self.schema.as_bytes());
    }
}
