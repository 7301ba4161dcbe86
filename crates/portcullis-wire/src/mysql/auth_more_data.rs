//! AuthMoreData (0x01): an extra round of a multi-step authentication plugin.

use bytes::{BufMut, Bytes, BytesMut};

use super::payload::PayloadReader;
use crate::WireError;

/// AuthMoreData: plugin data from the server in the middle of authentication. With
/// `caching_sha2_password` it carries one status byte: [`AuthMoreData::FAST_AUTH_SUCCESS`]
/// (an OK follows) or [`AuthMoreData::PERFORM_FULL_AUTHENTICATION`] (the client must send
/// the password over TLS or RSA); otherwise e.g. the server's RSA public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthMoreData {
    /// The plugin data after the header.
    pub data: Bytes,
}

impl AuthMoreData {
    /// The payload's first byte.
    pub const HEADER: u8 = 0x01;
    /// `caching_sha2_password`: the scramble matched the server's cache; an OK follows.
    pub const FAST_AUTH_SUCCESS: u8 = 0x03;
    /// `caching_sha2_password`: the server needs the full password.
    pub const PERFORM_FULL_AUTHENTICATION: u8 = 0x04;
    /// `caching_sha2_password`, from the client (a bare payload, no header): send me your RSA
    /// public key.
    pub const REQUEST_PUBLIC_KEY: u8 = 0x02;
    const NAME: &'static str = "AuthMoreData";

    /// More data for the plugin.
    pub fn new(data: impl Into<Bytes>) -> Self {
        Self { data: data.into() }
    }

    /// `caching_sha2_password`'s "fast auth success" (`0x01 0x03`): what the proxy sends a
    /// caching_sha2 client before the OK, since that client waits for it.
    pub fn fast_auth_success() -> Self {
        Self::new(Bytes::from_static(&[Self::FAST_AUTH_SUCCESS]))
    }

    /// Decodes a payload.
    pub fn decode(payload: Bytes) -> Result<Self, WireError> {
        let mut r = PayloadReader::new(Self::NAME, payload);
        let header = r.u8("header")?;
        if header != Self::HEADER {
            return Err(WireError::UnexpectedHeader {
                message: Self::NAME,
                expected: Self::HEADER,
                found: header,
            });
        }
        Ok(Self { data: r.rest() })
    }

    /// Appends the payload.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u8(Self::HEADER);
        dst.put_slice(&self.data);
    }
}
