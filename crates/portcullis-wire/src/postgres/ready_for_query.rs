//! ReadyForQuery (B) message: the server is idle and waiting.

use bytes::{BufMut, Bytes, BytesMut};

use super::buf::Reader;
use super::Message;
use crate::WireError;

/// The transaction state reported by ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionStatus {
    /// Not in a transaction block (`I`).
    Idle,
    /// In a transaction block (`T`).
    InTransaction,
    /// In a failed transaction block; queries are rejected until it ends (`E`).
    Failed,
}

impl TransactionStatus {
    /// The byte on the wire.
    pub const fn byte(self) -> u8 {
        match self {
            Self::Idle => b'I',
            Self::InTransaction => b'T',
            Self::Failed => b'E',
        }
    }
}

/// ReadyForQuery: ends every response cycle — the protocol boundary where the agent flushes its
/// buffered writes to the client, and the end of the startup exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyForQuery {
    /// The session's transaction state.
    pub status: TransactionStatus,
}

impl Message for ReadyForQuery {
    const TAG: u8 = b'Z';
    const NAME: &'static str = "ReadyForQuery";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(Self::NAME, body);
        let status = match r.u8("transaction status")? {
            b'I' => TransactionStatus::Idle,
            b'T' => TransactionStatus::InTransaction,
            b'E' => TransactionStatus::Failed,
            other => {
                return Err(WireError::InvalidValue {
                    message: Self::NAME,
                    field: "transaction status",
                    value: i64::from(other),
                })
            }
        };
        r.finish()?;
        Ok(Self { status })
    }

    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        dst.put_u8(self.status.byte());
        Ok(())
    }
}
