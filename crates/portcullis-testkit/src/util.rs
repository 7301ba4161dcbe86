//! Shared plumbing: locating programs, running commands with deadlines, ports, files,
//! running as the server's own user, and the process guard that stops servers on drop.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::TestkitError;

/// Longest unix socket path the kernel accepts (`sun_path` is 108 bytes including the NUL).
pub(crate) const MAX_SOCKET_PATH: usize = 107;

/// How often readiness probes and exit checks poll.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Default limit for a server to become ready.
pub(crate) const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Limit for one administrative client invocation.
pub(crate) const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Start attempts when the kit picks the port itself (guards the `free_port` race).
pub(crate) const PORT_ATTEMPTS: u32 = 5;

/// Programs the kit knows about, with the Debian package that ships each one.
const PACKAGES: &[(&str, &str)] = &[
    ("initdb", "postgresql-15"),
    ("postgres", "postgresql-15"),
    ("pg_ctl", "postgresql-15"),
    ("pg_isready", "postgresql-client-15"),
    ("psql", "postgresql-client-15"),
    ("mariadbd", "mariadb-server"),
    ("mariadb-install-db", "mariadb-server"),
    ("mariadb", "mariadb-client"),
    ("mariadb-admin", "mariadb-client"),
    ("redis-server", "redis-server"),
    ("redis-cli", "redis-tools"),
    ("openssl", "openssl"),
    ("setpriv", "util-linux"),
    ("sh", "dash"),
    ("kill", "procps"),
];

/// Programs that live in PostgreSQL's versioned bin directory rather than on `PATH`
/// (Debian's `/usr/bin/psql` is a wrapper script that picks a cluster; the kit wants the
/// real binary).
const POSTGRES_PROGRAMS: &[&str] = &["initdb", "postgres", "pg_ctl", "pg_isready", "psql"];

/// Environment variable that overrides the PostgreSQL bin directory.
pub const PG_BIN_ENV: &str = "PORTCULLIS_TESTKIT_PG_BIN";

/// The PostgreSQL bin directory: `$PORTCULLIS_TESTKIT_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<major>/bin` that contains `postgres`.
pub(crate) fn postgres_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(PG_BIN_ENV) {
        return Some(PathBuf::from(dir));
    }
    let mut best: Option<(u32, PathBuf)> = None;
    let entries = fs::read_dir("/usr/lib/postgresql").ok()?;
    for entry in entries.flatten() {
        let Some(major) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let bin = entry.path().join("bin");
        if bin.join("postgres").is_file() && best.as_ref().is_none_or(|(m, _)| major > *m) {
            best = Some((major, bin));
        }
    }
    best.map(|(_, bin)| bin)
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Absolute path of a program the kit (or a test) needs.
///
/// PostgreSQL programs are looked up in the PostgreSQL bin directory first (see
/// [`PG_BIN_ENV`]); everything is then looked up on `PATH` and in `/usr/sbin` and `/sbin`
/// (where Debian puts `mariadbd`, and which a non-root `PATH` often lacks). Exists so tests
/// can run the real clients (`psql` 15 rather than Debian's wrapper) and get an install
/// hint instead of "No such file or directory".
pub fn binary_path(name: &str) -> Result<PathBuf, TestkitError> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if POSTGRES_PROGRAMS.contains(&name) {
        if let Some(dir) = postgres_bin_dir() {
            dirs.push(dir);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    for extra in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let extra = PathBuf::from(extra);
        if !dirs.contains(&extra) {
            dirs.push(extra);
        }
    }
    for dir in &dirs {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    let package = PACKAGES
        .iter()
        .find(|(bin, _)| *bin == name)
        .map_or("<unknown: run `apt-file search` for it>", |(_, pkg)| *pkg);
    Err(TestkitError::MissingBinary {
        binary: name.to_owned(),
        package: package.to_owned(),
        searched: dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":"),
    })
}

