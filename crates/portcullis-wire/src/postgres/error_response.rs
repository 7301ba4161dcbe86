//! ErrorResponse (B) message: an error from the server, or one Portcullis sends a client.

use bytes::{Bytes, BytesMut};

use super::fields::{self, ErrorField};
use super::{Message, PgString};
use crate::WireError;

/// SQLSTATE codes Portcullis uses in the errors it sends, so every refusal maps to the code a
/// client library already understands.
pub mod sqlstate {
    /// `08000` connection_exception.
    pub const CONNECTION_EXCEPTION: &str = "08000";
    /// `08006` connection_failure: the database could not be reached.
    pub const CONNECTION_FAILURE: &str = "08006";
    /// `08P01` protocol_violation: malformed or unexpected messages.
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    /// `0A000` feature_not_supported (e.g. GSSAPI encryption, protocol 2.0).
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    /// `28000` invalid_authorization_specification: no or wrong certificate, TLS required.
    pub const INVALID_AUTHORIZATION_SPECIFICATION: &str = "28000";
    /// `42501` insufficient_privilege: the roles do not allow this database, user or name.
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    /// `53300` too_many_connections.
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    /// `57P01` admin_shutdown: the session was ended (certificate expired, lock created).
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    /// `57P03` cannot_connect_now.
    pub const CANNOT_CONNECT_NOW: &str = "57P03";
    /// `XX000` internal_error.
    pub const INTERNAL_ERROR: &str = "XX000";
}

/// ErrorResponse: the fields of an error. Decoded from the server during startup (to report
/// why a login failed); built with [`ErrorResponse::fatal`] when the proxy or agent refuses a
/// client, since psql shows these fields to the user verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    /// The fields, in wire order.
    pub fields: Vec<ErrorField>,
}

impl ErrorResponse {
    /// An error with `severity` (`FATAL`, `ERROR`), SQLSTATE `code` and `message`; sets both
    /// the `S` and the non-localized `V` severity, as servers since 9.6 do.
    pub fn new(severity: &'static str, code: &str, message: impl Into<String>) -> Self {
        Self {
            fields: vec![
                ErrorField::new(ErrorField::SEVERITY, PgString::from_static(severity)),
                ErrorField::new(
                    ErrorField::SEVERITY_NONLOCALIZED,
                    PgString::from_static(severity),
                ),
                ErrorField::new(ErrorField::CODE, code),
                ErrorField::new(ErrorField::MESSAGE, message.into()),
            ],
        }
    }

    /// A `FATAL` error: the connection ends after it (what the proxy sends before closing).
    pub fn fatal(code: &str, message: impl Into<String>) -> Self {
        Self::new("FATAL", code, message)
    }

    /// An `ERROR`: the current command fails, the session continues.
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        Self::new("ERROR", code, message)
    }

    /// Adds a hint (`H`): what the user should do, e.g. "run `pc db login`".
    #[must_use]
    pub fn hint(self, hint: impl Into<String>) -> Self {
        self.with_field(ErrorField::HINT, hint.into())
    }

    /// Adds a detail (`D`).
    #[must_use]
    pub fn detail(self, detail: impl Into<String>) -> Self {
        self.with_field(ErrorField::DETAIL, detail.into())
    }

    /// Adds any field.
    #[must_use]
    pub fn with_field(mut self, code: u8, value: impl Into<PgString>) -> Self {
        self.fields.push(ErrorField::new(code, value));
        self
    }

    /// The first field with `code`.
    pub fn field(&self, code: u8) -> Option<&PgString> {
        fields::get(&self.fields, code)
    }

    /// Severity: the non-localized `V` if present, else `S`.
    pub fn severity(&self) -> Option<&PgString> {
        self.field(ErrorField::SEVERITY_NONLOCALIZED)
            .or_else(|| self.field(ErrorField::SEVERITY))
    }

    /// The SQLSTATE code (`C`).
    pub fn sqlstate(&self) -> Option<&PgString> {
        self.field(ErrorField::CODE)
    }

    /// The primary message (`M`).
    pub fn message(&self) -> Option<&PgString> {
        self.field(ErrorField::MESSAGE)
    }
}

impl Message for ErrorResponse {
    const TAG: u8 = b'E';
    const NAME: &'static str = "ErrorResponse";

    fn decode(body: Bytes) -> Result<Self, WireError> {
        fields::decode(Self::NAME, body).map(|fields| Self { fields })
    }

    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        fields::encode(Self::NAME, &self.fields, dst)
    }
}
