//! End-to-end tests of the kit: real servers, real clients, certificates from `openssl`.
//!
//! All tests live in one binary so that the servers start in parallel.

// clippy.toml's allow-*-in-tests covers `#[test]` fns only, not this file's helpers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use portcullis_testkit::{
    binary_path, require_binaries, run_command, write_private_file, MariaDbServer, PostgresServer,
    RedisServer, ServerTls, TestkitError,
};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A throwaway CA with a server certificate (127.0.0.1 / localhost) and a client
/// certificate for CN=alice, made with the `openssl` command-line tool.
struct Pki {
    dir: tempfile::TempDir,
    tls: ServerTls,
}

impl Pki {
    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }
    fn client_cert(&self) -> PathBuf {
        self.dir.path().join("alice.crt")
    }
    fn client_key(&self) -> PathBuf {
        self.dir.path().join("alice.key")
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = run_command(
        Command::new("openssl").args(args).current_dir(dir),
        CLIENT_TIMEOUT,
    )
    .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn issue(dir: &Path, name: &str, cn: &str, ext: &str) {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let crt = format!("{name}.crt");
    let ext_file = format!("{name}.ext");
    fs::write(dir.join(&ext_file), ext).unwrap();
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key,
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &key,
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext_file,
            "-out",
            &crt,
        ],
    );
}

