//! MySQL/MariaDB access end to end: `pc db login` writes a `~/.my.cnf` group, the mariadb CLI
//! (with each client auth plugin), mysql_async (text and binary protocol) and sysbench reach a
//! real MariaDB through the proxy's MySQL port and the reverse tunnel, every command audited,
//! and the refusals a user can meet arrive as MySQL errors with their audit events.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::pg::PgStack;
use common::{assert_failure, assert_success};
use serde_json::Value;

/// The mariadb CLI with the `[client_NAME]` group `pc db login` wrote.
fn mariadb(stack: &PgStack, name: &str, extra: &[&str], sql: &str) -> Output {
    let mut cmd = Command::new(portcullis_testkit::binary_path("mariadb").unwrap());
    cmd.arg(format!("--defaults-group-suffix=_{name}"))
        .args(["--batch", "--skip-column-names", "--connect-timeout=10"])
        .args(extra)
        .args(["-e", sql])
        .env("HOME", &stack.home);
    portcullis_testkit::run_command(&mut cmd, Duration::from_secs(60)).unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn mysql_stack() -> PgStack {
    let stack = PgStack::start_with_mariadb("");
    stack.add_user("alice", "access", "app", "shop");
    stack.login("alice");
    let ls = assert_success("pc db ls", &stack.pc(&["db", "ls"], None));
    assert!(ls.contains("my1") && ls.contains("mysql"), "{ls}");
    assert_success(
        "pc db login",
        &stack.pc(
            &["db", "login", "my1", "--db-user=app", "--db-name=shop"],
            None,
        ),
    );
    stack
}

fn queries(stack: &PgStack) -> Vec<Value> {
    stack
        .events()
        .into_iter()
        .filter(|e| e["db_protocol"] == "mysql")
        .collect()
}

#[test]
fn mariadb_cli_through_the_proxy_with_every_auth_plugin() {
    let stack = mysql_stack();
    let cnf = std::fs::read_to_string(stack.home.join(".my.cnf")).unwrap();
    assert!(
        cnf.contains("[client_my1]") && cnf.contains("ssl-cert="),
        "{cnf}"
    );
    for plugin in [
        None,
        Some("mysql_native_password"),
        Some("caching_sha2_password"),
        Some("client_ed25519"),
    ] {
        let auth = plugin.map(|p| format!("--default-auth={p}"));
        let extra: Vec<&str> = auth.iter().map(String::as_str).collect();
        let out = mariadb(
            &stack,
            "my1",
            &extra,
            "select current_user(), database(), (select name from items where id = 1)",
        );
        let got = assert_success(&format!("mariadb ({plugin:?})"), &out);
        assert_eq!(
            got.trim(),
            "app@%\tshop\tapple",
            "{plugin:?}: {}\n{}",
            text(&out),
            stack.agent_log()
        );
    }
    // pc db connect runs the client with the group (commands from stdin).
    let mut cmd = Command::new(common::bin("pc"));
    cmd.args(["db", "connect", "my1"])
        .env("PORTCULLIS_HOME", stack.home.join(".portcullis"))
        .env("HOME", &stack.home);
    let out = common::pg::run_with_stdin(&mut cmd, "select 40 + 2;\n");
    assert!(assert_success("pc db connect", &out).contains("42"));
    // pc db env names the group.
    let env = assert_success("pc db env", &stack.pc(&["db", "env", "my1"], None));
    assert!(
        env.trim() == "export MYSQL_GROUP_SUFFIX=_my1"
            || env.trim() == "export MYSQL_GROUP_SUFFIX='_my1'",
        "{env}"
    );

    let q = stack.wait_for_event("query", |e| {
        e["event"] == "db.session.query"
            && e["db_protocol"] == "mysql"
            && e["db_query"]
                .as_str()
                .is_some_and(|q| q.contains("current_user()"))
    });
    assert_eq!(
        (&q["db_user"], &q["db_name"]),
        (&Value::from("app"), &Value::from("shop"))
    );
    let start = stack.wait_for_event("start", |e| {
        e["event"] == "db.session.start" && e["db_protocol"] == "mysql" && e["success"] == true
    });
    assert_eq!(start["user"], "alice");
    stack.wait_for_event("end", |e| {
        e["event"] == "db.session.end" && e["sid"] == start["sid"]
    });
    let _ = queries(&stack);
}
