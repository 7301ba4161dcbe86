//! Bounds-checked reading and writing shared by every message file.
//!
//! The reader slices the frame body (`Bytes::split_to`), so string and binary fields share the
//! frame's allocation instead of being copied.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::WireError;

/// Reads big-endian integers and NUL-terminated strings from a message body, checking every
/// length first so hostile input yields an error instead of a panic.
pub(crate) struct Reader {
    buf: Bytes,
    message: &'static str,
}

impl Reader {
    /// Starts reading `buf`, the body of a `message`, named in errors.
    pub(crate) fn new(message: &'static str, buf: Bytes) -> Self {
        Self { buf, message }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn need(&self, n: usize, field: &'static str) -> Result<(), WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated {
                message: self.message,
                field,
            });
        }
        Ok(())
    }

    /// One byte.
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        self.need(1, field)?;
        Ok(self.buf.get_u8())
    }

    /// A signed 16-bit integer.
    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, WireError> {
        self.need(2, field)?;
        Ok(self.buf.get_i16())
    }

    /// An unsigned 16-bit integer (PostgreSQL reads counts this way).
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        self.need(2, field)?;
        Ok(self.buf.get_u16())
    }

    /// A signed 32-bit integer.
    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, WireError> {
        self.need(4, field)?;
        Ok(self.buf.get_i32())
    }

    /// An unsigned 32-bit integer (OIDs).
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        self.need(4, field)?;
        Ok(self.buf.get_u32())
    }

    /// Exactly `n` bytes, sharing the body's allocation.
    pub(crate) fn bytes(&mut self, n: usize, field: &'static str) -> Result<Bytes, WireError> {
        self.need(n, field)?;
        Ok(self.buf.split_to(n))
    }

    /// A NUL-terminated string, without its NUL, sharing the body's allocation (read and
    /// checked by [`SliceReader::cstr`]).
    pub(crate) fn cstr(&mut self, field: &'static str) -> Result<Bytes, WireError> {
        let mut r = SliceReader::new(self.message, &self.buf);
        let s = self.buf.slice_ref(r.cstr(field)?);
        let used = self.buf.len() - r.rest().len();
        self.buf.advance(used);
        Ok(s)
    }

    /// A length-prefixed (`Int32`, -1 = NULL) value, as in Bind and FunctionCall (read and
    /// checked by [`SliceReader::nullable`]).
    pub(crate) fn nullable(&mut self, field: &'static str) -> Result<Option<Bytes>, WireError> {
        let mut r = SliceReader::new(self.message, &self.buf);
        let v = r.nullable(field)?.map(|v| self.buf.slice_ref(v));
        let used = self.buf.len() - r.rest().len();
        self.buf.advance(used);
        Ok(v)
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Capacity to reserve for `count` items of at least `min_size` bytes each: never more than
    /// the bytes present could hold, so a forged count cannot make us allocate.
    pub(crate) fn capacity_for(&self, count: usize, min_size: usize) -> usize {
        count.min(self.buf.len() / min_size.max(1))
    }

    /// Ends decoding; bytes left over are an error.
    pub(crate) fn finish(self) -> Result<(), WireError> {
        SliceReader::new(self.message, &self.buf).finish()
    }
}

/// [`Reader`] over borrowed bytes, for messages read in place (a Bind on the audit path):
/// the same checks and the same errors, and nothing allocated or reference-counted.
pub(crate) struct SliceReader<'a> {
    buf: &'a [u8],
    message: &'static str,
}

impl<'a> SliceReader<'a> {
    /// Starts reading `buf`, the body of a `message`, named in errors.
    pub(crate) fn new(message: &'static str, buf: &'a [u8]) -> Self {
        Self { buf, message }
    }

    /// Exactly `n` bytes.
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        let Some((head, rest)) = self.buf.split_at_checked(n) else {
            return Err(WireError::Truncated {
                message: self.message,
                field,
            });
        };
        self.buf = rest;
        Ok(head)
    }

    /// An unsigned 16-bit integer.
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([
            b.first().copied().unwrap_or(0),
            b.get(1).copied().unwrap_or(0),
        ]))
    }

    /// A signed 32-bit integer.
    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, WireError> {
        let b: [u8; 4] = self
            .take(4, field)?
            .try_into()
            .map_err(|_| WireError::Truncated {
                message: self.message,
                field,
            })?;
        Ok(i32::from_be_bytes(b))
    }

    /// A NUL-terminated string, without its NUL.
    pub(crate) fn cstr(&mut self, field: &'static str) -> Result<&'a [u8], WireError> {
        let Some(nul) = self.buf.iter().position(|&b| b == 0) else {
            return Err(WireError::MissingNul {
                message: self.message,
                field,
            });
        };
        let s = self.take(nul, field)?;
        self.take(1, field)?;
        Ok(s)
    }

    /// A length-prefixed (`Int32`, -1 = NULL) value, as in Bind and FunctionCall.
    pub(crate) fn nullable(&mut self, field: &'static str) -> Result<Option<&'a [u8]>, WireError> {
        match self.i32(field)? {
            -1 => Ok(None),
            n => {
                let n = usize::try_from(n).map_err(|_| WireError::InvalidValue {
                    message: self.message,
                    field: "value length",
                    value: i64::from(n),
                })?;
                self.take(n, field).map(Some)
            }
        }
    }

    /// Everything left.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Ends decoding; bytes left over are an error.
    pub(crate) fn finish(self) -> Result<(), WireError> {
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

/// Appends `s` and its NUL terminator, refusing a NUL inside `s`.
pub(crate) fn put_cstr(
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

/// The largest count a 16-bit count field carries (PostgreSQL reads them unsigned).
pub(crate) const MAX_COUNT: usize = u16::MAX as usize;

/// Appends a 16-bit count, refusing more than 65535 items.
pub(crate) fn put_count(
    dst: &mut BytesMut,
    count: usize,
    message: &'static str,
    field: &'static str,
) -> Result<(), WireError> {
    let n = u16::try_from(count).map_err(|_| WireError::TooMany {
        message,
        field,
        count,
        max: MAX_COUNT,
    })?;
    dst.put_u16(n);
    Ok(())
}

/// Appends a length-prefixed value (`None` is written as length -1).
pub(crate) fn put_nullable(dst: &mut BytesMut, value: Option<&Bytes>) -> Result<(), WireError> {
    match value {
        None => dst.put_i32(-1),
        Some(v) => {
            let n = i32::try_from(v.len()).map_err(|_| WireError::MessageTooLarge {
                len: v.len(),
                max: i32::MAX as usize,
            })?;
            dst.put_i32(n);
            dst.put_slice(v);
        }
    }
    Ok(())
}

/// Reads a big-endian `u32` at `at`, or `None` if `src` is too short.
pub(crate) fn be_u32(src: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    let b: [u8; 4] = src.get(at..end)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// Overwrites the 4-byte length placeholder at `at` with the length from `at` to the end.
pub(crate) fn patch_len(dst: &mut BytesMut, at: usize) -> Result<(), WireError> {
    let len = dst.len().saturating_sub(at);
    let n = i32::try_from(len).map_err(|_| WireError::MessageTooLarge {
        len,
        max: i32::MAX as usize,
    })?;
    let end = at.saturating_add(4);
    if let Some(slot) = dst.get_mut(at..end) {
        slot.copy_from_slice(&n.to_be_bytes());
    }
    Ok(())
}
