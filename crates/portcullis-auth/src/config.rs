//! The `auth_service` section of the config file.

use std::net::SocketAddr;

use portcullis_core::duration::Duration;
use serde::{Deserialize, Serialize};

/// Settings of the auth service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthServiceConfig {
    /// Run the auth service in this process.
    pub enabled: bool,
    /// Where the auth API listens (mutual TLS). Keep it private: proxies and `pcctl` use it.
    pub listen_addr: SocketAddr,
    /// Extra DNS names or IPs for auth's TLS certificate, for `pcctl --auth-server` from other
    /// hosts. `localhost`, `127.0.0.1`, `::1` and the listen address are always included.
    pub server_names: Vec<String>,
    /// How people log in.
    pub authentication: AuthenticationConfig,
    /// Where cluster state lives.
    pub storage: StorageConfig,
    /// Where audit events are stored.
    pub audit: AuditConfig,
}

/// Where audit events go and how durably.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Sinks, every one of which stores every event: `file:///DIR` (JSON lines, one file per
    /// UTC day; a relative path is under data_dir) and `postgres://…` (a table several auth
    /// servers share). Searches read the first. Empty: `file://log` (`<data_dir>/log`).
    pub sinks: Vec<String>,
    /// When file sinks fsync: `every_batch` (default), `interval`, `never`.
    pub fsync: portcullis_audit::FsyncPolicy,
    /// With `fsync: interval`, how often.
    pub fsync_interval: Duration,
    /// File sinks delete day files older than this (e.g. `8760h` for a year); `0s` keeps
    /// everything. PostgreSQL sinks keep everything: prune those tables with a database job.
    pub retention: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            sinks: Vec::new(),
            fsync: portcullis_audit::FsyncPolicy::EveryBatch,
            fsync_interval: Duration(std::time::Duration::from_secs(1)),
            retention: Duration(std::time::Duration::ZERO),
        }
    }
}

impl Default for AuthServiceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 3025)),
            server_names: Vec::new(),
            authentication: AuthenticationConfig::default(),
            storage: StorageConfig::default(),
            audit: AuditConfig::default(),
        }
    }
}

/// Second factor policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecondFactor {
    /// Every user enrols TOTP and uses it at every login.
    On,
    /// Users may enrol TOTP; those who did must use it.
    Optional,
    /// Passwords only.
    Off,
}

impl SecondFactor {
    /// The spelling in config and API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Optional => "optional",
            Self::Off => "off",
        }
    }
}

/// Login policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthenticationConfig {
    /// `on` (default), `optional` or `off`.
    pub second_factor: SecondFactor,
    /// Failed logins in a row after which a user is locked out.
    pub max_login_attempts: u32,
    /// How long a locked-out user waits (or until `pcctl users reset`).
    pub lockout_duration: Duration,
    /// Login attempts allowed per source address per minute.
    pub rate_limit_per_ip: u32,
    /// Login attempts allowed per user name per minute.
    pub rate_limit_per_user: u32,
    /// Lifetime of invites from `pcctl users add` / `reset`.
    pub invite_ttl: Duration,
    /// Default lifetime of user certificates, before roles cap it.
    pub default_session_ttl: Duration,
}

impl Default for AuthenticationConfig {
    fn default() -> Self {
        Self {
            second_factor: SecondFactor::On,
            max_login_attempts: 5,
            lockout_duration: Duration(std::time::Duration::from_secs(20 * 60)),
            rate_limit_per_ip: 30,
            rate_limit_per_user: 10,
            invite_ttl: Duration(std::time::Duration::from_secs(24 * 3600)),
            default_session_ttl: Duration(std::time::Duration::from_secs(12 * 3600)),
        }
    }
}

/// Backend kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    /// Embedded SQLite in `data_dir` (single auth server).
    Sqlite,
}

/// Where cluster state lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Only `sqlite` for now.
    #[serde(rename = "type")]
    pub kind: StorageType,
    /// SQLite file; relative paths are under `data_dir`.
    pub path: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: StorageType::Sqlite,
            path: "cluster.db".into(),
        }
    }
}

impl AuthServiceConfig {
    /// Checks values serde cannot; returns `(key path, problem and fix)` pairs.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let a = &self.authentication;
        if a.max_login_attempts == 0 {
            problems.push((
                "auth_service.authentication.max_login_attempts".into(),
                "must be at least 1 (default 5)".into(),
            ));
        }
        if a.rate_limit_per_ip == 0 || a.rate_limit_per_user == 0 {
            problems.push((
                "auth_service.authentication.rate_limit_per_ip/per_user".into(),
                "must be at least 1 attempt per minute".into(),
            ));
        }
        if a.invite_ttl.0.as_secs() < 60 {
            problems.push((
                "auth_service.authentication.invite_ttl".into(),
                "must be at least 1m (default 24h)".into(),
            ));
        }
        if a.default_session_ttl.0.as_secs() < 60 {
            problems.push((
                "auth_service.authentication.default_session_ttl".into(),
                "must be at least 1m (default 12h)".into(),
            ));
        }
        if self.storage.path.trim().is_empty() {
            problems.push((
                "auth_service.storage.path".into(),
                "must name a file (default cluster.db, under data_dir)".into(),
            ));
        }
        for (i, sink) in self.audit.sinks.iter().enumerate() {
            let known = ["file://", "postgres://", "postgresql://"];
            if !known.iter().any(|k| sink.starts_with(k)) {
                problems.push((
                    format!("auth_service.audit.sinks[{i}]"),
                    "must start with file:// (a directory) or postgres://".into(),
                ));
            }
        }
        if self.audit.fsync_interval.0.is_zero() {
            problems.push((
                "auth_service.audit.fsync_interval".into(),
                "must be more than 0 (default 1s)".into(),
            ));
        }
        let r = self.audit.retention.0;
        if !r.is_zero() && r < std::time::Duration::from_secs(86_400) {
            problems.push((
                "auth_service.audit.retention".into(),
                "must be at least 24h (files hold one UTC day each), or 0s to keep everything"
                    .into(),
            ));
        }
        problems
    }
}
