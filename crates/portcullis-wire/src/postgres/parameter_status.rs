//! ParameterStatus (B) message: a run-time parameter's current value.

use bytes::{Bytes, BytesMut};

use super::buf::{put_cstr, Reader};
use super::{Message, PgString};
use crate::WireError;

/// ParameterStatus: the server reports a setting (`server_version`, `client_encoding`,
/// `TimeZone`…); the agent passes the server's real ones to the client after startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterStatus {
    /// Parameter name.
    pub name: PgString,
    /// Its current value.
    pub value: PgString,
}

impl ParameterStatus {
    /// A status report for `name` = `value`.
    pub fn new(name: impl Into<PgString>, value: impl Into<PgString>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl Message for ParameterStatus {
    const TAG: u8 = b'S';
    const NAME: &'static str = "ParameterStatus";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(Self::NAME, body);
        let name = r.cstr("parameter name")?.into();
        let value = r.cstr("parameter value")?.into();
        r.finish()?;
        Ok(Self { name, value })
    }

    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        put_cstr(dst, self.name.as_bytes(), Self::NAME, "parameter name")?;
        put_cstr(dst, self.value.as_bytes(), Self::NAME, "parameter value")
    }
}
