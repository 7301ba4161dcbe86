//! Framing: splitting a byte stream into packets, over a persistent `BytesMut`.
//!
//! Every MySQL packet starts with a 4-byte header: the payload length (3 bytes, little-endian)
//! and a sequence id. A payload of exactly [`MAX_PAYLOAD_LEN`] bytes (16 MiB − 1) means the
//! *logical* packet goes on in the next physical packet, whose sequence id is one more; a
//! logical packet of a multiple of that size ends with an empty physical packet.
//!
//! Two ways to read, both zero-copy for the common case and both bounded by the framer's
//! maximum logical size:
//!
//! - [`PacketFramer::split_physical`] returns physical packets one by one, for a relay that
//!   forwards bytes as they come (a 1 GiB insert is never buffered whole). The framer follows
//!   continuations itself, so the size limit and the sequence ids of continuation packets are
//!   still enforced.
//! - [`PacketFramer::split_logical`] waits until a whole logical packet is buffered and
//!   returns its payload, joined (copied) only when it spans several physical packets.
//!
//! A declared length is checked against the limit as soon as its header arrives, before the
//! caller reads on, so a forged length never makes anyone buffer it. After any framing error
//! the stream is out of sync: close the connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::WireError;

/// Bytes of a packet header: 3 length bytes and the sequence id.
pub const HEADER_LEN: usize = 4;

/// The largest payload of one physical packet (`0xFF_FFFF`); a payload of exactly this size is
/// continued by the next packet.
pub const MAX_PAYLOAD_LEN: usize = 0xff_ffff;

/// Default largest logical payload: 64 MiB, MySQL 8's default `max_allowed_packet`.
///
/// A server refuses packets over its own `max_allowed_packet` anyway (MariaDB's default is
/// 16 MiB), so buffering more than the server accepts buys nothing; deployments that raise
/// `max_allowed_packet` raise this with [`PacketFramer::with_max_packet_len`].
pub const DEFAULT_MAX_PACKET_LEN: usize = 64 * 1024 * 1024;

/// The largest logical payload any server accepts: 1 GiB, the upper bound of
/// `max_allowed_packet` in both MySQL and MariaDB. [`PacketFramer::with_max_packet_len`] caps
/// its argument here.
pub const PROTOCOL_MAX_PACKET_LEN: usize = 1024 * 1024 * 1024;

/// Largest logical payload worth accepting before the client is authenticated (SSLRequest,
/// HandshakeResponse41, auth switch responses): 128 KiB.
///
/// A response holds a user name, a database name and a plugin name (a few hundred bytes at
/// most), auth data (at most a few hundred bytes, an RSA-encrypted password included) and
/// connection attributes, which clients cap at 64 KiB; twice that leaves room without letting
/// an anonymous peer make the proxy hold megabytes.
pub const MAX_HANDSHAKE_PACKET_LEN: usize = 128 * 1024;

/// One physical packet: its sequence id and its payload (after the 4-byte header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The sequence id.
    pub seq: u8,
    /// The payload, at most [`MAX_PAYLOAD_LEN`] bytes.
    pub payload: Bytes,
}

impl Packet {
    /// A packet from its parts.
    pub fn new(seq: u8, payload: Bytes) -> Self {
        Self { seq, payload }
    }

    /// Whether the logical packet goes on in the next physical packet (the payload is exactly
    /// [`MAX_PAYLOAD_LEN`] bytes).
    pub fn is_continued(&self) -> bool {
        self.payload.len() == MAX_PAYLOAD_LEN
    }

    /// Size on the wire, header included.
    pub fn wire_len(&self) -> usize {
        self.payload.len().saturating_add(HEADER_LEN)
    }

    /// The 4-byte header, for writers that send header and payload without joining them.
    pub fn header(&self) -> Result<[u8; HEADER_LEN], WireError> {
        header(self.payload.len(), self.seq)
    }

    /// Appends the packet (header and payload) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        let header = self.header()?;
        dst.reserve(self.wire_len());
        dst.put_slice(&header);
        dst.put_slice(&self.payload);
        Ok(())
    }
}

