//! The databases an agent serves, with labels from commands re-run on a period.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use portcullis_api::DatabaseInfo;
use portcullis_core::database::{Database, DbProtocol};
use tokio::sync::watch;

/// How the agent checks a database's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbTlsMode {
    /// Chain and host name (default).
    VerifyFull,
    /// Chain only.
    VerifyCa,
    /// Nothing: testing only.
    Insecure,
}

/// A label whose value is a command's output.
#[derive(Debug, Clone)]
pub struct DynamicLabel {
    /// Label name.
    pub name: String,
    /// Program and arguments.
    pub command: Vec<String>,
    /// How often to re-run it.
    pub period: Duration,
}

/// One database, as configured.
#[derive(Debug, Clone)]
pub struct DbSpec {
    /// Name users pick it by.
    pub name: String,
    /// Protocol.
    pub protocol: DbProtocol,
    /// `host:port`.
    pub uri: String,
    /// Shown by `pc db ls`.
    pub description: String,
    /// TLS mode to the database.
    pub tls_mode: DbTlsMode,
    /// CA bundle for the database's certificate; default: the cluster's db CA.
    pub ca_cert_file: Option<PathBuf>,
    /// Name checked in the database's certificate; default: the host of `uri`.
    pub server_name: Option<String>,
    /// Fixed labels.
    pub static_labels: BTreeMap<String, String>,
    /// Command labels.
    pub dynamic_labels: Vec<DynamicLabel>,
    /// Where the agent finds each db user's password, for protocols that cannot log in with
    /// a certificate alone (Redis 7.0): `file:PATH` or `env:VAR`, never the secret itself.
    pub passwords: BTreeMap<String, String>,
    /// MySQL settings (LOAD DATA LOCAL).
    pub mysql: crate::mysql::MysqlOptions,
    /// Whether each query and statement is an audit event (the default). Off, sessions are
    /// still audited (start, end, refusals and commands the agent refuses) but the queries run
    /// in them are not: for measuring what auditing costs, or for a database whose traffic
    /// is not worth a record per command.
    pub audit_queries: bool,
}

/// Reads a secret named by reference: `file:PATH` (the file's content without a trailing
/// newline) or `env:VAR`. Read at each use, so a rotated secret takes effect at once.
pub fn read_secret(source: &str) -> Result<String, String> {
    if let Some(path) = source.strip_prefix("file:") {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading the secret file {path}: {e}"))?;
        Ok(text.trim_end_matches(['\n', '\r']).to_owned())
    } else if let Some(var) = source.strip_prefix("env:") {
        std::env::var(var).map_err(|_| format!("the environment variable {var} is not set"))
    } else {
        Err("a secret must be given as file:PATH or env:VAR".into())
    }
}

impl DbSpec {
    /// The host part of `uri`.
    pub fn host(&self) -> &str {
        match self.uri.rsplit_once(':') {
            Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
            None => &self.uri,
        }
    }
}

/// The served databases with their current labels; changes are announced to the proxy.
#[derive(Debug, Clone)]
pub struct Databases {
    specs: Arc<Vec<DbSpec>>,
    dynamic: Arc<RwLock<BTreeMap<(String, String), String>>>,
    /// Server versions learnt from the databases' greetings (MySQL).
    versions: Arc<RwLock<BTreeMap<String, String>>>,
    changed: watch::Sender<u64>,
}

impl Databases {
    /// Starts refreshing dynamic labels.
    pub fn start(specs: Vec<DbSpec>) -> Self {
        let (changed, _) = watch::channel(0);
        let me = Self {
            specs: Arc::new(specs),
            dynamic: Arc::new(RwLock::new(BTreeMap::new())),
            versions: Arc::new(RwLock::new(BTreeMap::new())),
            changed,
        };
        for spec in me.specs.iter() {
            if spec.protocol == DbProtocol::Mysql {
                let me = me.clone();
                let (db, uri) = (spec.name.clone(), spec.uri.clone());
                tokio::spawn(async move { me.probe_version(db, uri).await });
            }
        }
        for spec in me.specs.iter() {
            for label in &spec.dynamic_labels {
                let me = me.clone();
                let db = spec.name.clone();
                let label = label.clone();
                tokio::spawn(async move { me.refresh_label(db, label).await });
            }
        }
        me
    }

