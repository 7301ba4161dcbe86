//! Building and signing X.509 v3 certificates.

use std::net::IpAddr;

use ring::digest;
use time::OffsetDateTime;

use crate::der::{self, tag};
use crate::error::{CaError, Result};
use crate::key::{KeyPair, PublicKey};
use crate::oid::std_oid;

/// One attribute of a subject name: OID content octets and a UTF-8 value.
pub type NameAttribute = (&'static [u8], String);

/// Key usages we set (RFC 5280 4.2.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsage {
    /// Leaf certificates: TLS handshakes sign with the key.
    DigitalSignature,
    /// CA certificates: signs other certificates.
    CertSign,
}

/// What to put into a certificate; the issuer and the subject's key come separately.
#[derive(Debug, Clone)]
pub struct CertTemplate {
    /// Subject attributes in order; each becomes its own RDN.
    pub subject: Vec<NameAttribute>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Whether this is a certificate authority.
    pub is_ca: bool,
    /// Key usage.
    pub key_usage: KeyUsage,
    /// Extended key usages (OID content octets).
    pub ext_key_usage: Vec<&'static [u8]>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
}

/// The issuing side of a signature: its name and key.
pub struct Issuer<'a> {
    /// DER of the issuer's subject Name.
    pub name_der: &'a [u8],
    /// The issuer's key identifier (its SKI).
    pub key_id: &'a [u8],
    /// The issuer's signing key.
    pub key: &'a KeyPair,
}

/// Encodes a subject Name from attributes.
pub fn encode_name(attrs: &[NameAttribute]) -> Vec<u8> {
    let rdns: Vec<Vec<u8>> = attrs
        .iter()
        .map(|(oid, value)| {
            let atv = der::sequence(&[&der::oid(oid), &der::utf8(value)]);
            der::constructed(tag::SET, &[&atv])
        })
        .collect();
    let parts: Vec<&[u8]> = rdns.iter().map(Vec::as_slice).collect();
    der::sequence(&parts)
}

/// The key identifier of a public key: SHA-1 of its point (RFC 5280 4.2.1.2, method 1).
pub fn key_id(key: &PublicKey) -> Vec<u8> {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, key.point())
        .as_ref()
        .to_vec()
}

fn random_serial() -> Result<Vec<u8>> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut serial = [0u8; 16];
    SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| CaError::Key("the system random generator failed".into()))?;
    // Positive and non-zero, 16 bytes of entropy minus one bit (RFC 5280 asks for <= 20 octets).
    serial[0] = (serial[0] & 0x7f) | 0x01;
    Ok(serial.to_vec())
}

fn key_usage_ext(usage: KeyUsage) -> Vec<u8> {
    // BIT STRING with DER-minimal unused-bit count.
    let bits: &[u8] = match usage {
        KeyUsage::DigitalSignature => &[0x07, 0x80],
        KeyUsage::CertSign => &[0x01, 0x06],
    };
    der::tlv_vec(tag::BIT_STRING, bits)
}

fn extension(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let oid = der::oid(oid);
    let value = der::octet_string(value);
    if critical {
        der::sequence(&[&oid, &der::true_value(), &value])
    } else {
        der::sequence(&[&oid, &value])
    }
}

fn ecdsa_sha256_alg() -> Vec<u8> {
    der::sequence(&[&der::oid(std_oid::ECDSA_WITH_SHA256)])
}

