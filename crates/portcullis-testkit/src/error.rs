//! The kit's error type.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while preparing, starting, driving or stopping a test server.
///
/// Tests usually `expect()` these, so every message says what failed and, for server
/// problems, where the server log is (and, on start failure, the tail of that log), so a
/// red CI run explains itself without re-running anything.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// A program the kit needs is not installed (or not where the kit looks).
    #[error("required program `{binary}` not found (looked in: {searched}); install the Debian package `{package}` (apt-get install -y {package})")]
    MissingBinary {
        /// Program name, e.g. `mariadbd`.
        binary: String,
        /// Debian package that provides it.
        package: String,
        /// Where the kit looked.
        searched: String,
    },

    /// A filesystem or process-spawning operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the kit was doing, including the path involved.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A helper command (initdb, mariadb-install-db, ...) exited unsuccessfully.
    #[error(
        "command `{command}` failed ({status})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    )]
    CommandFailed {
        /// The command line, for copy-pasting.
        command: String,
        /// Exit status description.
        status: String,
        /// Captured standard output.
        stdout: String,
        /// Captured standard error.
        stderr: String,
    },

    /// A helper command did not finish in time and was killed.
    #[error("command `{command}` did not finish within {timeout:?} and was killed\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}")]
    CommandTimedOut {
        /// The command line.
        command: String,
        /// The limit that was exceeded.
        timeout: Duration,
        /// Output captured before the kill.
        stdout: String,
        /// Error output captured before the kill.
        stderr: String,
    },

    /// A server process could not be started or did not become ready in time.
    #[error("{server} failed to start: {reason}\nserver log: {}\n--- last lines of the log ---\n{log_tail}", log.display())]
    StartFailed {
        /// Which server (`postgres`, `mariadb`, `redis`).
        server: &'static str,
        /// Why the kit gave up.
        reason: String,
        /// Path of the server log.
        log: PathBuf,
        /// The last lines of that log.
        log_tail: String,
    },

    /// An administrative command against a running server failed.
    #[error("{server} admin command `{command}` failed: {message}\nserver log: {}", log.display())]
    Admin {
        /// Which server.
        server: &'static str,
        /// The SQL statement or Redis command (secrets are not included).
        command: String,
        /// Client output explaining the failure.
        message: String,
        /// Path of the server log.
        log: PathBuf,
    },

    /// A unix socket path would exceed the kernel's `sun_path` limit.
    #[error("unix socket path `{}` is {len} bytes, over the {max}-byte limit; use a shorter base directory (builder `.base_dir(..)`)", path.display())]
    SocketPathTooLong {
        /// The offending path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// No free loopback port could be found.
    #[error("could not find a free 127.0.0.1 port after {attempts} attempts: {detail}")]
    NoFreePort {
        /// How many tries were made.
        attempts: u32,
        /// Last error seen.
        detail: String,
    },

    /// An argument given to the kit cannot be used (e.g. a name with a NUL byte).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl TestkitError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
