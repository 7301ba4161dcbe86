//! Sequence ids: the per-exchange packet counter both sides must agree on.

use bytes::BytesMut;

use super::packet::{write_packets, LogicalPacket};
use crate::WireError;

/// Follows the sequence ids of one exchange (the handshake, or one command and its reply).
///
/// MySQL numbers the packets of an exchange in one counter shared by both directions: the
/// server's greeting is 0, the client's SSLRequest 1, its HandshakeResponse41 2 (the count goes
/// on through the TLS upgrade), the server's answer 3, and so on; every command starts again at
/// 0. A packet with any other id was lost, injected or reordered, and the proxy must refuse it
/// (real servers answer [`super::error_code::ER_NET_PACKETS_OUT_OF_ORDER`] or drop the
/// connection). Ids wrap from 255 to 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sequence {
    next: u8,
}

impl Sequence {
    /// The start of an exchange: the next packet is 0.
    pub const fn new() -> Self {
        Self { next: 0 }
    }

    /// An exchange whose next packet is `seq`.
    pub const fn starting_at(seq: u8) -> Self {
        Self { next: seq }
    }

    /// The id the next packet, in either direction, must carry.
    pub const fn expected(&self) -> u8 {
        self.next
    }

    /// Accepts a received packet with id `seq` if it is the expected one, and moves on.
    pub fn check(&mut self, seq: u8) -> Result<(), WireError> {
        if seq != self.next {
            return Err(WireError::SequenceMismatch {
                expected: self.next,
                found: seq,
            });
        }
        self.next = self.next.wrapping_add(1);
        Ok(())
    }

    /// Accepts a received logical packet (which may span several ids, checked by the framer)
    /// if it starts at the expected id, and moves past its last one.
    pub fn check_logical(&mut self, packet: &LogicalPacket) -> Result<(), WireError> {
        if packet.first_seq != self.next {
            return Err(WireError::SequenceMismatch {
                expected: self.next,
                found: packet.first_seq,
            });
        }
        self.next = packet.last_seq.wrapping_add(1);
        Ok(())
    }

    /// The id for a packet about to be sent, moving on.
    pub fn next_for_send(&mut self) -> u8 {
        let seq = self.next;
        self.next = self.next.wrapping_add(1);
        seq
    }

    /// Appends `payload` as one logical packet with the next id(s), moving on.
    pub fn write(&mut self, dst: &mut BytesMut, payload: &[u8]) {
        self.next = write_packets(dst, self.next, payload);
    }

    /// Starts a new exchange (a new command): the next packet is 0.
    pub fn reset(&mut self) {
        self.next = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_order() {
        let mut s = Sequence::new();
        assert_eq!(s.next_for_send(), 0); // greeting
        s.check(1).unwrap(); // SSLRequest
        assert_eq!(
            s.check(1),
            Err(WireError::SequenceMismatch {
                expected: 2,
                found: 1
            })
        );
        s.check(2).unwrap(); // HandshakeResponse41
        let mut out = BytesMut::new();
        s.write(&mut out, &[0, 0, 0, 2, 0, 0, 0]); // OK
        assert_eq!(out[3], 3);
        assert_eq!(s.expected(), 4);
        let mut s = Sequence::starting_at(255);
        s.check(255).unwrap();
        assert_eq!(s.expected(), 0);
    }
}
