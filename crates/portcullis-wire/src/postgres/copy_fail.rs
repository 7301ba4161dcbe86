//! CopyFail (F) message: the client aborts a COPY FROM STDIN.

use bytes::{Bytes, BytesMut};

use super::buf::{put_cstr, Reader};
use super::{Message, PgString};
use crate::WireError;

/// CopyFail: the client gives up on a COPY, with a reason the server reports back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFail {
    /// Why the COPY failed.
    pub message: PgString,
}

impl Message for CopyFail {
    const TAG: u8 = b'f';
    const NAME: &'static str = "CopyFail";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(Self::NAME, body);
        let message = r.cstr("error message")?.into();
        r.finish()?;
        Ok(Self { message })
    }

    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        put_cstr(dst, self.message.as_bytes(), Self::NAME, "error message")
    }
}
