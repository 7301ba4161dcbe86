//! Bind (F) message: bind parameter values to a prepared statement, creating a portal.

use bytes::{BufMut, Bytes, BytesMut};

use super::buf::{put_count, put_cstr, put_nullable, SliceReader};
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
        let v = BindView::parse(&body)?;
        let part = |p: &[u8]| body.slice_ref(p);
        Ok(Self {
            portal: part(v.portal).into(),
            statement: part(v.statement).into(),
            param_formats: v.param_formats().collect(),
            params: v.params().map(|p| p.map(part)).collect(),
            result_formats: v.result_formats().collect(),
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

/// A Bind read in place: names and values borrow the message body, nothing is allocated.
/// The audit log reads every Bind a client sends and keeps only text made from it, so it
/// reads this; [`Bind::decode`] is built on it, so both check a message the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindView<'a> {
    /// Destination portal; empty for the unnamed portal.
    pub portal: &'a [u8],
    /// Source prepared statement; empty for the unnamed statement.
    pub statement: &'a [u8],
    /// The parameter format codes, two bytes each.
    formats: &'a [u8],
    /// How many parameters.
    count: usize,
    /// The parameters as on the wire: length (-1 = NULL), then the value.
    values: &'a [u8],
    /// The result format codes, two bytes each.
    result_formats: &'a [u8],
}

impl<'a> BindView<'a> {
    /// Reads a Bind message's body, checking all of it.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        const NAME: &str = Bind::NAME;
        let mut r = SliceReader::new(NAME, body);
        let portal = r.cstr("portal name")?;
        let statement = r.cstr("statement name")?;
        let n = usize::from(r.u16("parameter format count")?);
        let formats = r.take(2 * n, "parameter format")?;
        let count = usize::from(r.u16("parameter count")?);
        let start = r.rest();
        for _ in 0..count {
            r.nullable("parameter value")?;
        }
        let values = start
            .get(..start.len() - r.rest().len())
            .unwrap_or_default();
        let n = usize::from(r.u16("result format count")?);
        let result_formats = r.take(2 * n, "result format")?;
        r.finish()?;
        Ok(Self {
            portal,
            statement,
            formats,
            count,
            values,
            result_formats,
        })
    }

    /// The parameter format codes (0 text, 1 binary): none (all text), one (for all) or one
    /// each.
    pub fn param_formats(&self) -> impl ExactSizeIterator<Item = i16> + 'a {
        codes(self.formats)
    }

    /// Whether parameter `i` is sent in binary, by the none/one/each convention.
    pub fn is_binary(&self, i: usize) -> bool {
        let at = if self.formats.len() == 2 { 0 } else { 2 * i };
        self.formats.get(at..at + 2) == Some(&[0u8, 1][..])
    }

    /// The parameter values in order; `None` is SQL NULL.
    pub fn params(&self) -> Params<'a> {
        Params {
            reader: SliceReader::new(Bind::NAME, self.values),
            left: self.count,
        }
    }

    /// The result column format codes, with the same none/one/each convention.
    pub fn result_formats(&self) -> impl ExactSizeIterator<Item = i16> + 'a {
        codes(self.result_formats)
    }
}

/// Big-endian 16-bit codes.
fn codes(raw: &[u8]) -> impl ExactSizeIterator<Item = i16> + '_ {
    raw.chunks_exact(2).map(|c| {
        i16::from_be_bytes([
            c.first().copied().unwrap_or(0),
            c.get(1).copied().unwrap_or(0),
        ])
    })
}

/// A Bind's parameter values, read in place ([`BindView::params`]).
pub struct Params<'a> {
    reader: SliceReader<'a>,
    left: usize,
}

impl<'a> Iterator for Params<'a> {
    type Item = Option<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Checked by `BindView::parse`: reading again cannot fail.
        self.reader.nullable("parameter value").ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Params<'_> {}
