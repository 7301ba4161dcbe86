//! AuthSwitchRequest (0xFE): the server asks the client to authenticate with another plugin.

use bytes::{BufMut, Bytes, BytesMut};

use super::payload::{put_nul_bytes, PayloadReader};
use super::MysqlString;
use crate::WireError;

/// AuthSwitchRequest: the plugin to switch to and its data (usually a new scramble). The proxy
/// sends one when the client's plugin is not one it can complete; the agent answers the
/// server's.
///
/// The client replies with the raw auth data for that plugin as a bare payload (an
/// AuthSwitchResponse has no header byte), with the next sequence id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSwitchRequest {
    /// The plugin to use (`mysql_native_password`, `caching_sha2_password`, `client_ed25519`…).
    pub plugin_name: MysqlString,
    /// The plugin's data, as sent: for `mysql_native_password` a 20-byte scramble followed by
    /// a NUL.
    pub plugin_data: Bytes,
}

impl AuthSwitchRequest {
    /// The payload's first byte.
    pub const HEADER: u8 = 0xfe;
    const NAME: &'static str = "AuthSwitchRequest";

    /// A request for `plugin_name` with `plugin_data` sent as is.
    pub fn new(plugin_name: impl Into<MysqlString>, plugin_data: impl Into<Bytes>) -> Self {
        Self {
            plugin_name: plugin_name.into(),
            plugin_data: plugin_data.into(),
        }
    }

    /// A request for a scramble-based plugin (`mysql_native_password`,
    /// `caching_sha2_password`): the scramble followed by the NUL servers send.
    pub fn with_scramble(plugin_name: impl Into<MysqlString>, scramble: &[u8]) -> Self {
        let mut data = BytesMut::with_capacity(scramble.len().saturating_add(1));
        data.put_slice(scramble);
        data.put_u8(0);
        Self::new(plugin_name, data.freeze())
    }

    /// The plugin data without one trailing NUL: the scramble itself.
    pub fn scramble(&self) -> &[u8] {
        match self.plugin_data.split_last() {
            Some((0, head)) => head,
            _ => &self.plugin_data,
        }
    }

    /// Decodes a payload. The pre-4.1 "old" switch request (a lone `0xFE`, switching to the
    /// insecure `mysql_old_password`) is refused.
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
        if r.is_empty() {
            return Err(WireError::InvalidField {
                message: Self::NAME,
                field: "plugin name",
                reason: "old (pre-4.1) auth switch to mysql_old_password is not supported",
            });
        }
        let plugin_name = r.nul_bytes("plugin name")?.into();
        let plugin_data = r.rest();
        Ok(Self {
            plugin_name,
            plugin_data,
        })
    }

    /// Appends the payload.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        let start = dst.len();
        dst.put_u8(Self::HEADER);
        if let Err(e) = put_nul_bytes(dst, self.plugin_name.as_bytes(), Self::NAME, "plugin name") {
            dst.truncate(start);
            return Err(e);
        }
        dst.put_slice(&self.plugin_data);
        Ok(())
    }
}
