//! Redis access end to end: `pc db login`, redis-cli and the `redis` crate (RESP2 and RESP3,
//! pipelines, MULTI, pub/sub, blocking commands, large values) through the proxy and the
//! reverse tunnel to a real Redis with TLS and ACL users, every command audited, and the
//! refusals a user can meet, each with its RESP error and audit event.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::pg::{redis_password, PgStack};
use common::{assert_failure, assert_success};
use serde_json::Value;

/// Where `pc db config NAME --format=json` says the certificate and the proxy are.
struct RedisConn {
    host: String,
    port: u16,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn redis_conn(stack: &PgStack, name: &str) -> RedisConn {
    let out = assert_success(
        "pc db config",
        &stack.pc(&["db", "config", name, "--format=json"], None),
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["command"]
            .as_str()
            .unwrap()
            .starts_with("redis-cli --tls"),
        "{v}"
    );
    RedisConn {
        host: v["host"].as_str().unwrap().to_owned(),
        port: v["port"].as_str().unwrap().parse().unwrap(),
        ca: v["ca"].as_str().unwrap().into(),
        cert: v["cert"].as_str().unwrap().into(),
        key: v["key"].as_str().unwrap().into(),
    }
}

/// redis-cli through the proxy with the certificate (`with_cert`) or without.
fn redis_cli(c: &RedisConn, with_cert: bool, args: &[&str]) -> Output {
    let mut cmd = Command::new(portcullis_testkit::binary_path("redis-cli").unwrap());
    cmd.args(["--tls", "--cacert"]).arg(&c.ca);
    if with_cert {
        cmd.arg("--cert").arg(&c.cert).arg("--key").arg(&c.key);
    }
    cmd.args(["-h", &c.host, "-p", &c.port.to_string()])
        .args(args);
    portcullis_testkit::run_command(&mut cmd, Duration::from_secs(30)).unwrap()
}

use common::pg::output_text as stdout;

/// A `redis` crate client with the user's certificate.
fn client(c: &RedisConn, resp3: bool) -> redis::Client {
    let url = format!(
        "rediss://{}:{}/{}",
        c.host,
        c.port,
        if resp3 { "?protocol=resp3" } else { "" }
    );
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: std::fs::read(&c.cert).unwrap(),
                client_key: std::fs::read(&c.key).unwrap(),
            }),
            root_cert: Some(std::fs::read(&c.ca).unwrap()),
        },
    )
    .unwrap()
}

fn redis_stack() -> PgStack {
    let stack = PgStack::start_with_redis("");
    stack.add_user("alice", "access", "app", "");
    stack.login("alice");
    let ls = assert_success("pc db ls", &stack.pc(&["db", "ls"], None));
    assert!(ls.contains("redis1") && ls.contains("redis"), "{ls}");
    assert_success(
        "pc db login",
        &stack.pc(&["db", "login", "redis1", "--db-user=app"], None),
    );
    stack
}

