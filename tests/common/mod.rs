//! Shared harness for the end-to-end tests: runs the real `portcullis` daemon and `pcctl`.
//!
//! Binaries are taken from the cargo target dir next to the test executable
//! (`<target>/debug/deps/<test>` -> `<target>/debug/portcullis`), or from
//! `$PORTCULLIS_BIN_DIR` when set. They are not built by the tests: run
//! `cargo build --workspace` first (`cargo test --workspace` does that).
//!
//! Every [`Cluster`] has its own temp dir (config, data dir, daemon logs) and binds port 0,
//! so tests can run in parallel. Dropping a cluster kills the daemon and reaps it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    dead_code
)]

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_norway::Value;
use tempfile::TempDir;

/// Environment variable naming the directory that holds `portcullis` and `pcctl`.
pub const BIN_DIR_ENV: &str = "PORTCULLIS_BIN_DIR";

/// How long the daemon gets to write `<data_dir>/admin/auth_addr`.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Limit for one `pcctl` invocation.
pub const PCCTL_TIMEOUT: Duration = Duration::from_secs(30);

/// The cluster name every harness cluster gets unless overridden.
pub const CLUSTER_NAME: &str = "e2e";

/// Directory holding the workspace's binaries (see the module docs).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // <target>/<profile>/deps/<test-binary>
    let deps = exe.parent().expect("test binary has a parent dir");
    if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("deps has a parent").to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

/// Absolute path of a workspace binary (`portcullis`, `pcctl`); panics with a hint when it
/// has not been built.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} not found: run `cargo build --workspace` first (or set {BIN_DIR_ENV})",
        path.display()
    );
    path
}

/// The config every harness cluster starts from: auth only, no second factor, port 0.
pub fn base_config(data_dir: &Path) -> Value {
    let yaml = format!(
        "version: v1\n\
         cluster_name: {CLUSTER_NAME}\n\
         data_dir: {data}\n\
         log: {{ level: info, format: text }}\n\
         auth_service:\n  enabled: true\n  listen_addr: 127.0.0.1:0\n  authentication: {{ second_factor: 'off' }}\n\
         proxy_service: {{ enabled: false, mysql_listen_addr: '127.0.0.1:0' }}\n\
         db_service: {{ enabled: false }}\n",
        data = serde_json::to_string(&data_dir.display().to_string()).unwrap(),
    );
    serde_norway::from_str(&yaml).expect("base config is valid YAML")
}

