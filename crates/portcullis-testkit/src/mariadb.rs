//! A private MariaDB server with TLS and certificate-checked accounts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::util::{
    binary_path, check_no_nul, chown_tree_if_root, command_as, current_user_name, free_port,
    log_says_port_in_use, log_tail, make_server_dir, open_log, run_command, running_as_root,
    sql_string, substitute, write_file_mode, write_tls_files, ServerProcess, ADMIN_TIMEOUT,
    DEFAULT_START_TIMEOUT, POLL_INTERVAL, PORT_ATTEMPTS,
};
use crate::{ServerTls, TestkitError};

const SERVER: &str = "mariadb";
const OS_USER: &str = "mysql";
const SOCKET: &str = "mysqld.sock";
const LOG_TAIL_LINES: usize = 40;

/// Configures and starts a [`MariaDbServer`]; exists so tests can override the kit's
/// defaults with lines taken from the docs.
#[derive(Debug, Clone)]
#[must_use]
pub struct MariaDbBuilder {
    tls: ServerTls,
    my_cnf_lines: Vec<String>,
    extra_args: Vec<String>,
    kit_tls_config: bool,
    port: Option<u16>,
    base_dir: PathBuf,
    start_timeout: Duration,
}

impl MariaDbBuilder {
    /// Lines appended verbatim to the server's `my.cnf`, inside its `[mariadbd]` group after
    /// the kit's lines (so they win; add your own `[group]` header to leave it), with
    /// `{dir}`, `{port}`, `{data_dir}` and `{socket}` substituted.
    pub fn my_cnf_lines<I, S>(mut self, lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.my_cnf_lines.extend(lines.into_iter().map(Into::into));
        self
    }

    /// Extra `mariadbd` command-line arguments (placeholders substituted), after
    /// `--defaults-file`.
    pub fn extra_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Whether the kit writes its own `ssl-ca` / `ssl-cert` / `ssl-key` lines (default
    /// `true`).
    pub fn kit_tls_config(mut self, enabled: bool) -> Self {
        self.kit_tls_config = enabled;
        self
    }

    /// Listen on this port instead of a free one picked by the kit (no retry on conflict).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Directory in which the server's temp dir is created (default `/tmp`).
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = dir.into();
        self
    }

