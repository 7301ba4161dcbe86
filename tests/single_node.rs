//! The single-node default: auth, proxy and database agent in one daemon. Sessions are handed
//! from the proxy to the agent in memory, with the same checks and audit as over a tunnel.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::time::{Duration, Instant};

use common::pg::PgStack;
use common::{assert_failure, assert_success};

#[test]
fn one_daemon_serves_psql_with_checks_audit_cancel_and_locks() {
    let stack = PgStack::start_single_node();
    stack.add_user("alice", "access", "app,ro", "shop");
    stack.login("alice");
    // The agent registers through the proxy; wait until auth lists it.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = stack.pc(&["db", "ls"], None);
        if String::from_utf8_lossy(&out.stdout).contains("pg1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pg1 never listed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stack.db_login("pg1", "app", "shop");
    let out = stack.psql("pg1", "select current_user || '@' || current_database()");
    assert_eq!(assert_success("psql", &out).trim(), "app@shop");
    let start = stack.wait_for_event("start", |e| {
        e["event"] == "db.session.start" && e["success"] == true
    });
    assert_eq!(start["db_service"], "pg1");
    stack.wait_for_event("query", |e| {
        e["event"] == "db.session.query" && e["sid"] == start["sid"]
    });

    // `audit_queries: false` (pg-quiet): the session is recorded, its queries are not.
    stack.db_login("pg-quiet", "app", "shop");
    let out = stack.psql("pg-quiet", "select 6 * 7");
    assert_eq!(assert_success("psql to pg-quiet", &out).trim(), "42");
    let quiet_end = stack.wait_for_event("pg-quiet end", |e| {
        e["event"] == "db.session.end" && e["db_service"] == "pg-quiet"
    });
    let quiet: Vec<_> = stack
        .events()
        .into_iter()
        .filter(|e| e["sid"] == quiet_end["sid"])
        .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(quiet, ["db.session.start", "db.session.end"], "{quiet:?}");
    // The agent's spool holds no backlog: at most the segment being written (mapped; its
    // events were handed to auth's log by the shipper) and the next one, prepared ahead.
    let spool = stack.cluster.data_dir().join("agent/spool");
    let spooled: Vec<String> = std::fs::read_dir(&spool)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let segments = spooled.iter().filter(|n| n.ends_with(".seg")).count();
    assert!(
        segments <= 1 && spooled.len() <= 2,
        "{}: {spooled:?}",
        spool.display()
    );

    // The agent's own checks run on the in-memory path too: another db user is refused.
    let mut cmd = std::process::Command::new(portcullis_testkit::binary_path("psql").unwrap());
    cmd.arg("service=pg1 user=ro")
        .args(["-X", "-c", "select 1"])
        .env("PGSERVICEFILE", stack.home.join("pg_service.conf"));
    let err = assert_failure(
        "psql as ro with app's certificate",
        &portcullis_testkit::run_command(&mut cmd, Duration::from_secs(30)).unwrap(),
    );
    assert!(
        err.contains("certificate is for database user \"app\""),
        "{err}"
    );

    // Cancel: psql's Ctrl-C reaches PostgreSQL through the in-process agent.
    let child = stack.spawn_psql("pg1", "select pg_sleep(30)");
    std::thread::sleep(Duration::from_millis(800));
    let started = Instant::now();
    let _ = std::process::Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("canceling statement due to user request"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cancel took {:?}",
        started.elapsed()
    );

    // A lock ends new sessions here too.
    stack
        .cluster
        .pcctl_ok(&["locks", "add", "--user=alice", "--message=single node"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = stack.psql("pg1", "select 1");
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(err.contains("locked"), "{err}");
            break;
        }
        assert!(Instant::now() < deadline, "the lock never took effect");
        std::thread::sleep(Duration::from_millis(100));
    }
}