fn pki() -> Pki {
    require_binaries(&["openssl"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(
        d.join("ca.cnf"),
        "[req]\ndistinguished_name = dn\nx509_extensions = v3_ca\nprompt = no\n\
         [dn]\nCN = Portcullis Testkit CA\n\
         [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "ca.key",
        ],
    );
    openssl(
        d,
        &[
            "req", "-x509", "-new", "-key", "ca.key", "-config", "ca.cnf", "-days", "2", "-out",
            "ca.crt",
        ],
    );
    issue(
        d,
        "server",
        "localhost",
        "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n",
    );
    issue(
        d,
        "alice",
        "alice",
        "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
         extendedKeyUsage = clientAuth\n",
    );
    // libpq insists on 0600 client keys.
    let key = fs::read(d.join("alice.key")).unwrap();
    write_private_file(&d.join("alice.key"), key).unwrap();
    let read = |name: &str| fs::read_to_string(d.join(name)).unwrap();
    let tls = ServerTls {
        ca_cert_pem: read("ca.crt"),
        server_cert_pem: read("server.crt"),
        server_key_pem: read("server.key"),
    };
    Pki { dir, tls }
}

/// Runs a client with `HOME` pointed at the PKI dir so nothing from the real home
/// (`~/.postgresql`, `~/.my.cnf`, `~/.redisclirc`) leaks in.
fn client(pki: &Pki, program: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(binary_path(program).unwrap());
    cmd.args(args)
        .env("HOME", pki.dir.path())
        .env_remove("PGSSLCERT")
        .env_remove("PGSSLKEY")
        .env_remove("REDISCLI_AUTH");
    run_command(&mut cmd, CLIENT_TIMEOUT).unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn process_gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn postgres_certificate_login_works_and_no_certificate_is_refused() {
    require_binaries(&["initdb", "postgres", "psql", "pg_isready"]).unwrap();
    let pki = pki();
    let started = Instant::now();
    let pg = PostgresServer::builder(pki.tls.clone()).start().unwrap();
    eprintln!("postgres ready in {:?}", started.elapsed());
    assert_eq!(pg.host(), "127.0.0.1");
    assert!(pg.dir().join("server.crt").is_file());
    pg.create_role("alice").unwrap();
    pg.create_database("app", "alice").unwrap();
    assert_eq!(pg.admin_sql("select 40 + 2").unwrap(), "42");

    let conninfo = pg.tls_conninfo(
        "alice",
        "app",
        &pki.ca(),
        &pki.client_cert(),
        &pki.client_key(),
    );
    let out = client(
        &pki,
        "psql",
        &["-X", "-At", &conninfo, "-c", "select current_user"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "alice");

    // Exactly the form from the docs / the brief.
    let conninfo = format!(
        "host=127.0.0.1 port={} user=alice dbname=postgres sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        pg.port(),
        p(&pki.ca()),
        p(&pki.client_cert()),
        p(&pki.client_key())
    );
    let out = client(&pki, "psql", &["-X", &conninfo, "-c", "select 1"]);
    assert!(out.status.success(), "{}", text(&out));

    // Negative: TLS with server verification but no client certificate.
    let no_cert = format!(
        "host=127.0.0.1 port={} user=alice dbname=postgres sslmode=verify-full sslrootcert={} connect_timeout=5",
        pg.port(),
        p(&pki.ca())
    );
    let out = client(&pki, "psql", &["-X", &no_cert, "-c", "select 1"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("certificate"),
        "{}",
        text(&out)
    );

    let err = pg.admin_sql("select * from no_such_table").unwrap_err();
    assert!(matches!(err, TestkitError::Admin { .. }), "{err}");
    assert!(err.to_string().contains("no_such_table"), "{err}");

    let (pid, dir) = (pg.pid(), pg.dir().to_path_buf());
    drop(pg);
    assert!(process_gone(pid), "postgres {pid} still running");
    assert!(!dir.exists(), "{} not removed", dir.display());
}

#[test]
fn postgres_accepts_docs_style_tls_lines_verbatim() {
    require_binaries(&["initdb", "postgres", "psql", "pg_isready"]).unwrap();
    let pki = pki();
    let pg = PostgresServer::builder(pki.tls.clone())
        .kit_tls_config(false)
        .postgresql_conf_lines([
            "ssl = on",
            "ssl_cert_file = '{dir}/server.crt'",
            "ssl_key_file = '{dir}/server.key'",
            "ssl_ca_file = '{dir}/ca.crt'",
            "ssl_min_protocol_version = 'TLSv1.3'",
        ])
        .pg_hba("local all all trust\nhostssl all all 127.0.0.1/32 cert clientcert=verify-full\n")
        .start()
        .unwrap();
    assert_eq!(
        pg.admin_sql("show ssl_min_protocol_version").unwrap(),
        "TLSv1.3"
    );
    assert_eq!(
        pg.admin_sql("show ssl_cert_file").unwrap(),
        format!("{}/server.crt", pg.dir().display())
    );
    pg.create_role("alice").unwrap();
    let conninfo = pg.tls_conninfo(
        "alice",
        "postgres",
        &pki.ca(),
        &pki.client_cert(),
        &pki.client_key(),
    );
    let out = client(
        &pki,
        "psql",
        &[
            "-X",
            "-At",
            &conninfo,
            "-c",
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t");
}

#[test]
fn mariadb_certificate_login_works_and_no_certificate_is_refused() {
    require_binaries(&["mariadbd", "mariadb-install-db", "mariadb", "mariadb-admin"]).unwrap();
    let pki = pki();
    let started = Instant::now();
    let db = MariaDbServer::builder(pki.tls.clone()).start().unwrap();
    eprintln!("mariadb ready in {:?}", started.elapsed());
    db.create_user_require_subject("alice", "/CN=alice")
        .unwrap();
    db.create_database("app", Some("alice")).unwrap();
    assert_eq!(db.admin_sql("select 40 + 2").unwrap(), "42");

    let port = db.port().to_string();
    let (ca, cert, key) = (p(&pki.ca()), p(&pki.client_cert()), p(&pki.client_key()));
    let tls_args = [
        "--no-defaults",
        "-h",
        "127.0.0.1",
        "-P",
        &port,
        "-u",
        "alice",
        "--ssl-ca",
        &ca,
        "--ssl-verify-server-cert",
        "--connect-timeout=5",
    ];
    let mut args = tls_args.to_vec();
    args.extend(["--ssl-cert", &cert, "--ssl-key", &key, "-N", "-B", "-e"]);
    args.push("select current_user(), database() from dual; use app; select 1");
    let out = client(&pki, "mariadb", &args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("alice@%"),
        "{}",
        text(&out)
    );

    // Negative: TLS and server verification, but no client certificate.
    let mut args = tls_args.to_vec();
    args.extend(["-e", "select 1"]);
    let out = client(&pki, "mariadb", &args);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Access denied"),
        "{}",
        text(&out)
    );

    let (pid, dir) = (db.pid(), db.dir().to_path_buf());
    drop(db);
    assert!(process_gone(pid), "mariadbd {pid} still running");
    assert!(!dir.exists(), "{} not removed", dir.display());
}

#[test]
fn redis_certificate_and_acl_login_works_and_no_certificate_is_refused() {
    require_binaries(&["redis-server", "redis-cli"]).unwrap();
    let pki = pki();
    let started = Instant::now();
    // `user default off`: otherwise a failed AUTH silently leaves the client logged in as
    // the passwordless `default` user (redis-cli then still answers PONG).
    let redis = RedisServer::builder(pki.tls.clone())
        .conf_lines(["user default off"])
        .start()
        .unwrap();
    eprintln!("redis ready in {:?}", started.elapsed());
    redis
        .acl_setuser("alice", "s3cret", &["~app:*", "+@all"])
        .unwrap();

    let port = redis.port().to_string();
    let (ca, cert, key) = (p(&pki.ca()), p(&pki.client_cert()), p(&pki.client_key()));
    let base = ["-h", "127.0.0.1", "-p", &port, "--tls", "--cacert", &ca];
    let with_cert = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend(["--cert", &cert, "--key", &key]);
        args.extend(extra);
        client(&pki, "redis-cli", &args)
    };

    // TLS with a client certificate gets through; the command then needs AUTH.
    let out = with_cert(&["-e", "PING"]);
    assert!(text(&out).contains("NOAUTH"), "{}", text(&out));

    let auth = [
        "--user",
        "alice",
        "--pass",
        "s3cret",
        "--no-auth-warning",
        "-e",
    ];
    let mut args = auth.to_vec();
    args.extend(["PING"]);
    let out = with_cert(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "PONG");
    let mut args = auth.to_vec();
    args.extend(["SET", "app:k", "v"]);
    let out = with_cert(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
    let mut args = auth.to_vec();
    args.extend(["GET", "other:k"]);
    let out = with_cert(&args);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("NOPERM"), "{}", text(&out));
    let mut args = auth.to_vec();
    args[3] = "wrong";
    args.push("PING");
    let out = with_cert(&args);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("PONG"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("WRONGPASS"), "{}", text(&out));

    // Negative: TLS with server verification but no client certificate.
    let mut args = base.to_vec();
    args.push("PING");
    let out = client(&pki, "redis-cli", &args);
    eprintln!("redis without client certificate: {}", text(&out));
    assert!(!text(&out).contains("PONG"), "{}", text(&out));
    assert!(!text(&out).contains("NOAUTH"), "{}", text(&out));

    assert_eq!(redis.command(&["GET", "app:k"]).unwrap(), "v");
    let (pid, dir) = (redis.pid(), redis.dir().to_path_buf());
    drop(redis);
    assert!(process_gone(pid), "redis-server {pid} still running");
    assert!(!dir.exists(), "{} not removed", dir.display());
}

#[test]
fn redis_start_failure_reports_log_tail() {
    let pki = pki();
    let err = RedisServer::builder(pki.tls)
        .conf_lines(["no-such-directive yes"])
        .start()
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TestkitError::StartFailed { .. }), "{msg}");
    assert!(msg.contains("no-such-directive"), "{msg}");
    assert!(msg.contains("server.log"), "{msg}");
}

#[test]
fn several_servers_start_in_parallel() {
    let pki = pki();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let tls = pki.tls.clone();
            std::thread::spawn(move || RedisServer::builder(tls).start().unwrap())
        })
        .collect();
    let servers: Vec<RedisServer> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut ports: Vec<u16> = servers.iter().map(RedisServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3);
    for s in &servers {
        assert_eq!(s.command(&["PING"]).unwrap(), "PONG");
    }
}