fn queries(stack: &PgStack) -> Vec<String> {
    stack
        .events()
        .into_iter()
        .filter(|e| e["event"] == "db.session.query" && e["db_protocol"] == "redis")
        .filter_map(|e| e["db_query"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn redis_cli_and_the_redis_crate_through_the_proxy() {
    let stack = redis_stack();
    let c = redis_conn(&stack, "redis1");

    // redis-cli, unchanged flags.
    let out = redis_cli(&c, true, &["SET", "greeting", "hello world"]);
    assert_eq!(
        assert_success("redis-cli SET", &out).trim(),
        "OK",
        "{}",
        stack.agent_log()
    );
    let out = redis_cli(&c, true, &["GET", "greeting"]);
    assert_eq!(assert_success("redis-cli GET", &out).trim(), "hello world");
    let out = redis_cli(&c, true, &["ACL", "WHOAMI"]);
    assert_eq!(assert_success("redis-cli ACL WHOAMI", &out).trim(), "app");

    // `pc db connect` runs redis-cli (commands from stdin when it is not a terminal).
    let mut cmd = Command::new(common::bin("pc"));
    cmd.args(["db", "connect", "redis1"])
        .env("PORTCULLIS_HOME", stack.home.join(".portcullis"))
        .env("HOME", &stack.home);
    let out = common::pg::run_with_stdin(&mut cmd, "PING\nGET greeting\n");
    let got = assert_success("pc db connect", &out);
    assert!(got.contains("PONG") && got.contains("hello world"), "{got}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // RESP2: a pipeline, MULTI/EXEC, a large value.
        let cl = client(&c, false);
        let mut con = cl.get_multiplexed_async_connection().await.unwrap();
        let (a, b, n): (String, String, i64) = redis::pipe()
            .cmd("SET")
            .arg("k1")
            .arg("v1")
            .ignore()
            .cmd("SET")
            .arg("k2")
            .arg("v2")
            .ignore()
            .cmd("GET")
            .arg("k1")
            .cmd("GET")
            .arg("k2")
            .cmd("INCRBY")
            .arg("counter")
            .arg(5)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!((a.as_str(), b.as_str(), n), ("v1", "v2", 5));
        let (x, y): (i64, i64) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg("counter")
            .cmd("INCR")
            .arg("counter")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!((x, y), (6, 7));
        let big: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let _: () = redis::cmd("SET")
            .arg("big")
            .arg(&big)
            .query_async(&mut con)
            .await
            .unwrap();
        let back: Vec<u8> = redis::cmd("GET")
            .arg("big")
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(back == big, "the 5 MiB value came back changed");

        // Blocking: BLPOP waits until another connection pushes.
        let mut waiter = cl.get_multiplexed_async_connection().await.unwrap();
        let pop = tokio::spawn(async move {
            let r: (String, String) = redis::cmd("BLPOP")
                .arg("queue")
                .arg(10)
                .query_async(&mut waiter)
                .await
                .unwrap();
            r
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _: i64 = redis::cmd("LPUSH")
            .arg("queue")
            .arg("job-1")
            .query_async(&mut con)
            .await
            .unwrap();
        let popped = tokio::time::timeout(Duration::from_secs(10), pop)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(popped, ("queue".to_owned(), "job-1".to_owned()));

        // Pub/sub.
        let mut sub = cl.get_async_pubsub().await.unwrap();
        sub.subscribe("news").await.unwrap();
        sub.psubscribe("alerts.*").await.unwrap();
        let _: i64 = redis::cmd("PUBLISH")
            .arg("news")
            .arg("first")
            .query_async(&mut con)
            .await
            .unwrap();
        let _: i64 = redis::cmd("PUBLISH")
            .arg("alerts.disk")
            .arg("full")
            .query_async(&mut con)
            .await
            .unwrap();
        {
            use futures::StreamExt;
            let mut msgs = sub.on_message();
            let m1 = tokio::time::timeout(Duration::from_secs(10), msgs.next())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (
                    m1.get_channel_name(),
                    m1.get_payload::<String>().unwrap().as_str()
                ),
                ("news", "first")
            );
            let m2 = tokio::time::timeout(Duration::from_secs(10), msgs.next())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(m2.get_channel_name(), "alerts.disk");
        }

        // RESP3 (HELLO 3) with the client's own AUTH naming the allowed user: the agent swaps in
        // the real password; the client's is never used or logged.
        let url3 = format!(
            "rediss://app:client-side-secret-123@{}:{}/?protocol=resp3",
            c.host, c.port
        );
        let cl3 = redis::Client::build_with_tls(
            url3,
            redis::TlsCertificates {
                client_tls: Some(redis::ClientTlsConfig {
                    client_cert: std::fs::read(&c.cert).unwrap(),
                    client_key: std::fs::read(&c.key).unwrap(),
                }),
                root_cert: Some(std::fs::read(&c.ca).unwrap()),
            },
        )
        .unwrap();
        let mut con3 = cl3.get_multiplexed_async_connection().await.unwrap();
        let v: String = redis::cmd("GET")
            .arg("k1")
            .query_async(&mut con3)
            .await
            .unwrap();
        assert_eq!(v, "v1");
        let m: std::collections::HashMap<String, String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut con3)
            .await
            .unwrap_or_default();
        let _ = m;
        let me: String = redis::cmd("ACL")
            .arg("WHOAMI")
            .query_async(&mut con3)
            .await
            .unwrap();
        assert_eq!(me, "app");

        // A client AUTH naming another user: -NOPERM, and the session goes on.
        let err = redis::cmd("AUTH")
            .arg("ro")
            .arg("whatever")
            .query_async::<String>(&mut con)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("Portcullis") && err.to_string().contains("\"ro\""),
            "{err}"
        );
        let v: String = redis::cmd("GET")
            .arg("k2")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(v, "v2");
    });

    // Every command is a db.session.query event; secrets are masked.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let q = queries(&stack);
        let want = [
            "SET greeting \"hello world\"",
            "GET greeting",
            "INCRBY counter 5",
            "MULTI",
            "EXEC",
            "BLPOP queue 10",
            "LPUSH queue job-1",
            "SUBSCRIBE news",
            "PSUBSCRIBE alerts.*",
            "PUBLISH news first",
            "AUTH ro ******",
            "GET k2",
        ];
        let missing: Vec<_> = want.iter().filter(|w| !q.iter().any(|x| x == *w)).collect();
        let hello = q.iter().any(|x| x.starts_with("HELLO 3 AUTH app ******"));
        if missing.is_empty() && hello {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "missing {missing:?} (HELLO: {hello}) in {q:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let start = stack.wait_for_event("redis session start", |e| {
        e["event"] == "db.session.start" && e["db_protocol"] == "redis" && e["success"] == true
    });
    assert_eq!(
        (&start["user"], &start["db_service"], &start["db_user"]),
        (
            &Value::from("alice"),
            &Value::from("redis1"),
            &Value::from("app")
        )
    );
    let log = std::fs::read_to_string(stack.cluster.data_dir().join("log/events.log")).unwrap();
    assert!(
        !log.contains("client-side-secret-123"),
        "a client password reached the audit log"
    );
    assert!(
        !log.contains(&redis_password(&stack.agent_dir, "app")),
        "the agent's Redis password reached the audit log"
    );
    assert!(
        !stack
            .agent_log()
            .contains(&redis_password(&stack.agent_dir, "app")),
        "the agent's Redis password reached its log"
    );
    stack.wait_for_event("redis session end", |e| {
        e["event"] == "db.session.end" && e["sid"] == start["sid"]
    });
}

