//! Client certificates the agent presents to databases (`CN=<db user>`, from the db CA), and
//! the TLS settings built around them: one key per database user, kept and re-certified before
//! expiry — never a key per connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use portcullis_api::{SignDbCertResponse, SignDbClientCertRequest};
use portcullis_ca::KeyPair;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::identity::ClientSlot;
use crate::spec::{DbSpec, DbTlsMode};

/// Lifetime asked for database client certificates.
pub const DB_CERT_TTL: Duration = Duration::from_secs(3600);
/// Re-certify when less than this is left.
pub const RENEW_BEFORE: Duration = Duration::from_secs(15 * 60);

struct Cached {
    key: Arc<KeyPair>,
    config: Arc<rustls::ClientConfig>,
    expires: OffsetDateTime,
}

/// Per (database, db user): key, certificate and TLS configuration.
pub struct DbCertCache {
    api: Arc<ClientSlot>,
    db_ca_der: Vec<u8>,
    cache: Mutex<HashMap<(String, String), Cached>>,
}

impl std::fmt::Debug for DbCertCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbCertCache").finish_non_exhaustive()
    }
}

impl DbCertCache {
    /// A cache that asks auth (through `api`) for certificates.
    pub fn new(api: Arc<ClientSlot>, db_ca_der: Vec<u8>) -> Self {
        Self {
            api,
            db_ca_der,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The TLS configuration for connecting to `spec` as `db_user`.
    pub async fn client_config(
        &self,
        spec: &DbSpec,
        db_user: &str,
    ) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut cache = self.cache.lock().await;
        let key = (spec.name.clone(), db_user.to_owned());
        let now = OffsetDateTime::now_utc();
        if let Some(c) = cache.get(&key) {
            if c.expires - now > RENEW_BEFORE {
                return Ok(Arc::clone(&c.config));
            }
        }
        let pair = match cache.get(&key) {
            Some(c) => Arc::clone(&c.key),
            None => Arc::new(KeyPair::generate().map_err(|e| e.to_string())?),
        };
        let resp: SignDbCertResponse = self
            .api
            .get()
            .post(
                "/v1/certs/db-client",
                &SignDbClientCertRequest {
                    db_user: db_user.to_owned(),
                    public_key: pair.public_key().to_pem(),
                    ttl_seconds: DB_CERT_TTL.as_secs(),
                },
            )
            .await
            .map_err(|e| format!("getting a database certificate for {db_user:?}: {e}"))?;
        let cert = portcullis_ca::cert::certs_from_pem(&resp.cert_pem)
            .map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .ok_or("empty database certificate")?;
        let config = Arc::new(build_config(spec, &self.db_ca_der, &pair, cert)?);
        cache.insert(
            key,
            Cached {
                key: pair,
                config: Arc::clone(&config),
                expires: now + DB_CERT_TTL,
            },
        );
        Ok(config)
    }
}

fn roots(spec: &DbSpec, db_ca_der: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match &spec.ca_cert_file {
        Some(path) => {
            let pem = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "database {:?}: tls.ca_cert_file {}: {e}",
                    spec.name,
                    path.display()
                )
            })?;
            for der in portcullis_ca::cert::certs_from_pem(&pem)
                .map_err(|e| format!("{}: {e}", path.display()))?
            {
                roots
                    .add(CertificateDer::from(der))
                    .map_err(|e| e.to_string())?;
            }
        }
        None => roots
            .add(CertificateDer::from(db_ca_der.to_vec()))
            .map_err(|e| e.to_string())?,
    }
    Ok(roots)
}

fn build_config(
    spec: &DbSpec,
    db_ca_der: &[u8],
    key: &KeyPair,
    cert: Vec<u8>,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?;
    let webpki =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots(spec, db_ca_der)?), provider)
            .build()
            .map_err(|e| e.to_string())?;
    let verifier: Arc<dyn ServerCertVerifier> = match spec.tls_mode {
        DbTlsMode::VerifyFull => webpki,
        DbTlsMode::VerifyCa => Arc::new(IgnoreName(webpki)),
        DbTlsMode::Insecure => Arc::new(AcceptAny(webpki)),
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec()));
    builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![CertificateDer::from(cert)], key)
        .map_err(|e| e.to_string())
}

/// The name to check in the database's certificate.
pub fn server_name(spec: &DbSpec) -> Result<ServerName<'static>, String> {
    let name = spec
        .server_name
        .clone()
        .unwrap_or_else(|| spec.host().to_owned());
    ServerName::try_from(name.clone()).map_err(|_| {
        format!(
            "database {:?}: {name:?} is not a valid server name",
            spec.name
        )
    })
}

/// `verify-ca`: the chain must verify; the name need not match.
#[derive(Debug)]
struct IgnoreName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for IgnoreName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(m, c, d)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `insecure`: anything goes (the handshake signature is still checked).
#[derive(Debug)]
struct AcceptAny(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(m, c, d)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