/// Checks that every named program is installed, failing on the first missing one with an
/// error that names it and the Debian package to install.
///
/// Exists so a test can fail (or skip) up front with a useful message instead of half-way
/// through starting a server.
pub fn require_binaries(names: &[&str]) -> Result<(), TestkitError> {
    for name in names {
        binary_path(name)?;
    }
    Ok(())
}

/// Picks a currently free TCP port on 127.0.0.1.
///
/// Binds port 0, reads the port the kernel chose and releases it. This is inherently racy
/// (another process may take the port before the server binds it), so the kit (a) never
/// hands out the same port twice within one process and (b) retries a server start with a
/// new port when the server reports "Address already in use".
pub fn free_port() -> Result<u16, TestkitError> {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let handed_out = HANDED_OUT.get_or_init(|| Mutex::new(HashSet::new()));
    const ATTEMPTS: u32 = 64;
    let mut detail = String::from("every port offered by the kernel was already handed out");
    for _ in 0..ATTEMPTS {
        let port = match TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()) {
            Ok(addr) => addr.port(),
            Err(e) => {
                detail = e.to_string();
                continue;
            }
        };
        let mut set = handed_out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if set.insert(port) {
            return Ok(port);
        }
    }
    Err(TestkitError::NoFreePort {
        attempts: ATTEMPTS,
        detail,
    })
}

/// Writes `contents` to `path` with mode 0600, replacing any existing file.
///
/// Exists because libpq (and the servers) refuse private keys that are group- or
/// world-readable; tests use it for client keys and certificates.
pub fn write_private_file(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), TestkitError> {
    write_file_mode(path, contents.as_ref(), 0o600)
}

pub(crate) fn write_file_mode(path: &Path, contents: &[u8], mode: u32) -> Result<(), TestkitError> {
    let ctx = || format!("writing {}", path.display());
    // Remove first so the mode of a pre-existing file cannot leak through.
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(TestkitError::io(ctx(), e)),
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| TestkitError::io(ctx(), e))?;
    file.write_all(contents)
        .map_err(|e| TestkitError::io(ctx(), e))?;
    // The umask may have removed bits we asked for; set the exact mode.
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| TestkitError::io(ctx(), e))?;
    Ok(())
}

/// Runs a command to completion with a deadline and returns its output, whatever the exit
/// status.
///
/// Exists so tests (and the kit) never hang on a client that waits forever: on timeout the
/// process is killed and reaped and [`TestkitError::CommandTimedOut`] carries the output so
/// far. Standard input is closed; output goes through anonymous temp files, so a grandchild
/// holding the descriptors cannot block the caller.
pub fn run_command(cmd: &mut Command, timeout: Duration) -> Result<Output, TestkitError> {
    let display = command_line(cmd);
    let ctx = |what: &str| format!("{what} for `{display}`");
    let mut out =
        tempfile::tempfile().map_err(|e| TestkitError::io(ctx("creating temp file"), e))?;
    let mut err =
        tempfile::tempfile().map_err(|e| TestkitError::io(ctx("creating temp file"), e))?;
    let out_w = out
        .try_clone()
        .map_err(|e| TestkitError::io(ctx("cloning fd"), e))?;
    let err_w = err
        .try_clone()
        .map_err(|e| TestkitError::io(ctx("cloning fd"), e))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out_w)
        .stderr(err_w)
        .spawn()
        .map_err(|e| TestkitError::io(ctx("spawning"), e))?;
    let status =
        wait_with_deadline(&mut child, timeout).map_err(|e| TestkitError::io(ctx("waiting"), e))?;
    let read_all = |f: &mut fs::File| -> Vec<u8> {
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(0)).is_ok() {
            let _ = f.read_to_end(&mut buf);
        }
        buf
    };
    let stdout = read_all(&mut out);
    let stderr = read_all(&mut err);
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(TestkitError::CommandTimedOut {
            command: display,
            timeout,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }),
    }
}

