//! CopyData (F & B) message: a chunk of a COPY stream.

use bytes::{BufMut, Bytes, BytesMut};

use super::Message;
use crate::WireError;

/// CopyData: raw COPY bytes in either direction; relayed as is, never parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyData {
    /// The data, sharing the frame's allocation.
    pub data: Bytes,
}

impl Message for CopyData {
    const TAG: u8 = b'd';
    const NAME: &'static str = "CopyData";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        Ok(Self { data: body })
    }

    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        dst.put_slice(&self.data);
        Ok(())
    }
}
