//! Close (F) message: close a prepared statement or portal.

use bytes::{BufMut, Bytes, BytesMut};

use super::buf::{put_cstr, Reader};
use super::{Message, PgString, Target};
use crate::WireError;

/// Close: drops a statement or portal; the agent forgets the statement's SQL it kept for audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// Statement or portal.
    pub target: Target,
    /// Its name; empty for the unnamed one.
    pub name: PgString,
}

impl Message for Close {
    const TAG: u8 = b'C';
    const NAME: &'static str = "Close";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(Self::NAME, body);
        let target = Target::read(&mut r, Self::NAME)?;
        let name = r.cstr("name")?.into();
        r.finish()?;
        Ok(Self { target, name })
    }

    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        dst.put_u8(self.target.byte());
        put_cstr(dst, self.name.as_bytes(), Self::NAME, "name")
    }
}
