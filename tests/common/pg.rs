//! A whole PostgreSQL access stack for end-to-end tests: a cluster (auth + proxy), a real
//! PostgreSQL from the test kit with a certificate from the cluster's db CA, a database agent
//! in its own process that joins with a token over the network tunnel, a user, and `pc`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    dead_code
)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use portcullis_testkit::{MariaDbServer, PostgresServer, RedisServer, ServerTls};

use super::{assert_success, bin, Cluster};

/// The password every test user gets.
pub const PASSWORD: &str = "correct-horse-battery";

/// Everything running for one test.
pub struct PgStack {
    pub cluster: Cluster,
    pub pg: PostgresServer,
    /// A Redis the same agent serves as `redis1` (ACL users `app` and `ro`), when asked for.
    pub redis: Option<RedisServer>,
    /// Files that live as long as the stack (the single-node Redis password files).
    pub scratch: Option<tempfile::TempDir>,
    /// A MariaDB the same agent serves as `my1` (accounts `app` and `ro` with
    /// `REQUIRE SUBJECT`, databases `shop` and `other`), when asked for.
    pub mariadb: Option<MariaDbServer>,
    pub agent: Option<Child>,
    pub agent_dir: PathBuf,
    pub proxy_addr: String,
    pub home: PathBuf,
}

impl Drop for PgStack {
    fn drop(&mut self) {
        if let Some(mut a) = self.agent.take() {
            let _ = a.kill();
            let _ = a.wait();
        }
    }
}

