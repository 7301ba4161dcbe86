//! NoticeResponse (B) message: a warning or notice from the server.

use bytes::{Bytes, BytesMut};

use super::fields::{self, ErrorField};
use super::{Message, PgString};
use crate::WireError;

/// NoticeResponse: same fields as ErrorResponse, but nothing failed; may arrive at any time,
/// including during startup, so the agent's startup loop must accept it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeResponse {
    /// The fields, in wire order.
    pub fields: Vec<ErrorField>,
}

impl NoticeResponse {
    /// The first field with `code`.
    pub fn field(&self, code: u8) -> Option<&PgString> {
        fields::get(&self.fields, code)
    }

    /// The primary message (`M`).
    pub fn message(&self) -> Option<&PgString> {
        self.field(ErrorField::MESSAGE)
    }
}

impl Message for NoticeResponse {
    const TAG: u8 = b'N';
    const NAME: &'static str = "NoticeResponse";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        fields::decode(Self::NAME, body).map(|fields| Self { fields })
    }

    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        fields::encode(Self::NAME, &self.fields, dst)
    }
}