/// Like [`run_command`] but an unsuccessful exit is an error too.
pub(crate) fn run_checked(cmd: &mut Command, timeout: Duration) -> Result<Output, TestkitError> {
    let output = run_command(cmd, timeout)?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(TestkitError::CommandFailed {
            command: command_line(cmd),
            status: output.status.to_string(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// Waits for `child` until `timeout`; on timeout kills and reaps it and returns `None`.
pub(crate) fn wait_with_deadline(
    child: &mut Child,
    timeout: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut sleep = Duration::from_millis(5);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        thread::sleep(sleep);
        sleep = (sleep * 2).min(POLL_INTERVAL);
    }
}

/// A printable rendering of a command line for error messages.
pub(crate) fn command_line(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Whether this process runs with effective uid 0, read from `/proc/self/status` (the
/// crate forbids `unsafe`, so no `geteuid()`).
pub(crate) fn running_as_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status.lines().find_map(|line| {
                    let rest = line.strip_prefix("Uid:")?;
                    // real, effective, saved, filesystem
                    rest.split_whitespace().nth(1).map(|euid| euid == "0")
                })
            })
            .unwrap_or(false)
    })
}

/// The name of the user this process runs as (for MariaDB's unix_socket admin account).
pub(crate) fn current_user_name() -> Result<String, TestkitError> {
    let output = run_checked(Command::new("id").arg("-un"), ADMIN_TIMEOUT)?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// A command that runs `program` as `user` when this process is root, else as ourselves.
///
/// Uses `setpriv`, which switches uid/gid and then *execs* the program, so the server is
/// our direct child: we know its pid, can signal it and reap it. (`runuser` forks and keeps
/// an intermediate process, which hides the server's pid; and on machines whose PID 1 does
/// not reap orphans, a daemonised server becomes a zombie.) `HOME` is set to `home` so
/// clients do not trip over root's home directory.
pub(crate) fn command_as(user: &str, program: &Path, home: &Path) -> Result<Command, TestkitError> {
    let mut cmd = if running_as_root() {
        let mut cmd = Command::new(binary_path("setpriv")?);
        cmd.arg(format!("--reuid={user}"))
            .arg(format!("--regid={user}"))
            .arg("--init-groups")
            .arg("--")
            .arg(program);
        cmd
    } else {
        Command::new(program)
    };
    cmd.env("HOME", home).current_dir(home);
    Ok(cmd)
}

/// When root, gives `user` ownership of `dir` and everything below it (servers refuse to
/// run as root and insist on owning their data and key files).
pub(crate) fn chown_tree_if_root(dir: &Path, user: &str) -> Result<(), TestkitError> {
    if !running_as_root() {
        return Ok(());
    }
    run_checked(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:"))
            .arg(dir),
        ADMIN_TIMEOUT,
    )?;
    Ok(())
}

/// Creates the per-server temp dir under `base` and checks that `socket_name` inside it
/// stays within the unix socket path limit.
pub(crate) fn make_server_dir(
    base: &Path,
    prefix: &str,
    socket_name: &str,
) -> Result<tempfile::TempDir, TestkitError> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .map_err(|e| TestkitError::io(format!("creating temp dir in {}", base.display()), e))?;
    let socket = dir.path().join(socket_name);
    let len = socket.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(TestkitError::SocketPathTooLong {
            path: socket,
            len,
            max: MAX_SOCKET_PATH,
        });
    }
    Ok(dir)
}

/// Writes the PEM material into `dir` as `ca.crt`, `server.crt` (0644) and `server.key`
/// (0600).
pub(crate) fn write_tls_files(dir: &Path, tls: &crate::ServerTls) -> Result<(), TestkitError> {
    write_file_mode(&dir.join("ca.crt"), tls.ca_cert_pem.as_bytes(), 0o644)?;
    write_file_mode(
        &dir.join("server.crt"),
        tls.server_cert_pem.as_bytes(),
        0o644,
    )?;
    write_file_mode(
        &dir.join("server.key"),
        tls.server_key_pem.as_bytes(),
        0o600,
    )?;
    Ok(())
}