/// A physical packet as split off the stream: the decoded [`Packet`] and its raw bytes (header
/// and payload), which share one allocation, for relaying it unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPacket {
    /// Sequence id and payload.
    pub packet: Packet,
    /// The packet exactly as received, header included.
    pub raw: Bytes,
}

/// A whole logical packet: the payload of one or more physical packets joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalPacket {
    /// Sequence id of the first physical packet.
    pub first_seq: u8,
    /// Sequence id of the last physical packet (equal to `first_seq` unless the payload is at
    /// least 16 MiB − 1); the exchange goes on with `last_seq + 1`.
    pub last_seq: u8,
    /// The joined payload.
    pub payload: Bytes,
    /// All the physical packets exactly as received, headers included, for relaying unchanged.
    pub raw: Bytes,
}

impl LogicalPacket {
    /// How many physical packets carried it.
    pub fn physical_packets(&self) -> usize {
        usize::from(self.last_seq.wrapping_sub(self.first_seq)).saturating_add(1)
    }
}

/// Splits a byte stream into packets, enforcing the maximum logical size and the sequence ids
/// of continuation packets.
///
/// Keep one per connection direction, for the whole connection (across the TLS upgrade too,
/// with the same buffer): [`PacketFramer::split_physical`] remembers whether the last packet
/// is continued. Do not mix the two split methods in the middle of a logical packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketFramer {
    max_packet_len: usize,
    /// While relaying a continued logical packet: the sequence id the next physical packet
    /// must carry and the payload bytes seen so far.
    continuation: Option<(u8, usize)>,
}

impl Default for PacketFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketFramer {
    /// A framer accepting logical payloads up to [`DEFAULT_MAX_PACKET_LEN`].
    pub const fn new() -> Self {
        Self {
            max_packet_len: DEFAULT_MAX_PACKET_LEN,
            continuation: None,
        }
    }

    /// A framer for the handshake: payloads up to [`MAX_HANDSHAKE_PACKET_LEN`].
    pub const fn handshake() -> Self {
        Self::new().with_max_packet_len(MAX_HANDSHAKE_PACKET_LEN)
    }

    /// Sets the largest logical payload accepted, capped at [`PROTOCOL_MAX_PACKET_LEN`].
    pub const fn with_max_packet_len(mut self, max: usize) -> Self {
        self.max_packet_len = if max > PROTOCOL_MAX_PACKET_LEN {
            PROTOCOL_MAX_PACKET_LEN
        } else {
            max
        };
        self
    }

    /// The largest logical payload accepted.
    pub const fn max_packet_len(&self) -> usize {
        self.max_packet_len
    }

    /// Whether [`PacketFramer::split_physical`] is in the middle of a continued logical packet.
    pub const fn in_continuation(&self) -> bool {
        self.continuation.is_some()
    }

    /// Splits the next physical packet off the front of `src` without copying it, or returns
    /// `Ok(None)` (leaving `src` alone) when it is not all there yet.
    ///
    /// Errors when the logical packet this one belongs to exceeds the maximum (checked from the
    /// header alone) or when a continuation packet does not carry the next sequence id.
    pub fn split_physical(&mut self, src: &mut BytesMut) -> Result<Option<RawPacket>, WireError> {
        let Some((len, seq)) = read_header(src) else {
            return Ok(None);
        };
        let (so_far, expected) = match self.continuation {
            Some((expected, so_far)) => (so_far, Some(expected)),
            None => (0, None),
        };
        if let Some(expected) = expected {
            if seq != expected {
                return Err(WireError::SequenceMismatch {
                    expected,
                    found: seq,
                });
            }
        }
        let total = so_far.saturating_add(len);
        if total > self.max_packet_len {
            return Err(WireError::MessageTooLarge {
                len: total,
                max: self.max_packet_len,
            });
        }
        let end = len.saturating_add(HEADER_LEN);
        if src.len() < end {
            return Ok(None);
        }
        self.continuation = (len == MAX_PAYLOAD_LEN).then_some((seq.wrapping_add(1), total));
        let raw = src.split_to(end).freeze();
        let payload = raw.slice(HEADER_LEN..);
        Ok(Some(RawPacket {
            packet: Packet { seq, payload },
            raw,
        }))
    }

