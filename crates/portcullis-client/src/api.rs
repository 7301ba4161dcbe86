//! A small client for the auth API: one mutual-TLS connection per client, JSON in and out,
//! errors carrying the server's `{ "error": { "code", "message" } }`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use portcullis_api::ErrorBody;
use portcullis_ca::identity_file::IdentityFile;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;

/// Time allowed to connect and finish the TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for one request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest response body read.
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Why a call failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Machine-readable code.
        code: String,
        /// What the server said.
        message: String,
    },
    /// The server could not be reached.
    #[error("cannot reach the auth service at {addr}: {detail}")]
    Connect {
        /// Address tried.
        addr: String,
        /// Cause.
        detail: String,
    },
    /// Local set-up (identity file, TLS settings) is wrong.
    #[error("{0}")]
    Setup(String),
    /// The exchange broke off or the answer was not what the API promises.
    #[error("talking to the auth service: {0}")]
    Protocol(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, ClientError>;

/// A connection to the auth API.
pub struct ApiClient {
    addr: String,
    tls: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    conn: Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_ders: &[Vec<u8>]) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for der in ca_ders {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| ClientError::Setup(format!("a CA certificate is unusable: {e}")))?;
    }
    Ok(roots)
}

fn server_name_of(addr: &str) -> Result<ServerName<'static>> {
    let host = match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => addr,
    };
    ServerName::try_from(host.to_owned())
        .map_err(|_| ClientError::Setup(format!("{addr:?} is not a host:port address")))
}

impl ApiClient {
    /// A client that authenticates with `identity` and trusts its CAs.
    pub fn with_identity(addr: &str, identity: &IdentityFile) -> Result<Self> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_pkcs8.to_vec()));
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| ClientError::Setup(e.to_string()))?
            .with_root_certificates(roots(&identity.ca_ders)?)
            .with_client_auth_cert(vec![CertificateDer::from(identity.cert_der.clone())], key)
            .map_err(|e| {
                ClientError::Setup(format!(
                    "the identity's key or certificate is unusable: {e}"
                ))
            })?;
        Self::new(addr, config)
    }

    /// A client without a certificate (login, invites, join), trusting `ca_ders`.
    pub fn anonymous(addr: &str, ca_ders: &[Vec<u8>]) -> Result<Self> {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| ClientError::Setup(e.to_string()))?
            .with_root_certificates(roots(ca_ders)?)
            .with_no_client_auth();
        Self::new(addr, config)
    }

    /// A client over a TLS configuration the caller built, for the rare cases the two
    /// constructors above do not cover (`pc login`'s first contact with a proxy fetches the CA
    /// certificates before it can verify anything). ALPN is set to `http/1.1` here as well.
    pub fn with_tls_config(addr: &str, config: rustls::ClientConfig) -> Result<Self> {
        Self::new(addr, config)
    }

    fn new(addr: &str, mut config: rustls::ClientConfig) -> Result<Self> {
        // The proxy multiplexes protocols on one port and routes HTTPS by ALPN; auth ignores it.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            addr: addr.to_owned(),
            server_name: server_name_of(addr)?,
            tls: Arc::new(config),
            conn: Mutex::new(None),
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let connect_err = |detail: String| ClientError::Connect {
            addr: self.addr.clone(),
            detail,
        };
        let work = async {
            let tcp = TcpStream::connect(&self.addr).await.map_err(|e| {
                connect_err(format!(
                    "{e}; is the auth service running and the address right?"
                ))
            })?;
            let _ = tcp.set_nodelay(true);
            let tls = TlsConnector::from(Arc::clone(&self.tls))
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|e| connect_err(format!("TLS: {e}")))?;
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| connect_err(format!("HTTP: {e}")))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(send)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, work)
            .await
            .map_err(|_| connect_err("timed out".into()))?
    }

    /// Sends a request and decodes the JSON answer (`()` for 204).
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let body = match body {
            Some(b) => Some((
                "application/json",
                Bytes::from(serde_json::to_vec(b).map_err(|e| ClientError::Setup(e.to_string()))?),
            )),
            None => None,
        };
        self.call_raw(method, path, body).await
    }

    /// POST with a body that is not JSON (`content_type` says what it is), e.g. the JSON
    /// lines of audit events an agent sends as it spooled them.
    pub async fn post_raw<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<T> {
        self.call_raw(Method::POST, path, Some((content_type, body)))
            .await
    }

    /// Sends a request with an optional body of the given content type and decodes the
    /// JSON answer.
    async fn call_raw<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<T> {
        let mut guard = self.conn.lock().await;
        let mut sender = match guard.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.addr);
        let payload = match body {
            Some((content_type, payload)) => {
                builder = builder.header(hyper::header::CONTENT_TYPE, content_type);
                payload
            }
            None => Bytes::new(),
        };
        let req = builder
            .body(Full::new(payload))
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let exchange = async {
            sender
                .ready()
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            let status = resp.status();
            let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| ClientError::Protocol(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, ClientError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::Protocol("the request timed out".into()))??;
        *guard = Some(sender);
        drop(guard);
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(e) => ClientError::Api {
                    status: status.as_u16(),
                    code: e.error.code,
                    message: e.error.message,
                },
                Err(_) => ClientError::Api {
                    status: status.as_u16(),
                    code: "unknown".into(),
                    message: format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)),
                },
            });
        }
        let bytes = if status == StatusCode::NO_CONTENT || bytes.is_empty() {
            Bytes::from_static(b"null")
        } else {
            bytes
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("unexpected answer: {e}")))
    }

    /// GETs a streamed answer (e.g. JSON lines) on a connection of its own, without the
    /// request timeout, handing each chunk to `each` as it arrives. Returns when the server
    /// ends the stream or `each` fails.
    pub async fn get_stream(
        &self,
        path: &str,
        mut each: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<()> {
        let mut sender = self.connect().await?;
        let req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(hyper::header::HOST, &self.addr)
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, async {
            sender
                .ready()
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            sender
                .send_request(req)
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))
        })
        .await
        .map_err(|_| ClientError::Protocol("the request timed out".into()))??;
        let status = resp.status();
        if !status.is_success() {
            let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| ClientError::Protocol(format!("reading the answer: {e}")))?
                .to_bytes();
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(e) => ClientError::Api {
                    status: status.as_u16(),
                    code: e.error.code,
                    message: e.error.message,
                },
                Err(_) => ClientError::Api {
                    status: status.as_u16(),
                    code: "unknown".into(),
                    message: format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)),
                },
            });
        }
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Protocol(format!("reading: {e}")))?;
            if let Some(data) = frame.data_ref() {
                each(data).map_err(|e| ClientError::Protocol(format!("writing: {e}")))?;
            }
        }
        Ok(())
    }

    /// GET.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call::<(), T>(Method::GET, path, None).await
    }

    /// POST with a JSON body.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// PUT with a JSON body.
    pub async fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Result<()> {
        self.call::<(), ()>(Method::DELETE, path, None).await
    }
}

/// Percent-encodes one path segment (user, role and token names are restricted, but be safe).
pub fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
