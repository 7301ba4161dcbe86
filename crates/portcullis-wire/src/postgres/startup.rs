//! The first packet of a connection (F): SSLRequest, GSSENCRequest, CancelRequest or
//! StartupMessage.
//!
//! The proxy decodes it to route (and to refuse plaintext); the agent decodes the client's and
//! encodes its own, with the user and database taken from the certificate's route.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::buf::{patch_len, Reader};
use super::frame::StartupPacket;
use super::MAX_STARTUP_PACKET_LEN;
use crate::WireError;

/// Request code of an SSLRequest (1234.5679).
pub const SSL_REQUEST_CODE: u32 = (1234 << 16) | 5679;
/// Request code of a GSSENCRequest (1234.5680).
pub const GSSENC_REQUEST_CODE: u32 = (1234 << 16) | 5680;
/// Request code of a CancelRequest (1234.5678).
pub const CANCEL_REQUEST_CODE: u32 = (1234 << 16) | 5678;
/// The one-byte answer to SSLRequest or GSSENCRequest that accepts encryption.
pub const ENCRYPTION_ACCEPTED: u8 = b'S';
/// The one-byte answer to SSLRequest or GSSENCRequest that refuses encryption.
pub const ENCRYPTION_REFUSED: u8 = b'N';
/// Longest cancel secret key: 4 bytes in protocol 3.0, up to 256 since 3.2 (PostgreSQL 18).
pub const MAX_CANCEL_KEY_LEN: usize = 256;

/// A protocol version as sent in a StartupMessage: major in the high 16 bits, minor in the low.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion {
    /// Major version (3).
    pub major: u16,
    /// Minor version (0 or 2).
    pub minor: u16,
}

impl ProtocolVersion {
    /// Protocol 3.0, spoken by every PostgreSQL since 7.4.
    pub const V3_0: Self = Self { major: 3, minor: 0 };
    /// Protocol 3.2 (PostgreSQL 18): longer cancel keys. (3.1 was never used.)
    pub const V3_2: Self = Self { major: 3, minor: 2 };

    /// Splits a 32-bit code into major and minor.
    pub const fn from_code(code: u32) -> Self {
        Self {
            major: (code >> 16) as u16,
            minor: (code & 0xffff) as u16,
        }
    }

    /// The 32-bit code sent on the wire.
    pub const fn code(self) -> u32 {
        ((self.major as u32) << 16) | self.minor as u32
    }

    /// Whether this codec speaks the version (3.0 or 3.2).
    pub const fn is_supported(self) -> bool {
        self.major == 3 && (self.minor == 0 || self.minor == 2)
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// CancelRequest: sent on a new connection to cancel the query running on another; the proxy
/// routes it to the agent that holds the session with that key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    /// The target backend's process ID, from its BackendKeyData.
    pub process_id: i32,
    /// The target backend's secret key: 4 bytes in 3.0, up to 256 bytes in 3.2.
    pub secret_key: Bytes,
}

/// StartupMessage: protocol version and connection parameters (`user`, `database`,
/// `application_name`, `options`, `_pq_.*` protocol options…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupMessage {
    /// The requested protocol version (3.0 or 3.2 after decoding).
    pub protocol_version: ProtocolVersion,
    /// Parameters in the order sent; names are unique and `user` is present after decoding.
    pub params: Vec<(String, String)>,
}

impl StartupMessage {
    /// A startup message for `user`, with no other parameters.
    pub fn new(protocol_version: ProtocolVersion, user: impl Into<String>) -> Self {
        Self {
            protocol_version,
            params: vec![("user".to_owned(), user.into())],
        }
    }

