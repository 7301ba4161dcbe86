//! Sync (F) message.

use bytes::{Bytes, BytesMut};

use super::buf::Reader;
use super::Message;
use crate::WireError;

/// Sync: ends an extended-protocol batch; the server answers with ReadyForQuery. It has no body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sync;

impl Message for Sync {
    const TAG: u8 = b'S';
    const NAME: &'static str = "Sync";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        Reader::new(Self::NAME, body).finish()?;
        Ok(Self)
    }

    fn encode_body(&self, _dst: &mut BytesMut) -> Result<(), WireError> {
        Ok(())
    }
}
