//! Parse (F) message: prepare a statement in the extended protocol.

use bytes::{BufMut, Bytes, BytesMut};

use super::buf::{put_count, put_cstr, Reader};
use super::{Message, PgString};
use crate::WireError;

/// Parse: creates a prepared statement; its SQL is audited (Bind/Execute refer to it by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parse {
    /// Statement name; empty for the unnamed statement.
    pub name: PgString,
    /// The SQL text, in the client's encoding.
    pub query: PgString,
    /// Parameter type OIDs the client specifies (0 = let the server infer).
    pub param_types: Vec<u32>,
}

impl Message for Parse {
    const TAG: u8 = b'P';
    const NAME: &'static str = "Parse";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(Self::NAME, body);
        let name = r.cstr("statement name")?.into();
        let query = r.cstr("query string")?.into();
        let count = usize::from(r.u16("parameter type count")?);
        let mut param_types = Vec::with_capacity(r.capacity_for(count, 4));
        for _ in 0..count {
            param_types.push(r.u32("parameter type")?);
        }
        r.finish()?;
        Ok(Self {
            name,
            query,
            param_types,
        })
    }

    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        put_cstr(dst, self.name.as_bytes(), Self::NAME, "statement name")?;
        put_cstr(dst, self.query.as_bytes(), Self::NAME, "query string")?;
        put_count(dst, self.param_types.len(), Self::NAME, "parameter types")?;
        for t in &self.param_types {
            dst.put_u32(*t);
        }
        Ok(())
    }
}
