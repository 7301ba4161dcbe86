//! BackendKeyData (B) message: the key a client needs to cancel its queries.

use bytes::{BufMut, Bytes, BytesMut};

use super::buf::Reader;
use super::startup::MAX_CANCEL_KEY_LEN;
use super::Message;
use crate::WireError;

/// BackendKeyData: process ID and secret key for CancelRequest. The agent hands the client the
/// server's real key so that psql's Ctrl-C reaches the right backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendKeyData {
    /// The backend's process ID.
    pub process_id: i32,
    /// The secret key: 4 bytes in protocol 3.0, up to 256 in 3.2 (PostgreSQL 18 sends 32).
    pub secret_key: Bytes,
}

impl Message for BackendKeyData {
    const TAG: u8 = b'K';
    const NAME: &'static str = "BackendKeyData";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(Self::NAME, body);
        let process_id = r.i32("process ID")?;
        let secret_key = r.rest();
        check_key(secret_key.len())?;
        Ok(Self {
            process_id,
            secret_key,
        })
    }

    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        check_key(self.secret_key.len())?;
        dst.put_i32(self.process_id);
        dst.put_slice(&self.secret_key);
        Ok(())
    }
}

/// Refuses an empty key or one longer than protocol 3.2 allows.
fn check_key(len: usize) -> Result<(), WireError> {
    if len == 0 || len > MAX_CANCEL_KEY_LEN {
        return Err(WireError::InvalidValue {
            message: BackendKeyData::NAME,
            field: "secret key length",
            value: i64::try_from(len).unwrap_or(i64::MAX),
        });
    }
    Ok(())
}
