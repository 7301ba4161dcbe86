//! Authentication (B) message: every `R` request and result the server sends during startup.

use bytes::{BufMut, Bytes, BytesMut};

use super::buf::{put_cstr, Reader};
use super::{Message, PgString};
use crate::WireError;

/// Authentication: what the server asks of the client, or that it is satisfied.
///
/// The agent decodes the server's requests during its own login (by certificate, so it
/// expects `Ok` and can name anything else in its error) and sends `Ok` to the client itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// AuthenticationOk (0).
    Ok,
    /// AuthenticationKerberosV5 (2), no longer sent by servers.
    KerberosV5,
    /// AuthenticationCleartextPassword (3).
    CleartextPassword,
    /// AuthenticationMD5Password (5), with the salt.
    Md5Password {
        /// Salt to hash the password with.
        salt: [u8; 4],
    },
    /// AuthenticationGSS (7).
    Gss,
    /// AuthenticationGSSContinue (8), with GSSAPI or SSPI data.
    GssContinue(Bytes),
    /// AuthenticationSSPI (9).
    Sspi,
    /// AuthenticationSASL (10), with the mechanisms the server offers.
    Sasl {
        /// Mechanism names (`SCRAM-SHA-256`, `SCRAM-SHA-256-PLUS`, …).
        mechanisms: Vec<PgString>,
    },
    /// AuthenticationSASLContinue (11), with the server's challenge.
    SaslContinue(Bytes),
    /// AuthenticationSASLFinal (12), with the server's final data.
    SaslFinal(Bytes),
}

impl Authentication {
    /// The request code on the wire.
    pub const fn code(&self) -> i32 {
        match self {
            Self::Ok => 0,
            Self::KerberosV5 => 2,
            Self::CleartextPassword => 3,
            Self::Md5Password { .. } => 5,
            Self::Gss => 7,
            Self::GssContinue(_) => 8,
            Self::Sspi => 9,
            Self::Sasl { .. } => 10,
            Self::SaslContinue(_) => 11,
            Self::SaslFinal(_) => 12,
        }
    }
}

impl Message for Authentication {
    const TAG: u8 = b'R';
    const NAME: &'static str = "Authentication";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(Self::NAME, body);
        let code = r.i32("authentication code")?;
        let msg = match code {
            0 => Self::Ok,
            2 => Self::KerberosV5,
            3 => Self::CleartextPassword,
            5 => {
                let b = r.bytes(4, "salt")?;
                let mut salt = [0u8; 4];
                salt.copy_from_slice(&b);
                Self::Md5Password { salt }
            }
            7 => Self::Gss,
            8 => Self::GssContinue(r.rest()),
            9 => Self::Sspi,
            10 => {
                let mut mechanisms = Vec::new();
                loop {
                    let m = r.cstr("mechanism name")?;
                    if m.is_empty() {
                        break;
                    }
                    mechanisms.push(m.into());
                }
                Self::Sasl { mechanisms }
            }
            11 => Self::SaslContinue(r.rest()),
            12 => Self::SaslFinal(r.rest()),
            other => {
                return Err(WireError::InvalidValue {
                    message: Self::NAME,
                    field: "authentication code",
                    value: i64::from(other),
                })
            }
        };
        r.finish()?;
        Ok(msg)
    }

    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        dst.put_i32(self.code());
        match self {
            Self::Md5Password { salt } => dst.put_slice(salt),
            Self::GssContinue(data) | Self::SaslContinue(data) | Self::SaslFinal(data) => {
                dst.put_slice(data);
            }
            Self::Sasl { mechanisms } => {
                for m in mechanisms {
                    if m.is_empty() {
                        return Err(WireError::InvalidField {
                            message: Self::NAME,
                            field: "mechanism name",
                            reason: "empty (an empty name ends the list)",
                        });
                    }
                    put_cstr(dst, m.as_bytes(), Self::NAME, "mechanism name")?;
                }
                dst.put_u8(0);
            }
            Self::Ok | Self::KerberosV5 | Self::CleartextPassword | Self::Gss | Self::Sspi => {}
        }
        Ok(())
    }
}
