//! What users do around a session: the `pc` commands beyond login, labels from commands, idle
//! sessions ending, and databases dropping out when their agent is gone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::pg::PgStack;
use common::{assert_failure, assert_success};

fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < within,
            "{what} did not happen within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    started.elapsed()
}

#[test]
fn pc_commands_labels_and_logout() {
    let stack = PgStack::start("");
    stack.add_user("alice", "access", "app", "shop");
    stack.login("alice");
    // Labels: the static one and one from a command the agent re-runs.
    wait_for("the command label", Duration::from_secs(15), || {
        let out = stack.pc(&["db", "ls", "--format=json"], None);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_array()
            .and_then(|a| a.first())
            .is_some_and(|d| d["labels"]["env"] == "dev" && d["labels"]["tier"] == "gold")
    });
    stack.db_login("pg1", "app", "shop");
    let env = assert_success("pc db env", &stack.pc(&["db", "env", "pg1"], None));
    assert!(
        env.contains("PGSERVICE=pg1") || env.contains("PGSERVICE='pg1'"),
        "{env}"
    );
    let config = assert_success(
        "pc db config",
        &stack.pc(&["db", "config", "pg1", "--format=json"], None),
    );
    let c: serde_json::Value = serde_json::from_str(&config).unwrap();
    let text = c.to_string();
    for field in ["sslcert", "sslkey", "sslrootcert"] {
        let path = c
            .get(field)
            .or_else(|| c.get(field.trim_start_matches("ssl")))
            .and_then(|v| v.as_str());
        if let Some(p) = path {
            assert!(
                std::path::Path::new(p).exists(),
                "{field} {p} missing: {text}"
            );
        }
    }
    assert!(text.contains("shop") && text.contains("app"), "{text}");
    assert_eq!(
        assert_success("psql", &stack.psql("pg1", "select 42")).trim(),
        "42"
    );

    // db logout removes the certificate and our service section, nothing else.
    let service_file = stack.home.join("pg_service.conf");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&service_file)
        .unwrap();
    writeln!(f, "\n[mine]\nhost=example.invalid\n").unwrap();
    assert_success("pc db logout", &stack.pc(&["db", "logout", "pg1"], None));
    let after = std::fs::read_to_string(&service_file).unwrap();
    assert!(
        !after.contains("[pg1]") && after.contains("[mine]"),
        "{after}"
    );
    assert_failure("psql after db logout", &stack.psql("pg1", "select 1"));

    // logout removes keys and the profile; status then says to log in.
    assert_success("pc logout", &stack.pc(&["logout"], None));
    let status = assert_failure("pc status after logout", &stack.pc(&["status"], None));
    assert!(status.contains("pc login"), "{status}");
    let keys = stack.home.join(".portcullis/keys");
    let leftover: Vec<_> = walk(&keys);
    assert!(
        leftover.iter().all(|p| !p.ends_with(".key")),
        "keys left: {leftover:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[test]
fn idle_sessions_end_with_a_reason() {
    let stack = PgStack::start("");
    stack.create_resources(
        "kind: role\nversion: v1\nmetadata: { name: idle2s }\nspec:\n  options: { client_idle_timeout: 2s }\n  allow:\n    db_labels: { '*': '*' }\n    db_users: [app]\n    db_names: [shop]\n",
    );
    stack.add_user("ida", "idle2s", "", "");
    stack.login("ida");
    stack.db_login("pg1", "app", "shop");
    let mut child = stack
        .psql_command("service=pg1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "select 'first';").unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let _ = writeln!(stdin, "select 'second';");
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("first"), "{text}");
    assert!(
        text.contains("idle for 2s"),
        "the client is told why: {text}"
    );
    assert!(!text.contains("second\n"), "{text}");
    let end = stack.wait_for_event("idle end", |e| {
        e["event"] == "db.session.end"
            && e["user"] == "ida"
            && e["reason"].as_str().is_some_and(|r| r.contains("idle"))
    });
    assert_eq!(end["code"], "TDB01I");
    assert_eq!(end["end_reason"], "idle_timeout");
}

#[test]
fn databases_drop_out_when_their_agent_is_gone() {
    let mut stack = PgStack::start("");
    stack.add_user("bo", "access", "app", "shop");
    stack.login("bo");
    wait_for("pg1 listed", Duration::from_secs(15), || {
        String::from_utf8_lossy(&stack.pc(&["db", "ls"], None).stdout).contains("pg1")
    });
    stack.kill_agent();
    let took = wait_for("pg1 to drop out", Duration::from_secs(45), || {
        !String::from_utf8_lossy(&stack.pc(&["db", "ls"], None).stdout).contains("pg1")
    });
    println!("pg1 dropped out of pc db ls {took:?} after the agent was killed");
    // Logging in to it now is refused with a clear message, not a hang.
    let out = stack.pc(
        &["db", "login", "pg1", "--db-user=app", "--db-name=shop"],
        None,
    );
    let err = assert_failure("db login without an agent", &out);
    assert!(err.contains("pg1"), "{err}");
}
