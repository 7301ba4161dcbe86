//! Test harness: a real auth server in-process on `127.0.0.1:0`, served over real mutual TLS
//! exactly as the daemon wires it (`ServerCert::issue` → `server_config` → `serve`), plus
//! clients that talk to it over TLS.
//!
//! Every response body that comes back with a 2xx status is scanned for `PRIVATE KEY`: the
//! auth API never hands out private keys, and funnelling every call through [`TestClient::raw`]
//! checks that for every flow in the test file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    dead_code
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use portcullis_api::{LoginRequest, LoginResponse, TotpEnrollment};
use portcullis_auth::config::{AuthServiceConfig, AuthenticationConfig, SecondFactor};
use portcullis_auth::tls::{serve, server_config, ServerCert};
use portcullis_auth::AuthServer;
use portcullis_backend::SqliteBackend;
use portcullis_ca::identity_file::{IdentityFile, Zeroizing};
use portcullis_ca::KeyPair;
use portcullis_client::api::ApiClient;
use portcullis_core::identity::SystemRole;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

/// The cluster every harness server runs.
pub const CLUSTER: &str = "test-cluster";
/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// Successful response bodies scanned for private keys, across the test binary.
pub static SCANNED: AtomicUsize = AtomicUsize::new(0);

/// Installs the ring provider as the process default (once; later calls are no-ops).
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Authentication settings for tests: generous rate limits (every client is 127.0.0.1),
/// defaults otherwise. Tests tweak the result.
pub fn test_auth_config() -> AuthenticationConfig {
    AuthenticationConfig {
        rate_limit_per_ip: 10_000,
        rate_limit_per_user: 10_000,
        ..AuthenticationConfig::default()
    }
}

/// A running auth server.
pub struct Harness {
    pub auth: Arc<AuthServer>,
    pub addr: SocketAddr,
    /// `127.0.0.1:PORT`, what clients dial (the server certificate names 127.0.0.1).
    pub addr_str: String,
    pub admin_identity: IdentityFile,
    pub admin: TestClient,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Harness {
    /// Starts a server with [`test_auth_config`] changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut AuthenticationConfig)) -> Self {
        let mut authentication = test_auth_config();
        tweak(&mut authentication);
        Self::start_config(AuthServiceConfig {
            authentication,
            ..AuthServiceConfig::default()
        })
        .await
    }

