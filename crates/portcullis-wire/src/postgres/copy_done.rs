//! CopyDone (F & B) message.

use bytes::{Bytes, BytesMut};

use super::buf::Reader;
use super::Message;
use crate::WireError;

/// CopyDone: the COPY data stream is complete. It has no body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CopyDone;

impl Message for CopyDone {
    const TAG: u8 = b'c';
    const NAME: &'static str = "CopyDone";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        Reader::new(Self::NAME, body).finish()?;
        Ok(Self)
    }

    fn encode_body(&self, _dst: &mut BytesMut) -> Result<(), WireError> {
        Ok(())
    }
}
