//! The proxy: the cluster's only public endpoint.
//!
//! One TLS port tells its visitors apart by their first bytes ([`listener`]): PostgreSQL
//! clients (SSLRequest, or PostgreSQL 17 direct TLS with ALPN `postgresql`), agents dialling
//! in with the tunnel ALPN ([`tunnel_server`]), Redis clients (TLS with a certificate routed
//! to a Redis database, [`redis`]), and HTTPS for the API ([`web`]). Database
//! sessions are routed by the certificate's route to an agent serving that database
//! ([`registry`], [`postgres`]); the proxy never parses what flows after the header.
#![forbid(unsafe_code)]

pub mod listener;
pub mod mysql;
pub mod postgres;
pub mod redis;
pub mod registry;
pub mod tls;
pub mod tunnel_server;
pub mod web;

use std::sync::Arc;

use portcullis_auth::tls::ServerCert;
use portcullis_auth::AuthServer;

pub use registry::Registry;

/// Everything a proxy needs at run time, shared by all connections.
pub struct Proxy {
    /// The auth service (in this process).
    pub auth: Arc<AuthServer>,
    /// Agents connected to this proxy.
    pub registry: Registry,
    /// TLS settings per kind of visitor.
    pub tls: tls::ProxyTls,
    /// The auth API, served to HTTPS visitors.
    pub api: axum_router::Router,
    /// A database agent in this process, if any.
    pub local: std::sync::OnceLock<Arc<dyn LocalAgent>>,
    /// `proxy_service.mysql_server_version`, when set.
    pub mysql_server_version: std::sync::OnceLock<String>,
}

/// A client's stream, whatever it is underneath (TLS over TCP, with already-read bytes
/// replayed first).
pub trait ClientIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> ClientIo for T {}

/// A boxed future, for [`LocalAgent`].
pub type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A database agent running in the same process as the proxy (the single-node default).
///
/// Sessions are handed to it as the client's own stream — no tunnel, no second TLS, no extra
/// relay — with the same data a tunnel header carries (verified certificate, client address,
/// session id); the agent runs exactly the checks it runs for tunnelled sessions.
pub trait LocalAgent: Send + Sync + 'static {
    /// Whether it serves `database`.
    fn serves(&self, database: &str) -> bool;
    /// Runs a session on the client's stream.
    fn session(
        &self,
        stream: Box<dyn ClientIo>,
        cert: Vec<u8>,
        client_addr: String,
        sid: String,
    ) -> BoxFuture;
    /// Delivers a cancel request if one of its sessions holds the key.
    fn cancel(&self, process_id: i32, secret_key: bytes::Bytes) -> BoxFuture;
    /// What it knows about the databases it serves (for the MySQL greeting's version).
    fn databases(&self) -> Vec<portcullis_api::DatabaseInfo> {
        Vec::new()
    }
}

/// Re-export so callers need not depend on axum.
pub mod axum_router {
    /// The router type of the auth API.
    pub type Router = portcullis_auth::api::Router;
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy in front of `auth`, presenting `cert` (from the host CA).
    pub fn new(auth: Arc<AuthServer>, cert: Arc<ServerCert>) -> Result<Arc<Self>, String> {
        let tls = tls::ProxyTls::new(&auth, cert)?;
        let (api, _) = portcullis_auth::api::router_and_spec(Arc::clone(&auth));
        Ok(Arc::new(Self {
            auth,
            registry: Registry::default(),
            tls,
            api,
            local: std::sync::OnceLock::new(),
            mysql_server_version: std::sync::OnceLock::new(),
        }))
    }

    /// The version the MySQL port greets clients with: the configured one, else that of the
    /// MySQL databases served (the first by name; the greeting comes before the client says
    /// which database it wants), else [`mysql::DEFAULT_SERVER_VERSION`].
    pub fn mysql_version(&self) -> String {
        if let Some(v) = self.mysql_server_version.get().filter(|v| !v.is_empty()) {
            return v.clone();
        }
        let mut known: Vec<(String, String)> = self
            .local
            .get()
            .map(|l| l.databases())
            .unwrap_or_default()
            .into_iter()
            .chain(self.registry.all().into_iter().flat_map(|a| a.databases))
            .filter(|d| d.protocol == "mysql")
            .filter_map(|d| d.version.map(|v| (d.name, v)))
            .collect();
        known.sort();
        known
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .unwrap_or_else(|| mysql::DEFAULT_SERVER_VERSION.to_owned())
    }
}
