//! Command-line grammar.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Administer a Portcullis cluster: users, roles, join tokens, certificates.
///
/// On the auth host it finds the admin identity in the data directory; elsewhere use
/// --auth-server and --identity.
#[derive(Parser)]
#[command(name = "pcctl", version)]
pub struct Cli {
    /// The auth service's data directory (holds the admin identity on the auth host).
    #[arg(short = 'd', long, env = "PORTCULLIS_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Read data_dir from this portcullis config file.
    #[arg(short = 'c', long, env = "PORTCULLIS_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Auth service address (host:port), when not on the auth host.
    #[arg(long, env = "PORTCULLIS_AUTH_SERVER", global = true)]
    pub auth_server: Option<String>,
    /// Identity file to authenticate with, when not on the auth host.
    #[arg(long, env = "PORTCULLIS_IDENTITY", global = true)]
    pub identity: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Subcommand)]
pub enum Command {
    /// Cluster name, CA pins, version and counts.
    Status(FormatArg),
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCmd),
    /// Create resources (roles) from a YAML file.
    Create(CreateArgs),
    /// Show resources: roles, users, tokens.
    Get(GetArgs),
    /// Remove a resource: role/NAME, user/NAME, token/ID.
    Rm(RmArgs),
    /// Manage join tokens.
    #[command(subcommand)]
    Tokens(TokensCmd),
    /// Certificate authority operations.
    #[command(subcommand)]
    Auth(AuthCmd),
    /// Lock users out: new sessions are refused and live ones end.
    #[command(subcommand)]
    Locks(LocksCmd),
    /// Search and export the audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
}

/// `pcctl audit …`. Times are RFC 3339 (2026-11-21T09:30:00Z), a date (2026-11-21), or a
/// duration ago (30m, 1h, 2d).
#[derive(Subcommand)]
pub enum AuditCmd {
    /// Find events, newest first.
    Search(AuditSearchArgs),
    /// Stream events as JSON lines to stdout, oldest first (for SIEM shippers).
    Export {
        /// From this time (default: everything kept).
        #[arg(long)]
        since: Option<String>,
        /// Keep going: print new events as they are stored (reconnects as needed).
        #[arg(long)]
        follow: bool,
    },
    /// One database session's events in order, as a readable transcript.
    Session {
        /// The session id (the `sid` field).
        sid: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = EventFormat::Text)]
        format: EventFormat,
    },
}

/// `pcctl audit search` filters.
#[derive(Args)]
pub struct AuditSearchArgs {
    /// From this time.
    #[arg(long)]
    pub from: Option<String>,
    /// Before this time.
    #[arg(long)]
    pub to: Option<String>,
    /// Only this user's events.
    #[arg(long)]
    pub user: Option<String>,
    /// Only this event (a trailing * matches a prefix: 'db.session.*').
    #[arg(long)]
    pub event: Option<String>,
    /// Only events of this database service.
    #[arg(long)]
    pub db: Option<String>,
    /// Only this session's events.
    #[arg(long)]
    pub sid: Option<String>,
    /// Only events whose text contains this (case-insensitive).
    #[arg(long)]
    pub contains: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Oldest first.
    #[arg(long)]
    pub oldest_first: bool,
    /// text: one line per event; json: one JSON object per line.
    #[arg(long, value_enum, default_value_t = EventFormat::Text)]
    pub format: EventFormat,
}

/// Event output formats.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventFormat {
    /// For people.
    Text,
    /// JSON lines.
    Json,
}

/// `pcctl locks …`.
#[derive(Subcommand)]
pub enum LocksCmd {
    /// Lock a user now.
    Add {
        /// The user to lock.
        #[arg(long)]
        user: String,
        /// Why (shown to the user whose session ends).
        #[arg(long, default_value = "")]
        message: String,
        /// Lift it automatically after this long (e.g. 1h); default: until removed.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// List active locks.
    Ls(FormatArg),
    /// Remove a lock.
    Rm {
        /// Lock id from `pcctl locks ls`.
        id: String,
    },
}

/// Output formats.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    Text,
    /// JSON.
    Json,
    /// YAML (re-creatable with `pcctl create -f`).
    Yaml,
}