    /// Sets (or replaces) a parameter, builder style.
    #[must_use]
    pub fn with_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_param(name, value);
        self
    }

    /// Sets a parameter, replacing an existing value in place.
    pub fn set_param(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.params.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.params.push((name, value)),
        }
    }

    /// A parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `user` parameter (always present in a decoded message).
    pub fn user(&self) -> Option<&str> {
        self.param("user")
    }

    /// The database: the `database` parameter, or the user name when it is absent, as the
    /// server does.
    pub fn database(&self) -> Option<&str> {
        self.param("database").or_else(|| self.user())
    }

    /// The `application_name` parameter, for the audit log.
    pub fn application_name(&self) -> Option<&str> {
        self.param("application_name")
    }

    /// Decodes the parameters that follow the version code.
    fn decode(protocol_version: ProtocolVersion, body: Bytes) -> Result<Self, WireError> {
        const NAME: &str = "StartupMessage";
        if !protocol_version.is_supported() {
            return Err(WireError::UnsupportedProtocolVersion {
                major: protocol_version.major,
                minor: protocol_version.minor,
            });
        }
        let mut r = Reader::new(NAME, body);
        let mut params: Vec<(String, String)> = Vec::new();
        loop {
            if r.remaining() == 0 {
                return Err(WireError::MissingNul {
                    message: NAME,
                    field: "parameter list",
                });
            }
            let name = r.cstr("parameter name")?;
            if name.is_empty() {
                break;
            }
            let value = r.cstr("parameter value")?;
            let name = String::from_utf8(name.to_vec()).map_err(|e| WireError::InvalidUtf8 {
                message: NAME,
                field: format!("parameter name {:?}", String::from_utf8_lossy(e.as_bytes())),
            })?;
            let value = String::from_utf8(value.to_vec()).map_err(|_| WireError::InvalidUtf8 {
                message: NAME,
                field: format!("parameter {name:?}"),
            })?;
            if params.iter().any(|(n, _)| *n == name) {
                return Err(WireError::DuplicateParameter { name });
            }
            params.push((name, value));
        }
        r.finish()?;
        let msg = Self {
            protocol_version,
            params,
        };
        if msg.user().is_none() {
            return Err(WireError::MissingParameter { name: "user" });
        }
        Ok(msg)
    }

    /// Appends the whole packet to `dst`, refusing what a server would refuse (unsupported
    /// version, no `user`, empty or duplicate names, NUL bytes, more than
    /// [`MAX_STARTUP_PACKET_LEN`] bytes).
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        const NAME: &str = "StartupMessage";
        let v = self.protocol_version;
        if !v.is_supported() {
            return Err(WireError::UnsupportedProtocolVersion {
                major: v.major,
                minor: v.minor,
            });
        }
        if self.user().is_none() {
            return Err(WireError::MissingParameter { name: "user" });
        }
        let mut buf = BytesMut::with_capacity(64);
        buf.put_i32(0);
        buf.put_u32(v.code());
        for (i, (name, value)) in self.params.iter().enumerate() {
            if name.is_empty() {
                return Err(WireError::InvalidField {
                    message: NAME,
                    field: "parameter name",
                    reason: "empty (an empty name ends the list)",
                });
            }
            if self.params.iter().take(i).any(|(n, _)| n == name) {
                return Err(WireError::DuplicateParameter { name: name.clone() });
            }
            super::buf::put_cstr(&mut buf, name.as_bytes(), NAME, "parameter name")?;
            super::buf::put_cstr(&mut buf, value.as_bytes(), NAME, "parameter value")?;
        }
        buf.put_u8(0);
        if buf.len() > MAX_STARTUP_PACKET_LEN {
            return Err(WireError::MessageTooLarge {
                len: buf.len(),
                max: MAX_STARTUP_PACKET_LEN,
            });
        }
        patch_len(&mut buf, 0)?;
        dst.put_slice(&buf);
        Ok(())
    }
}

/// The first packet of a connection, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitialPacket {
    /// SSLRequest: the client wants TLS; answer [`ENCRYPTION_ACCEPTED`] and start the handshake.
    ///
    /// Bytes already buffered after an SSLRequest were sent in plaintext and may have been
    /// injected by a man in the middle (CVE-2021-23214 / CVE-2021-23222): if the buffer is not
    /// empty when the handshake is to start, close the connection instead of carrying them over.
    SslRequest,
    /// GSSENCRequest: the client wants GSSAPI encryption; answer [`ENCRYPTION_REFUSED`]. The
    /// same rule about bytes buffered after it applies as for [`InitialPacket::SslRequest`].
    GssEncRequest,
    /// CancelRequest for another session.
    CancelRequest(CancelRequest),
    /// StartupMessage: the session begins.
    Startup(StartupMessage),
}

impl InitialPacket {
    /// Decodes a packet split off by [`super::Framer::split_startup`].
    pub fn decode(packet: &StartupPacket) -> Result<Self, WireError> {
        let body = packet.body.clone();
        match packet.code {
            SSL_REQUEST_CODE => {
                Reader::new("SSLRequest", body).finish()?;
                Ok(Self::SslRequest)
            }
            GSSENC_REQUEST_CODE => {
                Reader::new("GSSENCRequest", body).finish()?;
                Ok(Self::GssEncRequest)
            }
            CANCEL_REQUEST_CODE => {
                let mut r = Reader::new("CancelRequest", body);
                let process_id = r.i32("process ID")?;
                let secret_key = r.rest();
                if secret_key.is_empty() || secret_key.len() > MAX_CANCEL_KEY_LEN {
                    return Err(WireError::InvalidValue {
                        message: "CancelRequest",
                        field: "secret key length",
                        value: i64::try_from(secret_key.len()).unwrap_or(i64::MAX),
                    });
                }
                Ok(Self::CancelRequest(CancelRequest {
                    process_id,
                    secret_key,
                }))
            }
            code if code >> 16 == 1234 => Err(WireError::UnknownRequestCode { code }),
            code => {
                StartupMessage::decode(ProtocolVersion::from_code(code), body).map(Self::Startup)
            }
        }
    }

    /// Splits and decodes the first packet from `src` in one go: `Ok(None)` until it is all
    /// there. Uses the default [`super::Framer`] limits.
    pub fn split(src: &mut BytesMut) -> Result<Option<Self>, WireError> {
        match super::Framer::new().split_startup(src)? {
            Some(packet) => Self::decode(&packet).map(Some),
            None => Ok(None),
        }
    }

    /// Appends the packet to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        match self {
            Self::SslRequest => {
                dst.put_i32(8);
                dst.put_u32(SSL_REQUEST_CODE);
            }
            Self::GssEncRequest => {
                dst.put_i32(8);
                dst.put_u32(GSSENC_REQUEST_CODE);
            }
            Self::CancelRequest(c) => {
                let n = c.secret_key.len();
                if n == 0 || n > MAX_CANCEL_KEY_LEN {
                    return Err(WireError::InvalidValue {
                        message: "CancelRequest",
                        field: "secret key length",
                        value: i64::try_from(n).unwrap_or(i64::MAX),
                    });
                }
                // n <= 256, so the length fits.
                dst.put_i32(12 + n as i32);
                dst.put_u32(CANCEL_REQUEST_CODE);
                dst.put_i32(c.process_id);
                dst.put_slice(&c.secret_key);
            }
            Self::Startup(s) => s.encode(dst)?,
        }
        Ok(())
    }
}
