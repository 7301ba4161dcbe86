//! A private Redis server with TLS and client certificates.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::util::{
    binary_path, check_no_nul, free_port, log_says_port_in_use, log_tail, make_server_dir,
    open_log, random_hex, run_command, substitute, write_file_mode, write_tls_files, ServerProcess,
    ADMIN_TIMEOUT, DEFAULT_START_TIMEOUT, POLL_INTERVAL, PORT_ATTEMPTS,
};
use crate::{ServerTls, TestkitError};

const SERVER: &str = "redis";
const SOCKET: &str = "redis.sock";
const ADMIN_USER: &str = "pctk-admin";
const LOG_TAIL_LINES: usize = 40;

/// Configures and starts a [`RedisServer`]; exists so tests can override the kit's defaults
/// with lines taken from the docs.
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisBuilder {
    tls: ServerTls,
    conf_lines: Vec<String>,
    kit_tls_config: bool,
    port: Option<u16>,
    base_dir: PathBuf,
    start_timeout: Duration,
}

impl RedisBuilder {
    /// Lines appended verbatim to `redis.conf` after the kit's lines (later directives win),
    /// with `{dir}`, `{port}` and `{socket}` substituted.
    pub fn conf_lines<I, S>(mut self, lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.conf_lines.extend(lines.into_iter().map(Into::into));
        self
    }

    /// Whether the kit writes its own `tls-port` / `tls-*-file` / `tls-auth-clients yes`
    /// lines (default `true`). When off, the kit still writes `port 0`; the caller must then
    /// supply `tls-port {port}` (or `port {port}`) and the TLS lines.
    pub fn kit_tls_config(mut self, enabled: bool) -> Self {
        self.kit_tls_config = enabled;
        self
    }

    /// Listen on this TLS port instead of a free one picked by the kit (no retry on
    /// conflict).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Directory in which the server's temp dir is created (default `/tmp`).
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = dir.into();
        self
    }

    /// How long to wait for the server to answer `PING` (default 30 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Starts the server; returns once it answers `PING` on its unix socket.
    pub fn start(self) -> Result<RedisServer, TestkitError> {
        let redis_server = binary_path("redis-server")?;
        let redis_cli = binary_path("redis-cli")?;
        let dir = make_server_dir(&self.base_dir, "pctk-rd-", SOCKET)?;
        let d = dir.path().to_path_buf();
        let socket = d.join(SOCKET);
        let log = d.join("server.log");
        let conf_path = d.join("redis.conf");
        write_tls_files(&d, &self.tls)?;
        let admin_password = random_hex()?;

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
                ("socket", socket.display().to_string()),
            ];
            write_file_mode(
                &conf_path,
                self.conf(&vars, &admin_password).as_bytes(),
                0o600,
            )?;
            let (out_log, err_log) = open_log(&log)?;
            let child = Command::new(&redis_server)
                .arg(&conf_path)
                .current_dir(&d)
                .stdin(Stdio::null())
                .stdout(out_log)
                .stderr(err_log)
                .spawn()
                .map_err(|e| TestkitError::io(format!("spawning {}", redis_server.display()), e))?;
            let mut process = ServerProcess::new(child, None, Duration::ZERO, &d);
            tracing::debug!(port, dir = %d.display(), pid = process.pid(), "starting redis");

            let deadline = Instant::now() + self.start_timeout;
            let failure = loop {
                if let Some(status) = process.try_wait() {
                    break format!("redis-server exited during startup ({status})");
                }
                let ping = admin_command(&redis_cli, &socket, &admin_password, &log, &["PING"]);
                if matches!(ping.as_deref(), Ok("PONG")) {
                    return Ok(RedisServer {
                        process,
                        redis_cli,
                        admin_password,
                        port,
                        log,
                        dir,
                    });
                }
                if Instant::now() >= deadline {
                    break format!(
                        "no PONG on {} after {:?}",
                        socket.display(),
                        self.start_timeout
                    );
                }
                thread::sleep(POLL_INTERVAL);
            };
            drop(process);
            if attempt < attempts && log_says_port_in_use(&log) {
                tracing::info!(
                    port,
                    "port taken before redis-server could bind it; retrying"
                );
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

    fn conf(&self, vars: &[(&str, String)], admin_password: &str) -> String {
        let mut lines: Vec<String> = vec![
            "# written by portcullis-testkit".into(),
            "bind 127.0.0.1".into(),
            "port 0".into(),
            "unixsocket {socket}".into(),
            "unixsocketperm 700".into(),
            "dir {dir}".into(),
            "daemonize no".into(),
            "logfile \"\"".into(),
            "save \"\"".into(),
            "appendonly no".into(),
            format!("user {ADMIN_USER} on >{admin_password} ~* &* +@all"),
        ];
        if self.kit_tls_config {
            lines.extend([
                "tls-port {port}".into(),
                "tls-cert-file {dir}/server.crt".into(),
                "tls-key-file {dir}/server.key".into(),
                "tls-ca-cert-file {dir}/ca.crt".into(),
                "tls-auth-clients yes".into(),
            ]);
        }
        lines.push("# caller-supplied lines".into());
        lines.extend(self.conf_lines.iter().cloned());
        let mut out = String::new();
        for line in &lines {
            out.push_str(&substitute(line, vars));
            out.push('\n');
        }
        out
    }
}

