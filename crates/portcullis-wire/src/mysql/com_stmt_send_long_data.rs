//! COM_STMT_SEND_LONG_DATA: stream part of one parameter's value before executing.

use bytes::{BufMut, Bytes, BytesMut};

use super::command::{reader, COM_STMT_SEND_LONG_DATA};
use crate::WireError;

/// COM_STMT_SEND_LONG_DATA: a chunk of a parameter's value (a large blob), appended on the
/// server to what earlier chunks sent. The next COM_STMT_EXECUTE carries no bytes for that
/// parameter, so the agent must remember it (see [`super::PreparedStatements`]). The server
/// sends no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComStmtSendLongData {
    /// The statement.
    pub statement_id: u32,
    /// The parameter, numbered from 0.
    pub param_id: u16,
    /// This chunk of the value, shared with the packet.
    pub data: Bytes,
}

impl ComStmtSendLongData {
    /// Decodes a payload (command byte included).
    pub fn decode(payload: Bytes) -> Result<Self, WireError> {
        let mut r = reader("COM_STMT_SEND_LONG_DATA", payload, COM_STMT_SEND_LONG_DATA)?;
        let statement_id = r.u32("statement id")?;
        let param_id = r.u16("parameter id")?;
        Ok(Self {
            statement_id,
            param_id,
            data: r.rest(),
        })
    }

    /// Appends the payload (command byte included).
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u8(COM_STMT_SEND_LONG_DATA);
        dst.put_u32_le(self.statement_id);
        dst.put_u16_le(self.param_id);
        dst.put_slice(&self.data);
    }
}
