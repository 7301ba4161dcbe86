//! The agent's host identity: obtained with a join token, stored in the data directory,
//! renewed before it expires — and the API clients built from it, which renewal swaps.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use portcullis_api::{CaInfo, HostRenewRequest, JoinRequest, JoinResponse};
use portcullis_ca::identity_file::{IdentityFile, Zeroizing};
use portcullis_ca::KeyPair;
use portcullis_client::api::ApiClient;
use portcullis_core::identity::HostIdentity;
use time::OffsetDateTime;

/// A swappable API client: renewal replaces the client inside, users call [`ClientSlot::get`]
/// for each request.
#[derive(Debug)]
pub struct ClientSlot {
    client: RwLock<Arc<ApiClient>>,
}

impl ClientSlot {
    /// The current client.
    pub fn get(&self) -> Arc<ApiClient> {
        match self.client.read() {
            Ok(c) => Arc::clone(&c),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    fn set(&self, c: ApiClient) {
        match self.client.write() {
            Ok(mut g) => *g = Arc::new(c),
            Err(p) => *p.into_inner() = Arc::new(c),
        }
    }
}

/// Who this agent is.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    /// The identity in the certificate.
    pub host: HostIdentity,
    file: Arc<RwLock<IdentityFile>>,
    /// The cluster's db CA certificate (trusted for database server certificates).
    pub db_ca_der: Vec<u8>,
    path: Option<PathBuf>,
    slots: Arc<Mutex<Vec<SlotRef>>>,
}

/// A registered client slot: the address it talks to and a weak reference to it.
type SlotRef = (String, Weak<ClientSlot>);

fn ca_der(cas: &[CaInfo], kind: &str) -> Result<Vec<u8>, String> {
    let ca = cas
        .iter()
        .find(|c| c.kind == kind)
        .ok_or_else(|| format!("the cluster did not send its {kind} CA"))?;
    portcullis_ca::cert::certs_from_pem(&ca.cert_pem)
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or_else(|| format!("the {kind} CA certificate is empty"))
}

impl AgentIdentity {
    /// An identity from parts (used in one process with auth, and after joining).
    pub fn new(
        key: &KeyPair,
        cert_der: Vec<u8>,
        host_ca_der: Vec<u8>,
        db_ca_der: Vec<u8>,
    ) -> Result<Self, String> {
        let host = portcullis_ca::decode_host_identity(&cert_der).map_err(|e| e.to_string())?;
        Ok(Self {
            host,
            file: Arc::new(RwLock::new(IdentityFile {
                key_pkcs8: Zeroizing::new(key.pkcs8_der().to_vec()),
                cert_der,
                ca_ders: vec![host_ca_der],
            })),
            db_ca_der,
            path: None,
            slots: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// The identity file (key, certificate, host CA).
    pub fn file(&self) -> IdentityFile {
        match self.file.read() {
            Ok(f) => f.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// An API client to the proxy at `addr`, kept current across renewals.
    pub fn client(&self, addr: &str) -> Result<Arc<ClientSlot>, String> {
        let c = ApiClient::with_identity(addr, &self.file()).map_err(|e| e.to_string())?;
        let slot = Arc::new(ClientSlot {
            client: RwLock::new(Arc::new(c)),
        });
        if let Ok(mut slots) = self.slots.lock() {
            slots.retain(|(_, w)| w.strong_count() > 0);
            slots.push((addr.to_owned(), Arc::downgrade(&slot)));
        }
        Ok(slot)
    }

    /// Loads the identity stored in `dir` (from an earlier join), if any.
    pub fn load(dir: &Path) -> Result<Option<Self>, String> {
        let path = dir.join("identity.pem");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        let file = IdentityFile::from_pem(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let db_ca_pem = std::fs::read_to_string(dir.join("db-ca.pem"))
            .map_err(|e| format!("reading {}: {e}", dir.join("db-ca.pem").display()))?;
        let db_ca_der = portcullis_ca::cert::certs_from_pem(&db_ca_pem)
            .map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .ok_or("db-ca.pem is empty")?;
        let host =
            portcullis_ca::decode_host_identity(&file.cert_der).map_err(|e| e.to_string())?;
        Ok(Some(Self {
            host,
            file: Arc::new(RwLock::new(file)),
            db_ca_der,
            path: Some(path),
            slots: Arc::new(Mutex::new(Vec::new())),
        }))
    }

    /// Joins the cluster through the proxy at `proxy_addr` with a join token, checking the
    /// cluster's host CA against `ca_pin` first; stores the identity in `dir`.
    pub async fn join(
        proxy_addr: &str,
        token: &str,
        ca_pin: &str,
        node_name: &str,
        dir: &Path,
    ) -> Result<Self, String> {
        let host_ca = fetch_pinned_host_ca(proxy_addr, ca_pin).await?;
        let api = ApiClient::anonymous(proxy_addr, std::slice::from_ref(&host_ca))
            .map_err(|e| e.to_string())?;
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let resp: JoinResponse = api
            .post(
                "/v1/join",
                &JoinRequest {
                    token: token.trim().to_owned(),
                    role: "db".into(),
                    node_name: node_name.to_owned(),
                    public_key: key.public_key().to_pem(),
                },
            )
            .await
            .map_err(|e| format!("joining the cluster: {e}"))?;
        let cert = first_cert(&resp.cert_pem)?;
        let db_ca = ca_der(&resp.cas, "db")?;
        let mut me = Self::new(&key, cert, host_ca, db_ca)?;
        me.path = Some(dir.join("identity.pem"));
        me.save()?;
        tracing::info!(host_id = %me.host.host_id, "joined the cluster");
        Ok(me)
    }

    fn save(&self) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let dir = path.parent().ok_or("identity path has no directory")?;
        portcullis_client::files::create_private_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let text = self
            .file()
            .to_pem("Portcullis database agent identity. Keep it private.");
        portcullis_client::files::write_private(path, text.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        portcullis_client::files::write_public(
            &dir.join("db-ca.pem"),
            portcullis_ca::cert::to_pem(&self.db_ca_der).as_bytes(),
        )
        .map_err(|e| format!("writing db-ca.pem: {e}"))?;
        Ok(())
    }

    /// When the host certificate expires.
    pub fn expires(&self) -> OffsetDateTime {
        portcullis_ca::decode_host_identity(&self.file().cert_der)
            .map(|h| h.expires)
            .unwrap_or(self.host.expires)
    }

    /// Renews the host certificate (new key) through `client`; swaps every client.
    pub async fn renew(&self, client: &ClientSlot) -> Result<(), String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let resp: JoinResponse = client
            .get()
            .post(
                "/v1/certs/host-renew",
                &HostRenewRequest {
                    public_key: key.public_key().to_pem(),
                },
            )
            .await
            .map_err(|e| format!("renewing the host certificate: {e}"))?;
        let cert = first_cert(&resp.cert_pem)?;
        let new_file = {
            let old = self.file();
            IdentityFile {
                key_pkcs8: Zeroizing::new(key.pkcs8_der().to_vec()),
                cert_der: cert,
                ca_ders: old.ca_ders,
            }
        };
        match self.file.write() {
            Ok(mut f) => *f = new_file.clone(),
            Err(p) => *p.into_inner() = new_file.clone(),
        }
        self.save()?;
        if let Ok(slots) = self.slots.lock() {
            for (addr, w) in slots.iter() {
                if let Some(slot) = w.upgrade() {
                    if let Ok(c) = ApiClient::with_identity(addr, &new_file) {
                        slot.set(c);
                    }
                }
            }
        }
        tracing::info!(expires = %self.expires(), "host certificate renewed");
        Ok(())
    }

    /// Renews the certificate whenever a third of its lifetime is left, until the process ends.
    pub async fn renew_forever(self, client: Arc<ClientSlot>) {
        loop {
            let left = self.expires() - OffsetDateTime::now_utc();
            let wait = Duration::try_from(left / 3 * 2)
                .unwrap_or(Duration::from_secs(60))
                .max(Duration::from_secs(30));
            tokio::time::sleep(wait).await;
            let mut backoff = Duration::from_secs(1);
            while let Err(e) = self.renew(&client).await {
                tracing::warn!(error = %e, "host certificate renewal failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

fn first_cert(pem: &str) -> Result<Vec<u8>, String> {
    portcullis_ca::cert::certs_from_pem(pem)
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or_else(|| "the answer held no certificate".into())
}

/// Fetches the cluster's CA certificates without verifying the proxy (we do not trust anything
/// yet), and returns the host CA only if its pin matches `ca_pin`.
async fn fetch_pinned_host_ca(proxy_addr: &str, ca_pin: &str) -> Result<Vec<u8>, String> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .map_err(|e| e.to_string())?
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AcceptAnyServer))
    .with_no_client_auth();
    let api = ApiClient::with_tls_config(proxy_addr, config).map_err(|e| e.to_string())?;
    let cas: Vec<CaInfo> = api
        .get("/v1/cas")
        .await
        .map_err(|e| format!("fetching the cluster's CAs: {e}"))?;
    let host = cas
        .iter()
        .find(|c| c.kind == "host")
        .ok_or("the proxy did not send a host CA")?;
    let der = ca_der(&cas, "host")?;
    let key = {
        use x509_parser_lite::spki_of;
        spki_of(&der)?
    };
    let actual = portcullis_ca::fingerprint(&key);
    if actual != ca_pin.trim() || host.pin != actual {
        return Err(format!(
            "the cluster's host CA pin is {actual}, not the --ca-pin {ca_pin}; check the pin (`pcctl status`) — or you may be talking to an impostor"
        ));
    }
    Ok(der)
}

/// Reads the SubjectPublicKeyInfo of a certificate (what pins are computed over).
mod x509_parser_lite {
    /// The raw SPKI of `cert_der`.
    pub fn spki_of(cert_der: &[u8]) -> Result<Vec<u8>, String> {
        portcullis_ca::cert::spki_of(cert_der).map_err(|e| e.to_string())
    }
}

/// Accepts any server certificate: used only to fetch the public CA certificates, which are
/// then checked against the operator's pin before anything is trusted.
#[derive(Debug)]
struct AcceptAnyServer;

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