/// `--format`.
#[derive(Args)]
pub struct FormatArg {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `pcctl users …`.
#[derive(Subcommand)]
pub enum UsersCmd {
    /// Create a user and print a one-time invite (or set the password from stdin).
    Add {
        /// Login name.
        name: String,
        /// Roles, comma-separated (e.g. access).
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// Database users the user may log in as (trait db_users).
        #[arg(long, value_delimiter = ',')]
        db_users: Vec<String>,
        /// Database names the user may open (trait db_names).
        #[arg(long, value_delimiter = ',')]
        db_names: Vec<String>,
        /// Read the password from standard input instead of making an invite (automation).
        #[arg(long)]
        password_stdin: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// List users.
    Ls(FormatArg),
    /// Change a user's roles or traits.
    Update {
        /// Login name.
        name: String,
        /// Replace the roles.
        #[arg(long, value_delimiter = ',')]
        set_roles: Option<Vec<String>>,
        /// Replace the db_users trait (empty to remove).
        #[arg(long, value_delimiter = ',', num_args = 0..)]
        set_db_users: Option<Vec<String>>,
        /// Replace the db_names trait (empty to remove).
        #[arg(long, value_delimiter = ',', num_args = 0..)]
        set_db_names: Option<Vec<String>>,
    },
    /// Clear password and TOTP, lift a lockout, and print a new invite.
    Reset {
        /// Login name.
        name: String,
    },
    /// Remove a user.
    Rm {
        /// Login name.
        name: String,
    },
}

/// `pcctl create`.
#[derive(Args)]
pub struct CreateArgs {
    /// YAML file with one or more resources (`-` for standard input).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Replace resources that exist.
    #[arg(long)]
    pub force: bool,
}

/// `pcctl get`.
#[derive(Args)]
pub struct GetArgs {
    /// roles, role, users, user, tokens
    pub kind: String,
    /// One resource by name.
    pub name: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `pcctl rm`.
#[derive(Args)]
pub struct RmArgs {
    /// KIND/NAME: role/NAME, user/NAME or token/ID.
    pub resource: String,
}

/// `pcctl tokens …`.
#[derive(Subcommand)]
pub enum TokensCmd {
    /// Make a join token and print the command that starts a service with it.
    Add {
        /// What the token lets a service join as: db, proxy (comma-separated).
        #[arg(long = "type", value_delimiter = ',', required = true)]
        kind: Vec<String>,
        /// Lifetime, e.g. 30m, 8h.
        #[arg(long, default_value = "30m")]
        ttl: String,
        /// The token works once.
        #[arg(long)]
        single_use: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// List live tokens (never their secrets).
    Ls(FormatArg),
    /// Remove a token by id (or an unambiguous prefix of at least 6 characters).
    Rm {
        /// Token id from `pcctl tokens ls`.
        id: String,
    },
}

/// `pcctl auth …`.
#[derive(Subcommand)]
pub enum AuthCmd {
    /// Make a key and a certificate from the cluster's db CA.
    Sign(SignArgs),
}

/// What `auth sign` writes.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignFormat {
    /// A database server certificate: PREFIX.crt, PREFIX.key, PREFIX.cas.
    Db,
    /// A client certificate CN=<db user>, for checking a database's set-up by hand.
    DbClient,
    /// MongoDB: PREFIX.crt holds certificate and key; PREFIX.cas.
    Mongodb,
}

/// `pcctl auth sign`.
#[derive(Args)]
pub struct SignArgs {
    /// What to make.
    #[arg(long, value_enum)]
    pub format: SignFormat,
    /// DNS names / IPs the database is reached by, comma-separated (server formats).
    #[arg(long, value_delimiter = ',')]
    pub host: Vec<String>,
    /// The database user (db-client format).
    #[arg(long)]
    pub db_user: Option<String>,
    /// Output path prefix: writes PREFIX.crt, PREFIX.key, PREFIX.cas.
    #[arg(long)]
    pub out: PathBuf,
    /// Lifetime, e.g. 2160h (90 days).
    #[arg(long, default_value = "2160h")]
    pub ttl: String,
    /// Replace existing files.
    #[arg(long)]
    pub overwrite: bool,
}