/// A running private Redis server (TLS only, client certificates required).
///
/// Exists so tests can exercise real TLS + ACL logins. Redis 7.0 cannot map a client
/// certificate to an ACL user, so clients present a certificate *and* `AUTH user pass`.
/// The kit administers the server over a unix socket (no TLS) as its own ACL user
/// `pctk-admin`, so admin helpers need no client certificate. Dropping it kills and reaps
/// the server and removes its temp dir.
pub struct RedisServer {
    // Field order matters: the process must stop before the directory is removed.
    process: ServerProcess,
    redis_cli: PathBuf,
    admin_password: String,
    port: u16,
    log: PathBuf,
    dir: TempDir,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .field("pid", &self.process.pid())
            .finish()
    }
}

impl RedisServer {
    /// Starts configuring a server that presents and trusts `tls`.
    pub fn builder(tls: ServerTls) -> RedisBuilder {
        RedisBuilder {
            tls,
            conf_lines: Vec::new(),
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

    /// The TLS port (plain TCP is disabled: `port 0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's temp dir: holds `ca.crt`, `server.crt`, `server.key`, `redis.conf`,
    /// `server.log` and the unix socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of the admin unix socket.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join(SOCKET)
    }

    /// Path of the server log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Runs one command as the kit's admin user over the unix socket (`redis-cli -e`, so
    /// error replies are errors) and returns the raw reply text without the trailing
    /// newline.
    pub fn command(&self, args: &[&str]) -> Result<String, TestkitError> {
        admin_command(
            &self.redis_cli,
            &self.socket_path(),
            &self.admin_password,
            &self.log,
            args,
        )
    }

    /// `ACL SETUSER <name> reset on ><password> <rules...>`: creates (or replaces) an ACL
    /// user that clients log in as with `AUTH <name> <password>`, e.g. rules
    /// `["~app:*", "+@all"]`.
    pub fn acl_setuser(
        &self,
        name: &str,
        password: &str,
        rules: &[&str],
    ) -> Result<(), TestkitError> {
        let pass = format!(">{password}");
        let mut args = vec!["ACL", "SETUSER", name, "reset", "on", pass.as_str()];
        args.extend_from_slice(rules);
        let reply = self.command(&args)?;
        if reply != "OK" {
            return Err(TestkitError::Admin {
                server: SERVER,
                command: format!("ACL SETUSER {name}"),
                message: format!("unexpected reply {reply:?}"),
                log: self.log.clone(),
            });
        }
        Ok(())
    }
}

/// Runs `redis-cli` against the unix socket as the kit's admin user.
fn admin_command(
    redis_cli: &Path,
    socket: &Path,
    admin_password: &str,
    log: &Path,
    args: &[&str],
) -> Result<String, TestkitError> {
    for arg in args {
        check_no_nul("Redis argument", arg)?;
    }
    let mut cmd = Command::new(redis_cli);
    cmd.arg("-s")
        .arg(socket)
        .args(["--user", ADMIN_USER, "--no-auth-warning", "-e"])
        // The password goes through the environment, not argv (visible in `ps`).
        .env("REDISCLI_AUTH", admin_password)
        .args(args);
    let out = run_command(&mut cmd, ADMIN_TIMEOUT)?;
    let mut stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if stdout.ends_with('\n') {
        stdout.pop();
    }
    if !out.status.success() {
        // Never echo the arguments: ACL SETUSER carries passwords.
        let command = args.first().copied().unwrap_or_default().to_owned();
        return Err(TestkitError::Admin {
            server: SERVER,
            command,
            message: format!(
                "redis-cli exited with {}: {} {}",
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            log: log.to_path_buf(),
        });
    }
    Ok(stdout)
}