/// Builds the certificate described by `t` for `subject_key`, signed by `issuer`; returns DER.
pub fn sign(t: &CertTemplate, subject_key: &PublicKey, issuer: &Issuer<'_>) -> Result<Vec<u8>> {
    if t.not_after <= t.not_before {
        return Err(CaError::Request("the validity period is empty".into()));
    }
    let subject_name = encode_name(&t.subject);
    let ski = key_id(subject_key);

    let mut exts: Vec<Vec<u8>> = Vec::with_capacity(6);
    let basic = if t.is_ca {
        der::sequence(&[&der::true_value()])
    } else {
        der::sequence(&[])
    };
    exts.push(extension(std_oid::BASIC_CONSTRAINTS, true, &basic));
    exts.push(extension(
        std_oid::KEY_USAGE,
        true,
        &key_usage_ext(t.key_usage),
    ));
    if !t.ext_key_usage.is_empty() {
        let oids: Vec<Vec<u8>> = t.ext_key_usage.iter().map(|o| der::oid(o)).collect();
        let parts: Vec<&[u8]> = oids.iter().map(Vec::as_slice).collect();
        exts.push(extension(
            std_oid::EXT_KEY_USAGE,
            false,
            &der::sequence(&parts),
        ));
    }
    if !t.dns_names.is_empty() || !t.ip_addresses.is_empty() {
        let mut names: Vec<Vec<u8>> = Vec::new();
        for dns in &t.dns_names {
            if !dns.is_ascii() || dns.is_empty() {
                return Err(CaError::Request(format!(
                    "DNS name {dns:?} must be non-empty ASCII (use punycode for IDNs)"
                )));
            }
            names.push(der::tlv_vec(0x82, dns.as_bytes()));
        }
        for ip in &t.ip_addresses {
            let bytes = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            names.push(der::tlv_vec(0x87, &bytes));
        }
        let parts: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        exts.push(extension(
            std_oid::SUBJECT_ALT_NAME,
            false,
            &der::sequence(&parts),
        ));
    }
    exts.push(extension(
        std_oid::SUBJECT_KEY_ID,
        false,
        &der::octet_string(&ski),
    ));
    let aki = der::sequence(&[&der::tlv_vec(0x80, issuer.key_id)]);
    exts.push(extension(std_oid::AUTHORITY_KEY_ID, false, &aki));
    let ext_parts: Vec<&[u8]> = exts.iter().map(Vec::as_slice).collect();
    let extensions = der::constructed(0xa3, &[&der::sequence(&ext_parts)]);

    let version = der::constructed(0xa0, &[&der::small_integer(2)]);
    let serial = der::unsigned_integer(&random_serial()?);
    let alg = ecdsa_sha256_alg();
    let validity = der::sequence(&[&der::x509_time(t.not_before), &der::x509_time(t.not_after)]);
    let tbs = der::sequence(&[
        &version,
        &serial,
        &alg,
        issuer.name_der,
        &validity,
        &subject_name,
        subject_key.spki_der(),
        &extensions,
    ]);
    let signature = issuer.key.sign(&tbs)?;
    Ok(der::sequence(&[&tbs, &alg, &der::bit_string(&signature)]))
}

/// DER to PEM `CERTIFICATE`.
pub fn to_pem(cert_der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", cert_der.to_vec()))
}

/// Every `CERTIFICATE` block of a PEM bundle, as DER; other blocks are an error.
pub fn certs_from_pem(pem_text: &str) -> Result<Vec<Vec<u8>>> {
    let blocks = pem::parse_many(pem_text).map_err(|e| CaError::Pem(e.to_string()))?;
    if blocks.is_empty() {
        return Err(CaError::Pem("no CERTIFICATE block found".into()));
    }
    blocks
        .into_iter()
        .map(|b| {
            if b.tag() == "CERTIFICATE" {
                Ok(b.into_contents())
            } else {
                Err(CaError::Pem(format!(
                    "expected CERTIFICATE blocks, found '{}'",
                    b.tag()
                )))
            }
        })
        .collect()
}

/// The SubjectPublicKeyInfo DER of a certificate (what CA pins are computed over).
pub fn spki_of(cert_der: &[u8]) -> Result<Vec<u8>> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, c) = X509Certificate::from_der(cert_der)
        .map_err(|e| CaError::Certificate(format!("not a DER X.509 certificate ({e})")))?;
    Ok(c.public_key().raw.to_vec())
}