#[test]
fn redis_refusals_reach_the_client_and_the_audit_log() {
    let stack = redis_stack();
    let c = redis_conn(&stack, "redis1");

    // Plaintext: a RESP error saying TLS and a certificate are required.
    let mut tcp = TcpStream::connect((c.host.as_str(), c.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut got = String::new();
    let _ = tcp.read_to_string(&mut got);
    assert!(
        got.starts_with("-ERR Portcullis: TLS with a client certificate is required"),
        "{got:?}"
    );

    // TLS without a client certificate.
    let out = redis_cli(&c, false, &["PING"]);
    let text = stdout(&out);
    assert!(
        text.contains("NOPERM Portcullis: a client certificate is required"),
        "{text}"
    );

    // A db user the roles do not allow: refused at `pc db login`.
    let out = stack.pc(&["db", "login", "redis1", "--db-user=ro"], None);
    let err = assert_failure("db login as ro", &out);
    assert!(err.contains("ro"), "{err}");

    // Malformed RESP inside TLS: each gets an error and a closed connection, while another
    // session stays usable.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(malformed_corpus(&c));
    let out = redis_cli(&c, true, &["PING"]);
    assert_eq!(assert_success("PING after bad input", &out).trim(), "PONG");

    // A lock ends a live session with an error, and `db.session.end` says why.
    rt.block_on(async {
        let cl = client(&c, false);
        let mut con = cl.get_multiplexed_async_connection().await.unwrap();
        let _: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
        // A blocked command is waiting when the lock comes.
        let mut blocked = cl.get_multiplexed_async_connection().await.unwrap();
        let waiting = tokio::spawn(async move {
            redis::cmd("BLPOP")
                .arg("never")
                .arg(30)
                .query_async::<Option<(String, String)>>(&mut blocked)
                .await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        stack
            .cluster
            .pcctl_ok(&["locks", "add", "--user=alice", "--message=incident 42"]);
        let r = tokio::time::timeout(Duration::from_secs(15), waiting)
            .await
            .expect("the locked session did not end")
            .unwrap();
        let e = r.expect_err("a locked session must not answer");
        let _ = e;
        let after = redis::cmd("PING").query_async::<String>(&mut con).await;
        assert!(after.is_err(), "the locked user's connection still works");
    });
    let end = stack.wait_for_event("locked end", |e| {
        e["event"] == "db.session.end" && e["end_reason"] == "locked" && e["db_protocol"] == "redis"
    });
    assert!(
        end["reason"].as_str().unwrap().contains("incident 42"),
        "{end}"
    );
    // A new session of the locked user is refused, with its event.
    let out = redis_cli(&c, true, &["PING"]);
    let text = stdout(&out);
    assert!(text.contains("NOPERM") && text.contains("locked"), "{text}");
    stack.wait_for_event("refused start", |e| {
        e["event"] == "db.session.start"
            && e["success"] == false
            && e["db_protocol"] == "redis"
            && e["error"].as_str().is_some_and(|m| m.contains("locked"))
    });
    stack.wait_for_event("no cert start", |e| {
        e["event"] == "db.session.start"
            && e["success"] == false
            && e["db_protocol"] == "redis"
            && e["error"]
                .as_str()
                .is_some_and(|m| m.contains("client certificate is required"))
    });
}

/// A TLS connection to the proxy with the user's certificate.
async fn tls_to_proxy(c: &RedisConn) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::ServerName;
    let config = common::pg::tls_client_config(&c.ca, &c.cert, &c.key);
    let tcp = tokio::net::TcpStream::connect((c.host.as_str(), c.port))
        .await
        .unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from(c.host.clone()).unwrap(), tcp)
        .await
        .unwrap()
}

/// Sends `input`, returns everything read until the proxy closes (bounded in time).
async fn exchange(c: &RedisConn, input: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = tls_to_proxy(c).await;
    tls.write_all(input).await.unwrap();
    tls.flush().await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut got)).await;
    assert!(
        read.is_ok(),
        "the connection was not closed after {:?}: got {:?}",
        String::from_utf8_lossy(&input[..input.len().min(80)]),
        String::from_utf8_lossy(&got)
    );
    got
}

