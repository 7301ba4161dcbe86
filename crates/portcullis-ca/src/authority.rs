//! The cluster's certificate authorities and what each may sign.

use std::net::IpAddr;
use std::time::Duration;

use portcullis_core::identity::{HostIdentity, Identity};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::cert::{self, CertTemplate, Issuer, KeyUsage};
use crate::error::{CaError, Result};
use crate::identity;
use crate::key::{KeyPair, PublicKey};
use crate::oid::std_oid;

/// The three authorities; each has its own key so that compromising one kind of certificate
/// does not let an attacker mint the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaKind {
    /// Signs user certificates.
    User,
    /// Signs service identities (proxies, agents, the admin identity).
    Host,
    /// Signs what agents present to databases, and database server certificates.
    Db,
}

impl CaKind {
    /// Every kind.
    pub const ALL: [CaKind; 3] = [Self::User, Self::Host, Self::Db];

    /// The spelling in storage and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Host => "host",
            Self::Db => "db",
        }
    }
}

/// How long a CA certificate is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Tolerance for clocks that run behind ours: certificates start this long before "now".
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// A certificate authority with its private key.
#[derive(Debug)]
pub struct CertAuthority {
    kind: CaKind,
    cluster_name: String,
    cert_der: Vec<u8>,
    subject_der: Vec<u8>,
    key_id: Vec<u8>,
    key: KeyPair,
}

