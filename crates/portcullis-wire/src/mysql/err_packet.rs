//! ERR packet: a command or the connection failed.

use bytes::{BufMut, Bytes, BytesMut};

use super::error_code::{ErrorCode, PROGRESS_REPORT};
use super::payload::PayloadReader;
use super::MysqlString;
use crate::WireError;

/// ERR packet: error code, SQLSTATE and message. The proxy sends one for every refusal (see
/// [`super::error_code`] for the codes); the agent decodes the server's to audit failures and
/// to report why a login failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrPacket {
    /// The server error number.
    pub code: u16,
    /// The five-character SQLSTATE, sent after a `#` marker. `None` for errors sent before
    /// the client's capabilities are known (instead of the greeting) or to pre-4.1 clients:
    /// such clients would show the marker and state as part of the message.
    pub sql_state: Option<MysqlString>,
    /// The message shown to the user.
    pub message: MysqlString,
}

impl ErrPacket {
    /// The payload's first byte.
    pub const HEADER: u8 = 0xff;
    /// The byte that announces the SQLSTATE.
    pub const SQL_STATE_MARKER: u8 = b'#';
    const NAME: &'static str = "ERR packet";

    /// An error with `code`'s number and SQLSTATE.
    pub fn new(code: ErrorCode, message: impl Into<MysqlString>) -> Self {
        Self {
            code: code.code,
            sql_state: Some(MysqlString::from_static(code.sql_state)),
            message: message.into(),
        }
    }

    /// The same error without SQLSTATE, for the packet sent in place of the greeting (too many
    /// connections, host refused), when the client has not said it speaks 4.1 yet.
    #[must_use]
    pub fn without_sql_state(mut self) -> Self {
        self.sql_state = None;
        self
    }

    /// Whether this is a MariaDB progress report rather than an error (code `0xFFFF`).
    pub fn is_progress_report(&self) -> bool {
        self.code == PROGRESS_REPORT
    }

    /// Decodes a payload. The SQLSTATE is taken when the `#` marker is there, which is how
    /// clients tell (the capability flags do not say, for errors sent before the handshake).
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
        let code = r.u16("error code")?;
        let sql_state = if code != PROGRESS_REPORT
            && r.peek_u8() == Some(Self::SQL_STATE_MARKER)
            && r.remaining() >= 6
        {
            r.skip(1, "SQLSTATE marker")?;
            Some(r.bytes(5, "SQLSTATE")?.into())
        } else {
            None
        };
        let message = r.rest().into();
        Ok(Self {
            code,
            sql_state,
            message,
        })
    }

    /// Appends the payload.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        if let Some(state) = &self.sql_state {
            if state.len() != 5 {
                return Err(WireError::InvalidField {
                    message: Self::NAME,
                    field: "SQLSTATE",
                    reason: "must be exactly 5 bytes",
                });
            }
        }
        dst.put_u8(Self::HEADER);
        dst.put_u16_le(self.code);
        if let Some(state) = &self.sql_state {
            dst.put_u8(Self::SQL_STATE_MARKER);
            dst.put_slice(state.as_bytes());
        }
        dst.put_slice(self.message.as_bytes());
        Ok(())
    }
}
