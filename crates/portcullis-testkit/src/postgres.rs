//! A private PostgreSQL server with certificate login.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::util::{
    binary_path, check_no_nul, chown_tree_if_root, command_as, free_port, log_says_port_in_use,
    log_tail, make_server_dir, open_log, run_command, sql_string, write_file_mode, write_tls_files,
    ServerProcess, ADMIN_TIMEOUT, DEFAULT_START_TIMEOUT, POLL_INTERVAL, PORT_ATTEMPTS,
};
use crate::{ServerTls, TestkitError};

const SERVER: &str = "postgres";
const OS_USER: &str = "postgres";
const DEFAULT_HBA: &str = "local all all trust\nhostssl all all 127.0.0.1/32 cert\n";
const KIT_CONF: &str = "portcullis-testkit.conf";
const LOG_TAIL_LINES: usize = 40;

/// Configures and starts a [`PostgresServer`]; exists so tests can start from the kit's
/// defaults and override only what their scenario (or the docs they check) needs.
#[derive(Debug, Clone)]
#[must_use]
pub struct PostgresBuilder {
    tls: ServerTls,
    conf_lines: Vec<String>,
    pg_hba: Option<String>,
    kit_tls_config: bool,
    port: Option<u16>,
    base_dir: PathBuf,
    start_timeout: Duration,
}

impl PostgresBuilder {
    /// Lines appended verbatim to `postgresql.conf` after the kit's own lines (so they win),
    /// with `{dir}`, `{port}` and `{data_dir}` substituted.
    pub fn postgresql_conf_lines<I, S>(mut self, lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.conf_lines.extend(lines.into_iter().map(Into::into));
        self
    }

    /// Replaces the whole `pg_hba.conf` (placeholders substituted). The default is
    /// `local all all trust` + `hostssl all all 127.0.0.1/32 cert`; keep a `local ... trust`
    /// (or `peer`) line or the kit's admin helpers cannot log in.
    pub fn pg_hba(mut self, contents: impl Into<String>) -> Self {
        self.pg_hba = Some(contents.into());
        self
    }

    /// Whether the kit writes its own `ssl = on` / `ssl_*_file` lines (default `true`).
    /// Turn off when the test supplies those lines itself, e.g. verbatim from the docs.
    pub fn kit_tls_config(mut self, enabled: bool) -> Self {
        self.kit_tls_config = enabled;
        self
    }