    /// Starts a server with the test defaults (second factor on).
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server with exactly `config` (its listen address is ignored: `127.0.0.1:0`).
    pub async fn start_config(config: AuthServiceConfig) -> Self {
        init_crypto();
        let backend = SqliteBackend::open_in_memory().expect("in-memory backend");
        let auth = AuthServer::init(Arc::new(backend), CLUSTER, config, None)
            .await
            .expect("auth init");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        let cert = ServerCert::issue(&auth, names).expect("server cert");
        let tls = server_config(&auth, Arc::clone(&cert)).expect("server config");
        let (router, _spec) = portcullis_auth::api::router_and_spec(Arc::clone(&auth));
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, tls, router, rx));
        let admin_identity = admin_identity(&auth);
        let addr_str = format!("127.0.0.1:{}", addr.port());
        let admin = TestClient::with_identity(&addr_str, &admin_identity);
        Self {
            auth,
            addr,
            addr_str,
            admin_identity,
            admin,
            shutdown,
            task: Some(task),
        }
    }

    /// The host CA certificate (DER): what anonymous clients trust.
    pub fn host_ca_der(&self) -> Vec<u8> {
        self.auth.host_ca().cert_der().to_vec()
    }

    /// A client without a certificate, trusting the host CA.
    pub fn anonymous(&self) -> TestClient {
        TestClient::anonymous(&self.addr_str, &[self.host_ca_der()])
    }

    /// The project's own `ApiClient`, with the admin identity.
    pub fn admin_api_client(&self) -> ApiClient {
        ApiClient::with_identity(&self.addr_str, &self.admin_identity).expect("api client")
    }

    /// A client authenticating with the certificate of a login (`resp.cert_pem` for `key`).
    pub fn user_client(&self, resp: &LoginResponse, key: &KeyPair) -> TestClient {
        TestClient::with_identity(&self.addr_str, &self.user_identity(resp, key))
    }

    /// The identity file a login produces.
    pub fn user_identity(&self, resp: &LoginResponse, key: &KeyPair) -> IdentityFile {
        let cert_der = portcullis_ca::cert::certs_from_pem(&resp.cert_pem)
            .expect("login cert PEM")
            .into_iter()
            .next()
            .expect("one certificate");
        IdentityFile {
            key_pkcs8: Zeroizing::new(key.pkcs8_der().to_vec()),
            cert_der,
            ca_ders: vec![self.host_ca_der()],
        }
    }

    /// Creates `name` with `roles` and [`PASSWORD`] set directly; returns the TOTP enrolment
    /// (second factor `on` only).
    pub async fn create_user(&self, name: &str, roles: &[&str]) -> Option<TotpEnrollment> {
        let resp: Value = self
            .admin
            .post(
                "/v1/users",
                &json!({ "name": name, "roles": roles, "password": PASSWORD }),
            )
            .await
            .unwrap_or_else(|e| panic!("creating user {name}: {e:?}"));
        serde_json::from_value(resp["totp"].clone()).expect("totp field")
    }

    /// Logs in over an anonymous connection with a fresh key.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        otp: Option<String>,
        ttl_seconds: Option<u64>,
    ) -> Result<(LoginResponse, KeyPair), ApiErr> {
        let key = KeyPair::generate().expect("key");
        let req = LoginRequest {
            user: user.into(),
            password: password.into(),
            otp,
            public_key: key.public_key().to_pem(),
            ttl_seconds,
        };
        let resp: LoginResponse = self.anonymous().post("/v1/login", &req).await?;
        Ok((resp, key))
    }

    /// Logs in and returns a client for the user.
    pub async fn login_client(&self, user: &str, otp: Option<String>) -> TestClient {
        let (resp, key) = self
            .login(user, PASSWORD, otp, None)
            .await
            .unwrap_or_else(|e| panic!("login {user}: {e:?}"));
        self.user_client(&resp, &key)
    }

    /// Stops the server and waits for its accept loop to end.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("serve ends on shutdown")
                .expect("serve task");
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// An admin identity, as `portcullis start` writes for `pcctl`.
pub fn admin_identity(auth: &AuthServer) -> IdentityFile {
    let (key, cert_der, _) = auth
        .issue_host_identity(
            SystemRole::Admin,
            "pcctl",
            Duration::from_secs(3600),
            Vec::new(),
            Vec::new(),
        )
        .expect("admin identity");
    IdentityFile {
        key_pkcs8: Zeroizing::new(key.pkcs8_der().to_vec()),
        cert_der,
        ca_ders: vec![auth.host_ca().cert_der().to_vec()],
    }
}

/// The current TOTP code for `secret`, `offset` steps from now.
pub fn totp_code(secret: &str, offset: i64) -> String {
    let now = unix_now();
    let t = now.saturating_add_signed(offset * portcullis_auth::totp::STEP as i64);
    portcullis_auth::totp::current_code(secret, t).expect("code")
}

/// A six-digit code that is not valid for `secret` at any step the server accepts now.
pub fn wrong_code(secret: &str) -> String {
    let valid: Vec<String> = (-2..=2).map(|o| totp_code(secret, o)).collect();
    (0..10)
        .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
        .find(|c| !valid.contains(c))
        .expect("some code is wrong")
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// An error answer, decoded from `{ "error": { "code", "message" } }`.
#[derive(Debug, Clone)]
pub struct ApiErr {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub retry_after: Option<String>,
}

impl ApiErr {
    /// Asserts status and code, and that the message contains every one of `needles`.
    #[track_caller]
    pub fn assert(&self, status: u16, code: &str, needles: &[&str]) {
        assert_eq!(
            (self.status, self.code.as_str()),
            (status, code),
            "unexpected error: {self:?}"
        );
        assert!(
            self.message.len() > 10,
            "message should help the caller: {self:?}"
        );
        for n in needles {
            assert!(
                self.message.contains(n),
                "message should mention {n:?}: {self:?}"
            );
        }
    }
}

/// Asserts `r` is an error with `status`, `code` and a message containing `needles`.
#[track_caller]
pub fn expect_err<T: std::fmt::Debug>(
    r: Result<T, ApiErr>,
    status: u16,
    code: &str,
    needles: &[&str],
) -> ApiErr {
    match r {
        Ok(v) => panic!("expected {status} {code}, got success: {v:?}"),
        Err(e) => {
            e.assert(status, code, needles);
            e
        }
    }
}

/// A raw answer.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// The JSON error body, asserting it has the documented shape.
    #[track_caller]
    pub fn api_err(&self) -> ApiErr {
        let v: Value = serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "error body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        });
        ApiErr {
            status: self.status.as_u16(),
            code: v["error"]["code"]
                .as_str()
                .unwrap_or_else(|| panic!("no error.code in {v}"))
                .to_owned(),
            message: v["error"]["message"]
                .as_str()
                .unwrap_or_else(|| panic!("no error.message in {v}"))
                .to_owned(),
            retry_after: self
                .headers
                .get(hyper::header::RETRY_AFTER)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned),
        }
    }
}

