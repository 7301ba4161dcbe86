//! COM_CHANGE_USER: log in again as another user on the same connection.

use bytes::{BufMut, Bytes, BytesMut};

use super::capability::{has, CLIENT_CONNECT_ATTRS, CLIENT_PLUGIN_AUTH, CLIENT_SECURE_CONNECTION};
use super::command::{reader, COM_CHANGE_USER};
use super::payload::put_nul_bytes;
use super::{connect_attrs, MysqlString};
use crate::WireError;

/// COM_CHANGE_USER: a new login (user, auth data, database) inside the session, followed by
/// an authentication exchange like the handshake's. The agent must police it like a new
/// connection (or refuse it): it changes who the session runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComChangeUser {
    /// The new user.
    pub username: MysqlString,
    /// The auth response for the current scramble.
    pub auth_response: Bytes,
    /// The new current database (empty for none).
    pub database: MysqlString,
    /// The client's collation id; absent in packets from very old clients, which end after
    /// the database.
    pub charset: Option<u16>,
    /// The auth plugin (`CLIENT_PLUGIN_AUTH`, after the collation).
    pub auth_plugin_name: Option<MysqlString>,
    /// Connection attributes (`CLIENT_CONNECT_ATTRS`, after the plugin name).
    pub connect_attrs: Vec<(MysqlString, MysqlString)>,
}

impl ComChangeUser {
    const NAME: &'static str = "COM_CHANGE_USER";

    /// Decodes a payload (command byte included) with the negotiated `capabilities`.
    pub fn decode(payload: Bytes, capabilities: u64) -> Result<Self, WireError> {
        let mut r = reader(Self::NAME, payload, COM_CHANGE_USER)?;
        let username = r.nul_bytes("user name")?.into();
        let auth_response = if has(capabilities, CLIENT_SECURE_CONNECTION) {
            let n = r.u8("auth response length")?;
            r.bytes(usize::from(n), "auth response")?
        } else {
            r.nul_bytes("auth response")?
        };
        let database = r.nul_bytes("database")?.into();
        let mut out = Self {
            username,
            auth_response,
            database,
            charset: None,
            auth_plugin_name: None,
            connect_attrs: Vec::new(),
        };
        if !r.is_empty() {
            out.charset = Some(r.u16("character set")?);
            if has(capabilities, CLIENT_PLUGIN_AUTH) && !r.is_empty() {
                out.auth_plugin_name = Some(r.nul_bytes("auth plugin name")?.into());
            }
            if has(capabilities, CLIENT_CONNECT_ATTRS) && !r.is_empty() {
                out.connect_attrs = connect_attrs::read(&mut r)?;
            }
        }
        r.finish()?;
        Ok(out)
    }

    /// Appends the payload (command byte included) as a client with `capabilities` sends it.
    pub fn encode(&self, dst: &mut BytesMut, capabilities: u64) -> Result<(), WireError> {
        let start = dst.len();
        let done = self.encode_inner(dst, capabilities);
        if done.is_err() {
            dst.truncate(start);
        }
        done
    }

    fn encode_inner(&self, dst: &mut BytesMut, caps: u64) -> Result<(), WireError> {
        let invalid = |field, reason| WireError::InvalidField {
            message: Self::NAME,
            field,
            reason,
        };
        let plugin = has(caps, CLIENT_PLUGIN_AUTH);
        let attrs = has(caps, CLIENT_CONNECT_ATTRS);
        if self.auth_plugin_name.is_some() && !plugin {
            return Err(invalid("auth plugin name", "needs CLIENT_PLUGIN_AUTH"));
        }
        if !self.connect_attrs.is_empty() && !attrs {
            return Err(invalid(
                "connection attributes",
                "need CLIENT_CONNECT_ATTRS",
            ));
        }
        if self.charset.is_none()
            && (self.auth_plugin_name.is_some() || !self.connect_attrs.is_empty())
        {
            return Err(invalid(
                "character set",
                "needed before plugin name and attributes",
            ));
        }
        dst.put_u8(COM_CHANGE_USER);
        put_nul_bytes(dst, self.username.as_bytes(), Self::NAME, "user name")?;
        if has(caps, CLIENT_SECURE_CONNECTION) {
            let n = u8::try_from(self.auth_response.len()).map_err(|_| WireError::TooMany {
                message: Self::NAME,
                field: "auth response bytes",
                count: self.auth_response.len(),
                max: 255,
            })?;
            dst.put_u8(n);
            dst.put_slice(&self.auth_response);
        } else {
            put_nul_bytes(dst, &self.auth_response, Self::NAME, "auth response")?;
        }
        put_nul_bytes(dst, self.database.as_bytes(), Self::NAME, "database")?;
        if let Some(charset) = self.charset {
            dst.put_u16_le(charset);
            if plugin {
                let name = self
                    .auth_plugin_name
                    .as_ref()
                    .map(MysqlString::as_bytes)
                    .unwrap_or_default();
                put_nul_bytes(dst, name, Self::NAME, "auth plugin name")?;
            }
            if attrs {
                connect_attrs::write(dst, &self.connect_attrs);
            }
        }
        Ok(())
    }
}
