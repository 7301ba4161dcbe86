//! Starting and stopping the services a [`Config`] switches on.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use portcullis_auth::tls::ServerCert;
use portcullis_auth::AuthServer;
use portcullis_backend::SqliteBackend;
use portcullis_ca::identity_file::IdentityFile;
use portcullis_client::files;
use portcullis_core::identity::SystemRole;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Config;

/// How long the local admin identity lasts; renewed daily.
pub const ADMIN_IDENTITY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often certificates that auth uses itself are renewed.
pub const RENEW_EVERY: Duration = Duration::from_secs(24 * 3600);

pub use portcullis_client::paths::{admin_dir, admin_identity_path, auth_addr_path};

/// Services running in this process.
pub struct Running {
    /// Where the auth API listens, when auth runs here.
    pub auth_addr: Option<SocketAddr>,
    /// The auth server, when it runs here (for in-process tests and, later, the proxy).
    pub auth: Option<Arc<AuthServer>>,
    /// Where the proxy listens, when it runs here.
    pub proxy_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Running {
    /// Stops every service and waits for them.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

fn host_names(config: &Config, bound: SocketAddr) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if !bound.ip().is_unspecified() {
        names.push(bound.ip().to_string());
    }
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            names.push(h.to_owned());
        }
    }
    names.extend(config.auth_service.server_names.iter().cloned());
    names.sort();
    names.dedup();
    names
}

