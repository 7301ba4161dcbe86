//! Errors of the CA crate.

use thiserror::Error;

/// Everything that can go wrong making keys, issuing certificates or reading identities.
#[derive(Debug, Error)]
pub enum CaError {
    /// A private key could not be made or loaded.
    #[error("private key: {0}")]
    Key(String),
    /// A public key handed to us is not an ECDSA P-256 key in SubjectPublicKeyInfo form.
    #[error("public key: {0}; send an ECDSA P-256 public key as a PEM 'PUBLIC KEY' block")]
    PublicKey(String),
    /// A PEM document was malformed or of the wrong type.
    #[error("PEM: {0}")]
    Pem(String),
    /// The request to issue a certificate was invalid (bad name, TTL, ...).
    #[error("invalid certificate request: {0}")]
    Request(String),
    /// Signing failed (should not happen with a valid key).
    #[error("signing failed")]
    Signing,
    /// A certificate could not be parsed or is not one of ours.
    #[error("certificate: {0}")]
    Certificate(String),
    /// A certificate was well-formed but not valid for what it was presented for.
    #[error("certificate rejected: {0}")]
    Rejected(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, CaError>;
