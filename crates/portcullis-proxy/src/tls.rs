//! TLS settings for each kind of visitor, and the client-certificate checks after the
//! handshake.

use std::sync::Arc;

use portcullis_auth::tls::ServerCert;
use portcullis_auth::AuthServer;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, UnixTime};

/// ALPN for PostgreSQL 17+ direct TLS.
pub const POSTGRES_ALPN: &[u8] = b"postgresql";

/// The proxy's TLS configurations.
pub struct ProxyTls {
    /// Database clients: certificates from the user CA; an expired one still completes the
    /// handshake so the client gets a PostgreSQL error saying so.
    pub db: Arc<rustls::ServerConfig>,
    /// The same, answering ALPN `postgresql` (direct TLS).
    pub db_direct: Arc<rustls::ServerConfig>,
    /// The same, answering ALPN `portcullis-mysql` (`pc proxy db` for MySQL).
    pub db_mysql: Arc<rustls::ServerConfig>,
    /// HTTPS: optional certificates from the user or host CA.
    pub web: Arc<rustls::ServerConfig>,
    /// Agents: a certificate from the host CA is required.
    pub tunnel: Arc<rustls::ServerConfig>,
}

/// Accepts client certificates that chain to the trusted roots even when expired or not yet
/// valid, so the session code can tell the user precisely; it re-verifies signature and
/// validity itself before trusting anything (see [`crate::postgres`]). Everything else
/// (unknown CA, bad signature, wrong usage) fails the handshake.
#[derive(Debug)]
struct TolerateValidity(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for TolerateValidity {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.0.verify_client_cert(end_entity, intermediates, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. },
            )) => Ok(ClientCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn roots(cas: &[&portcullis_ca::CertAuthority]) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots
            .add(CertificateDer::from(ca.cert_der().to_vec()))
            .map_err(|e| format!("trusting the {} CA: {e}", ca.kind().as_str()))?;
    }
    Ok(Arc::new(roots))
}

fn config(
    verifier: Arc<dyn ClientCertVerifier>,
    cert: &Arc<ServerCert>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::clone(cert) as Arc<dyn rustls::server::ResolvesServerCert>);
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    cfg.max_early_data_size = 0;
    Ok(Arc::new(cfg))
}

impl ProxyTls {
    /// Builds every configuration from the cluster's CAs and the proxy's certificate.
    pub fn new(auth: &AuthServer, cert: Arc<ServerCert>) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let user_roots = roots(&[auth.user_ca()])?;
        let web_roots = roots(&[auth.user_ca(), auth.host_ca()])?;
        let host_roots = roots(&[auth.host_ca()])?;
        let user_verifier =
            WebPkiClientVerifier::builder_with_provider(user_roots, Arc::clone(&provider))
                .allow_unauthenticated()
                .build()
                .map_err(|e| e.to_string())?;
        let db: Arc<dyn ClientCertVerifier> = Arc::new(TolerateValidity(user_verifier));
        let web_verifier =
            WebPkiClientVerifier::builder_with_provider(web_roots, Arc::clone(&provider))
                .allow_unauthenticated()
                .build()
                .map_err(|e| e.to_string())?;
        let web: Arc<dyn ClientCertVerifier> = Arc::new(TolerateValidity(web_verifier));
        let tunnel = WebPkiClientVerifier::builder_with_provider(host_roots, provider)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            db: config(Arc::clone(&db), &cert, &[])?,
            db_direct: config(Arc::clone(&db), &cert, &[POSTGRES_ALPN])?,
            db_mysql: config(db, &cert, &[crate::mysql::MYSQL_ALPN])?,
            web: config(web, &cert, &[b"http/1.1"])?,
            tunnel: config(tunnel, &cert, &[portcullis_tunnel::TUNNEL_ALPN])?,
        })
    }
}
