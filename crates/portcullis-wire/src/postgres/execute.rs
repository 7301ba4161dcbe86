//! Execute (F) message: run a bound portal.

use bytes::{BufMut, Bytes, BytesMut};

use super::buf::{put_cstr, Reader};
use super::{Message, PgString};
use crate::WireError;

/// Execute: runs a portal; the moment a prepared statement actually executes, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execute {
    /// Portal name; empty for the unnamed portal.
    pub portal: PgString,
    /// Most rows to return; 0 means no limit.
    pub max_rows: i32,
}

impl Message for Execute {
    const TAG: u8 = b'E';
    const NAME: &'static str = "Execute";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(Self::NAME, body);
        let portal = r.cstr("portal name")?.into();
        let max_rows = r.i32("row limit")?;
        r.finish()?;
        Ok(Self { portal, max_rows })
    }

    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        put_cstr(dst, self.portal.as_bytes(), Self::NAME, "portal name")?;
        dst.put_i32(self.max_rows);
        Ok(())
    }
}
