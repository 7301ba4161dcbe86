//! `pcctl audit search`, `session` and `export` against a running single-node cluster with a
//! real PostgreSQL session behind it.
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
use common::pg::PgStack;

#[test]
fn pcctl_audit_finds_a_session_and_prints_its_transcript() {
    let stack = PgStack::start_single_node();
    stack.add_user("alice", "access", "app", "shop");
    stack.login("alice");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = stack.pc(&["db", "ls"], None);
        if String::from_utf8_lossy(&out.stdout).contains("pg1") {
            break;
        }
        assert!(Instant::now() < deadline, "pg1 never listed");
        std::thread::sleep(Duration::from_millis(200));
    }
    stack.db_login("pg1", "app", "shop");
    let out = stack.psql("pg1", "select 'audit-marker-42' as m");
    assert_success("psql", &out);
    let start = stack.wait_for_event("start", |e| {
        e["event"] == "db.session.start" && e["success"] == true
    });
    let sid = start["sid"].as_str().unwrap().to_owned();
    stack.wait_for_event("end", |e| {
        e["event"] == "db.session.end" && e["sid"] == sid.as_str()
    });

    // search, JSON lines
    let json = stack.cluster.pcctl_ok(&[
        "audit",
        "search",
        "--from=1h",
        "--user=alice",
        "--event=db.session.query",
        "--db=pg1",
        "--contains=AUDIT-MARKER",
        "--format=json",
    ]);
    let events: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{json}");
    assert_eq!(events[0]["sid"], sid.as_str());
    assert!(events[0]["db_query"]
        .as_str()
        .unwrap()
        .contains("audit-marker-42"));

    // search, text: one line per event with time, event, user, db and the query
    let text = stack
        .cluster
        .pcctl_ok(&["audit", "search", "--sid", &sid, "--limit=10"]);
    assert!(text.contains("TIME"), "{text}");
    let query_line = text
        .lines()
        .find(|l| l.contains("db.session.query"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        query_line.contains("alice") && query_line.contains("pg1"),
        "{text}"
    );
    assert!(query_line.contains("audit-marker-42"), "{text}");

    // session transcript, in order
    let t = stack.cluster.pcctl_ok(&["audit", "session", &sid]);
    let start_at = t.find("START").unwrap_or_else(|| panic!("{t}"));
    let query_at = t.find("audit-marker-42").unwrap_or_else(|| panic!("{t}"));
    let end_at = t.find("END").unwrap_or_else(|| panic!("{t}"));
    assert!(start_at < query_at && query_at < end_at, "{t}");
    assert!(t.contains("User:     alice"), "{t}");

    // export: JSON lines, oldest first
    let export = stack.cluster.pcctl_ok(&["audit", "export", "--since=1h"]);
    let lines: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|e| e["sid"] == sid.as_str()), "{export}");
    let times: Vec<&str> = lines.iter().map(|e| e["time"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times.len(), sorted.len());

    // a bad time is refused with help
    let out = stack
        .cluster
        .pcctl(&["audit", "search", "--from=yesterday"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
}
