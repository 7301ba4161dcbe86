//! SSLRequest: the client's request to switch to TLS, sent in place of the handshake response.

use bytes::{BufMut, Bytes, BytesMut};

use super::capability::{self, has, CLIENT_MYSQL, CLIENT_PROTOCOL_41, CLIENT_SSL};
use super::payload::PayloadReader;
use crate::WireError;

/// SSLRequest: the first 32 bytes of a HandshakeResponse41 (capabilities, maximum packet
/// size, character set, filler) with `CLIENT_SSL` set. TLS starts right after it; the full
/// HandshakeResponse41 follows inside TLS with the next sequence id (2).
///
/// The proxy requires it: a client whose first answer is not an SSLRequest is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SslRequest {
    /// Client capabilities (must include `CLIENT_SSL`), MariaDB's extended ones in the high 32
    /// bits.
    pub capabilities: u64,
    /// The largest packet the client will send.
    pub max_packet_size: u32,
    /// The client's collation id.
    pub charset: u8,
}

impl SslRequest {
    /// Payload length.
    pub const LEN: usize = 32;
    const NAME: &'static str = "SSLRequest";

    /// Whether a client's answer to the greeting is an SSLRequest (exactly 32 bytes with
    /// `CLIENT_SSL`) rather than a HandshakeResponse41, which is always longer.
    pub fn matches(payload: &[u8]) -> bool {
        payload.len() == Self::LEN
            && payload
                .get(..4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .is_some_and(|b| has(u64::from(u32::from_le_bytes(b)), CLIENT_SSL))
    }

    /// Decodes a payload.
    pub fn decode(payload: Bytes) -> Result<Self, WireError> {
        if payload.len() != Self::LEN {
            return Err(WireError::InvalidField {
                message: Self::NAME,
                field: "length",
                reason: "an SSLRequest is exactly 32 bytes",
            });
        }
        let mut r = PayloadReader::new(Self::NAME, payload);
        let (capabilities, max_packet_size, charset) = read_fixed(&mut r)?;
        r.finish()?;
        if !has(capabilities, CLIENT_SSL) {
            return Err(WireError::InvalidField {
                message: Self::NAME,
                field: "capability flags",
                reason: "CLIENT_SSL is not set",
            });
        }
        Ok(Self {
            capabilities,
            max_packet_size,
            charset,
        })
    }

    /// Appends the payload.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        if !has(self.capabilities, CLIENT_SSL) {
            return Err(WireError::InvalidField {
                message: Self::NAME,
                field: "capability flags",
                reason: "CLIENT_SSL is not set",
            });
        }
        write_fixed(
            dst,
            self.capabilities,
            self.max_packet_size,
            self.charset,
            Self::NAME,
        )
    }
}

/// Reads the 32 bytes SSLRequest and HandshakeResponse41 share: capabilities, maximum packet
/// size, character set and the 23-byte filler whose last 4 bytes carry MariaDB's extended
/// capabilities when `CLIENT_MYSQL` is clear. Pre-4.1 clients are refused.
pub(crate) fn read_fixed(r: &mut PayloadReader) -> Result<(u64, u32, u8), WireError> {
    let mut capabilities = u64::from(r.u32("capability flags")?);
    if !has(capabilities, CLIENT_PROTOCOL_41) {
        return Err(WireError::InvalidField {
            message: r.message(),
            field: "capability flags",
            reason: "CLIENT_PROTOCOL_41 is not set (pre-4.1 clients are not supported)",
        });
    }
    let max_packet_size = r.u32("max packet size")?;
    let charset = r.u8("character set")?;
    r.skip(19, "filler")?;
    let extended = r.u32("MariaDB capability flags")?;
    if !has(capabilities, CLIENT_MYSQL) {
        capabilities |= u64::from(extended) << 32;
    }
    Ok((capabilities, max_packet_size, charset))
}

/// Writes the 32 shared bytes.
pub(crate) fn write_fixed(
    dst: &mut BytesMut,
    capabilities: u64,
    max_packet_size: u32,
    charset: u8,
    message: &'static str,
) -> Result<(), WireError> {
    capability::check_extended(capabilities, message)?;
    if !has(capabilities, CLIENT_PROTOCOL_41) {
        return Err(WireError::InvalidField {
            message,
            field: "capability flags",
            reason: "CLIENT_PROTOCOL_41 is required",
        });
    }
    let (low, extended) = capability::split(capabilities);
    dst.put_u32_le(low);
    dst.put_u32_le(max_packet_size);
    dst.put_u8(charset);
    dst.put_bytes(0, 19);
    dst.put_u32_le(if has(capabilities, CLIENT_MYSQL) {
        0
    } else {
        extended
    });
    Ok(())
}
