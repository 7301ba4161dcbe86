//! Portcullis's certificate authorities: keys, certificate issuing, and the mapping between
//! identities and X.509 certificates.
//!
//! Certificates are written with our own small DER encoder ([`der`], [`cert`]) because our
//! identity fields use OIDs under `2.25.<UUID>` (see [`oid`]), whose 128-bit arc the usual
//! builders cannot encode; it also keeps issuing fast (one ECDSA signature and a few hundred
//! bytes of copying). Parsing and signature checks use `x509-parser`.
#![forbid(unsafe_code)]

pub mod authority;
pub mod cert;
pub mod der;
pub mod error;
pub mod identity;
pub mod identity_file;
pub mod key;
pub mod oid;
pub mod ssh;

pub use authority::{verify_signed_by, CaKind, CertAuthority};
pub use error::{CaError, Result};
pub use identity::{decode_host_identity, decode_user_identity};
pub use key::{KeyPair, PublicKey};
pub use ssh::SshCaKey;

/// `sha256:<hex>` of `bytes`: how we name CA pins and certificate fingerprints.
pub fn fingerprint(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests;
