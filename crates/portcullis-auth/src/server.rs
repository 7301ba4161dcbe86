//! The auth service's state and its first-start bootstrap.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use portcullis_api::{CaInfo, ClusterStatus, PingResponse};
use portcullis_backend::Backend;
use portcullis_ca::{CaKind, CertAuthority, KeyPair, SshCaKey};
use portcullis_core::identity::{HostIdentity, SystemRole};
use portcullis_core::role::presets;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::AuthServiceConfig;
use crate::error::{AuthError, Result};
use crate::ratelimit::RateLimiter;
use crate::store::{keys, CaRecord, Store};

/// The running auth service: CAs loaded, state reachable. Shared by every API request.
pub struct AuthServer {
    pub(crate) store: Store,
    pub(crate) cluster_name: String,
    pub(crate) config: AuthServiceConfig,
    pub(crate) user_ca: CertAuthority,
    pub(crate) host_ca: CertAuthority,
    pub(crate) db_ca: CertAuthority,
    pub(crate) ssh_user_ca: SshCaKey,
    pub(crate) ip_limiter: RateLimiter<IpAddr>,
    pub(crate) user_limiter: RateLimiter<String>,
    pub(crate) proxy_addr: Option<String>,
    pub(crate) audit: std::sync::OnceLock<Arc<crate::audit::AuditLog>>,
    /// The proxy's MySQL port, when a proxy in this process listens on one (told to `pc`).
    pub(crate) mysql_port: std::sync::OnceLock<u16>,
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServer")
            .field("cluster_name", &self.cluster_name)
            .finish_non_exhaustive()
    }
}

/// The server's version, reported by ping and status.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