fn write_admin_identity(auth: &AuthServer, data_dir: &Path) -> anyhow::Result<()> {
    let (key, cert, _) = auth
        .issue_host_identity(
            SystemRole::Admin,
            "pcctl",
            ADMIN_IDENTITY_TTL,
            Vec::new(),
            Vec::new(),
        )
        .context("issuing the admin identity")?;
    let file = IdentityFile {
        key_pkcs8: zeroize_vec(key.pkcs8_der()),
        cert_der: cert,
        ca_ders: vec![auth.host_ca().cert_der().to_vec()],
    };
    let path = admin_identity_path(data_dir);
    files::write_private(
        &path,
        file.to_pem(
            "Portcullis admin identity for pcctl on this host. Keep it private (mode 0600).",
        )
        .as_bytes(),
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn zeroize_vec(bytes: &[u8]) -> portcullis_ca::identity_file::Zeroizing<Vec<u8>> {
    portcullis_ca::identity_file::Zeroizing::new(bytes.to_vec())
}

/// Starts what `config` enables. Returns once every listener is bound.
pub async fn start(config: &Config) -> anyhow::Result<Running> {
    config
        .validate("config")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if config.proxy_service.enabled && !config.auth_service.enabled {
        bail!(
            "proxy_service: in this version the proxy runs in the same process as auth; enable auth_service too"
        );
    }
    let db_specs = if config.db_service.enabled {
        db_specs(config)?
    } else {
        Vec::new()
    };
    files::create_private_dir(&config.data_dir).with_context(|| {
        format!(
            "creating data_dir {}; check permissions or set data_dir",
            config.data_dir.display()
        )
    })?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut auth_addr = None;
    let mut auth_server = None;
    if config.auth_service.enabled {
        let db_path = config.data_dir.join(&config.auth_service.storage.path);
        let backend = SqliteBackend::open(&db_path)
            .with_context(|| format!("opening cluster state {}", db_path.display()))?;
        let proxy_addr = config.proxy_service.public_addr.clone();
        let auth = AuthServer::init(
            Arc::new(backend),
            &config.cluster_name,
            config.auth_service.clone(),
            proxy_addr,
        )
        .await
        .map_err(|e| anyhow::anyhow!("starting auth: {e}"))?;
        let log_dir = config.data_dir.join("log");
        auth.enable_audit(&log_dir)
            .with_context(|| format!("opening the audit log in {}", log_dir.display()))?;
        let listen = config.auth_service.listen_addr;
        let listener = TcpListener::bind(listen).await.with_context(|| {
            format!(
                "auth_service.listen_addr {listen}: cannot listen; is another process using it?"
            )
        })?;
        let bound = listener.local_addr()?;
        let cert = ServerCert::issue(&auth, host_names(config, bound))
            .map_err(|e| anyhow::anyhow!("auth TLS certificate: {e}"))?;
        let tls = portcullis_auth::tls::server_config(&auth, Arc::clone(&cert))
            .map_err(|e| anyhow::anyhow!("auth TLS: {e}"))?;
        files::create_private_dir(&admin_dir(&config.data_dir))?;
        write_admin_identity(&auth, &config.data_dir)?;
        let shown_addr = if bound.ip().is_unspecified() {
            SocketAddr::new(IpAddr::from([127, 0, 0, 1]), bound.port())
        } else {
            bound
        };
        files::write_public(
            &auth_addr_path(&config.data_dir),
            format!("{shown_addr}\n").as_bytes(),
        )?;
        let (router, _) = portcullis_auth::api::router_and_spec(Arc::clone(&auth));
        tasks.spawn(portcullis_auth::tls::serve(
            listener,
            tls,
            router,
            shutdown_rx.clone(),
        ));
        {
            let auth = Arc::clone(&auth);
            let data_dir = config.data_dir.clone();
            spawn_daily(&mut tasks, shutdown_rx.clone(), move || {
                if let Err(e) = cert.renew(&auth) {
                    tracing::error!(error = %e, "renewing auth's TLS certificate failed; will retry");
                }
                if let Err(e) = write_admin_identity(&auth, &data_dir) {
                    tracing::error!(error = %e, "renewing the admin identity failed; will retry");
                }
            });
        }
        tracing::info!(addr = %bound, cluster = %config.cluster_name, data_dir = %config.data_dir.display(), "auth service listening");
        auth_addr = Some(shown_addr);
        auth_server = Some(auth);
    }
    let mut proxy_addr = None;
    let mut proxy_server = None;
    if let (true, Some(auth)) = (config.proxy_service.enabled, auth_server.clone()) {
        let listen = config.proxy_service.listen_addr;
        let listener = TcpListener::bind(listen).await.with_context(|| {
            format!(
                "proxy_service.listen_addr {listen}: cannot listen; is another process using it?"
            )
        })?;
        let bound = listener.local_addr()?;
        let mut names = host_names(config, bound);
        if let Some(public) = &config.proxy_service.public_addr {
            let host = public.rsplit_once(':').map_or(public.as_str(), |(h, _)| h);
            names.push(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            );
            names.sort();
            names.dedup();
        }
        let cert = ServerCert::issue_for(&auth, SystemRole::Proxy, "proxy", names)
            .map_err(|e| anyhow::anyhow!("proxy TLS certificate: {e}"))?;
        let proxy = portcullis_proxy::Proxy::new(Arc::clone(&auth), Arc::clone(&cert))
            .map_err(|e| anyhow::anyhow!("proxy TLS: {e}"))?;
        tasks.spawn(portcullis_proxy::listener::serve(
            Arc::clone(&proxy),
            listener,
            shutdown_rx.clone(),
        ));
        let _ = proxy
            .mysql_server_version
            .set(config.proxy_service.mysql_server_version.clone());
        let mysql_listen = config.proxy_service.mysql_listen_addr;
        let mysql_listener = TcpListener::bind(mysql_listen).await.with_context(|| {
            format!(
                "proxy_service.mysql_listen_addr {mysql_listen}: cannot listen; is another process (a MySQL server?) using it? Pick another port"
            )
        })?;
        let mysql_bound = mysql_listener.local_addr()?;
        auth.set_mysql_port(mysql_bound.port());
        tasks.spawn(portcullis_proxy::mysql::serve(
            Arc::clone(&proxy),
            mysql_listener,
            shutdown_rx.clone(),
        ));
        {
            let auth = Arc::clone(&auth);
            spawn_daily(&mut tasks, shutdown_rx.clone(), move || {
                if let Err(e) = cert.renew(&auth) {
                    tracing::error!(error = %e, "renewing the proxy's TLS certificate failed; will retry");
                }
            });
        }
        let shown = if bound.ip().is_unspecified() {
            SocketAddr::new(IpAddr::from([127, 0, 0, 1]), bound.port())
        } else {
            bound
        };
        files::write_public(
            &proxy_addr_path(&config.data_dir),
            format!("{shown}\n").as_bytes(),
        )?;
        let mysql_shown = if mysql_bound.ip().is_unspecified() {
            SocketAddr::new(IpAddr::from([127, 0, 0, 1]), mysql_bound.port())
        } else {
            mysql_bound
        };
        files::write_public(
            &admin_dir(&config.data_dir).join("mysql_addr"),
            format!("{mysql_shown}\n").as_bytes(),
        )?;
        tracing::info!(addr = %bound, mysql = %mysql_bound, "proxy listening");
        proxy_addr = Some(shown);
        proxy_server = Some(proxy);
    }
    if config.db_service.enabled {
        start_agent(
            config,
            db_specs,
            auth_server.clone(),
            proxy_server.clone(),
            proxy_addr,
            &mut tasks,
            shutdown_rx.clone(),
        )
        .await?;
    }
    Ok(Running {
        auth_addr,
        auth: auth_server,
        proxy_addr,
        shutdown,
        tasks,
    })
}

/// Runs `renew` every [`RENEW_EVERY`] until shutdown.
fn spawn_daily(
    tasks: &mut JoinSet<()>,
    mut stop: watch::Receiver<bool>,
    renew: impl Fn() + Send + 'static,
) {
    tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RENEW_EVERY) => renew(),
                _ = stop.changed() => return,
            }
        }
    });
}

