//! FunctionCall (F) message: the legacy fast-path function call.

use bytes::{BufMut, Bytes, BytesMut};

use super::buf::{put_count, put_nullable, Reader};
use super::Message;
use crate::WireError;

/// FunctionCall: calls a function by OID, bypassing SQL (libpq's large-object API uses it); it
/// runs code on the server, so it is audited like a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCall {
    /// The function's OID.
    pub function_oid: u32,
    /// Argument format codes (0 text, 1 binary): none, one for all, or one each.
    pub arg_formats: Vec<i16>,
    /// Argument values; `None` is SQL NULL.
    pub args: Vec<Option<Bytes>>,
    /// Result format code.
    pub result_format: i16,
}

impl Message for FunctionCall {
    const TAG: u8 = b'F';
    const NAME: &'static str = "FunctionCall";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(Self::NAME, body);
        let function_oid = r.u32("function OID")?;
        let n = usize::from(r.u16("argument format count")?);
        let mut arg_formats = Vec::with_capacity(r.capacity_for(n, 2));
        for _ in 0..n {
            arg_formats.push(r.i16("argument format")?);
        }
        let n = usize::from(r.u16("argument count")?);
        let mut args = Vec::with_capacity(r.capacity_for(n, 4));
        for _ in 0..n {
            args.push(r.nullable("argument value")?);
        }
        let result_format = r.i16("result format")?;
        r.finish()?;
        Ok(Self {
            function_oid,
            arg_formats,
            args,
            result_format,
        })
    }

    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        dst.put_u32(self.function_oid);
        put_count(dst, self.arg_formats.len(), Self::NAME, "argument formats")?;
        for f in &self.arg_formats {
            dst.put_i16(*f);
        }
        put_count(dst, self.args.len(), Self::NAME, "arguments")?;
        for a in &self.args {
            put_nullable(dst, a.as_ref())?;
        }
        dst.put_i16(self.result_format);
        Ok(())
    }
}
