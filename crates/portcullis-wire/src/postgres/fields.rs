//! The field list shared by ErrorResponse and NoticeResponse.

use bytes::{BufMut, Bytes, BytesMut};

use super::buf::{put_cstr, Reader};
use super::PgString;
use crate::WireError;

/// One field of an ErrorResponse or NoticeResponse: a one-byte code and a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorField {
    /// The field code (`S`, `C`, `M`…; see the associated constants).
    pub code: u8,
    /// The field's value.
    pub value: PgString,
}

impl ErrorField {
    /// Severity, possibly localized (`S`).
    pub const SEVERITY: u8 = b'S';
    /// Severity, never localized (`V`, since 9.6).
    pub const SEVERITY_NONLOCALIZED: u8 = b'V';
    /// SQLSTATE code (`C`).
    pub const CODE: u8 = b'C';
    /// Primary message (`M`).
    pub const MESSAGE: u8 = b'M';
    /// Detail (`D`).
    pub const DETAIL: u8 = b'D';
    /// Hint (`H`).
    pub const HINT: u8 = b'H';
    /// Cursor position in the query (`P`).
    pub const POSITION: u8 = b'P';
    /// Context / call stack (`W`).
    pub const WHERE: u8 = b'W';
    /// Schema name (`s`).
    pub const SCHEMA: u8 = b's';
    /// Table name (`t`).
    pub const TABLE: u8 = b't';
    /// Column name (`c`).
    pub const COLUMN: u8 = b'c';
    /// Constraint name (`n`).
    pub const CONSTRAINT: u8 = b'n';

    /// A field from code and value.
    pub fn new(code: u8, value: impl Into<PgString>) -> Self {
        Self {
            code,
            value: value.into(),
        }
    }
}

/// Decodes a field list terminated by a zero byte.
pub(crate) fn decode(message: &'static str, body: Bytes) -> Result<Vec<ErrorField>, WireError> {
    let mut r = Reader::new(message, body);
    let mut fields = Vec::new();
    loop {
        let code = r.u8("field code")?;
        if code == 0 {
            break;
        }
        let value = r.cstr("field value")?.into();
        fields.push(ErrorField { code, value });
    }
    r.finish()?;
    Ok(fields)
}

/// Encodes a field list and its terminator.
pub(crate) fn encode(
    message: &'static str,
    fields: &[ErrorField],
    dst: &mut BytesMut,
) -> Result<(), WireError> {
    for f in fields {
        if f.code == 0 {
            return Err(WireError::InvalidField {
                message,
                field: "field code",
                reason: "zero (a zero code ends the list)",
            });
        }
        dst.put_u8(f.code);
        put_cstr(dst, f.value.as_bytes(), message, "field value")?;
    }
    dst.put_u8(0);
    Ok(())
}

/// The value of the first field with `code`.
pub(crate) fn get(fields: &[ErrorField], code: u8) -> Option<&PgString> {
    fields.iter().find(|f| f.code == code).map(|f| &f.value)
}