/// Where the proxy's bound address is written (next to `auth_addr`).
pub fn proxy_addr_path(data_dir: &Path) -> std::path::PathBuf {
    admin_dir(data_dir).join("proxy_addr")
}

fn db_specs(config: &Config) -> anyhow::Result<Vec<portcullis_db::DbSpec>> {
    use crate::config::DbTlsMode as Mode;
    let mut out = Vec::new();
    for (i, db) in config.db_service.databases.iter().enumerate() {
        use portcullis_core::database::DbProtocol;
        if !matches!(
            db.protocol,
            DbProtocol::Postgres | DbProtocol::Redis | DbProtocol::Mysql
        ) {
            bail!(
                "db_service.databases[{i}].protocol: {} is not supported by this version's agent yet (postgres, mysql and redis are)",
                db.protocol
            );
        }
        out.push(portcullis_db::DbSpec {
            name: db.name.clone(),
            protocol: db.protocol,
            uri: db.uri.clone(),
            description: db.description.clone(),
            tls_mode: match db.tls.mode {
                Mode::VerifyFull => portcullis_db::DbTlsMode::VerifyFull,
                Mode::VerifyCa => portcullis_db::DbTlsMode::VerifyCa,
                Mode::Insecure => portcullis_db::DbTlsMode::Insecure,
            },
            ca_cert_file: db.tls.ca_cert_file.clone(),
            server_name: db.tls.server_name.clone(),
            static_labels: db.static_labels.clone(),
            dynamic_labels: db
                .dynamic_labels
                .iter()
                .map(|l| portcullis_db::spec::DynamicLabel {
                    name: l.name.clone(),
                    command: l.command.clone(),
                    period: l.period.as_std(),
                })
                .collect(),
            passwords: db.passwords.clone(),
            mysql: portcullis_db::mysql::MysqlOptions {
                allow_load_data_local: db.mysql.allow_load_data_local,
            },
            audit_queries: db.audit_queries,
        });
    }
    if out.is_empty() {
        bail!("db_service: list at least one database under db_service.databases (see `portcullis configure`)");
    }
    Ok(out)
}

fn node_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| portcullis_core::names::validate_name("node", h).is_ok())
        .unwrap_or_else(|| "agent".to_owned())
}

