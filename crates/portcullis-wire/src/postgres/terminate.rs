//! Terminate (F) message.

use bytes::{Bytes, BytesMut};

use super::buf::Reader;
use super::Message;
use crate::WireError;

/// Terminate: the client is closing the session; audited as the session's end. It has no body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Terminate;

impl Message for Terminate {
    const TAG: u8 = b'X';
    const NAME: &'static str = "Terminate";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        Reader::new(Self::NAME, body).finish()?;
        Ok(Self)
    }

    fn encode_body(&self, _dst: &mut BytesMut) -> Result<(), WireError> {
        Ok(())
    }
}