    /// Looks for a whole logical packet at the front of `src`: `Ok(Some((bytes, packets)))`
    /// when the first `bytes` bytes hold one made of `packets` physical packets, `Ok(None)`
    /// when more bytes are needed, an error when a header is invalid (too large, or a
    /// continuation out of sequence). Reads headers only.
    pub fn check_logical(&self, src: &[u8]) -> Result<Option<(usize, usize)>, WireError> {
        let mut at = 0usize;
        let mut total = 0usize;
        let mut packets = 0usize;
        let mut expected: Option<u8> = None;
        loop {
            let Some((len, seq)) = src.get(at..).and_then(read_header) else {
                return Ok(None);
            };
            if let Some(expected) = expected {
                if seq != expected {
                    return Err(WireError::SequenceMismatch {
                        expected,
                        found: seq,
                    });
                }
            }
            total = total.saturating_add(len);
            if total > self.max_packet_len {
                return Err(WireError::MessageTooLarge {
                    len: total,
                    max: self.max_packet_len,
                });
            }
            packets = packets.saturating_add(1);
            at = at.saturating_add(HEADER_LEN).saturating_add(len);
            if src.len() < at {
                return Ok(None);
            }
            if len < MAX_PAYLOAD_LEN {
                return Ok(Some((at, packets)));
            }
            expected = Some(seq.wrapping_add(1));
        }
    }

    /// Splits the next whole logical packet off the front of `src`, or returns `Ok(None)`
    /// (leaving `src` alone) when it is not all there yet. A packet that fits in one physical
    /// packet (below 16 MiB − 1) is not copied.
    pub fn split_logical(&self, src: &mut BytesMut) -> Result<Option<LogicalPacket>, WireError> {
        let Some((end, packets)) = self.check_logical(src)? else {
            return Ok(None);
        };
        let raw = src.split_to(end).freeze();
        let first_seq = raw.get(3).copied().unwrap_or_default();
        if packets == 1 {
            return Ok(Some(LogicalPacket {
                first_seq,
                last_seq: first_seq,
                payload: raw.slice(HEADER_LEN..),
                raw,
            }));
        }
        let mut payload =
            BytesMut::with_capacity(end.saturating_sub(packets.saturating_mul(HEADER_LEN)));
        let mut rest = raw.clone();
        let mut last_seq = first_seq;
        while let Some((len, seq)) = read_header(&rest) {
            rest.advance(HEADER_LEN);
            let take = len.min(rest.len());
            payload.put_slice(rest.get(..take).unwrap_or_default());
            rest.advance(take);
            last_seq = seq;
        }
        Ok(Some(LogicalPacket {
            first_seq,
            last_seq,
            payload: payload.freeze(),
            raw,
        }))
    }
}

/// Reads a header: payload length and sequence id, or `None` if fewer than 4 bytes.
fn read_header(src: &[u8]) -> Option<(usize, u8)> {
    let &[a, b, c, seq] = src.get(..HEADER_LEN)? else {
        return None;
    };
    let len = usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16;
    Some((len, seq))
}

/// The header for a physical payload of `len` bytes.
fn header(len: usize, seq: u8) -> Result<[u8; HEADER_LEN], WireError> {
    if len > MAX_PAYLOAD_LEN {
        return Err(WireError::MessageTooLarge {
            len,
            max: MAX_PAYLOAD_LEN,
        });
    }
    let [a, b, c, _] = u32::try_from(len).unwrap_or_default().to_le_bytes();
    Ok([a, b, c, seq])
}

