//! Flush (F) message.

use bytes::{Bytes, BytesMut};

use super::buf::Reader;
use super::Message;
use crate::WireError;

/// Flush: asks the server to send what it has buffered. It has no body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flush;

impl Message for Flush {
    const TAG: u8 = b'H';
    const NAME: &'static str = "Flush";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        Reader::new(Self::NAME, body).finish()?;
        Ok(Self)
    }

    fn encode_body(&self, _dst: &mut BytesMut) -> Result<(), WireError> {
        Ok(())
    }
}
