//! PostgreSQL access end to end: `pc login`, `pc db ls`, `pc db login`, psql through the proxy
//! and the reverse tunnel to a real PostgreSQL, with every decision and query audited.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use common::pg::PgStack;
use common::{assert_failure, assert_success};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn psql_through_the_proxy_with_audit() {
    let stack = PgStack::start("");
    stack.add_user("alice", "access", "app", "shop");
    stack.login("alice");
    let ls = assert_success("pc db ls", &stack.pc(&["db", "ls"], None));
    assert!(ls.contains("pg1") && ls.contains("postgres"), "{ls}");
    assert_success(
        "pc db login",
        &stack.pc(
            &["db", "login", "pg1", "--db-user=app", "--db-name=shop"],
            None,
        ),
    );
    let out = stack.psql("pg1", "select current_user || '@' || current_database()");
    let got = assert_success("psql", &out);
    assert_eq!(
        got.trim(),
        "app@shop",
        "{}\n{}",
        text(&out),
        stack.agent_log()
    );

    let start = stack.wait_for_event("db.session.start", |e| {
        e["event"] == "db.session.start" && e["success"] == true
    });
    assert_eq!(start["code"], "TDB00I");
    assert_eq!(start["user"], "alice");
    assert_eq!(start["db_service"], "pg1");
    assert_eq!(start["db_user"], "app");
    assert_eq!(start["db_name"], "shop");
    let q = stack.wait_for_event("query", |e| {
        e["event"] == "db.session.query"
            && e["db_query"]
                .as_str()
                .is_some_and(|q| q.contains("current_database"))
    });
    assert_eq!(q["code"], "TDB02I");
    assert_eq!(q["sid"], start["sid"]);
    stack.wait_for_event("db.session.end", |e| {
        e["event"] == "db.session.end" && e["sid"] == start["sid"]
    });
}

#[test]
fn refusals_reach_psql_and_the_audit_log() {
    let stack = PgStack::start("");
    stack.add_user("bob", "access", "ro", "shop");
    stack.login("bob");
    // A db user the roles do not allow: refused by auth at `pc db login`.
    let out = stack.pc(
        &["db", "login", "pg1", "--db-user=app", "--db-name=shop"],
        None,
    );
    let err = assert_failure("db login as app", &out);
    assert!(err.contains("app"), "{err}");
    // Allowed db user, but connecting as another one: refused by the agent.
    assert_success(
        "pc db login",
        &stack.pc(
            &["db", "login", "pg1", "--db-user=ro", "--db-name=shop"],
            None,
        ),
    );
    let mut cmd = std::process::Command::new(portcullis_testkit::binary_path("psql").unwrap());
    cmd.arg("service=pg1 user=app")
        .args(["-X", "-c", "select 1"])
        .env("PGSERVICEFILE", stack.home.join("pg_service.conf"));
    let out =
        portcullis_testkit::run_command(&mut cmd, std::time::Duration::from_secs(30)).unwrap();
    let err = assert_failure("psql as another user", &out);
    assert!(
        err.contains("certificate is for database user \"ro\""),
        "{err}"
    );
    stack.wait_for_event("refusal", |e| {
        e["event"] == "db.session.start" && e["success"] == false && e["user"] == "bob"
    });
}
