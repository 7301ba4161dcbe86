//! Bounds-checked reading and writing of MySQL payload fields: little-endian integers,
//! length-encoded integers and strings, NUL-terminated strings.
//!
//! Every message file decodes through [`PayloadReader`], so the length checks that keep a
//! hostile peer from causing a panic or a huge allocation are written once. The reader slices
//! the payload (`Bytes::split_to`): string and blob fields share the packet's allocation.
//! The reader and the writers are public because the agent needs the same primitives for the
//! parts of the protocol this crate does not model (result set rows, column definitions).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::WireError;

/// First byte of a length-encoded integer that stands for SQL NULL (in result rows).
pub const LENENC_NULL: u8 = 0xfb;
/// First byte of a length-encoded integer followed by a 2-byte value.
pub const LENENC_U16: u8 = 0xfc;
/// First byte of a length-encoded integer followed by a 3-byte value.
pub const LENENC_U24: u8 = 0xfd;
/// First byte of a length-encoded integer followed by an 8-byte value.
pub const LENENC_U64: u8 = 0xfe;

/// Reads the fields of one payload front to back, checking every length against the bytes
/// actually present, so malformed input yields a [`WireError`] naming the message and field
/// instead of a panic, and a forged length never causes an allocation.
#[derive(Debug, Clone)]
pub struct PayloadReader {
    buf: Bytes,
    message: &'static str,
}

impl PayloadReader {
    /// Starts reading `payload`, the payload of `message` (named in errors).
    pub fn new(message: &'static str, payload: Bytes) -> Self {
        Self {
            buf: payload,
            message,
        }
    }

    /// The message name given to [`PayloadReader::new`].
    pub fn message(&self) -> &'static str {
        self.message
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next byte, without consuming it.
    pub fn peek_u8(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    /// The bytes not read yet, without consuming them.
    pub fn peek_rest(&self) -> &[u8] {
        &self.buf
    }

    /// The error for a field that does not fit in what is left.
    pub fn truncated(&self, field: &'static str) -> WireError {
        WireError::Truncated {
            message: self.message,
            field,
        }
    }

    fn need(&self, n: usize, field: &'static str) -> Result<(), WireError> {
        if self.buf.len() < n {
            return Err(self.truncated(field));
        }
        Ok(())
    }

    /// One byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        self.need(1, field)?;
        Ok(self.buf.get_u8())
    }

    /// A little-endian 16-bit integer.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        self.need(2, field)?;
        Ok(self.buf.get_u16_le())
    }

    /// A little-endian 24-bit integer (packet lengths).
    pub fn u24(&mut self, field: &'static str) -> Result<u32, WireError> {
        self.need(3, field)?;
        let v = self.buf.get_uint_le(3);
        Ok(u32::try_from(v).unwrap_or(u32::MAX))
    }

    /// A little-endian 32-bit integer.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        self.need(4, field)?;
        Ok(self.buf.get_u32_le())
    }

    /// A little-endian 64-bit integer.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        self.need(8, field)?;
        Ok(self.buf.get_u64_le())
    }

    /// Exactly `n` bytes, sharing the payload's allocation.
    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<Bytes, WireError> {
        self.need(n, field)?;
        Ok(self.buf.split_to(n))
    }

    /// Skips exactly `n` bytes (fillers, reserved fields).
    pub fn skip(&mut self, n: usize, field: &'static str) -> Result<(), WireError> {
        self.need(n, field)?;
        self.buf.advance(n);
        Ok(())
    }

    /// A length-encoded integer that may be NULL (`0xFB`, only meaningful in result rows).
    /// `0xFF` never starts one (it marks an ERR packet) and is refused.
    pub fn lenenc_int_or_null(&mut self, field: &'static str) -> Result<Option<u64>, WireError> {
        let first = self.u8(field)?;
        let value = match first {
            LENENC_NULL => return Ok(None),
            LENENC_U16 => u64::from(self.u16(field)?),
            LENENC_U24 => u64::from(self.u24(field)?),
            LENENC_U64 => self.u64(field)?,
            0xff => {
                return Err(WireError::InvalidValue {
                    message: self.message,
                    field,
                    value: 0xff,
                })
            }
            n => u64::from(n),
        };
        Ok(Some(value))
    }

    /// A length-encoded integer; NULL (`0xFB`) is refused.
    pub fn lenenc_int(&mut self, field: &'static str) -> Result<u64, WireError> {
        self.lenenc_int_or_null(field)?
            .ok_or(WireError::InvalidValue {
                message: self.message,
                field,
                value: i64::from(LENENC_NULL),
            })
    }

    /// A length-encoded integer used as a length: refused unless that many bytes are present,
    /// so the caller may slice or allocate it.
    pub fn lenenc_len(&mut self, field: &'static str) -> Result<usize, WireError> {
        let n = self.lenenc_int(field)?;
        match usize::try_from(n) {
            Ok(n) if n <= self.buf.len() => Ok(n),
            _ => Err(self.truncated(field)),
        }
    }

    /// A length-encoded string (length, then that many bytes), sharing the payload's
    /// allocation.
    pub fn lenenc_bytes(&mut self, field: &'static str) -> Result<Bytes, WireError> {
        let n = self.lenenc_len(field)?;
        self.bytes(n, field)
    }

    /// A length-encoded string that may be NULL (`0xFB`), as in result rows.
    pub fn lenenc_bytes_or_null(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Bytes>, WireError> {
        match self.lenenc_int_or_null(field)? {
            None => Ok(None),
            Some(n) => match usize::try_from(n) {
                Ok(n) if n <= self.buf.len() => self.bytes(n, field).map(Some),
                _ => Err(self.truncated(field)),
            },
        }
    }

    /// A NUL-terminated string, without its NUL, sharing the payload's allocation.
    pub fn nul_bytes(&mut self, field: &'static str) -> Result<Bytes, WireError> {
        let Some(nul) = self.buf.iter().position(|&b| b == 0) else {
            return Err(WireError::MissingNul {
                message: self.message,
                field,
            });
        };
        let s = self.buf.split_to(nul);
        self.buf.advance(1);
        Ok(s)
    }

    /// Everything left (a `string<EOF>` field).
    pub fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Capacity to reserve for `count` items of at least `min_size` bytes each: never more than
    /// the bytes present could hold, so a forged count cannot make anyone allocate.
    pub fn capacity_for(&self, count: u64, min_size: usize) -> usize {
        let fits = self.buf.len() / min_size.max(1);
        usize::try_from(count).map_or(fits, |c| c.min(fits))
    }

    /// Ends decoding; bytes left over are an error.
    pub fn finish(self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes {
                message: self.message,
                count: self.buf.len(),
            })
        }
    }
}