/// A TLS client of the auth API: one fresh connection per request, so it can be used from
/// many tasks at once.
#[derive(Clone)]
pub struct TestClient {
    addr: String,
    tls: Arc<rustls::ClientConfig>,
}

fn roots(ca_ders: &[Vec<u8>]) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for der in ca_ders {
        roots.add(CertificateDer::from(der.clone())).expect("CA");
    }
    roots
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TestClient {
    /// Presents `identity`'s certificate; trusts its CAs.
    pub fn with_identity(addr: &str, identity: &IdentityFile) -> Self {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_pkcs8.to_vec()));
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots(&identity.ca_ders))
            .with_client_auth_cert(vec![CertificateDer::from(identity.cert_der.clone())], key)
            .expect("client cert");
        Self {
            addr: addr.into(),
            tls: Arc::new(config),
        }
    }

    /// No client certificate; trusts `ca_ders`.
    pub fn anonymous(addr: &str, ca_ders: &[Vec<u8>]) -> Self {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots(ca_ders))
            .with_no_client_auth();
        Self {
            addr: addr.into(),
            tls: Arc::new(config),
        }
    }

    /// Sends one request on a new connection. `Err` is a transport failure (TLS refused,
    /// connection closed). Successful bodies are checked for private keys.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Resp, String> {
        let work = async {
            let tcp = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
            let tls = TlsConnector::from(Arc::clone(&self.tls))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| format!("HTTP handshake: {e}"))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let mut builder = Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, &self.addr);
            for (k, v) in headers {
                builder = builder.header(*k, *v);
            }
            let req = builder
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| e.to_string())?;
            let resp = send
                .send_request(req)
                .await
                .map_err(|e| format!("request: {e}"))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            Ok::<_, String>(Resp {
                status,
                headers,
                body,
            })
        };
        let resp = tokio::time::timeout(Duration::from_secs(30), work)
            .await
            .map_err(|_| "timed out".to_string())??;
        if resp.status.is_success() {
            SCANNED.fetch_add(1, Ordering::Relaxed);
            assert!(
                !contains(&resp.body, b"PRIVATE KEY"),
                "a successful response to {path} contains a private key"
            );
        }
        Ok(resp)
    }

    /// Sends JSON (or nothing) and decodes the JSON answer; error answers become [`ApiErr`].
    /// Panics on transport failures.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ApiErr> {
        let (headers, bytes): (&[(&str, &str)], Vec<u8>) = match body {
            Some(b) => (
                &[("content-type", "application/json")],
                serde_json::to_vec(b).expect("encode"),
            ),
            None => (&[], Vec::new()),
        };
        let resp = self
            .raw(method.clone(), path, headers, bytes)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        if !resp.status.is_success() {
            return Err(resp.api_err());
        }
        let body = if resp.body.is_empty() {
            Bytes::from_static(b"null")
        } else {
            resp.body
        };
        Ok(serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: answer does not decode ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        }))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiErr> {
        self.call::<(), T>(Method::GET, path, None).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiErr> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiErr> {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<(), ApiErr> {
        self.call::<(), ()>(Method::DELETE, path, None).await
    }
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A role resource as JSON.
pub fn role_json(name: &str, spec: Value) -> Value {
    json!({ "kind": "role", "version": "v1", "metadata": { "name": name }, "spec": spec })
}

/// Second factor spelled for the tweak closures.
pub fn second_factor(sf: SecondFactor) -> impl FnOnce(&mut AuthenticationConfig) {
    move |a| a.second_factor = sf
}
