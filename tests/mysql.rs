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

use common::assert_success;
use common::pg::PgStack;
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

use common::pg::output_text as text;

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

/// Where `pc db config NAME --format=json` says the proxy's MySQL port and the files are.
struct MyConn {
    host: String,
    port: u16,
    ca: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

fn my_conn(stack: &PgStack, name: &str) -> MyConn {
    let out = assert_success(
        "pc db config",
        &stack.pc(&["db", "config", name, "--format=json"], None),
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    MyConn {
        host: v["host"].as_str().unwrap().to_owned(),
        port: v["port"].as_str().unwrap().parse().unwrap(),
        ca: v["ca"].as_str().unwrap().into(),
        cert: v["cert"].as_str().unwrap().into(),
        key: v["key"].as_str().unwrap().into(),
    }
}

/// mysql_async options for the proxy, with the user's certificate.
fn async_opts(c: &MyConn, user: &str, db: Option<&str>) -> mysql_async::Opts {
    use mysql_async::{ClientIdentity, OptsBuilder, SslOpts};
    let ssl = SslOpts::default()
        .with_root_certs(vec![c.ca.clone().into()])
        .with_client_identity(Some(ClientIdentity::new(
            c.cert.clone().into(),
            c.key.clone().into(),
        )));
    OptsBuilder::default()
        .ip_or_hostname(c.host.clone())
        .tcp_port(c.port)
        .user(Some(user))
        .pass(Some("ignored-by-the-proxy"))
        .db_name(db)
        .prefer_socket(false)
        .ssl_opts(Some(ssl))
        .into()
}

#[test]
fn mysql_async_text_and_binary_protocol() {
    use mysql_async::prelude::*;
    // mysql_async asks rustls for the process-wide provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = mysql_stack();
    let c = my_conn(&stack, "my1");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conn = mysql_async::Conn::new(async_opts(&c, "app", Some("shop")))
            .await
            .expect("connecting through the proxy");
        // Text protocol, multi-statement with several result sets.
        let mut result = conn
            .query_iter("SELECT 1; SELECT name FROM items ORDER BY id")
            .await
            .unwrap();
        let first: Vec<i64> = result.collect().await.unwrap();
        let second: Vec<String> = result.collect().await.unwrap();
        drop(result);
        assert_eq!(
            (first, second),
            (vec![1], vec!["apple".to_owned(), "pear".to_owned()])
        );

        // Binary protocol: a prepared statement with every kind of parameter.
        let stmt = conn
            .prep("INSERT INTO items (id, name, price, added, data) VALUES (?, ?, ?, ?, ?)")
            .await
            .unwrap();
        conn.exec_drop(
            &stmt,
            (
                3i32,
                "quince",
                "3.75",
                mysql_async::Value::Date(2026, 11, 21, 10, 20, 30, 0),
                mysql_async::Value::NULL,
            ),
        )
        .await
        .unwrap();
        let big: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        conn.exec_drop(
            &stmt,
            (4i32, "blob", "0.01", mysql_async::Value::NULL, big.clone()),
        )
        .await
        .unwrap();
        let back: Option<Vec<u8>> = conn
            .exec_first("SELECT data FROM items WHERE id = ?", (4i32,))
            .await
            .unwrap();
        assert!(
            back.as_deref() == Some(big.as_slice()),
            "the 4 MiB row came back changed"
        );
        let name: Option<String> = conn
            .exec_first(
                "SELECT name FROM items WHERE id = ? AND price > ?",
                (3i32, 1.5f64),
            )
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("quince"));
        conn.close(stmt).await.unwrap();

        // Switching database: allowed to shop, refused elsewhere (COM_INIT_DB and USE).
        conn.query_drop("USE shop").await.unwrap();
        let err = conn.query_drop("USE other").await.unwrap_err().to_string();
        assert!(err.contains("1044") && err.contains("other"), "{err}");
        let err = conn
            .query_drop("SELECT 1; USE `other`")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("other"), "{err}");
        // The session goes on after a refusal.
        let n: Option<i64> = conn
            .query_first("SELECT COUNT(*) FROM items")
            .await
            .unwrap();
        assert_eq!(n, Some(4));
        // COM_CHANGE_USER is refused.
        let err = conn
            .change_user(mysql_async::ChangeUserOpts::default().with_user(Some("ro".into())))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("COM_CHANGE_USER"), "{err}");
        conn.disconnect().await.unwrap();

        // A database name the certificate does not name is refused at login.
        let refused = mysql_async::Conn::new(async_opts(&c, "app", Some("other"))).await;
        let err = refused.map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("1045") && err.contains("other"), "{err}");
        // And so is another db user.
        let refused = mysql_async::Conn::new(async_opts(&c, "ro", Some("shop"))).await;
        let err = refused.map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("\"ro\""), "{err}");
    });

    // The audit log has the statements with their decoded parameters.
    let prep = stack.wait_for_event("prepare", |e| {
        e["event"] == "db.session.mysql.statements.prepare"
            && e["query"]
                .as_str()
                .is_some_and(|q| q.starts_with("INSERT INTO items"))
    });
    assert_eq!(prep["code"], "TMY00I");
    let exec = stack.wait_for_event("execute", |e| {
        e["event"] == "db.session.mysql.statements.execute" && e["parameters"][1] == "quince"
    });
    assert_eq!(exec["parameters"][0], "3");
    assert_eq!(exec["parameters"][3], "2026-11-21 10:20:30");
    assert_eq!(exec["parameters"][4], "NULL");
    // The execute event names the statement's text, and no db.session.query repeats it.
    assert!(
        exec["db_query"]
            .as_str()
            .is_some_and(|q| q.starts_with("INSERT INTO items")),
        "{exec}"
    );
    let sid = exec["sid"].clone();
    assert!(
        !stack.events().iter().any(|e| e["sid"] == sid
            && e["event"] == "db.session.query"
            && e["db_query"]
                .as_str()
                .is_some_and(|q| q.starts_with("INSERT INTO items"))),
        "a COM_STMT_EXECUTE wrote a db.session.query"
    );
    stack.wait_for_event("USE other refused", |e| {
        e["event"] == "db.session.query.failed"
            && e["db_query"] == "USE other"
            && e["error"].as_str().is_some_and(|m| m.contains("other"))
    });
    stack.wait_for_event("change user refused", |e| {
        e["event"] == "db.session.query.failed"
            && e["db_query"]
                .as_str()
                .is_some_and(|q| q.starts_with("COM_CHANGE_USER"))
    });
    stack.wait_for_event("login refused", |e| {
        e["event"] == "db.session.start"
            && e["success"] == false
            && e["db_protocol"] == "mysql"
            && e["error"].as_str().is_some_and(|m| m.contains("\"other\""))
    });
    stack.wait_for_event("statement close", |e| {
        e["event"] == "db.session.mysql.statements.close"
    });
}

