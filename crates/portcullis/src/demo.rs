//! `portcullis demo`: a working single-node cluster for a first try — auth, proxy and agent in
//! one process, a PostgreSQL it starts itself (from the installed binaries) configured for
//! certificate login with the cluster's db CA, registered as a database, and a first user
//! whose credentials and exact `pc`/`psql` commands it prints.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use portcullis_ca::KeyPair;
use portcullis_client::files;
use time::OffsetDateTime;

use crate::config::{Config, DatabaseConfig, DatabaseTlsConfig};

/// The demo database's name in the cluster.
pub const DEMO_DB: &str = "demo-pg";
/// The first user.
pub const DEMO_USER: &str = "alice";

/// A PostgreSQL server the demo runs as a child process.
pub struct DemoPostgres {
    child: Child,
    /// Its port.
    pub port: u16,
}

impl Drop for DemoPostgres {
    fn drop(&mut self) {
        // SIGINT = PostgreSQL's "fast shutdown".
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pg_bin_dir() -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.pop().ok_or_else(|| {
        anyhow::anyhow!("no PostgreSQL server found under /usr/lib/postgresql; install it with `apt-get install postgresql`")
    })
}

/// Runs `cmd` as the `postgres` user when we are root (PostgreSQL refuses to run as root).
fn as_postgres(program: &Path) -> Command {
    if portcullis_client::paths::running_as_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn chown_postgres(path: &Path) -> anyhow::Result<()> {
    if portcullis_client::paths::running_as_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()?
            .success();
        if !ok {
            bail!(
                "chown postgres {} failed; is there a postgres user (apt-get install postgresql)?",
                path.display()
            );
        }
    }
    Ok(())
}

fn free_port(preferred: u16) -> u16 {
    if std::net::TcpListener::bind(("127.0.0.1", preferred)).is_ok() {
        return preferred;
    }
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(preferred)
}

/// Creates (first time) and starts the demo PostgreSQL under `dir`, with a server certificate
/// and trust in the db CA written by the caller into `dir/tls`.
pub fn start_postgres(dir: &Path) -> anyhow::Result<DemoPostgres> {
    let bin = pg_bin_dir()?;
    let data = dir.join("data");
    let fresh = !data.join("PG_VERSION").exists();
    let port_file = dir.join("port");
    let port = std::fs::read_to_string(&port_file)
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| free_port(15432));
    if fresh {
        std::fs::create_dir_all(&data)?;
        chown_postgres(dir)?;
        let out = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust"])
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let tls = dir.join("tls");
        let conf = format!(
            "\n# Portcullis demo\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{sock}'\nssl = on\nssl_cert_file = '{tls}/server.crt'\nssl_key_file = '{tls}/server.key'\nssl_ca_file = '{tls}/server.cas'\nssl_min_protocol_version = 'TLSv1.3'\n",
            sock = dir.display(),
            tls = tls.display()
        );
        let mut pgconf = std::fs::read_to_string(data.join("postgresql.conf"))?;
        pgconf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), pgconf)?;
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 cert\n",
        )?;
        std::fs::write(&port_file, port.to_string())?;
        chown_postgres(dir)?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("postgres.log"))?;
    let child = as_postgres(&bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting postgres")?;
    let mut pg = DemoPostgres { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = as_postgres(&bin.join("pg_isready"))
            .args(["-h"])
            .arg(dir)
            .args(["-p", &port.to_string(), "-q"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ready {
            break;
        }
        if let Ok(Some(status)) = pg.child.try_wait() {
            bail!(
                "postgres exited ({status}); see {}",
                dir.join("postgres.log").display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "postgres did not start within 30 s; see {}",
                dir.join("postgres.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if fresh {
        for sql in ["CREATE ROLE app LOGIN", "CREATE DATABASE shop OWNER app"] {
            let out = as_postgres(&bin.join("psql"))
                .args(["-h"])
                .arg(dir)
                .args([
                    "-p",
                    &port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-X",
                    "-q",
                    "-c",
                    sql,
                ])
                .output()?;
            if !out.status.success() {
                bail!("{sql}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
    pg.port = port;
    Ok(pg)
}

/// Writes the demo database's server certificate (from the db CA) into `dir/tls`.
pub fn write_server_cert(auth: &portcullis_auth::AuthServer, dir: &Path) -> anyhow::Result<()> {
    let tls = dir.join("tls");
    files::create_private_dir(&tls)?;
    let key = KeyPair::generate()?;
    let cert = auth.db_ca().issue_db_server(
        &["127.0.0.1".to_owned(), "localhost".to_owned()],
        &key.public_key(),
        Duration::from_secs(90 * 24 * 3600),
        OffsetDateTime::now_utc(),
    )?;
    files::write_public(
        &tls.join("server.crt"),
        portcullis_ca::cert::to_pem(&cert).as_bytes(),
    )?;
    files::write_private(&tls.join("server.key"), key.to_pem().as_bytes())?;
    files::write_public(&tls.join("server.cas"), auth.db_ca().cert_pem().as_bytes())?;
    chown_postgres(&tls)?;
    Ok(())
}

/// The demo's config: auth, proxy on 127.0.0.1:3080, the agent with the demo database.
pub fn config(data_dir: &Path, pg_port: u16) -> Config {
    let mut c = Config {
        cluster_name: "demo".into(),
        data_dir: data_dir.to_owned(),
        ..Default::default()
    };
    c.auth_service.authentication.second_factor = portcullis_auth::config::SecondFactor::Off;
    c.proxy_service.enabled = true;
    c.proxy_service.listen_addr = std::net::SocketAddr::from(([127, 0, 0, 1], 3080));
    c.proxy_service.public_addr = Some("127.0.0.1:3080".into());
    c.proxy_service.mysql_listen_addr = std::net::SocketAddr::from(([127, 0, 0, 1], 3036));
    c.db_service.enabled = true;
    c.db_service.databases = vec![DatabaseConfig {
        name: DEMO_DB.into(),
        protocol: portcullis_core::database::DbProtocol::Postgres,
        uri: format!("127.0.0.1:{pg_port}"),
        description: "PostgreSQL started by `portcullis demo`".into(),
        tls: DatabaseTlsConfig::default(),
        static_labels: [("env".to_owned(), "demo".to_owned())].into(),
        dynamic_labels: Vec::new(),
        passwords: Default::default(),
        mysql: Default::default(),
        audit_queries: true,
    }];
    c
}