/// Appends `payload` as one logical packet starting at sequence id `seq`, split into physical
/// packets of at most [`MAX_PAYLOAD_LEN`] bytes (with the empty trailing packet a payload of a
/// multiple of that size needs). Returns the sequence id that comes next.
pub fn write_packets(dst: &mut BytesMut, seq: u8, payload: &[u8]) -> u8 {
    let mut seq = seq;
    dst.reserve(payload.len().saturating_add(HEADER_LEN));
    let mut rest = payload;
    loop {
        let take = rest.len().min(MAX_PAYLOAD_LEN);
        let (chunk, tail) = rest.split_at(take);
        let [a, b, c, _] = u32::try_from(take).unwrap_or_default().to_le_bytes();
        dst.put_slice(&[a, b, c, seq]);
        dst.put_slice(chunk);
        seq = seq.wrapping_add(1);
        rest = tail;
        if take < MAX_PAYLOAD_LEN {
            return seq;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_limit_into_continuations() {
        let payload = vec![7u8; MAX_PAYLOAD_LEN * 2 + 10];
        let mut wire = BytesMut::new();
        assert_eq!(write_packets(&mut wire, 5, &payload), 8);
        assert_eq!(wire.len(), payload.len() + 3 * HEADER_LEN);

        let mut whole = wire.clone();
        let framer = PacketFramer::new();
        let p = framer.split_logical(&mut whole).unwrap().unwrap();
        assert_eq!((p.first_seq, p.last_seq, p.physical_packets()), (5, 7, 3));
        assert_eq!(p.payload.len(), payload.len());
        assert_eq!(p.raw.len(), wire.len());
        assert!(whole.is_empty());

        // Exactly the limit: an empty trailing packet ends it.
        let mut wire = BytesMut::new();
        assert_eq!(write_packets(&mut wire, 0, &payload[..MAX_PAYLOAD_LEN]), 2);
        let p = framer.split_logical(&mut wire).unwrap().unwrap();
        assert_eq!(p.payload.len(), MAX_PAYLOAD_LEN);
        assert_eq!(p.last_seq, 1);
    }

    #[test]
    fn physical_split_follows_continuations() {
        let payload = vec![1u8; MAX_PAYLOAD_LEN + 1];
        let mut wire = BytesMut::new();
        write_packets(&mut wire, 250, &payload);
        write_packets(&mut wire, 0, b"\x0e");
        let mut framer = PacketFramer::new();
        let a = framer.split_physical(&mut wire).unwrap().unwrap();
        assert!(a.packet.is_continued() && framer.in_continuation());
        let b = framer.split_physical(&mut wire).unwrap().unwrap();
        assert_eq!((b.packet.seq, b.packet.payload.len()), (251, 1));
        assert!(!framer.in_continuation());
        let c = framer.split_physical(&mut wire).unwrap().unwrap();
        assert_eq!(&c.raw[..], b"\x01\0\0\0\x0e");
    }

    #[test]
    fn continuation_out_of_sequence() {
        let mut wire = BytesMut::new();
        write_packets(&mut wire, 3, &vec![0u8; MAX_PAYLOAD_LEN]);
        wire[MAX_PAYLOAD_LEN + HEADER_LEN + 3] = 9;
        let err = PacketFramer::new()
            .split_logical(&mut wire.clone())
            .unwrap_err();
        assert_eq!(
            err,
            WireError::SequenceMismatch {
                expected: 4,
                found: 9
            }
        );
        let mut framer = PacketFramer::new();
        assert!(framer.split_physical(&mut wire).unwrap().is_some());
        assert!(framer.split_physical(&mut wire).is_err());
    }

    #[test]
    fn too_large_is_refused_from_the_header() {
        let framer = PacketFramer::new().with_max_packet_len(100);
        let mut wire = BytesMut::from(&[101u8, 0, 0, 0][..]);
        assert_eq!(
            framer.split_logical(&mut wire).unwrap_err(),
            WireError::MessageTooLarge { len: 101, max: 100 }
        );
        let mut wire = BytesMut::from(&[100u8, 0, 0, 0, 1][..]);
        assert_eq!(framer.split_logical(&mut wire).unwrap(), None);
        assert_eq!(wire.len(), 5);
    }
}