/// Sends `input` to the proxy's MySQL port right after reading its greeting; returns the rest
/// of what the proxy sent until it closed (bounded in time).
fn raw_exchange(addr: &str, input: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut header = [0u8; 4];
    tcp.read_exact(&mut header).unwrap();
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    let mut greeting = vec![0u8; len];
    tcp.read_exact(&mut greeting).unwrap();
    assert_eq!(greeting[0], 10, "protocol version 10 greeting");
    let _ = tcp.write_all(input);
    let mut rest = Vec::new();
    let started = std::time::Instant::now();
    let _ = tcp.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(14),
        "the proxy did not close"
    );
    rest
}

/// The ERR packet in `bytes`: (code, message).
fn err_of(bytes: &[u8]) -> (u16, String) {
    assert!(
        bytes.len() > 7 && bytes[4] == 0xff,
        "not an ERR packet: {bytes:?}"
    );
    let code = u16::from_le_bytes([bytes[5], bytes[6]]);
    let msg = String::from_utf8_lossy(&bytes[7..]).into_owned();
    (code, msg)
}

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_le_bytes()[..3].to_vec();
    out.push(seq);
    out.extend_from_slice(payload);
    out
}

#[test]
fn mysql_refusals_and_malformed_handshakes() {
    let stack = mysql_stack();
    let addr = stack.mysql_addr();
    // A session that must keep working throughout.
    let c = my_conn(&stack, "my1");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut survivor = rt
        .block_on(mysql_async::Conn::new(async_opts(&c, "app", Some("shop"))))
        .unwrap();

    // No TLS: a HandshakeResponse41 in the clear.
    let mut login = vec![];
    login.extend_from_slice(&0x000f_a68du32.to_le_bytes()); // caps with PROTOCOL_41, no SSL
    login.extend_from_slice(&(1u32 << 24).to_le_bytes());
    login.push(45);
    login.extend_from_slice(&[0u8; 23]);
    login.extend_from_slice(b"app\0\0");
    let got = raw_exchange(&addr, &packet(1, &login));
    let (code, msg) = err_of(&got);
    assert_eq!(code, 3159, "{msg}");
    assert!(
        msg.contains("TLS with a client certificate is required"),
        "{msg}"
    );

    // The malformed-handshake corpus: each gets an ERR and a closed connection.
    let too_long = {
        let mut p = vec![0xff, 0xff, 0xff, 1];
        p.extend_from_slice(&[0u8; 64]);
        p
    };
    let corpus: Vec<(&str, Vec<u8>)> = vec![
        ("sequence id out of order", packet(5, &[0u8; 32])),
        ("sequence id 0", packet(0, &[0u8; 32])),
        ("declared length over the handshake limit", too_long),
        ("truncated SSL request", packet(1, &[0x0d, 0xa6])),
        ("garbage", packet(1, b"GET / HTTP/1.1\r\n\r\n")),
    ];
    for (what, input) in corpus {
        let got = raw_exchange(&addr, &input);
        let (code, msg) = err_of(&got);
        assert!(code == 1043 || code == 3159, "{what}: got {code} {msg}");
    }
    // A truncated packet, then silence: the proxy gives up and closes (bounded).
    let got = raw_exchange(&addr, &[0x20, 0, 0]);
    assert!(got.is_empty() || got.get(4) == Some(&0xff), "{got:?}");

    // TLS without a client certificate.
    let out = Command::new(portcullis_testkit::binary_path("mariadb").unwrap())
        .args([
            "--host",
            &c.host,
            "--port",
            &c.port.to_string(),
            "--user",
            "app",
        ])
        .arg(format!("--ssl-ca={}", c.ca.display()))
        .args(["--ssl-verify-server-cert", "-e", "select 1"])
        .output()
        .unwrap();
    let err = text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("1045") && err.contains("client certificate is required"),
        "{err}"
    );

    // The other session was not affected by any of it.
    assert_eq!(survivor_check(&rt, &mut survivor), "");

    // A lock ends a live session with an ERR, and db.session.end says why.
    let victim_opts = async_opts(&c, "app", Some("shop"));
    let sleeping = std::thread::spawn(move || {
        use mysql_async::prelude::*;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let mut victim = mysql_async::Conn::new(victim_opts).await.unwrap();
                victim.query_drop("SELECT SLEEP(30)").await
            })
    });
    std::thread::sleep(Duration::from_millis(800));
    stack
        .cluster
        .pcctl_ok(&["locks", "add", "--user=alice", "--message=incident 7"]);
    let result = sleeping.join().unwrap();
    let err = result.unwrap_err().to_string();
    assert!(err.contains("incident 7"), "{err}\n{}", stack.agent_log());
    let end = stack.wait_for_event("locked end", |e| {
        e["event"] == "db.session.end" && e["end_reason"] == "locked" && e["db_protocol"] == "mysql"
    });
    assert!(
        end["reason"].as_str().unwrap().contains("incident 7"),
        "{end}"
    );
    // New sessions are refused while locked.
    let refused = rt.block_on(mysql_async::Conn::new(async_opts(&c, "app", Some("shop"))));
    let err = refused.map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("1045") && err.contains("locked"), "{err}");

    stack.wait_for_event("no TLS", |e| {
        e["event"] == "db.session.start"
            && e["success"] == false
            && e["db_protocol"] == "mysql"
            && e["error"]
                .as_str()
                .is_some_and(|m| m.contains("TLS with a client certificate"))
    });
    stack.wait_for_event("no cert", |e| {
        e["event"] == "db.session.start"
            && e["success"] == false
            && e["db_protocol"] == "mysql"
            && e["error"] == "a client certificate is required"
    });
}

