//! PostgreSQL protocol features through the proxy and the agent, driven by real clients:
//! tokio-postgres through `pc proxy db` (simple and extended protocol, LISTEN/NOTIFY, notices,
//! errors, a large result, CancelRequest), psql (COPY both ways, Ctrl-C) and pgbench in its
//! three query modes, with the statements in the audit log.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, NoTls, SimpleQueryMessage};

use common::assert_success;
use common::pg::{output_text, run_with_stdin, wait_child, PgStack};

/// Connects through the local tunnel; notices and notifications arrive on the receiver.
async fn connect(
    conninfo: &str,
) -> (
    Client,
    tokio::sync::mpsc::UnboundedReceiver<String>,
    tokio::task::JoinHandle<()>,
) {
    let (client, mut connection) = tokio::time::timeout(
        Duration::from_secs(20),
        tokio_postgres::connect(conninfo, NoTls),
    )
    .await
    .expect("connect timed out")
    .expect("connecting through pc proxy db");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(m) = messages.next().await {
            let line = match m {
                Ok(AsyncMessage::Notice(n)) => format!("notice:{}", n.message()),
                Ok(AsyncMessage::Notification(n)) => {
                    format!("notify:{}:{}", n.channel(), n.payload())
                }
                Ok(_) => continue,
                Err(e) => format!("error:{e}"),
            };
            let _ = tx.send(line);
        }
    });
    (client, rx, task)
}

async fn next_message(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no message within 5 s")
        .expect("connection closed")
}

fn login_alice() -> PgStack {
    let stack = PgStack::start("");
    stack.add_user("alice", "access", "app", "shop");
    stack.login("alice");
    stack.db_login("pg1", "app", "shop");
    stack
}

#[test]
fn tokio_postgres_through_pc_proxy_db() {
    let stack = login_alice();
    let tunnel = stack.pc_proxy_db("pg1");
    let conninfo = tunnel.conninfo("app", "shop");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (client, mut rx, _task) = connect(&conninfo).await;

        // Simple query protocol, two statements in one Query.
        let rows = client
            .simple_query("select 'simple' as a; select current_user")
            .await
            .unwrap();
        let values: Vec<String> = rows
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .collect();
        assert_eq!(values, ["simple", "app"]);

        // Extended protocol with parameters.
        let row = client
            .query_one(
                "select $1::int4 + 1, $2::text || '!'",
                &[&41i32, &"extended"],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), 42);
        assert_eq!(row.get::<_, String>(1), "extended!");

        // An error passes through with its SQLSTATE; the session stays usable.
        let err = client
            .simple_query("select * from no_such_table")
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE), "{err}");
        let err = client
            .query_one("select 1 / $1::int4", &[&0i32])
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO), "{err}");
        let row = client.query_one("select 7::int4", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 7);

        // A notice reaches the client.
        client
            .batch_execute("DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; END $$")
            .await
            .unwrap();
        assert_eq!(next_message(&mut rx).await, "notice:hello from plpgsql");

        // LISTEN on one connection, NOTIFY from another.
        let (other, _rx2, _task2) = connect(&conninfo).await;
        assert!(client.simple_query("select 1").await.is_ok());
        client
            .batch_execute("LISTEN portcullis_chan")
            .await
            .unwrap();
        other
            .batch_execute("NOTIFY portcullis_chan, 'payload-1'")
            .await
            .unwrap();
        assert_eq!(
            next_message(&mut rx).await,
            "notify:portcullis_chan:payload-1"
        );

        // A large result: 200,000 rows of 1,000 bytes, streamed.
        let started = Instant::now();
        let stream = client
            .query_raw(
                "select repeat('x', 1000) from generate_series(1, 200000)",
                std::iter::empty::<i32>(),
            )
            .await
            .unwrap();
        let (rows, bytes) = stream
            .fold((0usize, 0usize), |(n, b), row| async move {
                let row = row.unwrap();
                (n + 1, b + row.get::<_, &str>(0).len())
            })
            .await;
        assert_eq!((rows, bytes), (200_000, 200_000_000));
        println!(
            "200 MB result through the tunnel in {:?}",
            started.elapsed()
        );
    });
}

/// The cancel key of a session, used through the local tunnel.
#[test]
fn tokio_postgres_cancel_through_pc_proxy_db() {
    let stack = login_alice();
    let tunnel = stack.pc_proxy_db("pg1");
    let conninfo = tunnel.conninfo("app", "shop");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (client, _rx, _task) = connect(&conninfo).await;
        let token = client.cancel_token();
        let started = Instant::now();
        let sleeper = tokio::spawn(async move {
            let r = client.simple_query("select pg_sleep(30)").await;
            (r.map(|_| ()), client)
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        token.cancel_query(NoTls).await.expect("sending the cancel");
        let (result, client) = tokio::time::timeout(Duration::from_secs(10), sleeper)
            .await
            .expect("the query was not cancelled within 10 s")
            .unwrap();
        let err = result.expect_err("pg_sleep(30) finished: not cancelled");
        assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
        println!("tokio-postgres cancel took {:?}", started.elapsed());
        let row = client.query_one("select 1::int4", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 1);
    });
    stack.wait_for_event("cancelled query", |e| {
        e["event"] == "db.session.query"
            && e["db_query"]
                .as_str()
                .is_some_and(|q| q.contains("pg_sleep"))
    });
}

