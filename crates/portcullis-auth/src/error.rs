//! Errors of the auth service, classified by who must act: the caller (4xx) or us (5xx).

use std::time::Duration;

use thiserror::Error;

/// An auth service error. The message is shown to the caller, so it never contains secrets
/// and says how to fix the problem.
#[derive(Debug, Error)]
pub enum AuthError {
    /// The request is malformed or violates a rule.
    #[error("{0}")]
    BadRequest(String),
    /// The caller did not prove who they are.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The thing to create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// A concurrent change won; retry.
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts.
    #[error("too many attempts; try again in {} seconds", retry_after.as_secs().max(1))]
    RateLimited {
        /// When to try again.
        retry_after: Duration,
    },
    /// Login refused because of repeated failures.
    #[error("{0}")]
    Locked(String),
    /// Our fault: storage, signing, bugs. Details go to the log, not the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AuthError {
    /// Stable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::AlreadyExists(_) => "already_exists",
            Self::Conflict(_) => "conflict",
            Self::RateLimited { .. } => "rate_limited",
            Self::Locked(_) => "locked",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<portcullis_backend::BackendError> for AuthError {
    fn from(e: portcullis_backend::BackendError) -> Self {
        use portcullis_backend::BackendError as B;
        match e {
            B::AlreadyExists(k) => Self::AlreadyExists(format!("{k} already exists")),
            B::CompareFailed(k) => Self::Conflict(format!(
                "{k} was changed by someone else at the same time; try again"
            )),
            B::NotFound(k) => Self::NotFound(format!("{k} not found")),
            other => Self::Internal(format!("storage: {other}")),
        }
    }
}

impl From<portcullis_ca::CaError> for AuthError {
    fn from(e: portcullis_ca::CaError) -> Self {
        use portcullis_ca::CaError as C;
        match e {
            C::PublicKey(_) | C::Pem(_) | C::Request(_) => Self::BadRequest(e.to_string()),
            C::Certificate(_) | C::Rejected(_) => Self::Unauthenticated(e.to_string()),
            C::Key(_) | C::Signing => Self::Internal(e.to_string()),
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, AuthError>;
