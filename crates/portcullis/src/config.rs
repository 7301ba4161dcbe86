//! The configuration file: structure, defaults, loading with precise errors, validation.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use portcullis_auth::config::AuthServiceConfig;
use portcullis_core::database::DbProtocol;
use portcullis_core::duration::Duration;
use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Format version; only `v1`.
    pub version: String,
    /// The cluster's name, fixed at first start (it is in every certificate).
    pub cluster_name: String,
    /// Where state, keys and logs live.
    pub data_dir: PathBuf,
    /// Logging.
    pub log: LogConfig,
    /// The auth service.
    pub auth_service: AuthServiceConfig,
    /// The proxy.
    pub proxy_service: ProxyServiceConfig,
    /// The database agent.
    pub db_service: DbServiceConfig,
}

/// The data directory used when none is configured (the rule `pcctl` uses too).
pub use portcullis_client::paths::default_data_dir;

impl Default for Config {
    fn default() -> Self {
        Self {
            version: "v1".into(),
            cluster_name: "portcullis".into(),
            data_dir: default_data_dir(),
            log: LogConfig::default(),
            auth_service: AuthServiceConfig::default(),
            proxy_service: ProxyServiceConfig::default(),
            db_service: DbServiceConfig::default(),
        }
    }
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Diagnostics.
    Debug,
    /// Normal operation.
    Info,
    /// Problems.
    Warn,
    /// Failures only.
    Error,
}

impl LogLevel {
    /// As a tracing filter directive.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// Log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `trace`, `debug`, `info` (default), `warn`, `error`.
    pub level: LogLevel,
    /// `text` (default) or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: LogLevel::Info,
            format: LogFormat::Text,
        }
    }
}

/// The proxy: the cluster's one public endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyServiceConfig {
    /// Run the proxy in this process.
    pub enabled: bool,
    /// Web, API, agent tunnels, PostgreSQL, Redis and MongoDB.
    pub listen_addr: SocketAddr,
    /// The address users and agents reach the proxy by (`host:port`).
    pub public_addr: Option<String>,
    /// MySQL's own port (its server speaks first).
    pub mysql_listen_addr: SocketAddr,
    /// The server version the MySQL port greets clients with; empty: the version of the
    /// MySQL databases the agents serve (probed at their start), else `8.0.36-Portcullis`.
    pub mysql_server_version: String,
}

impl Default for ProxyServiceConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen_addr: SocketAddr::from(([0, 0, 0, 0], 3080)),
            public_addr: None,
            mysql_listen_addr: SocketAddr::from(([0, 0, 0, 0], 3036)),
            mysql_server_version: String::new(),
        }
    }
}

/// The database agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbServiceConfig {
    /// Run the agent in this process.
    pub enabled: bool,
    /// The proxy the agent dials out to (`host:port`).
    pub proxy_addr: Option<String>,
    /// A join token, or the path of a file holding one.
    pub join_token: Option<String>,
    /// Pin of the cluster's host CA (`sha256:…`), checked on first contact.
    pub ca_pin: Option<String>,
    /// The databases this agent serves.
    pub databases: Vec<DatabaseConfig>,
    /// How the agent's audit events reach auth.
    pub audit: AgentAuditConfig,
}

/// The agent's audit delivery (`db_service.audit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentAuditConfig {
    /// Largest on-disk spool (`<data_dir>/agent/spool`) of events auth has not acknowledged.
    pub spool_max_bytes: u64,
    /// What happens when the spool is full: `refuse_sessions` or `drop_oldest`.
    pub when_full: WhenFull,
    /// Longest query text stored; longer text is cut, with a marker and the original length.
    pub max_query_bytes: u64,
    /// `interval` (default): events are written to the spool before the query is forwarded
    /// (surviving the agent being killed) and fsynced every 50 ms; `every_batch`: fsynced
    /// before the query is forwarded (also surviving power loss, at the cost of a disk flush
    /// in every query's path).
    pub spool_fsync: SpoolFsync,
}

/// When the agent's spool is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpoolFsync {
    /// Every 50 ms.
    Interval,
    /// Before each query is forwarded.
    EveryBatch,
}

/// Default `db_service.audit.spool_max_bytes`: 256 MiB.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Default `db_service.audit.max_query_bytes`: 64 KiB.
pub const DEFAULT_MAX_QUERY_BYTES: u64 = 64 * 1024;
/// Smallest `db_service.audit.spool_max_bytes`.
pub const MIN_SPOOL_MAX_BYTES: u64 = 64 * 1024;

impl Default for AgentAuditConfig {
    fn default() -> Self {
        Self {
            spool_max_bytes: DEFAULT_SPOOL_MAX_BYTES,
            when_full: WhenFull::RefuseSessions,
            max_query_bytes: DEFAULT_MAX_QUERY_BYTES,
            spool_fsync: SpoolFsync::Interval,
        }
    }
}

