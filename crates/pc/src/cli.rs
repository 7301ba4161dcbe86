//! Command-line grammar.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Log in to a Portcullis cluster and reach its databases with your usual tools.
///
/// Start with `pc login --proxy=HOST:PORT --user=NAME`, then `pc db ls`.
/// State lives in ~/.portcullis (PORTCULLIS_HOME overrides).
#[derive(Parser)]
#[command(name = "pc", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Subcommand)]
pub enum Command {
    /// Log in: password (and TOTP code) for a short-lived certificate.
    Login(LoginArgs),
    /// Who you are logged in as, until when, and your database certificates.
    Status(FormatArg),
    /// Remove every key and certificate pc stored, and its pg_service.conf sections.
    Logout,
    /// Accept an invite: set your password and enrol your TOTP device.
    #[command(subcommand)]
    Invite(InviteCmd),
    /// Databases: list, log in, connect.
    #[command(subcommand)]
    Db(DbCmd),
    /// Local tunnels for tools that cannot use client certificates.
    #[command(subcommand)]
    Proxy(ProxyCmd),
}

/// Output formats.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// JSON.
    Json,
}

/// `--format`.
#[derive(Args)]
pub struct FormatArg {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// How to decide whether to trust a proxy met for the first time.
#[derive(Args, Clone)]
pub struct TrustArgs {
    /// Trust the proxy's host CA only if its pin is this (`sha256:…`, from `pcctl status`).
    #[arg(long, value_name = "sha256:HEX")]
    pub ca_pin: Option<String>,
    /// Trust whatever host CA the proxy presents on first contact (tests only).
    #[arg(long, conflicts_with = "ca_pin")]
    pub insecure: bool,
}

/// `pc login`.
#[derive(Args)]
pub struct LoginArgs {
    /// The proxy's public address, HOST:PORT.
    #[arg(long, env = "PORTCULLIS_PROXY")]
    pub proxy: String,
    /// Your login name (default: $USER).
    #[arg(long, env = "PORTCULLIS_USER")]
    pub user: Option<String>,
    /// The current code from your authenticator app (asked for when needed).
    #[arg(long)]
    pub otp: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// How long the certificate should last, e.g. 8h (capped by your roles).
    #[arg(long)]
    pub ttl: Option<String>,
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// `pc invite …`.
#[derive(Subcommand)]
pub enum InviteCmd {
    /// Set your password (and enrol TOTP) with the invite token from your administrator.
    Accept {
        /// The invite token.
        token: String,
        /// The proxy's public address, HOST:PORT.
        #[arg(long, env = "PORTCULLIS_PROXY")]
        proxy: String,
        /// Read the new password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// A current code from the TOTP device being enrolled.
        #[arg(long)]
        otp: Option<String>,
        #[command(flatten)]
        trust: TrustArgs,
    },
}

/// Which database account and database to use.
#[derive(Args, Clone)]
pub struct DbTarget {
    /// The database's name (see pc db ls).
    pub name: String,
    /// The database account (default: the only one your roles allow).
    #[arg(long)]
    pub db_user: Option<String>,
    /// The database to open.
    #[arg(long)]
    pub db_name: Option<String>,
}

/// `pc db …`.
#[derive(Subcommand)]
pub enum DbCmd {
    /// Databases your roles allow.
    Ls(FormatArg),
    /// Get a certificate for a database (and a pg_service.conf section for PostgreSQL).
    Login(DbTarget),
    /// Remove database certificates and their service sections (all, or NAME).
    Logout {
        /// The database; all when left out.
        name: Option<String>,
    },
    /// Print shell `export` lines for libpq (eval "$(pc db env NAME)").
    Env {
        /// The database.
        name: String,
    },
    /// Print connection settings: host, port, user, database, certificate paths.
    Config {
        /// The database.
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Log in to the database if needed, then run psql.
    Connect(DbTarget),
}

/// `pc proxy …`.
#[derive(Subcommand)]
pub enum ProxyCmd {
    /// A local plaintext PostgreSQL port that tunnels to the database over TLS.
    Db {
        #[command(flatten)]
        target: DbTarget,
        /// Local port on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
}
