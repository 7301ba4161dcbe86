//! `pc db …` and `pc proxy db`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use portcullis_api::{DatabaseView, DbLoginRequest, DbLoginResponse};
use portcullis_client::local_proxy;
use portcullis_client::pg_service::{self, Section};
use portcullis_client::profile;
use portcullis_core::identity::DbRoute;
use serde::Serialize;
use time::OffsetDateTime;

use crate::cli::{DbTarget, Format};
use crate::output::{self, libpq_quote, shell_quote, table, validity};
use crate::session::Session;

/// Certificates closer to expiry than this are renewed before use.
const RENEW_MARGIN: time::Duration = time::Duration::minutes(1);

async fn databases(s: &Session) -> anyhow::Result<Vec<DatabaseView>> {
    s.api()?
        .get("/v1/databases")
        .await
        .map_err(|e| s.api_error(e))
}

/// `pc db ls`.
pub async fn ls(format: Format) -> anyhow::Result<()> {
    let s = Session::load()?;
    let dbs = databases(&s).await?;
    if format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(&dbs)?);
        return Ok(());
    }
    if dbs.is_empty() {
        outln!(
            "No databases are available to {}. Ask your administrator for a role whose db_labels match a database.",
            s.profile.user
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = dbs
        .iter()
        .map(|d| {
            vec![
                d.database.name.clone(),
                d.database.protocol.clone(),
                d.database.description.clone(),
                d.database
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                d.allowed_db_users.join(","),
            ]
        })
        .collect();
    table(
        &[
            "Name",
            "Protocol",
            "Description",
            "Labels",
            "Allowed DB users",
        ],
        &rows,
    );
    Ok(())
}

/// Whether an allowed db user is a literal account (not a wildcard or an unexpanded template).
fn is_literal(u: &str) -> bool {
    !u.is_empty() && !u.contains(['*', '?']) && !u.contains("{{") && !u.starts_with('^')
}

/// The account to use when `--db-user` is left out: the only literal one allowed.
fn pick_db_user(db: &DatabaseView) -> anyhow::Result<String> {
    let literal: Vec<&String> = db
        .allowed_db_users
        .iter()
        .filter(|u| is_literal(u))
        .collect();
    match (literal.as_slice(), db.allowed_db_users.is_empty()) {
        (_, true) => bail!(
            "your roles allow no database user on {}; ask your administrator for a role with db_users",
            db.database.name
        ),
        ([only], _) if db.allowed_db_users.len() == 1 => Ok((*only).clone()),
        _ => bail!(
            "pass --db-user: your roles allow {} on {}",
            db.allowed_db_users.join(", "),
            db.database.name
        ),
    }
}

/// A stored, decoded database certificate.
struct DbCert {
    route: DbRoute,
    expires: OffsetDateTime,
    der: Vec<u8>,
    path: PathBuf,
}

fn stored_db_cert(s: &Session, name: &str) -> Option<DbCert> {
    let path = s.home.db_cert_path(&s.profile.proxy, &s.profile.user, name);
    let der = profile::read_single_cert(&path).ok()?;
    let id = portcullis_ca::decode_user_identity(&der).ok()?;
    Some(DbCert {
        route: id.route?,
        expires: id.expires,
        der,
        path,
    })
}

fn require_db_cert(s: &Session, name: &str) -> anyhow::Result<DbCert> {
    profile::validate_name("database", name)?;
    stored_db_cert(s, name)
        .ok_or_else(|| anyhow!("no certificate for database {name}; run pc db login {name}"))
}

/// `pc db login`: asks for a certificate routed to `t.name` and writes the service section.
async fn db_login_inner(s: &Session, t: &DbTarget) -> anyhow::Result<DbCert> {
    profile::validate_name("database", &t.name)?;
    let dbs = databases(s).await?;
    let db = dbs
        .iter()
        .find(|d| d.database.name == t.name)
        .ok_or_else(|| {
            anyhow!(
                "no database {:?} is available to you; pc db ls lists those your roles allow",
                t.name
            )
        })?;
    let db_user = match &t.db_user {
        Some(u) => u.clone(),
        None => pick_db_user(db)?,
    };
    let req = DbLoginRequest {
        service: t.name.clone(),
        db_user,
        db_name: t.db_name.clone(),
        public_key: s.creds.key.public_key().to_pem(),
    };
    let resp: DbLoginResponse = s
        .api()?
        .post("/v1/certs/db-login", &req)
        .await
        .map_err(|e| s.api_error(e))?;
    let path = s
        .home
        .db_cert_path(&s.profile.proxy, &s.profile.user, &t.name);
    s.home.write(&path, resp.cert_pem.as_bytes())?;
    let cert = stored_db_cert(s, &t.name).ok_or_else(|| {
        anyhow!("the proxy sent a database certificate pc cannot read; try again or ask your administrator")
    })?;
    if resp.protocol == "postgres" {
        let file = pg_service::default_path()?;
        pg_service::upsert_file(&file, &service_section(s, &t.name, &cert))?;
    }
    if resp.protocol == "mysql" {
        let port = mysql_port(s).await?;
        pg_service::upsert_file(&my_cnf_path()?, &mysql_group(s, &t.name, &cert, port))?;
    }
    Ok(cert)
}

/// `~/.my.cnf`, where `pc` keeps a `[client_NAME]` group per MySQL database.
fn my_cnf_path() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("HOME is not set; pc writes MySQL settings to ~/.my.cnf"))?;
    Ok(PathBuf::from(home).join(".my.cnf"))
}

