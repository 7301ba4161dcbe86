//! The Ed25519 key the user CA will sign SSH user certificates with.
//!
//! Created with the user CA so that SSH access (a later capability) needs no CA rotation.

use std::fmt;

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use zeroize::Zeroizing;

use crate::error::{CaError, Result};

/// An Ed25519 signing key for SSH certificates.
pub struct SshCaKey {
    pkcs8: Zeroizing<Vec<u8>>,
    public: [u8; 32],
}

impl fmt::Debug for SshCaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SshCaKey({})", self.fingerprint())
    }
}

impl SshCaKey {
    /// Makes a new key.
    pub fn generate() -> Result<Self> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| CaError::Key("the system random generator failed".into()))?;
        Self::from_pkcs8_der(doc.as_ref())
    }

    /// Loads a stored key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| CaError::Key(format!("not an Ed25519 PKCS#8 key ({e})")))?;
        let public: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| CaError::Key("unexpected Ed25519 public key length".into()))?;
        Ok(Self {
            pkcs8: Zeroizing::new(der.to_vec()),
            public,
        })
    }

    /// PKCS#8 DER, for storage only.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key in SSH wire format (`string "ssh-ed25519", string key`).
    fn wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(51);
        for part in [b"ssh-ed25519".as_slice(), self.public.as_slice()] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    /// An `authorized_keys` / `TrustedUserCAKeys` line.
    pub fn public_line(&self, comment: &str) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.wire());
        format!("ssh-ed25519 {b64} {comment}")
    }

    /// OpenSSH-style fingerprint: `SHA256:` and unpadded base64 of the wire key's SHA-256.
    pub fn fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.wire());
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref())
        )
    }
}
