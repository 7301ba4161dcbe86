//! Bind (F) message: bind parameter values to a prepared statement, creating a portal.

use bytes::{BufMut, Bytes, BytesMut};

use super::buf::{put_count, put_cstr, put_nullable, Reader};
use super::{Message, PgString};
use crate::WireError;

/// Bind: parameter values for a prepared statement; the audit log records which statement ran
/// (values stay raw `Bytes` — they may be binary and are never copied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Destination portal; empty for the unnamed portal.
    pub portal: PgString,
    /// Source prepared statement; empty for the unnamed statement.
    pub statement: PgString,
    /// Parameter format codes (0 text, 1 binary): none (all text), one (for all) or one each.
    pub param_formats: Vec<i16>,
    /// Parameter values; `None` is SQL NULL (length -1 on the wire).
    pub params: Vec<Option<Bytes>>,
    /// Result column format codes, with the same none/one/each convention.
    pub result_formats: Vec<i16>,
}

impl Message for Bind {
    const TAG: u8 = b'B';
    const NAME: &'static str = "Bind";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(Self::NAME, body);
        let portal = r.cstr("portal name")?.into();
        let statement = r.cstr("statement name")?.into();
        let n = usize::from(r.u16("parameter format count")?);
        let mut param_formats = Vec::with_capacity(r.capacity_for(n, 2));
        for _ in 0..n {
            param_formats.push(r.i16("parameter format")?);
        }
        let n = usize::from(r.u16("parameter count")?);
        let mut params = Vec::with_capacity(r.capacity_for(n, 4));
        for _ in 0..n {
            params.push(r.nullable("parameter value")?);
        }
        let n = usize::from(r.u16("result format count")?);
        let mut result_formats = Vec::with_capacity(r.capacity_for(n, 2));
        for _ in 0..n {
            result_formats.push(r.i16("result format")?);
        }
        r.finish()?;
        Ok(Self {
            portal,
            statement,
            param_formats,
            params,
            result_formats,
        })
    }

    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        put_cstr(dst, self.portal.as_bytes(), Self::NAME, "portal name")?;
        put_cstr(dst, self.statement.as_bytes(), Self::NAME, "statement name")?;
        put_count(
            dst,
            self.param_formats.len(),
            Self::NAME,
            "parameter formats",
        )?;
        for f in &self.param_formats {
            dst.put_i16(*f);
        }
        put_count(dst, self.params.len(), Self::NAME, "parameters")?;
        for p in &self.params {
            put_nullable(dst, p.as_ref())?;
        }
        put_count(dst, self.result_formats.len(), Self::NAME, "result formats")?;
        for f in &self.result_formats {
            dst.put_i16(*f);
        }
        Ok(())
    }
}