    /// How long to wait for the server to answer `ping` (default 30 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Initialises the data directory and starts the server; returns once it answers.
    pub fn start(self) -> Result<MariaDbServer, TestkitError> {
        let mariadbd = binary_path("mariadbd")?;
        let install_db = binary_path("mariadb-install-db")?;
        let client = binary_path("mariadb")?;
        let admin = binary_path("mariadb-admin")?;
        let admin_user = if running_as_root() {
            "root".to_owned()
        } else {
            current_user_name()?
        };
        let dir = make_server_dir(&self.base_dir, "pctk-my-", SOCKET)?;
        let d = dir.path().to_path_buf();
        let data = d.join("data");
        let socket = d.join(SOCKET);
        let log = d.join("server.log");
        write_tls_files(&d, &self.tls)?;
        // Its own temporary directory: the bootstrap and the server otherwise share /tmp with
        // every other MariaDB on the machine (a parallel test's install once failed there on
        // "Could not remove temporary table").
        let tmp = d.join("tmp");
        std::fs::create_dir_all(&tmp)
            .map_err(|e| TestkitError::io(format!("creating {}", tmp.display()), e))?;
        chown_tree_if_root(&d, OS_USER)?;

        let mut install = command_as(OS_USER, &install_db, &d)?;
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg("--skip-test-db")
            .arg("--auth-root-authentication-method=socket")
            .arg(format!("--auth-root-socket-user={admin_user}"));
        let out = run_command(&mut install, Duration::from_secs(120))?;
        if !out.status.success() {
            return Err(TestkitError::StartFailed {
                server: SERVER,
                reason: format!(
                    "mariadb-install-db failed ({}): {}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
                log: log.clone(),
                log_tail: String::from("<mariadb-install-db output is above>"),
            });
        }

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
                ("socket", socket.display().to_string()),
            ];
            let cnf_path = d.join("my.cnf");
            write_file_mode(&cnf_path, self.my_cnf(&vars).as_bytes(), 0o644)?;
            let (out_log, err_log) = open_log(&log)?;
            chown_tree_if_root(&d, OS_USER)?;

            let mut cmd = command_as(OS_USER, &mariadbd, &d)?;
            cmd.arg(format!("--defaults-file={}", cnf_path.display()));
            cmd.args(self.extra_args.iter().map(|a| substitute(a, &vars)));
            let child = cmd
                .stdin(Stdio::null())
                .stdout(out_log)
                .stderr(err_log)
                .spawn()
                .map_err(|e| TestkitError::io(format!("spawning {}", mariadbd.display()), e))?;
            // A throwaway server: SIGKILL is the fastest clean-enough stop.
            let mut process = ServerProcess::new(child, None, Duration::ZERO, &d);
            tracing::debug!(port, dir = %d.display(), pid = process.pid(), "starting mariadb");

            let deadline = Instant::now() + self.start_timeout;
            let failure = loop {
                if let Some(status) = process.try_wait() {
                    break format!("mariadbd exited during startup ({status})");
                }
                let mut probe = Command::new(&admin);
                probe
                    .arg("--no-defaults")
                    .arg("--protocol=socket")
                    .arg(format!("--socket={}", socket.display()))
                    .arg(format!("--user={admin_user}"))
                    .args(["--connect-timeout=2", "ping"]);
                if let Ok(out) = run_command(&mut probe, Duration::from_secs(5)) {
                    if out.status.success() {
                        return Ok(MariaDbServer {
                            process,
                            client,
                            admin_user,
                            port,
                            log,
                            dir,
                        });
                    }
                }
                if Instant::now() >= deadline {
                    break format!(
                        "no answer to `mariadb-admin ping` on {} after {:?}",
                        socket.display(),
                        self.start_timeout
                    );
                }
                thread::sleep(POLL_INTERVAL);
            };
            drop(process);
            if attempt < attempts && log_says_port_in_use(&log) {
                tracing::info!(port, "port taken before mariadbd could bind it; retrying");
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

    fn my_cnf(&self, vars: &[(&str, String)]) -> String {
        let mut lines: Vec<String> = vec![
            "# written by portcullis-testkit".into(),
            "[mariadbd]".into(),
            "datadir = {data_dir}".into(),
            "tmpdir = {dir}/tmp".into(),
            "socket = {socket}".into(),
            "port = {port}".into(),
            "bind-address = 127.0.0.1".into(),
            "pid-file = {dir}/mysqld.pid".into(),
            "skip-name-resolve".into(),
            "innodb_buffer_pool_size = 32M".into(),
            "innodb_flush_log_at_trx_commit = 2".into(),
            // Many parallel servers can exhaust the kernel's aio contexts (io_setup EAGAIN).
            "innodb_use_native_aio = 0".into(),
        ];
        if self.kit_tls_config {
            lines.extend([
                "ssl-ca = {dir}/ca.crt".into(),
                "ssl-cert = {dir}/server.crt".into(),
                "ssl-key = {dir}/server.key".into(),
            ]);
        }
        lines.push("# caller-supplied lines".into());
        lines.extend(self.my_cnf_lines.iter().cloned());
        let mut out = String::new();
        for line in &lines {
            out.push_str(&substitute(line, vars));
            out.push('\n');
        }
        out
    }
}

/// A running private MariaDB server.
///
/// Exists so tests can exercise real certificate-checked logins (`REQUIRE SUBJECT`,
/// `REQUIRE X509`). Note that MariaDB enforces client certificates per account, not per
/// server: create accounts with [`create_user_require_subject`](Self::create_user_require_subject).
/// Dropping it kills and reaps the server and removes its temp dir.
pub struct MariaDbServer {
    // Field order matters: the process must stop before the directory is removed.
    process: ServerProcess,
    client: PathBuf,
    admin_user: String,
    port: u16,
    log: PathBuf,
    dir: TempDir,
}

impl std::fmt::Debug for MariaDbServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MariaDbServer")
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .field("pid", &self.process.pid())
            .finish()
    }
}

