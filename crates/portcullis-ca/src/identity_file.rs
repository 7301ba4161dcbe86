//! The identity file: one PEM file holding a private key, its certificate and the CA
//! certificates to trust — what `pcctl --identity=FILE` reads and what auth writes for the
//! local administrator.
//!
//! Layout: a `PRIVATE KEY` block, then the identity's `CERTIFICATE`, then one `CERTIFICATE`
//! per trusted CA. Text outside blocks (comments) is ignored.

use std::fmt;

pub use zeroize::Zeroizing;

use crate::error::{CaError, Result};

/// A parsed identity file.
#[derive(Clone)]
pub struct IdentityFile {
    /// PKCS#8 DER of the private key.
    pub key_pkcs8: Zeroizing<Vec<u8>>,
    /// The identity's certificate, DER.
    pub cert_der: Vec<u8>,
    /// CA certificates to trust, DER.
    pub ca_ders: Vec<Vec<u8>>,
}

impl fmt::Debug for IdentityFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityFile")
            .field("cert", &crate::fingerprint(&self.cert_der))
            .field("cas", &self.ca_ders.len())
            .finish_non_exhaustive()
    }
}

impl IdentityFile {
    /// Serialises to PEM, with a comment saying what the file is.
    pub fn to_pem(&self, comment: &str) -> Zeroizing<String> {
        let mut out = String::new();
        for line in comment.lines() {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            self.key_pkcs8.as_slice().to_vec(),
        )));
        out.push_str(&pem::encode(&pem::Pem::new(
            "CERTIFICATE",
            self.cert_der.clone(),
        )));
        for ca in &self.ca_ders {
            out.push_str(&pem::encode(&pem::Pem::new("CERTIFICATE", ca.clone())));
        }
        Zeroizing::new(out)
    }

    /// Parses the layout described in the module docs.
    pub fn from_pem(text: &str) -> Result<Self> {
        // Drop comment lines first: the PEM parser wants only blocks and blank space.
        let body: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let blocks = pem::parse_many(body.as_bytes())
            .map_err(|e| CaError::Pem(format!("identity file: {e}")))?;
        let mut iter = blocks.into_iter();
        let key = iter
            .next()
            .filter(|b| b.tag() == "PRIVATE KEY")
            .ok_or_else(|| {
                CaError::Pem("identity file: the first block must be the PRIVATE KEY".into())
            })?;
        let cert = iter
            .next()
            .filter(|b| b.tag() == "CERTIFICATE")
            .ok_or_else(|| {
                CaError::Pem("identity file: the second block must be its CERTIFICATE".into())
            })?;
        let mut ca_ders = Vec::new();
        for b in iter {
            if b.tag() != "CERTIFICATE" {
                return Err(CaError::Pem(format!(
                    "identity file: unexpected '{}' block after the certificates",
                    b.tag()
                )));
            }
            ca_ders.push(b.into_contents());
        }
        if ca_ders.is_empty() {
            return Err(CaError::Pem(
                "identity file: no CA certificates to trust after the identity's certificate"
                    .into(),
            ));
        }
        Ok(Self {
            key_pkcs8: Zeroizing::new(key.into_contents()),
            cert_der: cert.into_contents(),
            ca_ders,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let key = crate::KeyPair::generate().unwrap();
        let f = IdentityFile {
            key_pkcs8: Zeroizing::new(key.pkcs8_der().to_vec()),
            cert_der: vec![0x30, 0x00],
            ca_ders: vec![vec![0x30, 0x01, 0x00]],
        };
        let text = f.to_pem("admin identity\nkeep private");
        let back = IdentityFile::from_pem(&text).unwrap();
        assert_eq!(back.cert_der, f.cert_der);
        assert_eq!(back.ca_ders, f.ca_ders);
        assert_eq!(*back.key_pkcs8, *f.key_pkcs8);
        assert!(IdentityFile::from_pem("").is_err());
        assert!(IdentityFile::from_pem("garbage").is_err());
        let only_cert = pem::encode(&pem::Pem::new("CERTIFICATE", vec![1]));
        assert!(IdentityFile::from_pem(&only_cert).is_err());
    }
}
