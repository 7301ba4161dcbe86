//! EOF packet: the end of column definitions or rows (without `CLIENT_DEPRECATE_EOF`).

use bytes::{BufMut, Bytes, BytesMut};

use super::capability::{has, CLIENT_PROTOCOL_41};
use super::payload::PayloadReader;
use crate::WireError;

/// EOF packet: warnings and status flags at the end of a block of a result set. The agent
/// reads its status flags to know whether more results follow.
///
/// Its header `0xFE` is shared with AuthSwitchRequest and with the OK that replaces EOF under
/// `CLIENT_DEPRECATE_EOF`; a payload is an EOF only if it is shorter than 9 bytes
/// ([`EofPacket::is_eof`]), since an OK or a row starting with `0xFE` is longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EofPacket {
    /// Warnings raised.
    pub warnings: u16,
    /// Server status flags.
    pub status_flags: u16,
}

impl EofPacket {
    /// The payload's first byte.
    pub const HEADER: u8 = 0xfe;
    const NAME: &'static str = "EOF packet";

    /// Whether `payload` is an EOF packet: header `0xFE` and fewer than 9 bytes.
    pub fn is_eof(payload: &[u8]) -> bool {
        payload.first() == Some(&Self::HEADER) && payload.len() < 9
    }

    /// Decodes a payload with the negotiated `capabilities` (warnings and status only with
    /// `CLIENT_PROTOCOL_41`).
    pub fn decode(payload: Bytes, capabilities: u64) -> Result<Self, WireError> {
        if payload.len() >= 9 {
            return Err(WireError::InvalidField {
                message: Self::NAME,
                field: "length",
                reason: "an EOF packet is shorter than 9 bytes",
            });
        }
        let mut r = PayloadReader::new(Self::NAME, payload);
        let header = r.u8("header")?;
        if header != Self::HEADER {
            return Err(WireError::UnexpectedHeader {
                message: Self::NAME,
                expected: Self::HEADER,
                found: header,
            });
        }
        let mut eof = Self::default();
        if has(capabilities, CLIENT_PROTOCOL_41) {
            eof.warnings = r.u16("warnings")?;
            eof.status_flags = r.u16("status flags")?;
        }
        r.finish()?;
        Ok(eof)
    }

    /// Appends the payload.
    pub fn encode(&self, dst: &mut BytesMut, capabilities: u64) {
        dst.put_u8(Self::HEADER);
        if has(capabilities, CLIENT_PROTOCOL_41) {
            dst.put_u16_le(self.warnings);
            dst.put_u16_le(self.status_flags);
        }
    }
}
