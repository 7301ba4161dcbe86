//! Describe (F) message: ask for a statement's or portal's description.

use bytes::{BufMut, Bytes, BytesMut};

use super::buf::{put_cstr, Reader};
use super::{Message, PgString};
use crate::WireError;

/// What a Describe or Close refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// A prepared statement (`S`).
    Statement,
    /// A portal (`P`).
    Portal,
}

impl Target {
    /// The byte on the wire.
    pub const fn byte(self) -> u8 {
        match self {
            Self::Statement => b'S',
            Self::Portal => b'P',
        }
    }

    /// Reads the target byte of `message`.
    pub(crate) fn read(r: &mut Reader, message: &'static str) -> Result<Self, WireError> {
        match r.u8("target")? {
            b'S' => Ok(Self::Statement),
            b'P' => Ok(Self::Portal),
            other => Err(WireError::InvalidValue {
                message,
                field: "target",
                value: i64::from(other),
            }),
        }
    }
}

/// Describe: asks for parameter and row descriptions; relayed, decoded for completeness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Describe {
    /// Statement or portal.
    pub target: Target,
    /// Its name; empty for the unnamed one.
    pub name: PgString,
}

impl Message for Describe {
    const TAG: u8 = b'D';
    const NAME: &'static str = "Describe";

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