/// psql: COPY FROM STDIN and TO STDOUT, and Ctrl-C (a plaintext CancelRequest to the proxy).
#[test]
fn psql_copy_and_cancel() {
    let stack = login_alice();
    assert_success(
        "create table",
        &stack.psql("pg1", "create table items (id int primary key, name text)"),
    );
    let input: String = (1..=5000).map(|i| format!("{i}\titem {i}\n")).collect();
    let mut cmd = stack.psql_command("service=pg1");
    cmd.args(["-c", "COPY items FROM STDIN"]);
    let out = run_with_stdin(&mut cmd, &input);
    let copied = assert_success("COPY FROM STDIN", &out);
    assert!(copied.contains("COPY 5000"), "{copied}");
    let out = stack
        .psql_command("service=pg1")
        .args(["-c", "COPY (select * from items order by id) TO STDOUT"])
        .output()
        .unwrap();
    let back = assert_success("COPY TO STDOUT", &out);
    assert_eq!(back, input);
    let sum = assert_success("count", &stack.psql("pg1", "select count(*) from items"));
    assert_eq!(sum.trim(), "5000");
    stack.wait_for_event("COPY audited", |e| {
        e["event"] == "db.session.query"
            && e["db_query"]
                .as_str()
                .is_some_and(|q| q.starts_with("COPY items FROM STDIN"))
    });

    // Ctrl-C: psql sends a CancelRequest in plaintext to the proxy's port.
    let psql = stack.spawn_psql("pg1", "select pg_sleep(30)");
    stack.wait_for_event("sleep started", |e| {
        e["event"] == "db.session.query"
            && e["db_query"]
                .as_str()
                .is_some_and(|q| q.contains("pg_sleep(30)"))
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &psql.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (out, ended) = wait_child(psql, Duration::from_secs(10));
    let text = output_text(&out);
    assert!(ended, "psql still running 10 s after Ctrl-C: {text}");
    assert!(
        text.contains("canceling statement due to user request"),
        "{text}\n{}",
        stack.agent_log()
    );
    println!("psql Ctrl-C cancelled the query in {:?}", started.elapsed());
}

/// pgbench -i, then -S in the simple, extended and prepared modes, with the PG* variables
/// from `pc db env`; the extended protocol shows up in the audit log.
#[test]
fn pgbench_in_all_query_modes() {
    let stack = login_alice();
    let env = stack.pc_db_env("pg1");
    assert!(env.iter().any(|(k, _)| k == "PGSSLCERT"), "{env:?}");
    let pgbench = portcullis_testkit::binary_path("pgbench").unwrap();
    let run = |args: &[&str]| {
        let mut cmd = Command::new(&pgbench);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("PGSERVICE")
            .env("PGCONNECT_TIMEOUT", "10");
        let started = Instant::now();
        let out = portcullis_testkit::run_command(&mut cmd, Duration::from_secs(120)).unwrap();
        println!("pgbench {args:?}: {:?}", started.elapsed());
        assert_success(&format!("pgbench {args:?}"), &out);
        output_text(&out)
    };
    run(&["-i", "-s", "1", "-q"]);
    for mode in ["simple", "extended", "prepared"] {
        let m = format!("-M{mode}");
        let text = run(&["-S", "-T", "5", "-c", "2", &m]);
        let processed = text
            .lines()
            .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
            .and_then(|n| n.split('/').next())
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no transaction count in:\n{text}"));
        assert!(processed > 0, "{text}");
        assert!(text.contains("number of failed transactions: 0"), "{text}");
        let tps = text.lines().find(|l| l.starts_with("tps")).unwrap_or("");
        println!("pgbench -M {mode}: {processed} transactions, {tps}");
    }
    // Statements of the extended protocol; the Execute's event carries the text and parameters.
    let parse = stack.wait_for_event("parse", |e| {
        e["event"] == "db.session.postgres.statements.parse"
            && e["query"]
                .as_str()
                .is_some_and(|q| q.contains("pgbench_accounts"))
    });
    assert_eq!(parse["code"], "TPG00I");
    let bind = stack.wait_for_event("bind", |e| {
        e["event"] == "db.session.postgres.statements.bind"
            && e["parameters"].as_array().is_some_and(|p| p.len() == 1)
    });
    assert_eq!(bind["code"], "TPG01I");
    let exec = stack.wait_for_event("execute with its query and parameters", |e| {
        e["event"] == "db.session.postgres.statements.execute"
            && e["db_query"]
                .as_str()
                .is_some_and(|q| q.contains("pgbench_accounts"))
            && e["db_query_parameters"].as_array().is_some_and(|p| {
                p.len() == 1 && p[0].as_str().is_some_and(|v| v.parse::<u64>().is_ok())
            })
    });
    assert_eq!(exec["code"], "TPG02I");
    assert!(exec["statement_name"].is_string(), "{exec}");
    // As in Teleport, an extended-protocol execution is not also a `db.session.query`: the
    // simple mode's are the only ones there are.
    let sid = exec["sid"].clone();
    assert!(
        !stack.events().iter().any(|e| e["sid"] == sid
            && e["event"] == "db.session.query"
            && e["db_query"].as_str().is_some_and(|q| q.contains("$1"))),
        "an Execute wrote a db.session.query"
    );
}
