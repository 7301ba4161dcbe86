//! Real database servers for Portcullis tests.
//!
//! Starts private PostgreSQL, MariaDB and Redis instances on free loopback ports, each in
//! its own temp dir, presenting a server certificate and requiring client certificates
//! from a caller-supplied CA. The kit knows nothing about Portcullis's CA: it takes PEM
//! material ([`ServerTls`]).
//!
//! Config lines passed to the builders are written verbatim after the kit's own lines (so
//! they win), with the placeholders `{dir}` (the server's temp dir, holding `ca.crt`,
//! `server.crt`, `server.key`) and `{port}` substituted; PostgreSQL also knows
//! `{data_dir}`, MariaDB `{data_dir}` and `{socket}`, Redis `{socket}`. That lets tests use
//! lines copied from the docs, e.g. `ssl_cert_file = '{dir}/server.crt'`. With
//! `.kit_tls_config(false)` the kit writes no TLS lines at all and the caller owns them.
//!
//! Servers stop on drop (even when the test panics) and their temp dirs are removed. All
//! waits are bounded. The API is blocking; calling it from a tokio test is fine (use
//! `spawn_blocking` if the runtime is single-threaded and other tasks must progress).
//!
//! When the test runs as root (as in our CI containers) PostgreSQL and MariaDB run as the
//! `postgres` and `mysql` users (via `setpriv`) and their temp dirs are chowned to them.
#![forbid(unsafe_code)]

mod error;
mod mariadb;
mod postgres;
mod redis;
mod util;

pub use error::TestkitError;
pub use mariadb::{MariaDbBuilder, MariaDbServer};
pub use postgres::{PostgresBuilder, PostgresServer};
pub use redis::{RedisBuilder, RedisServer};
pub use util::{
    binary_path, free_port, log_tail, require_binaries, run_command, write_private_file, PG_BIN_ENV,
};

/// PEM material a test server presents (`server_cert_pem`, `server_key_pem`) and trusts
/// for client certificates (`ca_cert_pem`).
///
/// Exists so the kit stays independent of how certificates are made (Portcullis's CA,
/// `openssl` in a test, ...). The server certificate should carry SAN `IP:127.0.0.1` (and
/// `DNS:localhost`) so clients can verify the host name.
#[derive(Clone)]
pub struct ServerTls {
    /// CA certificate(s) that client certificates must chain to.
    pub ca_cert_pem: String,
    /// The server's certificate (optionally followed by intermediates).
    pub server_cert_pem: String,
    /// The server's private key (PKCS#8, SEC1 or PKCS#1 PEM).
    pub server_key_pem: String,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field(
                "ca_cert_pem",
                &format_args!("<{} bytes>", self.ca_cert_pem.len()),
            )
            .field(
                "server_cert_pem",
                &format_args!("<{} bytes>", self.server_cert_pem.len()),
            )
            .field("server_key_pem", &"<redacted>")
            .finish()
    }
}
