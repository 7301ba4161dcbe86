//! PostgreSQL refusals end to end: every way a session is refused or ended reaches the client
//! as a PostgreSQL error (never a hang) and the audit log as `db.session.start` with
//! `success: false` and an `error`, or `db.session.end` with a `reason`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::pg::{output_text, wait_child, PgStack, PASSWORD};
use common::{assert_failure, assert_success, run};

fn is_refusal(e: &serde_json::Value, user: Option<&str>, error_has: &str) -> bool {
    e["event"] == "db.session.start"
        && e["success"] == false
        && e["code"] == "TDB00W"
        && user.is_none_or(|u| e["user"] == u)
        && e["error"].as_str().is_some_and(|m| m.contains(error_has))
}

/// psql with sslmode=require and no certificate gets a FATAL saying one is required (the
/// proxy accepts TLS without a client certificate so it can say so), not a TLS hang.
#[test]
fn no_client_certificate_and_a_foreign_ca() {
    let stack = PgStack::start("");
    stack.add_user("alice", "access", "app", "shop");
    stack.login("alice");
    stack.db_login("pg1", "app", "shop");
    let svc = stack.service_params("pg1");
    let (host, port) = (&svc["host"], &svc["port"]);

    // No certificate at all (HOME has no ~/.postgresql/postgresql.crt).
    let started = Instant::now();
    let out = stack
        .psql_command(&format!(
            "host={host} port={port} user=app dbname=shop sslmode=require"
        ))
        .args(["-c", "select 1"])
        .output()
        .unwrap();
    let err = assert_failure("psql without a certificate", &out);
    assert!(
        err.contains("FATAL") && err.contains("a client certificate is required"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    stack.wait_for_event("no-certificate refusal", |e| {
        is_refusal(e, None, "a client certificate is required")
    });

    // A certificate from a CA the cluster does not know: refused at TLS, audited by the proxy.
    let dir = stack.cluster.dir().join("foreign");
    fs::create_dir_all(&dir).unwrap();
    let openssl = |args: &[&str]| {
        let out = run(Command::new("openssl").current_dir(&dir).args(args));
        assert_success(&format!("openssl {args:?}"), &out);
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "1",
                "-subj",
                "/CN=evil-ca",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "client.key",
                "-out",
                "client.csr",
                "-subj",
                "/CN=alice",
            ],
        ]
        .concat(),
    );
    openssl(&[
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "client.crt",
        "-days",
        "1",
    ]);
    fs::set_permissions(dir.join("client.key"), fs::Permissions::from_mode(0o600)).unwrap();
    let started = Instant::now();
    let out = stack
        .psql_command(&format!(
            "host={host} port={port} user=app dbname=shop sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
            svc["sslrootcert"],
            dir.join("client.crt").display(),
            dir.join("client.key").display()
        ))
        .args(["-c", "select 1"])
        .output()
        .unwrap();
    let err = assert_failure("psql with a foreign certificate", &out);
    assert!(
        !err.contains("certificate is required"),
        "the foreign certificate was not even sent: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let e = stack.wait_for_event("foreign-CA refusal", |e| {
        is_refusal(e, None, "TLS handshake failed")
    });
    println!("foreign CA audit error: {}", e["error"]);

    // And the real certificate still works.
    let ok = assert_success("psql", &stack.psql("pg1", "select 42"));
    assert_eq!(ok.trim(), "42");
}