async fn malformed_corpus(c: &RedisConn) {
    // A session that must keep working throughout.
    let cl = client(c, false);
    let mut con = cl.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("survivor")
        .arg("yes")
        .query_async(&mut con)
        .await
        .unwrap();
    let deep = b"*1\r\n".repeat(100_000);
    let corpus: Vec<(&str, Vec<u8>)> = vec![
        ("count not a number", b"*abc\r\n".to_vec()),
        ("negative count", b"*-2\r\n".to_vec()),
        ("negative bulk length", b"*1\r\n$-5\r\n".to_vec()),
        ("bulk length not a number", b"*1\r\n$x\r\n".to_vec()),
        ("bulk longer than said", b"*1\r\n$3\r\nabcdef\r\n".to_vec()),
        ("huge bulk length", b"*1\r\n$99999999999999\r\n".to_vec()),
        (
            "bulk over the agent's 64 MiB",
            b"*2\r\n$3\r\nSET\r\n$104857600\r\n".to_vec(),
        ),
        ("huge element count", b"*99999999999\r\n".to_vec()),
        ("nested arrays", deep),
        ("element not a bulk string", b"*1\r\n:5\r\n".to_vec()),
        (
            "inline with an unbalanced quote",
            b"SET k \"oops\r\n".to_vec(),
        ),
        ("inline line over 64 KiB", vec![b'a'; 70 * 1024]),
    ];
    for (what, input) in corpus {
        let got = exchange(c, &input).await;
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("-ERR Portcullis: bad command"),
            "{what}: {text:?}"
        );
    }
    // An inline command is RESP too (Redis accepts them from telnet users).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = tls_to_proxy(c).await;
    tls.write_all(b"PING\r\n").await.unwrap();
    let mut buf = [0u8; 7];
    tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
    let v: String = redis::cmd("GET")
        .arg("survivor")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(v, "yes");
}

#[test]
fn redis_on_a_single_node() {
    let stack = PgStack::start_single_node_with_redis();
    stack.add_user("alice", "access", "app", "shop");
    stack.login("alice");
    assert_success(
        "pc db login",
        &stack.pc(&["db", "login", "redis1", "--db-user=app"], None),
    );
    let c = redis_conn(&stack, "redis1");
    let out = redis_cli(&c, true, &["SET", "one", "1"]);
    assert_eq!(assert_success("SET", &out).trim(), "OK");
    let out = redis_cli(&c, true, &["ACL", "WHOAMI"]);
    assert_eq!(assert_success("ACL WHOAMI", &out).trim(), "app");
    stack.wait_for_event("query", |e| {
        e["event"] == "db.session.query" && e["db_query"] == "SET one 1"
    });
    // PostgreSQL keeps working beside it.
    assert_success(
        "pc db login pg1",
        &stack.pc(
            &["db", "login", "pg1", "--db-user=app", "--db-name=shop"],
            None,
        ),
    );
}