/// Runs `SELECT 1` on `conn`: empty when it worked, else the error.
fn survivor_check(rt: &tokio::runtime::Runtime, conn: &mut mysql_async::Conn) -> String {
    use mysql_async::prelude::*;
    rt.block_on(conn.query_drop("SELECT 1"))
        .map(|_| String::new())
        .unwrap_or_else(|e| e.to_string())
}

#[test]
fn sysbench_through_the_proxy() {
    let stack = mysql_stack();
    let c = my_conn(&stack, "my1");
    // sysbench reads client-key.pem, client-cert.pem and cacert.pem from its directory.
    let dir = stack.cluster.dir().join("sysbench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&c.key, dir.join("client-key.pem")).unwrap();
    std::fs::copy(&c.cert, dir.join("client-cert.pem")).unwrap();
    std::fs::copy(&c.ca, dir.join("cacert.pem")).unwrap();
    let sysbench = |args: &[&str]| {
        let mut cmd = Command::new(portcullis_testkit::binary_path("sysbench").unwrap());
        cmd.current_dir(&dir)
            .args([
                "--db-driver=mysql",
                "--mysql-host=127.0.0.1",
                &format!("--mysql-port={}", c.port),
                "--mysql-user=app",
                "--mysql-password=ignored",
                "--mysql-db=shop",
                "--mysql-ssl=on",
                "--tables=1",
                "--table-size=1000",
            ])
            .args(args);
        portcullis_testkit::run_command(&mut cmd, Duration::from_secs(120)).unwrap()
    };
    assert_success(
        "sysbench prepare",
        &sysbench(&["oltp_read_only", "prepare"]),
    );
    for test in ["oltp_read_only", "oltp_point_select"] {
        let out = sysbench(&[test, "--threads=2", "--time=3", "run"]);
        let got = assert_success(test, &out);
        assert!(
            got.contains("transactions:") && !got.contains("FATAL"),
            "{got}"
        );
    }
    stack.wait_for_event("sysbench statement", |e| {
        e["event"] == "db.session.mysql.statements.execute" && e["db_protocol"] == "mysql"
    });
}

#[test]
fn mysql_on_a_single_node_and_through_pc_proxy() {
    let stack = PgStack::start_single_node_with_mariadb();
    stack.add_user("alice", "access", "app", "shop");
    stack.login("alice");
    assert_success(
        "pc db login",
        &stack.pc(
            &["db", "login", "my1", "--db-user=app", "--db-name=shop"],
            None,
        ),
    );
    let out = mariadb(&stack, "my1", &[], "select current_user()");
    assert_eq!(assert_success("mariadb", &out).trim(), "app@%");
    // pc proxy db: a plaintext local port, TLS with ALPN to the proxy's main port.
    let proxy = stack.pc_proxy_db("my1");
    let mut cmd = Command::new(portcullis_testkit::binary_path("mariadb").unwrap());
    cmd.args(["--host=127.0.0.1", &format!("--port={}", proxy.port)])
        .args([
            "--user=app",
            "--database=shop",
            "--skip-ssl",
            "--batch",
            "--skip-column-names",
        ])
        .args(["-e", "select count(*) from items"]);
    let out = portcullis_testkit::run_command(&mut cmd, Duration::from_secs(30)).unwrap();
    assert_eq!(
        assert_success("mariadb via pc proxy db", &out).trim(),
        "2",
        "{}",
        text(&out)
    );
    stack.wait_for_event("query", |e| {
        e["event"] == "db.session.query" && e["db_query"] == "select count(*) from items"
    });
}

/// A MySQL client by hand, over TLS with the user's certificate: the commands no driver
/// sends (replication, COM_MULTI, malformed ones) are refused with ERR 1047 and audited, and
/// the session goes on.
#[test]
fn commands_the_audit_cannot_read_are_refused() {
    use bytes::BytesMut;
    use portcullis_wire::mysql::{
        capability::*, HandshakeResponse41, PacketFramer, Sequence, SslRequest,
    };
    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stack = mysql_stack();
    let c = my_conn(&stack, "my1");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut tcp = tokio::net::TcpStream::connect((c.host.as_str(), c.port))
            .await
            .unwrap();
        let framer = PacketFramer::handshake();
        let mut buf = BytesMut::new();
        let greeting = loop {
            if let Some(p) = framer.split_logical(&mut buf).unwrap() {
                break p;
            }
            tcp.read_buf(&mut buf).await.unwrap();
        };
        assert_eq!(greeting.payload[0], 10);
        let caps = CLIENT_PROTOCOL_41
            | CLIENT_SECURE_CONNECTION
            | CLIENT_PLUGIN_AUTH
            | CLIENT_SSL
            | CLIENT_CONNECT_WITH_DB
            | CLIENT_DEPRECATE_EOF;
        let mut payload = BytesMut::new();
        SslRequest {
            capabilities: caps,
            max_packet_size: 1 << 24,
            charset: 45,
        }
        .encode(&mut payload)
        .unwrap();
        let mut out = BytesMut::new();
        Sequence::starting_at(1).write(&mut out, &payload);
        tcp.write_all(&out).await.unwrap();
        let config = common::pg::tls_client_config(&c.ca, &c.cert, &c.key);
        let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(ServerName::try_from(c.host.clone()).unwrap(), tcp)
            .await
            .unwrap();
        let mut login = HandshakeResponse41::new("app", caps);
        login.database = Some("shop".into());
        login.auth_plugin_name = Some("mysql_native_password".into());
        let mut payload = BytesMut::new();
        login.encode(&mut payload).unwrap();
        let mut out = BytesMut::new();
        Sequence::starting_at(2).write(&mut out, &payload);
        tls.write_all(&out).await.unwrap();
        let mut buf = BytesMut::new();
        let ok = loop {
            if let Some(p) = PacketFramer::new().split_logical(&mut buf).unwrap() {
                break p;
            }
            assert!(tls.read_buf(&mut buf).await.unwrap() > 0, "closed");
        };
        assert_eq!(ok.payload[0], 0, "login OK");
        for (what, command) in [
            ("COM_BINLOG_DUMP", vec![0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            ("COM_MULTI", vec![0xfe, 1, 2, 3]),
            ("truncated COM_STMT_CLOSE", vec![0x19, 1]),
        ] {
            let mut out = BytesMut::new();
            Sequence::new().write(&mut out, &command);
            tls.write_all(&out).await.unwrap();
            let mut rbuf = BytesMut::new();
            let reply = loop {
                if let Some(p) = PacketFramer::new().split_logical(&mut rbuf).unwrap() {
                    break p;
                }
                assert!(tls.read_buf(&mut rbuf).await.unwrap() > 0, "{what}: closed");
            };
            assert_eq!(reply.payload[0], 0xff, "{what}: not an ERR");
            let code = u16::from_le_bytes([reply.payload[1], reply.payload[2]]);
            assert_eq!(
                code,
                1047,
                "{what}: {:?}",
                String::from_utf8_lossy(&reply.payload)
            );
        }
        // The session goes on.
        let mut out = BytesMut::new();
        Sequence::new().write(&mut out, b"\x03select 42");
        tls.write_all(&out).await.unwrap();
        let mut rbuf = BytesMut::new();
        let first = loop {
            if let Some(p) = PacketFramer::new().split_logical(&mut rbuf).unwrap() {
                break p;
            }
            assert!(tls.read_buf(&mut rbuf).await.unwrap() > 0, "closed");
        };
        assert_eq!(first.payload.as_ref(), &[1], "a one-column result set");
    });
    stack.wait_for_event("refused replication command", |e| {
        e["event"] == "db.session.query.failed" && e["db_query"] == "COM_BINLOG_DUMP"
    });
}
