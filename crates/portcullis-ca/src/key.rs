//! ECDSA P-256 keys: generation, storage form (PKCS#8) and signing.

use std::fmt;

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};
use zeroize::Zeroizing;

use crate::der;
use crate::error::{CaError, Result};
use crate::oid::std_oid;

/// An ECDSA P-256 private key.
///
/// Kept with its PKCS#8 bytes so it can be stored and handed to rustls; the bytes are wiped on
/// drop and never printed.
pub struct KeyPair {
    pkcs8: Zeroizing<Vec<u8>>,
    ring: EcdsaKeyPair,
    spki: Vec<u8>,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("algorithm", &"ECDSA P-256")
            .field("private", &"<redacted>")
            .finish()
    }
}

impl KeyPair {
    /// Makes a new random key.
    pub fn generate() -> Result<Self> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| CaError::Key("the system random generator failed".into()))?;
        Self::from_pkcs8_der(doc.as_ref())
    }

    /// Loads a key from PKCS#8 DER.
    pub fn from_pkcs8_der(der_bytes: &[u8]) -> Result<Self> {
        let rng = SystemRandom::new();
        let ring = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der_bytes, &rng)
            .map_err(|e| CaError::Key(format!("not an ECDSA P-256 PKCS#8 key ({e})")))?;
        let spki = spki_from_point(ring.public_key().as_ref());
        Ok(Self {
            pkcs8: Zeroizing::new(der_bytes.to_vec()),
            ring,
            spki,
        })
    }

    /// Loads a key from a PEM `PRIVATE KEY` block.
    pub fn from_pem(pem_text: &str) -> Result<Self> {
        let block = pem::parse(pem_text).map_err(|e| CaError::Pem(e.to_string()))?;
        if block.tag() != "PRIVATE KEY" {
            return Err(CaError::Pem(format!(
                "expected a 'PRIVATE KEY' (PKCS#8) block, found '{}'",
                block.tag()
            )));
        }
        Self::from_pkcs8_der(block.contents())
    }

    /// The PKCS#8 DER bytes, for storage and for rustls.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key as a PEM `PRIVATE KEY` block (what PostgreSQL, MariaDB and Redis read).
    pub fn to_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            self.pkcs8.as_slice().to_vec(),
        )))
    }

    /// The public half as SubjectPublicKeyInfo DER.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            spki: self.spki.clone(),
        }
    }

    /// Signs `msg` with ECDSA-SHA256, returning the DER `ECDSA-Sig-Value`.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let rng = SystemRandom::new();
        self.ring
            .sign(&rng, msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| CaError::Signing)
    }
}

/// An ECDSA P-256 public key in SubjectPublicKeyInfo form: what clients send to be certified.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    spki: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(P-256, {})", crate::fingerprint(&self.spki))
    }
}

impl PublicKey {
    /// Accepts SubjectPublicKeyInfo DER, refusing anything but an uncompressed P-256 point that
    /// lies on the curve.
    pub fn from_spki_der(spki: &[u8]) -> Result<Self> {
        use x509_parser::prelude::FromDer;
        let (rest, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki)
            .map_err(|e| CaError::PublicKey(format!("not SubjectPublicKeyInfo DER ({e})")))?;
        if !rest.is_empty() {
            return Err(CaError::PublicKey("trailing bytes after the key".into()));
        }
        if info.algorithm.algorithm.as_bytes() != std_oid::EC_PUBLIC_KEY {
            return Err(CaError::PublicKey("not an elliptic-curve key".into()));
        }
        let curve_ok = info
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .is_some_and(|o| o.as_bytes() == std_oid::PRIME256V1);
        if !curve_ok {
            return Err(CaError::PublicKey("the curve is not P-256".into()));
        }
        let point = info.subject_public_key.data.as_ref();
        if point.len() != 65 || point.first() != Some(&0x04) {
            return Err(CaError::PublicKey(
                "expected an uncompressed 65-byte point".into(),
            ));
        }
        if !point_on_curve(point) {
            return Err(CaError::PublicKey(
                "the point is not on the P-256 curve".into(),
            ));
        }
        Ok(Self {
            spki: spki_from_point(point),
        })
    }

    /// Accepts a PEM `PUBLIC KEY` block.
    pub fn from_pem(pem_text: &str) -> Result<Self> {
        let block = pem::parse(pem_text).map_err(|e| CaError::Pem(e.to_string()))?;
        if block.tag() != "PUBLIC KEY" {
            return Err(CaError::Pem(format!(
                "expected a 'PUBLIC KEY' block, found '{}'",
                block.tag()
            )));
        }
        Self::from_spki_der(block.contents())
    }

    /// SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// PEM `PUBLIC KEY`.
    pub fn to_pem(&self) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", self.spki.clone()))
    }

    /// The raw uncompressed point (the BIT STRING contents), used for key identifiers.
    pub(crate) fn point(&self) -> &[u8] {
        // SPKI we build: 0x30 0x59 | 0x30 0x13 <alg 21 bytes> | 0x03 0x42 0x00 <65 bytes>
        self.spki
            .get(self.spki.len().saturating_sub(65)..)
            .unwrap_or_default()
    }
}

/// Builds SubjectPublicKeyInfo DER for an uncompressed P-256 point.
fn spki_from_point(point: &[u8]) -> Vec<u8> {
    let alg = der::sequence(&[
        &der::oid(std_oid::EC_PUBLIC_KEY),
        &der::oid(std_oid::PRIME256V1),
    ]);
    der::sequence(&[&alg, &der::bit_string(point)])
}

/// Checks that an uncompressed point is a valid P-256 public key.
///
/// ring validates the peer's point (on the curve, not the identity) before an ECDH agreement,
/// so one agreement with a throwaway key is an exact, well-tested validity check.
fn point_on_curve(point: &[u8]) -> bool {
    use ring::agreement::{agree_ephemeral, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P256};
    let rng = SystemRandom::new();
    let Ok(ours) = EphemeralPrivateKey::generate(&ECDH_P256, &rng) else {
        return false;
    };
    agree_ephemeral(ours, &UnparsedPublicKey::new(&ECDH_P256, point), |_| ()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_sign_reload() {
        let k = KeyPair::generate().unwrap();
        let again = KeyPair::from_pem(&k.to_pem()).unwrap();
        assert_eq!(k.public_key(), again.public_key());
        assert!(!format!("{k:?}").contains("PRIVATE"));
        assert_eq!(k.public_key().point().len(), 65);
    }

    #[test]
    fn public_key_validation() {
        let k = KeyPair::generate().unwrap();
        let pk = PublicKey::from_pem(&k.public_key().to_pem()).unwrap();
        assert_eq!(pk, k.public_key());
        let mut bad = k.public_key().spki_der().to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(PublicKey::from_spki_der(&bad).is_err(), "off-curve point");
        assert!(PublicKey::from_spki_der(b"garbage").is_err());
        assert!(PublicKey::from_pem(
            "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
    }
}
