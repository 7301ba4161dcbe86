//! COM_PROCESS_KILL: kill another connection (deprecated; `KILL` is the usual way).

use bytes::{BufMut, Bytes, BytesMut};

use super::command::{reader, COM_PROCESS_KILL};
use crate::WireError;

/// COM_PROCESS_KILL: ends another session; audited and policed like `KILL`, since it may target
/// another user's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComProcessKill {
    /// The connection (thread) id to kill.
    pub connection_id: u32,
}

impl ComProcessKill {
    /// Decodes a payload (command byte included).
    pub fn decode(payload: Bytes) -> Result<Self, WireError> {
        let mut r = reader("COM_PROCESS_KILL", payload, COM_PROCESS_KILL)?;
        let connection_id = r.u32("connection_id")?;
        r.finish()?;
        Ok(Self { connection_id })
    }

    /// Appends the payload (command byte included).
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u8(COM_PROCESS_KILL);
        dst.put_u32_le(self.connection_id);
    }
}