/// Waits for `path` to hold text.
pub fn wait_for_file(path: &Path, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(t) = fs::read_to_string(path) {
            if !t.trim().is_empty() {
                return t.trim().to_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Which databases besides PostgreSQL a stack serves.
#[derive(Clone, Copy, Default)]
struct Extras {
    redis: bool,
    mariadb: bool,
}

impl PgStack {
    /// Starts everything; `extra_config` is merged into the cluster's config (may be empty).
    pub fn start(extra_config: &str) -> Self {
        Self::remote(extra_config, Extras::default())
    }

    /// Like [`PgStack::start`], and the agent also serves a real Redis as `redis1`.
    pub fn start_with_redis(extra_config: &str) -> Self {
        Self::remote(
            extra_config,
            Extras {
                redis: true,
                mariadb: false,
            },
        )
    }

    /// Like [`PgStack::start`], and the agent also serves a real MariaDB as `my1`.
    pub fn start_with_mariadb(extra_config: &str) -> Self {
        Self::remote(
            extra_config,
            Extras {
                redis: false,
                mariadb: true,
            },
        )
    }

    /// The single-node default: auth, proxy and agent in ONE daemon (the agent gets sessions
    /// handed over in memory), in front of a real PostgreSQL (served twice: as `pg1`, and as
    /// `pg-quiet` with `audit_queries: false`).
    pub fn start_single_node() -> Self {
        Self::single(Extras::default())
    }

    /// Like [`PgStack::start_single_node`], and the daemon's agent also serves a real Redis
    /// as `redis1`.
    pub fn start_single_node_with_redis() -> Self {
        Self::single(Extras {
            redis: true,
            mariadb: false,
        })
    }

    /// Like [`PgStack::start_single_node`], and the daemon's agent also serves a real
    /// MariaDB as `my1`.
    pub fn start_single_node_with_mariadb() -> Self {
        Self::single(Extras {
            redis: false,
            mariadb: true,
        })
    }

    /// A cluster, the databases, and an agent process that joins over the network tunnel.
    fn remote(extra_config: &str, extras: Extras) -> Self {
        // A pinned port, so a restarted proxy comes back where agents and clients look for it.
        let port = portcullis_testkit::free_port().expect("a free port for the proxy");
        let cluster = Cluster::start_with(&format!(
            "proxy_service: {{ enabled: true, listen_addr: '127.0.0.1:{port}' }}\n{extra_config}"
        ));
        let agent_dir = cluster.dir().join("agent");
        let pg = start_postgres(&cluster, None);
        let redis = extras
            .redis
            .then(|| start_redis(&cluster, &agent_dir, None));
        let mariadb = extras.mariadb.then(|| start_mariadb(&cluster, None));
        let mut stack = Self::assemble(cluster, pg, redis, mariadb, None);
        stack.start_agent();
        stack
    }

    /// One daemon serving the databases itself (their ports are picked before it starts).
    fn single(extras: Extras) -> Self {
        let port = portcullis_testkit::free_port().expect("a free port for the proxy");
        let pg_port = portcullis_testkit::free_port().expect("a free port for PostgreSQL");
        let redis_port = portcullis_testkit::free_port().expect("a free port for Redis");
        let my_port = portcullis_testkit::free_port().expect("a free port for MariaDB");
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        // pg-quiet: the same PostgreSQL with `audit_queries: false`.
        let mut databases = format!(
            "    - name: pg1\n      protocol: postgres\n      uri: '127.0.0.1:{pg_port}'\n      static_labels: {{ env: dev }}\n\
             \x20   - name: pg-quiet\n      protocol: postgres\n      uri: '127.0.0.1:{pg_port}'\n      static_labels: {{ env: dev }}\n      audit_queries: false\n"
        );
        if extras.redis {
            databases.push_str(&redis_database_yaml(&dir, redis_port));
        }
        if extras.mariadb {
            databases.push_str(&mariadb_database_yaml(my_port));
        }
        let cluster = Cluster::start_with(&format!(
            "proxy_service: {{ enabled: true, listen_addr: '127.0.0.1:{port}' }}\n\
             db_service:\n  enabled: true\n  databases:\n{databases}"
        ));
        let pg = start_postgres(&cluster, Some(pg_port));
        let redis = extras
            .redis
            .then(|| start_redis(&cluster, &dir, Some(redis_port)));
        let mariadb = extras
            .mariadb
            .then(|| start_mariadb(&cluster, Some(my_port)));
        Self::assemble(cluster, pg, redis, mariadb, Some(scratch))
    }

    fn assemble(
        cluster: Cluster,
        pg: PostgresServer,
        redis: Option<RedisServer>,
        mariadb: Option<MariaDbServer>,
        scratch: Option<tempfile::TempDir>,
    ) -> Self {
        let proxy_addr = wait_for_file(
            &cluster.data_dir().join("admin/proxy_addr"),
            Duration::from_secs(10),
        );
        let stack = Self {
            scratch,
            mariadb,
            redis,
            agent: None,
            agent_dir: cluster.dir().join("agent"),
            home: cluster.dir().join("home"),
            proxy_addr,
            cluster,
            pg,
        };
        fs::create_dir_all(&stack.home).unwrap();
        stack
    }

    /// The proxy's MySQL port.
    pub fn mysql_addr(&self) -> String {
        wait_for_file(
            &self.cluster.data_dir().join("admin/mysql_addr"),
            Duration::from_secs(10),
        )
    }

    /// Starts (or restarts) the agent process; it joins on first start.
    pub fn start_agent(&mut self) {
        if let Some(mut a) = self.agent.take() {
            let _ = a.kill();
            let _ = a.wait();
        }
        fs::create_dir_all(&self.agent_dir).unwrap();
        let config = self.agent_dir.join("agent.yaml");
        if !config.exists() {
            let token: serde_json::Value = serde_json::from_str(&self.cluster.pcctl_ok(&[
                "tokens",
                "add",
                "--type=db",
                "--format=json",
            ]))
            .unwrap();
            fs::write(
                &config,
                format!(
                    "version: v1\ncluster_name: e2e\ndata_dir: {data}\nlog: {{ level: debug }}\nauth_service: {{ enabled: false }}\ndb_service:\n  enabled: true\n  proxy_addr: '{proxy}'\n  join_token: '{token}'\n  ca_pin: '{pin}'\n  databases:\n    - name: pg1\n      protocol: postgres\n      uri: '127.0.0.1:{port}'\n      description: Test database\n      static_labels: {{ env: dev }}\n      dynamic_labels: [ {{ name: tier, command: [echo, gold], period: 1s }} ]\n{redis}",
                    redis = self
                        .redis
                        .as_ref()
                        .map(|r| redis_database_yaml(&self.agent_dir, r.port()))
                        .unwrap_or_default()
                        + &self
                            .mariadb
                            .as_ref()
                            .map(|m| mariadb_database_yaml(m.port()))
                            .unwrap_or_default(),
                    data = self.agent_dir.join("data").display(),
                    proxy = self.proxy_addr,
                    token = token["token"].as_str().unwrap(),
                    pin = token["ca_pin"].as_str().unwrap(),
                    port = self.pg.port(),
                ),
            )
            .unwrap();
        }
        let log_offset = self.agent_log().len();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.agent_dir.join("agent.log"))
            .unwrap();
        let child = Command::new(bin("portcullis"))
            .arg("start")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agent = Some(child);
        self.wait_for_tunnel_after(log_offset, Duration::from_secs(20));
    }

    /// Waits until the agent log, past byte `offset`, says the tunnel is up (so a restarted
    /// agent is not mistaken for ready by its previous run's line).
    pub fn wait_for_tunnel_after(&self, offset: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let log = self.agent_log();
            if log
                .get(offset..)
                .is_some_and(|l| l.contains("tunnel to the proxy is up"))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "agent did not connect:\n{log}\n{}",
                self.cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the agent process (SIGKILL).
    pub fn kill_agent(&mut self) {
        if let Some(mut a) = self.agent.take() {
            let _ = a.kill();
            let _ = a.wait();
        }
    }

    /// The agent's log so far.
    pub fn agent_log(&self) -> String {
        fs::read_to_string(self.agent_dir.join("agent.log")).unwrap_or_default()
    }

    /// Waits until auth lists `db` (the agent registered it).
    pub fn wait_for_database(&self, db: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.cluster.pcctl(&["status"]);
            let _ = out;
            // Registration is visible through the proxy to users; check via the audit-free
            // admin path: the proxy answers a session only once the tunnel is up, so poll the
            // agent log for the tunnel and the registration.
            let log = self.agent_log();
            if log.contains("tunnel to the proxy is up") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "agent did not connect for {db}:\n{log}\n{}",
                self.cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Adds a user with a password (second factor off in the harness).
    pub fn add_user(&self, name: &str, roles: &str, db_users: &str, db_names: &str) {
        let mut args = vec!["users", "add", name];
        let roles = format!("--roles={roles}");
        let users = format!("--db-users={db_users}");
        let names = format!("--db-names={db_names}");
        args.push(&roles);
        if !db_users.is_empty() {
            args.push(&users);
        }
        if !db_names.is_empty() {
            args.push(&names);
        }
        args.push("--password-stdin");
        let mut cmd = Command::new(bin("pcctl"));
        cmd.arg("-d").arg(self.cluster.data_dir()).args(&args);
        let out = run_with_stdin(&mut cmd, PASSWORD);
        assert_success("users add", &out);
    }

    /// Runs `pc` with this stack's home and service file.
    pub fn pc(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(bin("pc"));
        cmd.args(args)
            .env("PORTCULLIS_HOME", self.home.join(".portcullis"))
            .env("PGSERVICEFILE", self.home.join("pg_service.conf"))
            .env("HOME", &self.home);
        run_with_stdin(&mut cmd, stdin.unwrap_or(""))
    }

    /// `pc login` as `user`.
    pub fn login(&self, user: &str) {
        let proxy = format!("--proxy={}", self.proxy_addr);
        let u = format!("--user={user}");
        let out = self.pc(
            &["login", &proxy, &u, "--password-stdin", "--insecure"],
            Some(PASSWORD),
        );
        assert_success("pc login", &out);
    }

    /// psql through the proxy with the `[NAME]` service `pc db login` wrote.
    pub fn psql(&self, service: &str, sql: &str) -> Output {
        let mut cmd = Command::new(portcullis_testkit::binary_path("psql").unwrap());
        cmd.arg(format!("service={service}"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGSERVICEFILE", self.home.join("pg_service.conf"))
            .env("PGCONNECT_TIMEOUT", "10");
        portcullis_testkit::run_command(&mut cmd, Duration::from_secs(30)).unwrap()
    }

    /// `pc db login NAME --db-user=U --db-name=D`, which must succeed.
    pub fn db_login(&self, name: &str, db_user: &str, db_name: &str) {
        let u = format!("--db-user={db_user}");
        let d = format!("--db-name={db_name}");
        assert_success(
            "pc db login",
            &self.pc(&["db", "login", name, &u, &d], None),
        );
    }

    /// Creates (or replaces) resources from YAML with `pcctl create -f FILE --force`.
    pub fn create_resources(&self, yaml: &str) {
        let file = self
            .cluster
            .dir()
            .join(format!("resource-{}.yaml", uuid_like()));
        fs::write(&file, yaml).unwrap();
        self.cluster
            .pcctl_ok(&["create", "-f", file.to_str().unwrap(), "--force"]);
    }

    /// The parameters of the `[NAME]` section `pc db login` wrote to the service file.
    pub fn service_params(&self, name: &str) -> std::collections::HashMap<String, String> {
        let text = fs::read_to_string(self.home.join("pg_service.conf")).unwrap();
        let mut out = std::collections::HashMap::new();
        let mut inside = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                inside = line == format!("[{name}]");
            } else if inside {
                if let Some((k, v)) = line.split_once('=') {
                    out.insert(k.trim().to_owned(), v.trim().to_owned());
                }
            }
        }
        assert!(!out.is_empty(), "no [{name}] section in:\n{text}");
        out
    }

    /// The variables `pc db env NAME` exports.
    pub fn pc_db_env(&self, name: &str) -> Vec<(String, String)> {
        let out = assert_success("pc db env", &self.pc(&["db", "env", name], None));
        out.lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| {
                let v = v
                    .strip_prefix('\'')
                    .and_then(|v| v.strip_suffix('\''))
                    .unwrap_or(v);
                (k.to_owned(), v.replace("'\\''", "'"))
            })
            .collect()
    }

    /// A psql command for the `[NAME]` service (add `-c` and friends), not yet run.
    pub fn psql_command(&self, conninfo: &str) -> Command {
        let mut cmd = Command::new(portcullis_testkit::binary_path("psql").unwrap());
        cmd.arg(conninfo)
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .env("PGSERVICEFILE", self.home.join("pg_service.conf"))
            .env("HOME", &self.home)
            .env("PGCONNECT_TIMEOUT", "10");
        cmd
    }

    /// Starts psql in the background (`-c sql`), its output piped.
    pub fn spawn_psql(&self, service: &str, sql: &str) -> Child {
        self.psql_command(&format!("service={service}"))
            .args(["-c", sql])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Polls psql `select 1` until it succeeds; returns how long that took.
    pub fn wait_until_psql_works(&self, service: &str, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let out = self.psql(service, "select 1");
            if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "1" {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "psql did not work again within {within:?}: {}\n{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.agent_log(),
                self.cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts `pc proxy db NAME --port=0` and returns it with the port it printed.
    pub fn pc_proxy_db(&self, name: &str) -> PcProxy {
        let mut child = Command::new(bin("pc"))
            .args(["proxy", "db", name, "--port=0"])
            .env("PORTCULLIS_HOME", self.home.join(".portcullis"))
            .env("PGSERVICEFILE", self.home.join("pg_service.conf"))
            .env("HOME", &self.home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            // Keep draining so pc never blocks on a full pipe.
            for _ in lines {}
        });
        let mut guard = PcProxy { child, port: 0 };
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("pc proxy db printed nothing");
        let port = line
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        guard.port = port;
        guard
    }

    /// Every audit event so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        let text =
            fs::read_to_string(self.cluster.data_dir().join("log/events.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until an event matching `pred` is logged.
    pub fn wait_for_event(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} event; events:\n{:#?}",
                self.events()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A running `pc proxy db`; killed on drop.
pub struct PcProxy {
    pub child: Child,
    pub port: u16,
}

impl PcProxy {
    /// A tokio-postgres connection string for the local (plaintext) tunnel.
    pub fn conninfo(&self, user: &str, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname={dbname} sslmode=disable connect_timeout=10",
            self.port
        )
    }
}

impl Drop for PcProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Waits for a child with a deadline; kills it when the deadline passes. Returns its output
/// and whether it ended by itself.
pub fn wait_child(mut child: Child, within: Duration) -> (Output, bool) {
    let deadline = Instant::now() + within;
    let mut ended = true;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            ended = false;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child.wait_with_output().unwrap(), ended)
}

/// stdout and stderr of a command, together.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A real PostgreSQL presenting a certificate from the cluster's db CA (made with `pcctl auth
/// sign`), with roles `app` and `ro` and a database `shop` owned by `app`.
fn start_postgres(cluster: &Cluster, port: Option<u16>) -> PostgresServer {
    let mut builder = PostgresServer::builder(db_server_tls(cluster));
    if let Some(port) = port {
        builder = builder.port(port);
    }
    let pg = builder.start().expect("starting PostgreSQL");
    pg.create_role("app").unwrap();
    pg.create_role("ro").unwrap();
    pg.create_database("shop", "app").unwrap();
    pg
}

/// The password of Redis ACL user `user`, as the agent's password file holds it.
pub fn redis_password(dir: &Path, user: &str) -> String {
    fs::read_to_string(dir.join(format!("redis-{user}.pass")))
        .unwrap()
        .trim()
        .to_owned()
}

/// The `redis1` entry of an agent's `databases:` list; passwords are read from files in `dir`.
fn redis_database_yaml(dir: &Path, port: u16) -> String {
    fs::create_dir_all(dir).unwrap();
    for user in ["app", "ro"] {
        let file = dir.join(format!("redis-{user}.pass"));
        if !file.exists() {
            fs::write(&file, format!("{user}-{}\n", uuid_like())).unwrap();
        }
    }
    format!(
        "    - name: redis1\n      protocol: redis\n      uri: '127.0.0.1:{port}'\n      description: Test cache\n      static_labels: {{ env: dev }}\n      passwords: {{ app: 'file:{app}', ro: 'file:{ro}' }}\n",
        app = dir.join("redis-app.pass").display(),
        ro = dir.join("redis-ro.pass").display(),
    )
}

/// A real Redis with TLS from the cluster's db CA and ACL users `app` (all keys) and `ro`
/// (read-only), whose passwords are in `dir` (see [`redis_database_yaml`]).
fn start_redis(cluster: &Cluster, dir: &Path, port: Option<u16>) -> RedisServer {
    let mut builder = RedisServer::builder(db_server_tls(cluster));
    if let Some(port) = port {
        builder = builder.port(port);
    }
    let redis = builder.start().expect("starting Redis");
    redis_database_yaml(dir, redis.port());
    redis
        .acl_setuser("app", &redis_password(dir, "app"), &["~*", "&*", "+@all"])
        .unwrap();
    redis
        .acl_setuser(
            "ro",
            &redis_password(dir, "ro"),
            &["~*", "&*", "+@read", "+@connection"],
        )
        .unwrap();
    redis
}

/// The `my1` entry of an agent's `databases:` list.
fn mariadb_database_yaml(port: u16) -> String {
    format!(
        "    - name: my1\n      protocol: mysql\n      uri: '127.0.0.1:{port}'\n      description: Test MariaDB\n      static_labels: {{ env: dev }}\n"
    )
}

/// A real MariaDB with TLS from the cluster's db CA, accounts `app` (all of `shop` and
/// `other`) and `ro` (SELECT on `shop`) that log in with certificates `CN=app` / `CN=ro`.
fn start_mariadb(cluster: &Cluster, port: Option<u16>) -> MariaDbServer {
    let mut builder = MariaDbServer::builder(db_server_tls(cluster));
    if let Some(port) = port {
        builder = builder.port(port);
    }
    let m = builder.start().expect("starting MariaDB");
    m.create_user_require_subject("app", "/CN=app").unwrap();
    m.create_user_require_subject("ro", "/CN=ro").unwrap();
    m.create_database("shop", Some("app")).unwrap();
    m.create_database("other", Some("app")).unwrap();
    m.admin_sql("GRANT SELECT ON shop.* TO 'ro'@'%'").unwrap();
    m.admin_sql("CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(100), price DECIMAL(10,2), added DATETIME, data LONGBLOB)").unwrap();
    m.admin_sql("INSERT INTO shop.items VALUES (1, 'apple', 1.50, '2026-01-02 03:04:05', NULL), (2, 'pear', 2.25, NULL, NULL)").unwrap();
    m
}

/// A server certificate from the cluster's db CA for the test databases (signed once per
/// cluster, shared by PostgreSQL, MariaDB and Redis).
fn db_server_tls(cluster: &Cluster) -> ServerTls {
    let certs = cluster.dir().join("dbcerts");
    if !certs.join("server.crt").exists() {
        fs::create_dir_all(&certs).unwrap();
        cluster.pcctl_ok(&[
            "auth",
            "sign",
            "--format=db",
            "--host=127.0.0.1,localhost",
            "--out",
            certs.join("server").to_str().unwrap(),
        ]);
    }
    ServerTls {
        ca_cert_pem: fs::read_to_string(certs.join("server.cas")).unwrap(),
        server_cert_pem: fs::read_to_string(certs.join("server.crt")).unwrap(),
        server_key_pem: fs::read_to_string(certs.join("server.key")).unwrap(),
    }
}

/// A TLS 1.3 client configuration trusting `ca` and presenting `cert`/`key` (PEM files, as
/// `pc db login` writes them), for tests that speak a protocol by hand.
pub fn tls_client_config(
    ca: impl AsRef<Path>,
    cert: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> rustls::ClientConfig {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca.as_ref()).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert.as_ref())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(key.as_ref()).unwrap();
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(certs, key)
    .unwrap()
}

/// Runs a command with `input` on stdin, bounded in time.
pub fn run_with_stdin(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    out
}