    /// Listen on this port instead of a free one picked by the kit (no retry on conflict).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Directory in which the server's temp dir is created (default `/tmp`: short enough for
    /// unix socket paths and traversable by the `postgres` user).
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = dir.into();
        self
    }

    /// How long to wait for the server to accept connections (default 30 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Creates the cluster and starts the server; returns once it accepts connections.
    pub fn start(self) -> Result<PostgresServer, TestkitError> {
        let initdb = binary_path("initdb")?;
        let postgres = binary_path("postgres")?;
        let pg_isready = binary_path("pg_isready")?;
        let psql = binary_path("psql")?;
        // pg's socket is `.s.PGSQL.<port>`; check with the longest port.
        let dir = make_server_dir(&self.base_dir, "pctk-pg-", ".s.PGSQL.65535")?;
        let d = dir.path().to_path_buf();
        let data = d.join("data");
        let log = d.join("server.log");
        write_tls_files(&d, &self.tls)?;
        chown_tree_if_root(&d, OS_USER)?;

        let mut init = command_as(OS_USER, &initdb, &d)?;
        init.arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"]);
        let out = run_command(&mut init, Duration::from_secs(120))?;
        if !out.status.success() {
            return Err(TestkitError::StartFailed {
                server: SERVER,
                reason: format!(
                    "initdb failed ({}): {}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
                log: log.clone(),
                log_tail: String::from("<initdb output is above>"),
            });
        }

        let conf_path = data.join("postgresql.conf");
        let mut conf = fs::read_to_string(&conf_path)
            .map_err(|e| TestkitError::io(format!("reading {}", conf_path.display()), e))?;
        conf.push_str(&format!("\ninclude '{KIT_CONF}'\n"));
        write_file_mode(&conf_path, conf.as_bytes(), 0o600)?;

        let attempts = if self.port.is_some() {
            1
        } else {
            PORT_ATTEMPTS
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = match self.port {
                Some(port) => port,
                None => free_port()?,
            };
            let vars = [
                ("dir", d.display().to_string()),
                ("port", port.to_string()),
                ("data_dir", data.display().to_string()),
            ];
            let hba = crate::util::substitute(self.pg_hba.as_deref().unwrap_or(DEFAULT_HBA), &vars);
            write_file_mode(&data.join("pg_hba.conf"), hba.as_bytes(), 0o644)?;
            let kit_conf = self.kit_conf(&vars);
            write_file_mode(&data.join(KIT_CONF), kit_conf.as_bytes(), 0o644)?;
            chown_tree_if_root(&d, OS_USER)?;

            let (out_log, err_log) = open_log(&log)?;
            let child = command_as(OS_USER, &postgres, &d)?
                .arg("-D")
                .arg(&data)
                .stdin(Stdio::null())
                .stdout(out_log)
                .stderr(err_log)
                .spawn()
                .map_err(|e| TestkitError::io(format!("spawning {}", postgres.display()), e))?;
            // SIGQUIT = immediate shutdown (what `pg_ctl stop -m immediate` sends).
            let mut process = ServerProcess::new(child, Some("QUIT"), Duration::from_secs(10), &d);
            tracing::debug!(port, dir = %d.display(), pid = process.pid(), "starting postgres");

            let deadline = Instant::now() + self.start_timeout;
            let failure = loop {
                if let Some(status) = process.try_wait() {
                    break format!("postgres exited during startup ({status})");
                }
                let mut probe = std::process::Command::new(&pg_isready);
                probe
                    .arg("-q")
                    .arg("-h")
                    .arg(&d)
                    .arg("-p")
                    .arg(port.to_string())
                    .args(["-U", "postgres", "-d", "postgres", "-t", "2"]);
                if let Ok(out) = run_command(&mut probe, Duration::from_secs(5)) {
                    if out.status.success() {
                        return Ok(PostgresServer {
                            process,
                            psql,
                            port,
                            log,
                            dir,
                        });
                    }
                }
                if Instant::now() >= deadline {
                    break format!(
                        "not accepting connections after {:?} (pg_isready on {})",
                        self.start_timeout,
                        d.display()
                    );
                }
                thread::sleep(POLL_INTERVAL);
            };
            drop(process);
            if attempt < attempts && log_says_port_in_use(&log) {
                tracing::info!(port, "port taken before postgres could bind it; retrying");
                continue;
            }
            return Err(TestkitError::StartFailed {
                server: SERVER,
                reason: failure,
                log_tail: log_tail(&log, LOG_TAIL_LINES),
                log,
            });
        }
    }

    fn kit_conf(&self, vars: &[(&str, String)]) -> String {
        let mut lines: Vec<String> = vec![
            "# written by portcullis-testkit".into(),
            "listen_addresses = '127.0.0.1'".into(),
            "port = {port}".into(),
            "unix_socket_directories = '{dir}'".into(),
            "fsync = off".into(),
            "synchronous_commit = off".into(),
            "full_page_writes = off".into(),
            "log_connections = on".into(),
        ];
        if self.kit_tls_config {
            lines.extend([
                "ssl = on".into(),
                "ssl_cert_file = '{dir}/server.crt'".into(),
                "ssl_key_file = '{dir}/server.key'".into(),
                "ssl_ca_file = '{dir}/ca.crt'".into(),
            ]);
        }
        lines.push("# caller-supplied lines".into());
        lines.extend(self.conf_lines.iter().cloned());
        let mut out = String::new();
        for line in &lines {
            out.push_str(&crate::util::substitute(line, vars));
            out.push('\n');
        }
        out
    }
}

/// A running private PostgreSQL server.
///
/// Exists so tests can exercise real certificate login (CN = database user) against a real
/// server. Dropping it shuts the server down (immediate mode), reaps it and removes its
/// temp dir.
pub struct PostgresServer {
    // Field order matters: the process must stop before the directory is removed.
    process: ServerProcess,
    psql: PathBuf,
    port: u16,
    log: PathBuf,
    dir: TempDir,
}