/// How many bytes [`put_lenenc_int`] writes for `n`.
pub const fn lenenc_int_len(n: u64) -> usize {
    if n < 251 {
        1
    } else if n < (1 << 16) {
        3
    } else if n < (1 << 24) {
        4
    } else {
        9
    }
}

/// Appends `n` as a length-encoded integer, in its shortest form.
pub fn put_lenenc_int(dst: &mut BytesMut, n: u64) {
    if n < 251 {
        dst.put_u8(n as u8);
    } else if n < (1 << 16) {
        dst.put_u8(LENENC_U16);
        dst.put_u16_le(n as u16);
    } else if n < (1 << 24) {
        dst.put_u8(LENENC_U24);
        dst.put_uint_le(n, 3);
    } else {
        dst.put_u8(LENENC_U64);
        dst.put_u64_le(n);
    }
}

/// Appends `s` as a length-encoded string.
pub fn put_lenenc_bytes(dst: &mut BytesMut, s: &[u8]) {
    put_lenenc_int(dst, s.len() as u64);
    dst.put_slice(s);
}

/// Appends `s` and a NUL terminator, refusing a NUL inside `s` (it would end the field early
/// and shift every field after it).
pub fn put_nul_bytes(
    dst: &mut BytesMut,
    s: &[u8],
    message: &'static str,
    field: &'static str,
) -> Result<(), WireError> {
    if s.contains(&0) {
        return Err(WireError::InteriorNul { message, field });
    }
    dst.put_slice(s);
    dst.put_u8(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(b: &'static [u8]) -> PayloadReader {
        PayloadReader::new("test", Bytes::from_static(b))
    }

    #[test]
    fn lenenc_ints_in_every_width() {
        for n in [
            0u64,
            250,
            251,
            0xffff,
            0x1_0000,
            0xff_ffff,
            0x100_0000,
            u64::MAX,
        ] {
            let mut b = BytesMut::new();
            put_lenenc_int(&mut b, n);
            assert_eq!(b.len(), lenenc_int_len(n));
            let mut r = PayloadReader::new("test", b.freeze());
            assert_eq!(r.lenenc_int("n").unwrap(), n);
            r.finish().unwrap();
        }
    }

    #[test]
    fn lenenc_null_and_invalid() {
        assert_eq!(reader(&[0xfb]).lenenc_int_or_null("n").unwrap(), None);
        assert!(matches!(
            reader(&[0xfb]).lenenc_int("n"),
            Err(WireError::InvalidValue { value: 0xfb, .. })
        ));
        assert!(matches!(
            reader(&[0xff]).lenenc_int("n"),
            Err(WireError::InvalidValue { value: 0xff, .. })
        ));
        // Running past the end, in every width.
        for b in [
            &[0xfc, 1][..],
            &[0xfd, 1, 2],
            &[0xfe, 1, 2, 3, 4, 5, 6, 7],
            &[],
        ] {
            let mut r = PayloadReader::new("test", Bytes::copy_from_slice(b));
            assert!(matches!(
                r.lenenc_int("n"),
                Err(WireError::Truncated { .. })
            ));
        }
    }

    #[test]
    fn lenenc_string_longer_than_payload() {
        let mut r = reader(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, b'a']);
        assert!(matches!(
            r.lenenc_bytes("s"),
            Err(WireError::Truncated { field: "s", .. })
        ));
        let mut r = reader(&[3, b'a', b'b']);
        assert!(r.lenenc_bytes("s").is_err());
        let mut r = reader(&[2, b'a', b'b', 0xfb]);
        assert_eq!(&r.lenenc_bytes("s").unwrap()[..], b"ab");
        assert_eq!(r.lenenc_bytes_or_null("s").unwrap(), None);
    }

    #[test]
    fn nul_strings() {
        let mut r = reader(b"abc\0de");
        assert_eq!(&r.nul_bytes("s").unwrap()[..], b"abc");
        assert!(matches!(
            r.nul_bytes("s"),
            Err(WireError::MissingNul { .. })
        ));
        let mut b = BytesMut::new();
        assert!(put_nul_bytes(&mut b, b"a\0b", "m", "f").is_err());
    }

    #[test]
    fn forged_counts_do_not_reserve() {
        let r = reader(&[0; 10]);
        assert_eq!(r.capacity_for(u64::MAX, 2), 5);
        assert_eq!(r.capacity_for(3, 2), 3);
    }
}
