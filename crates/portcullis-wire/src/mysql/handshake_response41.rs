//! HandshakeResponse41: the client's login (user, auth data, database, plugin, attributes).

use bytes::{BufMut, Bytes, BytesMut};

use super::capability::{
    has, CLIENT_CONNECT_ATTRS, CLIENT_CONNECT_WITH_DB, CLIENT_PLUGIN_AUTH,
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, CLIENT_SECURE_CONNECTION,
    CLIENT_ZSTD_COMPRESSION_ALGORITHM,
};
use super::payload::{put_lenenc_bytes, put_nul_bytes, PayloadReader};
use super::ssl_request::{read_fixed, write_fixed};
use super::{connect_attrs, MysqlString};
use crate::WireError;

/// HandshakeResponse41: who logs in, to which database, with which plugin and client.
///
/// The proxy decodes the client's (inside TLS) to route and audit the login, ignoring the
/// auth response; the agent encodes its own for the real server. Optional fields are present
/// exactly when their capability flag is set; decoding tolerates a packet that ends before a
/// flagged trailing field (as servers do), giving `None` or no attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse41 {
    /// Client capabilities, MariaDB's extended ones in the high 32 bits.
    pub capabilities: u64,
    /// The largest packet the client will send.
    pub max_packet_size: u32,
    /// The client's collation id.
    pub charset: u8,
    /// The user name.
    pub username: MysqlString,
    /// The auth plugin's response (a scramble hash for `mysql_native_password`).
    pub auth_response: Bytes,
    /// The initial database (`CLIENT_CONNECT_WITH_DB`).
    pub database: Option<MysqlString>,
    /// The plugin that produced `auth_response` (`CLIENT_PLUGIN_AUTH`).
    pub auth_plugin_name: Option<MysqlString>,
    /// Connection attributes in order (`CLIENT_CONNECT_ATTRS`).
    pub connect_attrs: Vec<(MysqlString, MysqlString)>,
    /// zstd compression level (`CLIENT_ZSTD_COMPRESSION_ALGORITHM`, MySQL 8).
    pub zstd_compression_level: Option<u8>,
}

impl HandshakeResponse41 {
    const NAME: &'static str = "HandshakeResponse41";

    /// A response for `username` with `capabilities`; every other field empty.
    pub fn new(username: impl Into<MysqlString>, capabilities: u64) -> Self {
        Self {
            capabilities,
            max_packet_size: 16 * 1024 * 1024,
            charset: 45,
            username: username.into(),
            auth_response: Bytes::new(),
            database: None,
            auth_plugin_name: None,
            connect_attrs: Vec::new(),
            zstd_compression_level: None,
        }
    }

    /// The value of connection attribute `name` (`_client_name`, `program_name`…).
    pub fn connect_attr(&self, name: &str) -> Option<&MysqlString> {
        connect_attrs::get(&self.connect_attrs, name)
    }

    /// Decodes a payload. Pre-4.1 responses (HandshakeResponse320) are refused.
    pub fn decode(payload: Bytes) -> Result<Self, WireError> {
        let mut r = PayloadReader::new(Self::NAME, payload);
        let (capabilities, max_packet_size, charset) = read_fixed(&mut r)?;
        let username = r.nul_bytes("user name")?.into();
        let auth_response = if has(capabilities, CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) {
            r.lenenc_bytes("auth response")?
        } else if has(capabilities, CLIENT_SECURE_CONNECTION) {
            let n = r.u8("auth response length")?;
            r.bytes(usize::from(n), "auth response")?
        } else {
            r.nul_bytes("auth response")?
        };
        let database = if has(capabilities, CLIENT_CONNECT_WITH_DB) && !r.is_empty() {
            Some(r.nul_bytes("database")?.into())
        } else {
            None
        };
        let auth_plugin_name = if has(capabilities, CLIENT_PLUGIN_AUTH) && !r.is_empty() {
            Some(r.nul_bytes("auth plugin name")?.into())
        } else {
            None
        };
        let connect_attrs = if has(capabilities, CLIENT_CONNECT_ATTRS) && !r.is_empty() {
            connect_attrs::read(&mut r)?
        } else {
            Vec::new()
        };
        let zstd_compression_level =
            if has(capabilities, CLIENT_ZSTD_COMPRESSION_ALGORITHM) && !r.is_empty() {
                Some(r.u8("zstd compression level")?)
            } else {
                None
            };
        r.finish()?;
        Ok(Self {
            capabilities,
            max_packet_size,
            charset,
            username,
            auth_response,
            database,
            auth_plugin_name,
            connect_attrs,
            zstd_compression_level,
        })
    }

    /// Appends the payload. A field without its capability flag is an error; a flagged field
    /// that is `None` is written empty (except the zstd level, written only when set).
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        let start = dst.len();
        let done = self.encode_inner(dst);
        if done.is_err() {
            dst.truncate(start);
        }
        done
    }

    fn encode_inner(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        let caps = self.capabilities;
        let missing_flag = |field| WireError::InvalidField {
            message: Self::NAME,
            field,
            reason: "set without its capability flag",
        };
        if self.database.is_some() && !has(caps, CLIENT_CONNECT_WITH_DB) {
            return Err(missing_flag("database"));
        }
        if self.auth_plugin_name.is_some() && !has(caps, CLIENT_PLUGIN_AUTH) {
            return Err(missing_flag("auth plugin name"));
        }
        if !self.connect_attrs.is_empty() && !has(caps, CLIENT_CONNECT_ATTRS) {
            return Err(missing_flag("connection attributes"));
        }
        if self.zstd_compression_level.is_some() && !has(caps, CLIENT_ZSTD_COMPRESSION_ALGORITHM) {
            return Err(missing_flag("zstd compression level"));
        }
        write_fixed(dst, caps, self.max_packet_size, self.charset, Self::NAME)?;
        put_nul_bytes(dst, self.username.as_bytes(), Self::NAME, "user name")?;
        write_auth_response(dst, caps, &self.auth_response, Self::NAME)?;
        if has(caps, CLIENT_CONNECT_WITH_DB) {
            let db = self
                .database
                .as_ref()
                .map(MysqlString::as_bytes)
                .unwrap_or_default();
            put_nul_bytes(dst, db, Self::NAME, "database")?;
        }
        if has(caps, CLIENT_PLUGIN_AUTH) {
            let name = self
                .auth_plugin_name
                .as_ref()
                .map(MysqlString::as_bytes)
                .unwrap_or_default();
            put_nul_bytes(dst, name, Self::NAME, "auth plugin name")?;
        }
        if has(caps, CLIENT_CONNECT_ATTRS) {
            connect_attrs::write(dst, &self.connect_attrs);
        }
        if let Some(level) = self.zstd_compression_level {
            dst.put_u8(level);
        }
        Ok(())
    }
}

/// Writes an auth response in the form `caps` selects: length-encoded, 1-byte length (at most
/// 255 bytes) or NUL-terminated.
pub(crate) fn write_auth_response(
    dst: &mut BytesMut,
    caps: u64,
    auth: &[u8],
    message: &'static str,
) -> Result<(), WireError> {
    if has(caps, CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) {
        put_lenenc_bytes(dst, auth);
    } else if has(caps, CLIENT_SECURE_CONNECTION) {
        let n = u8::try_from(auth.len()).map_err(|_| WireError::TooMany {
            message,
            field: "auth response bytes",
            count: auth.len(),
            max: 255,
        })?;
        dst.put_u8(n);
        dst.put_slice(auth);
    } else {
        put_nul_bytes(dst, auth, message, "auth response")?;
    }
    Ok(())
}
