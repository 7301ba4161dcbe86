//! NegotiateProtocolVersion (B) message: the server offers an older minor version.

use bytes::{BufMut, Bytes, BytesMut};

use super::buf::{put_cstr, Reader};
use super::{Message, PgString};
use crate::WireError;

/// NegotiateProtocolVersion: sent when the client asked for a newer minor version (e.g. 3.2 of
/// a PostgreSQL 17 server) or for `_pq_.` options the server does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiateProtocolVersion {
    /// The newest minor version the server supports for the requested major.
    pub newest_minor: i32,
    /// Protocol options (`_pq_.…`) the server did not recognise.
    pub unrecognized_options: Vec<PgString>,
}

impl Message for NegotiateProtocolVersion {
    const TAG: u8 = b'v';
    const NAME: &'static str = "NegotiateProtocolVersion";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(Self::NAME, body);
        let newest_minor = r.i32("newest minor version")?;
        let count = r.i32("option count")?;
        let count = usize::try_from(count).map_err(|_| WireError::InvalidValue {
            message: Self::NAME,
            field: "option count",
            value: i64::from(count),
        })?;
        let mut unrecognized_options = Vec::with_capacity(r.capacity_for(count, 1));
        for _ in 0..count {
            unrecognized_options.push(r.cstr("option name")?.into());
        }
        r.finish()?;
        Ok(Self {
            newest_minor,
            unrecognized_options,
        })
    }

    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        dst.put_i32(self.newest_minor);
        let n = self.unrecognized_options.len();
        let count = i32::try_from(n).map_err(|_| WireError::TooMany {
            message: Self::NAME,
            field: "options",
            count: n,
            max: i32::MAX as usize,
        })?;
        dst.put_i32(count);
        for o in &self.unrecognized_options {
            put_cstr(dst, o.as_bytes(), Self::NAME, "option name")?;
        }
        Ok(())
    }
}