/// What the agent does when its audit spool is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Fail closed: refuse new sessions; end a live session whose query cannot be recorded.
    RefuseSessions,
    /// Delete the oldest undelivered events, with a warning and an `audit.gap` event.
    DropOldest,
}

/// One database served by the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Unique name users pick it by.
    pub name: String,
    /// `postgres`, `mysql`, `redis` or `mongodb`.
    pub protocol: DbProtocol,
    /// `host:port` the agent connects to.
    pub uri: String,
    /// Shown by `pc db ls`.
    #[serde(default)]
    pub description: String,
    /// How the agent checks the database's certificate.
    #[serde(default)]
    pub tls: DatabaseTlsConfig,
    /// Fixed labels, matched by roles' `db_labels`.
    #[serde(default)]
    pub static_labels: std::collections::BTreeMap<String, String>,
    /// Labels from commands re-run every `period`.
    #[serde(default)]
    pub dynamic_labels: Vec<DynamicLabel>,
    /// Redis: where the agent finds each db user's password (`file:PATH` or `env:VAR`; never
    /// the password itself). Redis 7.0 cannot map a certificate to a user, so the agent logs
    /// in with `AUTH user password`; users never see it.
    #[serde(default)]
    pub passwords: std::collections::BTreeMap<String, String>,
    /// MySQL/MariaDB settings.
    #[serde(default)]
    pub mysql: DatabaseMysqlConfig,
    /// Record every query and statement (default). `false` keeps session start/end, refusals
    /// and refused commands but no per-query events: to measure what auditing costs, or for
    /// a database whose commands are not worth a record each (a cache).
    #[serde(default = "default_true")]
    pub audit_queries: bool,
}

fn default_true() -> bool {
    true
}

/// MySQL/MariaDB settings of one database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseMysqlConfig {
    /// Let clients run `LOAD DATA LOCAL INFILE` (off: the server could ask a client for any
    /// file the client can read, so the agent does not offer the capability).
    pub allow_load_data_local: bool,
}

/// TLS to a database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseTlsConfig {
    /// `verify-full` (default), `verify-ca` or `insecure`.
    pub mode: DbTlsMode,
    /// CA bundle for the database's certificate; default: the cluster's db CA.
    pub ca_cert_file: Option<PathBuf>,
    /// Name to check in the database's certificate; default: the host of `uri`.
    pub server_name: Option<String>,
}

impl Default for DatabaseTlsConfig {
    fn default() -> Self {
        Self {
            mode: DbTlsMode::VerifyFull,
            ca_cert_file: None,
            server_name: None,
        }
    }
}

/// How strictly a database's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DbTlsMode {
    /// Chain and host name.
    VerifyFull,
    /// Chain only.
    VerifyCa,
    /// Nothing (testing only).
    Insecure,
}

/// A label whose value is a command's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicLabel {
    /// Label name.
    pub name: String,
    /// Program and arguments.
    pub command: Vec<String>,
    /// How often to re-run it.
    #[serde(default = "default_label_period")]
    pub period: Duration,
}

fn default_label_period() -> Duration {
    Duration::from_mins(1)
}

