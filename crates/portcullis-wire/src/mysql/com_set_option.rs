//! COM_SET_OPTION: turn multi-statement support on or off for the session.

use bytes::{BufMut, Bytes, BytesMut};

use super::command::{reader, COM_SET_OPTION};
use crate::WireError;

/// COM_SET_OPTION: whether one COM_QUERY may hold several statements from now on, whatever
/// the handshake negotiated; the SQL checks on query text must follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComSetOption {
    /// [`ComSetOption::MULTI_STATEMENTS_ON`] or [`ComSetOption::MULTI_STATEMENTS_OFF`].
    pub option: u16,
}

impl ComSetOption {
    /// Allow several statements per COM_QUERY.
    pub const MULTI_STATEMENTS_ON: u16 = 0;
    /// One statement per COM_QUERY.
    pub const MULTI_STATEMENTS_OFF: u16 = 1;

    /// Decodes a payload (command byte included).
    pub fn decode(payload: Bytes) -> Result<Self, WireError> {
        let mut r = reader("COM_SET_OPTION", payload, COM_SET_OPTION)?;
        let option = r.u16("option")?;
        r.finish()?;
        Ok(Self { option })
    }

    /// Appends the payload (command byte included).
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u8(COM_SET_OPTION);
        dst.put_u16_le(self.option);
    }
}
