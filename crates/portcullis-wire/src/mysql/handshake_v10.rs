//! HandshakeV10: the server's greeting, the first packet of every connection.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

use super::capability::{self, has, CLIENT_MYSQL, CLIENT_PLUGIN_AUTH, CLIENT_SECURE_CONNECTION};
use super::payload::{put_nul_bytes, PayloadReader};
use super::status::SERVER_STATUS_AUTOCOMMIT;
use super::MysqlString;
use crate::WireError;

/// The prefix MariaDB puts before its version ("5.5.5-10.11.6-MariaDB") so that old
/// replication code, which expected a 5.x server, keeps working.
pub const MARIADB_VERSION_PREFIX: &str = "5.5.5-";

/// HandshakeV10: server version, connection id, scramble, capabilities, character set and
/// default auth plugin.
///
/// The proxy sends one (playing the server, with the server version its caller chooses); the
/// agent decodes the real server's. MariaDB's extended capabilities travel in the reserved
/// bytes and are merged into [`HandshakeV10::capabilities`] (see [`super::capability`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeV10 {
    /// The server version as sent (MariaDB's starts with [`MARIADB_VERSION_PREFIX`]).
    pub server_version: MysqlString,
    /// The connection (thread) id, used by KILL.
    pub connection_id: u32,
    /// The auth plugin data: normally a 20-byte scramble, both parts joined, without the
    /// trailing NUL.
    pub auth_plugin_data: Bytes,
    /// Server capabilities, MariaDB's extended ones in the high 32 bits.
    pub capabilities: u64,
    /// The server's default collation id (45 utf8mb4_general_ci, 255 utf8mb4_0900_ai_ci…).
    pub charset: u8,
    /// Server status flags.
    pub status_flags: u16,
    /// The default auth plugin; empty without `CLIENT_PLUGIN_AUTH`.
    pub auth_plugin_name: MysqlString,
}

impl HandshakeV10 {
    /// The protocol version byte that starts the payload.
    pub const PROTOCOL_VERSION: u8 = 10;
    /// Length of the scramble modern servers send.
    pub const SCRAMBLE_LEN: usize = 20;
    const NAME: &'static str = "HandshakeV10";

    /// A greeting as the proxy sends it: `scramble` must be 20 non-NUL bytes (servers use
    /// printable ones), the collation is utf8mb4_general_ci (45), understood by MySQL and
    /// MariaDB clients alike, and the status is autocommit.
    pub fn new(
        server_version: impl Into<MysqlString>,
        connection_id: u32,
        scramble: [u8; Self::SCRAMBLE_LEN],
        capabilities: u64,
        auth_plugin_name: impl Into<MysqlString>,
    ) -> Self {
        Self {
            server_version: server_version.into(),
            connection_id,
            auth_plugin_data: Bytes::copy_from_slice(&scramble),
            capabilities,
            charset: 45,
            status_flags: SERVER_STATUS_AUTOCOMMIT,
            auth_plugin_name: auth_plugin_name.into(),
        }
    }

    /// Whether the server is MariaDB: it clears [`CLIENT_MYSQL`] or names itself so.
    pub fn is_mariadb(&self) -> bool {
        !has(self.capabilities, CLIENT_MYSQL)
            || self
                .server_version
                .as_bytes()
                .windows(7)
                .any(|w| w == b"MariaDB")
    }