/// Deep-merges `overrides` into `base`: mappings merge key by key, anything else replaces.
pub fn merge_yaml(base: &mut Value, overrides: Value) {
    match (base, overrides) {
        (Value::Mapping(base), Value::Mapping(overrides)) => {
            for (key, value) in overrides {
                match base.get_mut(&key) {
                    Some(existing) => merge_yaml(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overrides) => *base = overrides,
    }
}

/// A running single-node cluster: the real `portcullis start -c <config>` as a child
/// process, with its own temp dir.
pub struct Cluster {
    child: Child,
    auth_addr: SocketAddr,
    data_dir: PathBuf,
    config_path: PathBuf,
    stdout_log: PathBuf,
    stderr_log: PathBuf,
    // Last, so the daemon is gone (see Drop) before its files are removed.
    dir: TempDir,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("pid", &self.child.id())
            .field("auth_addr", &self.auth_addr)
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl Cluster {
    /// Starts a cluster with [`base_config`].
    pub fn start() -> Self {
        Self::start_with("{}")
    }

    /// Starts a cluster with [`base_config`] deep-merged with `yaml_overrides` (a YAML
    /// mapping, e.g. `"cluster_name: other\nlog: { level: debug }"`).
    pub fn start_with(yaml_overrides: &str) -> Self {
        let portcullis = bin("portcullis");
        // Fail before starting anything when pcctl is missing too.
        bin("pcctl");
        let dir = tempfile::Builder::new()
            .prefix("pc-e2e-")
            .tempdir()
            .expect("creating the cluster temp dir");
        let data_dir = dir.path().join("data");
        let mut config = base_config(&data_dir);
        let overrides: Value = serde_norway::from_str(yaml_overrides)
            .unwrap_or_else(|e| panic!("overrides are not YAML: {e}\n{yaml_overrides}"));
        if !overrides.is_null() {
            assert!(
                overrides.is_mapping(),
                "overrides must be a YAML mapping: {yaml_overrides}"
            );
            merge_yaml(&mut config, overrides);
        }
        let data_dir = config
            .get("data_dir")
            .and_then(Value::as_str)
            .map_or(data_dir, PathBuf::from);
        let config_path = dir.path().join("portcullis.yaml");
        fs::write(
            &config_path,
            serde_norway::to_string(&config).expect("serialising the config"),
        )
        .expect("writing the config");

        let stdout_log = dir.path().join("portcullis.stdout.log");
        let stderr_log = dir.path().join("portcullis.stderr.log");
        let child = spawn_daemon(
            &portcullis,
            &config_path,
            dir.path(),
            &stdout_log,
            &stderr_log,
        );

        let mut cluster = Self {
            child,
            auth_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            config_path,
            stdout_log,
            stderr_log,
            dir,
        };
        cluster.auth_addr = cluster.wait_for_auth_addr();
        cluster
    }

    /// Polls for `<data_dir>/admin/auth_addr` (and a parseable address in it); panics with
    /// the daemon's output if it exits or the file does not appear within
    /// [`START_TIMEOUT`]. The cluster is dropped (daemon killed) by the unwinding panic.
    fn wait_for_auth_addr(&mut self) -> SocketAddr {
        let path = self.data_dir.join("admin").join("auth_addr");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(text) = fs::read_to_string(&path) {
                if let Ok(addr) = text.trim().parse::<SocketAddr>() {
                    if self.data_dir.join("admin").join("identity.pem").is_file() {
                        return addr;
                    }
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "portcullis exited during startup ({status}) before writing {}\n{}",
                    path.display(),
                    self.logs()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "portcullis did not write {} (with identity.pem beside it) within {START_TIMEOUT:?}\n{}",
                    path.display(),
                    self.logs()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the daemon with SIGTERM (as an operator would), waiting up to 10 s for it to
    /// exit; returns whether it exited by itself.
    pub fn stop_gracefully(&mut self) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    /// Stops the daemon gracefully and starts it again on the same config and data dir.
    pub fn restart(&mut self) {
        assert!(
            self.stop_gracefully(),
            "portcullis did not stop on SIGTERM\n{}",
            self.logs()
        );
        let _ = fs::remove_file(self.data_dir.join("admin").join("auth_addr"));
        self.child = spawn_daemon(
            &bin("portcullis"),
            &self.config_path,
            self.dir.path(),
            &self.stdout_log,
            &self.stderr_log,
        );
        self.auth_addr = self.wait_for_auth_addr();
    }

    /// The daemon's stdout and stderr so far, for failure messages.
    pub fn logs(&self) -> String {
        let read = |p: &Path| fs::read_to_string(p).unwrap_or_else(|e| format!("<{e}>"));
        format!(
            "--- portcullis stderr ({}) ---\n{}\n--- portcullis stdout ---\n{}",
            self.stderr_log.display(),
            read(&self.stderr_log),
            read(&self.stdout_log)
        )
    }

    /// The cluster's data dir (what `pcctl -d` takes).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The address auth actually bound (from `<data_dir>/admin/auth_addr`).
    pub fn auth_addr(&self) -> SocketAddr {
        self.auth_addr
    }

    /// The config file the daemon was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The cluster's temp dir (config, logs, data dir); a good place for test files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `pcctl -d <data_dir> <args>` in the cluster's temp dir (bounded by
    /// [`PCCTL_TIMEOUT`]) and returns its output whatever the exit status.
    pub fn pcctl(&self, args: &[&str]) -> Output {
        self.pcctl_in(self.dir.path(), args)
    }

    /// Like [`pcctl`](Self::pcctl) with `cwd` as the working directory (for relative
    /// `--out` paths).
    pub fn pcctl_in(&self, cwd: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin("pcctl"));
        cmd.current_dir(cwd)
            .arg("-d")
            .arg(&self.data_dir)
            .args(args);
        portcullis_testkit::run_command(&mut cmd, PCCTL_TIMEOUT)
            .unwrap_or_else(|e| panic!("running pcctl {args:?}: {e}\n{}", self.logs()))
    }

    /// Like [`pcctl`](Self::pcctl) but panics (with stdout, stderr and the daemon's logs)
    /// unless it exits 0; returns stdout.
    pub fn pcctl_ok(&self, args: &[&str]) -> String {
        let out = self.pcctl(args);
        if !out.status.success() {
            panic!(
                "pcctl {args:?} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            );
        }
        String::from_utf8(out.stdout).expect("pcctl printed UTF-8")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGKILL and reap: no daemon or zombie outlives the test, even on panic.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `portcullis start -c <config>`, appending its output to the two log files.
fn spawn_daemon(
    portcullis: &Path,
    config: &Path,
    cwd: &Path,
    stdout_log: &Path,
    stderr_log: &Path,
) -> Child {
    let open = |p: &Path| {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap_or_else(|e| panic!("opening {}: {e}", p.display()))
    };
    Command::new(portcullis)
        .arg("start")
        .arg("-c")
        .arg(config)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(open(stdout_log))
        .stderr(open(stderr_log))
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", portcullis.display()))
}

/// Panics with the command line and output unless `out` is a success; returns stdout.
pub fn assert_success(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Panics unless `out` failed; returns stdout and stderr together (for matching the
/// client's error message).
pub fn assert_failure(what: &str, out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "{what} unexpectedly succeeded\n{text}"
    );
    // Shown with `--nocapture`: the real error messages, for the docs' troubleshooting table.
    println!("{what}: refused as expected: {}", text.trim());
    text
}

/// Runs a command with a deadline (10 s), panicking only if it cannot be run.
pub fn run(cmd: &mut Command) -> Output {
    portcullis_testkit::run_command(cmd, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("running command: {e}"))
}

pub mod pg;
