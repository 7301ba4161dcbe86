//! PasswordMessage / SASLInitialResponse / SASLResponse / GSSResponse (F) message.

use bytes::{BufMut, Bytes, BytesMut};

use super::Message;
use crate::WireError;

/// An authentication reply from the client. PasswordMessage, SASLInitialResponse, SASLResponse
/// and GSSResponse all use type `p`; which one it is depends on the Authentication request that
/// preceded it, so the body stays raw. Portcullis authenticates clients by certificate and
/// never forwards these to a database; they are decoded only to be refused or dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordMessage {
    /// The raw body (for a cleartext or MD5 password, a NUL-terminated string).
    pub data: Bytes,
}

impl std::fmt::Debug for PasswordMessage {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordMessage")
            .field("len", &self.data.len())
            .finish_non_exhaustive()
    }
}

impl Message for PasswordMessage {
    const TAG: u8 = b'p';
    const NAME: &'static str = "PasswordMessage";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        Ok(Self { data: body })
    }

    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        dst.put_slice(&self.data);
        Ok(())
    }
}
