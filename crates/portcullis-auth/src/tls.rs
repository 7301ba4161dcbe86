//! The auth API's mutual-TLS listener: TLS 1.3 only, client certificates from the user or host
//! CA (optional, so login/join/invite endpoints work before a caller has one), bounded
//! handshakes and connection counts.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::api::caller::Peer;
use crate::error::{AuthError, Result};
use crate::server::AuthServer;

/// Most connections served at once; more wait in the accept queue.
pub const MAX_CONNECTIONS: usize = 4096;
/// Time allowed for a TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to send a request's headers (and to stay idle between requests).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long auth's own TLS certificate lasts; [`ServerCert::renew`] replaces it well before.
pub const SERVER_CERT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Auth's TLS server certificate, replaceable while serving (renewal needs no restart).
#[derive(Debug)]
pub struct ServerCert {
    role: portcullis_core::identity::SystemRole,
    node_name: String,
    names: Vec<String>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCert {
    /// Issues auth's certificate from the host CA for `names` (DNS names or IP addresses).
    pub fn issue(server: &AuthServer, names: Vec<String>) -> Result<Arc<Self>> {
        Self::issue_for(
            server,
            portcullis_core::identity::SystemRole::Auth,
            "auth",
            names,
        )
    }

    /// Issues a certificate for a service with `role` (the proxy uses this too).
    pub fn issue_for(
        server: &AuthServer,
        role: portcullis_core::identity::SystemRole,
        node_name: &str,
        names: Vec<String>,
    ) -> Result<Arc<Self>> {
        let key = Self::make(server, role, node_name, &names)?;
        Ok(Arc::new(Self {
            role,
            node_name: node_name.to_owned(),
            names,
            current: RwLock::new(key),
        }))
    }

    /// Replaces the certificate with a fresh one.
    pub fn renew(&self, server: &AuthServer) -> Result<()> {
        let key = Self::make(server, self.role, &self.node_name, &self.names)?;
        match self.current.write() {
            Ok(mut g) => *g = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
        Ok(())
    }

    fn make(
        server: &AuthServer,
        role: portcullis_core::identity::SystemRole,
        node_name: &str,
        names: &[String],
    ) -> Result<Arc<CertifiedKey>> {
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        for n in names {
            match n.parse::<std::net::IpAddr>() {
                Ok(ip) => ips.push(ip),
                Err(_) => dns.push(n.clone()),
            }
        }
        let (key, cert, _) =
            server.issue_host_identity(role, node_name, SERVER_CERT_TTL, dns, ips)?;
        let provider = rustls::crypto::ring::default_provider();
        let signing = provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                key.pkcs8_der().to_vec(),
            )))
            .map_err(|e| AuthError::Internal(format!("TLS key: {e}")))?;
        Ok(Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(cert)],
            signing,
        )))
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match self.current.read() {
            Ok(g) => Some(Arc::clone(&g)),
            Err(poisoned) => Some(Arc::clone(&poisoned.into_inner())),
        }
    }
}

/// The rustls server configuration for auth: TLS 1.3, optional client certificates from the
/// user or host CA, `cert` as the server certificate.
pub fn server_config(
    server: &AuthServer,
    cert: Arc<ServerCert>,
) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in [server.user_ca(), server.host_ca()] {
        roots
            .add(CertificateDer::from(ca.cert_der().to_vec()))
            .map_err(|e| {
                AuthError::Internal(format!("trusting the {} CA: {e}", ca.kind().as_str()))
            })?;
    }
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .allow_unauthenticated()
            .build()
            .map_err(|e| AuthError::Internal(format!("client verifier: {e}")))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| AuthError::Internal(format!("TLS versions: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    Ok(Arc::new(config))
}

/// Serves `router` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        };
        let (tcp, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let _permit = permit;
            serve_connection(acceptor, tcp, addr, router).await;
        });
    }
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    addr: SocketAddr,
    router: Router,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%addr, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%addr, "TLS handshake timed out");
            return;
        }
    };
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| Arc::new(c.as_ref().to_vec()));
    serve_http(TokioIo::new(tls), Peer { addr, cert }, router).await;
}

/// Serves HTTP/1.1 requests from one connection with `router`, marking each request with
/// `peer` (who is calling, as the TLS layer established). The proxy uses this for its
/// HTTPS visitors too.
pub async fn serve_http<IO>(io: IO, peer: Peer, router: Router)
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let addr = peer.addr;
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(peer.clone());
        let router = router.clone();
        async move { tower::ServiceExt::oneshot(router, req).await }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024)
        .serve_connection(io, service)
        .await;
    if let Err(e) = result {
        tracing::debug!(%addr, error = %e, "connection ended with an error");
    }
}