impl MariaDbServer {
    /// Starts configuring a server that presents and trusts `tls`.
    pub fn builder(tls: ServerTls) -> MariaDbBuilder {
        MariaDbBuilder {
            tls,
            my_cnf_lines: Vec::new(),
            extra_args: Vec::new(),
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

    /// The server's temp dir: holds `ca.crt`, `server.crt`, `server.key`, `my.cnf`,
    /// `server.log`, the socket and `data/`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of the unix socket.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join(SOCKET)
    }

    /// Path of the server log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Runs SQL (one or more `;`-separated statements) as the administrator over the unix
    /// socket (`root` via unix_socket auth when the test runs as root, else the current OS
    /// user) and returns the batch output (`-N -B`: tab-separated, no headers) without the
    /// trailing newline.
    pub fn admin_sql(&self, sql: &str) -> Result<String, TestkitError> {
        check_no_nul("SQL", sql)?;
        let mut cmd = Command::new(&self.client);
        cmd.arg("--no-defaults")
            .arg("--protocol=socket")
            .arg(format!("--socket={}", self.socket_path().display()))
            .arg(format!("--user={}", self.admin_user))
            .args(["-N", "-B", "-e", sql]);
        let out = run_command(&mut cmd, ADMIN_TIMEOUT)?;
        if !out.status.success() {
            return Err(TestkitError::Admin {
                server: SERVER,
                command: sql.to_owned(),
                message: format!(
                    "mariadb exited with {}: {}",
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

    /// `CREATE USER '<name>'@'%' REQUIRE SUBJECT '<subject>'`: an account that can only log
    /// in with a client certificate from the CA whose subject, in OpenSSL's one-line form
    /// (`/O=org/CN=alice`), equals `subject` exactly.
    pub fn create_user_require_subject(
        &self,
        name: &str,
        subject: &str,
    ) -> Result<(), TestkitError> {
        self.admin_sql(&format!(
            "CREATE USER {}@'%' REQUIRE SUBJECT {}",
            sql_string(name, true),
            sql_string(subject, true)
        ))
        .map(drop)
    }

    /// `CREATE DATABASE` `name` and `GRANT ALL` on it to `'<user>'@'%'`.
    pub fn create_database(&self, name: &str, grant_to: Option<&str>) -> Result<(), TestkitError> {
        let db = quote_ident(name);
        let mut sql = format!("CREATE DATABASE {db}");
        if let Some(user) = grant_to {
            sql.push_str(&format!(
                "; GRANT ALL ON {db}.* TO {}@'%'",
                sql_string(user, true)
            ));
        }
        self.admin_sql(&sql).map(drop)
    }
}

/// Quotes a MariaDB identifier.
fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_lines_follow_kit_lines() {
        let tls = ServerTls {
            ca_cert_pem: String::new(),
            server_cert_pem: String::new(),
            server_key_pem: String::new(),
        };
        let b = MariaDbServer::builder(tls)
            .kit_tls_config(false)
            .my_cnf_lines(["ssl-cert = {dir}/a.crt", "require-secure-transport = ON"]);
        let cnf = b.my_cnf(&[("dir", "/t".into()), ("port", "7".into())]);
        assert!(!cnf.contains("ssl-ca"));
        assert!(cnf.contains("port = 7\n"));
        assert!(cnf.ends_with("ssl-cert = /t/a.crt\nrequire-secure-transport = ON\n"));
        assert_eq!(quote_ident("a`b"), "`a``b`");
    }
}