/// The proxy's MySQL port: from the login's ping, else asked now.
async fn mysql_port(s: &Session) -> anyhow::Result<u16> {
    if let Some(p) = s.profile.mysql_port {
        return Ok(p);
    }
    let ping: portcullis_api::PingResponse =
        s.api()?.get("/v1/ping").await.map_err(|e| s.api_error(e))?;
    let port = ping.mysql_port.ok_or_else(|| {
        anyhow!("the proxy does not say where its MySQL port is; ask your administrator (proxy_service.mysql_listen_addr)")
    })?;
    let mut profile = s.profile.clone();
    profile.mysql_port = Some(port);
    s.home.save_profile(&profile)?;
    Ok(port)
}

/// The proxy's MySQL port as recorded at login (for commands that do not go online).
fn known_mysql_port(s: &Session, name: &str) -> anyhow::Result<u16> {
    s.profile.mysql_port.ok_or_else(|| {
        anyhow!("pc does not know the proxy's MySQL port yet; run pc db login {name} again")
    })
}

/// The `[client_NAME]` group of `~/.my.cnf`: read by `mariadb`/`mysql` with
/// `--defaults-group-suffix=_NAME` (or `MYSQL_GROUP_SUFFIX=_NAME`). An option one client does
/// not know carries the `loose-` prefix, so both clients accept the group.
fn mysql_group(s: &Session, name: &str, c: &DbCert, port: u16) -> Section {
    let k = conn(s, c);
    let mut params = vec![
        ("host".to_owned(), k.host),
        ("port".to_owned(), port.to_string()),
        ("user".to_owned(), k.user),
    ];
    if let Some(d) = k.database {
        params.push(("database".to_owned(), d));
    }
    params.extend([
        ("ssl-ca".to_owned(), k.ca.display().to_string()),
        ("ssl-cert".to_owned(), k.cert.display().to_string()),
        ("ssl-key".to_owned(), k.key.display().to_string()),
        // MariaDB's spelling (MySQL 8 verifies with ssl-ca given; `loose-` keeps it quiet
        // about an option it does not know).
        ("loose-ssl-verify-server-cert".to_owned(), "1".to_owned()),
    ]);
    Section {
        name: format!("client_{name}"),
        params,
    }
}

/// Reuses a stored certificate that matches and is not about to expire; else logs in.
async fn ensure_db_cert(s: &Session, t: &DbTarget) -> anyhow::Result<DbCert> {
    profile::validate_name("database", &t.name)?;
    if let Some(c) = stored_db_cert(s, &t.name) {
        let fresh = c.expires - OffsetDateTime::now_utc() > RENEW_MARGIN;
        let same_user = t.db_user.as_ref().is_none_or(|u| *u == c.route.db_user);
        let same_name = t.db_name.is_none() || t.db_name == c.route.db_name;
        if fresh && same_user && same_name {
            return Ok(c);
        }
    }
    db_login_inner(s, t).await
}

