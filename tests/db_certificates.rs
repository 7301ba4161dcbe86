//! Proves that `docs/database-certificates.md` works verbatim: the `pcctl auth sign` commands
//! and the server configuration blocks in the doc are run against a real cluster and real
//! PostgreSQL, MariaDB and Redis servers (started by `portcullis-testkit`), and the real
//! clients (`psql`, `mariadb`, `redis-cli`) log in with a `db-client` certificate, exactly as
//! the database agent will, while a certificate from another CA is refused.
//!
//! How the doc is consumed (keep the doc within these rules):
//!
//! - Blocks are fenced code blocks whose info string carries `title=<name>`, e.g.
//!   ```` ```conf title=postgresql.conf ````. Every titled block is used by a test here, and
//!   every title a test asks for must exist exactly once ([`doc_blocks_are_all_consumed`]).
//! - The doc's directory `/etc/portcullis/db` is replaced by a per-test temp dir holding the
//!   files `pcctl` wrote there. Nothing else in the blocks is rewritten, except:
//! - in `sign-*.sh` blocks, each line is one `pcctl` command: `-d <data dir>` is inserted
//!   after `pcctl`, and the `--host=` value (the doc shows example host names) becomes
//!   `localhost,127.0.0.1`, since the clients here verify the host `127.0.0.1`; relative
//!   `--out` paths are relative to a per-test client dir;
//! - in `redis.conf`, the port number of the `tls-port` line becomes the kit's `{port}`;
//! - `pg_hba.conf` gets the kit's `local all all trust` line in front (first match wins, so
//!   the doc's lines still decide every TCP connection), for the kit's admin helpers.
//!
//! The kit's own TLS lines are off (`kit_tls_config(false)`): only the doc's lines configure
//! TLS. The kit still picks the port, binds 127.0.0.1 and sets its data/socket dirs.
//!
//! MongoDB cannot be tested against a server here (no `mongod` package is available): the
//! `mongodb` test checks the combined PEM (a CERTIFICATE, then its PRIVATE KEY) with
//! `openssl`, and that `mongod.conf` points at the files `pcctl` wrote.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_failure, assert_success, run, Cluster};
use portcullis_testkit::{binary_path, MariaDbServer, PostgresServer, RedisServer, ServerTls};
use tempfile::TempDir;

/// The directory the doc puts server files in; replaced by a temp dir.
const DOC_DIR: &str = "/etc/portcullis/db";

/// The `--host` value the sign commands get in place of the doc's example names.
const TEST_HOSTS: &str = "localhost,127.0.0.1";

/// Blocks this file consumes; [`doc_blocks_are_all_consumed`] checks the doc has exactly
/// these titled blocks.
const CONSUMED: &[&str] = &[
    "sign-server.sh",
    "sign-client.sh",
    "sign-mongodb.sh",
    "renew-server.sh",
    "postgresql.conf",
    "pg_hba.conf",
    "my.cnf",
    "mariadb-users.sql",
    "mariadb-users-x509.sql",
    "redis.conf",
    "mongod.conf",
];

// ---------------------------------------------------------------------------------------
// The doc

fn doc_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("docs")
        .join("database-certificates.md")
}