/// A role change after `pc db login`: the agent re-evaluates roles on connect and refuses
/// the earlier certificate; `pc db login` is refused too.
#[test]
fn denied_labels_db_names_and_db_users() {
    let stack = PgStack::start("");
    let guard = |extra: &str| {
        format!(
            "kind: role\nversion: v1\nmetadata: {{ name: guard }}\nspec:\n  allow:\n    db_labels: {{ env: staging }}\n{extra}"
        )
    };
    stack.create_resources(&guard(""));
    stack.add_user("carol", "access,guard", "app", "shop");
    stack.login("carol");
    stack.db_login("pg1", "app", "shop");
    assert_success(
        "psql before the role change",
        &stack.psql("pg1", "select 1"),
    );

    // Now deny env=dev (the test database's static label).
    stack.create_resources(&guard("  deny:\n    db_labels: { env: dev }\n"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        let out = stack.psql("pg1", "select 1");
        if !out.status.success() {
            break assert_failure("psql after the role change", &out);
        }
        assert!(
            Instant::now() < deadline,
            "the agent still accepts carol's earlier certificate"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(err.contains("FATAL"), "{err}");
    let e = stack.wait_for_event("label denial", |e| {
        is_refusal(e, Some("carol"), "") && e["server_id"].is_string()
    });
    println!("label denial audit error: {}", e["error"]);
    let out = stack.pc(
        &["db", "login", "pg1", "--db-user=app", "--db-name=shop"],
        None,
    );
    let err = assert_failure("pc db login after the role change", &out);
    assert!(err.contains("pg1"), "{err}");

    // A db name outside the user's db_names: refused by auth at `pc db login`…
    stack.add_user("dan", "access", "app", "shop");
    // Log dan in in his own home so carol's files stay untouched.
    let dan = PgStackUser::new(&stack, "dan");
    let out = dan.pc(&["db", "login", "pg1", "--db-user=app", "--db-name=postgres"]);
    let err = assert_failure("db login to a db name not allowed", &out);
    assert!(err.contains("postgres"), "{err}");
    let out = dan.pc(&["db", "login", "pg1", "--db-user=ro", "--db-name=shop"]);
    let err = assert_failure("db login as a db user not allowed", &out);
    assert!(err.contains("ro"), "{err}");
    // …and by the agent when a client asks for another database than the certificate's.
    assert_success(
        "pc db login",
        &dan.pc(&["db", "login", "pg1", "--db-user=app", "--db-name=shop"]),
    );
    let out = dan
        .psql_command("service=pg1 dbname=postgres")
        .args(["-c", "select 1"])
        .output()
        .unwrap();
    let err = assert_failure("psql to another database", &out);
    assert!(
        err.contains("certificate is for database \"shop\", not \"postgres\""),
        "{err}"
    );
    stack.wait_for_event("db name refusal", |e| {
        is_refusal(e, Some("dan"), "not \"postgres\"")
    });
    let out = dan
        .psql_command("service=pg1 user=ro")
        .args(["-c", "select 1"])
        .output()
        .unwrap();
    let err = assert_failure("psql as another db user", &out);
    assert!(err.contains("not \"ro\""), "{err}");
    stack.wait_for_event("db user refusal", |e| {
        is_refusal(e, Some("dan"), "not \"ro\"")
    });
}

/// A second user with a home of their own on the same stack.
struct PgStackUser<'a> {
    stack: &'a PgStack,
    home: std::path::PathBuf,
}

impl<'a> PgStackUser<'a> {
    fn new(stack: &'a PgStack, user: &str) -> Self {
        let home = stack.cluster.dir().join(format!("home-{user}"));
        fs::create_dir_all(&home).unwrap();
        let me = Self { stack, home };
        let proxy = format!("--proxy={}", stack.proxy_addr);
        let u = format!("--user={user}");
        let mut cmd = me.command(&["login", &proxy, &u, "--password-stdin", "--insecure"]);
        assert_success("pc login", &common::pg::run_with_stdin(&mut cmd, PASSWORD));
        me
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(common::bin("pc"));
        cmd.args(args)
            .env("PORTCULLIS_HOME", self.home.join(".portcullis"))
            .env("PGSERVICEFILE", self.home.join("pg_service.conf"))
            .env("HOME", &self.home);
        cmd
    }

    fn pc(&self, args: &[&str]) -> std::process::Output {
        common::pg::run_with_stdin(&mut self.command(args), "")
    }

    fn psql_command(&self, conninfo: &str) -> Command {
        let mut cmd = self.stack.psql_command(conninfo);
        cmd.env("PGSERVICEFILE", self.home.join("pg_service.conf"))
            .env("HOME", &self.home);
        cmd
    }
}

/// `pcctl locks add` mid-session: the live session ends with a FATAL saying so within
/// seconds, `db.session.end` carries the reason, and new sessions are refused until the lock
/// is removed.
#[test]
fn a_lock_ends_the_live_session() {
    let stack = PgStack::start("");
    stack.add_user("alice", "access", "app", "shop");
    stack.login("alice");
    stack.db_login("pg1", "app", "shop");
    let psql = stack.spawn_psql("pg1", "select pg_sleep(30)");
    let start = stack.wait_for_event("session start", |e| {
        e["event"] == "db.session.start" && e["success"] == true && e["user"] == "alice"
    });
    std::thread::sleep(Duration::from_millis(300));
    let locked_at = Instant::now();
    stack
        .cluster
        .pcctl_ok(&["locks", "add", "--user=alice", "--message=incident 42"]);
    let (out, ended) = wait_child(psql, Duration::from_secs(10));
    let took = locked_at.elapsed();
    let text = output_text(&out);
    assert!(ended, "psql still running 10 s after the lock: {text}");
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("FATAL") && text.contains("locked") && text.contains("incident 42"),
        "{text}"
    );
    println!("lock ended the live session in {took:?}: {}", text.trim());
    let end = stack.wait_for_event("session end", |e| {
        e["event"] == "db.session.end" && e["sid"] == start["sid"]
    });
    assert!(
        end["reason"].as_str().is_some_and(|r| r.contains("locked")),
        "{end}"
    );

    let err = assert_failure("psql while locked", &stack.psql("pg1", "select 1"));
    assert!(err.contains("FATAL") && err.contains("locked"), "{err}");
    stack.wait_for_event("locked refusal", |e| is_refusal(e, Some("alice"), "locked"));

    // Lifting the lock lets new sessions in again.
    let locks: serde_json::Value =
        serde_json::from_str(&stack.cluster.pcctl_ok(&["locks", "ls", "--format=json"])).unwrap();
    let id = locks
        .as_array()
        .and_then(|a| a.first())
        .and_then(|l| l["id"].as_str())
        .unwrap_or_else(|| panic!("no lock id in {locks}"))
        .to_owned();
    stack.cluster.pcctl_ok(&["locks", "rm", &id]);
    stack.wait_until_psql_works("pg1", Duration::from_secs(10));
}

/// `pc login --ttl=1m`: the live session of a role with `disconnect_expired_cert` ends when
/// the certificate expires, and the expired certificate is refused with a FATAL saying so.
/// (~65 s: the shortest certificate is one minute.)
#[test]
fn an_expired_certificate_ends_the_session_and_is_refused() {
    let stack = PgStack::start("");
    stack.create_resources(
        "kind: role\nversion: v1\nmetadata: { name: strict }\nspec:\n  options: { disconnect_expired_cert: true }\n  allow:\n    db_labels: { env: staging }\n",
    );
    stack.add_user("erin", "access,strict", "app", "shop");
    let proxy = format!("--proxy={}", stack.proxy_addr);
    let out = stack.pc(
        &[
            "login",
            &proxy,
            "--user=erin",
            "--password-stdin",
            "--insecure",
            "--ttl=1m",
        ],
        Some(PASSWORD),
    );
    assert_success("pc login --ttl=1m", &out);
    stack.db_login("pg1", "app", "shop");
    let psql = stack.spawn_psql("pg1", "select pg_sleep(120)");
    let start = stack.wait_for_event("session start", |e| {
        e["event"] == "db.session.start" && e["success"] == true && e["user"] == "erin"
    });
    let (out, ended) = wait_child(psql, Duration::from_secs(75));
    let text = output_text(&out);
    assert!(
        ended,
        "psql still running past the certificate's expiry: {text}"
    );
    assert!(
        text.contains("FATAL") && text.contains("certificate expired"),
        "{text}"
    );
    let end = stack.wait_for_event("session end", |e| {
        e["event"] == "db.session.end" && e["sid"] == start["sid"]
    });
    assert!(
        end["reason"]
            .as_str()
            .is_some_and(|r| r.contains("expired")),
        "{end}"
    );

    // The expired certificate: refused by the proxy with a FATAL, audited.
    let err = assert_failure(
        "psql with an expired certificate",
        &stack.psql("pg1", "select 1"),
    );
    assert!(err.contains("FATAL") && err.contains("expired"), "{err}");
    stack.wait_for_event("expired refusal", |e| {
        is_refusal(e, Some("erin"), "expired")
    });
}
