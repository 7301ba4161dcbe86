//! The `Message` trait every typed message implements.

use bytes::{BufMut, Bytes, BytesMut};

use super::buf::patch_len;
use super::frame::Frame;
use crate::WireError;

/// A typed PostgreSQL message: its type byte, how to decode it from a frame body and how to
/// encode it.
///
/// One trait so that framing, tag checks and length patching are written once, and each
/// message file holds only its own fields.
pub trait Message: Sized {
    /// The message's type byte on the wire.
    const TAG: u8;
    /// The message's name in the PostgreSQL documentation, used in errors.
    const NAME: &'static str;

    /// Decodes a frame body (the bytes after type and length). String and binary fields share
    /// `body`'s allocation.
    fn decode(body: Bytes) -> Result<Self, WireError>;

    /// Appends the body (without type and length) to `dst`.
    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), WireError>;

    /// Decodes a [`Frame`], checking its type byte first.
    fn from_frame(frame: &Frame) -> Result<Self, WireError> {
        if frame.tag != Self::TAG {
            return Err(WireError::UnexpectedTag {
                expected: Self::TAG,
                found: frame.tag,
            });
        }
        Self::decode(frame.body.clone())
    }

    /// Appends the whole message (type, length, body) to `dst`. On error `dst` is left as it
    /// was.
    fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        let start = dst.len();
        dst.put_u8(Self::TAG);
        let at = dst.len();
        dst.put_i32(0);
        let done = self.encode_body(dst).and_then(|()| patch_len(dst, at));
        if done.is_err() {
            dst.truncate(start);
        }
        done
    }

    /// Encodes into a new [`Frame`].
    fn to_frame(&self) -> Result<Frame, WireError> {
        let mut body = BytesMut::new();
        self.encode_body(&mut body)?;
        Ok(Frame::new(Self::TAG, body.freeze()))
    }
}