impl std::fmt::Debug for PostgresServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresServer")
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .field("pid", &self.process.pid())
            .finish()
    }
}

impl PostgresServer {
    /// Starts configuring a server that presents and trusts `tls`.
    pub fn builder(tls: ServerTls) -> PostgresBuilder {
        PostgresBuilder {
            tls,
            conf_lines: Vec::new(),
            pg_hba: None,
            kit_tls_config: true,
            port: None,
            base_dir: PathBuf::from("/tmp"),
            start_timeout: DEFAULT_START_TIMEOUT,
        }
    }

    /// The server's process id (our direct child), for diagnostics and tests.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Host to connect to over TCP: always `127.0.0.1`.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's temp dir: holds `ca.crt`, `server.crt`, `server.key`, `server.log`,
    /// the unix socket and `data/`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The data directory (`{dir}/data`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Path of the server log (stdout and stderr of the postmaster).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Runs one SQL statement as `postgres` over the unix socket in database `postgres` and
    /// returns psql's unaligned, tuples-only output (`-At`) without the trailing newline.
    pub fn admin_sql(&self, sql: &str) -> Result<String, TestkitError> {
        self.admin_sql_in("postgres", sql)
    }

    /// Like [`admin_sql`](Self::admin_sql) but in `database`.
    pub fn admin_sql_in(&self, database: &str, sql: &str) -> Result<String, TestkitError> {
        check_no_nul("SQL", sql)?;
        check_no_nul("database name", database)?;
        let mut cmd = command_as(OS_USER, &self.psql, self.dir.path())?;
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(self.dir.path())
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", database, "-c", sql]);
        let out = run_command(&mut cmd, ADMIN_TIMEOUT)?;
        if !out.status.success() {
            return Err(TestkitError::Admin {
                server: SERVER,
                command: sql.to_owned(),
                message: format!(
                    "psql exited with {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                log: self.log.clone(),
            });
        }
        let mut stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if stdout.ends_with('\n') {
            stdout.pop();
        }
        Ok(stdout)
    }

    /// `CREATE ROLE "<name>" LOGIN`: a role that can log in with a client certificate whose
    /// CN is `name`.
    pub fn create_role(&self, name: &str) -> Result<(), TestkitError> {
        self.admin_sql(&format!("CREATE ROLE {} LOGIN", quote_ident(name)))
            .map(drop)
    }

    /// `CREATE DATABASE "<name>" OWNER "<owner>"`.
    pub fn create_database(&self, name: &str, owner: &str) -> Result<(), TestkitError> {
        self.admin_sql(&format!(
            "CREATE DATABASE {} OWNER {}",
            quote_ident(name),
            quote_ident(owner)
        ))
        .map(drop)
    }

    /// A libpq connection string for certificate login as `user` to `dbname`, verifying
    /// the server (`sslmode=verify-full`) with the given client files.
    pub fn tls_conninfo(
        &self,
        user: &str,
        dbname: &str,
        ca_cert: &Path,
        client_cert: &Path,
        client_key: &Path,
    ) -> String {
        let q = |s: &str| sql_string(s, true);
        format!(
            "host={} port={} user={} dbname={} sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
            self.host(),
            self.port,
            q(user),
            q(dbname),
            q(&ca_cert.display().to_string()),
            q(&client_cert.display().to_string()),
            q(&client_key.display().to_string()),
        )
    }
}

/// Quotes a PostgreSQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idents_are_quoted() {
        assert_eq!(quote_ident("al\"ice"), "\"al\"\"ice\"");
    }

    #[test]
    fn caller_lines_follow_kit_lines_and_tls_can_be_disabled() {
        let tls = ServerTls {
            ca_cert_pem: String::new(),
            server_cert_pem: String::new(),
            server_key_pem: String::new(),
        };
        let b = PostgresServer::builder(tls)
            .kit_tls_config(false)
            .postgresql_conf_lines(["ssl_cert_file = '{dir}/x.crt'"]);
        let conf = b.kit_conf(&[("dir", "/t".into()), ("port", "1".into())]);
        assert!(!conf.contains("ssl = on"));
        assert!(conf.contains("port = 1\n"));
        assert!(conf.ends_with("ssl_cert_file = '/t/x.crt'\n"));
    }
}
