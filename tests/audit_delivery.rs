//! Audit delivery end to end: every query that reached the database is in auth's log exactly
//! once across a kill -9 of the agent and, separately, of auth; a full spool (auth
//! unreachable) refuses sessions or drops the oldest events with an `audit.gap`, as
//! configured.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pg::{output_text, wait_child, PgStack};

const N: usize = 200;

fn setup(stack: &PgStack) {
    stack.add_user("alice", "access", "app", "shop");
    stack.login("alice");
    stack.db_login("pg1", "app", "shop");
}

/// Runs queries `from..N` (attempt `attempt`) in one psql session, each taking ~20 ms;
/// `during` runs while psql does. Returns the query numbers psql saw answered.
fn run_session(
    stack: &mut PgStack,
    from: usize,
    attempt: usize,
    during: impl FnOnce(&mut PgStack),
) -> Vec<usize> {
    let script = stack.cluster.dir().join(format!("q-{from}-{attempt}.sql"));
    let mut text = String::new();
    for i in from..N {
        text.push_str(&format!(
            "select 'q-{i:05}-a{attempt}' as tag, pg_sleep(0.02) is null as slept;\n"
        ));
    }
    std::fs::write(&script, text).unwrap();
    let psql = stack
        .psql_command("service=pg1")
        .args(["-f", script.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    during(stack);
    let (out, ended) = wait_child(psql, Duration::from_secs(60));
    assert!(ended, "psql hung: {}", output_text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("q-"))
        .map(|l| l.get(..5).unwrap().parse().unwrap())
        .collect()
}

/// The `db.session.query` events per query text.
fn query_counts(stack: &PgStack) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in stack.events() {
        if e["event"] == "db.session.query" {
            if let Some(q) = e["db_query"].as_str() {
                if let Some(tag) = q.split('\'').nth(1).filter(|t| t.starts_with("q-")) {
                    *out.entry(tag.to_owned()).or_default() += 1;
                }
            }
        }
    }
    out
}

/// N queries with one disruption in the middle; then every answered query is in the log
/// exactly once, and nothing is there twice.
fn none_lost_none_doubled(disrupt: impl Fn(&mut PgStack)) {
    let started = Instant::now();
    let mut stack = PgStack::start("");
    setup(&stack);
    let mut answered: Vec<(usize, usize)> = Vec::new(); // (query, attempt)
    let mut sent_unanswered = Vec::new();
    let mut next = 0;
    let mut attempt = 0;
    let mut disrupted = false;
    while next < N {
        let done = run_session(&mut stack, next, attempt, |s| {
            if !disrupted {
                std::thread::sleep(Duration::from_millis(1500));
                disrupt(s);
            }
        });
        disrupted = true;
        for &i in &done {
            answered.push((i, attempt));
        }
        let resume = done.last().map_or(next, |l| l + 1);
        if resume < N {
            // This one may have reached the database before the disruption.
            sent_unanswered.push(format!("q-{resume:05}-a{attempt}"));
            stack.wait_until_psql_works("pg1", Duration::from_secs(30));
        }
        next = resume;
        attempt += 1;
        assert!(attempt < 5, "too many attempts");
    }
    assert_eq!(answered.len(), N);
    assert!(attempt >= 2, "the disruption did not interrupt the session");
    let want: BTreeSet<String> = answered
        .iter()
        .map(|(i, a)| format!("q-{i:05}-a{a}"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let counts = loop {
        let counts = query_counts(&stack);
        if want.iter().all(|t| counts.contains_key(t)) || Instant::now() > deadline {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let missing: Vec<_> = want.iter().filter(|t| !counts.contains_key(*t)).collect();
    assert!(
        missing.is_empty(),
        "lost: {missing:?}\n{}",
        stack.agent_log()
    );
    let doubled: Vec<_> = counts.iter().filter(|(_, &n)| n != 1).collect();
    assert!(doubled.is_empty(), "doubled: {doubled:?}");
    let extra: Vec<_> = counts
        .keys()
        .filter(|t| !want.contains(*t) && !sent_unanswered.contains(t))
        .collect();
    assert!(extra.is_empty(), "never sent: {extra:?}");
    println!(
        "{N} answered queries, each logged exactly once ({} sent but unanswered at the disruption: {:?} logged); took {:?}",
        sent_unanswered.len(),
        sent_unanswered.iter().filter(|t| counts.contains_key(*t)).collect::<Vec<_>>(),
        started.elapsed()
    );
}

#[test]
fn agent_kill9_none_lost_none_doubled() {
    none_lost_none_doubled(|stack| {
        stack.kill_agent();
        stack.start_agent();
    });
}

#[test]
fn auth_kill9_none_lost_none_doubled() {
    none_lost_none_doubled(|stack| {
        let pid = stack.cluster.pid().to_string();
        common::run(std::process::Command::new("kill").args(["-KILL", &pid]));
        std::thread::sleep(Duration::from_millis(300));
        stack.cluster.restart();
    });
}

/// A TCP relay between the agent and the proxy that can make auth's API unreachable while
/// the agent's tunnel (told apart by its ALPN in the ClientHello) stays up.
struct Relay {
    addr: String,
    outage: Arc<AtomicBool>,
    api_conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let outage = Arc::new(AtomicBool::new(false));
        let api_conns = Arc::new(Mutex::new(Vec::new()));
        let (o, conns) = (Arc::clone(&outage), Arc::clone(&api_conns));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let (o, conns, target) = (Arc::clone(&o), Arc::clone(&conns), target.clone());
                std::thread::spawn(move || {
                    let mut first = vec![0u8; 16 * 1024];
                    let n = client.read(&mut first).unwrap_or(0);
                    first.truncate(n);
                    let tunnel = first.windows(19).any(|w| w == b"portcullis-tunnel/1");
                    if !tunnel && o.load(Ordering::SeqCst) {
                        let _ = client.shutdown(Shutdown::Both);
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(&target) else {
                        return;
                    };
                    if !tunnel {
                        conns.lock().unwrap().push(client.try_clone().unwrap());
                    }
                    let _ = server.write_all(&first);
                    let (mut c2, mut s2) =
                        (client.try_clone().unwrap(), server.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut s2, &mut c2);
                        let _ = c2.shutdown(Shutdown::Both);
                    });
                    let _ = std::io::copy(&mut client, &mut server);
                    let _ = server.shutdown(Shutdown::Both);
                });
            }
        });
        Self {
            addr,
            outage,
            api_conns,
        }
    }

    fn set_outage(&self, on: bool) {
        self.outage.store(on, Ordering::SeqCst);
        if on {
            for c in self.api_conns.lock().unwrap().drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }
}

/// A stack whose agent reaches the proxy through a [`Relay`], with a 64 KiB spool.
fn stack_with_relay(when_full: &str) -> (PgStack, Relay) {
    let mut stack = PgStack::start("");
    stack.kill_agent();
    let relay = Relay::start(stack.proxy_addr.clone());
    let config = stack.agent_dir.join("agent.yaml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("proxy_addr: '{}'", stack.proxy_addr),
        &format!("proxy_addr: '{}'", relay.addr),
    );
    std::fs::write(
        &config,
        format!(
            "{text}  audit:\n    spool_max_bytes: 65536\n    when_full: {when_full}\n    max_query_bytes: 4096\n"
        ),
    )
    .unwrap();
    stack.start_agent();
    setup(&stack);
    stack.wait_until_psql_works("pg1", Duration::from_secs(15));
    (stack, relay)
}

/// `n` queries of ~3.5 KB in one session; returns psql's output and success.
fn big_queries(stack: &PgStack, tag: &str, n: usize) -> (String, bool) {
    let pad = "x".repeat(3500);
    let sql: String = (0..n)
        .map(|i| format!("select '{tag}-{i:03}' as tag, length('{pad}');\n"))
        .collect();
    let file = stack.cluster.dir().join(format!("{tag}.sql"));
    std::fs::write(&file, sql).unwrap();
    let out = common::run(
        stack
            .psql_command("service=pg1")
            .args(["-f", file.to_str().unwrap()]),
    );
    (output_text(&out), out.status.success())
}

fn wait_for(
    stack: &PgStack,
    what: &str,
    within: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(e) = stack.events().into_iter().find(|e| pred(e)) {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} event\n{}",
            stack.agent_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn full_spool_refuses_sessions() {
    let started = Instant::now();
    let (stack, relay) = stack_with_relay("refuse_sessions");
    relay.set_outage(true);
    // ~4 KB per event: the 64 KiB spool fills within the session, which is then ended
    // before a query that cannot be recorded reaches the database.
    let (text, ok) = big_queries(&stack, "fill", 40);
    assert!(!ok, "the session survived a full spool: {text}");
    assert!(text.contains("audit log cannot be written"), "{text}");
    let ran = text.matches("fill-").count();
    assert!(ran > 5 && ran < 40, "{ran} queries ran: {text}");
    let out = stack.psql("pg1", "select 1");
    let err = common::assert_failure("psql with a full spool", &out);
    assert!(
        err.contains("FATAL") && err.contains("audit log cannot be written"),
        "{err}"
    );
    let restored = Instant::now();
    relay.set_outage(false);
    wait_for(&stack, "refused session", Duration::from_secs(30), |e| {
        e["event"] == "db.session.start"
            && e["success"] == false
            && e["error"]
                .as_str()
                .is_some_and(|m| m.contains("audit log cannot be written"))
    });
    let drained = restored.elapsed();
    // Every query that ran is logged.
    let counts = query_counts_prefixed(&stack, "fill-");
    assert_eq!(counts, ran, "queries that ran vs logged");
    stack.wait_until_psql_works("pg1", Duration::from_secs(30));
    println!(
        "refuse_sessions: {ran} queries ran before the FATAL; refusal logged {drained:?} after auth came back; total {:?}",
        started.elapsed()
    );
}

fn query_counts_prefixed(stack: &PgStack, prefix: &str) -> usize {
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for e in stack.events() {
        if e["event"] == "db.session.query" {
            if let Some(tag) = e["db_query"]
                .as_str()
                .and_then(|q| q.split('\'').nth(1))
                .filter(|t| t.starts_with(prefix))
            {
                seen.insert(tag.to_owned());
                total += 1;
            }
        }
    }
    assert_eq!(seen.len(), total, "a query was logged twice");
    total
}

#[test]
fn full_spool_drops_oldest_with_a_gap_event() {
    let started = Instant::now();
    let (stack, relay) = stack_with_relay("drop_oldest");
    relay.set_outage(true);
    let n = 60;
    let (text, ok) = big_queries(&stack, "drop", n);
    assert!(ok, "{text}");
    relay.set_outage(false);
    let gap = wait_for(&stack, "audit.gap", Duration::from_secs(30), |e| {
        e["event"] == "audit.gap"
    });
    assert_eq!(gap["code"], "TPC02W");
    assert!(gap["server_id"].is_string());
    assert!(gap["reason"].as_str().unwrap().contains("full"));
    let last = format!("drop-{:03}", n - 1);
    wait_for(&stack, "the last query", Duration::from_secs(15), |e| {
        e["db_query"].as_str().is_some_and(|q| q.contains(&last))
    });
    let lost: u64 = stack
        .events()
        .iter()
        .filter(|e| e["event"] == "audit.gap")
        .map(|e| e["lost"].as_u64().unwrap())
        .sum();
    let kept = query_counts_prefixed(&stack, "drop-") as u64;
    // Each dropped event is counted (session start events are among them, so >=).
    assert!(
        lost > 0 && kept + lost >= n as u64,
        "kept {kept} lost {lost}"
    );
    assert!(kept < n as u64);
    // After the gap, delivery is complete again.
    let (text, ok) = big_queries(&stack, "after", 5);
    assert!(ok, "{text}");
    wait_for(
        &stack,
        "queries after the gap",
        Duration::from_secs(15),
        |e| {
            e["db_query"]
                .as_str()
                .is_some_and(|q| q.contains("after-004"))
        },
    );
    assert_eq!(query_counts_prefixed(&stack, "after-"), 5);
    println!(
        "drop_oldest: {n} queries during the outage, {kept} delivered, audit.gap lost={lost}; total {:?}",
        started.elapsed()
    );
}