impl CertAuthority {
    /// Makes a new self-signed authority for `cluster_name`.
    pub fn generate(kind: CaKind, cluster_name: &str, now: OffsetDateTime) -> Result<Self> {
        let key = KeyPair::generate()?;
        let public = key.public_key();
        let subject = vec![
            (std_oid::ORGANIZATION, cluster_name.to_owned()),
            (
                std_oid::COMMON_NAME,
                format!("{cluster_name} {} CA", kind.as_str()),
            ),
        ];
        let subject_der = cert::encode_name(&subject);
        let key_id = cert::key_id(&public);
        let template = CertTemplate {
            subject,
            not_before: now - CLOCK_SKEW,
            not_after: now + CA_VALIDITY,
            is_ca: true,
            key_usage: KeyUsage::CertSign,
            ext_key_usage: Vec::new(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
        };
        let issuer = Issuer {
            name_der: &subject_der,
            key_id: &key_id,
            key: &key,
        };
        let cert_der = cert::sign(&template, &public, &issuer)?;
        Ok(Self {
            kind,
            cluster_name: cluster_name.to_owned(),
            cert_der,
            subject_der,
            key_id,
            key,
        })
    }

    /// Rebuilds an authority from its stored certificate and PKCS#8 key, checking they belong
    /// together.
    pub fn from_parts(kind: CaKind, cert_der: Vec<u8>, key_pkcs8: &[u8]) -> Result<Self> {
        let key = KeyPair::from_pkcs8_der(key_pkcs8)?;
        let (_, parsed) = X509Certificate::from_der(&cert_der)
            .map_err(|e| CaError::Certificate(format!("stored {} CA: {e}", kind.as_str())))?;
        if parsed.public_key().raw != key.public_key().spki_der() {
            return Err(CaError::Key(format!(
                "the stored {} CA key does not match its certificate",
                kind.as_str()
            )));
        }
        let subject_der = parsed.subject().as_raw().to_vec();
        let cluster_name = parsed
            .subject()
            .iter_organization()
            .next()
            .and_then(|o| o.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        let key_id = cert::key_id(&key.public_key());
        Ok(Self {
            kind,
            cluster_name,
            cert_der,
            subject_der,
            key_id,
            key,
        })
    }

    /// Which authority this is.
    pub fn kind(&self) -> CaKind {
        self.kind
    }

    /// The cluster it belongs to.
    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// The CA certificate (public).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA certificate as PEM.
    pub fn cert_pem(&self) -> String {
        cert::to_pem(&self.cert_der)
    }

    /// The private key's PKCS#8 DER, for storage only. Never send it anywhere.
    pub fn key_pkcs8(&self) -> &[u8] {
        self.key.pkcs8_der()
    }

    /// The pin clients check on first contact: SHA-256 of the CA's SubjectPublicKeyInfo.
    pub fn pin(&self) -> String {
        crate::fingerprint(self.key.public_key().spki_der())
    }

    fn issuer(&self) -> Issuer<'_> {
        Issuer {
            name_der: &self.subject_der,
            key_id: &self.key_id,
            key: &self.key,
        }
    }

    fn require(&self, kind: CaKind, what: &str) -> Result<()> {
        if self.kind == kind {
            Ok(())
        } else {
            Err(CaError::Request(format!(
                "{what} must be signed by the {} CA, not the {} CA",
                kind.as_str(),
                self.kind.as_str()
            )))
        }
    }

    /// Issues a user certificate carrying `identity`, valid until `identity.expires`.
    pub fn issue_user(
        &self,
        identity: &Identity,
        key: &PublicKey,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>> {
        self.require(CaKind::User, "a user certificate")?;
        let template = CertTemplate {
            subject: identity::user_subject(identity)?,
            not_before: now - CLOCK_SKEW,
            not_after: identity.expires,
            is_ca: false,
            key_usage: KeyUsage::DigitalSignature,
            ext_key_usage: vec![std_oid::KP_CLIENT_AUTH],
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
        };
        cert::sign(&template, key, &self.issuer())
    }

    /// Issues a service certificate; `dns_names`/`ips` make it usable as a TLS server
    /// certificate too (proxies, auth).
    pub fn issue_host(
        &self,
        identity: &HostIdentity,
        key: &PublicKey,
        dns_names: Vec<String>,
        ip_addresses: Vec<IpAddr>,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>> {
        self.require(CaKind::Host, "a host certificate")?;
        let template = CertTemplate {
            subject: identity::host_subject(identity)?,
            not_before: now - CLOCK_SKEW,
            not_after: identity.expires,
            is_ca: false,
            key_usage: KeyUsage::DigitalSignature,
            ext_key_usage: vec![std_oid::KP_SERVER_AUTH, std_oid::KP_CLIENT_AUTH],
            dns_names,
            ip_addresses,
        };
        cert::sign(&template, key, &self.issuer())
    }

    /// Issues the certificate an agent presents to a database: subject `CN=<db_user>` only, so
    /// that PostgreSQL's `cert` auth and MariaDB's `REQUIRE SUBJECT '/CN=…'` map it to the user.
    pub fn issue_db_client(
        &self,
        db_user: &str,
        key: &PublicKey,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>> {
        self.require(CaKind::Db, "a database client certificate")?;
        if db_user.is_empty() || db_user.len() > 256 {
            return Err(CaError::Request(
                "the database user must be 1 to 256 characters".into(),
            ));
        }
        let template = CertTemplate {
            subject: vec![(std_oid::COMMON_NAME, db_user.to_owned())],
            not_before: now - CLOCK_SKEW,
            not_after: now + ttl,
            is_ca: false,
            key_usage: KeyUsage::DigitalSignature,
            ext_key_usage: vec![std_oid::KP_CLIENT_AUTH],
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
        };
        cert::sign(&template, key, &self.issuer())
    }

    /// Issues a database server certificate for `hosts` (DNS names or IP addresses; the first
    /// becomes the CN), as `pcctl auth sign --format=db` writes.
    pub fn issue_db_server(
        &self,
        hosts: &[String],
        key: &PublicKey,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>> {
        self.require(CaKind::Db, "a database server certificate")?;
        let first = hosts
            .first()
            .ok_or_else(|| CaError::Request("name at least one host (--host)".into()))?;
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        for h in hosts {
            match h.parse::<IpAddr>() {
                Ok(ip) => ip_addresses.push(ip),
                Err(_) => dns_names.push(h.clone()),
            }
        }
        let template = CertTemplate {
            subject: vec![
                (std_oid::ORGANIZATION, self.cluster_name.clone()),
                (std_oid::COMMON_NAME, first.clone()),
            ],
            not_before: now - CLOCK_SKEW,
            not_after: now + ttl,
            is_ca: false,
            key_usage: KeyUsage::DigitalSignature,
            ext_key_usage: vec![std_oid::KP_SERVER_AUTH, std_oid::KP_CLIENT_AUTH],
            dns_names,
            ip_addresses,
        };
        cert::sign(&template, key, &self.issuer())
    }

    /// Checks that `cert_der` was signed by this authority and is valid at `now`.
    pub fn verify(&self, cert_der: &[u8], now: OffsetDateTime) -> Result<()> {
        verify_signed_by(&self.cert_der, self.kind.as_str(), cert_der, now)
    }
}

/// Checks that `cert_der` was issued by the CA certificate `ca_der` (signature and names) and is
/// valid at `now`. Services that hold only the public CA certificate (database agents) verify
/// forwarded client certificates with this.
pub fn verify_signed_by(
    ca_der: &[u8],
    ca_label: &str,
    cert_der: &[u8],
    now: OffsetDateTime,
) -> Result<()> {
    let (_, ca) = X509Certificate::from_der(ca_der)
        .map_err(|e| CaError::Certificate(format!("CA certificate: {e}")))?;
    let (rest, leaf) = X509Certificate::from_der(cert_der)
        .map_err(|e| CaError::Certificate(format!("not a DER X.509 certificate ({e})")))?;
    if !rest.is_empty() {
        return Err(CaError::Certificate(
            "trailing bytes after the certificate".into(),
        ));
    }
    if leaf.issuer().as_raw() != ca.subject().as_raw() {
        return Err(CaError::Rejected(format!(
            "issued by {}, not by this cluster's {ca_label} CA",
            leaf.issuer()
        )));
    }
    leaf.verify_signature(Some(ca.public_key())).map_err(|_| {
        CaError::Rejected(format!(
            "signature does not verify against the {ca_label} CA"
        ))
    })?;
    let ts = now.unix_timestamp();
    if ts < leaf.validity().not_before.timestamp() {
        return Err(CaError::Rejected("not valid yet; check the clocks".into()));
    }
    // Compared at full precision, not whole seconds: a certificate is expired from the
    // instant its notAfter passes — the moment agents end its sessions
    // (`disconnect_expired_cert`) — so a session is never accepted only to be ended at once.
    if now > leaf.validity().not_after.to_datetime() {
        return Err(CaError::Rejected(
            "expired; log in again to get a new certificate".into(),
        ));
    }
    Ok(())
}