/// Titled fenced blocks of a markdown text: title -> bodies (in order).
fn titled_blocks(markdown: &str) -> BTreeMap<String, Vec<String>> {
    let mut blocks: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<(String, String, Option<String>)> = None; // (fence, body, title)
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        match &mut current {
            None => {
                let fence_len = trimmed.chars().take_while(|&c| c == '`').count();
                if fence_len >= 3 {
                    let info = &trimmed[fence_len..];
                    let title = info
                        .split_whitespace()
                        .find_map(|word| word.strip_prefix("title="))
                        .map(|t| t.trim_matches('"').to_owned());
                    current = Some(("`".repeat(fence_len), String::new(), title));
                }
            }
            Some((fence, body, title)) => {
                if trimmed.starts_with(fence.as_str())
                    && trimmed.trim_start_matches('`').trim().is_empty()
                {
                    if let Some(title) = title.take() {
                        blocks.entry(title).or_default().push(std::mem::take(body));
                    }
                    current = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    assert!(current.is_none(), "unterminated code block in the doc");
    blocks
}

/// The one block titled `title`, with the doc's directory replaced by `dir`.
fn doc_block(title: &str, dir: &Path) -> String {
    let text = fs::read_to_string(doc_path()).expect("reading docs/database-certificates.md");
    let blocks = titled_blocks(&text);
    let bodies = blocks
        .get(title)
        .unwrap_or_else(|| panic!("no block titled {title:?} in {}", doc_path().display()));
    assert_eq!(bodies.len(), 1, "block {title:?} appears more than once");
    bodies[0].replace(DOC_DIR, &dir.display().to_string())
}

/// Non-empty, non-comment lines of a block.
fn block_lines(block: &str) -> Vec<String> {
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Runs the `pcctl` commands of a `sign-*.sh` block (see the module docs for the rewrites).
fn run_sign_block(cluster: &Cluster, title: &str, server_dir: &Path, client_dir: &Path) {
    let lines = block_lines(&doc_block(title, server_dir));
    assert!(!lines.is_empty(), "block {title:?} has no command");
    for line in lines {
        let words: Vec<String> = line
            .split_whitespace()
            .map(|w| {
                if w.starts_with("--host=") {
                    format!("--host={TEST_HOSTS}")
                } else {
                    w.to_owned()
                }
            })
            .collect();
        assert_eq!(
            words.first().map(String::as_str),
            Some("pcctl"),
            "{title}: not a pcctl command: {line}"
        );
        let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
        let out = cluster.pcctl_in(client_dir, &args);
        assert_success(&format!("{title}: pcctl {}", args.join(" ")), &out);
    }
}

// ---------------------------------------------------------------------------------------
// Files, owners, other CA

struct Setup {
    cluster: Cluster,
    /// Stands for `/etc/portcullis/db` (server files, owned by the server's user).
    server_dir: TempDir,
    /// Where the `db-client` certificate for alice and the foreign certificate live.
    client_dir: TempDir,
}

impl Setup {
    /// Starts a cluster and runs the doc's server and client sign commands.
    fn new() -> Self {
        let cluster = Cluster::start();
        let server_dir = tempfile::Builder::new()
            .prefix("pc-e2e-db-")
            .tempdir()
            .unwrap();
        // The server's OS user must traverse the directory.
        fs::set_permissions(server_dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let client_dir = tempfile::Builder::new()
            .prefix("pc-e2e-cl-")
            .tempdir()
            .unwrap();
        run_sign_block(
            &cluster,
            "sign-server.sh",
            server_dir.path(),
            client_dir.path(),
        );
        run_sign_block(
            &cluster,
            "sign-client.sh",
            server_dir.path(),
            client_dir.path(),
        );
        let setup = Self {
            cluster,
            server_dir,
            client_dir,
        };
        setup.check_server_files();
        setup
    }

    fn server(&self, name: &str) -> PathBuf {
        self.server_dir.path().join(name)
    }

    fn client(&self, name: &str) -> PathBuf {
        self.client_dir.path().join(name)
    }

    /// What the contract says `--format=db` and `--format=db-client` write.
    fn check_server_files(&self) {
        for name in ["server.crt", "server.key", "server.cas"] {
            assert!(self.server(name).is_file(), "pcctl did not write {name}");
        }
        for name in ["alice.crt", "alice.key", "alice.cas"] {
            assert!(self.client(name).is_file(), "pcctl did not write {name}");
        }
        for key in [self.server("server.key"), self.client("alice.key")] {
            let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} has mode {mode:o}", key.display());
            let pem = fs::read_to_string(&key).unwrap();
            assert!(
                pem.starts_with("-----BEGIN PRIVATE KEY-----"),
                "{} is not a PKCS#8 PEM key",
                key.display()
            );
        }
        let subject = openssl(&[
            "x509",
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253",
            "-in",
            path_str(&self.client("alice.crt")),
        ]);
        assert_eq!(subject.trim(), "subject=CN=alice", "client cert subject");
        // The server certificate chains to the db CA and names 127.0.0.1.
        openssl(&[
            "verify",
            "-CAfile",
            path_str(&self.server("server.cas")),
            "-purpose",
            "sslserver",
            "-verify_ip",
            "127.0.0.1",
            path_str(&self.server("server.crt")),
        ]);
        openssl(&[
            "verify",
            "-CAfile",
            path_str(&self.client("alice.cas")),
            "-purpose",
            "sslclient",
            path_str(&self.client("alice.crt")),
        ]);
    }

    /// Hands the server files to `os_user` when running as root (servers refuse keys they
    /// do not own; the doc says to `chown` them).
    fn chown_server_files(&self, os_user: &str) {
        if !running_as_root() {
            return;
        }
        let mut cmd = Command::new("chown");
        cmd.arg(format!("{os_user}:{os_user}"));
        for name in ["server.crt", "server.key", "server.cas"] {
            cmd.arg(self.server(name));
        }
        assert_success("chown", &run(&mut cmd));
    }

    /// The kit insists on PEM material; with `kit_tls_config(false)` its copies go unused.
    fn server_tls(&self) -> ServerTls {
        let read = |p: PathBuf| fs::read_to_string(p).unwrap();
        ServerTls {
            ca_cert_pem: read(self.server("server.cas")),
            server_cert_pem: read(self.server("server.crt")),
            server_key_pem: read(self.server("server.key")),
        }
    }

    /// A CA that is not the cluster's and a client certificate `CN=alice` from it, as
    /// (`cert`, `key`) in the client dir.
    fn foreign_alice(&self) -> (PathBuf, PathBuf) {
        let d = self.client_dir.path();
        let p = |n: &str| d.join(n).display().to_string();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &p("other-ca.key"),
            "-out",
            &p("other-ca.crt"),
            "-days",
            "1",
            "-subj",
            "/CN=Other CA",
        ]);
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &p("other-alice.key"),
            "-out",
            &p("other-alice.csr"),
            "-subj",
            "/CN=alice",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &p("other-alice.csr"),
            "-CA",
            &p("other-ca.crt"),
            "-CAkey",
            &p("other-ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            &p("other-alice.crt"),
        ]);
        let key = d.join("other-alice.key");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        (d.join("other-alice.crt"), key)
    }
}

fn running_as_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Runs `openssl <args>`, panicking with its output on failure; returns stdout.
fn openssl(args: &[&str]) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    assert_success(&format!("openssl {}", args.join(" ")), &run(&mut cmd))
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn doc_blocks_are_all_consumed() {
    let text = fs::read_to_string(doc_path()).unwrap();
    let blocks = titled_blocks(&text);
    let titles: Vec<&str> = blocks.keys().map(String::as_str).collect();
    let mut expected = CONSUMED.to_vec();
    expected.sort_unstable();
    assert_eq!(
        titles, expected,
        "titled blocks in the doc vs. those tested"
    );
    for (title, bodies) in &blocks {
        assert_eq!(bodies.len(), 1, "{title} appears {} times", bodies.len());
        assert!(
            bodies[0].contains(DOC_DIR)
                || title.ends_with(".sql")
                || title == "pg_hba.conf"
                || title == "sign-client.sh",
            "{title} does not use {DOC_DIR}"
        );
    }
}

#[test]
fn block_parser_handles_titles_and_fences() {
    let md = "x\n```conf title=a.conf\nl1\n\n```\n````md title=\"b\"\n```\ninner\n```\n````\n```sh\nuntitled\n```\n";
    let blocks = titled_blocks(md);
    assert_eq!(blocks["a.conf"], vec!["l1\n\n".to_owned()]);
    assert_eq!(blocks["b"], vec!["```\ninner\n```\n".to_owned()]);
    assert_eq!(blocks.len(), 2);
}

#[test]
fn postgresql_accepts_the_db_client_certificate_and_refuses_others() {
    let setup = Setup::new();
    let (other_crt, other_key) = setup.foreign_alice();
    // A db CA certificate whose CN is another user.
    let out = setup.cluster.pcctl_in(
        setup.client_dir.path(),
        &[
            "auth",
            "sign",
            "--format=db-client",
            "--db-user=bob",
            "--out=./bob",
            "--ttl=1h",
        ],
    );
    assert_success("pcctl sign db-client bob", &out);
    setup.chown_server_files("postgres");

    let dir = setup.server_dir.path();
    let conf = block_lines(&doc_block("postgresql.conf", dir));
    let hba = format!("local all all trust\n{}", doc_block("pg_hba.conf", dir));
    let pg = PostgresServer::builder(setup.server_tls())
        .kit_tls_config(false)
        .postgresql_conf_lines(conf)
        .pg_hba(hba)
        .start()
        .expect("PostgreSQL starts with the doc's lines");
    pg.create_role("alice").unwrap();

    let psql = |conninfo: String| {
        let mut cmd = Command::new(binary_path("psql").unwrap());
        cmd.env("PGCONNECT_TIMEOUT", "5")
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg(conninfo)
            .args([
                "-c",
                "select current_user || ' ' || version from pg_stat_ssl where pid = pg_backend_pid()",
            ]);
        run(&mut cmd)
    };
    let cas = setup.server("server.cas");

    // The agent's way in: verify-full against the db CA, certificate CN=alice.
    let ok = psql(pg.tls_conninfo(
        "alice",
        "postgres",
        &cas,
        &setup.client("alice.crt"),
        &setup.client("alice.key"),
    ));
    let stdout = assert_success("psql as alice with the db-client certificate", &ok);
    assert_eq!(stdout.trim(), "alice TLSv1.3");

    // A certificate for alice from another CA.
    let bad = psql(pg.tls_conninfo("alice", "postgres", &cas, &other_crt, &other_key));
    let msg = assert_failure("psql with a foreign certificate", &bad);
    assert!(
        msg.contains("unknown ca")
            || msg.contains("certificate verify failed")
            || msg.contains("server closed the connection unexpectedly"),
        "unexpected error for a foreign certificate:\n{msg}"
    );

    // A db CA certificate for bob used as alice.
    let bad = psql(pg.tls_conninfo(
        "alice",
        "postgres",
        &cas,
        &setup.client("bob.crt"),
        &setup.client("bob.key"),
    ));
    let msg = assert_failure("psql as alice with bob's certificate", &bad);
    assert!(
        msg.contains("certificate authentication failed for user \"alice\""),
        "unexpected error for a CN mismatch:\n{msg}"
    );

    // No TLS at all.
    let bad = psql(format!(
        "host=127.0.0.1 port={} user=alice dbname=postgres sslmode=disable",
        pg.port()
    ));
    let msg = assert_failure("psql without TLS", &bad);
    assert!(
        msg.contains("no pg_hba.conf entry"),
        "unexpected error without TLS:\n{msg}"
    );

    // TLS, but no client certificate.
    let bad = psql(format!(
        "host=127.0.0.1 port={} user=alice dbname=postgres sslmode=verify-full sslrootcert={} sslcert=/nonexistent sslkey=/nonexistent",
        pg.port(),
        cas.display()
    ));
    let msg = assert_failure("psql without a client certificate", &bad);
    assert!(
        msg.contains("connection requires a valid client certificate"),
        "unexpected error without a client certificate:\n{msg}"
    );

    // Renewal as the doc says: re-sign over the old files (`--overwrite`), restore the owner,
    // reload; the server then presents the new certificate. (Without `--overwrite` pcctl
    // refuses, as the doc says.)
    let out = setup.cluster.pcctl(&[
        "auth",
        "sign",
        "--format=db",
        "--host=localhost,127.0.0.1",
        &format!("--out={}", setup.server("server").display()),
    ]);
    let msg = assert_failure("pcctl auth sign over existing files", &out);
    assert!(msg.contains("--overwrite"), "unexpected refusal: {msg}");
    let serial = |crt: &Path| openssl(&["x509", "-noout", "-serial", "-in", path_str(crt)]);
    let presented = || {
        let mut cmd = Command::new("openssl");
        cmd.args(["s_client", "-starttls", "postgres", "-connect"])
            .arg(format!("127.0.0.1:{}", pg.port()))
            .arg("-CAfile")
            .arg(&cas);
        let out = run(&mut cmd);
        let pem = String::from_utf8_lossy(&out.stdout).into_owned();
        let start = pem
            .find("-----BEGIN CERTIFICATE-----")
            .unwrap_or_else(|| panic!("s_client printed no certificate:\n{pem}"));
        let cert = setup.client_dir.path().join("presented.crt");
        fs::write(&cert, &pem[start..]).unwrap();
        serial(&cert)
    };
    let old = serial(&setup.server("server.crt"));
    assert_eq!(presented(), old, "the server presents pcctl's certificate");
    run_sign_block(
        &setup.cluster,
        "renew-server.sh",
        setup.server_dir.path(),
        setup.client_dir.path(),
    );
    let new = serial(&setup.server("server.crt"));
    assert_ne!(new, old, "re-signing wrote a new certificate");
    setup.chown_server_files("postgres");
    pg.admin_sql("select pg_reload_conf()").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while presented() != new {
        assert!(
            std::time::Instant::now() < deadline,
            "the server still presents the old certificate after pg_reload_conf()"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let ok = psql(pg.tls_conninfo(
        "alice",
        "postgres",
        &cas,
        &setup.client("alice.crt"),
        &setup.client("alice.key"),
    ));
    assert_success("psql as alice after renewal", &ok);
}

#[test]
fn mariadb_accepts_the_db_client_certificate_and_refuses_others() {
    let setup = Setup::new();
    let (other_crt, other_key) = setup.foreign_alice();
    setup.chown_server_files("mysql");

    let dir = setup.server_dir.path();
    let db = MariaDbServer::builder(setup.server_tls())
        .kit_tls_config(false)
        .my_cnf_lines(block_lines(&doc_block("my.cnf", dir)))
        .start()
        .expect("MariaDB starts with the doc's lines");
    db.admin_sql(&doc_block("mariadb-users.sql", dir))
        .expect("the doc's user statements run");
    db.admin_sql(&doc_block("mariadb-users-x509.sql", dir))
        .expect("the doc's REQUIRE X509 statements run");

    let cas = setup.server("server.cas");
    let mariadb = |user: &str, tls: &[String]| {
        let mut cmd = Command::new(binary_path("mariadb").unwrap());
        cmd.arg("--no-defaults")
            .args(["-h", "127.0.0.1", "--connect-timeout=5", "-N", "-B"])
            .arg(format!("-P{}", db.port()))
            .arg(format!("-u{user}"))
            .args(tls)
            .args([
                "-e",
                "select current_user(), variable_value from information_schema.session_status \
                 where variable_name = 'Ssl_version'",
            ]);
        run(&mut cmd)
    };
    let tls = |crt: &Path, key: &Path| {
        vec![
            format!("--ssl-ca={}", cas.display()),
            format!("--ssl-cert={}", crt.display()),
            format!("--ssl-key={}", key.display()),
            "--ssl-verify-server-cert".to_owned(),
        ]
    };
    let alice_tls = tls(&setup.client("alice.crt"), &setup.client("alice.key"));

    let ok = mariadb("alice", &alice_tls);
    let stdout = assert_success("mariadb as alice with the db-client certificate", &ok);
    assert_eq!(stdout.trim(), "alice@%\tTLSv1.3");

    let bad = mariadb("alice", &tls(&other_crt, &other_key));
    let msg = assert_failure("mariadb with a foreign certificate", &bad);
    assert!(
        // TLS 1.3: the server's alert may arrive after the client thinks the handshake is done.
        msg.contains("unknown ca") || msg.contains("Lost connection to server"),
        "unexpected error for a foreign certificate:\n{msg}"
    );

    // TLS without a client certificate: REQUIRE SUBJECT refuses.
    let bad = mariadb(
        "alice",
        &[
            format!("--ssl-ca={}", cas.display()),
            "--ssl-verify-server-cert".to_owned(),
        ],
    );
    let msg = assert_failure("mariadb without a client certificate", &bad);
    assert!(
        msg.contains("Access denied for user 'alice'"),
        "unexpected error without a client certificate:\n{msg}"
    );

    // No TLS: alice's REQUIRE SUBJECT refuses; and require_secure_transport refuses even an
    // account without any REQUIRE clause (a test-only account, not from the doc).
    let bad = mariadb("alice", &["--skip-ssl".to_owned()]);
    let msg = assert_failure("mariadb as alice without TLS", &bad);
    assert!(
        msg.contains("Access denied for user 'alice'"),
        "unexpected error without TLS:\n{msg}"
    );
    db.admin_sql("CREATE USER 'plain'@'%'").unwrap();
    let bad = mariadb("plain", &["--skip-ssl".to_owned()]);
    // MariaDB (unlike MySQL's ERROR 3159) says only "Access denied" here.
    let msg = assert_failure("mariadb as a user without REQUIRE, without TLS", &bad);
    assert!(
        msg.contains("Access denied for user 'plain'"),
        "unexpected error without TLS:\n{msg}"
    );
    let ok = mariadb(
        "plain",
        &[
            format!("--ssl-ca={}", cas.display()),
            "--ssl-verify-server-cert".to_owned(),
        ],
    );
    assert_success("mariadb as a user without REQUIRE, with TLS", &ok);
    let vars = db
        .admin_sql("select @@require_secure_transport, @@tls_version")
        .unwrap();
    assert_eq!(vars, "1\tTLSv1.2,TLSv1.3");

    // REQUIRE X509 takes any db CA certificate (what the doc warns about).
    let ok = mariadb("reporting", &alice_tls);
    let stdout = assert_success("mariadb as reporting (REQUIRE X509) with alice's cert", &ok);
    assert_eq!(stdout.trim(), "reporting@%\tTLSv1.3");
}

#[test]
fn redis_accepts_the_db_client_certificate_and_refuses_others() {
    let setup = Setup::new();
    let (other_crt, other_key) = setup.foreign_alice();
    // The kit runs redis-server as the test user: no chown needed.

    let dir = setup.server_dir.path();
    let conf = doc_block("redis.conf", dir);
    let mut password = None;
    let lines: Vec<String> = block_lines(&conf)
        .into_iter()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.first() == Some(&"user") && words.get(1) == Some(&"alice") {
                password = words
                    .iter()
                    .find_map(|w| w.strip_prefix('>'))
                    .map(str::to_owned);
            }
            if words.first() == Some(&"tls-port") {
                "tls-port {port}".to_owned()
            } else {
                line
            }
        })
        .collect();
    let password = password.expect("redis.conf block has `user alice on >password ...`");
    let redis = RedisServer::builder(setup.server_tls())
        .kit_tls_config(false)
        .conf_lines(lines)
        .start()
        .expect("Redis starts with the doc's lines");

    let cas = setup.server("server.cas");
    let redis_cli = |crt: &Path, key: &Path, auth: bool, args: &[&str]| {
        let mut cmd = Command::new(binary_path("redis-cli").unwrap());
        cmd.args(["--tls", "-h", "127.0.0.1", "-e", "--no-auth-warning"])
            .arg("-p")
            .arg(redis.port().to_string())
            .arg("--cacert")
            .arg(&cas)
            .arg("--cert")
            .arg(crt)
            .arg("--key")
            .arg(key);
        if auth {
            cmd.args(["--user", "alice", "--pass", &password]);
        }
        cmd.args(args);
        run(&mut cmd)
    };
    let (crt, key) = (setup.client("alice.crt"), setup.client("alice.key"));

    let ok = redis_cli(&crt, &key, true, &["SET", "app:e2e", "ok"]);
    assert_eq!(assert_success("redis-cli SET as alice", &ok).trim(), "OK");
    let ok = redis_cli(&crt, &key, true, &["GET", "app:e2e"]);
    assert_eq!(assert_success("redis-cli GET as alice", &ok).trim(), "ok");

    // Outside alice's key pattern.
    let out = redis_cli(&crt, &key, true, &["GET", "other:key"]);
    let msg = assert_failure("redis-cli GET outside alice's keys", &out);
    assert!(
        msg.contains("NOPERM"),
        "ACL key pattern not applied:\n{msg}"
    );

    // The default user is off: a certificate alone is not enough.
    let out = redis_cli(&crt, &key, false, &["PING"]);
    let msg = assert_failure("redis-cli without AUTH", &out);
    assert!(
        msg.contains("NOAUTH"),
        "unauthenticated PING was not refused:\n{msg}"
    );

    let bad = redis_cli(&other_crt, &other_key, true, &["PING"]);
    let msg = assert_failure("redis-cli with a foreign certificate", &bad);
    assert!(
        !msg.contains("PONG"),
        "a foreign certificate got an answer:\n{msg}"
    );
    assert!(
        msg.contains("TLS")
            || msg.contains("SSL")
            || msg.contains("closed")
            || msg.contains("reset"),
        "unexpected error for a foreign certificate:\n{msg}"
    );
}

#[test]
fn mongodb_combined_pem_and_config() {
    let cluster = Cluster::start();
    let server_dir = tempfile::tempdir().unwrap();
    let client_dir = tempfile::tempdir().unwrap();
    run_sign_block(
        &cluster,
        "sign-mongodb.sh",
        server_dir.path(),
        client_dir.path(),
    );
    let crt = server_dir.path().join("mongo.crt");
    let cas = server_dir.path().join("mongo.cas");
    let pem = fs::read_to_string(&crt).expect("pcctl wrote mongo.crt");
    assert!(cas.is_file(), "pcctl wrote mongo.cas");

    // A CERTIFICATE, then a PRIVATE KEY (the order mongod expects), nothing else.
    let labels: Vec<&str> = pem
        .lines()
        .filter_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .collect();
    assert_eq!(
        labels,
        ["CERTIFICATE", "PRIVATE KEY"],
        "mongo.crt PEM blocks"
    );
    let mode = fs::metadata(&crt).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode & 0o077,
        0,
        "mongo.crt holds a key but has mode {mode:o}"
    );

    // Both parse, belong together, and the certificate chains to the db CA for 127.0.0.1.
    let cert_pub = openssl(&["x509", "-in", path_str(&crt), "-noout", "-pubkey"]);
    let key_pub = openssl(&["pkey", "-in", path_str(&crt), "-pubout"]);
    assert_eq!(
        cert_pub, key_pub,
        "the key in mongo.crt is not the certificate's"
    );
    openssl(&[
        "verify",
        "-CAfile",
        path_str(&cas),
        "-purpose",
        "sslserver",
        "-verify_ip",
        "127.0.0.1",
        path_str(&crt),
    ]);

    // mongod.conf is YAML that points at exactly those files and requires TLS.
    let conf: serde_norway::Value =
        serde_norway::from_str(&doc_block("mongod.conf", server_dir.path()))
            .expect("mongod.conf block is YAML");
    let tls = &conf["net"]["tls"];
    assert_eq!(tls["mode"].as_str(), Some("requireTLS"));
    assert_eq!(tls["certificateKeyFile"].as_str(), Some(path_str(&crt)));
    assert_eq!(tls["CAFile"].as_str(), Some(path_str(&cas)));
    assert!(
        tls.get("allowConnectionsWithoutCertificates").is_none(),
        "client certificates must stay required"
    );
}
