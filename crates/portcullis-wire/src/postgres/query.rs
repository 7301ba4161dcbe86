//! Query (F) message: a simple-protocol query.

use bytes::{Bytes, BytesMut};

use super::buf::{put_cstr, Reader};
use super::{Message, PgString};
use crate::WireError;

/// Query: one or more SQL statements in the simple protocol; audited as `db.session.query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The SQL text, in the client's encoding.
    pub sql: PgString,
}

impl Query {
    /// A query for `sql`.
    pub fn new(sql: impl Into<PgString>) -> Self {
        Self { sql: sql.into() }
    }
}

impl Message for Query {
    const TAG: u8 = b'Q';
    const NAME: &'static str = "Query";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(Self::NAME, body);
        let sql = r.cstr("query string")?.into();
        r.finish()?;
        Ok(Self { sql })
    }

    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        put_cstr(dst, self.sql.as_bytes(), Self::NAME, "query string")
    }
}