impl AuthServer {
    /// Opens the cluster in `backend`: on first start fixes its name, creates the three CAs and
    /// the preset roles; afterwards reuses them. `proxy_addr` is what `pcctl tokens add` tells
    /// joining services to dial, when known.
    pub async fn init(
        backend: Arc<dyn Backend>,
        cluster_name: &str,
        config: AuthServiceConfig,
        proxy_addr: Option<String>,
    ) -> Result<Arc<Self>> {
        portcullis_core::names::validate_name("cluster", cluster_name)
            .map_err(|e| AuthError::BadRequest(e.to_string()))?;
        let store = Store::new(backend);
        let stored_name = match store.create(keys::CLUSTER_NAME, &cluster_name, None).await {
            Ok(_) => cluster_name.to_owned(),
            Err(AuthError::AlreadyExists(_)) => store
                .get::<String>(keys::CLUSTER_NAME)
                .await?
                .map(|(n, _)| n)
                .unwrap_or_default(),
            Err(e) => return Err(e),
        };
        if stored_name != cluster_name {
            return Err(AuthError::BadRequest(format!(
                "this data directory holds cluster {stored_name:?}, but the config names \
                 {cluster_name:?}; set cluster_name: {stored_name} or use a new data_dir"
            )));
        }
        let now = OffsetDateTime::now_utc();
        let (user_ca, ssh) = load_or_create_ca(&store, CaKind::User, cluster_name, now).await?;
        let (host_ca, _) = load_or_create_ca(&store, CaKind::Host, cluster_name, now).await?;
        let (db_ca, _) = load_or_create_ca(&store, CaKind::Db, cluster_name, now).await?;
        let ssh_user_ca = ssh.ok_or_else(|| {
            AuthError::Internal("the stored user CA has no SSH signing key".into())
        })?;
        for role in presets() {
            match store
                .create(&format!("{}{}", keys::ROLES, role.name()), &role, None)
                .await
            {
                Ok(_) | Err(AuthError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let a = &config.authentication;
        Ok(Arc::new(Self {
            store,
            cluster_name: cluster_name.to_owned(),
            ip_limiter: RateLimiter::new(a.rate_limit_per_ip),
            user_limiter: RateLimiter::new(a.rate_limit_per_user),
            config,
            user_ca,
            host_ca,
            db_ca,
            ssh_user_ca,
            proxy_addr,
            audit: std::sync::OnceLock::new(),
            mysql_port: std::sync::OnceLock::new(),
        }))
    }

    /// The cluster's name.
    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// The typed store, for tests and other services in the same process.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The config the service runs with.
    pub fn config(&self) -> &AuthServiceConfig {
        &self.config
    }

    /// The user CA (verifies user certificates).
    pub fn user_ca(&self) -> &CertAuthority {
        &self.user_ca
    }

    /// The host CA (verifies services, signs auth's own TLS certificate).
    pub fn host_ca(&self) -> &CertAuthority {
        &self.host_ca
    }

    /// The db CA.
    pub fn db_ca(&self) -> &CertAuthority {
        &self.db_ca
    }

    /// Public facts about every CA.
    pub fn ca_infos(&self) -> Vec<CaInfo> {
        [&self.user_ca, &self.host_ca, &self.db_ca]
            .into_iter()
            .map(ca_info)
            .collect()
    }

    /// What anyone may know before authenticating.
    pub fn ping(&self) -> PingResponse {
        PingResponse {
            cluster_name: self.cluster_name.clone(),
            version: VERSION.into(),
            second_factor: self.config.authentication.second_factor.as_str().into(),
            host_ca_pin: self.host_ca.pin(),
            server_time: OffsetDateTime::now_utc(),
            mysql_port: self.mysql_port.get().copied(),
        }
    }

    /// Records the proxy's MySQL port, for clients (`GET /v1/ping`).
    pub fn set_mysql_port(&self, port: u16) {
        let _ = self.mysql_port.set(port);
    }

    /// What `pcctl status` shows.
    pub async fn status(&self) -> Result<ClusterStatus> {
        Ok(ClusterStatus {
            cluster_name: self.cluster_name.clone(),
            version: VERSION.into(),
            cas: self.ca_infos(),
            ssh_user_ca_fingerprint: self.ssh_user_ca.fingerprint(),
            users: self.store.backend().range(keys::USERS).await?.len(),
            roles: self.store.backend().range(keys::ROLES).await?.len(),
            tokens: self.store.backend().range(keys::TOKENS).await?.len(),
        })
    }

    /// Issues a host identity with a fresh key: used for auth's own TLS certificate and the
    /// admin identity `pcctl` uses on this host.
    pub fn issue_host_identity(
        &self,
        role: SystemRole,
        node_name: &str,
        ttl: std::time::Duration,
        dns_names: Vec<String>,
        ips: Vec<IpAddr>,
    ) -> Result<(KeyPair, Vec<u8>, HostIdentity)> {
        let now = OffsetDateTime::now_utc();
        let key = KeyPair::generate()?;
        let identity = HostIdentity {
            host_id: uuid::Uuid::new_v4().to_string(),
            node_name: node_name.to_owned(),
            cluster_name: self.cluster_name.clone(),
            system_roles: vec![role],
            expires: now + ttl,
        };
        let cert = self
            .host_ca
            .issue_host(&identity, &key.public_key(), dns_names, ips, now)?;
        Ok((key, cert, identity))
    }
}

/// Public facts about one CA.
pub fn ca_info(ca: &CertAuthority) -> CaInfo {
    let not_after = X509Certificate::from_der(ca.cert_der())
        .ok()
        .and_then(|(_, c)| {
            OffsetDateTime::from_unix_timestamp(c.validity().not_after.timestamp()).ok()
        })
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    CaInfo {
        kind: ca.kind().as_str().into(),
        pin: ca.pin(),
        cert_fingerprint: portcullis_ca::fingerprint(ca.cert_der()),
        cert_pem: ca.cert_pem(),
        not_after,
    }
}

async fn load_or_create_ca(
    store: &Store,
    kind: CaKind,
    cluster_name: &str,
    now: OffsetDateTime,
) -> Result<(CertAuthority, Option<SshCaKey>)> {
    let key = format!("{}{}", keys::AUTHORITIES, kind.as_str());
    let b64 = base64::engine::general_purpose::STANDARD;
    if store.get::<CaRecord>(&key).await?.is_none() {
        let ca = CertAuthority::generate(kind, cluster_name, now)?;
        let ssh = if kind == CaKind::User {
            Some(b64.encode(SshCaKey::generate()?.pkcs8_der()))
        } else {
            None
        };
        let record = CaRecord {
            cert_pem: ca.cert_pem(),
            key_pkcs8: b64.encode(ca.key_pkcs8()),
            ssh_key_pkcs8: ssh,
        };
        match store.create(&key, &record, None).await {
            Ok(_) => {
                tracing::info!(ca = kind.as_str(), pin = %ca.pin(), "created certificate authority")
            }
            // Another auth server created it first: use theirs.
            Err(AuthError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let (record, _) = store
        .get::<CaRecord>(&key)
        .await?
        .ok_or_else(|| AuthError::Internal(format!("{key} vanished while starting")))?;
    let unreadable = |what: &str| {
        AuthError::Internal(format!("stored {} CA: {what} is unreadable", kind.as_str()))
    };
    let cert_der = portcullis_ca::cert::certs_from_pem(&record.cert_pem)?
        .into_iter()
        .next()
        .ok_or_else(|| unreadable("certificate"))?;
    let key_der = zeroize::Zeroizing::new(
        b64.decode(&record.key_pkcs8)
            .map_err(|_| unreadable("key"))?,
    );
    let ca = CertAuthority::from_parts(kind, cert_der, &key_der)?;
    if ca.cluster_name() != cluster_name {
        return Err(AuthError::Internal(format!(
            "the stored {} CA belongs to cluster {:?}, not {cluster_name:?}",
            kind.as_str(),
            ca.cluster_name()
        )));
    }
    let ssh = match record.ssh_key_pkcs8 {
        Some(s) => {
            let der = zeroize::Zeroizing::new(b64.decode(s).map_err(|_| unreadable("SSH key"))?);
            Some(SshCaKey::from_pkcs8_der(&der)?)
        }
        None => None,
    };
    Ok((ca, ssh))
}