struct Conn {
    host: String,
    port: String,
    user: String,
    database: Option<String>,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn conn(s: &Session, c: &DbCert) -> Conn {
    let (host, port) = s.proxy_host_port();
    Conn {
        host,
        port,
        user: c.route.db_user.clone(),
        database: c.route.db_name.clone(),
        ca: s.creds.host_ca_path.clone(),
        cert: c.path.clone(),
        key: s.creds.key_path.clone(),
    }
}

fn service_section(s: &Session, name: &str, c: &DbCert) -> Section {
    let k = conn(s, c);
    let mut params = vec![
        ("host".to_owned(), k.host),
        ("port".to_owned(), k.port),
        ("user".to_owned(), k.user),
    ];
    if let Some(d) = k.database {
        params.push(("dbname".to_owned(), d));
    }
    params.extend([
        ("sslmode".to_owned(), "verify-full".to_owned()),
        ("sslrootcert".to_owned(), k.ca.display().to_string()),
        ("sslcert".to_owned(), k.cert.display().to_string()),
        ("sslkey".to_owned(), k.key.display().to_string()),
    ]);
    Section {
        name: name.to_owned(),
        params,
    }
}

/// `pc db login`.
pub async fn login(t: &DbTarget) -> anyhow::Result<()> {
    let s = Session::load()?;
    let c = db_login_inner(&s, t).await?;
    outln!(
        "Logged in to database {} as {}{} ({}).",
        t.name,
        c.route.db_user,
        c.route
            .db_name
            .as_ref()
            .map(|d| format!(", database {d}"))
            .unwrap_or_default(),
        validity(c.expires, OffsetDateTime::now_utc())
    );
    if c.route.protocol.as_str() == "postgres" {
        outln!(
            "Connect with:  psql \"service={}\"   (or pc db connect {})",
            t.name,
            t.name
        );
    } else if c.route.protocol.as_str() == "mysql" {
        outln!(
            "Connect with:  mariadb --defaults-group-suffix=_{}   (or mysql …, or pc db connect {})",
            t.name,
            t.name
        );
    } else if c.route.protocol.as_str() == "redis" {
        outln!(
            "Connect with:  pc db connect {}   (pc db config {} prints the redis-cli flags)",
            t.name,
            t.name
        );
    } else {
        outln!(
            "Certificate: {}; pc db config {} shows how to connect.",
            c.path.display(),
            t.name
        );
    }
    Ok(())
}

/// `pc db logout [NAME]`.
pub fn logout(name: Option<&str>) -> anyhow::Result<()> {
    let s = Session::load()?;
    let names = match name {
        Some(n) => {
            profile::validate_name("database", n)?;
            vec![n.to_owned()]
        }
        None => s.home.db_cert_names(&s.profile)?,
    };
    if names.is_empty() {
        outln!("No database certificates to remove.");
        return Ok(());
    }
    let file = pg_service::default_path()?;
    pg_service::remove_file_sections(&file, |n| names.iter().any(|x| x == n))?;
    if let Ok(cnf) = my_cnf_path() {
        if cnf.exists() {
            pg_service::remove_file_sections(&cnf, |n| {
                names
                    .iter()
                    .any(|x| n.strip_prefix("client_") == Some(x.as_str()))
            })?;
        }
    }
    let mut removed = Vec::new();
    for n in &names {
        let path = s.home.db_cert_path(&s.profile.proxy, &s.profile.user, n);
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(n.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => bail!("removing {}: {e}", path.display()),
        }
    }
    match (name, removed.is_empty()) {
        (Some(n), true) => bail!("no certificate for database {n}; pc status lists yours"),
        _ => outln!("Logged out of {}.", removed.join(", ")),
    }
    Ok(())
}

/// `pc db env NAME`.
pub fn env(name: &str) -> anyhow::Result<()> {
    let s = Session::load()?;
    let c = require_db_cert(&s, name)?;
    if c.route.protocol.as_str() == "redis" {
        bail!("redis-cli takes its certificate from flags, not the environment; pc db config {name} prints them (or run pc db connect {name})");
    }
    if c.route.protocol.as_str() == "mysql" {
        // mariadb and mysql read the [client_NAME] group of ~/.my.cnf with this suffix.
        outln!(
            "export MYSQL_GROUP_SUFFIX={}",
            shell_quote(&format!("_{name}"))
        );
        return Ok(());
    }
    let k = conn(&s, &c);
    outln!("export PGSERVICE={}", shell_quote(name));
    let mut vars = vec![
        ("PGHOST", k.host),
        ("PGPORT", k.port),
        ("PGSSLMODE", "verify-full".to_owned()),
        ("PGSSLROOTCERT", k.ca.display().to_string()),
        ("PGSSLCERT", k.cert.display().to_string()),
        ("PGSSLKEY", k.key.display().to_string()),
        ("PGUSER", k.user),
    ];
    if let Some(d) = k.database {
        vars.push(("PGDATABASE", d));
    }
    for (var, value) in vars {
        outln!("export {var}={}", shell_quote(&value));
    }
    Ok(())
}

#[derive(Serialize)]
struct ConfigView {
    name: String,
    protocol: String,
    host: String,
    port: String,
    user: String,
    database: Option<String>,
    ca: String,
    cert: String,
    key: String,
    #[serde(with = "time::serde::rfc3339")]
    expires: OffsetDateTime,
    connection_string: String,
    command: String,
}

/// redis-cli's arguments for a connection through the proxy. The agent logs in to Redis as
/// the certificate's db user, so no `--user`/`--pass` is needed.
fn redis_cli_args(k: &Conn) -> Vec<String> {
    vec![
        "--tls".to_owned(),
        "--cacert".to_owned(),
        k.ca.display().to_string(),
        "--cert".to_owned(),
        k.cert.display().to_string(),
        "--key".to_owned(),
        k.key.display().to_string(),
        "-h".to_owned(),
        k.host.clone(),
        "-p".to_owned(),
        k.port.clone(),
    ]
}

/// `pc db config NAME`.
pub fn config(name: &str, format: Format) -> anyhow::Result<()> {
    let s = Session::load()?;
    let c = require_db_cert(&s, name)?;
    let k = conn(&s, &c);
    if c.route.protocol.as_str() == "redis" {
        return redis_config(name, &c, k, format);
    }
    if c.route.protocol.as_str() == "mysql" {
        let port = known_mysql_port(&s, name)?;
        return mysql_config(name, &c, k, port, format);
    }
    let mut parts = vec![
        format!("host={}", libpq_quote(&k.host)),
        format!("port={}", libpq_quote(&k.port)),
        format!("user={}", libpq_quote(&k.user)),
    ];
    if let Some(d) = &k.database {
        parts.push(format!("dbname={}", libpq_quote(d)));
    }
    parts.extend([
        "sslmode=verify-full".to_owned(),
        format!("sslrootcert={}", libpq_quote(&k.ca.display().to_string())),
        format!("sslcert={}", libpq_quote(&k.cert.display().to_string())),
        format!("sslkey={}", libpq_quote(&k.key.display().to_string())),
    ]);
    let connection_string = parts.join(" ");
    let view = ConfigView {
        name: name.to_owned(),
        protocol: c.route.protocol.as_str().to_owned(),
        host: k.host,
        port: k.port,
        user: k.user,
        database: k.database,
        ca: k.ca.display().to_string(),
        cert: k.cert.display().to_string(),
        key: k.key.display().to_string(),
        expires: c.expires,
        command: format!("psql {}", shell_quote(&connection_string)),
        connection_string,
    };
    if format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    print_view(
        &view,
        "",
        "",
        &[format!("psql \"service={name}\""), view.command.clone()],
    );
    Ok(())
}

/// `pc db config NAME` for a Redis database: the flags for redis-cli and a `rediss://` URL
/// for client libraries (which take the certificate paths separately).
fn redis_config(name: &str, c: &DbCert, k: Conn, format: Format) -> anyhow::Result<()> {
    let args = redis_cli_args(&k);
    let command = std::iter::once("redis-cli".to_owned())
        .chain(args.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ");
    let host = if k.host.contains(':') {
        format!("[{}]", k.host)
    } else {
        k.host.clone()
    };
    let view = ConfigView {
        name: name.to_owned(),
        protocol: "redis".to_owned(),
        connection_string: format!("rediss://{host}:{}", k.port),
        host: k.host,
        port: k.port,
        user: k.user,
        database: None,
        ca: k.ca.display().to_string(),
        cert: k.cert.display().to_string(),
        key: k.key.display().to_string(),
        expires: c.expires,
        command,
    };
    if format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    print_view(
        &view,
        "",
        " (the agent logs in as this Redis user)",
        &[
            view.command.clone(),
            format!(
                "(client libraries: {} with TLS, CA, certificate and key above; no password)",
                view.connection_string
            ),
        ],
    );
    Ok(())
}

/// `pc db config NAME` for a MySQL database: the `~/.my.cnf` group, and the same as flags.
fn mysql_config(name: &str, c: &DbCert, k: Conn, port: u16, format: Format) -> anyhow::Result<()> {
    let mut flags = vec![
        format!("--host={}", k.host),
        format!("--port={port}"),
        format!("--user={}", k.user),
    ];
    if let Some(d) = &k.database {
        flags.push(format!("--database={d}"));
    }
    flags.extend([
        format!("--ssl-ca={}", k.ca.display()),
        format!("--ssl-cert={}", k.cert.display()),
        format!("--ssl-key={}", k.key.display()),
        "--ssl-verify-server-cert".to_owned(),
    ]);
    let command = std::iter::once("mariadb".to_owned())
        .chain(flags.iter().map(|f| shell_quote(f)))
        .collect::<Vec<_>>()
        .join(" ");
    let view = ConfigView {
        name: name.to_owned(),
        protocol: "mysql".to_owned(),
        connection_string: format!(
            "jdbc:mariadb://{}:{port}/{}?sslMode=verify-full&serverSslCert={}",
            k.host,
            k.database.as_deref().unwrap_or(""),
            k.ca.display()
        ),
        host: k.host,
        port: port.to_string(),
        user: k.user,
        database: k.database,
        ca: k.ca.display().to_string(),
        cert: k.cert.display().to_string(),
        key: k.key.display().to_string(),
        expires: c.expires,
        command,
    };
    if format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    print_view(
        &view,
        " (the proxy's MySQL port)",
        "",
        &[
            format!("mariadb --defaults-group-suffix=_{name}     (the [client_{name}] group in ~/.my.cnf; mysql works too)"),
            view.command.clone(),
        ],
    );
    Ok(())
}

/// Prints `pc db config` as text: the connection, the files, the expiry, and how to connect.
fn print_view(view: &ConfigView, port_note: &str, user_note: &str, connect: &[String]) {
    outln!("Name:      {}", view.name);
    outln!("Host:      {}", view.host);
    outln!("Port:      {}{port_note}", view.port);
    outln!("User:      {}{user_note}", view.user);
    if view.protocol != "redis" {
        outln!("Database:  {}", view.database.as_deref().unwrap_or("-"));
    }
    outln!("CA:        {}", view.ca);
    outln!("Cert:      {}", view.cert);
    outln!("Key:       {}", view.key);
    outln!(
        "Expires:   {} ({})",
        output::time(view.expires),
        validity(view.expires, OffsetDateTime::now_utc())
    );
    outln!();
    outln!("Connect with:");
    for line in connect {
        outln!("  {line}");
    }
}

fn require_postgres(name: &str, c: &DbCert, what: &str) -> anyhow::Result<()> {
    if c.route.protocol.as_str() != "postgres" {
        bail!(
            "{what} supports PostgreSQL databases so far, and {name} speaks {}; pc db config {name} shows the certificate paths for your client",
            c.route.protocol
        );
    }
    Ok(())
}

/// `pc db connect NAME`: logs in if needed, then replaces this process with psql.
pub async fn connect(t: &DbTarget) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let s = Session::load()?;
    let c = ensure_db_cert(&s, t).await?;
    if c.route.protocol.as_str() == "mysql" {
        let port = mysql_port(&s).await?;
        pg_service::upsert_file(&my_cnf_path()?, &mysql_group(&s, &t.name, &c, port))?;
        let suffix = format!("--defaults-group-suffix=_{}", t.name);
        for client in ["mariadb", "mysql"] {
            let err = std::process::Command::new(client).arg(&suffix).exec();
            if err.kind() != std::io::ErrorKind::NotFound {
                bail!("running {client}: {err}");
            }
        }
        bail!("neither mariadb nor mysql is installed or on PATH; install one (Debian/Ubuntu: apt-get install mariadb-client), or use pc db config {} for another client", t.name);
    }
    if c.route.protocol.as_str() == "redis" {
        let args = redis_cli_args(&conn(&s, &c));
        let err = std::process::Command::new("redis-cli").args(&args).exec();
        if err.kind() == std::io::ErrorKind::NotFound {
            bail!("redis-cli is not installed or not on PATH; install it (Debian/Ubuntu: apt-get install redis-tools), or use pc db config {} for another client", t.name);
        }
        bail!("running redis-cli: {err}");
    }
    require_postgres(&t.name, &c, "pc db connect")?;
    // Make sure the section exists even if the user edited it away.
    let file = pg_service::default_path()?;
    pg_service::upsert_file(&file, &service_section(&s, &t.name, &c))?;
    let err = std::process::Command::new("psql")
        .arg(format!("service={}", t.name))
        .env("PGSERVICEFILE", &file)
        .exec();
    if err.kind() == std::io::ErrorKind::NotFound {
        bail!("psql is not installed or not on PATH; install it (Debian/Ubuntu: apt-get install postgresql-client), or use pc db config {} for another client", t.name);
    }
    bail!("running psql: {err}")
}

/// `pc proxy db NAME --port=N`.
pub async fn proxy(t: &DbTarget, port: u16) -> anyhow::Result<()> {
    let s = Session::load()?;
    let c = ensure_db_cert(&s, t).await?;
    if c.route.protocol.as_str() == "mysql" {
        return proxy_mysql(&s, t, &c, port).await;
    }
    require_postgres(&t.name, &c, "pc proxy db")?;
    let upstream =
        local_proxy::Upstream::new(&s.profile.proxy, &s.creds.identity_with(c.der.clone()))?;
    let listener = local_proxy::bind(port).await.map_err(|e| {
        anyhow!("cannot listen on 127.0.0.1:{port}: {e}; pick another --port (0 picks a free one)")
    })?;
    let local = listener.local_addr()?.port();
    let dbname = c.route.db_name.as_deref().unwrap_or(&c.route.db_user);
    outln!(
        "Started authenticated tunnel for {} on 127.0.0.1:{local}; connect with: psql 'host=127.0.0.1 port={local} user={} dbname={} sslmode=disable'",
        t.name,
        libpq_quote(&c.route.db_user),
        libpq_quote(dbname)
    );
    outln!(
        "The tunnel uses your certificate until {} ({}); press Ctrl-C to stop.",
        output::time(c.expires),
        validity(c.expires, OffsetDateTime::now_utc())
    );
    let serve = local_proxy::serve(listener, Arc::new(upstream), |e| {
        eprintln!("pc proxy: {e}");
    });
    tokio::select! {
        r = serve => r.map_err(|e| anyhow!("the tunnel stopped: {e}")),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// `pc proxy db NAME` for MySQL: a plaintext local port; each connection goes to the proxy's
/// main port over TLS with the MySQL ALPN, where the proxy plays the server.
async fn proxy_mysql(s: &Session, t: &DbTarget, c: &DbCert, port: u16) -> anyhow::Result<()> {
    let upstream = local_proxy::Upstream::direct(
        &s.profile.proxy,
        &s.creds.identity_with(c.der.clone()),
        b"portcullis-mysql",
    )?;
    let listener = local_proxy::bind(port).await.map_err(|e| {
        anyhow!("cannot listen on 127.0.0.1:{port}: {e}; pick another --port (0 picks a free one)")
    })?;
    let local = listener.local_addr()?.port();
    outln!(
        "Started authenticated tunnel for {} on 127.0.0.1:{local}; connect with: mariadb --host=127.0.0.1 --port={local} --user={} --skip-ssl",
        t.name,
        c.route.db_user
    );
    outln!(
        "The tunnel uses your certificate until {} ({}); press Ctrl-C to stop.",
        output::time(c.expires),
        validity(c.expires, OffsetDateTime::now_utc())
    );
    let serve = local_proxy::serve(listener, Arc::new(upstream), |e| {
        eprintln!("pc proxy: {e}");
    });
    tokio::select! {
        r = serve => r.map_err(|e| anyhow!("the tunnel stopped: {e}")),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_api::DatabaseInfo;

    fn view(users: &[&str]) -> DatabaseView {
        DatabaseView {
            database: DatabaseInfo {
                version: None,
                name: "pg1".into(),
                protocol: "postgres".into(),
                uri: "x:5432".into(),
                description: String::new(),
                labels: Default::default(),
            },
            allowed_db_users: users.iter().map(|u| u.to_string()).collect(),
            allowed_db_names: vec![],
            agents: vec![],
        }
    }

    #[test]
    fn db_user_defaults_only_to_a_single_literal() {
        assert_eq!(pick_db_user(&view(&["app"])).unwrap(), "app");
        let e = pick_db_user(&view(&["app", "readonly"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--db-user") && e.contains("app, readonly"),
            "{e}"
        );
        assert!(pick_db_user(&view(&["*"])).is_err());
        assert!(pick_db_user(&view(&["app", "*"])).is_err());
        let e = pick_db_user(&view(&[])).unwrap_err().to_string();
        assert!(e.contains("no database user"), "{e}");
    }
}