    /// The version without MariaDB's [`MARIADB_VERSION_PREFIX`] ("10.11.6-MariaDB").
    pub fn version(&self) -> Cow<'_, str> {
        let v = self.server_version.as_bytes();
        let v = match v.strip_prefix(MARIADB_VERSION_PREFIX.as_bytes()) {
            Some(rest) if self.is_mariadb() => rest,
            _ => v,
        };
        String::from_utf8_lossy(v)
    }

    /// Decodes a payload. Bytes after the plugin name are ignored (room for future fields).
    pub fn decode(payload: Bytes) -> Result<Self, WireError> {
        let mut r = PayloadReader::new(Self::NAME, payload);
        let version = r.u8("protocol version")?;
        if version != Self::PROTOCOL_VERSION {
            return Err(WireError::UnexpectedHeader {
                message: Self::NAME,
                expected: Self::PROTOCOL_VERSION,
                found: version,
            });
        }
        let server_version = r.nul_bytes("server version")?.into();
        let connection_id = r.u32("connection id")?;
        let part1 = r.bytes(8, "auth plugin data part 1")?;
        r.skip(1, "filler")?;
        let low = r.u16("capability flags")?;
        let charset = r.u8("character set")?;
        let status_flags = r.u16("status flags")?;
        let high = r.u16("capability flags (upper)")?;
        let data_len = r.u8("auth plugin data length")?;
        r.skip(6, "reserved")?;
        let extended = r.u32("MariaDB capability flags")?;
        let mut capabilities = u64::from(low) | u64::from(high) << 16;
        if !has(capabilities, CLIENT_MYSQL) {
            capabilities |= u64::from(extended) << 32;
        }
        let auth_plugin_data = if has(capabilities, CLIENT_SECURE_CONNECTION) {
            let len = usize::from(data_len).saturating_sub(8).max(13);
            let part2 = r.bytes(len, "auth plugin data part 2")?;
            let part2 = match part2.split_last() {
                Some((0, head)) => head,
                _ => &part2,
            };
            let mut data = BytesMut::with_capacity(8 + part2.len());
            data.put_slice(&part1);
            data.put_slice(part2);
            data.freeze()
        } else {
            part1
        };
        let auth_plugin_name = if has(capabilities, CLIENT_PLUGIN_AUTH) {
            // Servers before 5.5.10 omit the NUL (MySQL bug #59453).
            match r.nul_bytes("auth plugin name") {
                Ok(name) => name,
                Err(_) => r.rest(),
            }
        } else {
            Bytes::new()
        };
        Ok(Self {
            server_version,
            connection_id,
            auth_plugin_data,
            capabilities,
            charset,
            status_flags,
            auth_plugin_name: auth_plugin_name.into(),
        })
    }

    /// Appends the payload.
    ///
    /// With `CLIENT_SECURE_CONNECTION` the auth data must be 20 to 254 bytes, without NUL
    /// (it is sent NUL-terminated), otherwise exactly 8; a plugin name needs
    /// `CLIENT_PLUGIN_AUTH`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        capability::check_extended(self.capabilities, Self::NAME)?;
        let data = &self.auth_plugin_data;
        let secure = has(self.capabilities, CLIENT_SECURE_CONNECTION);
        let plugin = has(self.capabilities, CLIENT_PLUGIN_AUTH);
        let bad = |reason| WireError::InvalidField {
            message: Self::NAME,
            field: "auth plugin data",
            reason,
        };
        if secure && !(Self::SCRAMBLE_LEN..=254).contains(&data.len()) {
            return Err(bad("must be 20 to 254 bytes"));
        }
        if secure && !plugin && data.len() != Self::SCRAMBLE_LEN {
            return Err(bad("must be 20 bytes without CLIENT_PLUGIN_AUTH"));
        }
        if !secure && data.len() != 8 {
            return Err(bad("must be 8 bytes without CLIENT_SECURE_CONNECTION"));
        }
        if data.contains(&0) {
            return Err(WireError::InteriorNul {
                message: Self::NAME,
                field: "auth plugin data",
            });
        }
        if !plugin && !self.auth_plugin_name.is_empty() {
            return Err(WireError::InvalidField {
                message: Self::NAME,
                field: "auth plugin name",
                reason: "needs CLIENT_PLUGIN_AUTH",
            });
        }
        let (part1, part2) = data.split_at(8.min(data.len()));
        let start = dst.len();
        dst.put_u8(Self::PROTOCOL_VERSION);
        let done = put_nul_bytes(
            dst,
            self.server_version.as_bytes(),
            Self::NAME,
            "server version",
        );
        if let Err(e) = done {
            dst.truncate(start);
            return Err(e);
        }
        dst.put_u32_le(self.connection_id);
        dst.put_slice(part1);
        dst.put_u8(0);
        let (low, extended) = capability::split(self.capabilities);
        dst.put_u16_le(low as u16);
        dst.put_u8(self.charset);
        dst.put_u16_le(self.status_flags);
        dst.put_u16_le((low >> 16) as u16);
        let data_len = if plugin {
            data.len().saturating_add(1)
        } else {
            0
        };
        dst.put_u8(u8::try_from(data_len).unwrap_or(u8::MAX));
        dst.put_bytes(0, 6);
        let extended = if has(self.capabilities, CLIENT_MYSQL) {
            0
        } else {
            extended
        };
        dst.put_u32_le(extended);
        if secure {
            dst.put_slice(part2);
            // NUL-terminated, and at least 13 bytes.
            dst.put_bytes(0, 13usize.saturating_sub(part2.len()).max(1));
        }
        if plugin {
            let done = put_nul_bytes(
                dst,
                self.auth_plugin_name.as_bytes(),
                Self::NAME,
                "auth plugin name",
            );
            if let Err(e) = done {
                dst.truncate(start);
                return Err(e);
            }
        }
        Ok(())
    }
}