/// Substitutes the kit's placeholders in a caller-supplied config line.
///
/// Only the known placeholders are replaced; other braces are left alone.
pub(crate) fn substitute(line: &str, vars: &[(&str, String)]) -> String {
    let mut out = line.to_owned();
    for (name, value) in vars {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// The last `max_lines` lines (at most 8 KiB) of a log file, or a note why there are none.
pub fn log_tail(path: &Path, max_lines: usize) -> String {
    const MAX_BYTES: u64 = 8 * 1024;
    let Ok(mut file) = fs::File::open(path) else {
        return format!("<could not open {}>", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(MAX_BYTES);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return format!("<could not read {}>", path.display());
    }
    let mut buf = Vec::new();
    if file.read_to_end(&mut buf).is_err() {
        return format!("<could not read {}>", path.display());
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(max_lines);
    let tail = lines.get(from..).unwrap_or_default().join("\n");
    if tail.is_empty() {
        "<log is empty>".to_owned()
    } else {
        tail
    }
}

/// Whether a server log says the listening port was taken (the `free_port` race).
pub(crate) fn log_says_port_in_use(log: &Path) -> bool {
    log_tail(log, 200)
        .to_ascii_lowercase()
        .contains("address already in use")
}

/// Opens (truncating) the server log for a start attempt and returns two handles for
/// the child's stdout and stderr.
pub(crate) fn open_log(log: &Path) -> Result<(fs::File, fs::File), TestkitError> {
    let file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o644)
        .open(log)
        .map_err(|e| TestkitError::io(format!("opening server log {}", log.display()), e))?;
    let clone = file
        .try_clone()
        .map_err(|e| TestkitError::io(format!("duplicating {}", log.display()), e))?;
    Ok((file, clone))
}

/// Owns a running server process (our direct child) and stops it on drop.
///
/// Drop sends `stop_signal` (if any) and waits up to `grace` for the server to exit, then
/// SIGKILLs it, and always reaps it, so no server or zombie outlives the test, even when
/// the test panics. A small watchdog shell (`read` on a pipe only we hold) kills the server
/// if this process dies without running destructors (SIGKILL, `abort`, a CI timeout).
pub(crate) struct ServerProcess {
    child: Child,
    watchdog: Option<(Child, ChildStdin)>,
    stop_signal: Option<&'static str>,
    grace: Duration,
}

impl ServerProcess {
    /// Wraps a freshly spawned server. The watchdog is best effort: if it cannot be started
    /// the server still works, it just would not be cleaned up after a hard kill. After a
    /// hard kill the watchdog also removes `dir` (the server's temp dir).
    pub(crate) fn new(
        child: Child,
        stop_signal: Option<&'static str>,
        grace: Duration,
        dir: &Path,
    ) -> Self {
        let pid = child.id();
        let signal = stop_signal.unwrap_or("KILL");
        // `$0` is the pid, `$1` the first signal, `$2` the dir. After the first signal wait
        // (up to 5 s) until the process is gone or a zombie (`kill -0` succeeds on zombies,
        // so read the state from /proc), then make sure and clean up.
        let script = "read _ignored; kill -s \"$1\" \"$0\" 2>/dev/null; i=0; \
                      while [ $i -lt 50 ]; do \
                        s=$(sed -e 's/.*) //' /proc/\"$0\"/stat 2>/dev/null | cut -c1); \
                        { [ -z \"$s\" ] || [ \"$s\" = Z ]; } && break; \
                        sleep 0.1; i=$((i+1)); \
                      done; \
                      kill -s KILL \"$0\" 2>/dev/null; rm -rf -- \"$2\"";
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(pid.to_string())
            .arg(signal)
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
            .and_then(|mut w| match w.stdin.take() {
                Some(stdin) => Some((w, stdin)),
                None => {
                    let _ = w.kill();
                    let _ = w.wait();
                    None
                }
            });
        if watchdog.is_none() {
            tracing::warn!(pid, "could not start watchdog for test server");
        }
        Self {
            child,
            watchdog,
            stop_signal,
            grace,
        }
    }

    /// The server's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` if the server has already exited (and was reaped).
    pub(crate) fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn stop(&mut self) {
        // Disarm the watchdog first so it cannot signal a recycled pid later.
        if let Some((mut watchdog, stdin)) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
            drop(stdin);
        }
        if self.try_wait().is_some() {
            return;
        }
        if let Some(signal) = self.stop_signal {
            let sent = Command::new("kill")
                .arg("-s")
                .arg(signal)
                .arg(self.pid().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if sent {
                if let Ok(Some(_)) = wait_with_deadline(&mut self.child, self.grace) {
                    return;
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Quotes a string as an SQL string literal (`'...'`), for PostgreSQL and MariaDB
/// (MariaDB also treats backslash as an escape, so it is doubled too).
pub(crate) fn sql_string(value: &str, backslash_escapes: bool) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' if backslash_escapes => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Rejects values that can never be passed safely (NUL bytes).
pub(crate) fn check_no_nul(what: &str, value: &str) -> Result<(), TestkitError> {
    if value.contains('\0') {
        return Err(TestkitError::InvalidArgument(format!(
            "{what} contains a NUL byte"
        )));
    }
    Ok(())
}

/// 16 random bytes from the kernel as hex (for the kit's own Redis admin password).
pub(crate) fn random_hex() -> Result<String, TestkitError> {
    let mut buf = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| TestkitError::io("reading /dev/urandom", e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_known_placeholders_only() {
        let vars = [("dir", "/tmp/x".to_owned()), ("port", "5000".to_owned())];
        assert_eq!(
            substitute("ssl_cert_file = '{dir}/server.crt' # {port} {other}", &vars),
            "ssl_cert_file = '/tmp/x/server.crt' # 5000 {other}"
        );
    }

    #[test]
    fn private_file_is_0600_even_if_it_existed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_private_file(&path, "secret").unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_to_string(&path).unwrap(), "secret");
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports: HashSet<u16> = (0..50).map(|_| free_port().unwrap()).collect();
        assert_eq!(ports.len(), 50);
    }

    #[test]
    fn run_command_times_out_and_reaps() {
        let err =
            run_command(Command::new("sleep").arg("10"), Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, TestkitError::CommandTimedOut { .. }), "{err}");
    }

    #[test]
    fn missing_binary_names_package() {
        let err = binary_path("definitely-not-a-program-xyz").unwrap_err();
        assert!(err.to_string().contains("definitely-not-a-program-xyz"));
        let err = require_binaries(&["sh", "no-such-redis-cli-xyz"]).unwrap_err();
        assert!(err.to_string().contains("no-such-redis-cli-xyz"), "{err}");
    }

    #[test]
    fn socket_path_limit_is_enforced() {
        let base = tempfile::tempdir().unwrap();
        let long = base.path().join("d".repeat(100));
        fs::create_dir(&long).unwrap();
        let err = make_server_dir(&long, "p-", "mysqld.sock").unwrap_err();
        assert!(
            matches!(err, TestkitError::SocketPathTooLong { .. }),
            "{err}"
        );
    }

    #[test]
    fn sql_quoting() {
        assert_eq!(sql_string("a'b\\c", false), "'a''b\\c'");
        assert_eq!(sql_string("a'b\\c", true), "'a''b\\\\c'");
    }

    #[test]
    fn log_tail_takes_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        fs::write(&path, "1\n2\n3\n4\n").unwrap();
        assert_eq!(log_tail(&path, 2), "3\n4");
        assert!(log_tail(&dir.path().join("missing"), 2).contains("could not open"));
    }
}