    async fn refresh_label(self, db: String, label: DynamicLabel) {
        loop {
            let value = run_label_command(&label.command).await;
            let key = (db.clone(), label.name.clone());
            let mut changed = false;
            if let Ok(mut m) = self.dynamic.write() {
                if m.get(&key) != Some(&value) {
                    m.insert(key, value);
                    changed = true;
                }
            }
            if changed {
                self.changed.send_modify(|v| *v += 1);
            }
            if self.changed.is_closed()
                && self.changed.receiver_count() == 0
                && Arc::strong_count(&self.specs) == 1
            {
                return;
            }
            tokio::time::sleep(label.period).await;
        }
    }

    /// Learns a MySQL database's version from its greeting (retrying while it is down), so
    /// the proxy can greet clients with it.
    async fn probe_version(self, db: String, uri: String) {
        let mut wait = Duration::from_millis(250);
        loop {
            match tokio::time::timeout(Duration::from_secs(10), crate::mysql::probe_version(&uri))
                .await
            {
                Ok(Ok(v)) => {
                    self.set_version(&db, v);
                    return;
                }
                Ok(Err(e)) => {
                    tracing::debug!(%db, error = %e, "could not read the database's version yet")
                }
                Err(_) => tracing::debug!(%db, "the database did not greet in time"),
            }
            if Arc::strong_count(&self.specs) == 1 {
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }

    /// Records `db`'s version (from a probe or a session's greeting); announces a change.
    pub fn set_version(&self, db: &str, version: String) {
        let mut changed = false;
        if let Ok(mut m) = self.versions.write() {
            if m.get(db) != Some(&version) {
                m.insert(db.to_owned(), version);
                changed = true;
            }
        }
        if changed {
            self.changed.send_modify(|v| *v += 1);
        }
    }

    /// `db`'s version, once known.
    pub fn version(&self, db: &str) -> Option<String> {
        self.versions.read().ok()?.get(db).cloned()
    }

    /// Wakes when labels change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The spec of `name`.
    pub fn get(&self, name: &str) -> Option<&DbSpec> {
        self.specs.iter().find(|s| s.name == name)
    }

    fn labels(&self, spec: &DbSpec) -> BTreeMap<String, String> {
        let mut labels = spec.static_labels.clone();
        if let Ok(m) = self.dynamic.read() {
            for ((db, name), value) in m.iter() {
                if db == &spec.name {
                    labels.insert(name.clone(), value.clone());
                }
            }
        }
        labels
    }

    /// As roles see `name`.
    pub fn as_database(&self, name: &str) -> Option<Database> {
        let spec = self.get(name)?;
        Some(Database {
            name: spec.name.clone(),
            protocol: spec.protocol,
            uri: spec.uri.clone(),
            description: spec.description.clone(),
            labels: self.labels(spec),
        })
    }

    /// What the proxy and auth are told.
    pub fn infos(&self) -> Vec<DatabaseInfo> {
        self.specs
            .iter()
            .map(|s| DatabaseInfo {
                name: s.name.clone(),
                protocol: s.protocol.as_str().into(),
                uri: s.uri.clone(),
                description: s.description.clone(),
                labels: self.labels(s),
                version: self.version(&s.name),
            })
            .collect()
    }
}

/// Runs a label command with a timeout; its trimmed stdout (first line, at most 256 bytes) is
/// the value, or `error: …` when it fails.
async fn run_label_command(command: &[String]) -> String {
    let Some((program, args)) = command.split_first() else {
        return "error: empty command".into();
    };
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(program)
            .args(args)
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await;
    match out {
        Ok(Ok(o)) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let line = text.lines().next().unwrap_or("").trim();
            line.chars().take(256).collect()
        }
        Ok(Ok(o)) => format!("error: exit {}", o.status.code().unwrap_or(-1)),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "error: timed out".into(),
    }
}