async fn start_agent(
    config: &Config,
    specs: Vec<portcullis_db::DbSpec>,
    auth: Option<Arc<AuthServer>>,
    proxy: Option<Arc<portcullis_proxy::Proxy>>,
    local_proxy_addr: Option<SocketAddr>,
    tasks: &mut JoinSet<()>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let dir = config.data_dir.join("agent");
    files::create_private_dir(&dir)?;
    let db = &config.db_service;
    let local = db.join_token.is_none() && auth.is_some() && proxy.is_some();
    let (identity, proxy_addr) = if local {
        // Same process as auth and proxy: auth issues the identity directly.
        let (Some(auth), Some(addr)) = (auth.as_ref(), local_proxy_addr) else {
            bail!("internal: local agent without auth or proxy");
        };
        let (key, cert, _) = auth
            .issue_host_identity(
                SystemRole::Db,
                &node_name(),
                std::time::Duration::from_secs(24 * 3600),
                vec![node_name()],
                Vec::new(),
            )
            .map_err(|e| anyhow::anyhow!("agent identity: {e}"))?;
        let identity = portcullis_db::AgentIdentity::new(
            &key,
            cert,
            auth.host_ca().cert_der().to_vec(),
            auth.db_ca().cert_der().to_vec(),
        )
        .map_err(anyhow::Error::msg)?;
        (identity, addr.to_string())
    } else {
        let proxy_addr = db
            .proxy_addr
            .clone()
            .or_else(|| local_proxy_addr.map(|a| a.to_string()))
            .ok_or_else(|| anyhow::anyhow!("db_service.proxy_addr: say which proxy the agent dials (or pass --proxy=HOST:3080)"))?;
        let identity = match portcullis_db::AgentIdentity::load(&dir).map_err(anyhow::Error::msg)? {
            Some(id) => id,
            None => {
                let token = db.join_token.clone().ok_or_else(|| {
                    anyhow::anyhow!("db_service.join_token: the agent has not joined yet; make a token with `pcctl tokens add --type=db` and pass --token")
                })?;
                let token = match std::fs::read_to_string(&token) {
                    Ok(t) if Path::new(&token).is_absolute() => t.trim().to_owned(),
                    _ => token,
                };
                let pin = db.ca_pin.clone().ok_or_else(|| {
                    anyhow::anyhow!("db_service.ca_pin: give the cluster's host CA pin (printed by `pcctl tokens add`) so the agent can trust the proxy")
                })?;
                portcullis_db::AgentIdentity::join(&proxy_addr, &token, &pin, &node_name(), &dir)
                    .await
                    .map_err(anyhow::Error::msg)?
            }
        };
        (identity, proxy_addr)
    };
    // In one process with auth, events go to auth directly instead of over HTTPS.
    let local_audit: Option<Arc<dyn portcullis_db::audit::Deliver>> = match (&auth, local) {
        (Some(auth), true) => Some(Arc::new(LocalAudit(Arc::clone(auth)))),
        _ => None,
    };
    let audit_options = portcullis_db::audit::AuditOptions {
        spool_dir: dir.join("spool"),
        spool_max_bytes: db.audit.spool_max_bytes,
        when_full: match db.audit.when_full {
            crate::config::WhenFull::RefuseSessions => {
                portcullis_db::audit::WhenFull::RefuseSessions
            }
            crate::config::WhenFull::DropOldest => portcullis_db::audit::WhenFull::DropOldest,
        },
        max_query_bytes: usize::try_from(db.audit.max_query_bytes).unwrap_or(usize::MAX),
        fsync_interval: match db.audit.spool_fsync {
            crate::config::SpoolFsync::Interval => Some(std::time::Duration::from_millis(50)),
            crate::config::SpoolFsync::EveryBatch => None,
        },
    };
    let agent = portcullis_db::start(
        identity.clone(),
        &proxy_addr,
        specs,
        local_audit,
        &audit_options,
    )
    .await
    .map_err(|e| anyhow::anyhow!("starting the database agent: {e}"))?;
    let api = identity.client(&proxy_addr).map_err(anyhow::Error::msg)?;
    {
        let agent = Arc::clone(&agent);
        let api = Arc::clone(&api);
        let mut stop = shutdown.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = portcullis_db::tunnel::heartbeat_forever(agent, api) => {}
                _ = stop.changed() => {}
            }
        });
    }
    {
        let mut stop = shutdown.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = identity.renew_forever(api) => {}
                _ = stop.changed() => {}
            }
        });
    }
    match (local, proxy) {
        (true, Some(proxy)) => {
            // Same process: the proxy hands sessions to the agent directly.
            let _ = proxy.local.set(Arc::new(InProcessAgent(agent)));
        }
        _ => {
            tasks.spawn(async move {
                tokio::select! {
                    _ = portcullis_db::tunnel::run(agent, proxy_addr) => {}
                    _ = shutdown.changed() => {}
                }
            });
        }
    }
    tracing::info!("database agent started");
    Ok(())
}

/// The agent, seen by a proxy in the same process.
struct InProcessAgent(Arc<portcullis_db::Agent>);

impl portcullis_proxy::LocalAgent for InProcessAgent {
    fn serves(&self, database: &str) -> bool {
        self.0.databases.get(database).is_some()
    }

    fn session(
        &self,
        stream: Box<dyn portcullis_proxy::ClientIo>,
        cert: Vec<u8>,
        client_addr: String,
        sid: String,
    ) -> portcullis_proxy::BoxFuture {
        Box::pin(portcullis_db::session_for(
            Arc::clone(&self.0),
            stream,
            cert,
            client_addr,
            sid,
        ))
    }

    fn databases(&self) -> Vec<portcullis_api::DatabaseInfo> {
        self.0.databases.infos()
    }

    fn cancel(&self, process_id: i32, secret_key: bytes::Bytes) -> portcullis_proxy::BoxFuture {
        let agent = Arc::clone(&self.0);
        Box::pin(
            async move { portcullis_db::postgres::cancel(&agent, process_id, secret_key).await },
        )
    }
}

/// Audit delivery to auth in the same process.
struct LocalAudit(Arc<AuthServer>);

impl portcullis_db::audit::Deliver for LocalAudit {
    fn deliver(&self, lines: bytes::Bytes) -> portcullis_db::audit::DeliverFuture<'_> {
        Box::pin(async move {
            // Returns once every audit sink has the batch (the writer task does the fsync).
            self.0
                .record_ndjson(&lines)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }

    fn can_store_fresh(&self) -> bool {
        self.0.audit_log().is_some_and(|l| l.can_append_fresh())
    }

    fn store_fresh(&self, parts: &[&[u8]]) -> std::io::Result<()> {
        match self.0.audit_log() {
            Some(log) => log.append_fresh(parts),
            None => Err(std::io::Error::other("auth has no audit log")),
        }
    }
}
