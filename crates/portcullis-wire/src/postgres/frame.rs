//! Framing: splitting a byte stream into messages, in two steps over a persistent `BytesMut`.
//!
//! A connection keeps one `BytesMut` for its whole life (across a TLS upgrade, too, so bytes
//! that arrived early are not lost). After every read the caller asks the [`Framer`] whether a
//! whole message is buffered ([`Framer::check`], which only looks at the 5-byte header) and, if
//! so, splits it off ([`Framer::split`]). Splitting is `BytesMut::split_to(..).freeze()`: the
//! body is never copied, so relaying a DataRow or a Query costs a reference-count bump, and a
//! message is decoded into fields only when someone asks ([`super::FrontendMessage::decode`]).
//!
//! A length is checked against the limit before the caller reads on, so a forged length never
//! makes anyone allocate it; the caller should grow its buffer by read size, not by the length
//! a peer claims. Any framing error leaves the stream out of sync: close the connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::buf::be_u32;
use super::{DEFAULT_MAX_MESSAGE_LEN, MAX_STARTUP_PACKET_LEN};
use crate::WireError;

/// One typed message as it travels: its type byte and its raw body (after the length).
///
/// This is what the agent relays; it is decoded into a typed message only when the audit log or
/// the startup exchange needs a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The type byte (`b'Q'`, `b'D'`, …).
    pub tag: u8,
    /// The body: everything after the 4-byte length.
    pub body: Bytes,
}

impl Frame {
    /// Bytes before the body: type byte and length.
    pub const HEADER_LEN: usize = 5;

    /// A frame from its parts.
    pub fn new(tag: u8, body: Bytes) -> Self {
        Self { tag, body }
    }

    /// Size on the wire, header included.
    pub fn wire_len(&self) -> usize {
        self.body.len().saturating_add(Self::HEADER_LEN)
    }

    /// The 5-byte header, for writers that send header and body without joining them
    /// (vectored writes keep relaying copy-free).
    pub fn header(&self) -> Result<[u8; 5], WireError> {
        let len = self.body.len().saturating_add(4);
        let n = i32::try_from(len).map_err(|_| WireError::MessageTooLarge {
            len,
            max: i32::MAX as usize,
        })?;
        let [a, b, c, d] = n.to_be_bytes();
        Ok([self.tag, a, b, c, d])
    }

    /// Appends the frame (header and body) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        let header = self.header()?;
        dst.reserve(self.wire_len());
        dst.put_slice(&header);
        dst.put_slice(&self.body);
        Ok(())
    }
}

/// The first packet of a connection, which has no type byte: a length, a 32-bit code (protocol
/// version or request code) and the rest.
///
/// Decode it with [`super::InitialPacket::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupPacket {
    /// Protocol version (`0x0003_0000`) or request code (SSLRequest, CancelRequest…).
    pub code: u32,
    /// The bytes after the code.
    pub body: Bytes,
}

impl StartupPacket {
    /// Appends the packet (length, code, body) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        let len = self.body.len().saturating_add(8);
        let n = i32::try_from(len).map_err(|_| WireError::MessageTooLarge {
            len,
            max: i32::MAX as usize,
        })?;
        dst.reserve(len);
        dst.put_i32(n);
        dst.put_u32(self.code);
        dst.put_slice(&self.body);
        Ok(())
    }
}

/// Splits a byte stream into [`Frame`]s and [`StartupPacket`]s, enforcing size limits.
///
/// Cheap to copy; keep one per connection (or share one configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framer {
    max_message_len: usize,
    max_startup_len: usize,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    /// A framer with the default limits: [`DEFAULT_MAX_MESSAGE_LEN`] for typed messages and
    /// [`MAX_STARTUP_PACKET_LEN`] for the first packet.
    pub const fn new() -> Self {
        Self {
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_startup_len: MAX_STARTUP_PACKET_LEN,
        }
    }

    /// Sets the largest typed message accepted, counted as PostgreSQL counts it (the length
    /// field: body plus the 4 length bytes). Values below 4 are raised to 4.
    pub const fn with_max_message_len(mut self, max: usize) -> Self {
        self.max_message_len = if max < 4 { 4 } else { max };
        self
    }

    /// The largest typed message accepted.
    pub const fn max_message_len(&self) -> usize {
        self.max_message_len
    }

    /// The largest first packet accepted.
    pub const fn max_startup_len(&self) -> usize {
        self.max_startup_len
    }

    /// Step one for typed messages: `Ok(Some(n))` when the first `n` bytes of `src` are a whole
    /// message, `Ok(None)` when more bytes are needed, an error when the header is invalid.
    pub fn check(&self, src: &[u8]) -> Result<Option<usize>, WireError> {
        let Some(raw) = be_u32(src, 1) else {
            return Ok(None);
        };
        let len = checked_len(raw, 4, self.max_message_len)?;
        let total = len.saturating_add(1);
        Ok((src.len() >= total).then_some(total))
    }

    /// Step two: splits the next whole message off the front of `src` without copying it, or
    /// returns `Ok(None)` (leaving `src` alone) when it is not all there yet.
    pub fn split(&self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        let Some(total) = self.check(src)? else {
            return Ok(None);
        };
        let mut msg = src.split_to(total);
        let tag = msg.get_u8();
        msg.advance(4);
        Ok(Some(Frame {
            tag,
            body: msg.freeze(),
        }))
    }

    /// Step one for the first packet (no type byte): like [`Framer::check`], with the startup
    /// limit and a minimum length of 8 (length and code).
    pub fn check_startup(&self, src: &[u8]) -> Result<Option<usize>, WireError> {
        let Some(raw) = be_u32(src, 0) else {
            return Ok(None);
        };
        let len = checked_len(raw, 8, self.max_startup_len)?;
        Ok((src.len() >= len).then_some(len))
    }

    /// Step two for the first packet: splits it off `src` without copying, or `Ok(None)`.
    pub fn split_startup(&self, src: &mut BytesMut) -> Result<Option<StartupPacket>, WireError> {
        let Some(total) = self.check_startup(src)? else {
            return Ok(None);
        };
        let mut packet = src.split_to(total);
        packet.advance(4);
        let code = packet.get_u32();
        Ok(Some(StartupPacket {
            code,
            body: packet.freeze(),
        }))
    }
}

/// Validates a length field read as PostgreSQL does (signed 32-bit).
fn checked_len(raw: u32, min: usize, max: usize) -> Result<usize, WireError> {
    let signed = i64::from(raw as i32);
    let len = usize::try_from(signed).map_err(|_| WireError::InvalidLength { len: signed, min })?;
    if len < min {
        return Err(WireError::InvalidLength { len: signed, min });
    }
    if len > max {
        return Err(WireError::MessageTooLarge { len, max });
    }
    Ok(len)
}
