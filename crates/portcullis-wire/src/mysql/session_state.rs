//! Session state changes carried by OK packets (`CLIENT_SESSION_TRACK`).

use bytes::Bytes;

use super::payload::PayloadReader;
use super::MysqlString;
use crate::WireError;

/// Session state item: system variables changed (name and value, both length-encoded).
pub const SESSION_TRACK_SYSTEM_VARIABLES: u8 = 0;
/// Session state item: the current schema changed (the new name, length-encoded).
pub const SESSION_TRACK_SCHEMA: u8 = 1;
/// Session state item: some session state changed.
pub const SESSION_TRACK_STATE_CHANGE: u8 = 2;
/// Session state item: GTIDs.
pub const SESSION_TRACK_GTIDS: u8 = 3;
/// Session state item: transaction characteristics.
pub const SESSION_TRACK_TRANSACTION_CHARACTERISTICS: u8 = 4;
/// Session state item: transaction state.
pub const SESSION_TRACK_TRANSACTION_STATE: u8 = 5;

/// One item of an OK packet's session state information: its type and its raw data.
///
/// The schema item is what makes database enforcement exact: the server reports every change
/// of the current database (`USE`, COM_INIT_DB, a stored procedure switching schema) this way
/// when session tracking is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStateChange {
    /// `SESSION_TRACK_*`.
    pub kind: u8,
    /// The item's data (its own length prefix removed).
    pub data: Bytes,
}

impl SessionStateChange {
    /// Splits session state information (the bytes after an OK packet's info) into items.
    pub fn parse_all(state: Bytes) -> Result<Vec<Self>, WireError> {
        let mut r = PayloadReader::new("session state", state);
        let mut items = Vec::new();
        while !r.is_empty() {
            let kind = r.u8("session state type")?;
            let data = r.lenenc_bytes("session state data")?;
            items.push(Self { kind, data });
        }
        Ok(items)
    }

    /// The new current schema, if this is a [`SESSION_TRACK_SCHEMA`] item.
    pub fn schema(&self) -> Result<Option<MysqlString>, WireError> {
        if self.kind != SESSION_TRACK_SCHEMA {
            return Ok(None);
        }
        let mut r = PayloadReader::new("session state schema", self.data.clone());
        let name = r.lenenc_bytes("schema name")?;
        r.finish()?;
        Ok(Some(name.into()))
    }
}
