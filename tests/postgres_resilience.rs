//! PostgreSQL access when components die: the database agent killed mid-session, the proxy
//! restarted. Clients get an error, not a hang, and new sessions work once things are back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::time::{Duration, Instant};

use common::assert_success;
use common::pg::{output_text, wait_child, PgStack};

/// SIGKILL the agent during a query: psql errors out; the restarted agent rejoins with the
/// identity in its data dir (no new token) and new sessions work.
#[test]
fn agent_killed_mid_session_then_back() {
    let mut stack = PgStack::start("");
    stack.add_user("alice", "access", "app", "shop");
    stack.login("alice");
    stack.db_login("pg1", "app", "shop");
    let psql = stack.spawn_psql("pg1", "select pg_sleep(30)");
    stack.wait_for_event("session start", |e| {
        e["event"] == "db.session.start" && e["success"] == true
    });
    std::thread::sleep(Duration::from_millis(300));
    let killed = Instant::now();
    stack.kill_agent();
    let (out, ended) = wait_child(psql, Duration::from_secs(10));
    let text = output_text(&out);
    assert!(
        ended,
        "psql still running 10 s after the agent died: {text}"
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("connection to the database agent was lost"),
        "psql is told why: {text}"
    );
    println!(
        "agent killed: psql ended after {:?}: {}",
        killed.elapsed(),
        text.trim()
    );

    // While it is gone: a clear refusal from the proxy, audited.
    let out = stack.psql("pg1", "select 1");
    let err = common::assert_failure("psql with no agent", &out);
    assert!(err.contains("FATAL") && err.contains("pg1"), "{err}");
    stack.wait_for_event("no-agent refusal", |e| {
        e["event"] == "db.session.start"
            && e["success"] == false
            && e["error"].as_str().is_some_and(|m| m.contains("agent"))
    });

    let token_count = |stack: &PgStack| stack.cluster.pcctl_ok(&["tokens", "ls"]).lines().count();
    let tokens_before = token_count(&stack);
    let restarted = Instant::now();
    stack.start_agent();
    let took = stack.wait_until_psql_works("pg1", Duration::from_secs(15));
    println!(
        "agent restarted: tunnel up and psql working {:?} after start",
        restarted.elapsed()
    );
    let _ = took;
    assert_eq!(
        token_count(&stack),
        tokens_before,
        "the agent needed no new token"
    );
    let got = assert_success("psql", &stack.psql("pg1", "select current_user"));
    assert_eq!(got.trim(), "app");
}

/// `portcullis` (auth + proxy) restarted on its pinned port: the agent's tunnel comes back by
/// itself within seconds, measured here.
#[test]
fn proxy_restart_agent_reconnects() {
    let mut stack = PgStack::start("");
    stack.add_user("alice", "access", "app", "shop");
    stack.login("alice");
    stack.db_login("pg1", "app", "shop");
    assert_success("psql", &stack.psql("pg1", "select 1"));
    // A live session dies with the proxy; the client gets an error, not a hang.
    let psql = stack.spawn_psql("pg1", "select pg_sleep(30)");
    stack.wait_for_event("session start", |e| {
        e["event"] == "db.session.start" && e["success"] == true
    });
    let log_offset = stack.agent_log().len();
    let stopped = Instant::now();
    stack.cluster.restart();
    let restarted_in = stopped.elapsed();
    let (out, ended) = wait_child(psql, Duration::from_secs(10));
    assert!(
        ended,
        "psql survived the proxy restart: {}",
        output_text(&out)
    );
    assert!(!out.status.success());
    let back = Instant::now();
    let addr = common::pg::wait_for_file(
        &stack.cluster.data_dir().join("admin/proxy_addr"),
        Duration::from_secs(10),
    );
    assert_eq!(addr, stack.proxy_addr, "the pinned proxy port changed");
    stack.wait_for_tunnel_after(log_offset, Duration::from_secs(15));
    let tunnel = back.elapsed();
    let psql_ok = stack.wait_until_psql_works("pg1", Duration::from_secs(15));
    println!(
        "proxy restart: daemon back in {restarted_in:?}; agent tunnel up {tunnel:?} after that; psql working {:?} after that",
        back.elapsed()
    );
    let _ = psql_ok;
    assert!(
        back.elapsed() < Duration::from_secs(15),
        "agent took {:?}",
        back.elapsed()
    );
}