#[test]
fn server_survives_being_moved_to_another_thread() {
    fn assert_send<T: Send + Sync>() {}
    assert_send::<PostgresServer>();
    assert_send::<MariaDbServer>();
    assert_send::<RedisServer>();
}

/// Child half of the watchdog tests: started by the parent test as a separate process,
/// starts a server, prints its pid and waits to be SIGKILLed (so no destructor runs).
#[test]
#[ignore = "helper process for watchdog_* tests"]
fn watchdog_child() {
    let Ok(kind) = std::env::var("PCTK_WATCHDOG_CHILD") else {
        return;
    };
    let pki = pki();
    let pid = match kind.as_str() {
        "redis" => {
            let s = RedisServer::builder(pki.tls.clone()).start().unwrap();
            let pid = s.pid();
            std::mem::forget(s);
            pid
        }
        _ => {
            let s = PostgresServer::builder(pki.tls.clone()).start().unwrap();
            let pid = s.pid();
            std::mem::forget(s);
            pid
        }
    };
    println!("SERVER_PID={pid}");
    std::thread::sleep(Duration::from_secs(60));
}

/// `true` once `pid` has exited (absent, or a zombie: on machines whose PID 1 does not
/// reap orphans, a killed orphan lingers as `Z`).
fn exited(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn server_dies_when_test_process_is_killed(kind: &str) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "watchdog_child", "--nocapture"])
        .env("PCTK_WATCHDOG_CHILD", kind)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let pid: u32 = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("SERVER_PID=").map(|p| p.parse().unwrap()))
        .unwrap_or_else(|| {
            let _ = child.kill();
            panic!("child did not report a server pid")
        });
    assert!(!exited(pid));
    // The server's cwd is its temp dir (postgres: `{dir}/data`).
    let cwd = fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    let dir = if cwd.ends_with("data") {
        cwd.parent().unwrap().to_path_buf()
    } else {
        cwd
    };
    assert!(dir.join("server.log").is_file(), "{}", dir.display());
    child.kill().unwrap(); // SIGKILL: no destructors run in the child
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !exited(pid) {
        assert!(
            Instant::now() < deadline,
            "{kind} server {pid} outlived its test process"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    while dir.exists() {
        assert!(
            Instant::now() < deadline,
            "{} not removed by the watchdog",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn watchdog_kills_redis_when_test_process_is_killed() {
    server_dies_when_test_process_is_killed("redis");
}

#[test]
fn watchdog_kills_postgres_when_test_process_is_killed() {
    server_dies_when_test_process_is_killed("postgres");
}

/// A taken fixed port fails fast with the server's own "Address already in use" in the
/// error (the same text the kit's automatic-port retry looks for).
#[test]
fn taken_port_is_reported_with_the_log() {
    let pki = pki();
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let errors = [
        RedisServer::builder(pki.tls.clone())
            .port(port)
            .start()
            .map(drop)
            .unwrap_err(),
        MariaDbServer::builder(pki.tls.clone())
            .port(port)
            .start()
            .map(drop)
            .unwrap_err(),
        PostgresServer::builder(pki.tls.clone())
            .port(port)
            .start()
            .map(drop)
            .unwrap_err(),
    ];
    for err in errors {
        let msg = err.to_string();
        assert!(matches!(err, TestkitError::StartFailed { .. }), "{msg}");
        assert!(
            msg.to_ascii_lowercase().contains("address already in use"),
            "{msg}"
        );
    }
}