/// A configuration that cannot be used, with everything wrong in it.
#[derive(Debug)]
pub struct ConfigError {
    /// Which file (or "flags").
    pub source: String,
    /// `(key path, what is wrong and how to fix it)`.
    pub problems: Vec<(String, String)>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [(path, msg)] => write!(f, "{}: {path}: {msg}", self.source),
            _ => {
                write!(f, "{}: {} problems:", self.source, self.problems.len())?;
                for (path, msg) in &self.problems {
                    write!(f, "\n  {path}: {msg}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Largest config file read.
pub const MAX_CONFIG_LEN: u64 = 1024 * 1024;

impl Config {
    /// Parses YAML text; `source` names it in errors.
    pub fn from_yaml(text: &str, source: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let de = serde_norway::Deserializer::from_str(text);
        serde_path_to_error::deserialize::<_, Config>(de).map_err(|e| {
            let path = e.path().to_string();
            let mut inner = e.into_inner().to_string();
            // serde_norway repeats (part of) the key path in front of its message; say it once.
            if let Some((prefix, rest)) = inner.split_once(": ") {
                if !prefix.is_empty() && path.starts_with(prefix) && !prefix.contains(' ') {
                    inner = rest.to_owned();
                }
            }
            let path = if path == "." || path.is_empty() {
                "(top level)".to_owned()
            } else {
                path
            };
            ConfigError {
                source: source.to_owned(),
                problems: vec![(
                    path,
                    format!("{inner}; `portcullis configure` prints every key with its default"),
                )],
            }
        })
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let source = path.display().to_string();
        let fail = |msg: String| ConfigError {
            source: source.clone(),
            problems: vec![("(file)".into(), msg)],
        };
        let meta = std::fs::metadata(path).map_err(|e| {
            fail(format!(
                "cannot read it ({e}); `portcullis configure > {source}` writes a sample"
            ))
        })?;
        if meta.len() > MAX_CONFIG_LEN {
            return Err(fail("is larger than 1 MiB; is it the right file?".into()));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(format!("cannot read it as UTF-8 text ({e})")))?;
        Self::from_yaml(&text, &source)
    }

    /// Checks what the types cannot.
    pub fn validate(&self, source: &str) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.version != "v1" {
            problems.push((
                "version".into(),
                format!("{:?} is not supported; use v1", self.version),
            ));
        }
        if let Err(e) = portcullis_core::names::validate_name("cluster", &self.cluster_name) {
            problems.push(("cluster_name".into(), e.to_string()));
        }
        if self.data_dir.as_os_str().is_empty() || !self.data_dir.is_absolute() {
            problems.push((
                "data_dir".into(),
                "must be an absolute path, e.g. /var/lib/portcullis".into(),
            ));
        }
        if !self.auth_service.enabled && !self.proxy_service.enabled && !self.db_service.enabled {
            problems.push((
                "(services)".into(),
                "no service is enabled; set auth_service.enabled: true (or proxy_service / db_service)".into(),
            ));
        }
        if self.auth_service.enabled {
            problems.extend(self.auth_service.validate());
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, db) in self.db_service.databases.iter().enumerate() {
            let at = format!("db_service.databases[{i}]");
            if let Err(e) = portcullis_core::names::validate_name("database", &db.name) {
                problems.push((format!("{at}.name"), e.to_string()));
            }
            if !seen.insert(db.name.clone()) {
                problems.push((
                    format!("{at}.name"),
                    format!("{:?} is listed twice; names must be unique", db.name),
                ));
            }
            if db
                .uri
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                problems.push((
                    format!("{at}.uri"),
                    format!("{:?} is not host:port, e.g. 10.0.0.5:5432", db.uri),
                ));
            }
            for (user, source) in &db.passwords {
                let ok = source
                    .strip_prefix("file:")
                    .or_else(|| source.strip_prefix("env:"))
                    .is_some_and(|rest| !rest.is_empty());
                if !ok {
                    problems.push((
                        format!("{at}.passwords.{user}"),
                        "must say where the password is, as file:/path/to/file or env:VARIABLE — never the password itself".into(),
                    ));
                }
            }
            if db.mysql != DatabaseMysqlConfig::default() && db.protocol != DbProtocol::Mysql {
                problems.push((
                    format!("{at}.mysql"),
                    format!(
                        "only MySQL databases take MySQL settings; this one is {}",
                        db.protocol.display_name()
                    ),
                ));
            }
            if !db.passwords.is_empty() && db.protocol != DbProtocol::Redis {
                problems.push((
                    format!("{at}.passwords"),
                    format!(
                        "only Redis databases use passwords; {} logs in with the certificate",
                        db.protocol.display_name()
                    ),
                ));
            }
            for (j, l) in db.dynamic_labels.iter().enumerate() {
                if l.command.is_empty() {
                    problems.push((
                        format!("{at}.dynamic_labels[{j}].command"),
                        "must name a program, e.g. [uptime, -p]".into(),
                    ));
                }
                if l.period.as_std() < std::time::Duration::from_secs(1) {
                    problems.push((
                        format!("{at}.dynamic_labels[{j}].period"),
                        "must be at least 1s".into(),
                    ));
                }
            }
        }
        let audit = &self.db_service.audit;
        if audit.spool_max_bytes < MIN_SPOOL_MAX_BYTES {
            problems.push((
                "db_service.audit.spool_max_bytes".into(),
                format!(
                    "{} is too small; use at least {MIN_SPOOL_MAX_BYTES} (64 KiB), e.g. 268435456 (256 MiB)",
                    audit.spool_max_bytes
                ),
            ));
        }
        if audit.max_query_bytes > portcullis_db::query_text::MAX_QUERY_BYTES_CEILING as u64 {
            problems.push((
                "db_service.audit.max_query_bytes".into(),
                format!(
                    "{} is too large: every event must fit auth's request limit; use at most {}",
                    audit.max_query_bytes,
                    portcullis_db::query_text::MAX_QUERY_BYTES_CEILING
                ),
            ));
        } else if audit.max_query_bytes < 256 {
            problems.push((
                "db_service.audit.max_query_bytes".into(),
                format!("{} is too small; use at least 256", audit.max_query_bytes),
            ));
        } else if audit.max_query_bytes.saturating_mul(8) > audit.spool_max_bytes {
            problems.push((
                "db_service.audit.max_query_bytes".into(),
                format!(
                    "{} is more than 1/8 of spool_max_bytes ({}); lower it or raise spool_max_bytes",
                    audit.max_query_bytes, audit.spool_max_bytes
                ),
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                source: source.to_owned(),
                problems,
            })
        }
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
