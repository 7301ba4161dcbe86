//! OK packet: a command succeeded (or, with `CLIENT_DEPRECATE_EOF`, a result set ended).

use bytes::{BufMut, Bytes, BytesMut};

use super::capability::{has, CLIENT_PROTOCOL_41, CLIENT_SESSION_TRACK, CLIENT_TRANSACTIONS};
use super::payload::{put_lenenc_bytes, put_lenenc_int, PayloadReader};
use super::session_state::SessionStateChange;
use super::status::{SERVER_SESSION_STATE_CHANGED, SERVER_STATUS_AUTOCOMMIT};
use super::MysqlString;
use crate::WireError;

/// OK packet: affected rows, last insert id, status flags, warnings and info. The proxy sends
/// one to end a client's authentication; the agent decodes the server's to audit outcomes and
/// to follow session state (current schema, transaction status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OkPacket {
    /// [`OkPacket::HEADER`], or [`OkPacket::EOF_HEADER`] when it ends a result set under
    /// `CLIENT_DEPRECATE_EOF`.
    pub header: u8,
    /// Rows changed by the statement.
    pub affected_rows: u64,
    /// The AUTO_INCREMENT value generated, or 0.
    pub last_insert_id: u64,
    /// Server status flags ([`super::status`]).
    pub status_flags: u16,
    /// Warnings raised.
    pub warnings: u16,
    /// Human-readable information ("Rows matched: 1  Changed: 1  Warnings: 0").
    pub info: MysqlString,
    /// Raw session state information (only with `CLIENT_SESSION_TRACK` and
    /// `SERVER_SESSION_STATE_CHANGED`); see [`OkPacket::session_state_changes`].
    pub session_state: Option<Bytes>,
}

impl Default for OkPacket {
    fn default() -> Self {
        Self {
            header: Self::HEADER,
            affected_rows: 0,
            last_insert_id: 0,
            status_flags: SERVER_STATUS_AUTOCOMMIT,
            warnings: 0,
            info: MysqlString::default(),
            session_state: None,
        }
    }
}

impl OkPacket {
    /// The usual first byte.
    pub const HEADER: u8 = 0x00;
    /// The first byte of an OK that ends a result set under `CLIENT_DEPRECATE_EOF`.
    pub const EOF_HEADER: u8 = 0xfe;
    const NAME: &'static str = "OK packet";

    /// An OK with the given status flags and nothing else (what the proxy sends after auth).
    pub fn new(status_flags: u16) -> Self {
        Self {
            status_flags,
            ..Self::default()
        }
    }

    /// Decodes a payload with the negotiated `capabilities`.
    ///
    /// Without `CLIENT_SESSION_TRACK` the protocol documentation gives the info as the rest of
    /// the packet, but MySQL and MariaDB both send it length-encoded; a length prefix that
    /// covers exactly the rest is therefore removed.
    pub fn decode(payload: Bytes, capabilities: u64) -> Result<Self, WireError> {
        let mut r = PayloadReader::new(Self::NAME, payload);
        let header = r.u8("header")?;
        if header != Self::HEADER && header != Self::EOF_HEADER {
            return Err(WireError::UnexpectedHeader {
                message: Self::NAME,
                expected: Self::HEADER,
                found: header,
            });
        }
        let affected_rows = r.lenenc_int("affected rows")?;
        let last_insert_id = r.lenenc_int("last insert id")?;
        let (status_flags, warnings) = if has(capabilities, CLIENT_PROTOCOL_41) {
            (r.u16("status flags")?, r.u16("warnings")?)
        } else if has(capabilities, CLIENT_TRANSACTIONS) {
            (r.u16("status flags")?, 0)
        } else {
            (0, 0)
        };
        let mut info = MysqlString::default();
        let mut session_state = None;
        if has(capabilities, CLIENT_SESSION_TRACK) {
            if !r.is_empty() {
                info = r.lenenc_bytes("info")?.into();
            }
            if status_flags & SERVER_SESSION_STATE_CHANGED != 0 && !r.is_empty() {
                session_state = Some(r.lenenc_bytes("session state")?);
            }
        } else {
            info = strip_lenenc(r.rest()).into();
        }
        r.finish()?;
        Ok(Self {
            header,
            affected_rows,
            last_insert_id,
            status_flags,
            warnings,
            info,
            session_state,
        })
    }

    /// Appends the payload as a server with `capabilities` negotiated sends it (info
    /// length-encoded, as real servers do).
    pub fn encode(&self, dst: &mut BytesMut, capabilities: u64) -> Result<(), WireError> {
        if self.header != Self::HEADER && self.header != Self::EOF_HEADER {
            return Err(WireError::InvalidValue {
                message: Self::NAME,
                field: "header",
                value: i64::from(self.header),
            });
        }
        let track = has(capabilities, CLIENT_SESSION_TRACK);
        if self.session_state.is_some()
            && (!track || self.status_flags & SERVER_SESSION_STATE_CHANGED == 0)
        {
            return Err(WireError::InvalidField {
                message: Self::NAME,
                field: "session state",
                reason: "needs CLIENT_SESSION_TRACK and SERVER_SESSION_STATE_CHANGED",
            });
        }
        dst.put_u8(self.header);
        put_lenenc_int(dst, self.affected_rows);
        put_lenenc_int(dst, self.last_insert_id);
        if has(capabilities, CLIENT_PROTOCOL_41) {
            dst.put_u16_le(self.status_flags);
            dst.put_u16_le(self.warnings);
        } else if has(capabilities, CLIENT_TRANSACTIONS) {
            dst.put_u16_le(self.status_flags);
        }
        if !self.info.is_empty() || self.session_state.is_some() {
            put_lenenc_bytes(dst, self.info.as_bytes());
        }
        if let Some(state) = &self.session_state {
            put_lenenc_bytes(dst, state);
        }
        Ok(())
    }

    /// The session state items, empty when there are none.
    pub fn session_state_changes(&self) -> Result<Vec<SessionStateChange>, WireError> {
        match &self.session_state {
            Some(s) => SessionStateChange::parse_all(s.clone()),
            None => Ok(Vec::new()),
        }
    }

    /// The new current schema, if the session state reports a change of it.
    pub fn schema_change(&self) -> Result<Option<MysqlString>, WireError> {
        let mut schema = None;
        for item in self.session_state_changes()? {
            if let Some(s) = item.schema()? {
                schema = Some(s);
            }
        }
        Ok(schema)
    }
}

/// The info without a length prefix that covers exactly the rest (see [`OkPacket::decode`]).
fn strip_lenenc(rest: Bytes) -> Bytes {
    let mut probe = PayloadReader::new(OkPacket::NAME, rest.clone());
    match probe.lenenc_len("info") {
        Ok(n) if n == probe.remaining() && !rest.is_empty() => probe.rest(),
        _ => rest,
    }
}
